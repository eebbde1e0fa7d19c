"""Shared fixtures: free ports, an SMTP sink, gateway configs and processes, servers.

Tests that need PostgreSQL or Redis skip with the reason when the server is
missing, except under CI (``CI=true``), where a missing server fails them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
GATEWAY = str(Path(sys.executable).parent / "gateway")
DRAMATIQ = str(Path(sys.executable).parent / "dramatiq")
POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UNDER_CI = os.environ.get("CI", "").lower() == "true"

SUPPORT = "help@desk.example.com"
STAFF_DOMAIN = "staff.example.com"
ORG_ID = "00DTest42"
MESSAGE_ID_DOMAIN = "mail.desk.example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_service(reason: str) -> None:
    """Skip the test, or fail it under CI, where every service must be there."""
    if UNDER_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@dataclass
class SinkMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Sink:
    """An SMTP server on loopback that keeps what it receives: the test relay."""

    port: int
    received: list[SinkMessage] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.condition:
            self.received.append(
                SinkMessage(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content,
                )
            )
            self.condition.notify_all()
        return "250 2.0.0 OK"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SinkMessage]:
        """Wait until ``count`` messages arrived; return them all."""
        with self.condition:
            arrived = self.condition.wait_for(
                lambda: len(self.received) >= count, timeout
            )
            assert arrived, (
                f"sink got {len(self.received)} of {count} messages in {timeout} s"
            )
            return list(self.received)


@pytest.fixture
def sink() -> Iterator[Sink]:
    port = free_port()
    handler = Sink(port)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler
    controller.stop()


CONFIG_TEMPLATE = """\
[desk]
org_id = "{org}"
support_addresses = ["{support}"]
staff_domains = ["{staff}"]
message_id_domain = "{mid}"
language = "{language}"
portal_url = "https://portal.desk.example.com/cases"

[store]
url = "{store_url}"
data_dir = "{data_dir}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
max_message_size = {max_size}

[relay]
host = "{relay_host}"
port = {relay_port}
retry_base_seconds = 1.0

[broker]
url = "{broker_url}"
namespace = "{namespace}"

[worker]
threads = {threads}
sweep_seconds = 0.5
"""


@dataclass
class GatewayEnv:
    """A config file and store in a temporary folder, and helpers to run commands."""

    folder: Path
    config: Path
    smtp_port: int
    store_url: str
    namespace: str

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            [GATEWAY, *args, "--config", str(self.config)],
            input=stdin,
            capture_output=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"gateway {' '.join(args)} exited {done.returncode}: "
                f"{done.stderr.decode()}"
            )
        return done

    def json(self, *args: str) -> Any:
        import json

        return json.loads(self.run(*args).stdout)

    def json_lines(self, *args: str, stdin: bytes | None = None) -> list[Any]:
        import json

        output = self.run(*args, stdin=stdin).stdout.decode()
        return [json.loads(line) for line in output.splitlines() if line.strip()]


def make_env(
    folder: Path,
    *,
    relay_port: int | None = None,
    store_url: str | None = None,
    broker_url: str = "",
    threads: int = 2,
    language: str = "en",
    max_size: int = 1024 * 1024,
) -> GatewayEnv:
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / "store"
    store_url = store_url or f"sqlite:///{data_dir}/gateway.db"
    smtp_port = free_port()
    namespace = f"{redis_namespace_prefix()}{uuid.uuid4().hex[:8]}"
    config = folder / "config.toml"
    config.write_text(
        CONFIG_TEMPLATE.format(
            org=ORG_ID,
            support=SUPPORT,
            staff=STAFF_DOMAIN,
            mid=MESSAGE_ID_DOMAIN,
            language=language,
            store_url=store_url,
            data_dir=data_dir,
            smtp_port=smtp_port,
            max_size=max_size,
            relay_host="127.0.0.1" if relay_port else "",
            relay_port=relay_port or 25,
            broker_url=broker_url,
            namespace=namespace,
            threads=threads,
        )
    )
    return GatewayEnv(folder, config, smtp_port, store_url, namespace)


@pytest.fixture
def gateway_env(tmp_path: Path) -> GatewayEnv:
    return make_env(tmp_path / "gw")


class ServeProcess:
    """``gateway serve`` as a child process, stopped by its pid."""

    def __init__(
        self, env: GatewayEnv, extra_env: dict[str, str] | None = None
    ) -> None:
        self.env = env
        self.log_path = env.folder / f"serve-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [GATEWAY, "serve", "--config", str(env.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(extra_env or {})},
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway serve exited early:\n{self.log()}")
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.env.smtp_port), timeout=0.5
                ):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(
            f"gateway serve did not listen in {timeout} s:\n{self.log()}"
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class WorkerProcess:
    """``dramatiq gateway.worker`` as a child process."""

    def __init__(self, env: GatewayEnv) -> None:
        self.log_path = env.folder / f"worker-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [DRAMATIQ, "gateway.worker", "--processes", "1", "--threads", "2"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GATEWAY_CONFIG": str(env.config)},
            cwd=REPO,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def redis_namespace_prefix() -> str:
    """Redis key prefix of this test process, so parallel runs keep their keys."""
    return f"gateway-test-{os.getpid()}-"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        missing_service("psycopg is not installed")
    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL at {admin_url} is not reachable: {exc}")
    base, _, _ = POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The Redis server's URL; this run's namespaced keys are deleted afterwards."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield REDIS_URL
    for key in client.scan_iter(match=f"{redis_namespace_prefix()}*"):
        client.delete(key)
    client.close()


def build_mail(
    *,
    sender: str = "Erika Beispiel <erika@kunde.example.org>",
    to: str = SUPPORT,
    subject: str = "Drucker druckt nicht",
    body: str = (
        "Hallo,\n\nunser Drucker im Lager druckt seit heute keine Etiketten.\n\nErika\n"
    ),
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    cc: str | None = None,
    extra_headers: dict[str, str] | None = None,
    date: str = "Thu, 03 Dec 2026 10:15:00 +0100",
) -> bytes:
    """Build a plain-text mail as a mail client would send it.

    The fixed default ``date`` keeps the dedup key of two builds equal; pass
    ``email.utils.formatdate()`` where the mail must look freshly written.
    """
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = date
    mail["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@kunde.example.org>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = references
    for name, value in (extra_headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes(policy=policy.SMTP)


def quote_reply(original: EmailMessage, sender: str, new_text: str) -> bytes:
    """Build a reply to ``original`` as a mail client writes it: quoted, threaded."""
    body_part = original.get_body(("plain",))
    assert body_part is not None
    quoted = "\n".join(
        f"> {line}" if line else ">" for line in body_part.get_content().splitlines()
    )
    references = " ".join(
        filter(
            None, [str(original.get("References") or ""), str(original["Message-ID"])]
        )
    )
    attribution = "On Fri, 4 Dec 2026 at 09:00, Customer Support wrote:"
    body = f"{new_text}\n\n{attribution}\n{quoted}\n"
    return build_mail(
        sender=sender,
        subject=f"Re: {original['Subject']}",
        body=body,
        in_reply_to=str(original["Message-ID"]),
        references=references,
    )
