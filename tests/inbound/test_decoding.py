"""Charset fallbacks for mislabelled and unlabelled text."""

import pytest

from gateway.inbound.decoding import decode_bytes


def test_utf8_labelled_latin1_read_as_utf8() -> None:
    defects: list[str] = []
    text = decode_bytes("Grüße aus Köln".encode(), "iso-8859-1", defects)

    assert text == "Grüße aus Köln"
    assert defects == ["text: labelled iso-8859-1, decoded as utf-8"]


def test_real_latin1_text_kept() -> None:
    defects: list[str] = []
    text = decode_bytes("Grüße aus Köln".encode("latin-1"), "iso-8859-1", defects)

    assert text == "Grüße aus Köln"
    assert defects == []


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Здравствуйте, заказ не пришёл вовремя. Спасибо за помощь", "cp1251"),
        ("お世話になっております。注文がまだ届いていません。", "shift_jis"),
        ("您好，我的订单还没有到，请帮忙查一下，谢谢", "gb18030"),
    ],
)
def test_non_latin_text_without_label_detected(text: str, encoding: str) -> None:
    defects: list[str] = []

    assert decode_bytes(text.encode(encoding), None, defects) == text
    assert "detected as" in defects[0]


def test_western_text_without_label_read_as_cp1252() -> None:
    original = "Bonjour, la commande n'est pas arrivée. Merci, à bientôt"
    defects: list[str] = []

    assert decode_bytes(original.encode("cp1252"), None, defects) == original


def test_mislabelled_utf8_header_keeps_defect_item_name() -> None:
    defects: list[str] = []
    decode_bytes("Lösung".encode(), "windows-1252", defects, "header Subject")

    assert defects == ["header Subject: labelled windows-1252, decoded as utf-8"]
