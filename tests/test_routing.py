"""Routing in-process: bounces, automatic replies, the rate limit, the sender check.

Also damaged and forged tokens, and the rule for mail that names several cases.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.config import load_settings
from gateway.db import session_scope
from gateway.models import (
    BounceRecord,
    BouncingAddress,
    Case,
    CaseStatus,
    Comment,
    InboundMessage,
)
from gateway.runtime import Runtime
from tests.conftest import STAFF_DOMAIN, SUPPORT, build_mail, make_env
from tests.inbound.bounce_fixtures import dsn
from tests.test_processing import case_of, ingest, outbox

CUSTOMER = "erika@kunde.example.org"


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    result = Runtime(load_settings(make_env(tmp_path / "gw").config))
    result.prepare_store()
    return result


def open_case(runtime: Runtime, **mail: str) -> tuple[str, str]:
    """Open a case by mail; return its number and token."""
    outcome = ingest(runtime, build_mail(**mail))
    assert outcome.case_number is not None
    return outcome.case_number, case_of(runtime, outcome.case_number).token


def comments(runtime: Runtime, number: str) -> list[Comment]:
    with Session(runtime.engine) as session:
        query = select(Comment).where(Comment.case_id == int(number))
        return list(session.exec(query).all())


def bounce_state(runtime: Runtime, address: str) -> BouncingAddress | None:
    with Session(runtime.engine) as session:
        query = select(BouncingAddress).where(BouncingAddress.email == address)
        return session.exec(query).first()


def report_about(
    recipient: str, returned_id: str, status: str = "5.1.1", **options: str
) -> bytes:
    """Build a delivery report with a Message-ID of its own."""
    report_id = f"<{uuid.uuid4().hex}@mx.kunde.example.org>"
    return dsn(
        recipient,
        status,
        returned_message_id=returned_id,
        report_id=report_id,
        **options,
    )


# ----------------------------------------------------------------- bounces


def test_bounce_of_notification_notes_case(runtime: Runtime) -> None:
    number, _token = open_case(runtime)
    [confirmation] = outbox(runtime)
    outcome = ingest(
        runtime, report_about(CUSTOMER, confirmation.message_id), mail_from=""
    )
    assert outcome.state == "ignored"
    assert outcome.reason == "bounce"
    assert outcome.bounce is not None
    assert outcome.bounce["recipients"] == [CUSTOMER]
    assert outcome.bounce["status"] == "5.1.1"
    assert outcome.bounce["permanent"] is True
    assert outcome.bounce["case"] == number
    assert outcome.bounce["counted"] == [CUSTOMER]
    notes = [c for c in comments(runtime, number) if c.author_kind == "system"]
    assert len(notes) == 1
    assert CUSTOMER in notes[0].new_text
    assert len(outbox(runtime)) == 1
    with Session(runtime.engine) as session:
        [record] = session.exec(select(BounceRecord)).all()
    assert record.recipient == CUSTOMER
    assert record.case_id == int(number)


def test_notifications_stop_after_bounce_limit(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    [confirmation] = outbox(runtime)
    limit = runtime.settings.routing.bounce_limit
    for _ in range(limit):
        ingest(runtime, report_about(CUSTOMER, confirmation.message_id), mail_from="")
    state = bounce_state(runtime, CUSTOMER)
    assert state is not None
    assert state.permanent_failures == limit
    staff = ingest(
        runtime,
        build_mail(
            sender=f"Sam <sam@{STAFF_DOMAIN}>",
            subject=f"Re: Drucker {token}",
            body="Bitte den Dienst neu starten.\n",
        ),
    )
    assert staff.state == "processed"
    assert [m.kind for m in outbox(runtime)] == ["confirmation"]


def test_delay_notice_recorded_not_counted(runtime: Runtime) -> None:
    open_case(runtime)
    [confirmation] = outbox(runtime)
    raw = report_about(
        CUSTOMER, confirmation.message_id, status="4.4.1", action="delayed"
    )
    outcome = ingest(runtime, raw, mail_from="")
    assert outcome.reason == "bounce"
    assert outcome.bounce is not None
    assert outcome.bounce["permanent"] is False
    assert outcome.bounce["counted"] == []
    state = bounce_state(runtime, CUSTOMER)
    assert state is not None
    assert state.permanent_failures == 0
    assert state.delays == 1


def test_bounce_for_address_never_mailed_not_counted(runtime: Runtime) -> None:
    open_case(runtime)
    [confirmation] = outbox(runtime)
    raw = report_about("victim@kunde.example.org", confirmation.message_id)
    outcome = ingest(runtime, raw, mail_from="")
    assert outcome.reason == "bounce"
    assert outcome.bounce is not None
    assert outcome.bounce["counted"] == []
    assert bounce_state(runtime, "victim@kunde.example.org") is None


def test_bounce_found_by_token_in_returned_mail(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    raw = report_about(
        CUSTOMER,
        "<elsewhere-1@mail.other.example.net>",
        returned_subject=f"Case updated {token}",
    )
    outcome = ingest(runtime, raw, mail_from="")
    assert outcome.bounce is not None
    assert outcome.bounce["case"] == number
    assert outcome.bounce["counted"] == [CUSTOMER]


def test_mail_from_address_resets_bounce_count(runtime: Runtime) -> None:
    _number, token = open_case(runtime)
    [confirmation] = outbox(runtime)
    ingest(runtime, report_about(CUSTOMER, confirmation.message_id), mail_from="")
    ingest(runtime, build_mail(subject=f"Re: Drucker {token}", body="Geht wieder.\n"))
    state = bounce_state(runtime, CUSTOMER)
    assert state is not None
    assert state.permanent_failures == 0


def test_bounce_never_answered_nor_commented(runtime: Runtime) -> None:
    number, _token = open_case(runtime)
    [confirmation] = outbox(runtime)
    ingest(runtime, report_about(CUSTOMER, confirmation.message_id), mail_from="")
    people = [c for c in comments(runtime, number) if c.author_kind != "system"]
    assert len(people) == 1
    with Session(runtime.engine) as session:
        assert len(session.exec(select(Case)).all()) == 1


# --------------------------------------------------------- automatic replies


def test_auto_reply_notes_case_without_change(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    with session_scope(runtime.engine) as session:
        case = session.get(Case, int(number))
        assert case is not None
        case.status = CaseStatus.WAITING_ON_CUSTOMER.value
        session.add(case)
    outcome = ingest(
        runtime,
        build_mail(
            subject=f"Automatische Antwort: Drucker {token}",
            body="Ich bin bis Montag nicht im Büro.\n",
        ),
    )
    assert outcome.state == "ignored"
    assert outcome.reason == "auto_reply"
    assert outcome.case_number == number
    kinds = [c.author_kind for c in comments(runtime, number)]
    assert kinds == ["customer", "system"]
    assert case_of(runtime, number).status == CaseStatus.WAITING_ON_CUSTOMER
    assert len(outbox(runtime)) == 1


def test_stranger_auto_reply_adds_no_note(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    outcome = ingest(
        runtime,
        build_mail(
            sender="Bot <bot@elsewhere.example.net>",
            subject=f"Out of Office: {token}",
        ),
    )
    assert outcome.reason == "auto_reply"
    assert outcome.case_number is None
    assert len(comments(runtime, number)) == 1


def test_auto_reply_to_closed_case_opens_nothing(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    with session_scope(runtime.engine) as session:
        case = session.get(Case, int(number))
        assert case is not None
        case.status = CaseStatus.CLOSED.value
        session.add(case)
    outcome = ingest(
        runtime,
        build_mail(
            subject=f"Re: Umfrage {token}",
            extra_headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    assert outcome.reason == "auto_reply"
    assert case_of(runtime, number).status == CaseStatus.CLOSED
    with Session(runtime.engine) as session:
        assert len(session.exec(select(Case)).all()) == 1
    assert len(outbox(runtime)) == 1


# ----------------------------------------------------------------- loops


def test_rate_limit_makes_loop_by_pipe(runtime: Runtime) -> None:
    runtime.settings.routing.rate_limit_count = 3
    states = [
        ingest(
            runtime,
            build_mail(subject=f"Frage {n}", date=formatdate()),
            mail_from=CUSTOMER,
        ).state
        for n in range(5)
    ]
    assert states == ["processed"] * 3 + ["ignored"] * 2
    with Session(runtime.engine) as session:
        rows = session.exec(select(InboundMessage)).all()
    assert [r.reason for r in rows][3:] == ["loop", "loop"]
    assert "rate limit" in rows[4].error
    other = ingest(runtime, build_mail(sender="Max <max@kunde.example.org>"))
    assert other.state == "processed"


def test_rate_limit_counts_from_header_without_envelope(runtime: Runtime) -> None:
    runtime.settings.routing.rate_limit_count = 2
    reasons = [
        ingest(runtime, build_mail(subject=f"Frage {n}", date=formatdate())).reason
        for n in range(3)
    ]
    assert reasons == ["", "", "loop"]


def test_old_mail_from_one_sender_is_no_loop(runtime: Runtime) -> None:
    # A mailbox read for the first time: the mails were written days ago.
    runtime.settings.routing.rate_limit_count = 2
    old = [
        ingest(runtime, build_mail(subject=f"Frage {n}"), mail_from=CUSTOMER).state
        for n in range(4)
    ]
    fresh = [
        ingest(
            runtime,
            build_mail(subject=f"Neu {n}", date=formatdate()),
            mail_from=CUSTOMER,
        ).reason
        for n in range(3)
    ]

    assert old == ["processed"] * 4
    assert fresh == ["", "", "loop"]


# ------------------------------------------------------------ sender check


def test_stranger_forwarding_notification_held(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    [confirmation] = outbox(runtime)
    forwarded = build_mail(
        sender="Mallory <mallory@elsewhere.example.net>",
        subject=f"Fwd: {confirmation.subject}",
        body=(
            "Bitte schliessen Sie den Fall.\n\n"
            "---------- Forwarded message ---------\n"
            f"{confirmation.text_body}\n"
        ),
        in_reply_to=confirmation.message_id,
    )
    outcome = ingest(runtime, forwarded)
    assert outcome.state == "unmatched"
    assert outcome.reason == "unknown_sender"
    assert len(comments(runtime, number)) == 1
    with Session(runtime.engine) as session:
        row = session.get(InboundMessage, outcome.inbound_id)
        assert row is not None
        assert row.candidate_case_id == int(number)
        assert token in confirmation.subject
    assert len(outbox(runtime)) == 1


def test_colleague_of_account_domain_may_post(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    outcome = ingest(
        runtime,
        build_mail(
            sender="Max <max@kunde.example.org>", subject=f"Re: Drucker {token}"
        ),
    )
    assert outcome.state == "processed"
    assert outcome.case_number == number


def test_public_domain_does_not_admit_strangers(runtime: Runtime) -> None:
    _number, token = open_case(runtime, sender="Erika <erika.b@gmail.com>")
    outcome = ingest(
        runtime,
        build_mail(sender="Fremd <someone@gmail.com>", subject=f"Re: {token}"),
    )
    assert outcome.reason == "unknown_sender"


def test_additional_recipient_may_post(runtime: Runtime) -> None:
    number, token = open_case(runtime, cc="Partner <ops@partner.example.net>")
    outcome = ingest(
        runtime,
        build_mail(sender="Ops <ops@partner.example.net>", subject=f"Re: {token}"),
    )
    assert outcome.case_number == number
    assert outcome.state == "processed"


def test_staff_may_post_to_any_case(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    outcome = ingest(
        runtime,
        build_mail(sender=f"Sam <sam@{STAFF_DOMAIN}>", subject=f"Re: {token}"),
    )
    assert outcome.case_number == number


def test_forged_token_never_reaches_case(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    org_part = token.split("_")[1]
    forged = f"ref_{org_part}_{'Q' * len(token.split('_')[2][:-4])}:ref"
    assert forged != token
    outcome = ingest(
        runtime,
        build_mail(sender="Max <max@kunde.example.org>", subject=f"Re: {forged}"),
    )
    assert outcome.state == "unmatched"
    assert outcome.reason == "unknown_token"
    assert outcome.case_number is None
    assert len(comments(runtime, number)) == 1
    assert len(outbox(runtime)) == 1


def test_other_installation_token_opens_case(runtime: Runtime) -> None:
    outcome = ingest(
        runtime, build_mail(subject="Re: Rechnung ref_00DOther1_AbCdEfGhIj:ref")
    )
    assert outcome.matched_by == "new"


# --------------------------------------------------------------- damaged tokens


def damaged_variants(token: str) -> dict[str, tuple[str, str]]:
    """Return (text body, html body) pairs that carry ``token`` damaged."""
    prefix, org, rest = token.split("_", 2)
    case_part = rest[: -len(":ref")]
    half = len(case_part) // 2
    return {
        "wrapped": (f"Danke.\n\n> {token[:12]}\n> {token[12:]}\n", ""),
        "soft_break": (f"Danke. {token[:15]}=\n{token[15:]}\n", ""),
        "brackets": (f"Danke. [{token}]\n", ""),
        "no_prefix": (f"Danke. {org}_{case_part}:ref\n", ""),
        "no_suffix": (f"Danke. ref_{org}_{case_part}\n", ""),
        "entity": ("", f"<p>Danke.</p><p>ref&#95;{org}&#95;{case_part}:ref</p>"),
        "tag_inside": (
            "",
            f"<p>Danke.</p><p>{prefix}_{org}_<b>{case_part[:half]}</b>"
            f"{case_part[half:]}:ref</p>",
        ),
    }


def html_mail(html: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Erika <{CUSTOMER}>"
    mail["To"] = SUPPORT
    mail["Subject"] = "Re: Drucker"
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@kunde.example.org>"
    mail.set_content(html, subtype="html")
    return mail.as_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        "wrapped",
        "soft_break",
        "brackets",
        "no_prefix",
        "no_suffix",
        "entity",
        "tag_inside",
    ],
)
def test_damaged_token_still_matches(runtime: Runtime, damage: str) -> None:
    number, token = open_case(runtime)
    text, html = damaged_variants(token)[damage]
    raw = html_mail(html) if html else build_mail(subject="Re: Drucker", body=text)
    outcome = ingest(runtime, raw)
    assert outcome.state == "processed"
    assert outcome.case_number == number
    assert outcome.matched_by in ("body_token", "quoted_token")


def test_token_in_quote_only_matched_as_quoted(runtime: Runtime) -> None:
    number, token = open_case(runtime)
    body = (
        "Danke, geht wieder.\n\n"
        "On Fri, 4 Dec 2026 at 09:00, Customer Support wrote:\n"
        f"> Ihr Fall {token}\n"
    )
    outcome = ingest(runtime, build_mail(subject="Re: Drucker", body=body))
    assert outcome.case_number == number
    assert outcome.matched_by == "quoted_token"


# ------------------------------------------------------------ several tokens


def test_first_case_sender_may_post_to_wins(runtime: Runtime) -> None:
    _other, other_token = open_case(runtime, sender="Jon <jon@anders.example.net>")
    mine, my_token = open_case(runtime)
    outcome = ingest(
        runtime, build_mail(subject=f"Re: {other_token} und {my_token}", body="x\n")
    )
    assert outcome.case_number == mine
    assert outcome.matched_by == "subject_token"


def test_subject_token_beats_body_token(runtime: Runtime) -> None:
    first, first_token = open_case(runtime)
    _second, second_token = open_case(runtime, subject="Zweiter Fall")
    outcome = ingest(
        runtime,
        build_mail(subject=f"Re: {first_token}", body=f"Siehe auch {second_token}\n"),
    )
    assert outcome.case_number == first
    assert outcome.matched_by == "subject_token"


# ------------------------------------------------------------ outbound side


def test_notification_carries_loop_headers(runtime: Runtime) -> None:
    from email import message_from_bytes, policy

    from gateway.outbound.outbox import compose_row

    open_case(runtime)
    [row] = outbox(runtime)
    raw = compose_row(row)
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["X-Case-Gateway"].startswith("confirmation; case=")
    domain = runtime.settings.desk.message_id_domain
    assert str(mail["Message-ID"]).endswith(f"@{domain}>")
    echoed = ingest(runtime, raw)
    assert echoed.state == "ignored"
    assert echoed.reason == "loop"
    assert len(outbox(runtime)) == 1


@pytest.mark.parametrize("kind", ["bounce", "auto_reply", "loop"])
def test_machine_mail_gets_no_answer(runtime: Runtime, kind: str) -> None:
    number, token = open_case(runtime)
    [confirmation] = outbox(runtime)
    mails = {
        "bounce": report_about(CUSTOMER, confirmation.message_id),
        "auto_reply": build_mail(
            subject=f"Re: {token}", extra_headers={"X-Autoreply": "yes"}
        ),
        "loop": build_mail(
            subject=f"Re: {token}",
            message_id=f"<x1@{runtime.settings.desk.message_id_domain}>",
        ),
    }
    outcome = ingest(runtime, mails[kind], mail_from="" if kind == "bounce" else None)
    assert outcome.reason == kind
    assert len(outbox(runtime)) == 1
    people = [c for c in comments(runtime, number) if c.author_kind != "system"]
    assert len(people) == 1
