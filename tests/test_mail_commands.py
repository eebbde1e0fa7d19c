"""Commands in customer replies: close, escalate, follow, unfollow; Critical cases."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gateway.cases import get_case
from gateway.db import session_scope
from gateway.lifecycle.commands import Command, find_command
from gateway.lifecycle.events import change_severity
from gateway.models import Severity
from gateway.outbound.outbox import OutboxWriter
from tests.conftest import build_mail
from tests.lifecycle_helpers import (
    CUSTOMER,
    Clock,
    ingest,
    load_case,
    make_runtime,
    outbox,
    reply_to,
)

START = datetime.fromisoformat("2026-12-07T09:30:00+01:00")
MANAGERS = (
    "[escalation]\n"
    'level_1 = "lead@staff.example.com"\n'
    'level_2 = "senior@staff.example.com"\n'
    'critical = "oncall@staff.example.com"\n'
)


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Re: [Case 00000001] Printer ref_a1_b2:ref", "CLOSE", Command.CLOSE),
        ("CLOSE [Case 00000001] ref_a1_b2:ref", "", Command.CLOSE),
        ("AW: [Fall 00000001] Drucker", "Bitte schließen.", Command.CLOSE),
        ("Re: x", "\n\n  Escalate!\nwe waited a week", Command.ESCALATE),
        ("ESKALIEREN [Fall 00000001] ref_a1_b2:ref", "", Command.ESCALATE),
        ("Re: x", "follow", Command.FOLLOW),
        ("Re: x", "Nicht mehr folgen", Command.UNFOLLOW),
        ("Re: x", "Close call: the printer is down again", None),
        ("Re: Please close the gap in the report", "It is still wrong.", None),
        ("Re: x", "Thanks.\nclose", None),
    ],
)
def test_find_command(subject: str, text: str, expected: Command | None) -> None:
    assert find_command(subject, text) is expected


def test_close_command_closes_with_survey(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Login fails"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    assert "mailto:help@desk.example.com?subject=CLOSE" in confirmation.text_body
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close\n\nIt works now."))
    assert load_case(runtime, opened.case_number).status == "Closed"
    assert len(outbox(runtime, "survey")) == 1


def test_escalate_twice_notifies_each_level(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START), managers=MANAGERS)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Invoices wrong"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Escalate"))
    case = load_case(runtime, opened.case_number)
    assert case.status == "Escalated"
    assert case.escalation_level == 1
    ingest(runtime, reply_to(confirmation, CUSTOMER, "eskalieren"))
    assert load_case(runtime, opened.case_number).escalation_level == 2
    notices = outbox(runtime, "escalation_notice")
    assert [row.to for row in notices] == [
        ["lead@staff.example.com"],
        ["senior@staff.example.com"],
    ]
    assert notices[1].subject.startswith("Escalation to level 2:")
    assert "mailto:" not in notices[0].text_body
    confirmations = outbox(runtime, "escalation_confirmation")
    assert [row.to for row in confirmations] == [["erika@kunde.example.org"]] * 2
    assert "Escalation level: 2 of 4" in confirmations[1].text_body


def test_case_subject_is_no_command(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START), managers=MANAGERS)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Eskalation"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    # "AW: [Case 00000001] Eskalation ref_..:ref" only quotes the case's subject.
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Hier ist das Protokoll."))
    case = load_case(runtime, opened.case_number)
    assert case.status == "Unassigned"
    assert case.escalation_level == 0
    assert outbox(runtime, "escalation_notice") == []
    # The command itself still works, in the text or in a subject of its own.
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Eskalieren"))
    assert load_case(runtime, opened.case_number).escalation_level == 1
    token = load_case(runtime, opened.case_number).token
    link_subject = f"ESKALIEREN [Case {opened.case_number}] {token}"
    ingest(runtime, reply_to(confirmation, CUSTOMER, "", subject=link_subject))
    assert load_case(runtime, opened.case_number).escalation_level == 2


def test_close_link_on_closed_case(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Login fails"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))
    assert load_case(runtime, opened.case_number).status == "Closed"

    # The CLOSE link of an older mail, used after the case closed.
    token = load_case(runtime, opened.case_number).token
    link_subject = f"CLOSE [Case {opened.case_number}] {token}"
    clicked = build_mail(
        sender=CUSTOMER, subject=link_subject, body=f"CLOSE\n\n{token}\n"
    )
    outcome = ingest(runtime, clicked)
    assert outcome.case_number == opened.case_number
    assert len(outbox(runtime, "confirmation")) == 1
    assert len(outbox(runtime, "survey")) == 1


def test_unfollow_on_closed_case(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    colleague = "Max Muster <max@kunde.example.org>"
    opened = ingest(
        runtime, build_mail(sender=CUSTOMER, subject="VPN drops", cc=colleague)
    )
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))

    outcome = ingest(runtime, reply_to(confirmation, colleague, "Unfollow"))
    assert outcome.case_number == opened.case_number
    assert load_case(runtime, opened.case_number).additional_recipients == []
    assert len(outbox(runtime, "confirmation")) == 1


def test_follow_and_unfollow(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="VPN drops"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    colleague = "Max Muster <max@kunde.example.org>"
    ingest(runtime, reply_to(confirmation, colleague, "FOLLOW"))
    case = load_case(runtime, opened.case_number)
    assert case.additional_recipients == ["max@kunde.example.org"]
    assert case.status == "Unassigned"
    ingest(runtime, reply_to(confirmation, colleague, "unfollow"))
    assert load_case(runtime, opened.case_number).additional_recipients == []


def test_critical_case_notifies_manager(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START), managers=MANAGERS)
    opened = ingest(
        runtime, build_mail(sender=CUSTOMER, subject="[Critical] ERP server down")
    )
    assert opened.case_number is not None
    case = load_case(runtime, opened.case_number)
    assert case.severity == "Critical"
    # 2 business hours from Mon 09:30.
    assert case.first_response_due == datetime.fromisoformat(
        "2026-12-07T11:30:00+01:00"
    )
    [notice] = outbox(runtime, "escalation_notice")
    assert notice.to == ["oncall@staff.example.com"]
    assert notice.subject.startswith("Critical case opened:")


def test_standard_case_sends_no_manager_notice(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START), managers=MANAGERS)
    ingest(runtime, build_mail(sender=CUSTOMER, subject="Question on reports"))
    assert outbox(runtime, "escalation_notice") == []


def test_severity_raised_to_critical(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock, managers=MANAGERS)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Orders stuck"))
    assert opened.case_number is not None
    clock.now = datetime.fromisoformat("2026-12-07T10:00:00+01:00")
    with session_scope(runtime.engine) as session:
        case = get_case(session, opened.case_number)
        notify = OutboxWriter(session, runtime.settings, runtime.renderer)
        change_severity(
            session, runtime.settings, case, Severity.CRITICAL, notify, clock.now
        )
    case = load_case(runtime, opened.case_number)
    assert case.severity == "Critical"
    # Both clocks start at the opening, Mon 09:30: 2 business hours.
    due = datetime.fromisoformat("2026-12-07T11:30:00+01:00")
    assert case.first_response_due == due
    assert case.next_response_due == due
    [notice] = outbox(runtime, "escalation_notice")
    assert notice.to == ["oncall@staff.example.com"]
