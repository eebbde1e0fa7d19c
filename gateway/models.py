"""Tables of the store.

Timestamps are timezone-aware UTC. Lists of addresses are JSON arrays.
Message-IDs are stored in the normalized ``<local@domain>`` form.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

# Times are stored in UTC and shown to people in the desk's time zone.
DISPLAY_ZONE = ZoneInfo("Europe/Berlin")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive one (as SQLite returns them) is UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class CaseStatus(enum.StrEnum):
    UNASSIGNED = "Unassigned"
    IN_PROGRESS = "In Progress"
    WAITING_ON_CUSTOMER = "Waiting on Customer"
    ESCALATED = "Escalated"
    PENDING_CLOSURE = "Pending Closure"
    CLOSED = "Closed"


class Severity(enum.StrEnum):
    CRITICAL = "Critical"
    URGENT = "Urgent"
    STANDARD = "Standard"
    LOW = "Low"


class Priority(enum.StrEnum):
    URGENT = "Urgent"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


CASE_TYPES = (
    "General Inquiry",
    "Cloud Down",
    "EDI",
    "New User/User Maintenance",
    "Performance/Locking",
    "Product Issue",
    "Question",
    "Beta",
    "Bundles",
    "Cloud",
    "Customization",
    "Documentation",
    "Enhancement Request",
    "Environment",
    "Feature Request",
    "Fulfillment",
    "Hardware",
    "Installation",
    "Internal",
    "License Request",
    "Security Risk",
    "Services",
    "Training Request",
    "Knowledgebase Suggestion",
)


class AuthorKind(enum.StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"


class InboundState(enum.StrEnum):
    """The processing state of an inbound message; each one ends in a final state."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"
    FAILED = "failed"


FINAL_INBOUND_STATES = frozenset(
    {
        InboundState.PROCESSED,
        InboundState.IGNORED,
        InboundState.UNMATCHED,
        InboundState.FAILED,
    }
)


class OutboundStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class ThreadSource(enum.StrEnum):
    """The origin of a Message-ID known to belong to a case."""

    SENT = "sent"
    RECEIVED = "received"
    IMPORTED = "imported"


class Account(SQLModel, table=True):
    """A customer company, usually known by its mail domain."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    domain: str = Field(index=True, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


class Contact(SQLModel, table=True):
    """A customer person, known by mail address."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True)
    name: str = ""
    phone: str = ""
    account_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(default_factory=utcnow)


CASE_NUMBER_DIGITS = 8


def case_number(case_id: int | None) -> str | None:
    """Return the number shown for the case with row id ``case_id`` (``00000042``)."""
    return None if case_id is None else f"{case_id:0{CASE_NUMBER_DIGITS}d}"


class Case(SQLModel, table=True):
    """A support case.

    Its number is the row id, zero-padded to eight digits, so numbers are
    unique and increase with no counter of their own.
    """

    id: int | None = Field(default=None, primary_key=True)
    legacy_number: str | None = Field(default=None, index=True)
    token: str = Field(index=True, unique=True)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    additional_recipients: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    type: str = "General Inquiry"
    severity: str = Severity.STANDARD.value
    priority: str = Priority.MEDIUM.value
    status: str = Field(default=CaseStatus.UNASSIGNED.value, index=True)
    customer_reference: str = ""
    product: str = ""
    product_version: str = ""
    component: str = ""
    category: str = ""
    topic: str = ""
    tech_profile: str = ""
    subject: str = ""
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    escalation_level: int = 0
    previous_case_id: int | None = Field(default=None, foreign_key="case.id")
    opened_at: datetime = Field(default_factory=utcnow)
    last_modified_at: datetime = Field(default_factory=utcnow)
    # Start of the lifecycle timers: when the case entered its status, or
    # the last staff answer while it is Waiting on Customer.
    status_since: datetime | None = Field(default=None, index=True)
    first_response_due: datetime | None = None
    first_response_at: datetime | None = None
    # The time by which staff must answer the customer next; None while the
    # case waits on the customer or is closed.
    next_response_due: datetime | None = Field(default=None, index=True)

    @property
    def number(self) -> str:
        """The case number shown to people, e.g. ``00000042``; empty before flush."""
        return case_number(self.id) or ""


