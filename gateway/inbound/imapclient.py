"""One IMAP session over aioimaplib in which every failure raises MailboxError.

aioimaplib 2.0 reports a failed command as a NO or BAD result, not as an
exception. Some of its waits (``idle_start``, a pending command) never end
when the server closes the connection, and it has no STARTTLS. So every
call here runs under a timeout and races the connection-lost callback,
every result is checked, and STARTTLS upgrades the transport with
``loop.start_tls``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aioimaplib

from gateway.config import ImapSettings
from gateway.errors import CommandRefused, MailboxError

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 30.0
# Per command; a FETCH restarts it with every chunk of data that arrives.
COMMAND_TIMEOUT_SECONDS = 60.0
LOGOUT_TIMEOUT_SECONDS = 5.0
# The lines of an IDLE push that mean new mail or removed mail.
MAILBOX_CHANGES = (b"EXISTS", b"EXPUNGE", b"RECENT")

UIDVALIDITY_PATTERN = re.compile(rb"\[UIDVALIDITY (\d+)\]")
UIDNEXT_PATTERN = re.compile(rb"\[UIDNEXT (\d+)\]")
EXISTS_PATTERN = re.compile(rb"^(\d+) EXISTS")
FETCH_START_PATTERN = re.compile(rb"^\d+ FETCH \(")
FETCH_UID_PATTERN = re.compile(rb"\bUID (\d+)")
LITERAL_PATTERN = re.compile(rb"BODY\[\] \{(\d+)\}$")
SEARCH_RESULT_PATTERN = re.compile(rb"^[\d ]*$")


@dataclass
class FolderStatus:
    """The state of a folder as SELECT reports it."""

    uidvalidity: int
    uidnext: int | None
    exists: int


def uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(uid) for uid in uids)


class ImapSession:
    """A logged-in connection to one mailbox; use ``async with``."""

    def __init__(self, mailbox: ImapSettings) -> None:
        self.mailbox = mailbox
        self.label = mailbox.label
        self._client: Any = None
        self._lost = asyncio.Event()
        self._new_mail_reported = False

    async def __aenter__(self) -> ImapSession:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _error(self, message: str) -> MailboxError:
        return MailboxError(self.label, message)

    def _on_connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    async def _run(
        self,
        step: str,
        awaitable: Awaitable[T],
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> T:
        """Await ``awaitable`` unless the connection drops or ``timeout`` passes."""
        if self._lost.is_set():
            _discard(awaitable)
            raise self._error(f"connection lost before {step}")
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _pending = await asyncio.wait(
                {task, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            task.add_done_callback(_retrieve)
            if lost in done:
                raise self._error(f"connection lost during {step}")
            raise self._error(f"{step} timed out after {timeout:.0f} s")
        try:
            return task.result()
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise self._error(f"{step} failed: {exc!r}") from exc

    def take_new_mail_report(self) -> bool:
        """Return whether a reply since the last SELECT announced new mail; reset."""
        reported, self._new_mail_reported = self._new_mail_reported, False
        return reported

    def _check(self, response: Any, step: str) -> Any:
        """Raise CommandRefused unless the server's result is OK."""
        if any(
            isinstance(line, bytes | bytearray) and EXISTS_PATTERN.match(line)
            for line in response.lines
        ):
            self._new_mail_reported = True
        if response.result != "OK":
            text = _last_text(response.lines)
            raise CommandRefused(self.label, f"{step} failed: {response.result} {text}")
        return response

    async def open(self) -> None:
        """Connect, secure the connection as configured, and log in."""
        mailbox = self.mailbox
        context = None
        if mailbox.tls != "none":
            context = ssl.create_default_context(cafile=mailbox.ca_file or None)
        self._client = aioimaplib.IMAP4(
            host=mailbox.host,
            port=mailbox.port,
            timeout=COMMAND_TIMEOUT_SECONDS,
            conn_lost_cb=self._on_connection_lost,
            ssl_context=context if mailbox.tls == "implicit" else None,
        )
        await self._run(
            "connect", self._client.wait_hello_from_server(), CONNECT_TIMEOUT_SECONDS
        )
        if mailbox.tls == "starttls":
            assert context is not None
            await self._starttls(context)
        password = read_password(mailbox)
        # aioimaplib quotes the password but sends the user name as it is.
        user = aioimaplib.quoted(mailbox.user)
        self._check(
            await self._run("LOGIN", self._client.login(user, password)), "LOGIN"
        )
        # The capabilities after login can differ (MOVE, UIDPLUS, IDLE).
        await self._run("CAPABILITY", self._client.protocol.capability())

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise self._error(
                "the server does not offer STARTTLS; use tls = implicit (port 993)"
            )
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        self._check(await self._run("STARTTLS", protocol.execute(command)), "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await self._run(
            "TLS handshake",
            loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self.mailbox.host
            ),
            CONNECT_TIMEOUT_SECONDS,
        )
        # RFC 3501 section 6.2.1: capabilities from before STARTTLS are void.
        await self._run("CAPABILITY", protocol.capability())

    def has_capability(self, name: str) -> bool:
        return bool(self._client.has_capability(name))

    async def select(self, folder: str) -> FolderStatus:
        response = self._check(
            await self._run("SELECT", self._client.select(aioimaplib.quoted(folder))),
            f"SELECT {folder}",
        )
        # SELECT always reports EXISTS: only later replies announce new mail.
        self._new_mail_reported = False
        uidvalidity = uidnext = None
        exists = 0
        for line in response.lines:
            if not isinstance(line, bytes | bytearray):
                continue
            if match := UIDVALIDITY_PATTERN.search(line):
                uidvalidity = int(match.group(1))
            if match := UIDNEXT_PATTERN.search(line):
                uidnext = int(match.group(1))
            if match := EXISTS_PATTERN.match(line):
                exists = int(match.group(1))
        if uidvalidity is None:
            raise self._error(f"SELECT {folder} reported no UIDVALIDITY")
        return FolderStatus(uidvalidity, uidnext, exists)

    async def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it exists."""
        name = aioimaplib.quoted(folder)
        response = self._check(
            await self._run("LIST", self._client.list('""', name)), f"LIST {folder}"
        )
        # Each untagged LIST line starts with the folder's attributes "(...)";
        # the last line is the text of the tagged OK.
        if any(bytes(line).startswith(b"(") for line in response.lines[:-1]):
            return
        self._check(await self._run("CREATE", self._client.create(name)), "CREATE")
        log.info("IMAP folder created mailbox=%s folder=%s", self.label, folder)

    async def search_uids(self, *criteria: str) -> list[int]:
        """Return the UIDs that UID SEARCH finds, in ascending order."""
        response = self._check(
            await self._run(
                "UID SEARCH", self._client.uid_search(*criteria, charset=None)
            ),
            "UID SEARCH",
        )
        uids: set[int] = set()
        # The last line is the text of the tagged OK.
        for line in response.lines[:-1]:
            if isinstance(line, bytes | bytearray) and SEARCH_RESULT_PATTERN.match(
                line
            ):
                uids.update(int(word) for word in line.split())
        return sorted(uids)

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Return the raw bytes of the messages ``uids``, without setting \\Seen."""
        response = self._check(
            await self._run(
                "UID FETCH",
                self._client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"),
            ),
            f"UID FETCH {uid_set(uids)}",
        )
        return parse_fetch_lines(response.lines)

    async def mark_seen(self, uids: Sequence[int]) -> None:
        self._check(
            await self._run(
                "UID STORE",
                self._client.uid("store", uid_set(uids), "+FLAGS.SILENT", r"(\Seen)"),
            ),
            f"UID STORE {uid_set(uids)} +FLAGS (\\Seen)",
        )

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """Move messages to ``folder``: MOVE, or COPY, \\Deleted and EXPUNGE."""
        target = aioimaplib.quoted(folder)
        numbers = uid_set(uids)
        if self.has_capability("MOVE"):
            self._check(
                await self._run("UID MOVE", self._client.uid("move", numbers, target)),
                f"UID MOVE {numbers} {folder}",
            )
            return
        self._check(
            await self._run("UID COPY", self._client.uid("copy", numbers, target)),
            f"UID COPY {numbers} {folder}",
        )
        self._check(
            await self._run(
                "UID STORE",
                self._client.uid("store", numbers, "+FLAGS.SILENT", r"(\Deleted)"),
            ),
            f"UID STORE {numbers} +FLAGS (\\Deleted)",
        )
        if self.has_capability("UIDPLUS"):
            expunge = self._client.uid("expunge", numbers)
        else:
            # NOTE: without UIDPLUS, EXPUNGE also removes other messages that
            # a person flagged \Deleted in this folder.
            expunge = self._client.expunge()
        self._check(await self._run("EXPUNGE", expunge), "EXPUNGE")

    async def noop(self) -> None:
        self._check(await self._run("NOOP", self._client.noop()), "NOOP")

    async def idle(self, seconds: float) -> bool:
        """Wait in IDLE up to ``seconds``; return whether the folder changed."""
        idle_done = await self._run("IDLE", self._client.idle_start(timeout=seconds))
        changed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            while not changed and (remaining := deadline - loop.time()) > 0:
                try:
                    lines = await self._run(
                        "IDLE",
                        self._client.wait_server_push(timeout=remaining),
                        timeout=remaining + COMMAND_TIMEOUT_SECONDS,
                    )
                except MailboxError as exc:
                    if isinstance(exc.__cause__, TimeoutError):
                        break
                    raise
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                changed = any(
                    isinstance(line, bytes) and word in line
                    for line in lines
                    for word in MAILBOX_CHANGES
                )
        finally:
            if not self._lost.is_set() and self._client.has_pending_idle():
                self._client.idle_done()
        self._check(await self._run("IDLE", idle_done), "IDLE")
        return changed

    async def close(self) -> None:
        """Log out if still connected, then close the connection."""
        client = self._client
        if client is None:
            return
        self._client = None
        protocol = client.protocol
        if not self._lost.is_set() and protocol.state in ("AUTH", "SELECTED"):
            try:
                await self._run("LOGOUT", client.logout(), LOGOUT_TIMEOUT_SECONDS)
            except MailboxError as exc:
                log.debug("IMAP logout failed mailbox=%s error=%s", self.label, exc)
        if protocol.transport is not None:
            protocol.transport.close()


