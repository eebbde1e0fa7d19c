"""Parse raw inbound mail into a ParsedMessage: headers, body text, attachments.

The MIME tree is built with ``email.policy.compat32``, which parses several
times faster than ``policy.default``. Headers are decoded by :mod:`.decoding`
instead of by the policy's header classes. That also copes with mail that those
classes get wrong: UTF-8 characters split across encoded words, unknown
charsets, raw 8-bit bytes. Parsing never raises, and what could not be decoded
is listed in ``ParsedMessage.defects``.
"""

import email
import email.policy
import email.utils
import logging
import re
import urllib.parse
from datetime import UTC, datetime
from email.policy import compat32

from gateway.inbound.decoding import (
    decode_8bit_header,
    decode_bytes,
    decode_header_value,
    decode_rfc2047,
    unfold,
)
from gateway.inbound.htmltext import html_to_text
from gateway.inbound.message import Address, ParsedAttachment, ParsedMessage
from gateway.inbound.mimetree import MimeCollector, collect_parts

__all__ = [
    "Address",
    "ParsedAttachment",
    "ParsedMessage",
    "normalize_message_id",
    "parse_message",
    "parse_message_id_list",
]

log = logging.getLogger(__name__)

_BRACKETED_ID = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to"})
_COMPLEX_ADDRESS_CHARS = frozenset('"()\\:;[]')
_ADDR_SPEC = r"[^\s<>,@]+@[^\s<>,@]+"
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:([^<>@]*?)\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*$"
)
_CID_REFERENCE = re.compile(r"""cid:([^"'\s<>)]+)""", re.IGNORECASE)


def normalize_message_id(value: str) -> str | None:
    """Return ``value`` as "<local@domain>", or None if it contains no id.

    The first bracketed id is used when there is one, so comments after it are
    ignored. Whitespace inside the id (left over from folding) is removed.
    """
    match = _BRACKETED_ID.search(value)
    candidate = match.group(1) if match else value.strip("<> \t\r\n")
    candidate = _WHITESPACE.sub("", candidate).strip("<>")
    if not candidate:
        return None
    return f"<{candidate}>"


