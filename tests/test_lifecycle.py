"""A case's whole life with an injected clock: answers, timers, reopening, survey."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from gateway.db import read_only
from gateway.lifecycle.reports import is_overdue, survey_views
from gateway.lifecycle.timers import run_tick
from gateway.views import case_view
from tests.conftest import build_mail
from tests.lifecycle_helpers import (
    CUSTOMER,
    STAFF,
    Clock,
    ingest,
    load_case,
    make_runtime,
    outbox,
    reply_to,
)

# Monday 7 December 2026, 09:30 in Berlin.
START = datetime.fromisoformat("2026-12-07T09:30:00+01:00")


def test_full_case_life(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock)

    # The first mail opens the case.
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Scanner offline"))
    number = opened.case_number
    assert number is not None
    case = load_case(runtime, number)
    assert case.status == "Unassigned"
    # Standard: 16 business hours from Mon 09:30 = Wed 09:30.
    assert case.first_response_due == datetime.fromisoformat(
        "2026-12-09T09:30:00+01:00"
    )
    [confirmation] = outbox(runtime, "confirmation")

    # Staff answer: Waiting on Customer.
    clock.now = START + timedelta(hours=1)
    ingest(runtime, reply_to(confirmation, STAFF, "Please restart the scanner."))
    case = load_case(runtime, number)
    assert case.status == "Waiting on Customer"
    assert case.next_response_due is None
    [update] = outbox(runtime, "comment_update")

    # Six days of silence change nothing; the seventh moves it.
    answered = clock.now
    assert run_tick(runtime, answered + timedelta(days=6)).pending == []
    first_pass = run_tick(runtime, answered + timedelta(days=7, minutes=1))
    assert first_pass.pending == [number]
    assert run_tick(runtime, answered + timedelta(days=7, minutes=2)).pending == []
    assert load_case(runtime, number).status == "Pending Closure"
    [pending_mail] = outbox(runtime, "pending_closure")
    assert "14 days" in pending_mail.text_body

    # A customer reply reopens the case.
    clock.now = answered + timedelta(days=8)
    ingest(runtime, reply_to(pending_mail, CUSTOMER, "Still offline after restart."))
    assert load_case(runtime, number).status == "In Progress"
    [reopened] = outbox(runtime, "reopened")
    assert number in reopened.subject

    # Staff answer again, then silence until the case closes.
    clock.now = answered + timedelta(days=8, hours=1)
    ingest(runtime, reply_to(update, STAFF, "A new driver is attached."))
    second_answer = clock.now
    assert run_tick(runtime, second_answer + timedelta(days=7, minutes=1)).pending
    pending_since = second_answer + timedelta(days=7, minutes=1)
    assert run_tick(runtime, pending_since + timedelta(days=13)).closed == []
    closing = run_tick(runtime, pending_since + timedelta(days=14))
    assert closing.closed == [number]
    assert run_tick(runtime, pending_since + timedelta(days=14)).closed == []
    assert load_case(runtime, number).status == "Closed"
    [survey_mail] = outbox(runtime, "survey")
    assert "1 (not at all) to 5" in survey_mail.text_body
    assert len(outbox(runtime, "pending_closure")) == 2

    # The survey answer is recorded and opens no case.
    clock.now = pending_since + timedelta(days=15)
    answer = ingest(
        runtime, reply_to(survey_mail, CUSTOMER, "4\n\nQuick help, thank you.")
    )
    assert answer.case_number == number
    assert load_case(runtime, number).status == "Closed"
    with Session(read_only(runtime.engine)) as session:
        [survey] = survey_views(session)
        view = case_view(
            session, runtime.settings, load_case(runtime, number), comments=False
        )
    assert survey["case"] == number
    assert survey["rating"] == 4
    assert survey["comment"] == "Quick help, thank you."
    assert survey["answered_by"] == "erika@kunde.example.org"
    assert len(outbox(runtime, "confirmation")) == 1

    # A later reply to the closed case opens a linked case.
    clock.now = pending_since + timedelta(days=20)
    linked = ingest(
        runtime, reply_to(survey_mail, CUSTOMER, "The scanner is offline again.")
    )
    assert linked.matched_by == "new"
    assert linked.case_number != number
    assert linked.case_number is not None
    new_case = load_case(runtime, linked.case_number)
    assert new_case.previous_case_id == int(number)
    confirmations = outbox(runtime, "confirmation")
    assert len(confirmations) == 2
    assert f"Your mail replied to case {number}" in confirmations[1].text_body
    assert number in confirmations[1].html_body

    # The history records every move with its cause.
    steps = [(entry["from"], entry["to"], entry["cause"]) for entry in view["history"]]
    assert steps == [
        (None, "Unassigned", "comment"),
        ("Unassigned", "Waiting on Customer", "comment"),
        ("Waiting on Customer", "Pending Closure", "timer"),
        ("Pending Closure", "In Progress", "comment"),
        ("In Progress", "Waiting on Customer", "comment"),
        ("Waiting on Customer", "Pending Closure", "timer"),
        ("Pending Closure", "Closed", "timer"),
    ]
    with Session(read_only(runtime.engine)) as session:
        linked_view = case_view(session, runtime.settings, new_case, comments=False)
    assert linked_view["previous_case"] == number
    assert linked_view["first_response_due"] is not None


def test_unanswered_case_becomes_overdue(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Payroll export"))
    assert opened.case_number is not None
    case = load_case(runtime, opened.case_number)
    # Due Wed 9 Dec 09:30 (16 business hours from Mon 09:30).
    assert not is_overdue(case, datetime.fromisoformat("2026-12-09T09:29:00+01:00"))
    assert is_overdue(case, datetime.fromisoformat("2026-12-09T09:31:00+01:00"))
    [confirmation] = outbox(runtime, "confirmation")
    clock.now = datetime.fromisoformat("2026-12-08T10:00:00+01:00")
    ingest(runtime, reply_to(confirmation, STAFF, "We are on it."))
    answered = load_case(runtime, opened.case_number)
    assert not is_overdue(answered, datetime.fromisoformat("2026-12-20T10:00:00+01:00"))
    assert answered.first_response_at == clock.now
    # The customer's next reply starts the clock again: Tue 10:30 + 16 h.
    clock.now = datetime.fromisoformat("2026-12-08T10:30:00+01:00")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Thanks, one more detail."))
    replied = load_case(runtime, opened.case_number)
    assert replied.next_response_due == datetime.fromisoformat(
        "2026-12-10T10:30:00+01:00"
    )


def test_reply_to_linked_case_lands_on_it(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Login fails"))
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))
    old_token = load_case(runtime, str(opened.case_number)).token

    # The reply to the closed case carries its marker and token in the subject.
    linked = ingest(runtime, reply_to(confirmation, CUSTOMER, "It fails again."))
    assert linked.matched_by == "new"
    new_case = load_case(runtime, str(linked.case_number))
    assert old_token not in new_case.subject
    assert f"[Case {opened.case_number}]" not in new_case.subject
    assert new_case.subject == "Login fails"

    # The customer's reply to the linked case's confirmation is a comment on it.
    linked_confirmation = outbox(runtime, "confirmation")[-1]
    assert old_token not in linked_confirmation.subject
    reply = ingest(runtime, reply_to(linked_confirmation, CUSTOMER, "More details."))
    assert reply.matched_by == "subject_token"
    assert reply.case_number == linked.case_number


def test_follow_up_keeps_earlier_due_time(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock)
    opened = ingest(
        runtime, build_mail(sender=CUSTOMER, subject="[Critical] Orders stuck")
    )
    assert opened.case_number is not None
    # Critical: 2 business hours from Mon 09:30.
    due = datetime.fromisoformat("2026-12-07T11:30:00+01:00")
    assert load_case(runtime, opened.case_number).next_response_due == due
    [confirmation] = outbox(runtime, "confirmation")

    # A reminder before staff answered moves no deadline.
    clock.now = datetime.fromisoformat("2026-12-07T11:20:00+01:00")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Any news?"))
    case = load_case(runtime, opened.case_number)
    assert case.next_response_due == due
    assert is_overdue(case, datetime.fromisoformat("2026-12-07T12:00:00+01:00"))
    clock.now = datetime.fromisoformat("2026-12-07T11:25:00+01:00")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Escalate"))
    assert load_case(runtime, opened.case_number).next_response_due == due

    # Once staff answered, the next customer reply starts a new clock.
    clock.now = datetime.fromisoformat("2026-12-07T12:10:00+01:00")
    ingest(runtime, reply_to(confirmation, STAFF, "We restarted the queue."))
    clock.now = datetime.fromisoformat("2026-12-07T13:00:00+01:00")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Stuck again."))
    assert load_case(runtime, opened.case_number).next_response_due == (
        datetime.fromisoformat("2026-12-07T15:00:00+01:00")
    )


def test_staff_mail_to_closed_case(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Login fails"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))
    [survey_mail] = outbox(runtime, "survey")

    late = ingest(runtime, reply_to(survey_mail, STAFF, "The fix is in release 4.2."))
    assert late.case_number == opened.case_number
    case = load_case(runtime, opened.case_number)
    assert case.status == "Closed"
    assert len(outbox(runtime, "confirmation")) == 1
    [update] = outbox(runtime, "comment_update")
    assert update.to == ["erika@kunde.example.org"]
    assert "release 4.2" in update.text_body
    assert "mailto:" not in update.text_body
    with Session(read_only(runtime.engine)) as session:
        view = survey_views(session)
    assert view[0]["answered_at"] is None
