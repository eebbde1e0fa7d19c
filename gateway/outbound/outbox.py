"""The outbox: notifications written in the same transaction as their cause.

A notification is rendered when it is queued. Its MIME bytes are composed
at the first delivery attempt (composition costs more than the rest of
queueing) and stored, so a retry sends the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from gateway.config import Settings
from gateway.inbound.classify import GATEWAY_HEADER
from gateway.inbound.machine import suppressed_addresses
from gateway.models import (
    DISPLAY_ZONE,
    Case,
    Comment,
    Contact,
    OutboundMessage,
    ThreadMessage,
    ThreadSource,
    utcnow,
)
from gateway.outbound.compose import compose_message, make_message_id
from gateway.outbound.context import lifecycle_context
from gateway.outbound.deliver import is_envelope_address
from gateway.outbound.outlook import outlook_headers
from gateway.outbound.render import RenderedMail, TemplateRenderer

log = logging.getLogger(__name__)

DISPLAY_TIME_FORMATS = {"de": "%d.%m.%Y %H:%M %Z", "en": "%Y-%m-%d %H:%M %Z"}


@dataclass(frozen=True)
class Notification:
    """A notification to queue: its kind, the case and the comment it reports.

    ``recipients`` replaces the case's contact and additional recipients,
    for mail to staff such as an escalation notice, which also leaves out the
    command links. ``context`` adds values for the template.
    """

    kind: str
    case: Case
    comment: Comment | None = None
    recipients: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)


def queue_notification(
    session: Session,
    settings: Settings,
    renderer: TemplateRenderer,
    notification: Notification,
) -> OutboundMessage | None:
    """Render a notification to the case's contact and additional recipients.

    Returns the outbox row, or None when the case has no deliverable recipient.
    The row's Message-ID is recorded as a thread message of the case, so a
    reply to it matches by References.
    """
    case = notification.case
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    if notification.recipients:
        to, cc = list(notification.recipients[:1]), list(notification.recipients[1:])
    else:
        to = [contact.email] if contact and contact.email else []
        cc = [
            a
            for a in case.additional_recipients
            if a.lower() not in {t.lower() for t in to}
        ]
    undeliverable = [a for a in [*to, *cc] if not is_envelope_address(a)]
    if undeliverable:
        log.warning(
            "notification recipients skipped: not deliverable "
            "kind=%s case=%s addresses=%s",
            notification.kind,
            case.number,
            undeliverable,
        )
        to = [a for a in to if a not in undeliverable]
        cc = [a for a in cc if a not in undeliverable]
    bouncing = suppressed_addresses(session, settings, [*to, *cc])
    if bouncing:
        log.warning(
            "notification recipients skipped: bouncing kind=%s case=%s addresses=%s",
            notification.kind,
            case.number,
            sorted(bouncing),
        )
        to = [a for a in to if a.lower() not in bouncing]
        cc = [a for a in cc if a.lower() not in bouncing]
    if not to and cc:
        to, cc = cc[:1], cc[1:]
    if not to:
        log.warning(
            "notification skipped: no recipient kind=%s case=%s",
            notification.kind,
            case.number,
        )
        return None
    assert case.id is not None
    history = _thread_ids(session, case.id)
    previous = None
    if case.previous_case_id is not None:
        previous = session.get(Case, case.previous_case_id)
    context = notification_context(settings, notification, contact, previous)
    rendered = renderer.render(notification.kind, context)
    message_id = make_message_id(settings.desk.message_id_domain)
    headers = {GATEWAY_HEADER: f"{notification.kind}; case={case.number}"}
    created_at = utcnow()
    headers.update(outlook_headers(case, created_at))
    row = OutboundMessage(
        case_id=case.id,
        kind=notification.kind,
        sender=settings.sender_address,
        sender_name=settings.desk.from_name,
        to=to,
        cc=cc,
        subject=rendered.subject,
        message_id=message_id,
        in_reply_to=history[-1] if history else None,
        references=history,
        headers=headers,
        text_body=rendered.text,
        html_body=rendered.html,
        created_at=created_at,
        next_attempt_at=created_at,
    )
    session.add(row)
    session.add(
        ThreadMessage(message_id=message_id, case_id=case.id, source=ThreadSource.SENT)
    )
    session.flush()
    log.info(
        "notification queued kind=%s case=%s outbound_id=%s message_id=%s",
        notification.kind,
        case.number,
        row.id,
        message_id,
    )
    return row


def compose_row(row: OutboundMessage) -> bytes:
    """Return the MIME bytes of an outbox row, composing them if not done yet."""
    if row.raw is not None:
        return row.raw
    return compose_message(
        sender_email=row.sender,
        sender_name=row.sender_name,
        to=list(row.to),
        cc=list(row.cc),
        rendered=RenderedMail(row.subject, row.text_body, row.html_body),
        message_id=row.message_id,
        in_reply_to=row.in_reply_to,
        references=list(row.references),
        extra_headers=dict(row.headers),
        date=row.created_at,
    )


def _thread_ids(session: Session, case_id: int) -> list[str]:
    rows = session.exec(
        select(ThreadMessage.message_id)
        .where(ThreadMessage.case_id == case_id)
        .order_by(col(ThreadMessage.id))
    ).all()
    return list(dict.fromkeys(rows))


def notification_context(
    settings: Settings,
    notification: Notification,
    contact: Contact | None,
    previous: Case | None,
) -> dict[str, Any]:
    """Return the template values of a notification about a case.

    ``previous`` is the closed case that the case continues, if any.
    """
    return {
        **lifecycle_context(settings, notification, contact, previous),
        **_context(settings, notification, contact),
    }


def _context(
    settings: Settings, notification: Notification, contact: Contact | None
) -> dict[str, Any]:
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
            "opened_at": case.opened_at.astimezone(DISPLAY_ZONE).strftime(
                DISPLAY_TIME_FORMATS[settings.desk.language]
            ),
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


@dataclass
class OutboxWriter:
    """A callable that queues notifications in one session and keeps their ids.

    The caller hands ``ids`` to delivery after the transaction commits.
    """

    session: Session
    settings: Settings
    renderer: TemplateRenderer
    ids: list[int] = field(default_factory=list)

    def __call__(self, notification: Notification) -> OutboundMessage | None:
        row = queue_notification(
            self.session, self.settings, self.renderer, notification
        )
        if row is not None and row.id is not None:
            self.ids.append(row.id)
        return row
