"""The lifecycle timers: Waiting on Customer -> Pending Closure -> Closed.

One pass (``run_tick``) moves every case whose timer ran out. Each move is
a conditional UPDATE (``WHERE status = <old status> AND status_since <=
cutoff``) in the same transaction as its history row and its mail. Of two
passes at the same time (threads, processes, or a pass after a restart),
only the one whose UPDATE changed the row queues the mail. On PostgreSQL
the second UPDATE waits for the first one's row lock and then finds the
status changed. On SQLite every write transaction holds the one write lock.

A pass moves nothing while mail received before its time is still
unprocessed: that mail may be the customer's reply that stops the timer,
and closing first would turn the reply into a new case.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, update
from sqlmodel import Session, col, select

from gateway.db import read_only, session_scope
from gateway.lifecycle.events import send_survey
from gateway.models import (
    FINAL_INBOUND_STATES,
    Case,
    CaseStatus,
    InboundMessage,
    StatusCause,
    StatusChange,
)
from gateway.outbound.outbox import Notification, OutboxWriter
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

TICK_BATCH = 500


@dataclass
class TickResult:
    """The cases one pass moved, by number, and the outbox rows it queued."""

    pending: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    queued_outbound: list[int] = field(default_factory=list)
    #: Mails received by the pass's time and not yet processed; while there
    #: are any, the pass moves no case.
    waiting_mail: int = 0


def run_tick(runtime: Runtime, now: datetime) -> TickResult:
    """Move every case whose timer ran out by ``now`` and queue its mail."""
    lifecycle = runtime.settings.lifecycle
    result = TickResult(waiting_mail=_unprocessed_mail(runtime, now))
    if result.waiting_mail:
        log.warning(
            "timers wait for unprocessed mail count=%d now=%s",
            result.waiting_mail,
            now.isoformat(),
        )
        return result
    steps = (
        (
            CaseStatus.WAITING_ON_CUSTOMER,
            CaseStatus.PENDING_CLOSURE,
            now - timedelta(days=lifecycle.pending_after_days),
            result.pending,
        ),
        (
            CaseStatus.PENDING_CLOSURE,
            CaseStatus.CLOSED,
            now - timedelta(days=lifecycle.close_after_days),
            result.closed,
        ),
    )
    for source, target, cutoff, moved in steps:
        for case_id in _due_cases(runtime, source, cutoff):
            queued = _advance(runtime, case_id, source, target, cutoff, now)
            if queued is not None:
                moved.append(f"{case_id:08d}")
                result.queued_outbound.extend(queued)
    if result.queued_outbound:
        runtime.outbound_queued(result.queued_outbound)
    if result.pending or result.closed:
        log.info(
            "timers moved cases pending=%s closed=%s", result.pending, result.closed
        )
    return result


def _unprocessed_mail(runtime: Runtime, now: datetime) -> int:
    final = [state.value for state in FINAL_INBOUND_STATES]
    with Session(read_only(runtime.engine)) as session:
        count: int = session.exec(
            select(func.count())
            .select_from(InboundMessage)
            .where(col(InboundMessage.state).not_in(final))
            .where(col(InboundMessage.received_at) <= now)
        ).one()
    return count


def _timer_ran_out(cutoff: datetime) -> ColumnElement[bool]:
    # Cases from before the lifecycle columns existed have no status_since.
    start = func.coalesce(col(Case.status_since), col(Case.last_modified_at))
    return start <= cutoff


def _due_cases(runtime: Runtime, status: CaseStatus, cutoff: datetime) -> list[int]:
    with Session(read_only(runtime.engine)) as session:
        rows = session.exec(
            select(Case.id)
            .where(Case.status == status.value)
            .where(_timer_ran_out(cutoff))
            .order_by(col(Case.id))
            .limit(TICK_BATCH)
        ).all()
    return [row for row in rows if row is not None]


def _advance(
    runtime: Runtime,
    case_id: int,
    source: CaseStatus,
    target: CaseStatus,
    cutoff: datetime,
    now: datetime,
) -> list[int] | None:
    """Move one case if it is still due; return the queued outbox ids, or None."""
    with session_scope(runtime.engine) as session:
        changed = session.execute(
            update(Case)
            .where(col(Case.id) == case_id)
            .where(col(Case.status) == source.value)
            .where(_timer_ran_out(cutoff))
            .values(status=target.value, status_since=now, last_modified_at=now)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        session.add(
            StatusChange(
                case_id=case_id,
                at=now,
                from_status=source.value,
                to_status=target.value,
                cause=StatusCause.TIMER.value,
            )
        )
        case = session.get(Case, case_id, populate_existing=True)
        assert case is not None
        notify = OutboxWriter(session, runtime.settings, runtime.renderer)
        if target is CaseStatus.CLOSED:
            send_survey(session, runtime.settings, case, notify, now)
        else:
            notify(Notification("pending_closure", case))
    log.info(
        "case status changed case=%08d from=%s to=%s cause=timer",
        case_id,
        source.value,
        target.value,
    )
    return notify.ids
