"""Benchmarks of the gateway, each against a baseline measured in the same run.

1. SMTP acceptance: mails/s that 4 concurrent clients get acknowledged by
   ``gateway serve`` (stored durably, then 250) against a no-op aiosmtpd
   handler that replies 250 at once, both in their own process.
2. Processing: mails/s for parse, classify, route, store and outbox over
   1,000 stored mails, in one process and in two.

Run with ``make bench``; results go to stdout and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATEWAY = str(Path(sys.executable).parent / "gateway")
SUPPORT = "help@desk.example.com"
CLIENTS = 4
MAIL_SIZE = 5 * 1024


def make_mail(index: int, size: int = MAIL_SIZE) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Kunde {index} <kunde{index}@kunde{index % 50}.example.org>"
    mail["To"] = SUPPORT
    mail["Subject"] = f"Bestellung {index} hängt im Status 'offen'"
    mail["Date"] = "Thu, 03 Dec 2026 10:15:00 +0100"
    mail["Message-ID"] = f"<bench-{index}-{time.time_ns()}@kunde.example.org>"
    line = "Die Bestellung lässt sich nicht freigeben, der Fehler erscheint erneut.\n"
    body = "Guten Tag,\n\n" + line * (size // len(line)) + "\nGrüße\nKunde\n"
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP_POLICY)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _client(port: int, seconds: float, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import smtplib

    mails = [make_mail(i) for i in range(200)]
    sent = 0
    deadline = time.monotonic() + seconds
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        while time.monotonic() < deadline:
            client.sendmail(
                "kunde@kunde.example.org", [SUPPORT], mails[sent % len(mails)]
            )
            sent += 1
    result.put(sent)


def measure_acceptance(port: int, seconds: float) -> float:
    """Return mails/s acknowledged for CLIENTS concurrent persistent sessions."""
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    clients = [
        multiprocessing.Process(target=_client, args=(port, seconds, results))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    total = sum(results.get(timeout=seconds + 60) for _ in clients)
    for client in clients:
        client.join()
    return total / seconds


NOOP_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Noop:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Noop(), data_size_limit=26214400), "127.0.0.1", int(sys.argv[1])
    )
    await asyncio.Event().wait()
asyncio.run(main())
"""


def write_config(folder: Path, port: int, threads: int, store_url: str = "") -> Path:
    store_url = store_url or f"sqlite:///{folder}/store/gateway.db"
    config = folder / "config.toml"
    config.write_text(
        f"""
[desk]
support_addresses = ["{SUPPORT}"]
message_id_domain = "mail.desk.example.com"
[store]
url = "{store_url}"
data_dir = "{folder}/store"
[smtp]
port = {port}
[worker]
threads = {threads}
[routing]
# One client sends every mail of a run, which is no loop here.
rate_limit_count = 1000000000
"""
    )
    return config


def bench_acceptance(seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}
    port = free_port()
    noop = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)])
    try:
        wait_listening(port, noop)
        results["noop_mails_per_s"] = measure_acceptance(port, seconds)
    finally:
        noop.terminate()
        noop.wait()
    for label, threads in (
        ("gateway_ingress_mails_per_s", 0),
        ("gateway_with_worker_mails_per_s", 2),
    ):
        with tempfile.TemporaryDirectory(prefix="gw-bench-") as folder:
            port = free_port()
            config = write_config(Path(folder), port, threads)
            subprocess.run(
                [GATEWAY, "migrate", "--config", str(config)],
                check=True,
                capture_output=True,
            )
            env = {**os.environ, "GATEWAY_LOG_LEVEL": "WARNING"}
            server = subprocess.Popen(
                [GATEWAY, "serve", "--config", str(config)], env=env
            )
            try:
                wait_listening(port, server)
                results[label] = measure_acceptance(port, seconds)
            finally:
                server.terminate()
                server.wait()
    results["ingress_ratio"] = (
        results["gateway_ingress_mails_per_s"] / results["noop_mails_per_s"]
    )
    results["with_worker_ratio"] = (
        results["gateway_with_worker_mails_per_s"] / results["noop_mails_per_s"]
    )
    return results


