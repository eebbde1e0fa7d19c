"""The status machine of a case and its history.

Every change of status goes through ``move``, which records it with its
cause and time in the ``statuschange`` table.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session, col, select

from gateway.errors import InvalidInput
from gateway.models import Case, CaseStatus, StatusCause, StatusChange

log = logging.getLogger(__name__)

# The statuses each status may move to. Closed is final: a reply to a
# closed case opens a new case.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.UNASSIGNED: frozenset(
        {
            CaseStatus.IN_PROGRESS,
            CaseStatus.WAITING_ON_CUSTOMER,
            CaseStatus.ESCALATED,
            CaseStatus.CLOSED,
        }
    ),
    CaseStatus.IN_PROGRESS: frozenset(
        {CaseStatus.WAITING_ON_CUSTOMER, CaseStatus.ESCALATED, CaseStatus.CLOSED}
    ),
    CaseStatus.WAITING_ON_CUSTOMER: frozenset(
        {
            CaseStatus.IN_PROGRESS,
            CaseStatus.ESCALATED,
            CaseStatus.PENDING_CLOSURE,
            CaseStatus.CLOSED,
        }
    ),
    CaseStatus.ESCALATED: frozenset(
        {CaseStatus.IN_PROGRESS, CaseStatus.WAITING_ON_CUSTOMER, CaseStatus.CLOSED}
    ),
    CaseStatus.PENDING_CLOSURE: frozenset(
        {
            CaseStatus.IN_PROGRESS,
            CaseStatus.WAITING_ON_CUSTOMER,
            CaseStatus.ESCALATED,
            CaseStatus.CLOSED,
        }
    ),
    CaseStatus.CLOSED: frozenset(),
}


class InvalidTransition(InvalidInput):
    """A status change that the lifecycle does not allow, such as reopening."""


def record_opening(
    session: Session, case: Case, cause: StatusCause, now: datetime
) -> None:
    """Record the first status of a new case in its history."""
    assert case.id is not None
    case.status_since = now
    session.add(case)
    session.add(
        StatusChange(
            case_id=case.id,
            at=now,
            from_status=None,
            to_status=case.status,
            cause=cause,
        )
    )


def move(
    session: Session,
    case: Case,
    target: CaseStatus,
    cause: StatusCause,
    now: datetime,
) -> bool:
    """Move ``case`` to ``target`` and record it; return False if it is there already.

    Raises InvalidTransition for a change the lifecycle does not allow.
    """
    current = CaseStatus(case.status)
    if current is target:
        return False
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"case {case.number} cannot move from {current.value} to {target.value}"
        )
    assert case.id is not None
    case.status = target.value
    case.status_since = now
    case.last_modified_at = now
    session.add(case)
    session.add(
        StatusChange(
            case_id=case.id,
            at=now,
            from_status=current.value,
            to_status=target.value,
            cause=cause.value,
        )
    )
    log.info(
        "case status changed case=%s from=%s to=%s cause=%s",
        case.number,
        current.value,
        target.value,
        cause.value,
    )
    return True


def history(session: Session, case_id: int) -> list[StatusChange]:
    """Return the status changes of a case, oldest first."""
    return list(
        session.exec(
            select(StatusChange)
            .where(StatusChange.case_id == case_id)
            .order_by(col(StatusChange.id))
        ).all()
    )
