"""Acknowledged mail survives a SIGKILL of ``gateway serve`` and is processed once."""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.config import load_settings
from gateway.db import make_engine
from gateway.models import Comment, InboundMessage
from tests.conftest import SUPPORT, GatewayEnv, ServeProcess, build_mail, make_env
from tests.test_end_to_end import wait_until

BATCH = 30


def send_batch(env: GatewayEnv, count: int, clients: int = 3) -> list[str]:
    """Send ``count`` mails over ``clients`` sessions; return the acked subjects."""

    def send_share(share: int) -> list[str]:
        acknowledged = []
        with smtplib.SMTP("127.0.0.1", env.smtp_port, timeout=30) as client:
            for index in range(share, count, clients):
                subject = f"Crash test mail {index:03d}"
                sender = f"kunde{index}@kunde.example.org"
                client.sendmail(
                    sender, [SUPPORT], build_mail(sender=sender, subject=subject)
                )
                acknowledged.append(subject)
        return acknowledged

    with ThreadPoolExecutor(clients) as pool:
        return [s for part in pool.map(send_share, range(clients)) for s in part]


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.stop()


def inbound_states(env: GatewayEnv) -> Counter[str]:
    engine = make_engine(load_settings(env.config).store.url)
    with Session(engine) as session:
        states = Counter(session.exec(select(InboundMessage.state)).all())
    engine.dispose()
    return states


def comments_per_case(env: GatewayEnv) -> Counter[int]:
    engine = make_engine(load_settings(env.config).store.url)
    with Session(engine) as session:
        case_ids = session.exec(select(Comment.case_id)).all()
    engine.dispose()
    return Counter(case_ids)


def assert_each_processed_once(env: GatewayEnv, subjects: list[str]) -> None:
    wait_until(
        lambda: inbound_states(env)["processed"] == len(subjects),
        what="every mail processed",
    )
    assert inbound_states(env) == Counter({"processed": len(subjects)})
    cases = env.json("cases", "--json")
    assert sorted(c["subject"] for c in cases) == sorted(subjects)
    assert set(comments_per_case(env).values()) == {1}
    confirmations = [
        m for m in env.json("outbox", "--json") if m["kind"] == "confirmation"
    ]
    assert len(confirmations) == len(subjects)


def test_killed_before_processing_loses_nothing(
    tmp_path: Path, processes: list
) -> None:
    env = make_env(tmp_path / "gw", threads=0)
    ingress = ServeProcess(env)
    processes.append(ingress)
    subjects = send_batch(env, BATCH)
    assert len(subjects) == BATCH
    ingress.kill()
    assert inbound_states(env) == Counter({"received": BATCH})

    processes.append(ServeProcess(env, {"GATEWAY_WORKER_THREADS": "2"}))
    assert_each_processed_once(env, subjects)


def test_killed_while_processing_loses_nothing(tmp_path: Path, processes: list) -> None:
    env = make_env(tmp_path / "gw", threads=2)
    first = ServeProcess(env)
    processes.append(first)
    subjects = send_batch(env, BATCH)
    first.kill()
    # Some mails are finished, the rest were acknowledged and are not.
    assert sum(inbound_states(env).values()) == BATCH

    processes.append(ServeProcess(env))
    assert_each_processed_once(env, subjects)
