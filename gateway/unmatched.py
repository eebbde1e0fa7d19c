"""The unmatched queue: mail held for an admin, and the actions that release it.

A mail is in the queue while its state is ``unmatched``. Only these
actions change that state, and each one writes an UnmatchedAction row
(who, when, what, the result) in the transaction that applies it:

- ``assign``: post the mail as a comment on a given case;
- ``open``: open a new case from it (the sender gets a confirmation);
- ``discard``: drop it, with a reason (state ``ignored``, reason
  ``discarded``);
- ``replay``: route it again by the rules, e.g. after a contact was added;
  it may come back to the queue.
"""

from __future__ import annotations

import getpass
import logging
import os
from typing import Any

from sqlmodel import Session, col, select

from gateway.cases import get_case
from gateway.db import read_only, session_scope
from gateway.errors import InvalidInput
from gateway.inbound.extract import extract_reply
from gateway.inbound.parse import parse_message
from gateway.inbound.process import (
    ASSIGN,
    OPEN,
    REPLAY,
    AdminDecision,
    Outcome,
    process_inbound,
)
from gateway.inbound.spool import load_raw
from gateway.models import (
    InboundMessage,
    InboundState,
    UnmatchedAction,
    case_number,
    utcnow,
)
from gateway.runtime import Runtime
from gateway.views import timestamp

log = logging.getLogger(__name__)

DISCARD = "discard"
DISCARDED = "discarded"


def default_actor() -> str:
    """Return the name of the OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def queued_mails(runtime: Runtime, limit: int) -> list[dict[str, Any]]:
    """Return the views of the mails in the queue, oldest first."""
    with Session(read_only(runtime.engine)) as session:
        rows = session.exec(
            select(InboundMessage)
            .where(InboundMessage.state == InboundState.UNMATCHED.value)
            .order_by(col(InboundMessage.id))
            .limit(limit)
        ).all()
        return [queue_view(row) for row in rows]


def queue_view(row: InboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "reason": row.reason,
        "detail": row.error,
        "from": row.sender,
        "subject": row.subject,
        "received_at": timestamp(row.received_at),
        "candidate_case": case_number(row.candidate_case_id),
        "message_id": row.message_id,
        "source": row.source,
    }


def action_view(action: UnmatchedAction) -> dict[str, Any]:
    return {
        "id": action.id,
        "action": action.action,
        "actor": action.actor,
        "reason": action.reason,
        "case": case_number(action.case_id),
        "result_state": action.result_state,
        "result_reason": action.result_reason,
        "created_at": timestamp(action.created_at),
    }


def show_mail(runtime: Runtime, inbound_id: int) -> dict[str, Any]:
    """Return one mail with its text and every admin action taken on it."""
    with Session(read_only(runtime.engine)) as session:
        row = _get(session, inbound_id)
        actions = session.exec(
            select(UnmatchedAction)
            .where(UnmatchedAction.inbound_message_id == inbound_id)
            .order_by(col(UnmatchedAction.id))
        ).all()
        raw = load_raw(row)
        view = queue_view(row)
        view["case"] = case_number(row.case_id)
        view["actions"] = [action_view(a) for a in actions]
    parsed = parse_message(raw)
    view["to"] = [a.email for a in parsed.to]
    view["cc"] = [a.email for a in parsed.cc]
    view["in_reply_to"] = list(parsed.in_reply_to)
    view["references"] = list(parsed.references)
    view["text"] = extract_reply(parsed)
    view["full_text"] = parsed.text
    return view


def assign(runtime: Runtime, inbound_id: int, number: str, actor: str) -> Outcome:
    """Post the queued mail as a comment on case ``number``."""
    with Session(read_only(runtime.engine)) as session:
        case_id = get_case(session, number).id
        _check_queued(_get(session, inbound_id), needs_sender=True)
    return _decide(runtime, inbound_id, ASSIGN, actor, case_id)


def open_new_case(runtime: Runtime, inbound_id: int, actor: str) -> Outcome:
    """Open a new case from the queued mail."""
    with Session(read_only(runtime.engine)) as session:
        _check_queued(_get(session, inbound_id), needs_sender=True)
    return _decide(runtime, inbound_id, OPEN, actor, None)


def replay(runtime: Runtime, inbound_id: int, actor: str) -> Outcome:
    """Route the queued mail again by the rules."""
    with Session(read_only(runtime.engine)) as session:
        _check_queued(_get(session, inbound_id), needs_sender=False)
    return _decide(runtime, inbound_id, REPLAY, actor, None)


def discard(runtime: Runtime, inbound_id: int, reason: str, actor: str) -> None:
    """Drop the queued mail; ``reason`` is kept in the audit record."""
    if not reason.strip():
        raise InvalidInput("--reason is empty: say why the mail is discarded")
    with session_scope(runtime.engine) as session:
        row = session.get(InboundMessage, inbound_id, with_for_update=True)
        if row is None:
            raise InvalidInput(f"inbound mail {inbound_id} not found")
        _check_queued(row, needs_sender=False)
        row.state = InboundState.IGNORED.value
        row.reason = DISCARDED
        row.processed_at = utcnow()
        session.add(row)
        session.add(
            UnmatchedAction(
                inbound_message_id=inbound_id,
                action=DISCARD,
                actor=actor,
                reason=reason.strip(),
                result_state=row.state,
                result_reason=row.reason,
            )
        )
    log.info("unmatched mail discarded inbound_id=%d actor=%s", inbound_id, actor)


def _decide(
    runtime: Runtime, inbound_id: int, action: str, actor: str, case_id: int | None
) -> Outcome:
    recorded: list[UnmatchedAction] = []

    def record(session: Session, row: InboundMessage, outcome: Outcome) -> None:
        entry = UnmatchedAction(
            inbound_message_id=inbound_id,
            action=action,
            actor=actor,
            case_id=row.case_id if outcome.case_number else case_id,
            result_state=outcome.state,
            result_reason=outcome.reason,
        )
        session.add(entry)
        recorded.append(entry)

    decision = AdminDecision(action, case_id=case_id, record=record)
    outcome = process_inbound(runtime, inbound_id, decision=decision)
    if not recorded:
        # Another admin's action finished the mail first.
        raise InvalidInput(
            f"inbound mail {inbound_id} left the unmatched queue meanwhile "
            f"(state {outcome.state}); nothing was done"
        )
    log.info(
        "unmatched mail %s inbound_id=%d actor=%s state=%s case=%s",
        action,
        inbound_id,
        actor,
        outcome.state,
        outcome.case_number or "-",
    )
    return outcome


def _get(session: Session, inbound_id: int) -> InboundMessage:
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise InvalidInput(f"inbound mail {inbound_id} not found")
    return row


def _check_queued(row: InboundMessage, *, needs_sender: bool) -> None:
    if row.state != InboundState.UNMATCHED:
        raise InvalidInput(
            f"inbound mail {row.id} is not in the unmatched queue "
            f"(state {row.state}, reason {row.reason or '-'})"
        )
    if needs_sender and not row.sender:
        raise InvalidInput(
            f"inbound mail {row.id} has no sender address, so it cannot become a "
            "comment or a case; discard it instead"
        )
