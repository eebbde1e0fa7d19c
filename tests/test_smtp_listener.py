"""The SMTP listener's replies, on a real socket: 550, 552, 250 after storing, 451."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from gateway.config import load_settings
from gateway.inbound.smtp import GatewayHandler, start_smtp_server
from gateway.inbound.spool import GroupCommitWriter, load_raw
from gateway.models import InboundMessage
from gateway.runtime import Runtime
from tests.conftest import SUPPORT, build_mail, make_env

MAX_SIZE = 4096


class Listener:
    def __init__(self, runtime: Runtime, port: int) -> None:
        self.runtime = runtime
        self.port = port
        self.stored: list[int] = []


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    env = make_env(tmp_path / "gw", max_size=MAX_SIZE)
    runtime = Runtime(load_settings(env.config))
    runtime.prepare_store()
    writer = GroupCommitWriter(runtime.engine, runtime.settings.store.data_dir)
    writer.start()
    result = Listener(runtime, env.smtp_port)
    handler = GatewayHandler(runtime.settings, writer, result.stored.append)
    server = await start_smtp_server(runtime.settings, handler)
    yield result
    server.close()
    await server.wait_closed()
    writer.stop()


def in_thread(function, *args):  # type: ignore[no-untyped-def]
    return asyncio.to_thread(function, *args)


def send_esmtp(port: int, recipients: list[str], raw: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("erika@kunde.example.org", recipients, raw)


async def test_accepted_mail_stored_before_250(listener: Listener) -> None:
    raw = build_mail()
    refused = await in_thread(send_esmtp, listener.port, [SUPPORT], raw)
    assert refused == {}
    assert len(listener.stored) == 1
    with Session(listener.runtime.engine) as session:
        row = session.get(InboundMessage, listener.stored[0])
        assert row is not None
        assert load_raw(row) == raw
        assert row.envelope["rcpt_tos"] == [SUPPORT]
        assert row.state == "received"


async def test_unknown_recipient_rejected_at_rcpt(listener: Listener) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await in_thread(
            send_esmtp, listener.port, ["sales@desk.example.com"], build_mail()
        )
    code, reason = refused.value.recipients["sales@desk.example.com"]
    assert code == 550
    assert b"5.1.1" in reason
    assert listener.stored == []


async def test_unknown_recipient_among_known_still_delivers(listener: Listener) -> None:
    refused = await in_thread(
        send_esmtp, listener.port, [SUPPORT, "nobody@desk.example.com"], build_mail()
    )
    assert refused["nobody@desk.example.com"][0] == 550
    assert len(listener.stored) == 1


async def test_oversize_with_declared_size_rejected_552(listener: Listener) -> None:
    raw = build_mail(body="x" * (MAX_SIZE * 2))
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await in_thread(send_esmtp, listener.port, [SUPPORT], raw)
    assert refused.value.smtp_code == 552


def send_without_size(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.helo("client.kunde.example.org")
        client.mail("erika@kunde.example.org")
        client.rcpt(SUPPORT)
        try:
            return client.data(raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


async def test_oversize_without_declared_size_rejected_552(listener: Listener) -> None:
    raw = build_mail(body="y" * (MAX_SIZE * 2))
    code, _reason = await in_thread(send_without_size, listener.port, raw)
    assert code == 552
    assert listener.stored == []


async def test_storage_failure_answers_451(listener: Listener) -> None:
    with listener.runtime.engine.begin() as connection:
        connection.execute(text("DROP TABLE inboundmessage"))
    with pytest.raises(smtplib.SMTPDataError) as failed:
        await in_thread(send_esmtp, listener.port, [SUPPORT], build_mail())
    assert failed.value.smtp_code == 451
    assert listener.stored == []


async def test_concurrent_sessions_all_stored(listener: Listener) -> None:
    mails = [build_mail(subject=f"Mail {index}") for index in range(24)]
    await asyncio.gather(
        *(in_thread(send_esmtp, listener.port, [SUPPORT], raw) for raw in mails)
    )
    with Session(listener.runtime.engine) as session:
        rows = session.exec(select(InboundMessage)).all()
        assert sorted(load_raw(r) for r in rows) == sorted(mails)
