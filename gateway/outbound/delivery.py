"""Deliver one outbox row to the relay, with a lease so two workers never both send it.

Retries are scheduled in the store (``next_attempt_at``), not in the
broker, so a restart keeps them: the sweep hands due rows to a worker
again. The backoff doubles from ``[relay] retry_base_seconds`` up to
``retry_max_seconds``; after ``max_attempts`` failures, or at once on a
permanent (5xx) refusal, the row is ``failed``.

A crash after the relay accepted a mail and before the row is marked sent
makes the mail go out again when the lease ends, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import col

from gateway.db import session_scope
from gateway.errors import DeliveryError
from gateway.models import OutboundMessage, OutboundStatus, utcnow
from gateway.outbound.deliver import deliver_message
from gateway.outbound.outbox import compose_row
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

LEASE_SECONDS = 300


def claim(runtime: Runtime, outbound_id: int, now: datetime) -> bool:
    """Take the lease on a due, queued row; return False if it is not ours to send."""
    with session_scope(runtime.engine) as session:
        result = session.execute(
            update(OutboundMessage)
            .where(col(OutboundMessage.id) == outbound_id)
            .where(col(OutboundMessage.status) == OutboundStatus.QUEUED.value)
            .where(col(OutboundMessage.next_attempt_at) <= now)
            .where(
                or_(
                    col(OutboundMessage.lease_until).is_(None),
                    col(OutboundMessage.lease_until) < now,
                )
            )
            .values(lease_until=now + timedelta(seconds=LEASE_SECONDS))
        )
        return bool(getattr(result, "rowcount", 0) == 1)


def deliver_outbound(runtime: Runtime, outbound_id: int) -> str:
    """Send the outbox row ``outbound_id`` if it is due; return its status after."""
    if not runtime.settings.relay.host:
        return OutboundStatus.QUEUED.value
    now = utcnow()
    if not claim(runtime, outbound_id, now):
        return "skipped"
    try:
        raw, sender, recipients = _composed(runtime, outbound_id)
    except ValueError as exc:
        return _record_failure(
            runtime, outbound_id, DeliveryError(str(exc), permanent=True)
        )
    try:
        asyncio.run(
            deliver_message(
                raw, sender=sender, recipients=recipients, relay=runtime.settings.relay
            )
        )
    except DeliveryError as exc:
        return _record_failure(runtime, outbound_id, exc)
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        row.status = OutboundStatus.SENT.value
        row.attempts += 1
        row.sent_at = utcnow()
        row.lease_until = None
        row.last_error = ""
        session.add(row)
    log.info(
        "mail sent outbound_id=%d kind=%s message_id=%s",
        outbound_id,
        row.kind,
        row.message_id,
    )
    return OutboundStatus.SENT.value


def _composed(runtime: Runtime, outbound_id: int) -> tuple[bytes, str, list[str]]:
    """Return the row's bytes and envelope, storing the bytes on first composition."""
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        if row.raw is None:
            row.raw = compose_row(row)
            session.add(row)
        return row.raw, row.sender, [*row.to, *row.cc]


def _record_failure(runtime: Runtime, outbound_id: int, error: DeliveryError) -> str:
    relay = runtime.settings.relay
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        row.attempts += 1
        row.last_error = str(error)
        row.lease_until = None
        if error.permanent or row.attempts >= relay.max_attempts:
            row.status = OutboundStatus.FAILED.value
            log.error(
                "delivery failed for good outbound_id=%d attempts=%d error=%s",
                outbound_id,
                row.attempts,
                error,
            )
        else:
            delay = retry_delay(
                row.attempts, relay.retry_base_seconds, relay.retry_max_seconds
            )
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            log.warning(
                "delivery failed, retrying outbound_id=%d attempts=%d "
                "in_seconds=%.0f error=%s",
                outbound_id,
                row.attempts,
                delay,
                error,
            )
        session.add(row)
        return row.status


def retry_delay(attempts: int, base: float, maximum: float) -> float:
    """Return the seconds before the next try: doubling from ``base``, minus 0-25%."""
    delay: float = min(maximum, base * 2.0 ** max(0, attempts - 1))
    return delay * random.uniform(0.75, 1.0)
