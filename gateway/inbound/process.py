"""Process one stored inbound message: parse, classify, route, apply, notify.

Parsing happens outside the transaction. The transaction then locks the
inbound row, checks that no other worker finished it meanwhile, applies the
result and sets the final state, so a message processed twice (a retry, a
second worker, a replay) changes the store once. Notifications are written
to the outbox in the same transaction and handed to delivery after commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway.attachments import store_attachment
from gateway.cases import NewComment, add_comment, find_or_create_contact, open_case
from gateway.db import read_only, session_scope
from gateway.errors import CaseNotFound
from gateway.inbound.classify import Classification, classify
from gateway.inbound.extract import extract_reply
from gateway.inbound.machine import clear_bounces, note_auto_reply, record_bounce
from gateway.inbound.parse import Address, ParsedMessage, parse_message
from gateway.inbound.ratelimit import is_backlog, loop_by_rate
from gateway.inbound.spool import load_raw
from gateway.lifecycle.events import (
    case_opened,
    comment_added,
    is_closed_case_command,
    is_survey_answer,
    linked_case_subject,
)
from gateway.models import (
    FINAL_INBOUND_STATES,
    AuthorKind,
    Case,
    CaseStatus,
    InboundMessage,
    InboundState,
    OutboundMessage,
    ThreadMessage,
    ThreadSource,
    as_utc,
    case_number,
    utcnow,
)
from gateway.outbound.outbox import Notification, queue_notification
from gateway.runtime import Runtime
from gateway.threading.route import NEW, Match, find_candidates
from gateway.threading.senders import Decision, decide

log = logging.getLogger(__name__)

NO_SUBJECT = "(no subject)"
MAX_STORED_SUBJECT = 255
# Mails above this size may take seconds to parse; the sweep leaves them to
# the worker that took them for SLOW_MAIL_GRACE.
SLOW_MAIL_BYTES = 256 * 1024
SLOW_MAIL_GRACE = timedelta(minutes=10)
MAX_STORED_ERROR = 2000
# A first mail's To and Cc addresses follow the case. More than this many is
# not a colleague list but a mass mailing, and the confirmation to all of
# them would amplify it.
MAX_ADDITIONAL_RECIPIENTS = 20
# A concurrent worker may commit the same message first. The unique key on
# the first copy then fails this transaction once, and the retry finds the
# duplicate.
MAX_TRANSACTION_TRIES = 3
# The actions of AdminDecision, and the matched_by of an assigned mail.
ASSIGN = "assign"
OPEN = "open"
REPLAY = "replay"
ASSIGNED = "assigned"


@dataclass
class Outcome:
    """The recorded result of processing one inbound message."""

    inbound_id: int
    state: str
    reason: str = ""
    case_number: str | None = None
    comment_id: int | None = None
    matched_by: str | None = None
    message: ParsedMessage | None = None
    new_text: str = ""
    bounce: dict[str, object] | None = None
    duplicate_of: int | None = None
    queued_outbound: list[int] = field(default_factory=list)


class InboundNotFound(LookupError):
    pass


@dataclass(frozen=True)
class AdminDecision:
    """An admin's routing of a mail from the unmatched queue.

    ``action`` is ``assign`` (comment on ``case_id``), ``open`` (a new case)
    or ``replay`` (route again by the rules). ``record`` runs inside the
    transaction that applies the decision, so its audit row commits with it.
    """

    action: str
    case_id: int | None = None
    record: Callable[[Session, InboundMessage, Outcome], None] | None = None


def process_inbound(
    runtime: Runtime,
    inbound_id: int,
    *,
    retry: bool = False,
    decision: AdminDecision | None = None,
) -> Outcome:
    """Process the stored message ``inbound_id`` unless it is finished already.

    An unexpected error is recorded on the row. With ``retry`` it is
    re-raised while attempts remain (``[worker] max_process_attempts``), so
    that the job runs again. The last attempt, or any attempt without
    ``retry``, marks the row ``failed`` and returns that outcome.
    A ``decision`` processes an unmatched row again; its errors are raised.
    """
    if decision is not None:
        return _process(runtime, inbound_id, decision)
    try:
        return _process(runtime, inbound_id)
    except InboundNotFound:
        raise
    except Exception as exc:
        log.exception("processing failed inbound_id=%d", inbound_id)
        final = _record_failure(runtime, inbound_id, exc, always_final=not retry)
        if not final:
            raise
        return Outcome(inbound_id, InboundState.FAILED.value, reason=f"error: {exc}")


def _process(
    runtime: Runtime, inbound_id: int, decision: AdminDecision | None = None
) -> Outcome:
    with Session(read_only(runtime.engine), expire_on_commit=False) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            raise InboundNotFound(f"inbound message {inbound_id} not found")
        raw = load_raw(row)
    if row.state not in FINAL_INBOUND_STATES and row.size > SLOW_MAIL_BYTES:
        _hold_off_sweep(runtime, inbound_id)
    parsed = parse_message(raw)
    new_text = extract_reply(parsed)
    if _finished(row, decision):
        return outcome_of(row, parsed, new_text)
    dedup_key = dedup_key_of(parsed, raw)
    # Outside the transaction: reading a bounce parses the mail once more.
    settings = runtime.settings
    classification = classify(
        parsed,
        raw=raw,
        envelope_sender=envelope_sender(row, parsed),
        own_message_id_domain=settings.desk.message_id_domain,
        support_addresses=settings.desk.support_addresses,
        new_text=new_text,
    )
    # Attachment files are content-addressed, so writing them before the
    # transaction is safe even if it rolls back, and keeps the fsyncs of
    # many files out of the time the write lock is held.
    for attachment in parsed.attachments:
        store_attachment(
            runtime.settings.store.data_dir, attachment.sha256, attachment.content
        )
    outcome = _apply_in_transaction(
        runtime,
        inbound_id,
        _Input(parsed, new_text, dedup_key, classification),
        decision,
    )

    if outcome.queued_outbound:
        runtime.outbound_queued(outcome.queued_outbound)
    log.info(
        "mail %s inbound_id=%d reason=%s case=%s matched_by=%s message_id=%s",
        outcome.state,
        inbound_id,
        outcome.reason or "-",
        outcome.case_number or "-",
        outcome.matched_by or "-",
        parsed.message_id,
    )
    return outcome


@dataclass(frozen=True)
class _Input:
    """The results of the steps that run before the transaction of a mail."""

    parsed: ParsedMessage
    new_text: str
    dedup_key: str
    classification: Classification


def _finished(row: InboundMessage, decision: AdminDecision | None) -> bool:
    """Return whether ``row`` keeps its outcome: final, and no admin reroutes it."""
    if row.state not in FINAL_INBOUND_STATES:
        return False
    return decision is None or row.state != InboundState.UNMATCHED


def _apply_in_transaction(
    runtime: Runtime,
    inbound_id: int,
    data: _Input,
    decision: AdminDecision | None,
) -> Outcome:
    """Apply the parsed message in one transaction on the locked inbound row.

    A row another worker finished meanwhile keeps its outcome. A unique-key
    conflict (a copy committed concurrently) is tried again.
    """
    for attempt in range(1, MAX_TRANSACTION_TRIES + 1):
        try:
            with session_scope(runtime.engine) as session:
                locked = session.get(InboundMessage, inbound_id, with_for_update=True)
                assert locked is not None
                if _finished(locked, decision):
                    return outcome_of(locked, data.parsed, data.new_text)
                outcome = _apply(session, runtime, locked, data, decision)
                if decision is not None and decision.record is not None:
                    decision.record(session, locked, outcome)
                return outcome
        except IntegrityError:
            if attempt == MAX_TRANSACTION_TRIES:
                raise
            log.info("retrying after a concurrent commit inbound_id=%d", inbound_id)
    raise AssertionError("unreachable: the last try returns or raises")


def _hold_off_sweep(runtime: Runtime, inbound_id: int) -> None:
    """Keep the periodic sweep from handing a large mail to a second worker.

    Parsing a mail of several MiB can take longer than the sweep's requeue
    grace; without this, every worker thread would end up parsing it.
    """
    with session_scope(runtime.engine) as session:
        session.execute(
            update(InboundMessage)
            .where(col(InboundMessage.id) == inbound_id)
            .values(enqueued_at=utcnow() + SLOW_MAIL_GRACE)
        )


def dedup_key_of(message: ParsedMessage, raw: bytes) -> str:
    """Return the key that is equal for two deliveries of the same message.

    Trace headers differ between deliveries (Received, Delivered-To, IMAP
    flags), so the key covers the Message-ID, the headers that the author's
    client sets (From, Date, Subject, Content-Type) and the body bytes.
    """
    _headers, separator, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    if not separator:
        # No header block ends: the whole input is what identifies it.
        body = raw
    # A copy saved by hand may lack the final line end that SMTP adds.
    body = body.rstrip(b"\r\n")
    sender = message.sender.email if message.sender else ""
    date = message.date.isoformat() if message.date else ""
    fields = [
        message.message_id or "",
        sender,
        date,
        message.subject,
        message.header("Content-Type") or "",
    ]
    digest = hashlib.sha256("\0".join(fields).encode("utf-8", "replace"))
    digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _apply(
    session: Session,
    runtime: Runtime,
    row: InboundMessage,
    data: _Input,
    decision: AdminDecision | None,
) -> Outcome:
    settings = runtime.settings
    parsed, new_text, dedup_key = data.parsed, data.new_text, data.dedup_key
    outcome = Outcome(
        row.id or 0, InboundState.PROCESSED.value, message=parsed, new_text=new_text
    )
    by_rules = decision is None or decision.action == REPLAY
    first = None
    if by_rules:
        first = session.exec(
            select(InboundMessage)
            .where(InboundMessage.first_key == dedup_key)
            .where(col(InboundMessage.id) != row.id)
        ).first()
    if first is not None:
        outcome.state = InboundState.IGNORED.value
        outcome.reason = "duplicate"
        outcome.duplicate_of = first.id
        outcome.matched_by = first.matched_by
        row.duplicate_of_id = first.id
        row.case_id = first.case_id
        row.comment_id = first.comment_id
        outcome.case_number = case_number(first.case_id)
        outcome.comment_id = first.comment_id
        return _finish(session, row, outcome, parsed, dedup_key, first_key=None)

    classification = data.classification
    if by_rules:
        classification = _with_rate_limit(session, runtime, row, parsed, classification)
    if by_rules and classification.handled_as_machine_mail:
        outcome.state = classification.state
        outcome.reason = classification.reason
        row.error = classification.detail
        _record_machine_mail(session, runtime, row, data, classification, outcome)
        return _finish(session, row, outcome, parsed, dedup_key, first_key=dedup_key)

    sender = parsed.sender
    if sender is None or not sender.email:
        outcome.state = InboundState.UNMATCHED.value
        # A mail the parser could not read has no sender either, so the
        # reason distinguishes the two.
        outcome.reason = "malformed" if parsed.defects else "no_sender"
        row.error = "; ".join(parsed.defects)[:MAX_STORED_ERROR]
        return _finish(session, row, outcome, parsed, dedup_key, first_key=dedup_key)

    routing = _route(session, runtime, parsed, new_text, sender, decision)
    if routing.unmatched_reason:
        outcome.state = InboundState.UNMATCHED.value
        outcome.reason = routing.unmatched_reason
        row.error = routing.detail[:MAX_STORED_ERROR]
        row.candidate_case_id = routing.candidate.id if routing.candidate else None
        outcome.case_number = None
        log.warning(
            "mail held as unmatched reason=%s inbound_id=%s sender=%s detail=%s",
            routing.unmatched_reason,
            row.id,
            sender.email,
            routing.detail,
        )
        return _finish(session, row, outcome, parsed, dedup_key, first_key=dedup_key)
    match = routing.match
    row.candidate_case_id = None
    if decision is not None:
        # The reason it was held no longer applies.
        row.error = ""
    clear_bounces(session, sender.email)
    kind = (
        AuthorKind.STAFF
        if settings.is_staff_address(sender.email)
        else AuthorKind.CUSTOMER
    )
    new = NewComment(
        author=sender,
        kind=kind,
        new_text=new_text,
        full_text=parsed.text,
        attachments=parsed.attachments,
        inbound_message_id=row.id,
    )
    now = runtime.clock()

    def notify(notification: Notification) -> OutboundMessage | None:
        return _notify(session, runtime, outcome, notification)

    if match is not None:
        # The row lock keeps a timer pass from moving the case meanwhile.
        session.refresh(match.case, with_for_update=True)
    if match is not None and match.case.status != CaseStatus.CLOSED:
        case = match.case
        comment = add_comment(session, settings, case, new, now=now)
        outcome.matched_by = match.matched_by
        _remember_message_id(session, case, parsed)
        comment_added(
            session, settings, case, comment, notify, now, subject=parsed.subject
        )
    elif match is not None and kind is AuthorKind.STAFF:
        # Staff mail to a Closed case: a comment on it, relayed to the
        # customer. It is neither a survey answer nor a new case.
        case = match.case
        comment = add_comment(session, settings, case, new, touch_case=False, now=now)
        outcome.matched_by = match.matched_by
        _remember_message_id(session, case, parsed)
        notify(Notification("comment_update", case, comment))
    elif match is not None and (
        is_survey_answer(session, match.case, parsed, new_text, now)
        or is_closed_case_command(session, match.case, parsed, new_text)
    ):
        case = match.case
        comment = add_comment(session, settings, case, new, touch_case=False, now=now)
        outcome.matched_by = match.matched_by
        _remember_message_id(session, case, parsed)
    else:
        contact = find_or_create_contact(session, sender)
        subject = linked_case_subject(parsed.subject) if match else parsed.subject
        case, comment = open_case(
            session,
            settings,
            subject=subject or NO_SUBJECT,
            contact=contact,
            additional_recipients=_additional_recipients(runtime, parsed, sender),
            first_comment=new,
            previous_case=match.case if match else None,
            now=now,
        )
        outcome.matched_by = NEW
        _remember_message_id(session, case, parsed)
        case_opened(session, settings, case, comment, notify, now)
    row.case_id = case.id
    row.comment_id = comment.id
    outcome.case_number = case.number
    outcome.comment_id = comment.id
    return _finish(session, row, outcome, parsed, dedup_key, first_key=dedup_key)


def _with_rate_limit(
    session: Session,
    runtime: Runtime,
    row: InboundMessage,
    parsed: ParsedMessage,
    classification: Classification,
) -> Classification:
    """Return a loop classification when the sender is over the rate limit."""
    if classification.handled_as_machine_mail and classification.state == "ignored":
        return classification
    sender = parsed.sender.email if parsed.sender else ""
    if not sender:
        return classification
    written = sent_at(row, parsed)
    if written is not None and is_backlog(runtime.settings.routing, row, written):
        return classification
    detail = loop_by_rate(session, runtime.settings.routing, row, sender)
    return Classification("loop", detail) if detail else classification


def _record_machine_mail(
    session: Session,
    runtime: Runtime,
    row: InboundMessage,
    data: _Input,
    classification: Classification,
    outcome: Outcome,
) -> None:
    """Record a bounce, or note an automatic reply on its case; never notify."""
    settings = runtime.settings
    if classification.reason == "bounce" and classification.bounce is not None:
        outcome.bounce = record_bounce(session, settings, row, classification.bounce)
        number = outcome.bounce.get("case")
        row.case_id = int(number) if isinstance(number, str) else None
    elif classification.reason == "auto_reply":
        case = note_auto_reply(
            session, settings, row, data.parsed, data.new_text, classification.detail
        )
        row.case_id = case.id if case else None
    outcome.case_number = case_number(row.case_id)


def _route(
    session: Session,
    runtime: Runtime,
    parsed: ParsedMessage,
    new_text: str,
    sender: Address,
    decision: AdminDecision | None,
) -> Decision:
    """Return where the mail goes: an admin's decision, else the routing rules."""
    if decision is not None and decision.action == ASSIGN:
        case = session.get(Case, decision.case_id) if decision.case_id else None
        if case is None:
            raise CaseNotFound(str(decision.case_id))
        return Decision(match=Match(case, ASSIGNED))
    if decision is not None and decision.action == OPEN:
        return Decision()
    candidates = find_candidates(
        session, parsed, new_text, runtime.settings.desk.org_id
    )
    return decide(session, runtime.settings, candidates, sender.email)


