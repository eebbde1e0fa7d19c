"""Timer passes at the same time, in threads and processes, send each mail once."""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

from gateway.inbound.process import process_inbound
from gateway.inbound.spool import IncomingMail, store_mails
from gateway.lifecycle.timers import TickResult, run_tick
from gateway.runtime import Runtime
from tests.conftest import GATEWAY, build_mail
from tests.lifecycle_helpers import (
    CUSTOMER,
    STAFF,
    Clock,
    ingest,
    load_case,
    make_runtime,
    outbox,
    reply_to,
)

START = datetime.fromisoformat("2026-12-07T09:30:00+01:00")
CASES = 6


def open_answered_cases(runtime: Runtime, clock: Clock) -> list[str]:
    """Open CASES cases and answer each from staff at START."""
    numbers = []
    for index in range(CASES):
        clock.now = START
        opened = ingest(
            runtime, build_mail(sender=CUSTOMER, subject=f"Terminal {index} frozen")
        )
        assert opened.case_number is not None
        numbers.append(opened.case_number)
        confirmation = [
            row
            for row in outbox(runtime, "confirmation")
            if row.case_id == int(opened.case_number)
        ][0]
        ingest(runtime, reply_to(confirmation, STAFF, "Please press Ctrl+Alt+Del."))
    return numbers


def concurrent_ticks(runtime: Runtime, now: datetime) -> list[TickResult]:
    barrier = threading.Barrier(2)
    results: list[TickResult] = []
    errors: list[BaseException] = []

    def one_pass() -> None:
        try:
            barrier.wait()
            results.append(run_tick(runtime, now))
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def check_two_passes_send_once(runtime: Runtime, clock: Clock) -> None:
    numbers = open_answered_cases(runtime, clock)
    pending_at = START + timedelta(days=7, minutes=1)
    results = concurrent_ticks(runtime, pending_at)
    assert sorted(n for r in results for n in r.pending) == numbers
    assert len(outbox(runtime, "pending_closure")) == CASES

    closed_at = pending_at + timedelta(days=14)
    results = concurrent_ticks(runtime, closed_at)
    assert sorted(n for r in results for n in r.closed) == numbers
    assert len(outbox(runtime, "survey")) == CASES
    for number in numbers:
        assert load_case(runtime, number).status == "Closed"


def test_two_threads_sqlite(tmp_path: Path) -> None:
    clock = Clock(START)
    check_two_passes_send_once(make_runtime(tmp_path / "gw", clock), clock)


def test_two_threads_postgresql(tmp_path: Path, postgres_url: str) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock, store_url=postgres_url)
    check_two_passes_send_once(runtime, clock)
    runtime.engine.dispose()


def test_two_processes_and_a_restart(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock)
    numbers = open_answered_cases(runtime, clock)
    config = str(tmp_path / "gw" / "config.toml")
    moment = (START + timedelta(days=7, minutes=1)).isoformat()
    command = [GATEWAY, "tick", "--now", moment, "--json", "--config", config]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
    # A third pass later, as after a restart, finds nothing left to do.
    again = subprocess.run(command, capture_output=True, timeout=120, check=True)
    assert b'"pending_closure": []' in again.stdout
    assert len(outbox(runtime, "pending_closure")) == CASES
    for number in numbers:
        assert load_case(runtime, number).status == "Pending Closure"


def test_unprocessed_reply_holds_the_timers(tmp_path: Path) -> None:
    clock = Clock(START)
    runtime = make_runtime(tmp_path / "gw", clock)
    opened = ingest(runtime, build_mail(sender=CUSTOMER, subject="Kasse hängt"))
    assert opened.case_number is not None
    [confirmation] = outbox(runtime, "confirmation")
    ingest(runtime, reply_to(confirmation, STAFF, "Bitte neu starten."))
    [update] = outbox(runtime, "comment_update")
    # The customer's reply is stored, but no worker has processed it yet.
    [reply_id] = store_mails(
        runtime.engine,
        runtime.settings.store.data_dir,
        [IncomingMail(reply_to(update, CUSTOMER, "Geht wieder nicht."), "test", {})],
    )

    held = run_tick(runtime, START + timedelta(days=8))

    assert held.waiting_mail == 1
    assert held.pending == []
    assert load_case(runtime, opened.case_number).status == "Waiting on Customer"
    process_inbound(runtime, reply_id)
    assert run_tick(runtime, START + timedelta(days=8)).pending == []
    assert load_case(runtime, opened.case_number).status == "In Progress"
