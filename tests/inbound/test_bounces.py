"""Reading bounces: recipients, status, permanence and the returned mail."""

from __future__ import annotations

from gateway.inbound.bounces import read_bounce
from tests.inbound.bounce_fixtures import (
    FORWARDED_BOUNCE,
    PLAIN_TEXT_BOUNCE,
    QMAIL_STYLE_BOUNCE,
    dsn,
)

OWN = ["help@desk.example.com"]


def test_dsn_failure_is_permanent_with_status() -> None:
    report = read_bounce(dsn("gone@kunde.example.org", "5.1.1"), OWN)
    [recipient] = report.recipients
    assert report.standard
    assert report.found_by == "dsn"
    assert recipient.recipient == "gone@kunde.example.org"
    assert recipient.status == "5.1.1"
    assert recipient.action == "failed"
    assert recipient.permanent
    assert "550 5.1.1" in recipient.diagnostic
    assert report.permanent
    assert report.status == "5.1.1"


def test_dsn_delay_is_not_permanent() -> None:
    report = read_bounce(dsn("slow@kunde.example.org", "4.4.1", action="delayed"), OWN)
    [recipient] = report.recipients
    assert recipient.action == "delayed"
    assert recipient.status == "4.4.1"
    assert not recipient.permanent
    assert not report.permanent


def test_dsn_prefers_original_recipient() -> None:
    raw = dsn(
        "mailbox7@store.kunde.example.org",
        "5.2.2",
        original_recipient="lena@kunde.example.org",
    )
    [recipient] = read_bounce(raw, OWN).recipients
    assert recipient.recipient == "lena@kunde.example.org"


def test_dsn_returned_message_is_parsed() -> None:
    raw = dsn(
        "gone@kunde.example.org",
        "5.1.1",
        returned_message_id="<abc@mail.desk.example.com>",
        returned_subject="Case 00000004 ref_00DTest42_AbCdEfGhIj:ref",
    )
    returned = read_bounce(raw, OWN).returned
    assert returned is not None
    assert returned.message_id == "<abc@mail.desk.example.com>"
    assert "ref_00DTest42_AbCdEfGhIj:ref" in returned.subject


def test_dsn_returned_headers_part_is_parsed() -> None:
    raw = dsn(
        "gone@kunde.example.org",
        "5.1.1",
        returned_message_id="<hdr@mail.desk.example.com>",
        returned_as="text/rfc822-headers",
    )
    returned = read_bounce(raw, OWN).returned
    assert returned is not None
    assert returned.message_id == "<hdr@mail.desk.example.com>"


def test_plain_text_bounce_names_address_and_copy() -> None:
    report = read_bounce(PLAIN_TEXT_BOUNCE, OWN)
    assert [r.recipient for r in report.recipients] == ["paul.weg@kunde.example.org"]
    assert report.found_by == "text"
    assert not report.permanent
    assert report.returned is not None
    assert report.returned.message_id == "<note-2@mail.desk.example.com>"


def test_vendor_format_read_by_flufl_with_text_status() -> None:
    report = read_bounce(QMAIL_STYLE_BOUNCE, OWN)
    [recipient] = report.recipients
    assert report.found_by == "flufl.bounce"
    assert recipient.recipient == "ines.alt@kunde.example.org"
    assert recipient.permanent
    assert recipient.status == "5.1.1"


def test_own_address_is_never_a_failed_recipient() -> None:
    report = read_bounce(dsn("help@desk.example.com", "5.1.1"), OWN)
    assert report.recipients == []


def test_forwarded_report_is_not_read_as_own() -> None:
    report = read_bounce(FORWARDED_BOUNCE, OWN)
    assert report.recipients == []
    assert not report.standard


def test_enclosed_report_read_when_trusted() -> None:
    report = read_bounce(FORWARDED_BOUNCE, OWN, trust_enclosed=True)
    assert [r.recipient for r in report.recipients] == ["lager@kunde.example.org"]
    assert report.status == "5.1.1"


def test_garbage_gives_empty_report() -> None:
    report = read_bounce(b"\x00\xff not a mail at all", OWN)
    assert report.recipients == []
