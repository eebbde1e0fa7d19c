"""Property tests: parse_message and the extractors never raise on any bytes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inbound.extract import extract_reply
from gateway.inbound.parse import ParsedMessage, parse_message

VALID_MAIL = (
    "From: =?utf-8?q?Eva_B=C3=A4cker?= <eva@example.org>\r\n"
    'To: Support <support@example.com>, "Desk, Help" <desk@example.net>\r\n'
    "Subject: =?UTF-8?B?R3LDtsOfZQ==?= und mehr\r\n"
    "Date: Tue, 03 Dec 2024 10:15:00 +0100\r\n"
    "Message-ID: <m1@client.example.org>\r\n"
    "References: <a@example.com> <b@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    "--outer\r\n"
    'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    "--alt\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Gr=FC=DFe\r\n\r\nAm 03.12.2024 schrieb Support:\r\n> alt\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n\r\n"
    '<p>Gr&uuml;&szlig;e</p><div class="gmail_quote">alt</div>\r\n'
    "--alt--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n"
    "JVBERi0xLjQK\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n\r\n"
    "Subject: inner\r\n\r\ninner body\r\n"
    "--outer--\r\n"
).encode("ascii")


def check_never_raises(raw: bytes) -> None:
    message = parse_message(raw)
    assert isinstance(message, ParsedMessage)
    # The catch-all in parse_message is a last resort; reaching it is a bug.
    assert not any(defect.startswith("parsing failed") for defect in message.defects)
    new_text = extract_reply(message)
    assert isinstance(new_text, str)
    # Every text must be storable: no surrogate escapes of undecoded bytes.
    texts = [new_text, message.subject, message.text, message.html or ""]
    addresses = [message.sender] if message.sender else []
    addresses += message.to + message.cc + message.reply_to
    texts += [address.name for address in addresses]
    texts += [address.email for address in addresses]
    texts += [attachment.filename for attachment in message.attachments]
    for text in texts:
        text.encode("utf-8")


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_MAIL)
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        if action == "truncate":
            del data[position:]
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 40))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=20))
        elif position < len(data):
            data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check_never_raises(raw)


@settings(max_examples=300, deadline=None)
@given(mutated_mail())
def test_mutated_mail_never_raises(raw: bytes) -> None:
    check_never_raises(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=x\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Subject: =?utf-8?b?w6Q=?==?x?q?=FF?=\r\n",
                b"\r\n",
                b"--x\r\n",
                b"--x--\r\n",
                b"\xff\xfe\x00 body\r\n",
                b"<html><blockquote type=cite>q</blockquote></html>\r\n",
                b"Content-Type: text/plain; charset*=u\x00tf-8''x\r\n",
                b"Content-Disposition: attachment; filename*0*=utf-8''%C3;\r\n",
                b' filename*1="\xe4.txt"\r\n',
            ]
        ),
        max_size=30,
    )
)
def test_shuffled_mime_fragments_never_raise(fragments: list[bytes]) -> None:
    check_never_raises(b"".join(fragments))


def test_valid_mail_fixture_parses_cleanly() -> None:
    message = parse_message(VALID_MAIL)
    assert message.subject == "Größe und mehr"
    assert message.text.startswith("Grüße")
    assert [attachment.filename for attachment in message.attachments] == [
        "Résumé.pdf",
        "inner.eml",
    ]
    assert message.defects == []
