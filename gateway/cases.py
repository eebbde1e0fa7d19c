"""Cases, contacts and comments: the changes that mail and commands make.

Every function works inside the caller's session and transaction, so a
change and the notifications it causes commit together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from gateway.attachments import store_attachment
from gateway.config import Settings
from gateway.errors import CaseNotFound
from gateway.inbound.parse import Address, ParsedAttachment
from gateway.models import (
    Account,
    Attachment,
    AuthorKind,
    Case,
    CaseStatus,
    Comment,
    Contact,
    utcnow,
)
from gateway.threading.tokens import mint_token

log = logging.getLogger(__name__)

MAX_SUBJECT_LENGTH = 255


@dataclass
class NewComment:
    """The content of a comment, from a mail or a command."""

    author: Address
    kind: AuthorKind
    new_text: str
    full_text: str
    attachments: list[ParsedAttachment] = field(default_factory=list)
    inbound_message_id: int | None = None


def find_or_create_contact(session: Session, address: Address) -> Contact:
    """Return the contact for ``address``, creating it and its account if new."""
    email = address.email.strip().lower()
    contact = session.exec(select(Contact).where(Contact.email == email)).first()
    if contact is not None:
        if address.name and not contact.name:
            contact.name = address.name
            session.add(contact)
        return contact
    account = _find_or_create_account(session, email.rpartition("@")[2])
    contact = Contact(
        email=email, name=address.name, account_id=account.id if account else None
    )
    session.add(contact)
    session.flush()
    return contact


def _find_or_create_account(session: Session, domain: str) -> Account | None:
    if not domain:
        return None
    account = session.exec(select(Account).where(Account.domain == domain)).first()
    if account is None:
        account = Account(name=domain, domain=domain)
        session.add(account)
        session.flush()
    return account


def create_case(
    session: Session,
    settings: Settings,
    *,
    subject: str,
    contact: Contact,
    additional_recipients: list[str],
    description: str = "",
    token: str | None = None,
    status: CaseStatus = CaseStatus.UNASSIGNED,
    previous_case: Case | None = None,
    now: datetime | None = None,
) -> Case:
    """Create a case without comments and return it, flushed (with its number)."""
    now = now or utcnow()
    case = Case(
        token=token or mint_token(settings.desk.org_id),
        account_id=contact.account_id,
        contact_id=contact.id,
        additional_recipients=_unique_addresses(
            additional_recipients, exclude=[contact.email]
        ),
        subject=subject[:MAX_SUBJECT_LENGTH],
        description=description,
        status=status.value,
        previous_case_id=previous_case.id if previous_case else None,
        opened_at=now,
        last_modified_at=now,
    )
    session.add(case)
    session.flush()
    return case


def open_case(
    session: Session,
    settings: Settings,
    *,
    subject: str,
    contact: Contact,
    additional_recipients: list[str],
    first_comment: NewComment,
    previous_case: Case | None = None,
    now: datetime | None = None,
) -> tuple[Case, Comment]:
    """Open a case with its first comment and return both."""
    case = create_case(
        session,
        settings,
        subject=subject,
        contact=contact,
        additional_recipients=additional_recipients,
        description=first_comment.new_text,
        previous_case=previous_case,
        now=now,
    )
    comment = add_comment(
        session, settings, case, first_comment, touch_case=False, now=now
    )
    log.info("case opened case=%s contact=%s", case.number, contact.email)
    return case, comment


def add_comment(
    session: Session,
    settings: Settings,
    case: Case,
    new: NewComment,
    *,
    touch_case: bool = True,
    now: datetime | None = None,
) -> Comment:
    """Add a comment with its attachments to ``case`` and return it.

    ``touch_case`` sets the case's last-modified time to the comment's.
    ``now`` is the comment's time (default: the current time).
    """
    assert case.id is not None
    comment = Comment(
        case_id=case.id,
        author=new.author.email,
        author_name=new.author.name,
        author_kind=new.kind.value,
        new_text=new.new_text,
        full_text=new.full_text,
        inbound_message_id=new.inbound_message_id,
        created_at=now or utcnow(),
    )
    session.add(comment)
    session.flush()
    assert comment.id is not None
    for attachment in new.attachments:
        _store_attachment(session, settings.store.data_dir, comment.id, attachment)
    if touch_case:
        case.last_modified_at = comment.created_at
        session.add(case)
    return comment


def _store_attachment(
    session: Session, data_dir: Path, comment_id: int, attachment: ParsedAttachment
) -> None:
    store_attachment(data_dir, attachment.sha256, attachment.content)
    session.add(
        Attachment(
            comment_id=comment_id,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=attachment.sha256,
            inline=attachment.inline,
            content_id=attachment.content_id,
        )
    )


def get_case(session: Session, number: str) -> Case:
    """Return the case ``number`` (leading zeros optional); raise CaseNotFound."""
    wanted = number.strip()
    case = session.get(Case, int(wanted)) if wanted.isdigit() else None
    if case is None:
        raise CaseNotFound(number)
    return case


def _unique_addresses(addresses: list[str], exclude: list[str]) -> list[str]:
    skip = {a.lower() for a in exclude}
    result: list[str] = []
    for address in addresses:
        lowered = address.strip().lower()
        if lowered and lowered not in skip:
            skip.add(lowered)
            result.append(lowered)
    return result
