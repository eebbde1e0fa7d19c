"""IMAP pollers inside ``gateway serve``: IDLE, polling, SMTP copies, outages."""

from __future__ import annotations

import os
import signal
import smtplib
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import SUPPORT, GatewayEnv, ServeProcess, build_mail, make_env
from tests.imap.conftest import (
    PROCESSED,
    Mailbox,
    add_imap,
    imap_table,
    inbound_count,
    polled_once,
    wait_until,
)
from tests.imap.dovecot import Dovecot, free_port
from tests.imap.proxy import CommandHookProxy

CUSTOMER = "erika@kunde.example.org"


def send_smtp(env: GatewayEnv, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", env.smtp_port, timeout=30) as client:
        client.sendmail(CUSTOMER, [SUPPORT], raw)


def test_idle_delivers_within_a_second(
    imap_env: GatewayEnv, mailbox: Mailbox, serve_processes: list[ServeProcess]
) -> None:
    serve = ServeProcess(imap_env)
    serve_processes.append(serve)
    wait_until(lambda: polled_once(imap_env), 30, "the first poll")
    mailbox.append(build_mail(subject="Erste Meldung"))
    wait_until(lambda: inbound_count(imap_env) == 1, 30, "the first mail stored")

    started = time.monotonic()
    mailbox.append(build_mail(subject="Zweite Meldung"))
    wait_until(
        lambda: inbound_count(imap_env) == 2, 10, "the second mail", interval=0.01
    )
    elapsed = time.monotonic() - started

    print(f"IDLE delivery took {elapsed:.3f} s")
    assert elapsed < 1.0, serve.log()
    assert "idle=True" in serve.log()
    wait_until(lambda: mailbox.uids("INBOX") == [], 10, "both mails moved")
    assert len(mailbox.uids(PROCESSED)) == 2


def test_mail_arriving_during_a_poll_read_at_once(
    tmp_path: Path,
    dovecot: Dovecot,
    mailbox: Mailbox,
    serve_processes: list[ServeProcess],
) -> None:
    # The second mail arrives while the poll moves the first one, so the
    # server announces it in the reply to MOVE, before IDLE begins.
    proxy = CommandHookProxy(
        dovecot.port,
        b"MOVE",
        lambda: mailbox.append(build_mail(subject="Zweite Meldung")),
    )
    env = add_imap(make_env(tmp_path / "gw"), imap_table(proxy.port))
    serve_processes.append(ServeProcess(env))
    try:
        wait_until(lambda: polled_once(env), 30, "the first poll")
        mailbox.append(build_mail(subject="Erste Meldung"))
        wait_until(lambda: inbound_count(env) == 2, 10, "the mail sent during a poll")
    finally:
        proxy.close()

    assert proxy.calls == 1


def test_same_mail_by_smtp_and_imap_one_comment(
    imap_env: GatewayEnv, mailbox: Mailbox, serve_processes: list[ServeProcess]
) -> None:
    serve_processes.append(ServeProcess(imap_env))
    wait_until(lambda: polled_once(imap_env), 30, "the first poll")
    raw = build_mail(subject="Rechnung fehlt")
    send_smtp(imap_env, raw)
    wait_until(lambda: inbound_count(imap_env) == 1, 30, "the SMTP copy stored")

    # The mailbox's copy as a delivery agent writes it: trace headers on
    # top, and the line ends of the server's own storage.
    trace = (
        b"Return-Path: <erika@kunde.example.org>\n"
        b"Delivered-To: desk@mail.example.net\n"
        b"Received: from mx.example.net by imap.example.net;"
        b" Thu, 03 Dec 2026 10:15:02 +0100\n"
    )
    mailbox.append(trace + raw.replace(b"\r\n", b"\n"))

    def both_final() -> bool:
        rows = imap_env.json("inbound", "--json")
        return len(rows) == 2 and all(row["state"] != "received" for row in rows)

    wait_until(both_final, 30, "the IMAP copy processed")
    second, first = imap_env.json("inbound", "--json")
    assert (first["source"], first["state"]) == ("smtp", "processed")
    assert (second["source"], second["state"]) == ("imap", "ignored")
    assert second["reason"] == "duplicate"
    assert second["duplicate_of"] == first["id"]
    case = imap_env.json("cases", "--json")
    assert len(case) == 1
    assert len(imap_env.json("show", case[0]["number"], "--json")["comments"]) == 1


def test_mailbox_down_keeps_smtp_listening(
    tmp_path: Path, serve_processes: list[ServeProcess]
) -> None:
    # Nothing listens on this port, so every connection is refused.
    env = add_imap(make_env(tmp_path / "gw"), imap_table(free_port()))
    serve = ServeProcess(env)
    serve_processes.append(serve)

    send_smtp(env, build_mail(subject="Trotz Postfach-Ausfall"))

    wait_until(lambda: inbound_count(env) == 1, 30, "the SMTP mail stored")
    wait_until(
        lambda: "IMAP session ended; reconnecting" in serve.log(),
        30,
        "a logged reconnect",
    )
    assert env.json("cases", "--json")[0]["subject"] == "Trotz Postfach-Ausfall"


def test_polls_and_copies_without_idle_or_move(
    tmp_path: Path,
    dovecot_factory: Callable[..., Dovecot],
    serve_processes: list[ServeProcess],
) -> None:
    # A server that offers neither IDLE nor MOVE.
    server = dovecot_factory(extra_config="imap_capability = IMAP4rev1 UIDPLUS\n")
    mailbox = Mailbox(server)
    env = add_imap(make_env(tmp_path / "gw"), imap_table(server.port, poll_seconds=0.5))
    serve = ServeProcess(env)
    serve_processes.append(serve)
    wait_until(lambda: polled_once(env), 30, "the first poll")
    assert "idle=False" in serve.log()

    mailbox.append(build_mail(subject="Ohne IDLE"))

    wait_until(lambda: inbound_count(env) == 1, 30, "the mail stored")
    wait_until(lambda: mailbox.uids("INBOX") == [], 10, "the mail moved")
    assert len(mailbox.uids(PROCESSED)) == 1
    mailbox.logout()


def test_killed_imap_session_reconnects(
    imap_env: GatewayEnv,
    dovecot: Dovecot,
    mailbox: Mailbox,
    serve_processes: list[ServeProcess],
) -> None:
    # The test's own session is open before the gateway starts.
    own = set(dovecot.imap_pids())
    assert len(own) == 1
    serve = ServeProcess(imap_env)
    serve_processes.append(serve)
    wait_until(lambda: polled_once(imap_env), 30, "the first poll")
    (gateway_session,) = set(dovecot.imap_pids()) - own
    os.kill(gateway_session, signal.SIGKILL)

    mailbox.append(build_mail(subject="Nach dem Abbruch"))

    wait_until(lambda: inbound_count(imap_env) == 1, 30, "the mail after reconnect")
    assert "IMAP session ended; reconnecting" in serve.log()
    wait_until(lambda: mailbox.uids("INBOX") == [], 10, "the mail moved")
