"""Loop safety over real sockets: the SMTP rate limit, two gateways, two channels.

Every gateway here is a ``gateway serve`` process with a store of its own.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import (
    MESSAGE_ID_DOMAIN,
    ORG_ID,
    STAFF_DOMAIN,
    SUPPORT,
    GatewayEnv,
    ServeProcess,
    build_mail,
    free_port,
    make_env,
)

# Headers that mark a gateway's mail as automatic. A forwarding service that
# rewrites mail may drop them, and then only the rate limit stops a loop.
LOOP_HEADERS = ("Auto-Submitted", "X-Auto-Response-Suppress", "X-Case-Gateway")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout} s")


# make_env writes this relay port; point_relay replaces it once the peer's
# port is known.
UNSET_RELAY_PORT = 9


def desk_env(
    folder: Path, name: str, *, peer: str, rate_limit: int | None = None
) -> GatewayEnv:
    """Make a gateway config whose desk is ``name`` and whose staff is ``peer``."""
    env = make_env(folder / name, relay_port=UNSET_RELAY_PORT)
    config = env.config.read_text()
    config = config.replace(SUPPORT, f"help@{name}.example.com")
    config = config.replace(MESSAGE_ID_DOMAIN, f"mail.{name}.example.com")
    config = config.replace(ORG_ID, f"00D{name.replace('-', '')[:6]}")
    config = config.replace(STAFF_DOMAIN, f"{peer}.example.com")
    if rate_limit is not None:
        config += f"\n[routing]\nrate_limit_count = {rate_limit}\n"
    env.config.write_text(config)
    return env


def point_relay(env: GatewayEnv, port: int) -> None:
    """Send the outbound mail of ``env`` to ``port`` on loopback."""
    config = env.config.read_text()
    written = f'host = "127.0.0.1"\nport = {UNSET_RELAY_PORT}\n'
    assert written in config
    env.config.write_text(
        config.replace(written, f'host = "127.0.0.1"\nport = {port}\n')
    )


def send_seed(a: GatewayEnv) -> None:
    """Send desk A a first mail from desk B's address, which desk A takes as staff."""
    seed = build_mail(
        sender="Desk B <help@desk-b.example.com>",
        to="help@desk-a.example.com",
        subject="Abgleich",
        date=formatdate(),
    )
    send(a.smtp_port, "help@desk-b.example.com", "help@desk-a.example.com", seed)


