"""Fixtures of the IMAP tests: a real Dovecot, a mailbox client, gateway configs.

A missing dovecot binary skips these tests with the reason, except under
CI, where it fails them (``.ci/run`` installs dovecot-imapd).
"""

from __future__ import annotations

import imaplib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayEnv, ServeProcess, make_env, missing_service
from tests.imap.dovecot import PASSWORD, USER, Dovecot, dovecot_binary

PROCESSED = "Processed"


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """Start Dovecot servers with the given options; stop them all afterwards."""
    if dovecot_binary() is None:
        missing_service("dovecot is not installed (apt-get install dovecot-imapd)")
    started: list[Dovecot] = []

    def start(**options: Any) -> Dovecot:
        server = Dovecot(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory()


class Mailbox:
    """The test's own IMAP client of the Dovecot user, over the standard imaplib."""

    def __init__(self, server: Dovecot) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", server.port, timeout=30)
        self.client.login(USER, PASSWORD)

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        """Put a message into ``folder`` and return its UID."""
        result, data = self.client.append(folder, None, None, raw)
        assert result == "OK", data
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0])
        assert match, data
        return int(match.group(1))

    def create(self, folder: str) -> None:
        result, data = self.client.create(folder)
        assert result == "OK", data

    def delete(self, folder: str) -> None:
        result, data = self.client.delete(folder)
        assert result == "OK", data

    def uids(self, folder: str = "INBOX") -> list[int]:
        result, data = self.client.select(folder, readonly=True)
        assert result == "OK", data
        result, data = self.client.uid("SEARCH", "ALL")
        assert result == "OK", data
        return [int(uid) for uid in data[0].split()]

    def uidvalidity(self, folder: str) -> int:
        result, data = self.client.status(folder, "(UIDVALIDITY)")
        assert result == "OK", data
        match = re.search(rb"UIDVALIDITY (\d+)", data[0])
        assert match, data
        return int(match.group(1))

    def flags(self, uid: int, folder: str = "INBOX") -> bytes:
        result, data = self.client.select(folder, readonly=True)
        assert result == "OK", data
        result, data = self.client.uid("FETCH", str(uid), "(FLAGS)")
        assert result == "OK", data
        return bytes(data[0])

    def logout(self) -> None:
        self.client.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Mailbox]:
    client = Mailbox(dovecot)
    yield client
    client.logout()


def imap_table(
    port: int,
    *,
    folder: str = "INBOX",
    processed_folder: str = PROCESSED,
    ingest_existing: bool = False,
    poll_seconds: float = 1.0,
    tls: str = "none",
    password_file: Path | None = None,
    extra: str = "",
) -> str:
    """Return an [[imap]] table for the Dovecot user."""
    secret = (
        f'password_file = "{password_file}"'
        if password_file
        else f'password = "{PASSWORD}"'
    )
    return f"""
[[imap]]
host = "127.0.0.1"
port = {port}
tls = "{tls}"
user = "{USER}"
{secret}
folder = "{folder}"
processed_folder = "{processed_folder}"
poll_seconds = {poll_seconds}
ingest_existing = {"true" if ingest_existing else "false"}
{extra}
"""


def add_imap(env: GatewayEnv, table: str) -> GatewayEnv:
    """Append an [[imap]] table to the env's config file."""
    with env.config.open("a") as handle:
        handle.write(table)
    return env


@pytest.fixture
def imap_env(tmp_path: Path, dovecot: Dovecot) -> GatewayEnv:
    """A gateway whose one mailbox is the Dovecot INBOX, moving mail to Processed."""
    return add_imap(make_env(tmp_path / "gw"), imap_table(dovecot.port))


@pytest.fixture
def serve_processes() -> Iterator[list[ServeProcess]]:
    """``gateway serve`` processes a test started; stopped by pid afterwards."""
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.stop()


def count_rows(env: GatewayEnv, table: str) -> int:
    """Count the rows of ``table`` in the SQLite store; 0 before it exists."""
    path = env.store_url.removeprefix("sqlite:///")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.OperationalError as exc:
        # No store file or no table yet: the gateway is still starting.
        if "no such table" in str(exc) or "unable to open" in str(exc):
            return 0
        raise


def inbound_count(env: GatewayEnv) -> int:
    """Count the stored inbound rows, reading the SQLite store directly."""
    return count_rows(env, "inboundmessage")


def polled_once(env: GatewayEnv) -> bool:
    """Whether a poller recorded a folder state: its first poll is done.

    With ``ingest_existing = false`` mail put into the folder before that
    counts as existing mail and is left there.
    """
    return count_rows(env, "imapfolderstate") > 0


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> float:
    """Wait until ``check()`` is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")
