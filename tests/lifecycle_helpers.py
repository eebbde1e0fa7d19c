"""Helpers for the lifecycle tests: a runtime with a settable clock, mail in, outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from gateway.config import load_settings
from gateway.db import read_only
from gateway.inbound.process import Outcome, process_inbound
from gateway.inbound.spool import IncomingMail, store_mails
from gateway.models import Case, OutboundMessage
from gateway.runtime import Runtime
from tests.conftest import STAFF_DOMAIN, build_mail, make_env

CUSTOMER = "Erika Beispiel <erika@kunde.example.org>"
STAFF = f"Sven Support <sven@{STAFF_DOMAIN}>"


@dataclass
class Clock:
    """The time the runtime sees; tests move it forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def make_runtime(
    folder: Path, clock: Clock, store_url: str | None = None, **config: str
) -> Runtime:
    env = make_env(folder, store_url=store_url)
    if config:
        extra = "\n".join(f"{line}" for line in config.values())
        env.config.write_text(env.config.read_text() + "\n" + extra + "\n")
    runtime = Runtime(load_settings(env.config), clock=clock)
    runtime.prepare_store()
    return runtime


def ingest(runtime: Runtime, raw: bytes) -> Outcome:
    [inbound_id] = store_mails(
        runtime.engine,
        runtime.settings.store.data_dir,
        [IncomingMail(raw, "test", {})],
    )
    return process_inbound(runtime, inbound_id)


def outbox(runtime: Runtime, kind: str | None = None) -> list[OutboundMessage]:
    with Session(read_only(runtime.engine)) as session:
        query = select(OutboundMessage).order_by(col(OutboundMessage.id))
        if kind is not None:
            query = query.where(OutboundMessage.kind == kind)
        return list(session.exec(query).all())


def load_case(runtime: Runtime, number: str) -> Case:
    with Session(read_only(runtime.engine)) as session:
        case = session.get(Case, int(number))
        assert case is not None
        return case


def reply_to(row: OutboundMessage, sender: str, text: str, subject: str = "") -> bytes:
    """Build a reply to an outbox mail, as a mail client sends it."""
    return build_mail(
        sender=sender,
        subject=subject or f"Re: {row.subject}",
        body=f"{text}\n",
        in_reply_to=row.message_id,
        references=row.message_id,
    )
