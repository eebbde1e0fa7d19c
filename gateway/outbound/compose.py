"""Assembly of rendered notifications into RFC 5322 messages ready for SMTP.

Every header value that can carry customer text (subject, names, addresses,
message ids) goes through clean_header_value, so no value can end a header
line and start another one.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import secrets
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from gateway.outbound.render import RenderedMail

# RFC 5322 sets no limit on the number of ids in References. Keeping the
# first id (the thread root) and the newest 19 bounds the header, and mail
# clients still thread the reply.
MAX_REFERENCES = 20
RECENT_REFERENCES_KEPT = MAX_REFERENCES - 1

# Each decoding round of clean_header_value unwraps one level of encoded
# words nested inside encoded words. Real mail has no nesting at all.
MAX_DECODE_ROUNDS = 4

# RFC 5322 field-name: printable ASCII except the colon.
HEADER_NAME_PATTERN = re.compile(r"[!-9;-~]+")
DOMAIN_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# Headers that compose_message sets itself, so extra_headers may not repeat them.
OWN_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "Content-Type",
        "Content-Transfer-Encoding",
    )
)


def make_message_id(domain: str) -> str:
    """Return a new ``<random@domain>`` Message-ID with 128 random bits.

    The random part is lowercase hex, so ids stay equal when a mail system
    changes their case.
    """
    if not DOMAIN_PATTERN.fullmatch(domain):
        raise ValueError(
            f"Message-ID domain {domain!r} is invalid: use a domain name such as "
            "mail.example.com"
        )
    return f"<{secrets.token_hex(16)}@{domain}>"


def clean_header_value(value: str) -> str:
    """Make ``value`` safe to put in a header: one line, no control characters.

    Control characters (CR, LF, NUL, TAB, NEL and the rest of Unicode
    category Cc) and lone surrogates become spaces, every run of whitespace
    (U+2028 and U+2029 included) collapses to one space, and the ends are
    stripped.

    RFC 2047 encoded words are decoded and cleaned too, because the email
    package decodes them when a header is set and then writes the decoded
    text out as is. On Python 3.11.7, a subject ``=?utf-8?q?a=0D=0ABcc:_x?=``
    set as it is comes out as two header lines, the second one ``Bcc: x``.
    """
    cleaned = _strip_controls(value)
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = _strip_controls(_decode_encoded_words(cleaned))
        if decoded == cleaned:
            return cleaned
        cleaned = decoded
    # Still nested after MAX_DECODE_ROUNDS: split every remaining "=?" so no
    # parser can read an encoded word in the text.
    return cleaned.replace("=?", "= ?")


def _strip_controls(value: str) -> str:
    spaced = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cs") else char for char in value
    )
    return " ".join(spaced.split())


def _decode_encoded_words(value: str) -> str:
    # The header factory of the email package parses an unstructured value
    # the same way as when a header is set, so it decodes the same words.
    return str(email.policy.default.header_factory("X-Clean", value))


def compose_message(
    *,
    sender_email: str,
    sender_name: str,
    to: list[str],
    cc: list[str],
    rendered: RenderedMail,
    message_id: str,
    in_reply_to: str | None,
    references: list[str],
    extra_headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    """Build a multipart/alternative mail (text and HTML) and return its bytes.

    ``to`` and ``cc`` entries are addresses, bare or as ``Name <address>``.
    Build the second form with email.utils.formataddr, which quotes names
    that contain commas, colons or ``@``.
    ``date`` must be timezone-aware and defaults to now in UTC. The bytes use
    CRLF line endings and 7-bit ASCII (quoted-printable bodies, RFC 2047
    encoded headers), so any relay takes them without 8BITMIME.

    Raises ValueError for a missing or invalid address, an empty
    ``message_id``, a naive ``date``, or an extra header whose name is invalid
    or is one that this function sets itself.
    """
    if not to:
        raise ValueError("a mail needs at least one To address")
    if date is None:
        date = datetime.now(UTC)
    elif date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"date {date.isoformat()} is naive: pass an aware datetime")

    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(
        display_name=clean_header_value(sender_name),
        addr_spec=clean_header_value(sender_email),
    )
    message["To"] = [_parse_recipient(entry) for entry in to]
    if cc:
        message["Cc"] = [_parse_recipient(entry) for entry in cc]
    message["Subject"] = clean_header_value(rendered.subject)
    message["Date"] = email.utils.format_datetime(date)
    cleaned_message_id = clean_header_value(message_id)
    if not cleaned_message_id:
        raise ValueError("message_id is empty: pass one from make_message_id")
    message["Message-ID"] = cleaned_message_id
    cleaned_in_reply_to = clean_header_value(in_reply_to or "")
    if cleaned_in_reply_to:
        message["In-Reply-To"] = cleaned_in_reply_to
    kept_references = _bounded_references(references)
    if kept_references:
        message["References"] = " ".join(kept_references)
    message["MIME-Version"] = "1.0"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    _add_extra_headers(message, extra_headers or {})

    message.make_alternative()
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(rendered.html, "html"))
    return message.as_bytes()


def _text_part(content: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=email.policy.SMTP)
    part.set_content(content, subtype=subtype, charset="utf-8", cte="quoted-printable")
    # EmailMessage.set_content adds MIME-Version, which belongs only at the top.
    del part["MIME-Version"]
    return part


def _parse_recipient(entry: str) -> Address:
    plain_entry = _strip_controls(entry)
    display_name, addr_spec = email.utils.parseaddr(plain_entry)
    # The address must be written out plainly, bare or in angle brackets at
    # the end, so the To header names the same mailbox as the envelope.
    written_plainly = plain_entry == addr_spec or plain_entry.endswith(f"<{addr_spec}>")
    if "@" not in addr_spec or not written_plainly:
        raise ValueError(f"recipient {entry!r} is not a mail address")
    # NOTE: internationalized addresses are rejected. The email package would
    # write a non-ASCII domain as an encoded word, which no relay can route,
    # and IDNA 2008 conversion needs the idna package.
    if not addr_spec.isascii():
        raise ValueError(
            f"recipient {entry!r} contains a non-ASCII address, which is not "
            "supported: use the ASCII (xn--) form of the domain"
        )
    try:
        # parseaddr leaves encoded words in the name, such as those that
        # email.utils.formataddr writes, so the name is cleaned here.
        address = Address(
            display_name=clean_header_value(display_name), addr_spec=addr_spec
        )
    except ValueError as exc:
        raise ValueError(f"recipient {entry!r} is not a mail address: {exc}") from exc
    if address.addr_spec != addr_spec:
        raise ValueError(f"recipient {entry!r} is not a mail address")
    return address


def _bounded_references(references: list[str]) -> list[str]:
    cleaned = [clean_header_value(reference) for reference in references]
    # An entry holding several ids separated by whitespace, such as a
    # References value copied from a mail, counts as that many ids.
    ids = [part for reference in cleaned for part in reference.split()]
    if len(ids) <= MAX_REFERENCES:
        return ids
    return ids[:1] + ids[-RECENT_REFERENCES_KEPT:]


def _add_extra_headers(message: EmailMessage, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not HEADER_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"extra header name {name!r} is invalid: use printable ASCII "
                "without colon or space"
            )
        if name.lower() in OWN_HEADERS:
            raise ValueError(
                f"extra header {name!r} is set by compose_message already: "
                "use another name"
            )
        message[name] = clean_header_value(value)
