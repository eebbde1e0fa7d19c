"""The per-sender rate limit that breaks mail loops.

More than ``[routing] rate_limit_count`` mails from one sender within
``rate_limit_minutes`` is a loop: two systems that reply to each other,
or a machine that sends without end. The count is read from the store,
so it applies across several listener and worker processes. The SMTP
listener rejects further mail from the sender with 451 while the limit
holds (the client retries later, when older mails have left the window).
Mail that arrives by another way (the pipe, a replay) is ignored with
reason ``loop``.

A null reverse path (bounces) is not counted, because one notification
to many recipients can return many bounces at once. Nor is mail whose
Date lies more than the window before its receipt: a loop sends fresh
mail, while a mailbox read for the first time or a queue released after
an outage delivers old mail from one sender at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from gateway.config import RoutingSettings
from gateway.db import read_only
from gateway.models import InboundMessage, as_utc, utcnow

log = logging.getLogger(__name__)


def normalize_sender(address: str | None) -> str | None:
    """Return a reverse path as it is stored and counted, None for a null one."""
    if address is None:
        return None
    cleaned = address.strip().strip("<>").strip().lower()
    return cleaned or None


def window(routing: RoutingSettings) -> timedelta:
    return timedelta(minutes=routing.rate_limit_minutes)


def is_backlog(
    routing: RoutingSettings, row: InboundMessage, written: datetime
) -> bool:
    """Tell whether a mail written at ``written`` is too old to count."""
    return written < as_utc(row.received_at) - window(routing)


def _fresh(since: datetime) -> Any:
    """Return the condition that a stored mail was written since ``since``."""
    return or_(
        col(InboundMessage.sent_at).is_(None), col(InboundMessage.sent_at) >= since
    )


def smtp_sender_limited(
    engine: Engine, routing: RoutingSettings, mail_from: str
) -> bool:
    """Return whether mail from the reverse path ``mail_from`` must get 451 now.

    Blocking: call it from a thread, not on the event loop.
    """
    sender = normalize_sender(mail_from)
    if sender is None:
        return False
    since = utcnow() - window(routing)
    with Session(read_only(engine)) as session:
        count = session.exec(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.envelope_sender == sender)
            .where(col(InboundMessage.received_at) >= since)
            .where(_fresh(since))
        ).one()
    if count >= routing.rate_limit_count:
        log.warning(
            "sender over the rate limit, mail rejected with 451 sender=%s count=%d "
            "minutes=%g",
            sender,
            count,
            routing.rate_limit_minutes,
        )
        return True
    return False


def loop_by_rate(
    session: Session, routing: RoutingSettings, row: InboundMessage, sender: str
) -> str:
    """Return why ``row`` is a loop by the rate limit, or "" when it is not.

    The mails counted are those from the same envelope sender or From
    address (``sender``, as parsed and stored) received in the window
    before ``row``.
    """
    envelope = normalize_sender(row.envelope_sender)
    senders = [col(InboundMessage.sender) == sender]
    if envelope is not None:
        senders.append(col(InboundMessage.envelope_sender) == envelope)
    received: datetime = row.received_at
    count = session.exec(
        select(func.count())
        .select_from(InboundMessage)
        .where(or_(*senders))
        .where(col(InboundMessage.received_at) >= received - window(routing))
        .where(col(InboundMessage.received_at) <= received)
        .where(_fresh(received - window(routing)))
        .where(col(InboundMessage.id) < (row.id or 0))
    ).one()
    if count < routing.rate_limit_count:
        return ""
    return (
        f"rate limit: {count} earlier mails from {envelope or sender} in "
        f"{routing.rate_limit_minutes:g} minutes (limit {routing.rate_limit_count})"
    )