def _notify(
    session: Session, runtime: Runtime, outcome: Outcome, notification: Notification
) -> OutboundMessage | None:
    queued = queue_notification(
        session, runtime.settings, runtime.renderer, notification
    )
    if queued is not None and queued.id is not None:
        outcome.queued_outbound.append(queued.id)
    return queued


def _remember_message_id(session: Session, case: Case, parsed: ParsedMessage) -> None:
    """Record the mail's Message-ID for the case, unless another case has it.

    The first case to know a Message-ID keeps it, so a stranger who reuses
    someone's Message-ID cannot divert the replies to that mail.
    """
    if not parsed.message_id or case.id is None:
        return
    known = session.exec(
        select(ThreadMessage.case_id).where(
            ThreadMessage.message_id == parsed.message_id
        )
    ).first()
    if known is None:
        session.add(
            ThreadMessage(
                message_id=parsed.message_id,
                case_id=case.id,
                source=ThreadSource.RECEIVED,
            )
        )


def _additional_recipients(
    runtime: Runtime, parsed: ParsedMessage, sender: Address
) -> list[str]:
    """Return the other people a first mail was addressed to: they follow the case."""
    settings = runtime.settings
    result = []
    for address in [*parsed.to, *parsed.cc]:
        email = address.email
        if not email or email.lower() == sender.email.lower():
            continue
        if settings.is_support_address(email) or settings.is_staff_address(email):
            continue
        result.append(email)
    if len(result) > MAX_ADDITIONAL_RECIPIENTS:
        log.warning(
            "additional recipients cut sender=%s count=%d kept=%d",
            sender.email,
            len(result),
            MAX_ADDITIONAL_RECIPIENTS,
        )
    return result[:MAX_ADDITIONAL_RECIPIENTS]


