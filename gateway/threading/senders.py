"""The sender check: who may write into a case by mail.

A sender may post to a case when the sender is its contact, one of its
additional recipients, staff (``[desk] staff_domains``), or an address of
the case's account domain. The account domain does not count when it is
one that unrelated people share (``[routing] public_mail_domains``, such
as gmail.com). Anyone else's mail is held as unmatched, so a stranger who
got hold of a notification (forwarded, or a guessed token) cannot write
into the case.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from gateway.config import Settings
from gateway.models import Account, Case, Contact
from gateway.threading.route import Candidates, Match

UNKNOWN_SENDER = "unknown_sender"
UNKNOWN_TOKEN = "unknown_token"


@dataclass(frozen=True)
class Decision:
    """The routing decision: a case, a new case (no match) or the unmatched queue."""

    match: Match | None = None
    #: ``unknown_sender`` or ``unknown_token`` when the mail is held.
    unmatched_reason: str = ""
    candidate: Case | None = None
    detail: str = ""


def may_post(session: Session, settings: Settings, case: Case, sender: str) -> bool:
    """Return whether ``sender`` may add a comment to ``case`` by mail."""
    address = sender.strip().lower()
    if not address:
        return False
    if settings.is_staff_address(address):
        return True
    contact = session.get(Contact, case.contact_id) if case.contact_id else None
    if contact is not None and contact.email.lower() == address:
        return True
    if address in {a.strip().lower() for a in case.additional_recipients}:
        return True
    domain = address.rpartition("@")[2]
    shared = {d.strip().lower() for d in settings.routing.public_mail_domains}
    if not domain or domain in shared:
        return False
    account = session.get(Account, case.account_id) if case.account_id else None
    return account is not None and account.domain.lower() == domain


def decide(
    session: Session, settings: Settings, candidates: Candidates, sender: str
) -> Decision:
    """Pick the first candidate case the sender may post to, or hold the mail."""
    for match in candidates.matches:
        if may_post(session, settings, match.case, sender):
            return Decision(match=match)
    if candidates.matches:
        first = candidates.matches[0]
        return Decision(
            unmatched_reason=UNKNOWN_SENDER,
            candidate=first.case,
            detail=(
                f"{sender} may not write into case {first.case.number} "
                f"(matched by {first.matched_by})"
            ),
        )
    if candidates.unknown_tokens:
        return Decision(
            unmatched_reason=UNKNOWN_TOKEN,
            detail="no case has the token " + ", ".join(candidates.unknown_tokens[:5]),
        )
    return Decision()
