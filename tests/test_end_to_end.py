"""The whole path over real sockets: mail in, case out, confirmation back, reply in.

The same scenario runs on the embedded default (SQLite, in-process worker)
and on the scale-out set-up (PostgreSQL, Redis, a separate worker process).
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    STAFF_DOMAIN,
    SUPPORT,
    GatewayEnv,
    ServeProcess,
    Sink,
    WorkerProcess,
    build_mail,
    make_env,
    quote_reply,
)

CUSTOMER = "erika@kunde.example.org"


def send(env: GatewayEnv, raw: bytes, sender: str = CUSTOMER) -> None:
    with smtplib.SMTP("127.0.0.1", env.smtp_port, timeout=30) as client:
        client.sendmail(sender, [SUPPORT], raw)


def wait_until(
    check: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")


def run_scenario(env: GatewayEnv, sink: Sink) -> None:
    send(env, build_mail(subject="Etikettendrucker fällt aus"))
    confirmation = sink.wait_for(1)[0]
    assert confirmation.rcpt_tos == [CUSTOMER]
    cases = env.json("cases", "--json")
    assert len(cases) == 1
    case = cases[0]
    mail = confirmation.message
    assert case["token"] in str(mail["Subject"])
    assert case["token"] in mail.get_body(("plain",)).get_content()
    assert mail["Auto-Submitted"] == "auto-generated"

    reply = quote_reply(
        mail,
        f"Erika Beispiel <{CUSTOMER}>",
        "Der Fehler tritt auch am zweiten Gerät auf.",
    )
    send(env, reply)
    wait_until(
        lambda: len(env.json("show", case["number"], "--json")["comments"]) == 2,
        what="the reply on the case",
    )
    shown = env.json("show", case["number"], "--json")
    first, second = shown["comments"]
    assert "Etiketten" in first["text"]
    assert second["text"] == "Der Fehler tritt auch am zweiten Gerät auf."
    assert second["author_kind"] == "customer"
    assert "Customer Support wrote" not in second["text"]
    assert len(env.json("cases", "--json")) == 1

    staff_reply = quote_reply(
        mail,
        f"Sam Support <sam@{STAFF_DOMAIN}>",
        "Bitte starten Sie den Druckdienst neu.",
    )
    send(env, staff_reply, sender=f"sam@{STAFF_DOMAIN}")
    update = sink.wait_for(2)[1]
    assert update.rcpt_tos == [CUSTOMER]
    assert (
        "Bitte starten Sie den Druckdienst neu."
        in update.message.get_body(("plain",)).get_content()
    )
    shown = env.json("show", case["number"], "--json")
    assert [c["author_kind"] for c in shown["comments"]] == [
        "customer",
        "customer",
        "staff",
    ]
    wait_until(
        lambda: all(m["status"] == "sent" for m in env.json("outbox", "--json")),
        what="every outbox row sent",
    )
    kinds = [m["kind"] for m in env.json("outbox", "--json")]
    assert kinds == ["confirmation", "comment_update"]


@pytest.fixture
def serve_stopper() -> Iterator[list[ServeProcess | WorkerProcess]]:
    started: list[ServeProcess | WorkerProcess] = []
    yield started
    for process in reversed(started):
        process.stop()


def test_mail_to_case_and_back_embedded(
    tmp_path: Path, sink: Sink, serve_stopper: list
) -> None:
    env = make_env(tmp_path / "gw", relay_port=sink.port)
    serve = ServeProcess(env)
    serve_stopper.append(serve)
    try:
        run_scenario(env, sink)
    except AssertionError:
        print(serve.log())
        raise


@pytest.mark.postgres
@pytest.mark.redis
def test_mail_to_case_and_back_postgres_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, sink: Sink, serve_stopper: list
) -> None:
    # The servers' fixtures come first, so their clean-up runs after the
    # processes that use them have stopped.
    env = make_env(
        tmp_path / "gw",
        relay_port=sink.port,
        store_url=postgres_url,
        broker_url=redis_url,
    )
    env.run("migrate")
    worker = WorkerProcess(env)
    serve_stopper.append(worker)
    serve = ServeProcess(env)
    serve_stopper.append(serve)
    try:
        run_scenario(env, sink)
    except AssertionError:
        print(serve.log())
        print(worker.log())
        raise
