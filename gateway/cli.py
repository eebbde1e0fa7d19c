"""The ``gateway`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import dramatiq.errors
import typer
from redis.exceptions import RedisError
from sqlmodel import Session, col, select

from gateway.cases import NewComment, add_comment, get_case
from gateway.cli_options import ConfigOption, JsonOption
from gateway.cli_unmatched import make_unmatched_app
from gateway.db import read_only, session_scope
from gateway.errors import (
    ConfigError,
    GatewayError,
    InputUnreadable,
    InvalidInput,
    SpoolWriteFailed,
    StoreError,
)
from gateway.importer import import_cases, read_import_file
from gateway.inbound.extract import extract_new_text, extract_new_text_from_html
from gateway.inbound.parse import Address
from gateway.inbound.process import Outcome, process_inbound
from gateway.inbound.spool import IncomingMail, store_mails
from gateway.lifecycle.events import comment_added
from gateway.lifecycle.reports import is_overdue
from gateway.logs import setup_logging
from gateway.models import (
    AuthorKind,
    Case,
    InboundMessage,
    InboundState,
    OutboundMessage,
    case_number,
)
from gateway.outbound.outbox import OutboxWriter
from gateway.runtime import Runtime, load_runtime
from gateway.views import case_view, inbound_view, outbound_view, outcome_view

log = logging.getLogger(__name__)

# sysexits.h codes that MTAs understand: Postfix retries a pipe delivery that
# exits with EX_TEMPFAIL and bounces on the others.
EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Case mail gateway: turns support mail into cases and case changes into mail.",
)


# Exit code per error kind; the first class that matches wins.
EXIT_CODES: tuple[tuple[type[GatewayError], int], ...] = (
    (StoreError, EX_TEMPFAIL),
    (ConfigError, EX_CONFIG),
    (InputUnreadable, EX_NOINPUT),
    (InvalidInput, EX_DATAERR),
    (GatewayError, EX_SOFTWARE),
)


def main() -> None:
    try:
        app()
    except GatewayError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(next(code for kind, code in EXIT_CODES if isinstance(exc, kind)))


def _runtime(config: Path | None) -> Runtime:
    setup_logging("WARNING")
    return load_runtime(config)


def _deliver_inline(runtime: Runtime) -> None:
    """Send queued mail from this command itself (embedded) or hand it to the broker."""
    if runtime.settings.embedded:
        from gateway.outbound.delivery import deliver_outbound

        def deliver_now(ids: list[int]) -> None:
            for outbound_id in ids:
                deliver_outbound(runtime, outbound_id)

        runtime.outbound_queued = deliver_now
    else:
        from gateway.jobs import configure

        configure(runtime)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


app.add_typer(
    make_unmatched_app(_runtime, _deliver_inline, _print_json), name="unmatched"
)


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the SMTP listener, the in-process worker and the sweep until stopped."""
    from gateway.serve import serve as run_serve

    setup_logging()
    runtime = load_runtime(config)
    asyncio.run(run_serve(runtime))


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create the store, or bring its schema up to date."""
    runtime = _runtime(config)
    typer.echo(
        f"store ready: {runtime.engine.url.render_as_string(hide_password=True)}"
    )


@app.command()
def ingest(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Raw mail files; '-' or none: stdin.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Process each mail before returning.")
    ] = False,
    as_json: JsonOption = False,
    source: Annotated[
        str, typer.Option(help="Transport recorded with the mail.")
    ] = "pipe",
    sender: Annotated[
        str | None,
        typer.Option(
            help="Envelope sender from the MTA (Postfix: ${sender}); '' for <>."
        ),
    ] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(help="Envelope recipient (repeatable).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Store mails, then process them; exit 0 only once every mail is stored.

    Exit 75 (temporary failure) when storing failed, so an MTA retries, 66
    when an input could not be read or was empty, and 67 when no --recipient
    is a support address.
    """
    runtime = _runtime(config)
    if recipient and not any(
        runtime.settings.is_support_address(address) for address in recipient
    ):
        # As the SMTP listener's 550 at RCPT: nothing is stored, the MTA bounces.
        typer.echo(
            f"error: no recipient is a support address ({', '.join(recipient)}); "
            "add it to [desk] support_addresses or fix the MTA's transport map",
            err=True,
        )
        sys.exit(EX_NOUSER)
    mails, unreadable = _read_mails(
        files or [Path("-")], source, sender, recipient or []
    )
    try:
        ids = store_mails(
            runtime.engine, runtime.settings.store.data_dir, [m for _, m in mails]
        )
    except SpoolWriteFailed as exc:
        typer.echo(f"error: {exc}; nothing was stored, deliver again later", err=True)
        sys.exit(EX_TEMPFAIL)
    process_now = wait or runtime.settings.embedded
    _deliver_inline(runtime)
    enqueue = None
    if not process_now:
        from gateway.jobs import enqueue_inbound

        enqueue = enqueue_inbound
    for (name, _mail), inbound_id in zip(mails, ids, strict=True):
        if enqueue is not None:
            _hand_to_broker(enqueue, inbound_id)
            outcome = Outcome(inbound_id, InboundState.RECEIVED.value)
        else:
            outcome = _process_stored(runtime, inbound_id)
        if as_json:
            _print_json(outcome_view(outcome))
        else:
            typer.echo(_describe_outcome(name, outcome))
    if unreadable:
        sys.exit(EX_NOINPUT)


