"""Record bounces against addresses and cases, and automatic replies as notes.

A bounce adds one BounceRecord per failed recipient and a system note to
the case of the returned mail, found by its Message-ID (a mail the gateway
sent) or by a thread token in it. A permanent failure counts against the
address only when the bounce returns a mail that went to that address: a
recipient of the outbox row with the returned Message-ID or, without one,
the case's contact or an additional recipient. So a forged report about
an address the gateway never wrote to counts for nothing. Delay notices
(Action delayed) are recorded and counted apart, never as failures.

An automatic reply adds at most a system note to the case it names, and
only when its sender may write into that case.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, col, select

from gateway.cases import NewComment, add_comment
from gateway.config import Settings
from gateway.inbound.bounces import BounceReport, FailedRecipient
from gateway.inbound.parse import Address, ParsedMessage
from gateway.models import (
    AuthorKind,
    BounceRecord,
    BouncingAddress,
    Case,
    Contact,
    InboundMessage,
    OutboundMessage,
    ThreadMessage,
    ThreadSource,
    utcnow,
)
from gateway.threading.route import Candidates, find_candidates
from gateway.threading.senders import may_post

log = logging.getLogger(__name__)

SYSTEM_AUTHOR = Address("system", "Mail gateway")
NOTE_EXCERPT_CHARS = 500


def record_bounce(
    session: Session,
    settings: Settings,
    row: InboundMessage,
    report: BounceReport,
) -> dict[str, Any]:
    """Store the content of ``report`` and return the ``bounce`` object of ingest."""
    case, outbound = _bounced_case(session, settings, report)
    verified = _recipients_of(session, case, outbound)
    counted: list[str] = []
    for recipient in report.recipients:
        session.add(
            BounceRecord(
                inbound_message_id=row.id or 0,
                case_id=case.id if case else None,
                recipient=recipient.recipient.lower(),
                action=recipient.action,
                status=recipient.status,
                permanent=recipient.permanent,
                diagnostic=recipient.diagnostic,
            )
        )
        verified_here = recipient.recipient.lower() in verified
        if verified_here and _count_failure(session, recipient):
            counted.append(recipient.recipient.lower())
    if case is not None:
        _add_note(session, settings, case, _bounce_note(report, counted), row)
    log.info(
        "bounce recorded inbound_id=%s case=%s recipients=%s counted=%s",
        row.id,
        case.number if case else "-",
        [r.recipient for r in report.recipients],
        counted,
    )
    return bounce_view(report, case, counted)


def bounce_view(
    report: BounceReport, case: Case | None, counted: list[str]
) -> dict[str, Any]:
    returned = report.returned
    return {
        "recipients": [r.recipient for r in report.recipients],
        "status": report.status or None,
        "permanent": report.permanent,
        "standard": report.standard,
        "found_by": report.found_by or None,
        "case": case.number if case else None,
        "returned_message_id": returned.message_id if returned else None,
        "counted": counted,
        "details": [r.view() for r in report.recipients],
    }


def _bounced_case(
    session: Session, settings: Settings, report: BounceReport
) -> tuple[Case | None, OutboundMessage | None]:
    returned = report.returned
    if returned is None:
        return None, None
    if returned.message_id:
        outbound = session.exec(
            select(OutboundMessage).where(
                OutboundMessage.message_id == returned.message_id
            )
        ).first()
        if outbound is not None and outbound.case_id is not None:
            return session.get(Case, outbound.case_id), outbound
        # A Message-ID the gateway sent (or an earlier system, imported); a
        # received one would be a customer's own mail bounced elsewhere.
        case_id = session.exec(
            select(ThreadMessage.case_id)
            .where(ThreadMessage.message_id == returned.message_id)
            .where(
                col(ThreadMessage.source).in_(
                    [ThreadSource.SENT.value, ThreadSource.IMPORTED.value]
                )
            )
            .order_by(col(ThreadMessage.id))
        ).first()
        if case_id is not None:
            return session.get(Case, case_id), None
    # A notification carries its case's token in the subject and the body.
    found = find_candidates(session, returned, returned.text, settings.desk.org_id)
    if found.matches:
        return found.matches[0].case, None
    return None, None


def _recipients_of(
    session: Session, case: Case | None, outbound: OutboundMessage | None
) -> set[str]:
    # TODO: a VERP reverse path per notification would tie a bounce without
    # a copy of the returned mail to its recipient; such bounces count now
    # for nothing.
    if outbound is not None:
        return {a.lower() for a in [*outbound.to, *outbound.cc]}
    if case is None:
        return set()
    addresses = {a.lower() for a in case.additional_recipients}
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    if contact is not None:
        addresses.add(contact.email.lower())
    return addresses


def _count_failure(session: Session, recipient: FailedRecipient) -> bool:
    """Count a failure or a delay for the address; return True for a failure."""
    email = recipient.recipient.lower()
    state = session.exec(
        select(BouncingAddress).where(BouncingAddress.email == email)
    ).first()
    if state is None:
        state = BouncingAddress(email=email)
    if recipient.permanent:
        state.permanent_failures += 1
    else:
        state.delays += 1
    state.last_status = recipient.status
    state.last_bounce_at = utcnow()
    session.add(state)
    return recipient.permanent


def _bounce_note(report: BounceReport, counted: list[str]) -> str:
    lines = ["A notification of this case bounced."]
    for recipient in report.recipients:
        kind = "failed" if recipient.permanent else (recipient.action or "reported")
        status = f" status {recipient.status}" if recipient.status else ""
        diagnostic = f": {recipient.diagnostic}" if recipient.diagnostic else ""
        lines.append(f"- {recipient.recipient}: {kind}{status}{diagnostic}")
    if not report.recipients:
        lines.append("The report names no recipient.")
    if counted:
        lines.append(
            "Counted as a permanent failure of: " + ", ".join(counted) + ". "
            "Notifications to an address stop after [routing] bounce_limit of them."
        )
    return "\n".join(lines)


def note_auto_reply(
    session: Session,
    settings: Settings,
    row: InboundMessage,
    message: ParsedMessage,
    new_text: str,
    detail: str,
) -> Case | None:
    """Add a system note about an automatic reply to the case it names, if any."""
    sender = message.sender.email if message.sender else ""
    if not sender:
        return None
    candidates: Candidates = find_candidates(
        session, message, new_text, settings.desk.org_id
    )
    case = next(
        (
            m.case
            for m in candidates.matches
            if may_post(session, settings, m.case, sender)
        ),
        None,
    )
    if case is None:
        return None
    excerpt = " ".join((new_text or message.text).split())[:NOTE_EXCERPT_CHARS]
    note = (
        f"Automatic reply from {sender} ({detail}), not posted as a comment. "
        f"Subject: {message.subject}\n{excerpt}"
    )
    _add_note(session, settings, case, note, row)
    return case


def _add_note(
    session: Session, settings: Settings, case: Case, text: str, row: InboundMessage
) -> None:
    # touch_case=False: a note from a machine is no activity on the case, so
    # it must not move the case's timers.
    add_comment(
        session,
        settings,
        case,
        NewComment(
            author=SYSTEM_AUTHOR,
            kind=AuthorKind.SYSTEM,
            new_text=text,
            full_text=text,
            inbound_message_id=row.id,
        ),
        touch_case=False,
    )


def suppressed_addresses(
    session: Session, settings: Settings, addresses: list[str]
) -> set[str]:
    """Return those of ``addresses`` that notifications must skip as bouncing."""
    if not addresses:
        return set()
    lowered = [a.lower() for a in addresses]
    rows = session.exec(
        select(BouncingAddress.email)
        .where(col(BouncingAddress.email).in_(lowered))
        .where(col(BouncingAddress.permanent_failures) >= settings.routing.bounce_limit)
    ).all()
    return set(rows)


def clear_bounces(session: Session, address: str) -> None:
    """Forget the failures of ``address``: it just sent mail, so its mailbox works."""
    state = session.exec(
        select(BouncingAddress).where(BouncingAddress.email == address.lower())
    ).first()
    if state is not None and state.permanent_failures:
        log.info(
            "bounce count reset address=%s was=%d", address, state.permanent_failures
        )
        state.permanent_failures = 0
        session.add(state)