def _finish(
    session: Session,
    row: InboundMessage,
    outcome: Outcome,
    parsed: ParsedMessage,
    dedup_key: str,
    first_key: str | None,
) -> Outcome:
    """Record the outcome on the row.

    The row's columns are set here, at the end, so that the queries before
    do not each autoflush an UPDATE of it. ``first_key`` is None for a
    duplicate, which must not claim the key of the first copy.
    """
    row.message_id = parsed.message_id
    row.sender = parsed.sender.email if parsed.sender else ""
    row.subject = parsed.subject[:MAX_STORED_SUBJECT]
    row.sent_at = sent_at(row, parsed)
    row.dedup_key = dedup_key
    row.first_key = first_key
    row.state = outcome.state
    row.reason = outcome.reason
    row.matched_by = outcome.matched_by
    row.processed_at = utcnow()
    session.add(row)
    return outcome


def sent_at(row: InboundMessage, parsed: ParsedMessage) -> datetime | None:
    """Return the Date header in UTC, or None when it is missing or in the future."""
    if parsed.date is None:
        return None
    written = parsed.date.astimezone(UTC)
    received = as_utc(row.received_at)
    return written if written <= received else None


def envelope_sender(row: InboundMessage, parsed: ParsedMessage) -> str | None:
    """Return the envelope sender (reverse path) if the transport recorded one."""
    mail_from = row.envelope.get("mail_from")
    if isinstance(mail_from, str):
        return mail_from
    return_path = parsed.header("Return-Path")
    if return_path is not None:
        return return_path.strip()
    return None


def outcome_of(row: InboundMessage, parsed: ParsedMessage, new_text: str) -> Outcome:
    """Return the outcome already recorded on a finished row."""
    return Outcome(
        row.id or 0,
        row.state,
        reason=row.reason
        or (f"error: {row.error}" if row.error and row.state == "failed" else ""),
        case_number=case_number(row.case_id),
        comment_id=row.comment_id,
        matched_by=row.matched_by,
        message=parsed,
        new_text=new_text,
        duplicate_of=row.duplicate_of_id,
    )


def _record_failure(
    runtime: Runtime, inbound_id: int, error: Exception, *, always_final: bool
) -> bool:
    """Count a failed attempt; return True when it was the last one."""
    with session_scope(runtime.engine) as session:
        row = session.get(InboundMessage, inbound_id, with_for_update=True)
        if row is None or row.state in FINAL_INBOUND_STATES:
            return True
        row.attempts += 1
        row.error = f"{type(error).__name__}: {error}"
        final = (
            always_final or row.attempts >= runtime.settings.worker.max_process_attempts
        )
        if final:
            row.state = InboundState.FAILED.value
            row.reason = "error"
            row.processed_at = utcnow()
        session.add(row)
        return final
