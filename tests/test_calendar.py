"""Business-hour arithmetic against due times worked out by hand.

Each comment counts the business hours day by day: Mon-Thu 09-17, Fri 09-13
Europe/Berlin, no NRW public holidays, no 24 and 31 December.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from gateway.config import SlaSettings
from gateway.lifecycle.calendar import (
    add_business_hours,
    is_business_day,
    response_due,
)

SLA = SlaSettings()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_standard_from_friday_before_holy_week() -> None:
    # Fri 19 Mar 2027 12:30-13:00 = 0.5 h, Mon 22 Mar 8 h (8.5 h),
    # Tue 23 Mar 09:00 + 7.5 h = 16:30 CET.
    due = response_due(SLA, "Standard", at("2027-03-19T12:30:00+01:00"))
    assert due == at("2027-03-23T16:30:00+01:00")


def test_standard_from_good_friday() -> None:
    # Good Friday 26 Mar 2027 and Easter Monday 29 Mar are holidays, and DST
    # starts on Sunday 28 Mar. Tue 30 Mar 8 h, Wed 31 Mar 8 h: 17:00 CEST.
    due = response_due(SLA, "Standard", at("2027-03-26T12:30:00+01:00"))
    assert due == at("2027-03-31T17:00:00+02:00")


def test_standard_from_maundy_thursday() -> None:
    # Thu 25 Mar 2027 12:30-17:00 = 4.5 h, then the Easter holidays and the
    # DST change, Tue 30 Mar 8 h (12.5 h), Wed 31 Mar 09:00 + 3.5 h = 12:30 CEST.
    due = response_due(SLA, "Standard", at("2027-03-25T12:30:00+01:00"))
    assert due == at("2027-03-31T12:30:00+02:00")


def test_standard_from_23_december() -> None:
    # Wed 23 Dec 2026 10:00-17:00 = 7 h; 24 Dec closed, 25 and 26 Dec
    # holidays, weekend; Mon 28 Dec 8 h (15 h); Tue 29 Dec 09:00 + 1 h.
    due = response_due(SLA, "Standard", at("2026-12-23T10:00:00+01:00"))
    assert due == at("2026-12-29T10:00:00+01:00")


def test_low_from_23_december_crosses_new_year() -> None:
    # 7 h on 23 Dec, 8 h each on 28, 29, 30 Dec (31 h); 31 Dec closed,
    # 1 Jan holiday, weekend; Mon 4 Jan 8 h (39 h); Tue 5 Jan 09:00 + 1 h.
    due = response_due(SLA, "Low", at("2026-12-23T10:00:00+01:00"))
    assert due == at("2027-01-05T10:00:00+01:00")


def test_urgent_across_end_of_dst() -> None:
    # Fri 23 Oct 2026 12:00-13:00 CEST = 1 h; DST ends Sun 25 Oct;
    # Mon 26 Oct 09:00 CET + 3 h = 12:00 CET (11:00 UTC).
    due = response_due(SLA, "Urgent", at("2026-10-23T12:00:00+02:00"))
    assert due == at("2026-10-26T12:00:00+01:00")
    assert due.isoformat() == "2026-10-26T11:00:00+00:00"


def test_standard_across_end_of_dst() -> None:
    # Thu 22 Oct 2026 15:00-17:00 = 2 h, Fri 4 h (6 h), Mon 26 Oct 8 h
    # (14 h), Tue 27 Oct 09:00 CET + 2 h = 11:00 CET.
    due = response_due(SLA, "Standard", at("2026-10-22T15:00:00+02:00"))
    assert due == at("2026-10-27T11:00:00+01:00")


def test_critical_on_corpus_christi() -> None:
    # Corpus Christi, Thu 27 May 2027, is a holiday in NRW: the clock starts
    # Fri 28 May 09:00 CEST, + 2 h = 11:00.
    due = response_due(SLA, "Critical", at("2027-05-27T10:00:00+02:00"))
    assert due == at("2027-05-28T11:00:00+02:00")


def test_standard_on_corpus_christi() -> None:
    # Fri 28 May 2027 4 h, Mon 31 May 8 h (12 h), Tue 1 Jun 09:00 + 4 h.
    due = response_due(SLA, "Standard", at("2027-05-27T10:00:00+02:00"))
    assert due == at("2027-06-01T13:00:00+02:00")


def test_start_before_opening_and_at_weekend() -> None:
    assert add_business_hours(at("2026-12-07T07:00:00+01:00"), 1) == at(
        "2026-12-07T10:00:00+01:00"
    )
    # Sat 5 Dec 2026: the clock starts Mon 7 Dec 09:00.
    assert add_business_hours(at("2026-12-05T11:00:00+01:00"), 2) == at(
        "2026-12-07T11:00:00+01:00"
    )


def test_start_in_utc_is_converted() -> None:
    # 15:30 UTC on Thu 3 Dec 2026 is 16:30 in Berlin: 0.5 h left that day.
    due = add_business_hours(at("2026-12-03T15:30:00+00:00"), 1)
    assert due == at("2026-12-04T09:30:00+01:00")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 12, 24), False),
        (date(2026, 12, 31), False),
        (date(2027, 5, 27), False),
        (date(2026, 11, 1), False),
        (date(2026, 12, 30), True),
        (date(2026, 12, 5), False),
    ],
)
def test_business_days(day: date, expected: bool) -> None:
    assert is_business_day(day) is expected


def test_naive_start_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_business_hours(datetime(2026, 12, 3, 10, 0), 1)
