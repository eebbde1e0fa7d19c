"""``gateway unmatched``: list the queue of held mail and act on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_options import ConfigOption, JsonOption
from gateway.inbound.process import Outcome
from gateway.runtime import Runtime
from gateway.unmatched import (
    assign,
    default_actor,
    discard,
    open_new_case,
    queued_mails,
    replay,
    show_mail,
)
from gateway.views import outcome_view

ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who acts, for the audit record (default: the OS user)."
    ),
]
IdArgument = Annotated[int, typer.Argument(help="Inbound mail id, from the list.")]


def make_unmatched_app(
    load: Callable[[Path | None], Runtime],
    deliver_inline: Callable[[Runtime], None],
    print_json: Callable[[Any], None],
) -> typer.Typer:
    """Build the sub-command; the callables come from the main command line."""
    app = typer.Typer(
        invoke_without_command=True,
        help="The queue of mail held for an admin: list it, show, assign, open, "
        "discard or replay a mail.",
    )

    def report(outcome: Outcome, as_json: bool) -> None:
        if as_json:
            print_json(outcome_view(outcome))
            return
        parts = [f"mail {outcome.inbound_id}: {outcome.state}"]
        if outcome.reason:
            parts.append(f"reason={outcome.reason}")
        if outcome.case_number:
            parts.append(f"case={outcome.case_number}")
        typer.echo(" ".join(parts))

    def act(
        config: Path | None,
        actor: str | None,
        as_json: bool,
        action: Callable[[Runtime, str], Outcome],
    ) -> None:
        runtime = load(config)
        deliver_inline(runtime)
        report(action(runtime, actor or default_actor()), as_json)

    @app.callback()
    def list_queue(
        ctx: typer.Context,
        limit: Annotated[
            int, typer.Option(help="Show at most this many, oldest first.")
        ] = 100,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """List the held mail: reason, sender, subject, received at, candidate case."""
        if ctx.invoked_subcommand is not None:
            return
        views = queued_mails(load(config), limit)
        if as_json:
            print_json(views)
            return
        for view in views:
            typer.echo(
                f"{view['id']:>6}  {view['reason']:<15} {view['received_at']}  "
                f"case={view['candidate_case'] or '-'}  {view['from']}  "
                f"{view['subject']}"
            )

    @app.command()
    def show(
        inbound_id: IdArgument, as_json: JsonOption = False, config: ConfigOption = None
    ) -> None:
        """Show one held mail with its text and the actions taken on it."""
        view = show_mail(load(config), inbound_id)
        if as_json:
            print_json(view)
            return
        for key in ("id", "state", "reason", "detail", "from", "subject"):
            typer.echo(f"{key}: {view[key]}")
        typer.echo(f"received_at: {view['received_at']}")
        typer.echo(f"candidate_case: {view['candidate_case'] or '-'}")
        for action in view["actions"]:
            typer.echo(
                f"action: {action['created_at']} {action['action']} by "
                f"{action['actor']} -> {action['result_state']} {action['reason']}"
            )
        typer.echo("")
        typer.echo(view["text"])

    @app.command("assign")
    def assign_command(
        inbound_id: IdArgument,
        case: Annotated[str, typer.Argument(help="Case number to post it to.")],
        actor: ActorOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Post a held mail as a comment on a case."""
        act(
            config,
            actor,
            as_json,
            lambda runtime, who: assign(runtime, inbound_id, case, who),
        )

    @app.command("open")
    def open_command(
        inbound_id: IdArgument,
        actor: ActorOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Open a new case from a held mail; the sender gets a confirmation."""
        act(
            config,
            actor,
            as_json,
            lambda runtime, who: open_new_case(runtime, inbound_id, who),
        )

    @app.command("discard")
    def discard_command(
        inbound_id: IdArgument,
        reason: Annotated[
            str, typer.Option("--reason", help="Why it is dropped (recorded).")
        ],
        actor: ActorOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Drop a held mail; it stays stored, as ignored with reason discarded."""
        discard(load(config), inbound_id, reason, actor or default_actor())
        typer.echo(f"mail {inbound_id}: discarded")

    @app.command("replay")
    def replay_command(
        inbound_id: IdArgument,
        actor: ActorOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Route a held mail again by the rules, e.g. after adding a contact."""
        act(
            config,
            actor,
            as_json,
            lambda runtime, who: replay(runtime, inbound_id, who),
        )

    return app
