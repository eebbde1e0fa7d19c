"""The JSON shapes of the command line: cases, comments, outbox rows, ingest outcomes.

These shapes are a public interface (documented in the README): fields may
be added, never renamed or removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from gateway.attachments import attachment_path
from gateway.config import Settings
from gateway.inbound.parse import Address, ParsedAttachment, ParsedMessage
from gateway.inbound.process import Outcome
from gateway.lifecycle.reports import lifecycle_fields
from gateway.models import (
    DISPLAY_ZONE,
    Account,
    Attachment,
    Case,
    Comment,
    Contact,
    InboundMessage,
    OutboundMessage,
)
from gateway.models import case_number as number_of_case


def timestamp(value: datetime | None) -> str | None:
    """Return ``value`` as ISO 8601 with its offset, in Europe/Berlin time."""
    if value is None:
        return None
    return value.astimezone(DISPLAY_ZONE).isoformat()


def address_view(address: Address | None) -> dict[str, str]:
    if address is None:
        return {"email": "", "name": ""}
    return {"email": address.email, "name": address.name}


def case_view(
    session: Session, settings: Settings, case: Case, *, comments: bool
) -> dict[str, Any]:
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    account = session.get(Account, case.account_id) if case.account_id else None
    previous = (
        session.get(Case, case.previous_case_id) if case.previous_case_id else None
    )
    view: dict[str, Any] = {
        "number": case.number,
        "subject": case.subject,
        "status": case.status,
        "type": case.type,
        "severity": case.severity,
        "priority": case.priority,
        "customer_reference": case.customer_reference,
        "contact": {
            "email": contact.email if contact else "",
            "name": contact.name if contact else "",
        },
        "account": account.name if account else None,
        "cc": list(case.additional_recipients),
        "token": case.token,
        "legacy_number": case.legacy_number,
        "escalation_level": case.escalation_level,
        "previous_case": previous.number if previous else None,
        "opened_at": timestamp(case.opened_at),
        "last_modified_at": timestamp(case.last_modified_at),
        **lifecycle_fields(session, case),
    }
    if comments:
        view["comments"] = [
            comment_view(session, settings, comment)
            for comment in session.exec(
                select(Comment)
                .where(Comment.case_id == case.id)
                .order_by(col(Comment.id))
            ).all()
        ]
    return view


def attachment_fields(attachment: Attachment | ParsedAttachment) -> dict[str, Any]:
    """Return the fields that a stored and a parsed attachment share."""
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "inline": attachment.inline,
    }


def comment_view(
    session: Session, settings: Settings, comment: Comment
) -> dict[str, Any]:
    attachments = session.exec(
        select(Attachment)
        .where(Attachment.comment_id == comment.id)
        .order_by(col(Attachment.id))
    ).all()
    return {
        "id": comment.id,
        "author": comment.author,
        "author_name": comment.author_name,
        "author_kind": comment.author_kind,
        "text": comment.new_text,
        "full_text": comment.full_text,
        "created_at": timestamp(comment.created_at),
        "attachments": [
            {
                **attachment_fields(a),
                "content_id": a.content_id,
                "path": str(attachment_path(settings.store.data_dir, a.sha256)),
            }
            for a in attachments
        ],
    }


def outbound_view(row: OutboundMessage, case_number: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "case": case_number,
        "kind": row.kind,
        "to": list(row.to),
        "cc": list(row.cc),
        "subject": row.subject,
        "message_id": row.message_id,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": timestamp(row.created_at),
        "sent_at": timestamp(row.sent_at),
        "next_attempt_at": (
            timestamp(row.next_attempt_at) if row.status == "queued" else None
        ),
    }


def inbound_view(row: InboundMessage, case_number: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "reason": row.reason,
        "error": row.error,
        "source": row.source,
        "received_at": timestamp(row.received_at),
        "processed_at": timestamp(row.processed_at),
        "message_id": row.message_id,
        "from": row.sender,
        "subject": row.subject,
        "size": row.size,
        "case": case_number,
        "matched_by": row.matched_by,
        "duplicate_of": row.duplicate_of_id,
        "attempts": row.attempts,
        "candidate_case": number_of_case(row.candidate_case_id),
    }


def message_view(message: ParsedMessage | None, new_text: str) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "message_id": message.message_id,
        "subject": message.subject,
        "from": address_view(message.sender),
        "to": [a.email for a in message.to],
        "cc": [a.email for a in message.cc],
        "date": message.date.isoformat() if message.date else None,
        "in_reply_to": list(message.in_reply_to),
        "references": list(message.references),
        "text": new_text,
        "full_text": message.text,
        "attachments": [attachment_fields(a) for a in message.attachments],
        "defects": list(message.defects),
    }


def outcome_view(outcome: Outcome) -> dict[str, Any]:
    return {
        "inbound_id": outcome.inbound_id,
        "state": outcome.state,
        "reason": outcome.reason,
        "case": outcome.case_number,
        "comment": outcome.comment_id,
        "matched_by": outcome.matched_by,
        "duplicate_of": outcome.duplicate_of,
        "message": message_view(outcome.message, outcome.new_text),
        "bounce": outcome.bounce,
    }
