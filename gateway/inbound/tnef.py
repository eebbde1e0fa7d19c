"""Unpack Outlook's TNEF container (winmail.dat, application/ms-tnef).

Outlook sends the attachments and the rich-text body of a mail inside one
winmail.dat part when it believes the recipient runs Outlook too. Other
clients show a useless file. The gateway unpacks the files inside as
ordinary attachments, and reads the body (plain, HTML or compressed RTF) for
mail that has no other text.
"""

from __future__ import annotations

import logging
import mimetypes
import struct
from dataclasses import dataclass, field

import compressed_rtf
from striprtf.striprtf import rtf_to_text
from tnefparse import TNEF

from gateway.inbound.decoding import decode_bytes
from gateway.inbound.message import ParsedAttachment
from gateway.inbound.mimepart import safe_filename

log = logging.getLogger(__name__)

TNEF_CONTENT_TYPE = "application/ms-tnef"
TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
#: Containers with more attributes are kept packed. The parser copies the rest
#: of the data for every attribute, so hostile input with millions of tiny
#: attributes would take hours (an estimate from the copying alone), while
#: real containers have a few dozen.
MAX_ATTRIBUTES = 2000
_HEADER = struct.Struct("<BII")  # level, attribute id, length
_UINT32 = struct.Struct("<I")
_ATT_MAPI_PROPS = 0x9003
_ATT_RECIPIENT_TABLE = 0x9004
_ATT_ATTACHMENT = 0x9005
# Bytes of a MAPI value by property type; the variable types carry a length.
_FIXED_SIZES = {
    0x0002: 2,
    0x000B: 2,
    0x0003: 4,
    0x0004: 4,
    0x000A: 4,
    0x0005: 8,
    0x0006: 8,
    0x0007: 8,
    0x0014: 8,
    0x0040: 8,
    0x0048: 16,
}
_VARIABLE_TYPES = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})
_MAPI_LONG_FILENAME = 0x3707


@dataclass
class TnefContent:
    """The files and body found in one TNEF container."""

    attachments: list[ParsedAttachment] = field(default_factory=list)
    text: str | None = None
    html: str | None = None


def is_tnef(content_type: str, content: bytes) -> bool:
    """Tell whether a part is a TNEF container, by its type or its signature.

    Some servers relabel winmail.dat as application/octet-stream, so the
    signature counts too.
    """
    return content_type == TNEF_CONTENT_TYPE or content.startswith(TNEF_SIGNATURE)


def unpack_tnef(content: bytes, defects: list[str], item: str) -> TnefContent | None:
    """Return the files and body inside ``content``, or None if it is unreadable.

    A container that cannot be read is recorded in ``defects`` and should be
    kept as it is, so nothing is lost.
    """
    problem = _structure_problem(content)
    if problem is None:
        try:
            return _unpack(content, defects, item)
        except Exception as exc:
            # tnefparse documents no exceptions, and damaged data raises
            # IndexError, struct.error, UnicodeError and others.
            problem = f"{type(exc).__name__}: {exc}"
    log.info("tnef container kept packed part=%s problem=%s", item, problem)
    defects.append(f"{item}: TNEF container not unpacked, {problem}")
    return None


def _structure_problem(content: bytes) -> str | None:
    """Walk the container's layout without decoding it; describe what is wrong.

    tnefparse loops as often as the counts in the data give, even past its
    end, so a few forged bytes could keep it busy for a very long time. The
    walk checks every count against the bytes left, which bounds the parse.
    """
    if not content.startswith(TNEF_SIGNATURE):
        return "no TNEF signature"
    offset = 6
    count = 0
    try:
        while offset + _HEADER.size <= len(content):
            _level, attribute, length = _HEADER.unpack_from(content, offset)
            if offset + _HEADER.size + length + 2 > len(content):
                return f"attribute at byte {offset} runs past the end: truncated"
            data = content[offset + _HEADER.size : offset + _HEADER.size + length]
            name = attribute & 0xFFFF
            if name in (_ATT_MAPI_PROPS, _ATT_ATTACHMENT):
                _walk_properties(data, 0)
            elif name == _ATT_RECIPIENT_TABLE:
                rows = _count(data, 0, 4)
                position = 4
                for _ in range(rows):
                    position = _walk_properties(data, position)
            offset += _HEADER.size + length + 2
            count += 1
            if count > MAX_ATTRIBUTES:
                return f"more than {MAX_ATTRIBUTES} attributes"
    except (ValueError, struct.error) as exc:
        return str(exc) or type(exc).__name__
    return None


