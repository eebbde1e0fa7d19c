"""The outbox: notifications written in the same transaction as their cause.

A notification is rendered and composed in full when it is queued, so a
retry sends the same bytes with the same Message-ID.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from gateway.config import Settings
from gateway.inbound.classify import GATEWAY_HEADER
from gateway.models import (
    Case,
    Comment,
    Contact,
    OutboundMessage,
    ThreadMessage,
    ThreadSource,
)
from gateway.outbound.compose import compose_message, make_message_id
from gateway.outbound.render import TemplateRenderer

log = logging.getLogger(__name__)

DISPLAY_ZONE = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Notification:
    """What to tell whom about a case."""

    kind: str
    case: Case
    comment: Comment | None = None


def queue_notification(
    session: Session,
    settings: Settings,
    renderer: TemplateRenderer,
    notification: Notification,
) -> OutboundMessage | None:
    """Render a notification to the case's contact and additional recipients.

    Returns the outbox row, or None when the case has nobody to write to.
    The row's Message-ID is recorded as a thread message of the case, so a
    reply to it matches by References.
    """
    case = notification.case
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    to = [contact.email] if contact and contact.email else []
    cc = [a for a in case.additional_recipients if a.lower() not in {t.lower() for t in to}]
    if not to and cc:
        to, cc = cc[:1], cc[1:]
    if not to:
        log.warning("notification skipped: no recipient kind=%s case=%s", notification.kind, case.number)
        return None
    assert case.id is not None
    history = _thread_ids(session, case.id)
    rendered = renderer.render(notification.kind, _context(settings, notification, contact))
    message_id = make_message_id(settings.desk.message_id_domain)
    raw = compose_message(
        sender_email=settings.sender_address,
        sender_name=settings.desk.from_name,
        to=to,
        cc=cc,
        rendered=rendered,
        message_id=message_id,
        in_reply_to=history[-1] if history else None,
        references=history,
        extra_headers={GATEWAY_HEADER: f"{notification.kind}; case={case.number}"},
    )
    row = OutboundMessage(
        case_id=case.id,
        kind=notification.kind,
        sender=settings.sender_address,
        to=to,
        cc=cc,
        subject=rendered.subject,
        message_id=message_id,
        raw=raw,
    )
    session.add(row)
    session.add(ThreadMessage(message_id=message_id, case_id=case.id, source=ThreadSource.SENT))
    session.flush()
    log.info(
        "notification queued kind=%s case=%s outbound_id=%s message_id=%s",
        notification.kind,
        case.number,
        row.id,
        message_id,
    )
    return row


def _thread_ids(session: Session, case_id: int) -> list[str]:
    rows = session.exec(
        select(ThreadMessage.message_id)
        .where(ThreadMessage.case_id == case_id)
        .order_by(col(ThreadMessage.id))
    ).all()
    return list(dict.fromkeys(rows))


def _context(settings: Settings, notification: Notification, contact: Contact | None) -> dict[str, Any]:
    case = notification.case
    context: dict[str, Any] = {
        "case": {
            "number": case.number,
            "subject": case.subject,
            "status": case.status,
            "severity": case.severity,
            "priority": case.priority,
            "type": case.type,
            "customer_reference": case.customer_reference,
            "opened_at": case.opened_at.astimezone(DISPLAY_ZONE).strftime("%d.%m.%Y %H:%M"),
        },
        "contact_name": contact.name if contact else "",
        "case_url": f"{settings.desk.portal_url.rstrip('/')}/{case.number}",
        "token": case.token,
        "desk_name": settings.desk.from_name,
        "language": settings.desk.language,
    }
    if notification.comment is not None:
        comment = notification.comment
        context["comment"] = {
            "author_name": comment.author_name or comment.author,
            "text": comment.new_text,
        }
    return context
