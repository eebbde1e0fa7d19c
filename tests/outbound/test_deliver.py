from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from gateway.config import RelaySettings
from gateway.errors import DeliveryError
from gateway.outbound.compose import compose_message, make_message_id
from gateway.outbound.deliver import deliver_message
from gateway.outbound.render import RenderedMail

SENDER = "support@desk.example"
CUSTOMER = "juergen@kunde.example"
COLLEAGUE = "kollegin@kunde.example"
PASSWORD = "s3cret-relay-password"


class SinkHandler:
    """aiosmtpd handler that stores accepted mails and sends the configured replies."""

    def __init__(
        self,
        *,
        mail_reply: str | None = None,
        rcpt_replies: dict[str, str] | None = None,
        data_reply: str = "250 OK queued",
    ) -> None:
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies or {}
        self.data_reply = data_reply
        self.envelopes: list[Any] = []

    async def handle_MAIL(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.data_reply


StartSink = Callable[..., SinkHandler]


@pytest.fixture
def start_sink(free_port: int) -> Iterator[StartSink]:
    """Return a function that starts an aiosmtpd sink on 127.0.0.1:free_port."""
    controllers: list[Controller] = []

    def start(handler: SinkHandler, **controller_options: Any) -> SinkHandler:
        controller = Controller(
            handler, hostname="127.0.0.1", port=free_port, **controller_options
        )
        controller.start()
        controllers.append(controller)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


@pytest_asyncio.fixture
async def silent_server() -> AsyncIterator[int]:
    """Listen on 127.0.0.1 and never send the SMTP greeting; yield the port."""

    async def hold_open(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold_open, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    yield port
    server.close()
    await server.wait_closed()


def relay_on(port: int, **overrides: Any) -> RelaySettings:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return RelaySettings(**settings)


def make_raw(message_id: str) -> bytes:
    rendered = RenderedMail(
        subject="[Case 00000042] Printer fails ref_00DGw4tWy_5kQ2m9XvBz:ref",
        text="Grüße aus Köln\n",
        html="<p>Grüße aus Köln</p>\n",
    )
    return compose_message(
        sender_email=SENDER,
        sender_name="Customer Support",
        to=[CUSTOMER],
        cc=[COLLEAGUE],
        rendered=rendered,
        message_id=message_id,
        in_reply_to=None,
        references=[],
    )


async def test_deliver_reaches_sink(start_sink: StartSink, free_port: int) -> None:
    sink = start_sink(SinkHandler())
    message_id = make_message_id("mail.desk.example")
    raw = make_raw(message_id)

    await deliver_message(
        raw, sender=SENDER, recipients=[CUSTOMER, COLLEAGUE], relay=relay_on(free_port)
    )

    assert len(sink.envelopes) == 1
    envelope = sink.envelopes[0]
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == [CUSTOMER, COLLEAGUE]
    assert envelope.original_content == raw
    received = email.message_from_bytes(
        envelope.original_content, policy=email.policy.default
    )
    assert received["Message-ID"] == message_id


async def test_deliver_logs_message_id(
    start_sink: StartSink, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    start_sink(SinkHandler())
    message_id = make_message_id("mail.desk.example")
    caplog.set_level(logging.INFO, logger="gateway.outbound.deliver")

    await deliver_message(
        make_raw(message_id),
        sender=SENDER,
        recipients=[CUSTOMER],
        relay=relay_on(free_port),
    )

    delivered = [
        r for r in caplog.records if r.getMessage().startswith("mail delivered")
    ]
    assert len(delivered) == 1
    assert message_id in delivered[0].getMessage()
    assert f"127.0.0.1:{free_port}" in delivered[0].getMessage()


async def test_deliver_temporary_data_reply(
    start_sink: StartSink, free_port: int
) -> None:
    start_sink(SinkHandler(data_reply="451 4.3.0 Try again later"))

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is False
    assert caught.value.code == 451
    assert f"127.0.0.1:{free_port}" in str(caught.value)
    assert "Try again later" in str(caught.value)


async def test_deliver_permanent_data_reply(
    start_sink: StartSink, free_port: int
) -> None:
    start_sink(SinkHandler(data_reply="554 5.6.0 Message content rejected"))

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is True
    assert caught.value.code == 554
    assert "message data" in str(caught.value)


async def test_deliver_all_recipients_rejected(
    start_sink: StartSink, free_port: int
) -> None:
    rejection = "550 5.1.1 No such user"
    start_sink(SinkHandler(rcpt_replies={CUSTOMER: rejection, COLLEAGUE: rejection}))

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER, COLLEAGUE],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is True
    assert caught.value.code == 550
    message = str(caught.value)
    assert f"127.0.0.1:{free_port}" in message
    assert CUSTOMER in message
    assert COLLEAGUE in message
    assert "No such user" in message


async def test_deliver_rejections_partly_temporary(
    start_sink: StartSink, free_port: int
) -> None:
    start_sink(
        SinkHandler(
            rcpt_replies={
                CUSTOMER: "550 5.1.1 No such user",
                COLLEAGUE: "450 4.2.1 Mailbox busy",
            }
        )
    )

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER, COLLEAGUE],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is False
    assert caught.value.code == 450


async def test_deliver_one_recipient_rejected(
    start_sink: StartSink, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    sink = start_sink(SinkHandler(rcpt_replies={COLLEAGUE: "550 5.1.1 No such user"}))
    message_id = make_message_id("mail.desk.example")
    caplog.set_level(logging.INFO, logger="gateway.outbound.deliver")

    await deliver_message(
        make_raw(message_id),
        sender=SENDER,
        recipients=[CUSTOMER, COLLEAGUE],
        relay=relay_on(free_port),
    )

    assert len(sink.envelopes) == 1
    assert sink.envelopes[0].rcpt_tos == [CUSTOMER]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    warning = warnings[0].getMessage()
    assert COLLEAGUE in warning
    assert "550" in warning
    assert message_id in warning


async def test_deliver_sender_rejected(start_sink: StartSink, free_port: int) -> None:
    start_sink(SinkHandler(mail_reply="553 5.7.1 Sender address rejected"))

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is True
    assert caught.value.code == 553
    assert SENDER in str(caught.value)


async def test_deliver_connection_refused(free_port: int) -> None:
    # Nothing listens on free_port, so the connection is refused.
    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is False
    assert caught.value.code is None
    assert f"127.0.0.1:{free_port}" in str(caught.value)


async def test_deliver_timeout(silent_server: int) -> None:
    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(silent_server, timeout_seconds=0.3),
        )

    assert caught.value.permanent is False
    assert caught.value.code is None
    assert "timed out" in str(caught.value)


def accept_support_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    valid = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"desk"
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False makes aiosmtpd send the 535 reply itself.
    return AuthResult(success=valid, handled=False)


# AUTH without TLS is fine on loopback; aiosmtpd warns about it all the same.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_deliver_logs_in(
    start_sink: StartSink, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    sink = start_sink(
        SinkHandler(),
        authenticator=accept_support_login,
        auth_require_tls=False,
        auth_required=True,
    )
    caplog.set_level(logging.DEBUG)

    await deliver_message(
        make_raw(make_message_id("mail.desk.example")),
        sender=SENDER,
        recipients=[CUSTOMER],
        relay=relay_on(free_port, username="desk", password=PASSWORD),
    )

    assert len(sink.envelopes) == 1
    assert PASSWORD not in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_deliver_wrong_password(start_sink: StartSink, free_port: int) -> None:
    start_sink(
        SinkHandler(),
        authenticator=accept_support_login,
        auth_require_tls=False,
        auth_required=True,
    )

    with pytest.raises(DeliveryError) as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER],
            relay=relay_on(free_port, username="desk", password="wrong"),
        )

    assert caught.value.permanent is True
    assert caught.value.code == 535
    assert "wrong" not in str(caught.value)


