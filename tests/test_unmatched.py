"""The unmatched queue and machine mail through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from gateway.config import load_settings
from gateway.models import UnmatchedAction
from gateway.runtime import Runtime
from tests.conftest import GatewayEnv, build_mail, make_env

CUSTOMER = "Erika <erika@kunde.example.org>"
STRANGER = "Mallory <mallory@elsewhere.example.net>"


@pytest.fixture
def env(tmp_path: Path) -> GatewayEnv:
    return make_env(tmp_path / "gw")


def ingest(env: GatewayEnv, raw: bytes) -> dict[str, Any]:
    [outcome] = env.json_lines("ingest", "--wait", "--json", stdin=raw)
    return outcome


def open_case(env: GatewayEnv) -> dict[str, Any]:
    outcome = ingest(env, build_mail(sender=CUSTOMER))
    return dict(env.json("show", outcome["case"], "--json"))


def hold_stranger_mail(env: GatewayEnv, token: str) -> int:
    outcome = ingest(
        env,
        build_mail(sender=STRANGER, subject=f"Re: {token}", body="Bitte schliessen.\n"),
    )
    assert outcome["state"] == "unmatched"
    assert outcome["reason"] == "unknown_sender"
    return int(outcome["inbound_id"])


def audit(env: GatewayEnv) -> list[UnmatchedAction]:
    runtime = Runtime(load_settings(env.config))
    with Session(runtime.engine) as session:
        rows = session.exec(select(UnmatchedAction).order_by(col(UnmatchedAction.id)))
        return list(rows.all())


def test_list_shows_reason_sender_and_candidate(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    [entry] = env.json("unmatched", "--json")
    assert entry["id"] == held
    assert entry["reason"] == "unknown_sender"
    assert entry["from"] == "mallory@elsewhere.example.net"
    assert entry["subject"] == f"Re: {case['token']}"
    assert entry["candidate_case"] == case["number"]
    assert entry["received_at"]
    text = env.run("unmatched").stdout.decode()
    assert "unknown_sender" in text
    assert "mallory@elsewhere.example.net" in text


def test_show_has_text_and_actions(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    shown = env.json("unmatched", "show", str(held), "--json")
    assert shown["text"].strip() == "Bitte schliessen."
    assert shown["actions"] == []
    assert (
        "Bitte schliessen." in env.run("unmatched", "show", str(held)).stdout.decode()
    )


def test_assign_posts_comment_and_records_actor(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    result = json.loads(
        env.run(
            "unmatched",
            "assign",
            str(held),
            case["number"],
            "--actor",
            "anna",
            "--json",
        ).stdout
    )
    assert result["state"] == "processed"
    assert result["case"] == case["number"]
    assert result["matched_by"] == "assigned"
    comments = env.json("show", case["number"], "--json")["comments"]
    assert comments[-1]["author"] == "mallory@elsewhere.example.net"
    assert env.json("unmatched", "--json") == []
    [entry] = audit(env)
    assert entry.action == "assign"
    assert entry.actor == "anna"
    assert entry.case_id == int(case["number"])
    assert entry.result_state == "processed"
    assert entry.created_at is not None
    shown = env.json("unmatched", "show", str(held), "--json")
    assert [a["action"] for a in shown["actions"]] == ["assign"]


def test_open_makes_new_case_with_confirmation(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    result = json.loads(
        env.run("unmatched", "open", str(held), "--actor", "ben", "--json").stdout
    )
    assert result["state"] == "processed"
    assert result["matched_by"] == "new"
    assert result["case"] != case["number"]
    kinds = [m["kind"] for m in env.json("outbox", "--json")]
    assert kinds == ["confirmation", "confirmation"]
    [entry] = audit(env)
    assert (entry.action, entry.actor) == ("open", "ben")


def test_discard_needs_reason_and_records_it(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    missing = env.run("unmatched", "discard", str(held), check=False)
    assert missing.returncode != 0
    env.run("unmatched", "discard", str(held), "--reason", "Spam", "--actor", "cem")
    assert env.json("unmatched", "--json") == []
    [row] = [r for r in env.json("inbound", "--json") if r["id"] == held]
    assert row["state"] == "ignored"
    assert row["reason"] == "discarded"
    [entry] = audit(env)
    assert (entry.action, entry.actor, entry.reason) == ("discard", "cem", "Spam")


def test_replay_routes_again_after_config_change(env: GatewayEnv) -> None:
    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    again = json.loads(env.run("unmatched", "replay", str(held), "--json").stdout)
    assert again["state"] == "unmatched"
    assert again["reason"] == "unknown_sender"
    # Making the sender's domain a staff domain admits it on the next replay.
    config = env.config.read_text().replace(
        'staff_domains = ["', 'staff_domains = ["elsewhere.example.net", "'
    )
    env.config.write_text(config)
    result = json.loads(env.run("unmatched", "replay", str(held), "--json").stdout)
    assert result["state"] == "processed"
    assert result["case"] == case["number"]
    actions = [(a.action, a.result_state) for a in audit(env)]
    assert actions == [("replay", "unmatched"), ("replay", "processed")]


def test_actor_defaults_to_os_user(env: GatewayEnv) -> None:
    import getpass

    case = open_case(env)
    held = hold_stranger_mail(env, case["token"])
    env.run("unmatched", "discard", str(held), "--reason", "Doppelt")
    [entry] = audit(env)
    assert entry.actor == getpass.getuser()


def test_action_on_mail_outside_queue_fails(env: GatewayEnv) -> None:
    outcome = ingest(env, build_mail(sender=CUSTOMER))
    done = env.run("unmatched", "replay", str(outcome["inbound_id"]), check=False)
    assert done.returncode == 65
    assert b"not in the unmatched queue" in done.stderr
    assert audit(env) == []


def test_duplicate_of_held_mail_stays_in_queue(env: GatewayEnv) -> None:
    case = open_case(env)
    raw = build_mail(sender=STRANGER, subject=f"Re: {case['token']}", body="Hallo.\n")
    first = ingest(env, raw)
    again = ingest(env, raw)
    assert again["state"] == "ignored"
    assert again["reason"] == "duplicate"
    assert [e["id"] for e in env.json("unmatched", "--json")] == [first["inbound_id"]]


def test_ingest_json_reports_bounce_and_note(env: GatewayEnv) -> None:
    from tests.inbound.bounce_fixtures import dsn

    case = open_case(env)
    [confirmation] = env.json("outbox", "--json")
    report = dsn(
        "erika@kunde.example.org",
        "5.2.2",
        returned_message_id=confirmation["message_id"],
    )
    [outcome] = env.json_lines(
        "ingest", "--wait", "--json", "--sender", "", stdin=report
    )
    assert outcome["state"] == "ignored"
    assert outcome["reason"] == "bounce"
    bounce = outcome["bounce"]
    assert bounce["recipients"] == ["erika@kunde.example.org"]
    assert bounce["status"] == "5.2.2"
    assert bounce["permanent"] is True
    assert bounce["case"] == case["number"]
    assert bounce["details"][0]["action"] == "failed"
    notes = [
        c
        for c in env.json("show", case["number"], "--json")["comments"]
        if c["author_kind"] == "system"
    ]
    assert len(notes) == 1
    assert "5.2.2" in notes[0]["text"]
