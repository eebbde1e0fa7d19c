"""The lifecycle commands of ``gateway``: tick, due, surveys, status, severity.

They are registered on the application of gateway.cli, which imports this
module at its end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from sqlmodel import Session

from gateway.cases import get_case
from gateway.cli import (
    _deliver_inline,
    _print_json,
    _runtime,
    app,
)
from gateway.cli_options import ConfigOption, JsonOption
from gateway.db import read_only, session_scope
from gateway.errors import InvalidInput
from gateway.lifecycle.calendar import response_due
from gateway.lifecycle.events import change_severity, close_case
from gateway.lifecycle.reports import survey_views
from gateway.lifecycle.status import move
from gateway.lifecycle.timers import run_tick
from gateway.models import (
    DISPLAY_ZONE,
    CaseStatus,
    Severity,
    StatusCause,
)
from gateway.outbound.outbox import OutboxWriter
from gateway.views import timestamp


def parse_moment(option: str, value: str) -> datetime:
    """Parse an ISO 8601 time with offset; raise InvalidInput naming ``option``."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"{option} {value!r} is not an ISO 8601 time such as "
            "2026-12-03T10:15:00+01:00"
        ) from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(
            f"{option} {value!r} has no offset: add one, such as +01:00 or Z"
        )
    return moment


def parse_severity(option: str, value: str) -> Severity:
    """Return the severity ``value`` names (any case); raise InvalidInput otherwise."""
    names = {level.value.lower(): level for level in Severity}
    found = names.get(value.strip().lower())
    if found is None:
        raise InvalidInput(
            f"{option} {value!r} is invalid; use one of "
            + ", ".join(level.value for level in Severity)
        )
    return found


@app.command()
def tick(
    now: Annotated[
        str | None,
        typer.Option(help="Run the pass as at this ISO 8601 time (default: now)."),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run one pass of the lifecycle timers: Pending Closure, then Closed."""
    runtime = _runtime(config)
    moment = parse_moment("--now", now) if now is not None else runtime.clock()
    _deliver_inline(runtime)
    result = run_tick(runtime, moment)
    if as_json:
        _print_json(
            {
                "pending_closure": result.pending,
                "closed": result.closed,
                "outbound": result.queued_outbound,
                "waiting_mail": result.waiting_mail,
            }
        )
        return
    if result.waiting_mail:
        typer.echo(
            f"no case moved: {result.waiting_mail} received mails are not "
            "processed yet (run gateway serve or a worker, then tick again)"
        )
        return
    typer.echo(
        f"pending closure: {', '.join(result.pending) or 'none'}; "
        f"closed: {', '.join(result.closed) or 'none'}"
    )


@app.command()
def due(
    opened: Annotated[
        str, typer.Option(help="Start of the clock, ISO 8601 with offset.")
    ],
    severity: Annotated[str, typer.Option(help="Critical, Urgent, Standard or Low.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Print when a response is due, in business hours from --opened."""
    level = parse_severity("--severity", severity)
    start = parse_moment("--opened", opened)
    runtime = _runtime(config)
    moment = response_due(runtime.settings.sla, level.value, start)
    shown = moment.astimezone(DISPLAY_ZONE).isoformat()
    if as_json:
        _print_json({"due": shown})
    else:
        typer.echo(shown)


@app.command()
def surveys(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List the satisfaction surveys of closed cases with their answers."""
    runtime = _runtime(config)
    with Session(read_only(runtime.engine)) as session:
        views = survey_views(session)
    if as_json:
        _print_json(views)
        return
    for view in views:
        rating = view["rating"] if view["rating"] is not None else "-"
        answered = "answered" if view["answered_at"] else "open"
        typer.echo(
            f"{view['case']}  {answered:<8}  rating={rating}  "
            f"{' '.join(view['comment'].split())[:60]}"
        )


@app.command("status")
def set_status(
    number: Annotated[str, typer.Argument(help="Case number.")],
    status: Annotated[
        str,
        typer.Argument(
            help="Unassigned, In Progress, Waiting on Customer, Escalated, "
            "Pending Closure or Closed."
        ),
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Set a case's status as an admin; Closed also sends the survey."""
    names = {s.value.lower(): s for s in CaseStatus}
    target = names.get(" ".join(status.split()).lower())
    if target is None:
        raise InvalidInput(
            f"status {status!r} is unknown; use one of "
            + ", ".join(s.value for s in CaseStatus)
        )
    runtime = _runtime(config)
    _deliver_inline(runtime)
    with session_scope(runtime.engine) as session:
        case = get_case(session, number)
        session.refresh(case, with_for_update=True)
        now = runtime.clock()
        notify = OutboxWriter(session, runtime.settings, runtime.renderer)
        if target is CaseStatus.CLOSED:
            close_case(session, runtime.settings, case, StatusCause.ADMIN, notify, now)
        else:
            move(session, case, target, StatusCause.ADMIN, now)
        if target in (CaseStatus.WAITING_ON_CUSTOMER, CaseStatus.PENDING_CLOSURE):
            # As after a staff answer, staff owe the customer no answer now.
            case.next_response_due = None
        result = {"case": case.number, "status": case.status, "outbound": notify.ids}
    runtime.outbound_queued(notify.ids)
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"case {result['case']} is {result['status']}")


@app.command()
def severity(
    number: Annotated[str, typer.Argument(help="Case number.")],
    value: Annotated[
        str,
        typer.Argument(help="Critical, Urgent, Standard or Low.", metavar="SEVERITY"),
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Change a case's severity and its due times; Critical notifies the manager."""
    target = parse_severity("SEVERITY", value)
    runtime = _runtime(config)
    _deliver_inline(runtime)
    with session_scope(runtime.engine) as session:
        case = get_case(session, number)
        session.refresh(case, with_for_update=True)
        notify = OutboxWriter(session, runtime.settings, runtime.renderer)
        change_severity(
            session, runtime.settings, case, target, notify, runtime.clock()
        )
        result = {
            "case": case.number,
            "severity": case.severity,
            "first_response_due": timestamp(case.first_response_due),
            "next_response_due": timestamp(case.next_response_due),
            "outbound": notify.ids,
        }
    runtime.outbound_queued(notify.ids)
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"case {result['case']} has severity {result['severity']}")
