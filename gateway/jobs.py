"""Background jobs on dramatiq: process an inbound message, deliver an outbound one.

The embedded default uses dramatiq's in-memory StubBroker with a worker in
the ``gateway serve`` process. With ``[broker] url = "redis://..."`` the
same actors run on Redis, in ``dramatiq gateway.worker`` processes. Either
way the store, not the broker, is the source of truth: a message lost with
the broker (a restart of the embedded process) is found again by the sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from gateway.db import session_scope
from gateway.inbound.process import InboundNotFound, process_inbound
from gateway.models import (
    InboundMessage,
    InboundState,
    OutboundMessage,
    OutboundStatus,
    utcnow,
)
from gateway.outbound.delivery import deliver_outbound
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

QUEUE_NAME = "gateway"
# A row handed to the broker is handed again only after this long without
# a result, so the immediate send and the sweep do not both queue it.
REQUEUE_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 500
EVERYTHING_HORIZON = timedelta(days=1)
# Redis broker: a worker without a heartbeat for 15 s counts as dead, and 5%
# of broker commands check for dead workers. The messages of a killed worker
# are then redelivered within seconds, where dramatiq's defaults (60 s,
# 0.1%) can take many minutes on a quiet desk.
REDIS_HEARTBEAT_TIMEOUT_MS = 15_000
REDIS_MAINTENANCE_CHANCE = 50_000
PROCESS_RETRIES_MIN_BACKOFF_MS = 2_000
PROCESS_RETRIES_MAX_BACKOFF_MS = 300_000

_runtime: Runtime | None = None
_process_actor: Any = None
_deliver_actor: Any = None


def configure(runtime: Runtime) -> dramatiq.Broker:
    """Create the broker named by the settings, declare the actors on it, return it."""
    global _runtime, _process_actor, _deliver_actor
    settings = runtime.settings
    broker: dramatiq.Broker
    if settings.embedded:
        broker = StubBroker()
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.broker.url,
            namespace=settings.broker.namespace,
            heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=REDIS_MAINTENANCE_CHANCE,
        )
    dramatiq.set_broker(broker)
    _runtime = runtime
    runtime.outbound_queued = enqueue_deliveries
    _process_actor = dramatiq.actor(
        actor_name="process_inbound",
        queue_name=QUEUE_NAME,
        broker=broker,
        max_retries=settings.worker.max_process_attempts - 1,
        min_backoff=PROCESS_RETRIES_MIN_BACKOFF_MS,
        max_backoff=PROCESS_RETRIES_MAX_BACKOFF_MS,
        throws=(InboundNotFound,),
    )(_process_job)
    _deliver_actor = dramatiq.actor(
        actor_name="deliver_outbound",
        queue_name=QUEUE_NAME,
        broker=broker,
        max_retries=0,
    )(_deliver_job)
    return broker


def _current_runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("gateway.jobs.configure() was not called in this process")
    return _runtime


def _process_job(inbound_id: int) -> None:
    process_inbound(_current_runtime(), inbound_id, retry=True)


def _deliver_job(outbound_id: int) -> None:
    deliver_outbound(_current_runtime(), outbound_id)


def enqueue_inbound(inbound_id: int) -> None:
    """Hand a stored inbound message to a worker."""
    _process_actor.send(inbound_id)


def enqueue_deliveries(outbound_ids: list[int]) -> None:
    """Hand outbox rows to a worker, unless no relay is configured."""
    runtime = _current_runtime()
    if not runtime.settings.relay.host:
        return
    for outbound_id in outbound_ids:
        _deliver_actor.send(outbound_id)


def sweep(
    runtime: Runtime, *, everything: bool = False, now: datetime | None = None
) -> tuple[int, int]:
    """Queue stored work that has no result yet; return the (inbound, outbound) counts.

    With ``everything`` all of it is queued, as at startup, because the
    embedded broker's memory is gone then. Otherwise only work that was
    queued more than REQUEUE_AFTER ago, or never, is queued again.
    """
    now = now or utcnow()
    # "everything" also takes rows that a worker held off for a while,
    # because at startup no worker of this process is working on them.
    cutoff = now + EVERYTHING_HORIZON if everything else now - REQUEUE_AFTER
    inbound_ids = _claim_inbound(runtime, cutoff, now)
    for inbound_id in inbound_ids:
        enqueue_inbound(inbound_id)
    outbound_ids: list[int] = []
    if runtime.settings.relay.host:
        outbound_ids = _claim_outbound(runtime, cutoff, now)
        enqueue_deliveries(outbound_ids)
    if inbound_ids or outbound_ids:
        log.info(
            "sweep queued inbound=%d outbound=%d", len(inbound_ids), len(outbound_ids)
        )
    return len(inbound_ids), len(outbound_ids)


def _claim_inbound(runtime: Runtime, cutoff: datetime, now: datetime) -> list[int]:
    due = (
        select(InboundMessage.id)
        .where(InboundMessage.state == InboundState.RECEIVED.value)
        .where(
            func.coalesce(InboundMessage.enqueued_at, InboundMessage.received_at)
            <= cutoff
        )
    )
    return _mark_enqueued(runtime, InboundMessage, due, now)


def _claim_outbound(runtime: Runtime, cutoff: datetime, now: datetime) -> list[int]:
    due = (
        select(OutboundMessage.id)
        .where(OutboundMessage.status == OutboundStatus.QUEUED.value)
        .where(col(OutboundMessage.next_attempt_at) <= now)
        .where(
            or_(
                col(OutboundMessage.lease_until).is_(None),
                col(OutboundMessage.lease_until) < now,
            )
        )
        .where(
            or_(
                # A failed attempt moved the next one past the last queueing.
                func.coalesce(OutboundMessage.enqueued_at, OutboundMessage.created_at)
                < col(OutboundMessage.next_attempt_at),
                func.coalesce(OutboundMessage.enqueued_at, OutboundMessage.created_at)
                <= cutoff,
            )
        )
    )
    return _mark_enqueued(runtime, OutboundMessage, due, now)


def _mark_enqueued(
    runtime: Runtime,
    table: type[InboundMessage] | type[OutboundMessage],
    due: SelectOfScalar[int] | SelectOfScalar[None],
    now: datetime,
) -> list[int]:
    """Set ``enqueued_at`` on the first SWEEP_BATCH rows of ``due``; return their ids.

    Only ids are read, so the sweep never loads stored mail bytes.
    """
    with session_scope(runtime.engine) as session:
        found = session.exec(due.order_by(col(table.id)).limit(SWEEP_BATCH)).all()
        ids = [row_id for row_id in found if row_id is not None]
        if ids:
            session.execute(
                update(table).where(col(table.id).in_(ids)).values(enqueued_at=now)
            )
        return ids
