"""Classification before routing: mail from machines never opens a case.

Each rule returns the reason recorded on the inbound message: ``bounce``
(a delivery report or a mailer daemon), ``auto_reply`` (RFC 3834 and the
common vendor headers, read receipts, out-of-office shapes) or ``loop``
(our own mail coming back). The per-sender rate limit, which needs the
store, is applied by the caller (:mod:`gateway.inbound.ratelimit`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.inbound.bounces import DAEMON_LOCAL_PARTS, BounceReport, read_bounce
from gateway.inbound.parse import ParsedMessage

GATEWAY_HEADER = "X-Case-Gateway"
# Precedence values of list and bulk mail (RFC 3834 section 2: do not
# reply to them automatically). Such mail may still be a person's, so it is
# held for an admin rather than dropped.
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
AUTOMATIC_SUBJECT = re.compile(
    r"^\s*[\[(]?\s*(abwesenheitsnotiz|abwesenheit|automatische antwort|"
    r"out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|"
    r"autoreply|away until|auto[- ]generated\b|ich bin nicht im b(ü|ue)ro|"
    r"i am out of the office)",
    re.IGNORECASE,
)
# Out-of-office openings of the body text, read only at its start: a person
# may mention an absence later in a real reply.
AUTOMATIC_BODY = re.compile(
    r"^\W*(?:(?:hello|hallo|hi|guten tag|dear [^\n,]*|sehr geehrte[^\n,]*),?\s+)?"
    r"(?:(?:thank you|thanks) for your (?:e-?mail|message)[.!,]?\s+|"
    r"vielen dank f(?:ü|ue)r ihre (?:e-?mail|nachricht)[.!,]?\s+)?"
    r"(i am|i'm|i will be) (currently |now )?(out of (the )?office|"
    r"away from the office|on (annual )?(leave|vacation|holiday))|"
    r"^\W*(abwesenheitsnotiz|automatische antwort|out of office|automatic reply)\b|"
    r"^\W*(?:vielen dank f(?:ü|ue)r ihre (?:e-?mail|nachricht)[.!,]?\s+)?"
    r"ich bin (derzeit |zurzeit |momentan |leider )*(bis [^\n]{1,30}? )?"
    r"(nicht im b(ü|ue)ro|"
    r"abwesend|im urlaub|au(ß|ss)er haus)",
    re.IGNORECASE,
)
BODY_PREFIX_CHARS = 300
DELIVERY_FAILURE_SUBJECT = re.compile(
    r"(undeliver|undelivered|delivery (status|failure|failed|problem|report)|"
    r"non-?delivery|returned mail|mail delivery|failure notice|failed mail|"
    r"delivery notification|nicht zustellbar|unzustellbar|"
    r"unable to deliver|could not be delivered)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    """The verdict on a message: the reason it is machine mail, empty for a person's.

    ``state`` is the inbound state it ends in: ``ignored`` for machine mail,
    ``unmatched`` for mail held for an admin. ``bounce`` is what the bounce
    reader found, for a bounce.
    """

    reason: str = ""
    detail: str = ""
    state: str = "ignored"
    bounce: BounceReport | None = None

    @property
    def handled_as_machine_mail(self) -> bool:
        return bool(self.reason)


PERSON = Classification()


def classify(
    message: ParsedMessage,
    *,
    raw: bytes,
    envelope_sender: str | None,
    own_message_id_domain: str,
    support_addresses: list[str],
    new_text: str = "",
) -> Classification:
    """Return why ``message`` must not be handled as a person's mail, if it must not.

    ``raw`` is read again only for mail that shows signs of a bounce.
    """
    null_path = envelope_sender is not None and envelope_sender.strip() in ("", "<>")
    bounce = _bounce(message, raw, null_path, support_addresses)
    if bounce is not None:
        return bounce
    loop = _loop_reason(message, own_message_id_domain, support_addresses)
    if loop:
        return Classification("loop", loop)
    automatic = _auto_reply_reason(message, new_text)
    if automatic:
        return Classification("auto_reply", automatic)
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return Classification("bulk", f"Precedence: {precedence}", state="unmatched")
    # RFC 3834 recommends that automatic responders send with a null reverse
    # path, so a null path without the signs of an auto-reply is a bounce.
    if null_path:
        report = read_bounce(raw, support_addresses)
        return Classification("bounce", "null reverse path", bounce=report)
    return PERSON


def _bounce(
    message: ParsedMessage, raw: bytes, null_path: bool, support_addresses: list[str]
) -> Classification | None:
    """Return the bounce classification, or None when the mail is no bounce.

    A sure sign (a delivery-status report, a mailer-daemon sender) makes a
    bounce by itself. A weak sign (a postmaster sender, a delivery failure
    subject, an empty From) needs a report that a reader can parse as well,
    because people also write such subjects.
    """
    sure = _sure_bounce_sign(message)
    weak = "" if sure else _weak_bounce_sign(message, null_path)
    if not sure and not weak and message.content_type != "multipart/report":
        return None
    sender = message.sender.email.lower() if message.sender else ""
    from_mail_system = bool(sure) or sender.partition("@")[0] == "postmaster"
    report = read_bounce(raw, support_addresses, trust_enclosed=from_mail_system)
    if sure:
        return Classification("bounce", sure, bounce=report)
    if report.standard:
        return Classification("bounce", "delivery-status report", bounce=report)
    if weak and report.found_by in ("dsn", "flufl.bounce"):
        return Classification(
            "bounce", f"{weak}, failed recipients found", bounce=report
        )
    if sender.partition("@")[0] == "postmaster" and DELIVERY_FAILURE_SUBJECT.search(
        message.subject
    ):
        return Classification(
            "bounce", f"sender {sender} with a delivery failure subject", bounce=report
        )
    return None


def _sure_bounce_sign(message: ParsedMessage) -> str:
    if _report_type(message) == "delivery-status":
        return "multipart/report delivery-status"
    sender = message.sender.email.lower() if message.sender else ""
    local_part = sender.partition("@")[0]
    if local_part in DAEMON_LOCAL_PARTS - {"postmaster"}:
        return f"sender {sender}"
    return ""


def _weak_bounce_sign(message: ParsedMessage, null_path: bool) -> str:
    sender = message.sender.email.lower() if message.sender else ""
    if sender.partition("@")[0] == "postmaster":
        return f"sender {sender}"
    if DELIVERY_FAILURE_SUBJECT.search(message.subject):
        return "delivery failure subject"
    if "failure" in (message.header("Auto-Submitted") or "").lower():
        return "Auto-Submitted names a failure"
    if null_path or not sender:
        return "no sender"
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


def _auto_reply_reason(message: ParsedMessage, new_text: str) -> str:
    auto_submitted = (message.header("Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.header(name) is not None:
            return f"{name} header present"
    # NOTE: Exchange may also set this header on mail that a person sent,
    # e.g. through a distribution list; such mail is ignored as well.
    suppress = (message.header("X-Auto-Response-Suppress") or "").strip()
    if suppress:
        return f"X-Auto-Response-Suppress: {suppress}"
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    if _report_type(message) == "disposition-notification":
        return "read receipt (disposition notification)"
    if any(
        part.content_type == "message/disposition-notification"
        for part in message.attachments
    ):
        return "read receipt (disposition notification part)"
    if AUTOMATIC_SUBJECT.search(message.subject):
        return "automatic reply subject"
    body = (new_text or message.text).lstrip()[:BODY_PREFIX_CHARS]
    if AUTOMATIC_BODY.search(body):
        return "out-of-office text"
    return ""
