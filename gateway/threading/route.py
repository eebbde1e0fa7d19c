"""Find the case a message belongs to.

The signals, strongest first: a token in the subject, a token in the new
text, a token anywhere else in the body, then In-Reply-To and References
(right-most first) against the Message-IDs known for a case. A token that
names no case is skipped, so a later signal can still match.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from gateway.inbound.parse import ParsedMessage
from gateway.models import Case, ThreadMessage
from gateway.threading.tokens import find_tokens

SUBJECT_TOKEN = "subject_token"
BODY_TOKEN = "body_token"
REFERENCES = "references"
NEW = "new"


@dataclass(frozen=True)
class Match:
    """The case a message matched and the signal that matched it."""

    case: Case
    matched_by: str


def find_case(session: Session, message: ParsedMessage, new_text: str) -> Match | None:
    """Return the case ``message`` belongs to, or None when no signal matches."""
    for matched_by, text in (
        (SUBJECT_TOKEN, message.subject),
        (BODY_TOKEN, new_text),
        (BODY_TOKEN, message.text),
        (BODY_TOKEN, message.html or ""),
    ):
        for token in find_tokens(text):
            case = session.exec(select(Case).where(Case.token == token)).first()
            if case is not None:
                return Match(case, matched_by)
    referenced = [*message.in_reply_to, *reversed(message.references)]
    for message_id in _unique(referenced):
        known = session.exec(
            select(ThreadMessage)
            .where(ThreadMessage.message_id == message_id)
            .order_by(col(ThreadMessage.id).desc())
        ).first()
        if known is not None:
            case = session.get(Case, known.case_id)
            if case is not None:
                return Match(case, REFERENCES)
    return None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
