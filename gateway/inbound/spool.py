"""Durable storage of received mail, before it is acknowledged.

A mail of up to ``INLINE_LIMIT`` bytes is stored in its inbound row. A
larger one goes to a file under ``<data_dir>/spool``, which is fsync'd
(with its folder) before the row that names it commits. Either way, the
mail may be acknowledged once that commit returns.

The SMTP listener stores through :class:`GroupCommitWriter`, which writes
the mails of concurrent sessions in one transaction, so one fsync covers
many acknowledgements.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import col

from gateway.errors import SpoolWriteFailed
from gateway.inbound.ratelimit import normalize_sender
from gateway.models import InboundMessage, InboundState

log = logging.getLogger(__name__)

INLINE_LIMIT = 1024 * 1024


@dataclass
class IncomingMail:
    """A received mail and how it arrived."""

    raw: bytes
    source: str
    envelope: dict[str, Any] = field(default_factory=dict)


def store_mails(
    engine: Engine, data_dir: Path, mails: Sequence[IncomingMail]
) -> list[int]:
    """Store ``mails`` in one transaction and return their inbound ids.

    Raises SpoolWriteFailed when anything could not be written; then none
    of the mails counts as stored.
    """
    if not mails:
        return []
    # A Core insert, not ORM objects: this runs once per acknowledged mail,
    # and the ORM's per-row bookkeeping costs more than the insert itself.
    try:
        now = datetime.now(UTC)
        rows = [_make_row(data_dir, mail, now) for mail in mails]
        with engine.begin() as connection:
            result = connection.execute(
                insert(InboundMessage).returning(
                    col(InboundMessage.id), sort_by_parameter_order=True
                ),
                rows,
            )
            ids = [int(row_id) for row_id in result.scalars() if row_id is not None]
    except Exception as exc:
        raise SpoolWriteFailed(
            f"storing {len(mails)} received mail(s) failed: {exc}"
        ) from exc
    return ids


def _make_row(data_dir: Path, mail: IncomingMail, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "raw": None,
        "spool_path": None,
        "size": len(mail.raw),
        "sha256": hashlib.sha256(mail.raw).hexdigest(),
        "source": mail.source,
        "envelope": mail.envelope,
        "envelope_sender": normalize_sender(mail.envelope.get("mail_from")),
        "state": InboundState.RECEIVED.value,
        "reason": "",
        "error": "",
        "attempts": 0,
        "received_at": now,
    }
    if len(mail.raw) <= INLINE_LIMIT:
        row["raw"] = mail.raw
    else:
        row["spool_path"] = str(_write_spool_file(data_dir, mail.raw))
    return row


def _write_spool_file(data_dir: Path, raw: bytes) -> Path:
    folder = data_dir / "spool" / datetime.now(UTC).strftime("%Y%m%d")
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        # The new folder's own entry must be durable too.
        _fsync_folder(folder.parent)
    final = folder / f"{uuid.uuid4().hex}.eml"
    temporary = final.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    _fsync_folder(folder)
    return final


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load_raw(row: InboundMessage) -> bytes:
    """Return the raw bytes of a stored inbound message."""
    if row.raw is not None:
        return row.raw
    if row.spool_path:
        return Path(row.spool_path).read_bytes()
    raise SpoolWriteFailed(
        f"inbound message {row.id} has neither raw bytes nor a spool file"
    )


@dataclass
class _Request:
    mail: IncomingMail
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


class GroupCommitWriter:
    """Store mails from the event loop in a thread, many sessions a commit.

    ``store`` resolves once the mail's transaction has committed. The
    thread takes every request waiting when it wakes, up to ``max_batch``,
    so under load the fsync of one commit is shared.
    """

    def __init__(self, engine: Engine, data_dir: Path, max_batch: int = 64) -> None:
        self._engine = engine
        self._data_dir = data_dir
        self._max_batch = max_batch
        self._requests: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="spool-writer", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=30)

    async def store(self, mail: IncomingMail) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._requests.put(_Request(mail, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._requests.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    more = self._requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Request]) -> None:
        try:
            ids = store_mails(self._engine, self._data_dir, [r.mail for r in batch])
        except SpoolWriteFailed as exc:
            log.error(
                "storing a batch of received mail failed count=%d error=%s",
                len(batch),
                exc,
            )
            for request in batch:
                request.loop.call_soon_threadsafe(_fail, request.future, exc)
            return
        for request, row_id in zip(batch, ids, strict=True):
            request.loop.call_soon_threadsafe(_resolve, request.future, row_id)


def _resolve(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[int], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