def parse_message_id_list(value: str | None) -> list[str]:
    """Return the message ids of a References or In-Reply-To value, in order.

    Bracketed ids are taken when the value has any. Otherwise the value is
    split at whitespace and commas, and the tokens that contain "@" are taken,
    because old clients wrote ids without brackets, and In-Reply-To sometimes
    carries prose such as "Your message of ...".
    """
    if not value:
        return []
    ids: list[str] = []
    bracketed = _BRACKETED_ID.findall(value)
    if bracketed:
        tokens = bracketed
    else:
        tokens = [token for token in re.split(r"[\s,]+", value) if "@" in token]
    for token in tokens:
        normalized = normalize_message_id(token)
        if normalized is not None:
            ids.append(normalized)
    return ids


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes.

    Never raises on any input bytes (empty, binary garbage, broken MIME).
    Whatever cannot be decoded is recorded in ``defects``.
    """
    try:
        return _parse(raw)
    except RecursionError:
        # Thousands of nested parts: the email package recurses once per level.
        log.warning("mail parsing failed, nested too deeply size=%d", len(raw))
        return ParsedMessage(defects=["parsing failed: MIME parts nested too deeply"])
    except ValueError as exc:
        if b"\x00" not in raw:
            return _parse_failed(raw, exc)
        failure = exc
    except Exception as exc:
        return _parse_failed(raw, exc)
    # The email package raises ValueError for an RFC 2231 parameter whose
    # charset name contains a NUL byte. NUL is invalid in mail, so it is removed.
    try:
        message = _parse(raw.replace(b"\x00", b""))
    except Exception:
        return _parse_failed(raw, failure)
    message.defects.insert(0, "NUL bytes removed, because parsing failed on them")
    return message


def _parse_failed(raw: bytes, exc: Exception) -> ParsedMessage:
    # The email package and the decoders record defects instead of raising,
    # so reaching this is a bug. The caller still gets a message to store.
    log.error("mail parsing failed size=%d", len(raw), exc_info=exc)
    return ParsedMessage(defects=[f"parsing failed: {type(exc).__name__}: {exc}"])


def _parse(raw: bytes) -> ParsedMessage:
    defects: list[str] = []
    msg = email.message_from_bytes(raw, policy=compat32)
    raw_headers = msg.raw_items()
    headers: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    address_values: dict[str, list[str]] = {}
    for raw_name, raw_value in raw_headers:
        name = decode_8bit_header(raw_name, defects, "name").replace("\x00", "")
        key = name.lower()
        value = decode_header_value(name, raw_value, defects)
        headers.append((name, value))
        first.setdefault(key, value)
        if key in _ADDRESS_HEADERS:
            # Addresses are split before RFC 2047 decoding. The defects of the
            # 8-bit step were recorded by decode_header_value just above.
            undecoded = decode_8bit_header(unfold(raw_value), [], name)
            address_values.setdefault(key, []).append(undecoded)

    linesep = "\r\n" if b"\r\n" in raw[:4096] else "\n"
    collector = MimeCollector(defects, linesep)
    collect_parts(msg, collector)

    html = collector.html
    text = collector.text()
    if not text.strip() and html is None and collector.inline_named_text:
        text = collector.inline_named_text
    if not text.strip() and html is None:
        text = collector.tnef_text or ""
        html = collector.tnef_html
    text_from_html = False
    if html is not None and not text.strip():
        text = html_to_text(html)
        text_from_html = True
    _mark_referenced_inline(collector, html)

    senders = _parse_addresses(address_values.get("from"), defects, "From")
    return ParsedMessage(
        message_id=normalize_message_id(first.get("message-id", "")),
        subject=first.get("subject", "").replace("\t", " ").strip(),
        sender=senders[0] if senders else None,
        to=_parse_addresses(address_values.get("to"), defects, "To"),
        cc=_parse_addresses(address_values.get("cc"), defects, "Cc"),
        reply_to=_parse_addresses(address_values.get("reply-to"), defects, "Reply-To"),
        date=_parse_date(first.get("date"), defects),
        in_reply_to=parse_message_id_list(first.get("in-reply-to")),
        references=parse_message_id_list(first.get("references")),
        text=text,
        html=html,
        text_from_html=text_from_html,
        attachments=collector.finish_attachments(),
        headers=headers,
        content_type=msg.get_content_type(),
        defects=defects,
    )


def _parse_addresses(
    values: list[str] | None, defects: list[str], name: str
) -> list[Address]:
    if not values:
        return []
    pairs = _split_simple_addresses(values)
    if pairs is None:
        # Quoted names, groups, comments and ":" go to the header registry of
        # policy.default, which parses the structure and the encoded words
        # together: a decoded name cannot then pose as an address, and an
        # encoded word is never read as a group name.
        registered = _addresses_from_registry(values, defects, name)
        if registered is not None:
            return registered
        pairs = email.utils.getaddresses(values)
    addresses: list[Address] = []
    for display, addr_spec in pairs:
        if not display and not addr_spec:
            continue
        display_name = decode_rfc2047(display, defects, name).strip()
        display_name = _LINE_BREAKS.sub(" ", display_name).replace("\x00", "")
        addresses.append(Address(email=_normalize_email(addr_spec), name=display_name))
    return addresses


def _addresses_from_registry(
    values: list[str], defects: list[str], name: str
) -> list[Address] | None:
    """Parse address headers with policy.default; None when it finds none."""
    addresses: list[Address] = []
    try:
        for value in values:
            header = email.policy.default.header_factory(name, value)
            for found in getattr(header, "addresses", ()):
                display_name = _without_surrogates(found.display_name, defects, name)
                display_name = _LINE_BREAKS.sub(" ", display_name)
                addr_spec = _without_surrogates(found.addr_spec, defects, name)
                addresses.append(
                    Address(
                        email=_normalize_email(addr_spec),
                        name=display_name.replace("\x00", "").strip(),
                    )
                )
    except (ValueError, IndexError, TypeError, AttributeError):
        # The registry's parser raises on some malformed values.
        return None
    return addresses or None


def _without_surrogates(text: str, defects: list[str], name: str) -> str:
    """Decode the undecodable bytes that the header registry kept as surrogates.

    For an encoded word in an unknown charset the registry keeps the raw
    bytes as surrogate escapes, which no database can store.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogateescape")
        return decode_bytes(data, None, defects, f"header {name}")
    return text


def _split_simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """Split plain "Name <addr>" and "addr" lists, or return None for other values.

    Quoted names, comments, groups and escapes go to email.utils.getaddresses,
    which handles them but is several times slower.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        if any(char in value for char in _COMPLEX_ADDRESS_CHARS):
            return None
        for item in value.split(","):
            if not item.strip():
                continue
            match = _SIMPLE_ADDRESS.match(item)
            if match is None:
                return None
            display, bracketed, bare = match.groups()
            pairs.append(((display or "").strip(), bracketed or bare))
    return pairs


def _normalize_email(addr_spec: str) -> str:
    # Control characters and white space belong in no address; a NUL would
    # also be rejected by PostgreSQL text columns.
    addr_spec = "".join(c for c in addr_spec if c.isprintable() and not c.isspace())
    local, at, domain = addr_spec.rpartition("@")
    if not at:
        return addr_spec
    return f"{local}@{domain.lower()}"


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        defects.append(f"header Date: cannot parse {value[:80]!r}")
        return None
    if parsed.tzinfo is None:
        # "-0000" means the sender's zone is unknown and the time is UTC.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _mark_referenced_inline(collector: MimeCollector, html: str | None) -> None:
    if html is None or "cid:" not in html.lower():
        return
    referenced = {
        urllib.parse.unquote(ref).strip("<>") for ref in _CID_REFERENCE.findall(html)
    }
    for attachment in collector.attachments:
        if attachment.content_id is not None and attachment.content_id in referenced:
            attachment.inline = True
