"""Repairs of damaged thread tokens."""

from __future__ import annotations

import pytest

from gateway.threading.damaged import find_damaged_tokens

ORG = "00DTest42"
TOKEN = "ref_00DTest42_AbCdEfGhIj:ref"


@pytest.mark.parametrize(
    "text",
    [
        "Ihr Fall ref_00DTest42_AbCdE\n> fGhIj:ref bitte",
        "Ihr Fall ref_00DTest42_AbCdE=\nfGhIj:ref bitte",
        "Ihr Fall ref_00DTest42_AbCdE=\r\nfGhIj:ref bitte",
        "Ihr Fall ref&#95;00DTest42&#95;AbCdEfGhIj:ref bitte",
        "Ihr Fall ref_00DTest42_<span>AbCdE</span>fGhIj:ref bitte",
        "Ihr Fall ref=5F00DTest42=5FAbCdEfGhIj=3Aref bitte",
        "Ihr Fall [ref_00DTest42_AbCdEfGhIj:ref] bitte",
        "Ihr Fall ref _ 00DTest42 _ AbCdEfGhIj : ref bitte",
        "Ihr Fall 00DTest42_AbCdEfGhIj:ref bitte",
        "Ihr Fall ref_00DTest42_AbCdEfGhIj bitte",
    ],
)
def test_damaged_token_repaired(text: str) -> None:
    assert TOKEN in find_damaged_tokens(text, [ORG])


def test_lost_suffix_on_joined_line_tries_prefix() -> None:
    text = "Ihr Fall ref_00DTest42_AbCdEfGhIj\nDanke"
    assert TOKEN in find_damaged_tokens(text, [ORG])


def test_unframed_run_needs_own_org() -> None:
    assert find_damaged_tokens("Bestellung 00DOther9_AbCdEfGhIj", [ORG]) == []


def test_org_inside_longer_word_is_not_taken() -> None:
    assert find_damaged_tokens("x00DTest42_AbCdEfGhIj", [ORG]) == []


def test_text_without_token_signs_is_skipped() -> None:
    assert find_damaged_tokens("Hallo <erika@kunde.example.org>\n> Zitat", [ORG]) == []
