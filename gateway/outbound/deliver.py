"""Delivery of composed mails to the SMTP relay, one attempt per call.

Every failure becomes a DeliveryError. ``permanent`` is true only when the
relay replied with a 5xx code or the mail itself cannot be sent (no
recipients, an address that SMTP cannot carry), so the outbox job that calls
this retries everything else with backoff. A rejected login (535) is a 5xx
reply too and counts as permanent, although a corrected password would let a
retry succeed.
"""

from __future__ import annotations

import logging
from email.parser import BytesHeaderParser
from email.policy import compat32

import aiosmtplib

from gateway.config import RelaySettings
from gateway.errors import DeliveryError

log = logging.getLogger(__name__)


async def deliver_message(
    raw: bytes, *, sender: str, recipients: list[str], relay: RelaySettings
) -> None:
    """Send ``raw`` through the relay with envelope sender ``sender``.

    When the relay accepts some recipients and rejects others, the mail
    counts as delivered: the rejected addresses are logged as a warning and
    no error is raised.
    """
    relay_name = f"{relay.host}:{relay.port}"
    message_id = _message_id(raw)
    _validate_delivery(relay, relay_name, sender, recipients)

    client = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        use_tls=relay.tls,
        # True requires the STARTTLS upgrade; False keeps the session in plain
        # text even where the relay offers STARTTLS.
        start_tls=relay.starttls,
        username=relay.username or None,
        password=relay.password or None,
        timeout=relay.timeout_seconds,
    )
    log.debug(
        "delivering mail message_id=%s relay=%s recipients=%d",
        message_id,
        relay_name,
        len(recipients),
    )
    try:
        async with client:
            rejected, reply = await client.sendmail(sender, recipients, raw)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise _all_recipients_rejected(exc, relay_name) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _reply_error(exc, relay_name) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise DeliveryError(
            f"relay {relay_name} timed out after {relay.timeout_seconds} s: {exc}",
            permanent=False,
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Refused or lost connections, TLS failures and a relay without AUTH
        # support do not depend on this mail, so a retry may succeed.
        raise DeliveryError(
            f"delivery to relay {relay_name} failed: {exc}", permanent=False
        ) from exc
    except ValueError as exc:
        # aiosmtplib raises ValueError for an address that it cannot write on
        # an SMTP command line. _validate_delivery rejects those already.
        raise DeliveryError(
            f"mail for relay {relay_name} cannot be sent: {exc}", permanent=True
        ) from exc

    if rejected:
        details = "; ".join(
            f"{address} {response.code} {response.message}"
            for address, response in rejected.items()
        )
        log.warning(
            "mail delivered but the relay rejected some recipients message_id=%s "
            "relay=%s rejected=%s",
            message_id,
            relay_name,
            details,
        )
    log.info(
        "mail delivered message_id=%s relay=%s accepted=%d reply=%s",
        message_id,
        relay_name,
        len(recipients) - len(rejected),
        reply,
    )


def _validate_delivery(
    relay: RelaySettings, relay_name: str, sender: str, recipients: list[str]
) -> None:
    if not relay.host:
        raise DeliveryError(
            "no relay host is set: set [relay] host to the SMTP relay", permanent=False
        )
    if relay.tls and relay.starttls:
        raise DeliveryError(
            f"relay {relay_name} has both tls and starttls set: set only one of them",
            permanent=False,
        )
    if not recipients:
        raise DeliveryError(
            f"mail for relay {relay_name} has no recipients", permanent=True
        )
    for address in [sender, *recipients]:
        if not is_envelope_address(address):
            raise DeliveryError(
                f"address {address!r} cannot be used in the SMTP envelope: pass a "
                "bare ASCII address without spaces, quotes or angle brackets",
                permanent=True,
            )


def _all_recipients_rejected(
    exc: aiosmtplib.SMTPRecipientsRefused, relay_name: str
) -> DeliveryError:
    details = "; ".join(
        f"{rejection.recipient} {rejection.code} {rejection.message}"
        for rejection in exc.recipients
    )
    codes = [rejection.code for rejection in exc.recipients]
    # A retry can only help when at least one rejection was temporary.
    temporary = [code for code in codes if not _is_permanent(code)]
    code = temporary[0] if temporary else codes[0]
    return DeliveryError(
        f"relay {relay_name} rejected every recipient: {details}",
        permanent=not temporary,
        code=code,
    )


def _reply_error(
    exc: aiosmtplib.SMTPResponseException, relay_name: str
) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        step = f"the sender {exc.sender}"
    elif isinstance(exc, aiosmtplib.SMTPDataError):
        step = "the message data"
    elif isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        step = "the login"
    elif isinstance(exc, aiosmtplib.SMTPHeloError):
        step = "the EHLO greeting"
    elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        step = "the connection"
    else:
        step = "a command"
    return DeliveryError(
        f"relay {relay_name} rejected {step}: {exc.code} {exc.message}",
        permanent=_is_permanent(exc.code),
        code=exc.code,
    )


def is_envelope_address(address: str) -> bool:
    """Return whether ``address`` can go into MAIL FROM or RCPT TO unchanged."""
    # aiosmtplib reparses the value with email.utils.parseaddr, which could
    # pick a different mailbox out of it than the one the caller meant.
    # NOTE: quoted local parts with spaces ("john doe"@example.com) and
    # non-ASCII addresses (SMTPUTF8) are valid but rejected here.
    if "@" not in address or not address.isascii():
        return False
    return not any(
        char.isspace() or not char.isprintable() or char in '<>"' for char in address
    )


def _is_permanent(code: int) -> bool:
    return 500 <= code <= 599


def _message_id(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return str(headers.get("Message-ID", "")).strip()
