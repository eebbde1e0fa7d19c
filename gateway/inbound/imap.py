"""The IMAP poller: store new mail from a folder, then flag it and move it.

Each round selects the folder, finds the UIDs above the last one read, and
works through them in batches. A batch is fetched with BODY.PEEK[], so
nothing is marked read yet, and stored in one commit through the same path
as SMTP and ``gateway ingest``. Only then is it flagged \\Seen and moved to
``processed_folder``. The last UID read is recorded after that, so a
connection lost before the flag means the batch is fetched again; the
duplicate rules of processing then ignore the second copy.

When the folder's UIDVALIDITY changes, the UIDs were reassigned. The
folder is read again (all of it, or the mail since the first poll with
``ingest_existing = false``); copies stored before are ignored as
duplicates.

Between rounds the poller waits in IDLE when the server offers it, else
``poll_seconds``. A failed session is logged and retried with backoff; it
never stops the other mailboxes or the SMTP listener.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import UTC

from gateway.config import ImapSettings
from gateway.errors import CommandRefused, MailboxError
from gateway.inbound.imapclient import FolderStatus, ImapSession
from gateway.inbound.imapstate import load_state, save_state
from gateway.inbound.spool import IncomingMail, store_mails
from gateway.models import ImapFolderState
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# Messages per UID FETCH and per commit. With [smtp] max_message_size mail,
# a batch holds up to this many such messages in memory.
FETCH_BATCH = 20
# RFC 2177 lets a server end IDLE after 30 minutes of silence; restarting
# well before that also notices a dead connection sooner.
IDLE_RESTART_SECONDS = 10 * 60.0
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0
IMAP_DATE_MONTHS = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]

OnStored = Callable[[int], None]


class MailboxPoller:
    """Reads one ``[[imap]]`` mailbox into the store."""

    def __init__(
        self, runtime: Runtime, mailbox: ImapSettings, on_stored: OnStored
    ) -> None:
        self.runtime = runtime
        self.mailbox = mailbox
        self.label = mailbox.label
        self._on_stored = on_stored

    async def run_once(self) -> int:
        """Connect, read every new message, log out; return how many were stored."""
        async with ImapSession(self.mailbox) as session:
            return await self.poll(session)

    async def run_forever(self) -> None:
        """Poll until cancelled, reconnecting with backoff after each failure."""
        delay = RETRY_MIN_SECONDS
        failures = 0
        while True:
            try:
                async with ImapSession(self.mailbox) as session:
                    idle = session.has_capability("IDLE")
                    log.info(
                        "IMAP mailbox connected mailbox=%s idle=%s", self.label, idle
                    )
                    while True:
                        stored = await self.poll(session)
                        delay = RETRY_MIN_SECONDS
                        failures = 0
                        # Mail that arrived while this poll ran was announced
                        # in the replies to its commands, before IDLE began,
                        # so IDLE would not announce it again: read once more.
                        if stored or session.take_new_mail_report():
                            continue
                        await self._wait_for_mail(session, idle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The boundary of one session: whatever failed, the mail not
                # yet stored stays on the server and is read after the retry.
                failures += 1
                if isinstance(exc, MailboxError):
                    log.warning(
                        "IMAP session ended; reconnecting in %.0f s mailbox=%s "
                        "failures=%d error=%s",
                        delay,
                        self.label,
                        failures,
                        exc,
                    )
                else:
                    log.exception(
                        "IMAP poll failed; reconnecting in %.0f s mailbox=%s "
                        "failures=%d",
                        delay,
                        self.label,
                        failures,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _wait_for_mail(self, session: ImapSession, idle: bool) -> None:
        if idle:
            log.debug("IMAP waiting in IDLE mailbox=%s", self.label)
            await session.idle(IDLE_RESTART_SECONDS)
            return
        await asyncio.sleep(self.mailbox.poll_seconds)
        # A NOOP lets the server report mail that arrived meanwhile.
        await session.noop()

    async def poll(self, session: ImapSession) -> int:
        """Read the folder once: store, flag and move every new message."""
        mailbox = self.mailbox
        if mailbox.processed_folder:
            await session.ensure_folder(mailbox.processed_folder)
        status = await session.select(mailbox.folder)
        engine = self.runtime.engine
        state = await asyncio.to_thread(load_state, engine, self.label)
        if state is None:
            state = await self._start(session, status)
        if state.uidvalidity != status.uidvalidity:
            return await self._reread(session, status, state)
        uids = [
            uid
            for uid in await session.search_uids("UID", f"{state.last_uid + 1}:*")
            if uid > state.last_uid
        ]
        stored = 0
        for batch in _batches(uids):
            stored += await self._read_batch(session, status, batch)
            await asyncio.to_thread(
                save_state, engine, self.label, status.uidvalidity, batch[-1]
            )
        return stored

    async def _start(
        self, session: ImapSession, status: FolderStatus
    ) -> ImapFolderState:
        """Record a folder read for the first time: from UID 1, or from UIDNEXT."""
        last_uid = 0
        if not self.mailbox.ingest_existing:
            if status.uidnext is not None:
                last_uid = status.uidnext - 1
            else:
                last_uid = max(await session.search_uids("ALL"), default=0)
            log.info(
                "IMAP first poll leaves the mail already there mailbox=%s count=%d "
                "last_uid=%d",
                self.label,
                status.exists,
                last_uid,
            )
        return await asyncio.to_thread(
            save_state, self.runtime.engine, self.label, status.uidvalidity, last_uid
        )

    async def _reread(
        self, session: ImapSession, status: FolderStatus, state: ImapFolderState
    ) -> int:
        """Read a folder whose UIDVALIDITY changed again, then record the new one.

        The state keeps the old UIDVALIDITY until the whole folder is read,
        so an interrupted re-read starts over; copies are ignored as
        duplicates.
        """
        log.warning(
            "IMAP UIDVALIDITY changed; reading the folder again mailbox=%s "
            "old=%d new=%d",
            self.label,
            state.uidvalidity,
            status.uidvalidity,
        )
        if self.mailbox.ingest_existing:
            uids = await session.search_uids("ALL")
        else:
            # NOTE: SINCE compares dates only, so mail that was already there
            # on the day of the first poll is read too.
            uids = await session.search_uids("SINCE", _imap_date(state))
        stored = 0
        for batch in _batches(uids):
            stored += await self._read_batch(session, status, batch)
        highest = max(uids, default=0)
        if status.uidnext is not None:
            highest = max(highest, status.uidnext - 1)
        await asyncio.to_thread(
            save_state, self.runtime.engine, self.label, status.uidvalidity, highest
        )
        return stored

    async def _read_batch(
        self, session: ImapSession, status: FolderStatus, uids: Sequence[int]
    ) -> int:
        """Fetch, store, then flag and move one batch; return how many were stored."""
        span = f"{uids[0]}-{uids[-1]}"
        try:
            messages = await self._fetch(session, uids)
            missing = [uid for uid in uids if uid not in messages]
            if missing:
                # Deleted by someone else between SEARCH and FETCH, or
                # rejected by the server (see _fetch).
                log.info(
                    "IMAP messages not fetched mailbox=%s uids=%s",
                    self.label,
                    missing,
                )
            found = [uid for uid in uids if uid in messages]
            if not found:
                return 0
            mails = [
                IncomingMail(
                    raw=messages[uid],
                    source="imap",
                    envelope={
                        "mailbox": self.label,
                        "uid": uid,
                        "uidvalidity": status.uidvalidity,
                    },
                )
                for uid in found
            ]
            settings = self.runtime.settings
            # TODO: mail above [smtp] max_message_size is stored here, where
            # the SMTP listener would reject it with 552.
            ids = await asyncio.to_thread(
                store_mails, self.runtime.engine, settings.store.data_dir, mails
            )
        except Exception as exc:
            log.error(
                "IMAP batch not stored mailbox=%s uids=%s error=%s",
                self.label,
                span,
                exc,
            )
            raise
        for uid, inbound_id, mail in zip(found, ids, mails, strict=True):
            log.info(
                "mail stored inbound_id=%d mailbox=%s uid=%d size=%d",
                inbound_id,
                self.label,
                uid,
                len(mail.raw),
            )
        await self._acknowledge(session, found)
        for inbound_id in ids:
            await self._hand_on(inbound_id)
        return len(ids)

    async def _fetch(
        self, session: ImapSession, uids: Sequence[int]
    ) -> dict[int, bytes]:
        """Fetch ``uids``, one by one when the server rejects the batch.

        A message the server rejects on its own (Exchange does for mail it
        cannot convert to RFC 822) is logged and left in the folder, so it
        does not hold back the mail after it on every round.
        """
        try:
            return await session.fetch(uids)
        except CommandRefused as exc:
            if len(uids) == 1:
                # NOTE: a transient NO skips the message too; it stays unread.
                log.error(
                    "IMAP server rejected the fetch of a message; it is skipped and "
                    "stays in the folder mailbox=%s uid=%d error=%s",
                    self.label,
                    uids[0],
                    exc,
                )
                return {}
            log.warning(
                "IMAP server rejected a batch fetch; fetching one by one mailbox=%s "
                "uids=%s-%s error=%s",
                self.label,
                uids[0],
                uids[-1],
                exc,
            )
        messages: dict[int, bytes] = {}
        for uid in uids:
            messages.update(await self._fetch(session, [uid]))
        return messages

    async def _acknowledge(self, session: ImapSession, uids: Sequence[int]) -> None:
        """Flag stored messages \\Seen and move them; called only after the commit.

        A refused command is logged and the batch counts as read, because
        trying again would store the same mail again on every round. A
        lost connection raises, so the batch is fetched again.
        """
        span = f"{uids[0]}-{uids[-1]}"
        target = self.mailbox.processed_folder
        try:
            await session.mark_seen(uids)
            if target:
                await session.move(uids, target)
        except CommandRefused as exc:
            log.error(
                "IMAP server rejected the flag or move of stored mail; it stays in "
                "the folder mailbox=%s uids=%s error=%s",
                self.label,
                span,
                exc,
            )
        except Exception as exc:
            log.error(
                "IMAP flag or move failed after storing; the mail is read again "
                "mailbox=%s uids=%s error=%s",
                self.label,
                span,
                exc,
            )
            raise

    async def _hand_on(self, inbound_id: int) -> None:
        try:
            await asyncio.to_thread(self._on_stored, inbound_id)
        except Exception:
            # The mail is stored; the sweep hands it to a worker later.
            log.exception("queueing a stored mail failed inbound_id=%d", inbound_id)


def _batches(uids: Sequence[int]) -> list[list[int]]:
    return [list(uids[i : i + FETCH_BATCH]) for i in range(0, len(uids), FETCH_BATCH)]


def _imap_date(state: ImapFolderState) -> str:
    """Return the day of the folder's first poll as IMAP writes dates: 4-Dec-2026."""
    started = state.started_at.astimezone(UTC)
    return f"{started.day}-{IMAP_DATE_MONTHS[started.month - 1]}-{started.year}"


