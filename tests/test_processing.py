"""Processing stored mail in-process: routing, duplicates, machine mail, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.config import load_settings
from gateway.db import session_scope
from gateway.inbound.process import process_inbound
from gateway.inbound.spool import INLINE_LIMIT, IncomingMail, store_mails
from gateway.models import Case, CaseStatus, InboundMessage, OutboundMessage
from gateway.runtime import Runtime
from tests.conftest import (
    MESSAGE_ID_DOMAIN,
    STAFF_DOMAIN,
    SUPPORT,
    build_mail,
    make_env,
)


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    env = make_env(tmp_path / "gw")
    result = Runtime(load_settings(env.config))
    result.prepare_store()
    return result


def ingest(runtime: Runtime, raw: bytes, mail_from: str | None = None):  # type: ignore[no-untyped-def]
    envelope = {} if mail_from is None else {"mail_from": mail_from}
    [inbound_id] = store_mails(
        runtime.engine,
        runtime.settings.store.data_dir,
        [IncomingMail(raw, "test", envelope)],
    )
    return process_inbound(runtime, inbound_id)


def outbox(runtime: Runtime) -> list[OutboundMessage]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(OutboundMessage)).all())


def case_of(runtime: Runtime, number: str) -> Case:
    with Session(runtime.engine) as session:
        case = session.get(Case, int(number))
        assert case is not None
        return case


def test_new_mail_opens_case_with_confirmation(runtime: Runtime) -> None:
    outcome = ingest(runtime, build_mail(cc="Max Muster <max@kunde.example.org>"))
    assert outcome.state == "processed"
    assert outcome.matched_by == "new"
    [queued] = outbox(runtime)
    assert queued.kind == "confirmation"
    assert queued.to == ["erika@kunde.example.org"]
    assert queued.cc == ["max@kunde.example.org"]
    assert queued.raw is None
    assert case_of(runtime, outcome.case_number).status == CaseStatus.UNASSIGNED


def test_redelivery_with_other_trace_headers_is_duplicate(runtime: Runtime) -> None:
    raw = build_mail(message_id="<same@kunde.example.org>")
    first = ingest(runtime, raw)
    again = ingest(runtime, b"Received: from relay2.kunde.example.org\r\n" + raw)
    assert again.state == "ignored"
    assert again.reason == "duplicate"
    assert again.duplicate_of == first.inbound_id
    assert again.case_number == first.case_number
    assert len(outbox(runtime)) == 1


def test_same_message_id_other_body_is_not_duplicate(runtime: Runtime) -> None:
    ingest(
        runtime,
        build_mail(message_id="<reused@kunde.example.org>", body="Erste Frage.\n"),
    )
    second = ingest(
        runtime, build_mail(message_id="<reused@kunde.example.org>", body="Zweite.\n")
    )
    assert second.state == "processed"


def test_delivery_report_is_ignored_as_bounce(runtime: Runtime) -> None:
    report = (
        b"From: MAILER-DAEMON@mx.kunde.example.org\r\n"
        b"To: " + SUPPORT.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-1@mx.kunde.example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status;\r\n"
        b' boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.kunde.example.org\r\n\r\n"
        b"Final-Recipient: rfc822; gone@kunde.example.org\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"--B--\r\n"
    )
    outcome = ingest(runtime, report, mail_from="")
    assert outcome.state == "ignored"
    assert outcome.reason == "bounce"
    assert outcome.case_number is None
    assert outbox(runtime) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "auto_reply"},
    ],
)
def test_automatic_reply_is_ignored(runtime: Runtime, headers: dict[str, str]) -> None:
    outcome = ingest(runtime, build_mail(extra_headers=headers))
    assert outcome.state == "ignored"
    assert outcome.reason == "auto_reply"
    assert outbox(runtime) == []


def test_bulk_mail_is_held_unmatched(runtime: Runtime) -> None:
    outcome = ingest(runtime, build_mail(extra_headers={"Precedence": "list"}))
    assert outcome.state == "unmatched"
    assert outcome.reason == "bulk"
    assert outcome.case_number is None
    assert outbox(runtime) == []


def test_null_sender_out_of_office_is_auto_reply(runtime: Runtime) -> None:
    outcome = ingest(
        runtime, build_mail(subject="Automatic reply: Drucker"), mail_from=""
    )
    assert outcome.reason == "auto_reply"


def test_postmaster_person_mail_opens_case(runtime: Runtime) -> None:
    outcome = ingest(runtime, build_mail(sender="Lena <postmaster@kunde.example.org>"))
    assert outcome.state == "processed"


def test_read_receipt_is_auto_reply(runtime: Runtime) -> None:
    receipt = (
        b"From: Erika <erika@kunde.example.org>\r\n"
        b"To: " + SUPPORT.encode() + b"\r\n"
        b"Subject: Gelesen: Drucker\r\n"
        b"Message-ID: <mdn-1@kunde.example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report;\r\n"
        b' report-type=disposition-notification; boundary="M"\r\n\r\n'
        b"--M\r\nContent-Type: text/plain\r\n\r\nIhre Nachricht wurde gelesen.\r\n"
        b"--M\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"--M--\r\n"
    )
    assert ingest(runtime, receipt).reason == "auto_reply"


def test_out_of_office_subject_is_ignored(runtime: Runtime) -> None:
    outcome = ingest(
        runtime, build_mail(subject="Abwesenheitsnotiz: Drucker druckt nicht")
    )
    assert outcome.reason == "auto_reply"


def test_own_notification_coming_back_is_loop(runtime: Runtime) -> None:
    opened = ingest(runtime, build_mail())
    [queued] = outbox(runtime)
    echoed = build_mail(
        sender=SUPPORT,
        subject=queued.subject,
        message_id=queued.message_id,
    )
    outcome = ingest(runtime, echoed)
    assert outcome.state == "ignored"
    assert outcome.reason == "loop"
    assert opened.case_number is not None
    assert len(outbox(runtime)) == 1


def test_own_domain_message_id_is_loop(runtime: Runtime) -> None:
    outcome = ingest(runtime, build_mail(message_id=f"<abc@{MESSAGE_ID_DOMAIN}>"))
    assert outcome.reason == "loop"


def test_customer_reply_adds_comment_without_mail(runtime: Runtime) -> None:
    opened = ingest(runtime, build_mail())
    [confirmation] = outbox(runtime)
    reply = ingest(
        runtime,
        build_mail(
            subject="Re: Drucker",
            body="Noch ein Detail.\n",
            in_reply_to=confirmation.message_id,
        ),
    )
    assert reply.case_number == opened.case_number
    assert reply.matched_by == "references"
    assert len(outbox(runtime)) == 1


def test_staff_reply_notifies_customer(runtime: Runtime) -> None:
    opened = ingest(runtime, build_mail())
    token = case_of(runtime, opened.case_number).token
    staff = ingest(
        runtime,
        build_mail(
            sender=f"Sam <sam@{STAFF_DOMAIN}>",
            subject=f"Re: Drucker {token}",
            body="Bitte den Dienst neu starten.\n",
        ),
    )
    assert staff.case_number == opened.case_number
    kinds = [(m.kind, m.to) for m in outbox(runtime)]
    assert kinds == [
        ("confirmation", ["erika@kunde.example.org"]),
        ("comment_update", ["erika@kunde.example.org"]),
    ]


def test_reply_to_closed_case_opens_linked_case(runtime: Runtime) -> None:
    opened = ingest(runtime, build_mail())
    with session_scope(runtime.engine) as session:
        case = session.get(Case, int(opened.case_number))
        assert case is not None
        case.status = CaseStatus.CLOSED.value
        session.add(case)
        token = case.token
    reply = ingest(
        runtime, build_mail(subject=f"Re: Drucker {token}", body="Wieder kaputt.\n")
    )
    assert reply.matched_by == "new"
    assert reply.case_number != opened.case_number
    assert case_of(runtime, reply.case_number).previous_case_id == int(
        opened.case_number
    )


def test_large_mail_goes_to_spool_file(runtime: Runtime) -> None:
    raw = build_mail(
        body="Protokoll:\n" + "Zeile mit Fehlermeldung 0815\n" * (INLINE_LIMIT // 20)
    )
    outcome = ingest(runtime, raw)
    assert outcome.state == "processed"
    with Session(runtime.engine) as session:
        row = session.get(InboundMessage, outcome.inbound_id)
        assert row is not None
        assert row.raw is None
        assert row.spool_path is not None
        assert Path(row.spool_path).read_bytes() == raw


def test_unreadable_spool_file_marks_failed(runtime: Runtime) -> None:
    raw = build_mail(body="x" * (INLINE_LIMIT + 10))
    [inbound_id] = store_mails(
        runtime.engine, runtime.settings.store.data_dir, [IncomingMail(raw, "test", {})]
    )
    with session_scope(runtime.engine) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.spool_path is not None
        Path(row.spool_path).unlink()
    outcome = process_inbound(runtime, inbound_id)
    assert outcome.state == "failed"
    assert "No such file" in outcome.reason
    with Session(runtime.engine) as session:
        stored = session.get(InboundMessage, inbound_id)
        assert stored is not None
        assert stored.state == "failed"


def test_retry_mode_reraises_until_last_attempt(runtime: Runtime) -> None:
    raw = build_mail(body="y" * (INLINE_LIMIT + 10))
    [inbound_id] = store_mails(
        runtime.engine, runtime.settings.store.data_dir, [IncomingMail(raw, "test", {})]
    )
    with session_scope(runtime.engine) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.spool_path is not None
        Path(row.spool_path).unlink()
    attempts = runtime.settings.worker.max_process_attempts
    for _ in range(attempts - 1):
        with pytest.raises(FileNotFoundError):
            process_inbound(runtime, inbound_id, retry=True)
    assert process_inbound(runtime, inbound_id, retry=True).state == "failed"


def test_processed_message_is_not_processed_again(runtime: Runtime) -> None:
    first = ingest(runtime, build_mail())
    again = process_inbound(runtime, first.inbound_id)
    assert again.state == "processed"
    assert again.case_number == first.case_number
    with Session(runtime.engine) as session:
        assert len(session.exec(select(Case)).all()) == 1


def test_other_content_type_is_not_duplicate(runtime: Runtime) -> None:
    raw = build_mail(message_id="<ctype@kunde.example.org>")
    ingest(runtime, raw)
    relabelled = raw.replace(b"charset=", b"format=flowed; charset=", 1)
    assert relabelled != raw
    assert ingest(runtime, relabelled).state == "processed"


def test_long_references_chain_matches_newest(runtime: Runtime) -> None:
    opened = ingest(runtime, build_mail())
    [confirmation] = outbox(runtime)
    junk = " ".join(f"<junk{n}@elsewhere.example.net>" for n in range(5000))
    reply = ingest(
        runtime,
        build_mail(
            subject="Re: Drucker",
            body="Danke.\n",
            references=f"{junk} {confirmation.message_id}",
        ),
    )
    assert reply.case_number == opened.case_number
    assert reply.matched_by == "references"


def test_many_unknown_tokens_held_unmatched(runtime: Runtime) -> None:
    tokens = " ".join(f"ref_00DTest42_Unknown{n:04d}:ref" for n in range(3000))
    outcome = ingest(runtime, build_mail(body=f"Liste: {tokens}\n"))
    assert outcome.state == "unmatched"
    assert outcome.reason == "unknown_token"


def test_reused_message_id_cannot_divert_replies(runtime: Runtime) -> None:
    victim = ingest(runtime, build_mail(message_id="<victim-1@kunde.example.org>"))
    ingest(
        runtime,
        build_mail(
            sender="Mallory <mallory@elsewhere.example.net>",
            message_id="<victim-1@kunde.example.org>",
            body="Eine ganz andere Anfrage.\n",
        ),
    )
    reply_all = ingest(
        runtime,
        build_mail(
            sender="Max <max@kunde.example.org>",
            subject="Re: Drucker",
            body="Bei mir auch.\n",
            in_reply_to="<victim-1@kunde.example.org>",
        ),
    )
    assert reply_all.case_number == victim.case_number


def test_mass_cc_is_cut(runtime: Runtime) -> None:
    cc = ", ".join(f"person{n}@kunde.example.org" for n in range(200))
    outcome = ingest(runtime, build_mail(cc=cc))
    [queued] = outbox(runtime)
    assert outcome.state == "processed"
    assert len(queued.cc) == 20


def test_unreadable_structure_is_malformed(runtime: Runtime) -> None:
    nested = (
        b"Content-Type: message/rfc822\r\n\r\n" * 3000 + b"Subject: inner\r\n\r\nx\r\n"
    )
    outcome = ingest(runtime, nested)
    assert outcome.state == "unmatched"
    assert outcome.reason == "malformed"


def test_large_mail_held_off_from_sweep(runtime: Runtime) -> None:
    from datetime import timedelta

    raw = build_mail(body="Anhang folgt.\n" + "x" * (300 * 1024))
    outcome = ingest(runtime, raw)
    with Session(runtime.engine) as session:
        row = session.get(InboundMessage, outcome.inbound_id)
        assert row is not None
        assert row.enqueued_at is not None
        assert row.enqueued_at > row.received_at + timedelta(minutes=5)


def test_attachment_stored_by_digest(runtime: Runtime) -> None:
    from email.message import EmailMessage

    from gateway.attachments import attachment_path
    from gateway.models import Attachment

    mail = EmailMessage()
    mail["From"] = "Erika <erika@kunde.example.org>"
    mail["To"] = SUPPORT
    mail["Subject"] = "Protokoll anbei"
    mail["Message-ID"] = "<att-1@kunde.example.org>"
    mail.set_content("Siehe Anhang.\n")
    mail.add_attachment(
        b"Fehler 0815 um 10:15\n",
        maintype="text",
        subtype="plain",
        filename="fehler.log",
    )
    outcome = ingest(runtime, mail.as_bytes())
    with Session(runtime.engine) as session:
        [stored] = session.exec(select(Attachment)).all()
    assert outcome.state == "processed"
    assert stored.filename == "fehler.log"
    path = attachment_path(runtime.settings.store.data_dir, stored.sha256)
    assert path.read_bytes() == b"Fehler 0815 um 10:15\n"
