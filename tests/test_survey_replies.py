"""Replies to the survey mail: a rating is an answer, anything else a new case."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from gateway.db import read_only
from gateway.lifecycle.reports import survey_views
from gateway.runtime import Runtime
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


def closed_case(tmp_path: Path) -> tuple[Runtime, str]:
    """Open a case and close it by the customer's command, which sends the survey."""
    clock = Clock(datetime.fromisoformat("2026-12-07T09:30:00+01:00"))
    runtime = make_runtime(tmp_path / "gw", clock)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Waage defekt"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, CUSTOMER, "Bitte schliessen"))
    assert load_case(runtime, opened.case_number).status == "Closed"
    return runtime, opened.case_number


def test_reply_without_rating_opens_linked_case(tmp_path: Path) -> None:
    runtime, number = closed_case(tmp_path)
    [survey_mail] = outbox(runtime, "survey")

    outcome = ingest(
        runtime, reply_to(survey_mail, CUSTOMER, "Die Waage zeigt wieder Fehler 7.")
    )

    assert outcome.case_number is not None
    assert outcome.case_number != number
    with Session(read_only(runtime.engine)) as session:
        [survey] = survey_views(session)
    assert survey["rating"] is None


def test_reply_with_rating_is_the_answer(tmp_path: Path) -> None:
    runtime, number = closed_case(tmp_path)
    [survey_mail] = outbox(runtime, "survey")

    outcome = ingest(runtime, reply_to(survey_mail, CUSTOMER, "5\n\nSchnell gelöst."))

    assert outcome.case_number == number
    with Session(read_only(runtime.engine)) as session:
        [survey] = survey_views(session)
    assert survey["rating"] == 5
    assert survey["comment"] == "Schnell gelöst."
