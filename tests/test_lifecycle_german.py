"""The lifecycle in a German desk: commands, survey answer and mails in German."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from gateway.config import load_settings
from gateway.db import read_only
from gateway.lifecycle.reports import survey_views
from gateway.runtime import Runtime
from tests.conftest import build_mail, make_env
from tests.lifecycle_helpers import CUSTOMER, Clock, ingest, load_case, outbox, reply_to

START = datetime.fromisoformat("2026-12-07T09:30:00+01:00")


def test_german_close_and_survey(tmp_path: Path) -> None:
    env = make_env(tmp_path / "gw", language="de")
    runtime = Runtime(load_settings(env.config), clock=Clock(START))
    runtime.prepare_store()
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Lager <Halle 3>"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    assert "subject=SCHLIESSEN" in confirmation.text_body
    assert "Lager &lt;Halle 3&gt;" in confirmation.html_body

    # A German reply prefix, and the command in German as the first line.
    ingest(
        runtime,
        reply_to(
            confirmation,
            CUSTOMER,
            "Fall schließen\n\nEs geht wieder.",
            subject=f"AW: {confirmation.subject}",
        ),
    )
    assert load_case(runtime, opened.case_number).status == "Closed"
    [survey_mail] = outbox(runtime, "survey")
    assert survey_mail.subject.startswith(f"[Fall {opened.case_number}] Geschlossen:")
    assert "Bewertung von 1 (gar nicht) bis 5" in survey_mail.text_body

    ingest(
        runtime,
        reply_to(
            survey_mail,
            CUSTOMER,
            "Sehr schnelle Hilfe.",
            subject=f"Bewertung 5 [Fall {opened.case_number}]",
        ),
    )
    with Session(read_only(runtime.engine)) as session:
        [survey] = survey_views(session)
    assert survey["rating"] == 5
    assert survey["comment"] == "Sehr schnelle Hilfe."
    assert len(outbox(runtime, "confirmation")) == 1
