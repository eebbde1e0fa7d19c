"""Survey answers: which replies to a Closed case count as the answer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.db import read_only
from gateway.lifecycle.surveys import find_rating
from gateway.models import Survey
from tests.conftest import build_mail
from tests.lifecycle_helpers import (
    CUSTOMER,
    Clock,
    ingest,
    load_case,
    make_runtime,
    outbox,
    reply_to,
)

START = datetime.fromisoformat("2026-12-07T09:30:00+01:00")


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Rating 4 [Case 00000001] ref_a1_b2:ref", "", 4),
        ("Bewertung: 2 [Fall 00000001] ref_a1_b2:ref", "", 2),
        ("Re: [Case 00000001] Closed: Note 1 is missing", "", None),
        ("AW: [Fall 00000001] Bewertung 3 fehlt ref_a1_b2:ref", "", None),
        ("Re: [Case 00000001] Closed: Note 1 is missing", "5 of 5", 5),
    ],
)
def test_find_rating(subject: str, text: str, expected: int | None) -> None:
    assert find_rating(subject, text) == expected


def test_case_subject_gives_no_rating(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(
        runtime, build_mail(sender=CUSTOMER, subject="Note 1 missing on invoice")
    )
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))
    assert load_case(runtime, str(opened.case_number)).status == "Closed"

    # A new problem, sent as a reply to an older mail of the closed case.
    reply = ingest(
        runtime, reply_to(confirmation, CUSTOMER, "Now note 2 is missing too.")
    )
    assert reply.matched_by == "new"
    assert reply.case_number != opened.case_number
    with Session(read_only(runtime.engine)) as session:
        [survey] = session.exec(select(Survey)).all()
    assert survey.answered_at is None
    assert survey.rating is None


def test_second_rating_replaces_first(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path / "gw", Clock(START))
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Login fails"))
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Close"))
    case = load_case(runtime, str(opened.case_number))
    marker = f"[Case {case.number}] {case.token}"

    first = build_mail(
        sender=CUSTOMER, subject=f"Rating 4 {marker}", body="Rating 4\n\nFast help.\n"
    )
    second = build_mail(sender=CUSTOMER, subject=f"Rating 5 {marker}", body="")
    assert ingest(runtime, first).case_number == case.number
    assert ingest(runtime, second).case_number == case.number
    with Session(read_only(runtime.engine)) as session:
        [survey] = session.exec(select(Survey)).all()
    assert survey.rating == 5
    assert survey.comment == "Fast help."
    assert len(outbox(runtime, "confirmation")) == 1
