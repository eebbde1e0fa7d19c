"""Delivering the outbox to a real SMTP relay on loopback: send, retry, fail, lease."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session

from gateway.config import load_settings
from gateway.db import session_scope
from gateway.errors import DeliveryError
from gateway.inbound.process import process_inbound
from gateway.inbound.spool import IncomingMail, store_mails
from gateway.jobs import configure, sweep
from gateway.models import OutboundMessage, utcnow
from gateway.outbound.delivery import (
    _record_failure,
    claim,
    deliver_outbound,
    lease_seconds,
    retry_delay,
)
from gateway.runtime import Runtime
from tests.conftest import Sink, build_mail, free_port, make_env


class RefusingRelay:
    """A relay that replies to every DATA with one fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        return self.reply


@pytest.fixture
def refusing_relay(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[RefusingRelay, int]]:
    relay = RefusingRelay(request.param)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    yield relay, port
    controller.stop()


def runtime_for(tmp_path: Path, relay_port: int) -> Runtime:
    env = make_env(tmp_path / "gw", relay_port=relay_port)
    runtime = Runtime(load_settings(env.config))
    runtime.prepare_store()
    return runtime


def queue_confirmation(runtime: Runtime) -> int:
    [inbound_id] = store_mails(
        runtime.engine,
        runtime.settings.store.data_dir,
        [IncomingMail(build_mail(), "test", {})],
    )
    outcome = process_inbound(runtime, inbound_id)
    [outbound_id] = outcome.queued_outbound
    return outbound_id


def row(runtime: Runtime, outbound_id: int) -> OutboundMessage:
    with Session(runtime.engine) as session:
        found = session.get(OutboundMessage, outbound_id)
        assert found is not None
        return found


def test_delivery_sends_composed_bytes_once(tmp_path: Path, sink: Sink) -> None:
    runtime = runtime_for(tmp_path, sink.port)
    outbound_id = queue_confirmation(runtime)
    assert deliver_outbound(runtime, outbound_id) == "sent"
    [received] = sink.wait_for(1)
    sent = row(runtime, outbound_id)
    assert sent.status == "sent"
    assert sent.attempts == 1
    assert sent.raw == received.raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert str(received.message["Message-ID"]) == sent.message_id
    assert deliver_outbound(runtime, outbound_id) == "skipped"
    assert len(sink.received) == 1


@pytest.mark.parametrize("refusing_relay", ["451 4.3.0 Try again later"], indirect=True)
def test_temporary_refusal_schedules_retry(
    tmp_path: Path, refusing_relay: tuple
) -> None:
    relay, port = refusing_relay
    runtime = runtime_for(tmp_path, port)
    outbound_id = queue_confirmation(runtime)
    before = utcnow()
    assert deliver_outbound(runtime, outbound_id) == "queued"
    retried = row(runtime, outbound_id)
    assert retried.attempts == 1
    assert "451" in retried.last_error
    assert retried.next_attempt_at > before
    assert deliver_outbound(runtime, outbound_id) == "skipped"
    assert relay.attempts == 1


@pytest.mark.parametrize("refusing_relay", ["554 5.7.1 Rejected"], indirect=True)
def test_permanent_refusal_fails_at_once(tmp_path: Path, refusing_relay: tuple) -> None:
    _relay, port = refusing_relay
    runtime = runtime_for(tmp_path, port)
    outbound_id = queue_confirmation(runtime)
    assert deliver_outbound(runtime, outbound_id) == "failed"
    failed = row(runtime, outbound_id)
    assert failed.status == "failed"
    assert "554" in failed.last_error


@pytest.mark.parametrize("refusing_relay", ["451 4.3.0 Try again later"], indirect=True)
def test_attempts_exhausted_mark_failed(tmp_path: Path, refusing_relay: tuple) -> None:
    _relay, port = refusing_relay
    runtime = runtime_for(tmp_path, port)
    outbound_id = queue_confirmation(runtime)
    for _ in range(runtime.settings.relay.max_attempts):
        with session_scope(runtime.engine) as session:
            due = session.get(OutboundMessage, outbound_id)
            assert due is not None
            due.next_attempt_at = utcnow() - timedelta(seconds=1)
            session.add(due)
        status = deliver_outbound(runtime, outbound_id)
    assert status == "failed"
    assert row(runtime, outbound_id).attempts == runtime.settings.relay.max_attempts


def test_lease_keeps_second_sender_out(tmp_path: Path, sink: Sink) -> None:
    runtime = runtime_for(tmp_path, sink.port)
    outbound_id = queue_confirmation(runtime)
    now = utcnow()
    assert claim(runtime, outbound_id, now) is not None
    assert claim(runtime, outbound_id, now) is None
    assert deliver_outbound(runtime, outbound_id) == "skipped"


def test_sweep_hands_due_rows_to_worker(tmp_path: Path, sink: Sink) -> None:
    runtime = runtime_for(tmp_path, sink.port)
    configure(runtime)
    outbound_id = queue_confirmation(runtime)
    assert sweep(runtime) == (0, 0)
    assert sweep(runtime, everything=True) == (0, 1)
    assert row(runtime, outbound_id).enqueued_at is not None
    assert sweep(runtime, everything=False) == (0, 0)


def test_retry_delay_doubles_up_to_maximum() -> None:
    delays = [retry_delay(attempt, 30, 3600) for attempt in range(1, 10)]
    assert 22.5 <= delays[0] <= 30
    assert 45 <= delays[1] <= 60
    assert all(delay <= 3600 for delay in delays)
    assert delays[-1] >= 2700


@pytest.mark.parametrize("refusing_relay", ["451 4.3.0 Try again later"], indirect=True)
def test_sweep_queues_retry_once_due(tmp_path: Path, refusing_relay: tuple) -> None:
    _relay, port = refusing_relay
    runtime = runtime_for(tmp_path, port)
    configure(runtime)
    outbound_id = queue_confirmation(runtime)
    assert deliver_outbound(runtime, outbound_id) == "queued"
    due = row(runtime, outbound_id).next_attempt_at
    assert sweep(runtime, now=due - timedelta(milliseconds=100)) == (0, 0)
    assert sweep(runtime, now=due + timedelta(milliseconds=100)) == (0, 1)


def test_lease_covers_slowest_delivery() -> None:
    assert lease_seconds(30.0, 1) == 330.0
    assert lease_seconds(30.0, 40) >= 30.0 * 48
    assert lease_seconds(1.0, 1) == 300


def test_late_failure_after_lost_lease_keeps_sent(tmp_path: Path, sink: Sink) -> None:
    runtime = runtime_for(tmp_path, sink.port)
    outbound_id = queue_confirmation(runtime)
    stale = claim(runtime, outbound_id, utcnow())
    assert stale is not None
    with session_scope(runtime.engine) as session:
        taken = session.get(OutboundMessage, outbound_id)
        assert taken is not None
        taken.lease_until = None
        session.add(taken)
    assert deliver_outbound(runtime, outbound_id) == "sent"
    error = DeliveryError("relay 127.0.0.1 timed out", permanent=True)
    assert _record_failure(runtime, outbound_id, stale, error) == "sent"
    assert row(runtime, outbound_id).status == "sent"
