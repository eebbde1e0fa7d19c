"""``gateway serve`` runs the lifecycle timers itself and sends their mail once."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import STAFF_DOMAIN, ServeProcess, Sink, build_mail, make_env
from tests.test_end_to_end import send

# Timers of 0.00002 days (1.7 s), so the test observes serve's own passes.
FAST_TIMERS = """
[lifecycle]
pending_after_days = 0.00002
close_after_days = 0.00002
tick_seconds = 0.2
"""


def test_serve_runs_timers(tmp_path: Path, sink: Sink) -> None:
    env = make_env(tmp_path / "gw", relay_port=sink.port)
    env.config.write_text(env.config.read_text() + FAST_TIMERS)
    server = ServeProcess(env)
    try:
        send(env, build_mail(subject="Kassensystem startet nicht"))
        sink.wait_for(1)
        [case] = env.json("cases", "--json")
        env.run(
            "comment",
            case["number"],
            "--author",
            f"sven@{STAFF_DOMAIN}",
            "--text",
            "Bitte einmal neu starten.",
        )
        received = sink.wait_for(4)
    finally:
        server.stop()
    subjects = [str(item.message["Subject"]) for item in received]
    assert "Pending closure:" in subjects[2]
    assert "Closed:" in subjects[3]
    # Passes every 0.2 s until the stop sent nothing twice.
    assert len(sink.received) == 4
    kinds = [row["kind"] for row in env.json("outbox", "--json")]
    assert kinds == ["confirmation", "comment_update", "pending_closure", "survey"]
    shown = env.json("show", case["number"], "--json")
    assert shown["status"] == "Closed"
    assert [entry["cause"] for entry in shown["history"]][-2:] == ["timer", "timer"]
