"""Build small TNEF (winmail.dat) containers for the tests."""

from __future__ import annotations

import struct

import compressed_rtf

SIGNATURE = struct.pack("<I", 0x223E9F78)
MESSAGE_LEVEL = 1
ATTACHMENT_LEVEL = 2


def attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    """Encode one attribute: header, data and the 16-bit sum of the data."""
    header = struct.pack("<BII", level, name | (kind << 16), len(data))
    return header + data + struct.pack("<H", sum(data) & 0xFFFF)


def container(
    files: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = None,
    rtf: bytes | None = None,
    codepage: int = 1252,
) -> bytes:
    """Return a container with ``files`` (raw name, content) and a body."""
    parts = [
        SIGNATURE,
        struct.pack("<H", 0x1234),
        attribute(MESSAGE_LEVEL, 0x9006, 0x0008, struct.pack("<I", 0x00010000)),
        attribute(MESSAGE_LEVEL, 0x9007, 0x0006, struct.pack("<II", codepage, 0)),
    ]
    if body is not None:
        parts.append(attribute(MESSAGE_LEVEL, 0x800C, 0x0002, body))
    if rtf is not None:
        compressed = compressed_rtf.compress(rtf)
        padding = b"\x00" * (-len(compressed) % 4)
        properties = struct.pack("<IHHII", 1, 0x0102, 0x1009, 1, len(compressed))
        parts.append(
            attribute(MESSAGE_LEVEL, 0x9003, 0x0006, properties + compressed + padding)
        )
    for name, content in files or []:
        parts.append(
            attribute(ATTACHMENT_LEVEL, 0x9002, 0x0006, b"\x01" + b"\x00" * 13)
        )
        parts.append(attribute(ATTACHMENT_LEVEL, 0x8010, 0x0001, name + b"\x00"))
        parts.append(attribute(ATTACHMENT_LEVEL, 0x800F, 0x0006, content))
    return b"".join(parts)