def _process_share(config: str, ids: list[int], result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from gateway.inbound.process import process_inbound
    from gateway.runtime import load_runtime

    runtime = load_runtime(Path(config))
    started = time.perf_counter()
    states = [process_inbound(runtime, inbound_id).state for inbound_id in ids]
    result.put((time.perf_counter() - started, states.count("processed")))


def bench_processing(
    count: int, processes: int, store_url: str = ""
) -> dict[str, float]:
    """Store ``count`` mails, process them in ``processes`` processes; return rates."""
    from gateway.inbound.spool import IncomingMail, store_mails
    from gateway.runtime import load_runtime

    with tempfile.TemporaryDirectory(prefix="gw-bench-") as folder:
        config = write_config(Path(folder), 0, 0, store_url)
        runtime = load_runtime(config)
        mails = [IncomingMail(make_mail(i), "bench", {}) for i in range(count)]
        ids = store_mails(runtime.engine, runtime.settings.store.data_dir, mails)
        runtime.engine.dispose()
        results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        workers = [
            multiprocessing.Process(
                target=_process_share,
                args=(str(config), ids[share::processes], results),
            )
            for share in range(processes)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        shares = [results.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - started
        processed = sum(done for _, done in shares)
        if processed != count:
            raise RuntimeError(f"only {processed} of {count} mails were processed")
        return {
            "mails": count,
            "processes": processes,
            "wall_seconds": wall,
            "mails_per_s": count / wall,
            "mails_per_s_excluding_startup": count / max(s for s, _ in shares),
        }


def parsing_samples() -> list[bytes]:
    """Return mails of the usual shapes: plain, text and HTML, HTML only, attachment."""
    samples = []
    for index in range(50):
        plain = EmailMessage()
        plain["From"] = (
            f"=?utf-8?q?J=C3=BCrgen_M=C3=BCller_{index}?= <j{index}@kunde.example>"
        )
        plain["To"] = SUPPORT
        plain["Subject"] = (
            f"Re: [Case 0000{index:04d}] Fehler beim Buchen ref_x_y{index}:ref"
        )
        plain["Message-ID"] = f"<p{index}@kunde.example>"
        plain["Date"] = "Thu, 03 Dec 2026 10:15:00 +0100"
        reply = "Danke, das hat geholfen.\n\nGrüße\nJürgen\n\n"
        quote = "".join(f"> Zeile {n} der vorigen Nachricht\n" for n in range(40))
        plain.set_content(f"{reply}Am 03.12.2026 um 10:15 schrieb Support:\n{quote}")
        samples.append(plain.as_bytes(policy=SMTP_POLICY))
        alternative = EmailMessage()
        for name in ("From", "To", "Subject", "Date"):
            alternative[name] = plain[name]
        alternative["Message-ID"] = f"<a{index}@kunde.example>"
        alternative.set_content(reply + quote)
        alternative.add_alternative(
            "<div>Danke, das hat geholfen.</div><div class=gmail_quote><blockquote>"
            + "<p>alter Text</p>" * 40
            + "</blockquote></div>",
            subtype="html",
        )
        samples.append(alternative.as_bytes(policy=SMTP_POLICY))
        attached = EmailMessage()
        for name in ("From", "To", "Subject", "Date"):
            attached[name] = plain[name]
        attached["Message-ID"] = f"<f{index}@kunde.example>"
        attached.set_content("Anbei das Protokoll.\n")
        attached.add_attachment(
            b"log line\n" * 300,
            maintype="text",
            subtype="plain",
            filename="protokoll.txt",
        )
        samples.append(attached.as_bytes(policy=SMTP_POLICY))
    return samples


def bench_parsing(seconds: float) -> dict[str, float]:
    """Return messages/s for the bare standard parse and for parse plus extraction."""
    import email
    import email.policy

    from gateway.inbound.extract import extract_reply
    from gateway.inbound.parse import parse_message

    samples = parsing_samples()

    def rate(function: object) -> float:
        done = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for raw in samples:
                function(raw)  # type: ignore[operator]
            done += len(samples)
        return done / seconds

    bare = rate(lambda raw: email.message_from_bytes(raw, policy=email.policy.default))
    ours = rate(lambda raw: extract_reply(parse_message(raw)))
    return {
        "bare_policy_default_per_s": bare,
        "parse_and_extract_per_s": ours,
        "cost_ratio": bare / ours,
    }


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server of ``server_url``; drop it afterwards."""
    import psycopg

    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"gateway_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_postgres(mails: int, server_url: str) -> dict[str, dict[str, float]]:
    """Run the processing benchmark on scratch PostgreSQL databases, if reachable."""
    import psycopg

    results = {}
    try:
        for processes in (1, 2):
            with scratch_database(server_url) as url:
                label = f"postgres_{processes}_process{'es' if processes > 1 else ''}"
                results[label] = bench_processing(mails, processes, url)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL runs skipped, server not reachable: {exc}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="Duration of each acceptance run, in seconds.",
    )
    parser.add_argument(
        "--mails", type=int, default=1000, help="Mails in the processing run."
    )
    parser.add_argument(
        "--postgres",
        default="",
        help="Also run processing on PostgreSQL: the URL of any database on the "
        "server; the run creates and drops a scratch database of its own.",
    )
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    report["parsing"] = bench_parsing(args.seconds)
    print(json.dumps(report["parsing"], indent=1), flush=True)
    report["acceptance"] = bench_acceptance(args.seconds)
    print(json.dumps(report["acceptance"], indent=1), flush=True)
    processing = {
        "sqlite_1_process": bench_processing(args.mails, 1),
        "sqlite_2_processes": bench_processing(args.mails, 2),
    }
    if args.postgres:
        processing.update(bench_postgres(args.mails, args.postgres))
    report["processing"] = processing
    print(json.dumps(processing, indent=1), flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
