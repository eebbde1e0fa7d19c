"""Classification rules, one by one: bounces, automatic replies, loops, bulk mail."""

from __future__ import annotations

import pytest

from gateway.inbound.classify import Classification, classify
from gateway.inbound.parse import parse_message
from tests.conftest import build_mail
from tests.inbound.bounce_fixtures import (
    FORWARDED_BOUNCE,
    PLAIN_TEXT_BOUNCE,
    QMAIL_STYLE_BOUNCE,
    dsn,
)

OWN_DOMAIN = "mail.desk.example.com"
SUPPORT = "help@desk.example.com"


def classify_raw(raw: bytes, envelope_sender: str | None = None) -> Classification:
    message = parse_message(raw)
    return classify(
        message,
        raw=raw,
        envelope_sender=envelope_sender,
        own_message_id_domain=OWN_DOMAIN,
        support_addresses=[SUPPORT],
    )


def test_delivery_status_report_is_bounce() -> None:
    verdict = classify_raw(dsn("gone@kunde.example.org", "5.1.1"))
    assert verdict.reason == "bounce"
    assert verdict.bounce is not None
    assert verdict.bounce.status == "5.1.1"


def test_report_without_report_type_is_bounce() -> None:
    raw = dsn("gone@kunde.example.org", "5.1.1").replace(
        b"report-type=delivery-status;", b""
    )
    assert classify_raw(raw).reason == "bounce"


def test_mailer_daemon_sender_is_bounce() -> None:
    raw = build_mail(
        sender="MAILER-DAEMON@mx.kunde.example.org",
        subject="Warnung",
        body="Ihre Nachricht konnte nicht zugestellt werden.\n",
    )
    assert classify_raw(raw).reason == "bounce"


def test_null_reverse_path_is_bounce() -> None:
    assert classify_raw(build_mail(), envelope_sender="").reason == "bounce"


def test_postmaster_with_failure_subject_is_bounce() -> None:
    assert classify_raw(PLAIN_TEXT_BOUNCE).reason == "bounce"


def test_postmaster_person_mail_is_not_bounce() -> None:
    raw = build_mail(sender="Lena <postmaster@kunde.example.org>")
    assert not classify_raw(raw).handled_as_machine_mail


def test_vendor_format_with_failure_subject_is_bounce() -> None:
    verdict = classify_raw(QMAIL_STYLE_BOUNCE)
    assert verdict.reason == "bounce"
    assert verdict.bounce is not None
    assert [r.recipient for r in verdict.bounce.recipients] == [
        "ines.alt@kunde.example.org"
    ]


def test_person_forwarding_bounce_is_not_bounce() -> None:
    assert not classify_raw(FORWARDED_BOUNCE).handled_as_machine_mail


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "vacation"},
        {"Precedence": "auto_reply"},
        {"X-Auto-Response-Suppress": "All"},
    ],
)
def test_automatic_reply_headers(headers: dict[str, str]) -> None:
    assert classify_raw(build_mail(extra_headers=headers)).reason == "auto_reply"


def test_auto_submitted_no_is_person() -> None:
    raw = build_mail(extra_headers={"Auto-Submitted": "no"})
    assert not classify_raw(raw).handled_as_machine_mail


@pytest.mark.parametrize(
    "subject",
    [
        "Abwesenheitsnotiz: Drucker druckt nicht",
        "Automatische Antwort: Drucker druckt nicht",
        "Out of Office: Drucker druckt nicht",
        "Automatic reply: Drucker druckt nicht",
        "[Out of Office] Drucker",
        "I am out of the office until Monday",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    assert classify_raw(build_mail(subject=subject)).reason == "auto_reply"


@pytest.mark.parametrize(
    "body",
    [
        "I am out of the office until 14 December with limited access to mail.\n",
        "Hello,\n\nthank you for your message. I am currently on vacation.\n",
        "Vielen Dank für Ihre Nachricht. Ich bin bis 14.12. nicht im Büro.\n",
        "Ich bin derzeit abwesend und ab Montag wieder erreichbar.\n",
    ],
)
def test_out_of_office_bodies(body: str) -> None:
    assert classify_raw(build_mail(subject="Re: Drucker", body=body)).reason == (
        "auto_reply"
    )


def test_absence_mentioned_later_is_person() -> None:
    body = (
        "Der Drucker streikt wieder, Fehler E42.\n\n"
        "Ich bin ab morgen nicht im Büro, bitte rufen Sie Max an.\n"
    )
    raw = build_mail(subject="Re: Drucker", body=body)
    assert not classify_raw(raw).handled_as_machine_mail


def test_read_receipt_is_auto_reply() -> None:
    receipt = (
        b"From: Erika <erika@kunde.example.org>\r\n"
        b"To: help@desk.example.com\r\n"
        b"Subject: Gelesen: Drucker\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report;\r\n"
        b' report-type=disposition-notification; boundary="M"\r\n\r\n'
        b"--M\r\nContent-Type: text/plain\r\n\r\nGelesen.\r\n"
        b"--M\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"--M--\r\n"
    )
    assert classify_raw(receipt).reason == "auto_reply"


def test_null_path_out_of_office_is_auto_reply() -> None:
    raw = build_mail(subject="Automatic reply: Drucker")
    assert classify_raw(raw, envelope_sender="").reason == "auto_reply"


def test_own_message_id_is_loop() -> None:
    raw = build_mail(message_id=f"<abc@{OWN_DOMAIN}>")
    assert classify_raw(raw).reason == "loop"


def test_gateway_header_is_loop() -> None:
    raw = build_mail(extra_headers={"X-Case-Gateway": "confirmation; case=00000001"})
    assert classify_raw(raw).reason == "loop"


def test_support_address_sender_is_loop() -> None:
    raw = build_mail(sender=f"Desk <{SUPPORT}>")
    assert classify_raw(raw).reason == "loop"


@pytest.mark.parametrize("precedence", ["bulk", "junk", "list"])
def test_bulk_precedence_held_unmatched(precedence: str) -> None:
    verdict = classify_raw(build_mail(extra_headers={"Precedence": precedence}))
    assert verdict.reason == "bulk"
    assert verdict.state == "unmatched"


def test_plain_mail_is_person() -> None:
    assert not classify_raw(build_mail()).handled_as_machine_mail
