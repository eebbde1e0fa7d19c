"""Every mail kind renders in German and English with the fields a reader needs."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from gateway.outbound.outbox import compose_row
from gateway.outbound.outlook import filetime, outlook_headers
from tests.conftest import build_mail
from tests.lifecycle_helpers import CUSTOMER, Clock, ingest, make_runtime, outbox
from tests.mail_samples import KINDS, TOKEN, mails_page, render_sample, sample_case

REPO = Path(__file__).resolve().parent.parent
STATUS_NAMES = {
    "en": {"Closed": "Closed", "Escalated": "Escalated"},
    "de": {"Closed": "Geschlossen", "Escalated": "Eskaliert"},
}


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("kind", KINDS)
def test_kind_shows_case_fields(kind: str, language: str) -> None:
    mail = render_sample(kind, language)
    for body in (mail.text, mail.html):
        assert "00000042" in body
        assert "Label printer in the warehouse stopped" in body
        assert "https://portal.desk.example.com/cases/00000042" in body
        assert TOKEN in body
        assert "Standard" in body
    assert TOKEN in mail.subject
    assert "<img" not in mail.html


@pytest.mark.parametrize("language", ["en", "de"])
def test_status_shown_in_language(language: str) -> None:
    mail = render_sample("survey", language)
    assert STATUS_NAMES[language]["Closed"] in mail.text
    assert STATUS_NAMES[language]["Closed"] in mail.html


@pytest.mark.parametrize("language", ["en", "de"])
def test_customer_mail_has_command_links(language: str) -> None:
    word = {"en": "ESCALATE", "de": "ESKALIEREN"}[language]
    mail = render_sample("comment_update", language)
    assert f"mailto:support@desk.example.com?subject={word}" in mail.text
    assert f'href="mailto:support@desk.example.com?subject={word}' in mail.html


@pytest.mark.parametrize("kind", ["escalation_notice", "bounce_notice", "survey"])
def test_staff_and_closed_mail_have_no_command_links(kind: str) -> None:
    mail = render_sample(kind)
    assert "subject=CLOSE" not in mail.text
    assert "subject=ESCALATE" not in mail.text


def test_survey_links_carry_ratings() -> None:
    mail = render_sample("survey")
    for rating in range(1, 6):
        assert f"subject=Rating%20{rating}%20" in mail.text


def test_mails_page_is_current() -> None:
    page = (REPO / "docs" / "mails.md").read_text(encoding="utf-8")
    assert page == mails_page(), "run: python -m tests.mail_samples > docs/mails.md"


def test_thread_index_shares_conversation_header() -> None:
    case = sample_case("In Progress")
    first = base64.b64decode(outlook_headers(case, case.opened_at)["Thread-Index"])
    later_time = case.opened_at + timedelta(days=3)
    later = base64.b64decode(outlook_headers(case, later_time)["Thread-Index"])
    assert len(first) == 27
    assert len(later) == 27
    assert first[0] == 1
    assert first[:22] == later[:22]
    # The header's time is the FILETIME of the opening, without its low 24 bits.
    assert int.from_bytes(first[1:6], "big") == filetime(case.opened_at) >> 24
    # The child block's 31-bit delta (code 0) counts units of 2**18 ticks.
    delta_units = (int.from_bytes(later[22:], "big") >> 8) & 0x7FFFFFFF
    expected = (filetime(later_time) - (filetime(case.opened_at) >> 24 << 24)) >> 18
    assert delta_units == expected
    other = sample_case("In Progress")
    other.token = "ref_00DExample_0ther:ref"
    assert (
        base64.b64decode(outlook_headers(other, case.opened_at)["Thread-Index"])[:22]
        != first[:22]
    )


def test_sent_mail_carries_outlook_headers(tmp_path: Path) -> None:
    start = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    runtime = make_runtime(tmp_path / "gw", Clock(start))
    ingest(runtime, build_mail(sender=CUSTOMER, subject="Re: AW: Scanner offline"))
    [row] = outbox(runtime)
    message = message_from_bytes(compose_row(row), policy=policy.default)
    assert message["Thread-Topic"] == "Scanner offline"
    index = base64.b64decode(str(message["Thread-Index"]))
    assert len(index) == 27
    assert message["References"] is not None
