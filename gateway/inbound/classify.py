"""Classification before routing: mail from machines never opens a case.

Each rule returns the reason recorded on the inbound message: ``bounce``
(a delivery report or a mailer daemon), ``auto_reply`` (RFC 3834 and the
common vendor headers) or ``loop`` (our own mail coming back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.inbound.parse import ParsedMessage

GATEWAY_HEADER = "X-Case-Gateway"
DAEMON_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon"})
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(abwesenheitsnotiz|automatische antwort|out of (the )?office|"
    r"automatic reply|auto(matic)?[- ]?reply|autoreply)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    """Why a message is ignored; ``reason`` is empty for mail written by a person."""

    reason: str = ""
    detail: str = ""

    @property
    def ignored(self) -> bool:
        return bool(self.reason)


PERSON = Classification()


def classify(
    message: ParsedMessage,
    *,
    envelope_sender: str | None,
    own_message_id_domain: str,
    support_addresses: list[str],
) -> Classification:
    """Return why ``message`` must not be handled as a person's mail, if it must not."""
    bounce = _bounce_reason(message, envelope_sender)
    if bounce:
        return Classification("bounce", bounce)
    loop = _loop_reason(message, own_message_id_domain, support_addresses)
    if loop:
        return Classification("loop", loop)
    automatic = _auto_reply_reason(message)
    if automatic:
        return Classification("auto_reply", automatic)
    return PERSON


def _bounce_reason(message: ParsedMessage, envelope_sender: str | None) -> str:
    report_type = (message.header("Content-Type") or "").lower()
    if message.content_type == "multipart/report" and "delivery-status" in report_type:
        return "multipart/report delivery-status"
    sender = message.sender.email.lower() if message.sender else ""
    if sender.partition("@")[0] in DAEMON_LOCAL_PARTS:
        return f"sender {sender}"
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "null reverse path"
    return ""


def _loop_reason(
    message: ParsedMessage, own_domain: str, support_addresses: list[str]
) -> str:
    if message.header(GATEWAY_HEADER):
        return f"{GATEWAY_HEADER} header present"
    if message.message_id and message.message_id.lower().endswith(
        f"@{own_domain.lower()}>"
    ):
        return f"own Message-ID {message.message_id}"
    sender = message.sender.email.lower() if message.sender else ""
    if sender and sender in {a.lower() for a in support_addresses}:
        return f"sender is the support address {sender}"
    return ""


def _auto_reply_reason(message: ParsedMessage) -> str:
    auto_submitted = (message.header("Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.header(name) is not None:
            return f"{name} header present"
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    if OUT_OF_OFFICE_SUBJECT.search(message.subject):
        return "out-of-office subject"
    return ""
