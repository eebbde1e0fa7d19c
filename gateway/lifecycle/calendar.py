"""The business calendar: response-time clocks that run only in business hours.

Business hours are Monday to Thursday 09:00-17:00 and Friday 09:00-13:00,
Europe/Berlin time, except the public holidays of North Rhine-Westphalia
(the ``holidays`` package, subdivision NW) and 24 and 31 December. Each day's
window is built as aware local times, so a day of a DST change counts its
real hours. No window contains a change (they happen at 02:00 and 03:00).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from gateway.config import SlaSettings
from gateway.models import Severity

BUSINESS_ZONE = ZoneInfo("Europe/Berlin")
OPENING = time(9, 0)
# Closing time per weekday (Monday is 0); Saturday and Sunday have none.
CLOSING = {
    0: time(17, 0),
    1: time(17, 0),
    2: time(17, 0),
    3: time(17, 0),
    4: time(13, 0),
}
# Days the desk is closed although no public holiday: Christmas Eve and New
# Year's Eve, as (month, day).
CLOSED_DAYS = ((12, 24), (12, 31))
# A target of 10,000 business hours spans about 6 years, which bounds the loop.
MAX_DAYS = 3660


@lru_cache(maxsize=32)
def _holidays(year: int) -> frozenset[date]:
    public = holidays.country_holidays("DE", subdiv="NW", years=year)
    closed = {date(year, month, day) for month, day in CLOSED_DAYS}
    return frozenset(public) | closed


def is_business_day(day: date) -> bool:
    return day.weekday() in CLOSING and day not in _holidays(day.year)


def business_window(day: date) -> tuple[datetime, datetime] | None:
    """Return the start and end of the business hours of ``day``, or None."""
    if not is_business_day(day):
        return None
    start = datetime.combine(day, OPENING, tzinfo=BUSINESS_ZONE)
    end = datetime.combine(day, CLOSING[day.weekday()], tzinfo=BUSINESS_ZONE)
    return start, end


def add_business_hours(start: datetime, hours: float) -> datetime:
    """Return the time (UTC) when ``hours`` business hours after ``start`` have passed.

    A start outside business hours counts from the next opening. Raises
    ValueError for a naive ``start`` or negative ``hours``.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start {start.isoformat()} is naive: pass an aware datetime")
    if hours < 0:
        raise ValueError(f"hours {hours} is negative")
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    day = start.astimezone(BUSINESS_ZONE).date()
    for _ in range(MAX_DAYS):
        window = business_window(day)
        if window is not None:
            opening = max(window[0].astimezone(UTC), cursor)
            closing = window[1].astimezone(UTC)
            if opening < closing:
                if closing - opening >= remaining:
                    return opening + remaining
                remaining -= closing - opening
        day += timedelta(days=1)
    raise ValueError(f"{hours} business hours after {start.isoformat()} is too far")


def target_hours(sla: SlaSettings, severity: str) -> float:
    """Return the response-time target of ``severity`` in business hours.

    An unknown severity gets the Standard target.
    """
    targets = {
        Severity.CRITICAL.value: sla.critical_hours,
        Severity.URGENT.value: sla.urgent_hours,
        Severity.STANDARD.value: sla.standard_hours,
        Severity.LOW.value: sla.low_hours,
    }
    return targets.get(severity, sla.standard_hours)


def response_due(sla: SlaSettings, severity: str, start: datetime) -> datetime:
    """Return when staff must answer a message of ``severity`` sent at ``start``."""
    return add_business_hours(start, target_hours(sla, severity))
