"""The lifecycle's part of the JSON shapes: history, due times, surveys, overdue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from gateway.lifecycle.status import history
from gateway.models import DISPLAY_ZONE, Case, CaseStatus, Survey, case_number


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(DISPLAY_ZONE).isoformat()


def lifecycle_fields(session: Session, case: Case) -> dict[str, Any]:
    """Return the case fields of the lifecycle: due times and status history."""
    assert case.id is not None
    return {
        "first_response_due": _timestamp(case.first_response_due),
        "first_response_at": _timestamp(case.first_response_at),
        "next_response_due": _timestamp(case.next_response_due),
        "history": [
            {
                "at": _timestamp(change.at),
                "from": change.from_status,
                "to": change.to_status,
                "cause": change.cause,
            }
            for change in history(session, case.id)
        ],
    }


def is_overdue(case: Case, now: datetime) -> bool:
    """Whether staff owe the customer an answer whose due time has passed."""
    return (
        case.status != CaseStatus.CLOSED.value
        and case.next_response_due is not None
        and case.next_response_due < now
    )


def survey_views(session: Session) -> list[dict[str, Any]]:
    """Return every survey with its case, oldest first."""
    rows = session.exec(
        select(Survey, Case)
        .join(Case, col(Case.id) == col(Survey.case_id))
        .order_by(col(Survey.id))
    ).all()
    return [
        {
            "case": case_number(survey.case_id),
            "subject": case.subject,
            "sent_at": _timestamp(survey.sent_at),
            "rating": survey.rating,
            "comment": survey.comment,
            "answered_by": survey.answered_by or None,
            "answered_at": _timestamp(survey.answered_at),
        }
        for survey, case in rows
    ]