def read_password(mailbox: ImapSettings) -> str:
    """Return the password, read from ``password_file`` on every login.

    Reading at each login picks up a changed app password without a
    restart. The file's final line end is not part of the password.
    """
    if not mailbox.password_file:
        return mailbox.password
    try:
        text = Path(mailbox.password_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MailboxError(
            mailbox.label, f"cannot read password_file {mailbox.password_file}: {exc}"
        ) from exc
    return text.rstrip("\r\n")


def parse_fetch_lines(lines: Sequence[Any]) -> dict[int, bytes]:
    """Return {UID: raw message} from the lines of a UID FETCH (UID BODY[]).

    A server may send the UID before or after the literal, and FETCH lines
    for flag changes without any body, so each message's items are read up
    to the start of the next one.
    """
    messages: dict[int, bytes] = {}
    uid: int | None = None
    body: bytes | None = None
    expected_size: int | None = None

    def finish() -> None:
        if uid is not None and body is not None:
            messages[uid] = body

    for line in lines:
        if expected_size is not None:
            # The element after "BODY[] {n}" is the literal of n bytes.
            body = bytes(line)
            expected_size = None
            continue
        if not isinstance(line, bytes | bytearray):
            continue
        if FETCH_START_PATTERN.match(line):
            finish()
            uid, body = None, None
        if match := FETCH_UID_PATTERN.search(line):
            uid = int(match.group(1))
        if match := LITERAL_PATTERN.search(line):
            expected_size = int(match.group(1))
    finish()
    return messages


def _last_text(lines: Sequence[Any]) -> str:
    for line in reversed(lines):
        if isinstance(line, bytes | bytearray):
            return bytes(line).decode("utf-8", "replace")[:200]
    return ""


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a cancelled task's exception as seen, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


def _discard(awaitable: Awaitable[Any]) -> None:
    if asyncio.iscoroutine(awaitable):
        awaitable.close()
