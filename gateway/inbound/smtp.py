"""The SMTP listener: accept mail for the support addresses, store it, then ack.

Replies:
- 550 5.1.1 at RCPT for an address that is not a support address;
- 451 4.7.1 at RCPT while the sender is over the rate limit
  (:mod:`gateway.inbound.ratelimit`);
- 552 for a mail over ``[smtp] max_message_size`` (aiosmtpd rejects at MAIL
  FROM when the client declares SIZE, after DATA otherwise);
- 250 only after the raw mail is committed to the store;
- 451 4.3.0 when storing failed, so the client keeps the mail and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.inbound.spool import GroupCommitWriter, IncomingMail

log = logging.getLogger(__name__)


class GatewayHandler:
    """aiosmtpd handler that stores each accepted mail through a GroupCommitWriter."""

    def __init__(
        self,
        settings: Settings,
        writer: GroupCommitWriter,
        on_stored: Callable[[int], None],
        sender_limited: Callable[[str], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._writer = writer
        self._on_stored = on_stored
        # Blocking (it reads the store), so it runs in a thread.
        self._sender_limited = sender_limited

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self._settings.is_support_address(address):
            log.info("recipient rejected peer=%s rcpt=%s", _peer(session), address)
            return "550 5.1.1 Recipient address rejected: not a support mailbox here"
        if self._sender_limited is not None:
            try:
                limited = await asyncio.to_thread(
                    self._sender_limited, envelope.mail_from or ""
                )
            except Exception:
                log.exception("rate limit check failed peer=%s", _peer(session))
                return "451 4.3.0 Temporary failure, please retry"
            if limited:
                return "451 4.7.1 Too many mails from this sender, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        mail = IncomingMail(
            raw=raw,
            source="smtp",
            envelope={
                "mail_from": envelope.mail_from or "",
                "rcpt_tos": list(envelope.rcpt_tos),
                "peer": _peer(session),
                "helo": session.host_name or "",
            },
        )
        try:
            inbound_id = await self._writer.store(mail)
        except Exception:
            log.exception(
                "storing a received mail failed peer=%s size=%d",
                _peer(session),
                len(raw),
            )
            return "451 4.3.0 Temporary failure storing the message, please retry"
        log.info(
            "mail stored inbound_id=%d peer=%s size=%d from=%s",
            inbound_id,
            _peer(session),
            len(raw),
            envelope.mail_from,
        )
        try:
            self._on_stored(inbound_id)
        except Exception:
            # The mail is stored; the sweep hands it to a worker later.
            log.exception("queueing a stored mail failed inbound_id=%d", inbound_id)
        return f"250 2.0.0 Message accepted as {inbound_id}"


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def start_smtp_server(
    settings: Settings, handler: GatewayHandler
) -> asyncio.base_events.Server:
    """Listen on ``[smtp] host:port`` on the running loop and return the server.

    Raises ConfigError when the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    limit = settings.smtp.max_message_size

    def make_protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            hostname=settings.desk.message_id_domain,
            ident="case-mail-gateway",
        )

    try:
        server = await loop.create_server(
            make_protocol, host=settings.smtp.host, port=settings.smtp.port
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.smtp.host}:{settings.smtp.port}: "
            f"{exc.strerror}; change [smtp] host or port, or stop the other listener"
        ) from exc
    log.info(
        "SMTP listener started address=%s:%d", settings.smtp.host, settings.smtp.port
    )
    return server
