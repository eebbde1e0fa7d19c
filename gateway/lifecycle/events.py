"""Lifecycle steps for a new case and for a new comment on a case.

The functions run inside the caller's transaction and hand every mail they
cause to ``notify``, which writes it to the outbox in that transaction.
``now`` is the time of the event, passed in so tests can set the clock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session, col, select

from gateway.config import Settings
from gateway.inbound.parse import ParsedMessage
from gateway.lifecycle.calendar import response_due
from gateway.lifecycle.commands import (
    CASE_MARKER_PATTERN,
    REPLY_PREFIX_PATTERN,
    TOKEN_PATTERN,
    Command,
    find_command,
)
from gateway.lifecycle.status import move, record_opening
from gateway.lifecycle.surveys import answer_survey, open_survey, rating_links
from gateway.models import (
    AuthorKind,
    Case,
    CaseStatus,
    Comment,
    Contact,
    OutboundMessage,
    Severity,
    StatusCause,
)
from gateway.outbound.outbox import Notification

log = logging.getLogger(__name__)

Notify = Callable[[Notification], OutboundMessage | None]

MAX_ESCALATION_LEVEL = 4
# A first mail may set its severity with a tag in the subject, such as
# "[Critical] Server down" or "[Kritisch] Server steht".
SEVERITY_TAGS = {
    "critical": Severity.CRITICAL,
    "kritisch": Severity.CRITICAL,
    "urgent": Severity.URGENT,
    "dringend": Severity.URGENT,
    "standard": Severity.STANDARD,
    "low": Severity.LOW,
    "niedrig": Severity.LOW,
}
SEVERITY_TAG_PATTERN = re.compile(r"\[\s*([A-Za-z]+)\s*\]")


def severity_of_subject(subject: str) -> Severity | None:
    """Return the severity that a tag in ``subject`` names, or None."""
    for match in SEVERITY_TAG_PATTERN.finditer(subject):
        severity = SEVERITY_TAGS.get(match.group(1).lower())
        if severity is not None:
            return severity
    return None


def linked_case_subject(subject: str) -> str:
    """Return the subject of a reply to a closed case without its marker and token.

    Left in the new case's subject, the closed case's token would come before
    the new case's own token in every notification, so each reply to the new
    case would match the closed case and open yet another case.
    """
    text = CASE_MARKER_PATTERN.sub(" ", TOKEN_PATTERN.sub(" ", subject))
    return REPLY_PREFIX_PATTERN.sub("", " ".join(text.split()))


def case_opened(
    session: Session,
    settings: Settings,
    case: Case,
    comment: Comment,
    notify: Notify,
    now: datetime,
) -> None:
    """Start the lifecycle of a new case: history, due times, confirmation.

    A Critical case also notifies the responsible customer service manager.
    """
    tagged = severity_of_subject(case.subject)
    if tagged is not None:
        case.severity = tagged.value
    record_opening(session, case, StatusCause.COMMENT, now)
    case.first_response_due = response_due(settings.sla, case.severity, case.opened_at)
    case.next_response_due = case.first_response_due
    session.add(case)
    notify(Notification("confirmation", case, comment))
    if case.severity == Severity.CRITICAL.value:
        manager = settings.escalation.critical or settings.escalation.level_1
        _notify_manager(case, manager, "critical", comment, notify)


def comment_added(
    session: Session,
    settings: Settings,
    case: Case,
    comment: Comment,
    notify: Notify,
    now: datetime,
    *,
    subject: str = "",
) -> Command | None:
    """Move the case as its new comment demands and queue the mails; return the command.

    A staff comment answers the customer: Waiting on Customer and a
    comment-update mail. A customer reply runs its command, if it has one,
    or else sets In Progress; a reply to a Pending Closure case reopens it.
    """
    if comment.author_kind == AuthorKind.STAFF.value:
        _staff_answered(session, case, now)
        notify(Notification("comment_update", case, comment))
        return None
    if comment.author_kind != AuthorKind.CUSTOMER.value:
        return None
    command = find_command(subject, comment.new_text, case.subject)
    if command is Command.CLOSE:
        close_case(session, settings, case, StatusCause.COMMAND, notify, now)
    elif command is Command.ESCALATE:
        escalate_case(session, settings, case, comment, notify, now)
    elif command in (Command.FOLLOW, Command.UNFOLLOW):
        _change_followers(session, case, comment.author, command is Command.FOLLOW)
    else:
        _customer_replied(session, settings, case, comment, notify, now)
    return command


def _staff_answered(session: Session, case: Case, now: datetime) -> None:
    if case.first_response_at is None:
        case.first_response_at = now
    case.next_response_due = None
    if not move(
        session, case, CaseStatus.WAITING_ON_CUSTOMER, StatusCause.COMMENT, now
    ):
        # A further answer while waiting starts the pending-closure timer anew.
        case.status_since = now
    session.add(case)


def _customer_replied(
    session: Session,
    settings: Settings,
    case: Case,
    comment: Comment,
    notify: Notify,
    now: datetime,
) -> None:
    _await_answer(settings, case, now)
    status = CaseStatus(case.status)
    if status in (CaseStatus.WAITING_ON_CUSTOMER, CaseStatus.PENDING_CLOSURE):
        move(session, case, CaseStatus.IN_PROGRESS, StatusCause.COMMENT, now)
    if status is CaseStatus.PENDING_CLOSURE:
        notify(Notification("reopened", case, comment))
    session.add(case)


def _await_answer(settings: Settings, case: Case, now: datetime) -> None:
    """Set the due time of the answer to a customer message sent at ``now``.

    The oldest unanswered customer message sets it, so a reminder or an
    escalation before staff answered does not move the deadline later.
    """
    due = response_due(settings.sla, case.severity, now)
    if case.next_response_due is None or due < case.next_response_due:
        case.next_response_due = due


def close_case(
    session: Session,
    settings: Settings,
    case: Case,
    cause: StatusCause,
    notify: Notify,
    now: datetime,
) -> None:
    """Close ``case`` and send the satisfaction survey, once per closing."""
    if move(session, case, CaseStatus.CLOSED, cause, now):
        send_survey(session, settings, case, notify, now)


def send_survey(
    session: Session, settings: Settings, case: Case, notify: Notify, now: datetime
) -> None:
    """Queue the closing mail with the survey and record the survey."""
    case.next_response_due = None
    session.add(case)
    links = rating_links(
        settings.desk.language, settings.sender_address, case.number, case.token
    )
    row = notify(Notification("survey", case, context={"ratings": links}))
    open_survey(session, case, row.message_id if row else None, now)


def escalate_case(
    session: Session,
    settings: Settings,
    case: Case,
    comment: Comment | None,
    notify: Notify,
    now: datetime,
) -> None:
    """Raise the escalation level (at most 4), notify its manager and the customer."""
    case.escalation_level = min(case.escalation_level + 1, MAX_ESCALATION_LEVEL)
    move(session, case, CaseStatus.ESCALATED, StatusCause.COMMAND, now)
    _await_answer(settings, case, now)
    session.add(case)
    manager = getattr(settings.escalation, f"level_{case.escalation_level}")
    _notify_manager(case, manager, "escalation", comment, notify)
    notify(Notification("escalation_confirmation", case, comment))


def _notify_manager(
    case: Case, manager: str, reason: str, comment: Comment | None, notify: Notify
) -> None:
    if not manager:
        log.warning(
            "no manager configured for the notice reason=%s case=%s level=%d",
            reason,
            case.number,
            case.escalation_level,
        )
        return
    notify(
        Notification(
            "escalation_notice",
            case,
            comment,
            recipients=(manager,),
            context={"reason": reason},
        )
    )


def _change_followers(session: Session, case: Case, address: str, follow: bool) -> None:
    email = address.strip().lower()
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    if contact is not None and contact.email == email:
        log.info("follow command from the contact ignored case=%s", case.number)
        return
    current = [a for a in case.additional_recipients if a.lower() != email]
    # A new list, so the ORM detects the change of the JSON column.
    case.additional_recipients = [*current, email] if follow else current
    session.add(case)
    log.info(
        "case %s case=%s address=%s",
        "followed" if follow else "unfollowed",
        case.number,
        email,
    )


def is_survey_answer(
    session: Session, case: Case, message: ParsedMessage, new_text: str, now: datetime
) -> bool:
    """Record a reply to a Closed case as its survey answer; return whether it was."""
    if case.status != CaseStatus.CLOSED.value or message.sender is None:
        return False
    survey = answer_survey(
        session,
        case,
        subject=message.subject,
        new_text=new_text,
        sender=message.sender.email,
        now=now,
    )
    return survey is not None


def is_closed_case_command(
    session: Session, case: Case, message: ParsedMessage, new_text: str
) -> bool:
    """Run a close or unfollow command sent to a Closed case; return whether it was one.

    Both ask for what the closed case already is or can have at once, so
    opening a new case for them, as for any other reply, would undo them.
    """
    if case.status != CaseStatus.CLOSED.value or message.sender is None:
        return False
    command = find_command(message.subject, new_text, case.subject)
    if command is Command.UNFOLLOW:
        _change_followers(session, case, message.sender.email, follow=False)
    return command in (Command.CLOSE, Command.UNFOLLOW)


def change_severity(
    session: Session,
    settings: Settings,
    case: Case,
    severity: Severity,
    notify: Notify,
    now: datetime,
) -> None:
    """Set a case's severity and its due times; notify the manager when Critical.

    The due times are computed anew from their own starts: the opening for
    the first response, the latest customer comment for the next one.
    """
    if case.severity == severity.value:
        return
    case.severity = severity.value
    case.last_modified_at = now
    if case.first_response_at is None:
        case.first_response_due = response_due(
            settings.sla, case.severity, case.opened_at
        )
    if case.next_response_due is not None:
        start = _latest_customer_comment(session, case) or case.opened_at
        case.next_response_due = response_due(settings.sla, case.severity, start)
    session.add(case)
    log.info("case severity changed case=%s severity=%s", case.number, severity.value)
    if severity is Severity.CRITICAL:
        manager = settings.escalation.critical or settings.escalation.level_1
        _notify_manager(case, manager, "critical", None, notify)


def _latest_customer_comment(session: Session, case: Case) -> datetime | None:
    return session.exec(
        select(Comment.created_at)
        .where(Comment.case_id == case.id)
        .where(Comment.author_kind == AuthorKind.CUSTOMER.value)
        .order_by(col(Comment.id).desc())
    ).first()