def send(port: int, mail_from: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(mail_from, [to], raw)


def stored_from(env: GatewayEnv, sender: str) -> list[dict[str, Any]]:
    rows = env.json("inbound", "--json", "--limit", "1000")
    return [row for row in rows if row["from"] == sender]


def strip_headers(raw: bytes, names: tuple[str, ...]) -> bytes:
    """Remove the header fields ``names``, with their folded lines, from ``raw``."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    wanted = {name.lower().encode() for name in names}
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() in wanted
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + separator + body


class StrippingRelay:
    """An SMTP hop that drops LOOP_HEADERS and passes the mail on to a port.

    It replies with the next hop's reply, so a 451 there is a 451 here.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.replies: list[int] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = strip_headers(envelope.original_content, LOOP_HEADERS)
        code, text = await asyncio.to_thread(
            self._forward, envelope.mail_from, list(envelope.rcpt_tos), raw
        )
        with self.lock:
            self.replies.append(code)
        return f"{code} {text}"

    def _forward(
        self, mail_from: str, rcpt_tos: list[str], raw: bytes
    ) -> tuple[int, str]:
        try:
            with smtplib.SMTP("127.0.0.1", self.target_port, timeout=30) as client:
                client.sendmail(mail_from, rcpt_tos, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return code, text.decode()
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        return 250, "2.0.0 passed on"

    def refused(self) -> int:
        with self.lock:
            return sum(1 for code in self.replies if code == 451)


@pytest.fixture
def relays() -> Iterator[list[tuple[StrippingRelay, Controller]]]:
    started: list[tuple[StrippingRelay, Controller]] = []
    yield started
    for _relay, controller in started:
        controller.stop()


def start_relay(
    relays: list[tuple[StrippingRelay, Controller]], port: int, target_port: int
) -> StrippingRelay:
    relay = StrippingRelay(target_port)
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    relays.append((relay, controller))
    return relay


def test_smtp_refuses_sender_over_rate_limit(tmp_path: Path) -> None:
    env = desk_env(tmp_path, "desk-x", peer="desk-y", rate_limit=2)
    serve = ServeProcess(env)
    try:
        for n in range(2):
            send(
                env.smtp_port,
                "erika@kunde.example.org",
                "help@desk-x.example.com",
                build_mail(subject=f"Frage {n}", date=formatdate()),
            )
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(
                env.smtp_port,
                "erika@kunde.example.org",
                "help@desk-x.example.com",
                build_mail(subject="Frage 3", date=formatdate()),
            )
        [(code, reply)] = refused.value.recipients.values()
        assert code == 451
        assert b"4.7.1" in reply
        send(
            env.smtp_port,
            "max@kunde.example.org",
            "help@desk-x.example.com",
            build_mail(sender="Max <max@kunde.example.org>", date=formatdate()),
        )
    finally:
        serve.stop()
    assert len(stored_from(env, "erika@kunde.example.org")) == 2


def test_gateways_answering_each_other_stop_at_once(tmp_path: Path) -> None:
    a = desk_env(tmp_path, "desk-a", peer="desk-b")
    b = desk_env(tmp_path, "desk-b", peer="desk-a")
    point_relay(a, b.smtp_port)
    point_relay(b, a.smtp_port)
    serve_a, serve_b = ServeProcess(a), ServeProcess(b)
    try:
        send_seed(a)
        wait_until(
            lambda: any(r["state"] != "received" for r in b.json("inbound", "--json")),
            60,
            "desk B processing desk A's confirmation",
        )
        [received] = b.json("inbound", "--json")
        time.sleep(2)
        outbox_b = b.json("outbox", "--json")
        outbox_a = a.json("outbox", "--json")
    finally:
        serve_a.stop()
        serve_b.stop()
    # The confirmation carries the gateway's own header, so desk B drops it.
    assert received["state"] == "ignored"
    assert received["reason"] == "loop"
    assert outbox_b == []
    assert [m["kind"] for m in outbox_a] == ["confirmation"]


def test_loop_through_header_stripping_hops_stops_at_limit(
    tmp_path: Path, relays: list[tuple[StrippingRelay, Controller]]
) -> None:
    limit = 3
    a = desk_env(tmp_path, "desk-a", peer="desk-b", rate_limit=limit)
    b = desk_env(tmp_path, "desk-b", peer="desk-a", rate_limit=limit)
    a_hop, b_hop = free_port(), free_port()
    point_relay(a, a_hop)
    point_relay(b, b_hop)
    to_b = start_relay(relays, a_hop, b.smtp_port)
    to_a = start_relay(relays, b_hop, a.smtp_port)
    serve_a, serve_b = ServeProcess(a), ServeProcess(b)
    try:
        send_seed(a)
        wait_until(
            lambda: to_a.refused() + to_b.refused() >= 1,
            120,
            "a 451 from one of the gateways",
        )
        time.sleep(3)
        from_a = stored_from(b, "help@desk-a.example.com")
        from_b = stored_from(a, "help@desk-b.example.com")
        time.sleep(3)
        assert len(stored_from(b, "help@desk-a.example.com")) == len(from_a)
        assert len(stored_from(a, "help@desk-b.example.com")) == len(from_b)
    finally:
        serve_a.stop()
        serve_b.stop()
    assert len(from_a) <= limit
    assert len(from_b) <= limit
    # The mails did loop: together the two sides took more than two.
    assert len(from_a) + len(from_b) > 2


def test_same_mail_over_smtp_and_pipe_counts_once(tmp_path: Path) -> None:
    env = make_env(tmp_path / "gw")
    customer = "erika@kunde.example.org"
    first = build_mail(subject="Drucker druckt nicht")
    serve = ServeProcess(env)
    try:
        send(env.smtp_port, customer, SUPPORT, first)
        wait_until(
            lambda: any(
                r["state"] == "processed" for r in env.json("inbound", "--json")
            ),
            60,
            "the first mail processed",
        )
        [again] = env.json_lines("ingest", "--wait", "--json", stdin=first)
        [case] = env.json("cases", "--json")
        reply = build_mail(subject=f"Re: Drucker {case['token']}", body="Noch da.\n")
        [by_pipe] = env.json_lines("ingest", "--wait", "--json", stdin=reply)
        send(env.smtp_port, customer, SUPPORT, reply)
        wait_until(
            lambda: all(
                r["state"] != "received" for r in env.json("inbound", "--json")
            ),
            60,
            "the reply over SMTP processed",
        )
        rows = env.json("inbound", "--json")
        shown = env.json("show", case["number"], "--json")
        kinds = [m["kind"] for m in env.json("outbox", "--json")]
    finally:
        serve.stop()
    assert again["state"] == "ignored"
    assert again["reason"] == "duplicate"
    assert by_pipe["state"] == "processed"
    assert [(r["source"], r["state"], r["reason"]) for r in rows] == [
        ("smtp", "ignored", "duplicate"),
        ("pipe", "processed", ""),
        ("pipe", "ignored", "duplicate"),
        ("smtp", "processed", ""),
    ]
    assert len(shown["comments"]) == 2
    assert kinds == ["confirmation"]
