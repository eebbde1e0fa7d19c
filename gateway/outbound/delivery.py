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
import time
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import OperationalError
from sqlmodel import col

from gateway.db import session_scope
from gateway.errors import DeliveryError
from gateway.models import OutboundMessage, OutboundStatus, utcnow
from gateway.outbound.deliver import deliver_message
from gateway.outbound.outbox import compose_row
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

LEASE_SECONDS = 300
# SMTP steps of one delivery besides one RCPT per recipient: connect, EHLO,
# STARTTLS, EHLO again, AUTH, MAIL, DATA and the end of data.
FIXED_SMTP_STEPS = 8
# Tries, and seconds between them, to record a result the relay has
# already accepted; failing all of them risks a second send.
RESULT_WRITE_TRIES = 5
RESULT_WRITE_PAUSE_SECONDS = 2.0


def lease_seconds(relay_timeout: float, recipients: int) -> float:
    """Return a lease longer than the slowest delivery the timeouts allow."""
    slowest = relay_timeout * (FIXED_SMTP_STEPS + recipients)
    return max(LEASE_SECONDS, slowest + 60)


def claim(runtime: Runtime, outbound_id: int, now: datetime) -> datetime | None:
    """Take the lease on a due, queued row; return its end, or None if not ours."""
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:
            return None
        seconds = lease_seconds(
            runtime.settings.relay.timeout_seconds, len(row.to) + len(row.cc)
        )
        lease_until = now + timedelta(seconds=seconds)
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
            .values(lease_until=lease_until)
        )
        return lease_until if getattr(result, "rowcount", 0) == 1 else None


def deliver_outbound(runtime: Runtime, outbound_id: int) -> str:
    """Send the outbox row ``outbound_id`` if it is due; return its status after."""
    if not runtime.settings.relay.host:
        return OutboundStatus.QUEUED.value
    lease = claim(runtime, outbound_id, utcnow())
    if lease is None:
        return "skipped"
    try:
        raw, sender, recipients = _composed(runtime, outbound_id)
    except ValueError as exc:
        error = DeliveryError(str(exc), permanent=True)
        return _record_failure(runtime, outbound_id, lease, error)
    try:
        asyncio.run(
            deliver_message(
                raw, sender=sender, recipients=recipients, relay=runtime.settings.relay
            )
        )
    except DeliveryError as exc:
        return _record_failure(runtime, outbound_id, lease, exc)
    return _record_sent(runtime, outbound_id, lease)


def _record_sent(runtime: Runtime, outbound_id: int, lease: datetime) -> str:
    """Mark the row sent, trying again while the store is busy.

    The relay has the mail already: giving up here means the row is sent
    again when the lease ends, with the same Message-ID.
    """
    for attempt in range(1, RESULT_WRITE_TRIES + 1):
        try:
            with session_scope(runtime.engine) as session:
                row = session.get(OutboundMessage, outbound_id)
                assert row is not None
                if row.lease_until != lease:
                    log.warning(
                        "lease lost before the result was recorded outbound_id=%d "
                        "message_id=%s",
                        outbound_id,
                        row.message_id,
                    )
                row.status = OutboundStatus.SENT.value
                row.attempts += 1
                row.sent_at = utcnow()
                row.lease_until = None
                row.last_error = ""
                session.add(row)
                kind, message_id = row.kind, row.message_id
            log.info(
                "mail sent outbound_id=%d kind=%s message_id=%s",
                outbound_id,
                kind,
                message_id,
            )
            return OutboundStatus.SENT.value
        except OperationalError:
            if attempt == RESULT_WRITE_TRIES:
                raise
            log.warning(
                "recording a sent mail failed, trying again outbound_id=%d attempt=%d",
                outbound_id,
                attempt,
            )
            time.sleep(RESULT_WRITE_PAUSE_SECONDS)
    raise AssertionError("unreachable")


def _composed(runtime: Runtime, outbound_id: int) -> tuple[bytes, str, list[str]]:
    """Return the row's bytes and envelope, storing the bytes on first composition."""
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        if row.raw is None:
            row.raw = compose_row(row)
            session.add(row)
        return row.raw, row.sender, [*row.to, *row.cc]


def _record_failure(
    runtime: Runtime, outbound_id: int, lease: datetime, error: DeliveryError
) -> str:
    relay = runtime.settings.relay
    with session_scope(runtime.engine) as session:
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        if row.lease_until != lease:
            # Another worker has the lease now and may have sent the mail.
            # Its result, not this late failure, is the one to keep.
            log.warning(
                "late delivery failure ignored, lease lost outbound_id=%d error=%s",
                outbound_id,
                error,
            )
            return row.status
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