async def test_deliver_without_host_raises() -> None:
    with pytest.raises(DeliveryError, match=r"\[relay\] host") as caught:
        await deliver_message(
            b"", sender=SENDER, recipients=[CUSTOMER], relay=RelaySettings()
        )

    assert caught.value.permanent is False


async def test_deliver_tls_and_starttls_raises(free_port: int) -> None:
    relay = relay_on(free_port, tls=True, starttls=True)

    with pytest.raises(DeliveryError, match="only one") as caught:
        await deliver_message(b"", sender=SENDER, recipients=[CUSTOMER], relay=relay)

    assert caught.value.permanent is False


async def test_deliver_without_recipients_raises(free_port: int) -> None:
    with pytest.raises(DeliveryError, match="no recipients") as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is True


@pytest.mark.parametrize(
    "recipient",
    [
        "juergen@kunde.example\r\nRCPT TO:<evil@attacker.example>",
        "Jürgen <juergen@kunde.example>",
        '"juergen"@kunde.example',
        "jürgen@kunde.example",
        "juergen",
        "",
    ],
)
async def test_deliver_unsendable_address_raises(
    start_sink: StartSink, free_port: int, recipient: str
) -> None:
    sink = start_sink(SinkHandler())

    with pytest.raises(DeliveryError, match="envelope") as caught:
        await deliver_message(
            make_raw(make_message_id("mail.desk.example")),
            sender=SENDER,
            recipients=[CUSTOMER, recipient],
            relay=relay_on(free_port),
        )

    assert caught.value.permanent is True
    assert caught.value.code is None
    assert repr(recipient) in str(caught.value)
    assert sink.envelopes == []
