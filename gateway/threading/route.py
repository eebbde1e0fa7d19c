"""Find the cases a message names, strongest signal first.

The signals, in order: a token in the subject (``subject_token``), a token
in the new text (``body_token``), a token in the quoted text or the HTML
body (``quoted_token``), then In-Reply-To and References, right-most
first, against the Message-IDs known for a case (``references``). Within
each text, well-formed tokens come before repaired damaged ones
(:mod:`gateway.threading.damaged`).

The first signal that names any case decides. When it names several
cases, they are returned in reading order, and the caller takes the first
one the sender may write to (:mod:`gateway.threading.senders`). A token
of this installation that names no case is remembered, so that a message
with only such tokens can be held as ``unknown_token`` instead of opening
a case. Only the first MAX_TOKENS_PER_TEXT tokens of each text and the
MAX_REFERENCES newest ids are looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from gateway.inbound.parse import ParsedMessage
from gateway.models import Case, ThreadMessage
from gateway.threading.damaged import find_damaged_tokens
from gateway.threading.tokens import find_tokens

SUBJECT_TOKEN = "subject_token"
BODY_TOKEN = "body_token"
QUOTED_TOKEN = "quoted_token"
REFERENCES = "references"
NEW = "new"
# Bounds on the lookups one message can cause. A reply carries one or two
# tokens and a References chain of a few dozen ids. Hostile mail can carry
# hundreds of thousands, and that must not mean as many queries.
MAX_TOKENS_PER_TEXT = 20
MAX_REFERENCES = 100


@dataclass(frozen=True)
class Match:
    """A case a message names and the signal that names it."""

    case: Case
    matched_by: str


@dataclass
class Candidates:
    """The cases of the deciding signal, and the tokens that named no case."""

    matches: list[Match] = field(default_factory=list)
    #: Tokens of this installation's ``<org>`` that name no case.
    unknown_tokens: list[str] = field(default_factory=list)


def find_candidates(
    session: Session, message: ParsedMessage, new_text: str, org_id: str
) -> Candidates:
    """Return the cases that the strongest signal of ``message`` names."""
    result = Candidates()
    for matched_by, text in (
        (SUBJECT_TOKEN, message.subject),
        (BODY_TOKEN, new_text),
        (QUOTED_TOKEN, message.text),
        (QUOTED_TOKEN, message.html or ""),
    ):
        strict = find_tokens(text)[:MAX_TOKENS_PER_TEXT] if text else []
        tokens = _tokens_of(text, org_id, strict)
        cases = cases_by_tokens(session, tokens)
        # Only well-formed tokens count as unknown: a repair is a guess.
        for token in strict:
            known = token in cases or token in result.unknown_tokens
            if not known and _is_own(token, org_id):
                result.unknown_tokens.append(token)
        if cases:
            result.matches = _unique_matches(
                [Match(cases[t], matched_by) for t in tokens if t in cases]
            )
            return result
    referenced = _unique([*message.in_reply_to, *reversed(message.references)])
    cases_of_ids = _cases_by_message_ids(session, referenced[:MAX_REFERENCES])
    result.matches = _unique_matches([Match(c, REFERENCES) for c in cases_of_ids])
    return result


def find_case(
    session: Session, message: ParsedMessage, new_text: str, org_id: str = ""
) -> Match | None:
    """Return the first case of the strongest signal, without the sender check."""
    found = find_candidates(session, message, new_text, org_id)
    return found.matches[0] if found.matches else None


def _tokens_of(text: str, org_id: str, strict: list[str]) -> list[str]:
    """Return the well-formed tokens of ``text``, then the repaired ones."""
    if not text:
        return []
    repaired = [t for t in find_damaged_tokens(text, [org_id]) if t not in strict]
    return (strict + repaired)[:MAX_TOKENS_PER_TEXT]


def _is_own(token: str, org_id: str) -> bool:
    return token.startswith(f"ref_{org_id}_")


def cases_by_tokens(session: Session, tokens: list[str]) -> dict[str, Case]:
    """Return the cases that ``tokens`` name, by token."""
    if not tokens:
        return {}
    cases = session.exec(select(Case).where(col(Case.token).in_(tokens))).all()
    return {case.token: case for case in cases}


def _cases_by_message_id_rows(
    session: Session, message_ids: list[str]
) -> dict[str, int]:
    rows = session.exec(
        select(ThreadMessage.message_id, ThreadMessage.case_id)
        .where(col(ThreadMessage.message_id).in_(message_ids))
        .order_by(col(ThreadMessage.id))
    ).all()
    # The oldest mapping wins: the first case to know a Message-ID keeps it.
    case_of_id: dict[str, int] = {}
    for message_id, case_id in rows:
        case_of_id.setdefault(message_id, case_id)
    return case_of_id


def _cases_by_message_ids(session: Session, message_ids: list[str]) -> list[Case]:
    """Return the cases of the Message-IDs in ``message_ids``, in that order."""
    if not message_ids:
        return []
    case_of_id = _cases_by_message_id_rows(session, message_ids)
    cases = []
    for message_id in message_ids:
        if message_id in case_of_id:
            case = session.get(Case, case_of_id[message_id])
            if case is not None:
                cases.append(case)
    return cases


def _unique_matches(matches: list[Match]) -> list[Match]:
    seen: set[int | None] = set()
    result = []
    for match in matches:
        if match.case.id not in seen:
            seen.add(match.case.id)
            result.append(match)
    return result


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
