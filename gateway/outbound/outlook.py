"""Thread-Index and Thread-Topic: the headers Outlook threads conversations by.

They carry MAPI's conversation topic (the subject without prefixes) and
conversation index, base64-encoded ([MS-OXOMSG] 2.2.1.3, and the MAPI page
"Tracking conversations"). The index starts with a 22-byte header block:
the byte 0x01, the high 40 bits of a FILETIME (100 ns ticks since
1601-01-01 UTC) and a 16-byte GUID. Each later mail of the conversation
appends a 5-byte child block: a 1-bit delta code, 31 bits of time delta,
4 random bits and a 4-bit sequence count.

Every mail of a case gets the same header block, built from the time the
case opened and a GUID derived from its token, so they share one
conversation. One child block then holds the time since the case opened.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import UTC, datetime

from gateway.models import Case

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# The header block keeps a FILETIME without its 24 low bits (about 1.7 s).
HEADER_DROPPED_BITS = 24
# A delta below 2**49 ticks (about 1.8 years) is stored in bits 48..18 of
# the delta (code 0), a larger one in bits 53..23 (code 1).
SHORT_DELTA_LIMIT = 1 << 49
MAX_TOPIC_LENGTH = 255
REPLY_PREFIX_PATTERN = re.compile(r"^(?:(?:re|aw|wg|fw|fwd)\s*:\s*)+", re.IGNORECASE)


def filetime(moment: datetime) -> int:
    """Return ``moment`` in FILETIME ticks (100 ns since 1601-01-01 UTC)."""
    delta = moment.astimezone(UTC) - FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def conversation_header(case: Case) -> bytes:
    """Return the 22-byte header block shared by every mail of ``case``."""
    guid = hashlib.sha256(case.token.encode("utf-8")).digest()[:16]
    stamp = (filetime(case.opened_at) >> HEADER_DROPPED_BITS).to_bytes(5, "big")
    return b"\x01" + stamp + guid


def child_block(case: Case, sent_at: datetime) -> bytes:
    """Return the 5-byte child block of a mail of ``case`` sent at ``sent_at``."""
    dropped = HEADER_DROPPED_BITS
    header_ticks = (filetime(case.opened_at) >> dropped) << dropped
    delta = max(0, filetime(sent_at) - header_ticks)
    if delta < SHORT_DELTA_LIMIT:
        code, bits = 0, (delta >> 18) & 0x7FFFFFFF
    else:
        code, bits = 1, (delta >> 23) & 0x7FFFFFFF
    value = (code << 39) | (bits << 8) | (secrets.randbits(4) << 4)
    return value.to_bytes(5, "big")


def thread_topic(subject: str) -> str:
    """Return the subject without reply prefixes, as Outlook's Thread-Topic."""
    return REPLY_PREFIX_PATTERN.sub("", subject.strip())[:MAX_TOPIC_LENGTH]


def outlook_headers(case: Case, sent_at: datetime) -> dict[str, str]:
    """Return the Thread-Topic and Thread-Index headers of a mail of ``case``."""
    index = conversation_header(case) + child_block(case, sent_at)
    return {
        "Thread-Topic": thread_topic(case.subject) or case.number,
        "Thread-Index": base64.b64encode(index).decode("ascii"),
    }
