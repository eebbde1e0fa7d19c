"""Reading UID FETCH responses as aioimaplib returns them."""

from __future__ import annotations

from gateway.inbound.imapclient import parse_fetch_lines


def test_uid_before_and_after_literal() -> None:
    lines = [
        b"1 FETCH (UID 7 BODY[] {9}",
        bytearray(b"Subject:a"),
        b")",
        b"2 FETCH (BODY[] {9}",
        bytearray(b"Subject:b"),
        b" UID 9)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert parse_fetch_lines(lines) == {7: b"Subject:a", 9: b"Subject:b"}


def test_flag_updates_without_body_skipped() -> None:
    lines = [
        b"3 FETCH (FLAGS (\\Seen))",
        b"4 FETCH (UID 12 FLAGS (\\Seen) BODY[] {4}",
        b"body",
        b")",
        b"5 FETCH (UID 13 FLAGS ())",
        b"Fetch completed.",
    ]
    assert parse_fetch_lines(lines) == {12: b"body"}


def test_literal_containing_uid_text_ignored() -> None:
    lines = [
        b"1 FETCH (UID 3 BODY[] {13}",
        b"UID 99 BODY[]",
        b")",
        b"Fetch completed.",
    ]
    assert parse_fetch_lines(lines) == {3: b"UID 99 BODY[]"}