def start_pollers(runtime: Runtime, on_stored: OnStored) -> list[asyncio.Task[None]]:
    """Start one polling task per ``[[imap]]`` mailbox on the running loop."""
    tasks = []
    for mailbox in runtime.settings.imap:
        poller = MailboxPoller(runtime, mailbox, on_stored)
        tasks.append(
            asyncio.create_task(poller.run_forever(), name=f"imap {mailbox.label}")
        )
    return tasks


async def stop_pollers(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def poll_all_once(runtime: Runtime, on_stored: OnStored) -> dict[str, int | str]:
    """Read each mailbox once; return {mailbox: stored count, or the error}."""
    results: dict[str, int | str] = {}
    for mailbox in runtime.settings.imap:
        poller = MailboxPoller(runtime, mailbox, on_stored)
        try:
            results[mailbox.label] = await poller.run_once()
        except MailboxError as exc:
            log.error("IMAP poll failed mailbox=%s error=%s", mailbox.label, exc)
            results[mailbox.label] = str(exc)
        except Exception as exc:
            log.exception("IMAP poll failed mailbox=%s", mailbox.label)
            results[mailbox.label] = f"{type(exc).__name__}: {exc}"
    return results


async def poll_until_stopped(runtime: Runtime, on_stored: OnStored) -> None:
    """Run the pollers of every mailbox until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = start_pollers(runtime, on_stored)
    await stop.wait()
    await stop_pollers(tasks)
