"""Read a bounce: which recipients failed, with what status, and which mail came back.

RFC 3464 delivery reports (``message/delivery-status``) are read here, one
block per recipient, for the Action, Status and Diagnostic-Code fields.
Reports in other formats go to the detectors of flufl.bounce 6.0.0, which
know many MTAs' own formats but return bare addresses. When neither finds
a recipient, the addresses named in the report's own explanation text are
taken, without a status.

The returned mail (a ``message/rfc822`` or ``text/rfc822-headers`` part, or
the text after an "original message" line) is parsed too: its Message-ID
and its thread tokens lead to the case the bounce belongs to.
"""

from __future__ import annotations

import dataclasses
import email
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

from flufl.bounce import all_failures

from gateway.inbound.message import ParsedMessage
from gateway.inbound.mimepart import part_bytes, raw_payload, serialize
from gateway.inbound.parse import parse_message

log = logging.getLogger(__name__)

REPORT_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
RETURNED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
RETURNED_HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# In free text only failure classes count: a transcript also shows "250 2.1.5".
FAILURE_STATUS_CODE = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
ADDRESS = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# The line that starts the copy of the returned mail in a plain-text bounce.
RETURNED_COPY_LINE = re.compile(
    r"^[\s>|-]*(?:original message|this is a copy of the|returned message|"
    r"unsent message|the original message|message headers follow|"
    r"undelivered message)",
    re.IGNORECASE | re.MULTILINE,
)
# Bounds on what one hostile report can make the gateway store.
MAX_RECIPIENTS = 50
MAX_DIAGNOSTIC = 500
MAX_DEPTH = 10
DAEMON_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mail-daemon", "mailerdaemon", "postmaster", "mdaemon"}
)


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient of a bounced mail, as the report describes it."""

    recipient: str
    #: RFC 3464 Action lowercased (``failed``, ``delayed``), "" if not given.
    action: str = ""
    #: RFC 3463 status such as ``5.1.1``, "" if not given.
    status: str = ""
    #: True when the report states that delivery was given up (Action failed).
    permanent: bool = False
    diagnostic: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "action": self.action or None,
            "status": self.status or None,
            "permanent": self.permanent,
            "diagnostic": self.diagnostic or None,
        }


@dataclass
class BounceReport:
    """The content of a bounce: the failed recipients and the mail that came back."""

    recipients: list[FailedRecipient] = field(default_factory=list)
    #: True when the mail has an RFC 3464 delivery-status part.
    standard: bool = False
    #: The returned mail, parsed, when the bounce contains a copy of it.
    returned: ParsedMessage | None = None
    #: Which reader found the recipients: ``dsn``, ``flufl.bounce``, ``text``.
    found_by: str = ""

    @property
    def permanent(self) -> bool:
        return any(r.permanent for r in self.recipients)

    @property
    def status(self) -> str:
        """The status of the first permanent failure, else of the first recipient."""
        for recipient in self.recipients:
            if recipient.permanent and recipient.status:
                return recipient.status
        return next((r.status for r in self.recipients if r.status), "")


def read_bounce(
    raw: bytes, own_addresses: list[str], *, trust_enclosed: bool = False
) -> BounceReport:
    """Read the bounce ``raw``; never raises.

    ``own_addresses`` (the support addresses) are never taken for failed
    recipients: they are the sender of the returned mail. With
    ``trust_enclosed`` (the sender is a mail system), a report enclosed
    as a message/rfc822 part counts as the mail's own: some gateways wrap
    a report that way to add a disclaimer.
    """
    try:
        message = email.message_from_bytes(raw, policy=compat32)
    except Exception:
        log.warning("bounce could not be parsed size=%d", len(raw), exc_info=True)
        return BounceReport()
    report = BounceReport()
    reports, returned_parts, explanations = _top_parts(message)
    if not reports and trust_enclosed:
        reports, returned_parts, explanations = _enclosed_report(
            returned_parts, (reports, returned_parts, explanations)
        )
    skipped = {a.lower() for a in own_addresses}
    for part in reports:
        report.standard = True
        for recipient in _dsn_recipients(part):
            _add(report, recipient, skipped)
    if report.recipients:
        report.found_by = "dsn"
    report.returned = _returned_message(message, returned_parts, explanations)
    if not report.recipients:
        if not trust_enclosed:
            _drop_returned_parts(message)
        for recipient in _flufl_recipients(message):
            _add(report, recipient, skipped)
        if report.recipients:
            report.found_by = "flufl.bounce"
    if not report.recipients:
        _add_from_text(report, message, explanations, skipped)
    if not report.standard:
        _add_status_from_text(report, explanations)
    return report


def _add_status_from_text(report: BounceReport, explanations: list[str]) -> None:
    """Give each recipient without a status the first status code of the text."""
    for text in explanations:
        before_copy = RETURNED_COPY_LINE.split(text, maxsplit=1)[0]
        match = FAILURE_STATUS_CODE.search(before_copy)
        if match is None:
            continue
        status = ".".join(match.groups())
        report.recipients = [
            r if r.status else dataclasses.replace(r, status=status)
            for r in report.recipients
        ]
        return


def _add(report: BounceReport, recipient: FailedRecipient, skipped: set[str]) -> None:
    address = recipient.recipient.lower()
    if not address or address in skipped or len(report.recipients) >= MAX_RECIPIENTS:
        return
    if any(r.recipient.lower() == address for r in report.recipients):
        return
    report.recipients.append(recipient)


def _top_parts(message: Message) -> _Parts:
    """Return the report parts, returned-mail parts and explanation texts.

    Parts inside a returned mail are not the bounce's own, so the walk does
    not enter message/rfc822 parts: a customer who forwards a bounce as an
    attachment has not sent one.
    """
    reports: list[Message] = []
    returned: list[Message] = []
    explanations: list[str] = []
    pending = [(message, 0)]
    while pending:
        part, depth = pending.pop(0)
        content_type = part.get_content_type()
        if content_type in REPORT_TYPES:
            reports.append(part)
        elif content_type in RETURNED_MESSAGE_TYPES or content_type in (
            RETURNED_HEADER_TYPES
        ):
            returned.append(part)
        elif part.get_content_maintype() == "multipart" and depth < MAX_DEPTH:
            payload = raw_payload(part)
            if isinstance(payload, list):
                pending.extend((child, depth + 1) for child in payload)
        elif content_type == "text/plain" or part is message:
            explanations.append(_text_of(part))
    return reports, returned, explanations


_Parts = tuple[list[Message], list[Message], list[str]]


def _enclosed_report(returned_parts: list[Message], default: _Parts) -> _Parts:
    """Return the parts of the first enclosed message that is a report."""
    for part in returned_parts:
        payload = raw_payload(part)
        if isinstance(payload, list) and payload:
            found = _top_parts(payload[0])
            if found[0]:
                return found
    return default


def _drop_returned_parts(message: Message, depth: int = 0) -> None:
    """Remove enclosed messages, so that flufl.bounce reads only the bounce.

    Its DSN detector walks into message/rfc822 parts and would read a
    forwarded report as the mail's own.
    """
    payload = raw_payload(message)
    if not isinstance(payload, list) or depth > MAX_DEPTH:
        return
    kept: list[Message | str] = [
        child
        for child in payload
        if child.get_content_type() not in RETURNED_MESSAGE_TYPES
    ]
    if message.get_content_type() not in RETURNED_MESSAGE_TYPES:
        message.set_payload(kept)
    for child in kept:
        if isinstance(child, Message):
            _drop_returned_parts(child, depth + 1)


def _text_of(part: Message) -> str:
    data = part_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, errors="replace")
    except LookupError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n")


def _dsn_recipients(part: Message) -> list[FailedRecipient]:
    """Return the per-recipient blocks of a delivery-status part."""
    result = []
    for block in _status_blocks(part):
        fields = {name.lower(): " ".join(value.split()) for name, value in block}
        # The original recipient is the address the gateway sent to; the
        # final one may be a forwarding target behind it.
        address = _address_field(fields.get("original-recipient", ""))
        address = address or _address_field(fields.get("final-recipient", ""))
        if not address:
            continue
        action = fields.get("action", "").lower().split(" ")[0].strip("();")
        diagnostic = fields.get("diagnostic-code", "")
        match = STATUS_CODE.search(fields.get("status", "")) or STATUS_CODE.search(
            diagnostic
        )
        status = ".".join(match.groups()) if match else ""
        # flufl.bounce reads "Action: error" (OpenSMTPD) as a failure too.
        permanent = action.startswith(("fail", "error"))
        result.append(
            FailedRecipient(
                recipient=address,
                action=action,
                status=status,
                permanent=permanent,
                diagnostic=diagnostic[:MAX_DIAGNOSTIC],
            )
        )
    return result


def _status_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """Return the header blocks of a delivery-status part as lists of fields.

    compat32 parses the blocks into sub-messages. A part that it left as
    text (base64, or a broken layout) is split at blank lines here.
    """
    payload = raw_payload(part)
    if isinstance(payload, list) and payload:
        return [[(k, str(v)) for k, v in block.items()] for block in payload]
    text = part_bytes(part).decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n")
    parser = HeaderParser(policy=compat32)
    return [
        [(k, str(v)) for k, v in parser.parsestr(chunk.strip() + "\n").items()]
        for chunk in re.split(r"\n[ \t]*\n", text)
        if chunk.strip()
    ]


def _address_field(value: str) -> str:
    """Return the address of a ``rfc822; user@example.com`` field, or ""."""
    address_type, separator, address = value.partition(";")
    if not separator:
        address = address_type
    address = address.strip().strip("<>").strip()
    match = ADDRESS.search(address)
    return match.group(0) if match else ""


def _flufl_recipients(message: Message) -> list[FailedRecipient]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        # The detectors document no exceptions; a broken report must not
        # stop the classification of the mail.
        log.warning("flufl.bounce failed on a report", exc_info=True)
        return []
    result = [
        FailedRecipient(_ascii(a), permanent=True)
        for a in sorted(permanent)
        if _ascii(a)
    ]
    result += [
        FailedRecipient(_ascii(a), action="delayed")
        for a in sorted(temporary - permanent)
        if _ascii(a)
    ]
    return result


def _ascii(address: bytes) -> str:
    return address.decode("ascii", errors="replace").strip().strip("<>")


def _add_from_text(
    report: BounceReport, message: Message, explanations: list[str], skipped: set[str]
) -> None:
    """Take the addresses that the explanation text names, without a status."""
    own = set(skipped)
    for name in ("From", "To", "Sender", "Return-Path"):
        for address in ADDRESS.findall(str(message.get(name, ""))):
            own.add(address.lower())
    for text in explanations:
        before_copy = RETURNED_COPY_LINE.split(text, maxsplit=1)[0]
        for address in ADDRESS.findall(before_copy):
            local = address.partition("@")[0].lower()
            if address.lower() in own or local in DAEMON_LOCAL_PARTS:
                continue
            _add(report, FailedRecipient(address), own)
    if report.recipients:
        report.found_by = "text"


def _returned_message(
    message: Message, parts: list[Message], explanations: list[str]
) -> ParsedMessage | None:
    """Parse the copy of the returned mail, the first one the bounce contains."""
    linesep = "\n"
    for part in parts:
        if part.get_content_type() in RETURNED_HEADER_TYPES:
            data = part_bytes(part)
        else:
            payload = raw_payload(part)
            if isinstance(payload, list) and payload:
                data = serialize(payload[0], linesep)
            else:
                data = part_bytes(part)
        if data.strip():
            return parse_message(data)
    for text in explanations:
        pieces = RETURNED_COPY_LINE.split(text, maxsplit=1)
        if len(pieces) > 1:
            copy = pieces[-1].split("\n", 1)[-1].lstrip("\n")
            return parse_message(copy.encode("utf-8", errors="replace"))
    return None
