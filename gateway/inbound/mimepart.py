"""Read one MIME part: payload bytes, charset, filename, Content-ID, serialized form.

The functions work around the places where ``email.policy.compat32`` loses or
mangles data in broken mail, and record what they repaired as defects.
"""

import binascii
import mimetypes
import quopri
import re
from email.errors import InvalidBase64CharactersDefect
from email.generator import BytesGenerator
from email.message import Message
from email.policy import compat32
from io import BytesIO

from gateway.inbound.decoding import (
    decode_8bit_header,
    decode_base64,
    decode_header_value,
    decode_rfc2047,
    unfold,
)

#: Maximum length of a filename in UTF-8 bytes. Common file systems allow 255,
#: which leaves room for a prefix that a store may add.
MAX_FILENAME_BYTES = 200

# Built-in table only, so that the generated names do not depend on the
# machine's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()
_EXTRA_EXTENSIONS = {
    "application/pgp-signature": ".asc",
    "application/pgp-encrypted": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-mime": ".p7m",
    "application/ms-tnef": ".dat",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
}
_UNSAFE_FILENAME_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def decode_transfer_encoding(data: bytes, encoding: str, defects: list[str]) -> bytes:
    """Decode base64 or quoted-printable ``data``, kept as sent if base64 fails."""
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    try:
        # Characters outside the base64 alphabet, such as line breaks, are skipped.
        return binascii.a2b_base64(data)
    except binascii.Error as exc:
        defects.append(f"enclosed message: invalid base64 ({exc}), kept as sent")
        return data


def subject_of(msg: Message, defects: list[str]) -> str:
    """Return the decoded Subject of ``msg``, or "" when it has none."""
    for name, value in msg.raw_items():
        if name.lower() == "subject":
            return decode_header_value("Subject", value, defects).strip()
    return ""


def part_bytes(part: Message) -> bytes:
    """Return the decoded payload of a leaf part, with broken base64 repaired."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    payload = raw_payload(part) if encoding == "base64" else None
    if isinstance(payload, str):
        # compat32 returns the undecoded text for some repairable errors.
        raw = payload.encode("ascii", errors="replace")
        data, repaired = decode_base64(raw)
        if repaired:
            part.defects.append(
                InvalidBase64CharactersDefect("invalid base64 repaired")
            )
        return data
    decoded = part.get_payload(decode=True)
    if isinstance(decoded, bytes):
        return decoded
    return b""


def raw_payload(part: Message) -> list[Message] | str | None:
    """Return the payload as parsed: sub-messages, or the undecoded body text."""
    try:
        payload = part.get_payload()
    except (TypeError, ValueError, LookupError):
        # For a body with 8-bit bytes, get_payload decodes with the charset
        # parameter, and fails when that is an RFC 2231 tuple.
        return None
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return payload if isinstance(payload, str) else None


def serialize(msg: Message, linesep: str) -> bytes:
    """Return ``msg`` as bytes with ``linesep`` line ends."""
    buffer = BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, policy=compat32)
    try:
        generator.flatten(msg, linesep=linesep)
    except (UnicodeError, LookupError, TypeError, ValueError):
        # BytesGenerator fails on a multipart part that has 8-bit text instead
        # of sub-parts. Such a message is written back from its parsed pieces.
        return _serialize_raw(msg, linesep)
    return buffer.getvalue()


def _serialize_raw(msg: Message, linesep: str) -> bytes:
    head = linesep.join(f"{name}: {value}" for name, value in msg.raw_items())
    payload = raw_payload(msg)
    if isinstance(payload, list):
        delimiter = f"--{msg.get_boundary() or 'boundary'}"
        pieces = [
            f"{delimiter}{linesep}".encode() + serialize(child, linesep)
            for child in payload
        ]
        closing = f"{linesep}{delimiter}--{linesep}".encode()
        body = linesep.encode().join(pieces) + closing
    else:
        body = (payload or "").encode("utf-8", errors="surrogateescape")
    separator = linesep * 2
    return (head + separator).encode("utf-8", errors="surrogateescape") + body


def serialize_body(part: Message, linesep: str) -> bytes:
    """Return the serialized body of ``part``, without its header block."""
    data = serialize(part, linesep)
    separator = (linesep * 2).encode("ascii")
    _headers, found, body = data.partition(separator)
    return body if found else data


def charset_of(part: Message, defects: list[str]) -> str | None:
    """Return the charset parameter of ``part``, or None if missing or invalid."""
    try:
        return part.get_content_charset()
    except ValueError:
        # The email package decodes an RFC 2231 value with the charset it
        # names, and Python raises for a name that contains a NUL character.
        defects.append("body: invalid charset parameter ignored")
        return None


def part_filename(part: Message, defects: list[str]) -> str | None:
    """Return the decoded and safe filename of ``part``, or None if it has none."""
    try:
        name = part.get_filename()
    except ValueError:
        # Raised for an RFC 2231 charset name with a NUL, as in charset_of.
        defects.append("filename: invalid RFC 2231 parameter ignored")
        return None
    raw_fields = [
        (field, value)
        for field, value in part.raw_items()
        if field.lower() in ("content-disposition", "content-type")
    ]
    if any(not value.isascii() for _field, value in raw_fields):
        # compat32 turns raw 8-bit parameter bytes into U+FFFD, so the fields
        # are decoded first and their parameters parsed again.
        decoded = Message()
        for field, value in raw_fields:
            decoded[field] = decode_8bit_header(unfold(value), defects, field)
        try:
            name = decoded.get_filename()
        except ValueError:
            return None
    if name is None:
        return None
    name = decode_8bit_header(name, defects, "filename")
    name = decode_rfc2047(name, defects, "filename")
    safe = safe_filename(name)
    return safe or None


def safe_filename(name: str) -> str:
    """Return ``name`` without path separators or control characters."""
    name = _UNSAFE_FILENAME_CHARS.sub("_", name.strip())
    if name.strip(".") == "":
        return ""
    if len(name.encode("utf-8", errors="replace")) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not 0 < len(extension) <= 10:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
    # Cut at a byte budget, then drop a character that the cut split.
    encoded_stem = stem.encode("utf-8", errors="replace")[:budget]
    stem = encoded_stem.decode("utf-8", errors="ignore")
    return stem + suffix


def content_id(part: Message) -> str | None:
    """Return the Content-ID of ``part`` without angle brackets and whitespace."""
    value = part.get("Content-ID")
    if value is None:
        return None
    cleaned = "".join(str(value).split()).strip("<>")
    return cleaned or None


def extension_for(content_type: str) -> str:
    """Return a filename extension for ``content_type``, ".bin" if unknown."""
    extension = _EXTRA_EXTENSIONS.get(content_type)
    if extension is None:
        extension = _MIME_TYPES.guess_extension(content_type) or ".bin"
    return extension
