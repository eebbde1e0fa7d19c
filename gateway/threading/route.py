"""Find the case a message belongs to.

The signals, strongest first: a token in the subject, a token in the new
text, a token anywhere else in the body, then In-Reply-To and References
(right-most first) against the Message-IDs known for a case. A token that
names no case is skipped, so a later signal can still match. Only the
first MAX_TOKENS_PER_TEXT tokens of each text and the MAX_REFERENCES
newest ids are looked up.
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
# Bounds on the lookups one message can cause. A reply carries one or two
# tokens and a References chain of a few dozen ids. Hostile mail can carry
# hundreds of thousands, and that must not mean as many queries.
MAX_TOKENS_PER_TEXT = 20
MAX_REFERENCES = 100


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
        case = _case_by_token(session, find_tokens(text)[:MAX_TOKENS_PER_TEXT])
        if case is not None:
            return Match(case, matched_by)
    referenced = _unique([*message.in_reply_to, *reversed(message.references)])
    case = _case_by_message_id(session, referenced[:MAX_REFERENCES])
    if case is not None:
        return Match(case, REFERENCES)
    return None


def _case_by_token(session: Session, tokens: list[str]) -> Case | None:
    """Return the case of the first token in ``tokens`` that names one."""
    if not tokens:
        return None
    cases = session.exec(select(Case).where(col(Case.token).in_(tokens))).all()
    by_token = {case.token: case for case in cases}
    return next((by_token[t] for t in tokens if t in by_token), None)


def _case_by_message_id(session: Session, message_ids: list[str]) -> Case | None:
    """Return the case of the first Message-ID in ``message_ids`` known for one."""
    if not message_ids:
        return None
    rows = session.exec(
        select(ThreadMessage.message_id, ThreadMessage.case_id)
        .where(col(ThreadMessage.message_id).in_(message_ids))
        .order_by(col(ThreadMessage.id))
    ).all()
    # The oldest mapping wins: the first case to know a Message-ID keeps it.
    case_of_id: dict[str, int] = {}
    for message_id, case_id in rows:
        case_of_id.setdefault(message_id, case_id)
    for message_id in message_ids:
        if message_id in case_of_id:
            return session.get(Case, case_of_id[message_id])
    return None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