class Comment(SQLModel, table=True):
    """One entry on a case: the first mail, a reply, a staff comment or a note."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    author: str
    author_name: str = ""
    author_kind: str = AuthorKind.CUSTOMER.value
    new_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    full_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    inbound_message_id: int | None = Field(
        default=None, foreign_key="inboundmessage.id"
    )
    created_at: datetime = Field(default_factory=utcnow)


class Attachment(SQLModel, table=True):
    """A file sent with a comment, stored once per content digest."""

    id: int | None = Field(default=None, primary_key=True)
    comment_id: int = Field(foreign_key="comment.id", index=True)
    filename: str
    content_type: str
    size: int
    sha256: str = Field(index=True)
    inline: bool = False
    content_id: str | None = None


class InboundMessage(SQLModel, table=True):
    """A received mail, stored raw before it is acknowledged.

    ``raw`` contains the bytes unless ``spool_path`` names a file in the spool.
    ``dedup_key`` identifies the message across deliveries. ``first_key`` is
    set to it only on the first message that ended with that key, so the
    unique index makes a second copy a duplicate even under concurrency.
    """

    __table_args__ = (
        Index("ix_inbound_state_received", "state", "received_at"),
        Index("ix_inbound_sender_received", "sender", "received_at"),
        Index("ix_inbound_envelope_sender_received", "envelope_sender", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    spool_path: str | None = None
    size: int = 0
    sha256: str = ""
    message_id: str | None = Field(default=None, index=True)
    sender: str = ""
    subject: str = ""
    dedup_key: str | None = Field(default=None, index=True)
    first_key: str | None = Field(default=None, unique=True)
    source: str = "smtp"
    envelope: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    #: The reverse path lowercased, for the per-sender rate limit; None when
    #: the transport gave none.
    envelope_sender: str | None = None
    #: The mail's Date header in UTC, when it is not later than the receipt.
    #: The rate limit leaves out mail written long before it arrived (a
    #: mailbox read for the first time, a queue released after an outage).
    sent_at: datetime | None = None
    state: str = InboundState.RECEIVED.value
    reason: str = ""
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    attempts: int = 0
    matched_by: str | None = None
    case_id: int | None = Field(default=None, foreign_key="case.id")
    # No foreign key: comment rows point back at their inbound message.
    comment_id: int | None = None
    duplicate_of_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    #: For an unmatched mail: the case its token or references named.
    candidate_case_id: int | None = Field(default=None, foreign_key="case.id")
    received_at: datetime = Field(default_factory=utcnow)
    enqueued_at: datetime | None = None
    processed_at: datetime | None = None


class OutboundMessage(SQLModel, table=True):
    """A mail in the outbox.

    The content is rendered in the transaction of the change that caused
    it. The MIME bytes (``raw``) are composed at the first delivery attempt
    and kept, so every retry sends the same bytes.
    """

    __table_args__ = (Index("ix_outbound_status_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    kind: str
    sender: str
    sender_name: str = ""
    to: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cc: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str
    message_id: str = Field(index=True, unique=True)
    in_reply_to: str | None = None
    references: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    headers: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    text_body: str = Field(default="", sa_column=Column(Text, nullable=False))
    html_body: str = Field(default="", sa_column=Column(Text, nullable=False))
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    status: str = OutboundStatus.QUEUED.value
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = None
    enqueued_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class ThreadMessage(SQLModel, table=True):
    """A Message-ID known to belong to a case, for In-Reply-To/References matching."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(index=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    source: str = ThreadSource.SENT.value
    created_at: datetime = Field(default_factory=utcnow)


class ImapFolderState(SQLModel, table=True):
    """How far the gateway has read one IMAP folder.

    ``mailbox`` is ``user@host:port/folder``. UIDs are valid only together
    with the folder's UIDVALIDITY: when the server reports another one, the
    UIDs were reassigned and ``last_uid`` no longer identifies what was read.
    ``started_at`` is the first poll, which the ``ingest_existing = false``
    setting uses as the cut-off for mail that was there before.
    """

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(unique=True)
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    started_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StatusCause(enum.StrEnum):
    """The cause of a move from one status to another."""

    COMMENT = "comment"
    TIMER = "timer"
    COMMAND = "command"
    ADMIN = "admin"


class StatusChange(SQLModel, table=True):
    """One transition of a case's status; ``from_status`` is None at opening."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    at: datetime
    from_status: str | None = None
    to_status: str
    cause: str


class Survey(SQLModel, table=True):
    """The satisfaction survey sent when a case closed, with its answer."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    # Message-ID of the survey mail, so a reply to it is known as the answer.
    message_id: str | None = None
    sent_at: datetime
    rating: int | None = None
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    answered_by: str = ""
    answered_at: datetime | None = None


class BounceRecord(SQLModel, table=True):
    """One recipient that, by a bounce (delivery report), a mail did not reach."""

    id: int | None = Field(default=None, primary_key=True)
    inbound_message_id: int = Field(foreign_key="inboundmessage.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    recipient: str = Field(index=True)
    #: RFC 3464 Action, lowercased: ``failed``, ``delayed``, ...; empty when
    #: the report is not a standard one.
    action: str = ""
    #: RFC 3463 status code such as ``5.1.1``; empty when the report has none.
    status: str = ""
    permanent: bool = False
    diagnostic: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class BouncingAddress(SQLModel, table=True):
    """The delivery failures counted for one mail address.

    Notifications to the address stop while ``permanent_failures`` is at
    least ``[routing] bounce_limit``.
    """

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True)
    permanent_failures: int = 0
    delays: int = 0
    last_status: str = ""
    last_bounce_at: datetime = Field(default_factory=utcnow)


class UnmatchedAction(SQLModel, table=True):
    """An admin's action on a mail in the unmatched queue: the audit record."""

    id: int | None = Field(default=None, primary_key=True)
    inbound_message_id: int = Field(foreign_key="inboundmessage.id", index=True)
    #: ``assign``, ``open``, ``discard`` or ``replay``.
    action: str
    actor: str
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    case_id: int | None = Field(default=None, foreign_key="case.id")
    #: The inbound state and reason after the action, e.g. ``processed``.
    result_state: str = ""
    result_reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
