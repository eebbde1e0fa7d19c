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
# Precedence values of list and bulk mail (RFC 3834 section 2: do not
# reply to them automatically). Such mail may still be a person's, so it is
# held for an admin rather than dropped.
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(abwesenheitsnotiz|abwesenheit|automatische antwort|out of (the )?office|"
    r"automatic reply|auto(matic)?[- ]?(reply|response)|autoreply|away until|"
    r"\[auto[- ]generated\])",
    re.IGNORECASE,
)
DELIVERY_FAILURE_SUBJECT = re.compile(
    r"(undeliver|undelivered|delivery (status|failure|failed|problem)|returned mail|"
    r"mail delivery|failure notice|nicht zustellbar|unzustellbar)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    """The verdict on a message: the reason it is machine mail, empty for a person's.

    ``state`` is the inbound state it ends in: ``ignored`` for machine mail,
    ``unmatched`` for mail held for an admin.
    """

    reason: str = ""
    detail: str = ""
    state: str = "ignored"

    @property
    def handled_as_machine_mail(self) -> bool:
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
    bounce = _bounce_reason(message)
    if bounce:
        return Classification("bounce", bounce)
    loop = _loop_reason(message, own_message_id_domain, support_addresses)
    if loop:
        return Classification("loop", loop)
    automatic = _auto_reply_reason(message)
    if automatic:
        return Classification("auto_reply", automatic)
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return Classification("bulk", f"Precedence: {precedence}", state="unmatched")
    # RFC 3834 recommends that automatic responders send with a null reverse
    # path, so a null path without the signs of an auto-reply is a bounce.
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return Classification("bounce", "null reverse path")
    return PERSON


def _bounce_reason(message: ParsedMessage) -> str:
    report_type = _report_type(message)
    if report_type == "delivery-status":
        return "multipart/report delivery-status"
    sender = message.sender.email.lower() if message.sender else ""
    local_part = sender.partition("@")[0]
    if local_part in ("mailer-daemon", "mail-daemon"):
        return f"sender {sender}"
    # A postmaster also writes ordinary mail, so the subject must agree.
    if local_part == "postmaster" and DELIVERY_FAILURE_SUBJECT.search(message.subject):
        return f"sender {sender} with a delivery failure subject"
    return ""


def _report_type(message: ParsedMessage) -> str:
    if message.content_type != "multipart/report":
        return ""
    content_type = (message.header("Content-Type") or "").lower()
    match = re.search(r"report-type\s*=\s*\"?([a-z0-9-]+)", content_type)
    return match.group(1) if match else ""


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
    if (message.header("Precedence") or "").strip().lower() == "auto_reply":
        return "Precedence: auto_reply"
    if _report_type(message) == "disposition-notification":
        return "read receipt (disposition notification)"
    if AUTOMATIC_SUBJECT.search(message.subject):
        return "automatic reply subject"
    return ""
