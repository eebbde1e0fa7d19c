"""Satisfaction surveys: sent on every closing, answered by a reply to the case.

The survey mail carries the case's token, so its reply reaches the closed
case. A reply to a Closed case whose survey is unanswered is the answer
when it gives a rating (1 to 5, as the mailto links of the survey write
it) or replies to the survey mail itself (In-Reply-To or References).
A later rating replaces an earlier answer's. Any other reply to a closed
case opens a new case.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from urllib.parse import quote

from sqlmodel import Session, col, select

from gateway.lifecycle.commands import CASE_MARKER_PATTERN, TOKEN_PATTERN
from gateway.models import Case, Survey

log = logging.getLogger(__name__)

RATINGS = range(1, 6)
# In the subject a rating needs its word ("Rating 4", "Bewertung: 4"),
# because subjects contain other numbers. A first text line may also be the
# bare digit, "4/5" or "4 von 5".
SUBJECT_RATING_PATTERN = re.compile(
    r"\b(?:rating|bewertung|note)\s*:?\s*([1-5])(?![\w.,])", re.IGNORECASE
)
LINE_RATING_PATTERN = re.compile(
    r"^[\W_]*(?:(?:rating|bewertung|note)\s*:?\s*)?([1-5])"
    r"(?:\s*(?:/|of|von)\s*5)?[\W_]*$",
    re.IGNORECASE,
)
RATING_WORDS = {"en": "Rating", "de": "Bewertung"}
MAX_COMMENT_LENGTH = 10_000


def open_survey(
    session: Session, case: Case, message_id: str | None, now: datetime
) -> Survey:
    """Record that the survey mail ``message_id`` was queued for ``case``."""
    assert case.id is not None
    survey = Survey(case_id=case.id, message_id=message_id, sent_at=now)
    session.add(survey)
    return survey


def unanswered_survey(session: Session, case_id: int) -> Survey | None:
    return session.exec(
        select(Survey)
        .where(Survey.case_id == case_id)
        .where(col(Survey.answered_at).is_(None))
        .order_by(col(Survey.id).desc())
    ).first()


def latest_survey(session: Session, case_id: int) -> Survey | None:
    return session.exec(
        select(Survey).where(Survey.case_id == case_id).order_by(col(Survey.id).desc())
    ).first()


def _without_markers(line: str) -> str:
    return CASE_MARKER_PATTERN.sub(" ", TOKEN_PATTERN.sub(" ", line)).strip()


def _first_line(text: str) -> tuple[int, str] | None:
    for number, line in enumerate(text.splitlines()):
        if line.strip():
            return number, line
    return None


def find_rating(subject: str, new_text: str) -> int | None:
    """Return the rating in the subject or the first non-empty text line, or None.

    Only the subject before its case marker counts. The rating links write
    the rating there, and after the marker a reply repeats the case's own
    subject, which may well read "Note 1 missing".
    """
    own_subject = CASE_MARKER_PATTERN.split(subject, maxsplit=1)[0]
    match = SUBJECT_RATING_PATTERN.search(_without_markers(own_subject))
    if match:
        return int(match.group(1))
    first = _first_line(new_text)
    if first is not None:
        match = LINE_RATING_PATTERN.match(_without_markers(first[1]))
        if match:
            return int(match.group(1))
    return None


def survey_comment(new_text: str) -> str:
    """Return the reply's text without a rating line of its own and the token."""
    lines = new_text.splitlines()
    first = _first_line(new_text)
    if first is not None and LINE_RATING_PATTERN.match(_without_markers(first[1])):
        del lines[first[0]]
    return TOKEN_PATTERN.sub("", "\n".join(lines)).strip()[:MAX_COMMENT_LENGTH]


def answer_survey(
    session: Session,
    case: Case,
    *,
    subject: str,
    new_text: str,
    sender: str,
    now: datetime,
) -> Survey | None:
    """Record a reply to a closed case as its survey answer, if it is one.

    A reply is an answer when it gives a rating. Returns the answered
    survey, or None when the reply is no answer.
    """
    if case.id is None:
        return None
    rating = find_rating(subject, new_text)
    survey = unanswered_survey(session, case.id)
    if survey is None and rating is not None:
        # A second rating, such as a click on another rating link, replaces
        # the first instead of opening a new case.
        survey = latest_survey(session, case.id)
    if survey is None:
        return None
    if rating is None:
        # Without a rating the reply may report the problem again, and the
        # survey mail promises a new case for that. Stored as a survey
        # comment, it would reach no one.
        return None
    comment = survey_comment(new_text)
    if survey.answered_at is None or comment:
        survey.comment = comment
    survey.rating = rating
    survey.answered_by = sender
    survey.answered_at = now
    session.add(survey)
    log.info("survey answered case=%s rating=%s", case.number, rating)
    return survey


def rating_links(
    language: str, address: str, case_number: str, token: str
) -> dict[int, str]:
    """Return a mailto link per rating, whose mail the gateway reads as the answer."""
    word = RATING_WORDS.get(language, RATING_WORDS["en"])
    links = {}
    for rating in RATINGS:
        subject = f"{word} {rating} [Case {case_number}] {token}"
        body = f"{word} {rating}\n\n\n{token}\n"
        links[rating] = f"mailto:{address}?subject={quote(subject)}&body={quote(body)}"
    return links
