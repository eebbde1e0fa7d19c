"""The lifecycle commands: due, tick, show, cases --overdue, surveys, comment."""

from __future__ import annotations

from tests.conftest import STAFF_DOMAIN, GatewayEnv, build_mail


def test_due_prints_business_time(gateway_env: GatewayEnv) -> None:
    result = gateway_env.json(
        "due",
        "--opened",
        "2026-12-23T10:00:00+01:00",
        "--severity",
        "Standard",
        "--json",
    )
    assert result == {"due": "2026-12-29T10:00:00+01:00"}
    text = gateway_env.run(
        "due", "--opened", "2027-05-27T10:00:00Z", "--severity", "low"
    )
    assert text.stdout.decode().strip().startswith("2027-06-")


def test_due_rejects_time_without_offset(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run(
        "due", "--opened", "2026-12-23T10:00", "--severity", "Standard", check=False
    )
    assert done.returncode == 65
    assert b"has no offset" in done.stderr


def test_tick_moves_case_and_show_lists_history(gateway_env: GatewayEnv) -> None:
    gateway_env.run("ingest", stdin=build_mail(subject="Backup job failed"))
    [case] = gateway_env.json("cases", "--json")
    number = case["number"]
    assert case["first_response_due"] is not None
    gateway_env.run(
        "comment", number, "--author", f"sven@{STAFF_DOMAIN}", "--text", "Fixed?"
    )
    shown = gateway_env.json("show", number, "--json")
    assert shown["status"] == "Waiting on Customer"
    assert shown["next_response_due"] is None
    assert shown["escalation_level"] == 0
    assert shown["previous_case"] is None

    far_future = "2030-01-07T10:00:00+01:00"
    moved = gateway_env.json("tick", "--now", far_future, "--json")
    assert moved["pending_closure"] == [number]
    again = gateway_env.json("tick", "--now", far_future, "--json")
    assert again["pending_closure"] == []
    shown = gateway_env.json("show", number, "--json")
    assert [entry["to"] for entry in shown["history"]] == [
        "Unassigned",
        "Waiting on Customer",
        "Pending Closure",
    ]
    last = shown["history"][-1]
    assert last["cause"] == "timer"
    assert last["at"] == far_future
    assert last["from"] == "Waiting on Customer"

    closed = gateway_env.json("tick", "--now", "2030-02-07T10:00:00+01:00", "--json")
    assert closed["closed"] == [number]
    [survey] = gateway_env.json("surveys", "--json")
    assert survey["case"] == number
    assert survey["rating"] is None
    assert survey["answered_at"] is None
    kinds = [row["kind"] for row in gateway_env.json("outbox", "--json")]
    assert kinds == ["confirmation", "comment_update", "pending_closure", "survey"]


def test_cases_overdue_lists_unanswered(gateway_env: GatewayEnv) -> None:
    # The mail is processed now, so its 16 business hours are not yet over.
    gateway_env.run("ingest", stdin=build_mail(subject="Report empty"))
    assert gateway_env.json("cases", "--overdue", "--json") == []
    [case] = gateway_env.json("cases", "--json")
    assert case["next_response_due"] == case["first_response_due"]


def test_tick_rejects_invalid_time(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run("tick", "--now", "next monday", check=False)
    assert done.returncode == 65
    assert b"not an ISO 8601 time" in done.stderr


def test_admin_status_close_sends_survey(gateway_env: GatewayEnv) -> None:
    gateway_env.run("ingest", stdin=build_mail(subject="Licence key expired"))
    [case] = gateway_env.json("cases", "--json")
    result = gateway_env.json("status", case["number"], "closed", "--json")
    assert result["status"] == "Closed"
    shown = gateway_env.json("show", case["number"], "--json")
    assert shown["history"][-1]["cause"] == "admin"
    kinds = [row["kind"] for row in gateway_env.json("outbox", "--json")]
    assert kinds == ["confirmation", "survey"]
    reopen = gateway_env.run("status", case["number"], "In Progress", check=False)
    assert reopen.returncode == 65
    assert b"cannot move from Closed to In Progress" in reopen.stderr


def test_closing_a_closed_case_sends_no_second_survey(
    gateway_env: GatewayEnv,
) -> None:
    gateway_env.run("ingest", stdin=build_mail(subject="Licence key expired"))
    [case] = gateway_env.json("cases", "--json")
    gateway_env.json("status", case["number"], "closed", "--json")

    again = gateway_env.json("status", case["number"], "closed", "--json")

    assert again["outbound"] == []
    kinds = [row["kind"] for row in gateway_env.json("outbox", "--json")]
    assert kinds == ["confirmation", "survey"]


def test_severity_command_sets_due_times(gateway_env: GatewayEnv) -> None:
    gateway_env.run("ingest", stdin=build_mail(subject="Shop offline"))
    [case] = gateway_env.json("cases", "--json")
    result = gateway_env.json("severity", case["number"], "low", "--json")
    assert result["severity"] == "Low"
    shown = gateway_env.json("show", case["number"], "--json")
    assert shown["first_response_due"] == result["first_response_due"]
    assert shown["first_response_due"] != case["first_response_due"]
    wrong = gateway_env.run("severity", case["number"], "high", check=False)
    assert wrong.returncode == 65
    assert b"'high' is invalid" in wrong.stderr


def test_admin_waiting_clears_due_time(gateway_env: GatewayEnv) -> None:
    gateway_env.run("ingest", stdin=build_mail(subject="Answered by phone"))
    [case] = gateway_env.json("cases", "--json")
    assert case["next_response_due"] is not None
    gateway_env.run("status", case["number"], "Waiting on Customer")
    shown = gateway_env.json("show", case["number"], "--json")
    assert shown["status"] == "Waiting on Customer"
    # Staff owe no answer on a case that waits for the customer.
    assert shown["next_response_due"] is None
    assert shown["first_response_due"] == case["first_response_due"]