def _process_stored(runtime: Runtime, inbound_id: int) -> Outcome:
    """Process a stored mail; if even its failure cannot be recorded, leave it.

    The mail is stored already, so the command must still exit 0: the sweep
    of gateway serve processes it later.
    """
    try:
        return process_inbound(runtime, inbound_id)
    except Exception as exc:
        typer.echo(
            f"warning: mail {inbound_id} is stored, but processing it failed ({exc}); "
            "the sweep of gateway serve processes it later",
            err=True,
        )
        return Outcome(
            inbound_id, InboundState.RECEIVED.value, reason="processing deferred"
        )


def _hand_to_broker(enqueue: Callable[[int], None], inbound_id: int) -> None:
    """Queue a stored mail; if the broker is down, leave it to the sweep of serve."""
    try:
        enqueue(inbound_id)
    except (OSError, RedisError, dramatiq.errors.BrokerError) as exc:
        typer.echo(
            f"warning: mail {inbound_id} is stored, but queueing it failed ({exc}); "
            "the sweep of gateway serve queues it later",
            err=True,
        )


def _read_mails(
    files: list[Path], source: str, sender: str | None, recipients: list[str]
) -> tuple[list[tuple[str, IncomingMail]], list[str]]:
    envelope: dict[str, Any] = {"rcpt_tos": recipients}
    if sender is not None:
        envelope["mail_from"] = sender
    mails: list[tuple[str, IncomingMail]] = []
    unreadable: list[str] = []
    for path in files:
        name = str(path)
        try:
            raw = sys.stdin.buffer.read() if name == "-" else path.read_bytes()
        except OSError as exc:
            typer.echo(f"error: cannot read {name}: {exc.strerror}", err=True)
            unreadable.append(name)
            continue
        if not raw.strip():
            typer.echo(f"error: {name} is empty; nothing was stored", err=True)
            unreadable.append(name)
            continue
        mails.append(
            (name, IncomingMail(raw=raw, source=source, envelope=dict(envelope)))
        )
    return mails, unreadable


def _describe_outcome(name: str, outcome: Outcome) -> str:
    parts = [f"{name}: {outcome.state}"]
    if outcome.reason:
        parts.append(f"reason={outcome.reason}")
    if outcome.case_number:
        parts.append(f"case={outcome.case_number}")
    if outcome.matched_by:
        parts.append(f"matched_by={outcome.matched_by}")
    return " ".join(parts)