def _count(data: bytes, offset: int, item_size: int) -> int:
    """Read a uint32 count at ``offset`` that must fit in the bytes after it."""
    (value,) = _UINT32.unpack_from(data, offset)
    if value > (len(data) - offset - 4) // item_size + 1:
        raise ValueError(f"count {value} at byte {offset} exceeds the data")
    return int(value)


def _walk_properties(data: bytes, offset: int) -> int:
    """Walk one MAPI property list as tnefparse reads it; return its end."""
    properties = _count(data, offset, 4)
    offset += 4
    for _ in range(properties):
        if offset >= len(data):
            return offset
        kind, name = struct.unpack_from("<HH", data, offset)
        offset += 4
        if name >= 0x8000:
            (id_kind,) = _UINT32.unpack_from(data, offset + 16)
            offset += 20
            if id_kind != 0:
                offset += 4 + _padded(_count(data, offset, 1))
            else:
                offset += 4
        values = None
        if kind & 0x1000:
            kind ^= 0x1000
            values = _count(data, offset, 2)
            offset += 4
        size = _FIXED_SIZES.get(kind)
        if size is None and kind not in _VARIABLE_TYPES:
            # tnefparse stops reading the list at an unknown type.
            return offset
        for _ in range(values or 1):
            if size is not None:
                offset += size
                continue
            items = 1
            if values is None:
                items = _count(data, offset, 4)
                offset += 4
            for _ in range(items):
                offset += 4 + _padded(_count(data, offset, 1))
        if (values or 1) % 2 and kind in (0x0002, 0x000B):
            offset += 2
        if offset > len(data):
            raise ValueError("MAPI property list runs past its attribute")
    return offset


def _padded(length: int) -> int:
    return length + (-length % 4)


def _unpack(content: bytes, defects: list[str], item: str) -> TnefContent:
    container = TNEF(content, do_checksum=False)
    codepage = container.codepage or "cp1252"
    unpacked = TnefContent()
    for number, attachment in enumerate(container.attachments, start=1):
        data = attachment.data
        if not isinstance(data, bytes) or not data:
            continue
        name = _filename(attachment, codepage, defects, f"{item} file {number}")
        unpacked.attachments.append(
            ParsedAttachment(
                filename=name,
                content_type=_guess_type(name),
                content=data,
            )
        )
    unpacked.text = _text(container.body, codepage, defects, item)
    unpacked.html = _text(container.htmlbody, codepage, defects, item)
    if unpacked.text is None and unpacked.html is None:
        unpacked.text = _rtf_text(container, defects, item)
    return unpacked


def _filename(attachment: object, codepage: str, defects: list[str], item: str) -> str:
    long_names = [
        prop.data
        for prop in getattr(attachment, "mapi_attrs", [])
        if prop.name == _MAPI_LONG_FILENAME
    ]
    raw = long_names[0] if long_names else getattr(attachment, "_name", b"")
    if isinstance(raw, bytes):
        name = decode_bytes(raw, codepage, defects, f"{item} name")
    else:
        name = str(raw)
    return safe_filename(name.strip("\x00").strip())


def _text(
    value: str | bytes | None, codepage: str, defects: list[str], item: str
) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = decode_bytes(value, codepage, defects, f"{item} body")
    text = value.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    return text if text.strip() else None


def _rtf_text(container: TNEF, defects: list[str], item: str) -> str | None:
    compressed = getattr(container, "_rtfbody", None)
    if not compressed:
        return None
    try:
        rtf = compressed_rtf.decompress(compressed + b"\x00")
    except Exception as exc:
        defects.append(f"{item}: RTF body not decompressed, {exc}")
        return None
    text: str = rtf_to_text(rtf.decode("latin-1"), errors="ignore")  # type: ignore[no-untyped-call]
    return _text(text, "utf-8", defects, item)


def _guess_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"
