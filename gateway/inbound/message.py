"""The data model of a parsed inbound mail, filled by :mod:`gateway.inbound.parse`."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    """One mailbox from an address header."""

    #: addr-spec with the domain part lowercased, "" if the header had none.
    email: str
    #: Decoded display name, "" if none.
    name: str


@dataclass
class ParsedAttachment:
    """A non-body part of a message, decoded."""

    #: Decoded and made safe for a file system; generated when the part has none.
    filename: str
    #: Lowercased "type/subtype".
    content_type: str
    content: bytes
    #: True for Content-Disposition inline, or a part the HTML body refers to
    #: with a cid: URL.
    inline: bool = False
    #: Content-ID without angle brackets.
    content_id: str | None = None

    @property
    def size(self) -> int:
        """Size of the decoded content in bytes."""
        return len(self.content)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 digest of the decoded content."""
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class ParsedMessage:
    """The parts of an inbound mail that the gateway works with."""

    #: "<local@domain>" with whitespace removed, or None when missing or empty.
    message_id: str | None = None
    subject: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    #: Timezone-aware date, or None when the header is missing or unparseable.
    date: datetime | None = None
    #: Message ids of In-Reply-To and References, normalized, in header order.
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    #: Whole decoded text body with "\n" line ends; derived from the HTML body
    #: when the mail has no text/plain body part.
    text: str = ""
    html: str | None = None
    text_from_html: bool = False
    attachments: list[ParsedAttachment] = field(default_factory=list)
    #: Every top-level header in order: name as written, value decoded and
    #: unfolded.
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/plain"
    #: Readable descriptions of what was malformed or had to be guessed.
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """Return the first value of the header ``name`` (case-insensitive)."""
        lookup = name.lower()
        for header_name, value in self.headers:
            if header_name.lower() == lookup:
                return value
        return None