@app.command("imap-poll")
def imap_poll(
    once: Annotated[
        bool, typer.Option("--once", help="Read each mailbox once, then exit (cron).")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Read the IMAP mailboxes of the config: store new mail, then flag and move it.

    Without --once, poll (IDLE where offered) until SIGTERM or SIGINT. With
    --once, exit 75 (temporary failure) when a mailbox could not be read.
    """
    from gateway.inbound.imap import poll_all_once, poll_until_stopped

    runtime = _runtime(config)
    if not runtime.settings.imap:
        raise ConfigError(
            "no [[imap]] table in the config: add one per mailbox (see config.toml)"
        )
    _deliver_inline(runtime)

    def hand_on(inbound_id: int) -> None:
        if runtime.settings.embedded:
            _process_stored(runtime, inbound_id)
        else:
            from gateway.jobs import enqueue_inbound

            _hand_to_broker(enqueue_inbound, inbound_id)

    if not once:
        setup_logging()
        asyncio.run(poll_until_stopped(runtime, hand_on))
        return
    results = asyncio.run(poll_all_once(runtime, hand_on))
    for label, result in results.items():
        if as_json:
            failed = isinstance(result, str)
            _print_json(
                {
                    "mailbox": label,
                    "stored": 0 if failed else result,
                    "error": result if failed else None,
                }
            )
        else:
            typer.echo(
                f"{label}: {result if isinstance(result, str) else f'{result} stored'}"
            )
    if any(isinstance(result, str) for result in results.values()):
        sys.exit(EX_TEMPFAIL)


@app.command()
def cases(
    as_json: JsonOption = False,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only cases whose response is overdue.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List the cases, newest last."""
    runtime = _runtime(config)
    with Session(runtime.engine) as session:
        rows = session.exec(select(Case).order_by(col(Case.id))).all()
        if overdue:
            now = runtime.clock()
            rows = [case for case in rows if is_overdue(case, now)]
        views = [
            case_view(session, runtime.settings, case, comments=False) for case in rows
        ]
    if as_json:
        _print_json(views)
        return
    for view in views:
        typer.echo(
            f"{view['number']}  {view['status']:<20}  "
            f"{view['contact']['email']:<30}  {view['subject']}"
        )


@app.command()
def show(
    number: Annotated[
        str, typer.Argument(help="Case number (leading zeros optional).")
    ],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one case with its comments."""
    runtime = _runtime(config)
    with Session(runtime.engine) as session:
        view = case_view(
            session, runtime.settings, get_case(session, number), comments=True
        )
    if as_json:
        _print_json(view)
        return
    typer.echo(f"Case {view['number']}: {view['subject']}")
    for key in (
        "status",
        "severity",
        "priority",
        "type",
        "token",
        "opened_at",
        "escalation_level",
        "previous_case",
        "first_response_due",
        "next_response_due",
    ):
        typer.echo(f"  {key}: {view[key]}")
    typer.echo(f"  contact: {view['contact']['name']} <{view['contact']['email']}>")
    for comment in view["comments"]:
        typer.echo(
            f"\n--- {comment['created_at']} {comment['author_kind']} "
            f"{comment['author']}"
        )
        typer.echo(comment["text"])
        for attachment in comment["attachments"]:
            typer.echo(
                f"  [attachment] {attachment['filename']} ({attachment['size']} bytes)"
            )


@app.command()
def outbox(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List the mails in the outbox with their delivery state."""
    runtime = _runtime(config)
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(OutboundMessage).order_by(col(OutboundMessage.id))
        ).all()
        views = [outbound_view(row, case_number(row.case_id)) for row in rows]
    if as_json:
        _print_json(views)
        return
    for view in views:
        typer.echo(
            f"{view['id']:>6}  {view['status']:<7} {view['kind']:<16} "
            f"case={view['case']} "
            f"to={','.join(view['to'])}  {view['subject']}"
        )


@app.command()
def inbound(
    state: Annotated[
        str | None,
        typer.Option(
            help="Only this state: received, processed, ignored, unmatched, failed."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Show at most this many, newest first.")
    ] = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List received mail with its state and reason, newest first."""
    states = [s.value for s in InboundState]
    if state is not None and state not in states:
        raise InvalidInput(
            f"--state {state!r} is invalid; use one of {', '.join(states)}"
        )
    runtime = _runtime(config)
    with Session(read_only(runtime.engine)) as session:
        query = (
            select(InboundMessage).order_by(col(InboundMessage.id).desc()).limit(limit)
        )
        if state is not None:
            query = query.where(InboundMessage.state == state)
        rows = session.exec(query).all()
        views = [inbound_view(row, case_number(row.case_id)) for row in rows]
    if as_json:
        _print_json(views)
        return
    for view in views:
        typer.echo(
            f"{view['id']:>6}  {view['state']:<9} {view['reason'] or '-':<12} "
            f"case={view['case'] or '-'}  {view['from']}  {view['subject']}"
        )


@app.command()
def comment(
    number: Annotated[str, typer.Argument(help="Case number.")],
    author: Annotated[str, typer.Option(help="The staff member's mail address.")],
    text: Annotated[str | None, typer.Option(help="The comment text.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="Read the comment text from this file.")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a staff comment to a case and notify the customer."""
    if (text is None) == (file is None):
        raise InvalidInput("give exactly one of --text and --file")
    body = text if text is not None else _read_text(file)
    if not body.strip():
        raise InvalidInput("the comment text is empty")
    if "@" not in author:
        raise InvalidInput(f"--author {author!r} is not a mail address")
    runtime = _runtime(config)
    if not runtime.settings.is_staff_address(author):
        domains = ", ".join(runtime.settings.desk.staff_domains) or "none configured"
        raise InvalidInput(
            f"--author {author} is not in [desk] staff_domains ({domains}); "
            "use a staff address or add its domain there"
        )
    _deliver_inline(runtime)
    with session_scope(runtime.engine) as session:
        case = get_case(session, number)
        new = NewComment(
            author=Address(author.strip().lower(), ""),
            kind=AuthorKind.STAFF,
            new_text=body.strip(),
            full_text=body,
        )
        now = runtime.clock()
        added = add_comment(session, runtime.settings, case, new, now=now)
        notify = OutboxWriter(session, runtime.settings, runtime.renderer)
        comment_added(session, runtime.settings, case, added, notify, now)
        result = {"case": case.number, "comment": added.id, "outbound": notify.ids}
    runtime.outbound_queued(notify.ids)
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"comment {result['comment']} added to case {result['case']}")


def _read_text(path: Path | None) -> str:
    assert path is not None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputUnreadable(f"cannot read --file {path}: {exc}") from exc


@app.command()
def extract(
    files: Annotated[
        list[Path], typer.Argument(help="Body files (no headers); '-' is stdin.")
    ],
    html: Annotated[
        bool, typer.Option("--html", help="The files are HTML bodies.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Print the new text of reply bodies, as ingest stores it."""
    del config  # accepted for a uniform command line; extraction needs no settings
    failed = False
    for path in files:
        try:
            data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            body = decode_body_file(data)
        except OSError as exc:
            typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
            failed = True
            continue
        text = extract_new_text_from_html(body) if html else extract_new_text(body)
        if as_json:
            _print_json({"file": str(path), "text": text})
        else:
            typer.echo(text)
    if failed:
        sys.exit(EX_NOINPUT)


def decode_body_file(data: bytes) -> str:
    """Decode a body file: UTF-8 when valid, else Windows-1252 (maps every byte)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help='JSON file: {"cases": [...]}.')],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Import cases from an earlier system, with their tokens and sent Message-IDs."""
    runtime = _runtime(config)
    items = read_import_file(file)
    with session_scope(runtime.engine) as session:
        created = import_cases(session, runtime.settings, items)
        views = [
            case_view(session, runtime.settings, case, comments=False)
            for case in created
        ]
    if as_json:
        _print_json(views)
    else:
        for view in views:
            typer.echo(f"imported case {view['number']} token={view['token']}")


# Registers the lifecycle commands (tick, due, surveys, status, severity).
from gateway import cli_lifecycle  # noqa: E402, F401
