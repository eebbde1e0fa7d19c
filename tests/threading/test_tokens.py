"""Thread tokens: minted unguessable, found in text."""

from gateway.threading.tokens import CASE_PART_LENGTH, find_tokens, is_token, mint_token


def test_minted_token_has_documented_form() -> None:
    token = mint_token("00DAbc12")
    assert token.startswith("ref_00DAbc12_")
    assert token.endswith(":ref")
    assert is_token(token)
    assert len(token.split("_")[2].removesuffix(":ref")) == CASE_PART_LENGTH


def test_minted_tokens_differ() -> None:
    tokens = {mint_token("org1") for _ in range(2000)}
    assert len(tokens) == 2000


def test_find_tokens_in_order_once_each() -> None:
    text = (
        "Re: ref_org1_Bbbbbbbbbb:ref and ref_org1_Aaaaaaaaaa:ref, "
        "ref_org1_Bbbbbbbbbb:ref"
    )
    assert find_tokens(text) == ["ref_org1_Bbbbbbbbbb:ref", "ref_org1_Aaaaaaaaaa:ref"]


def test_find_tokens_ignores_broken_forms() -> None:
    assert find_tokens("ref_org1_:ref ref__Abc:ref ref_org1_Abc") == []
