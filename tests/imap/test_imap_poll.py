"""IMAP ingestion against a real Dovecot through ``gateway imap-poll``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import GATEWAY, GatewayEnv, build_mail, make_env
from tests.imap.conftest import (
    PROCESSED,
    Mailbox,
    add_imap,
    count_rows,
    imap_table,
    polled_once,
    wait_until,
)
from tests.imap.dovecot import Dovecot
from tests.imap.proxy import CuttingProxy, FetchRejectingProxy

CUSTOMER = "Erika Beispiel <erika@kunde.example.org>"


def poll(env: GatewayEnv, *, check: bool = True) -> list[dict[str, Any]]:
    """Run ``imap-poll --once --json``; return one result per mailbox."""
    import json

    done = env.run("imap-poll", "--once", "--json", check=check)
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def inbound(env: GatewayEnv) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = env.json("inbound", "--json", "--limit", "1000")
    return sorted(rows, key=lambda row: row["id"])


def test_new_mail_opens_case_and_is_moved(
    imap_env: GatewayEnv, mailbox: Mailbox
) -> None:
    assert poll(imap_env)[0]["stored"] == 0
    mailbox.append(build_mail(sender=CUSTOMER, subject="Scanner meldet Fehler 7"))

    assert poll(imap_env)[0]["stored"] == 1

    cases = imap_env.json("cases", "--json")
    assert [case["subject"] for case in cases] == ["Scanner meldet Fehler 7"]
    rows = inbound(imap_env)
    assert [row["source"] for row in rows] == ["imap"]
    assert rows[0]["state"] == "processed"
    assert mailbox.uids("INBOX") == []
    moved = mailbox.uids(PROCESSED)
    assert len(moved) == 1
    assert b"\\Seen" in mailbox.flags(moved[0], PROCESSED)


def test_reply_by_imap_lands_on_case(imap_env: GatewayEnv, mailbox: Mailbox) -> None:
    poll(imap_env)
    mailbox.append(build_mail(sender=CUSTOMER, subject="Lizenz abgelaufen"))
    poll(imap_env)
    case = imap_env.json("cases", "--json")[0]

    reply = build_mail(
        sender=CUSTOMER,
        subject=f"Re: Lizenz abgelaufen {case['token']}",
        body="Die neue Lizenzdatei liegt im Anhang des Kunden-Portals.\n",
    )
    mailbox.append(reply)
    poll(imap_env)

    assert len(imap_env.json("cases", "--json")) == 1
    comments = imap_env.json("show", case["number"], "--json")["comments"]
    assert len(comments) == 2
    assert comments[1]["text"].startswith("Die neue Lizenzdatei")
    assert [row["matched_by"] for row in inbound(imap_env)] == ["new", "subject_token"]


def test_first_poll_leaves_existing_mail(
    imap_env: GatewayEnv, mailbox: Mailbox
) -> None:
    old = [
        mailbox.append(build_mail(sender=CUSTOMER, subject=f"Alte Anfrage {n}"))
        for n in range(3)
    ]

    assert poll(imap_env)[0]["stored"] == 0
    assert imap_env.json("cases", "--json") == []
    mailbox.append(build_mail(sender=CUSTOMER, subject="Neue Anfrage"))
    assert poll(imap_env)[0]["stored"] == 1

    subjects = [case["subject"] for case in imap_env.json("cases", "--json")]
    assert subjects == ["Neue Anfrage"]
    assert mailbox.uids("INBOX") == old
    assert all(b"\\Seen" not in mailbox.flags(uid) for uid in old)


def test_ingest_existing_reads_old_mail(
    tmp_path: Path, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    env = add_imap(
        make_env(tmp_path / "gw"), imap_table(dovecot.port, ingest_existing=True)
    )
    for n in range(3):
        mailbox.append(build_mail(sender=CUSTOMER, subject=f"Alte Anfrage {n}"))

    assert poll(env)[0]["stored"] == 3

    assert len(env.json("cases", "--json")) == 3
    assert mailbox.uids("INBOX") == []
    assert len(mailbox.uids(PROCESSED)) == 3


def test_connection_cut_mid_batch_loses_nothing(
    tmp_path: Path, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    count = 45
    padding = "Die Anlage meldet seit dem Update folgende Zeilen im Protokoll.\n" * 15
    for n in range(count):
        mailbox.append(
            build_mail(sender=CUSTOMER, subject=f"Störung {n:02d}", body=padding)
        )
    # About 1.5 kB a message and 20 a batch: the cut falls in the second
    # batch's FETCH response, after the first batch was stored and moved.
    proxy = CuttingProxy(dovecot.port, limit=45_000)
    cut_env = add_imap(
        make_env(tmp_path / "gw"), imap_table(proxy.port, ingest_existing=True)
    )
    try:
        failed = cut_env.run("imap-poll", "--once", check=False)
    finally:
        proxy.close()
    assert failed.returncode == 75, failed.stderr.decode()
    assert proxy.cuts == 1
    stored_before = len(inbound(cut_env))
    assert 0 < stored_before < count

    # The same store and state, now straight to Dovecot.
    config = cut_env.config.read_text().replace(
        f"port = {proxy.port}", f"port = {dovecot.port}"
    )
    cut_env.config.write_text(config)
    assert poll(cut_env)[0]["error"] is None

    cases = cut_env.json("cases", "--json")
    assert sorted(case["subject"] for case in cases) == [
        f"Störung {n:02d}" for n in range(count)
    ]
    processed = [row for row in inbound(cut_env) if row["state"] == "processed"]
    assert len(processed) == count
    others = [row for row in inbound(cut_env) if row["state"] != "processed"]
    assert all(row["reason"] == "duplicate" for row in others)
    assert mailbox.uids("INBOX") == []
    assert len(mailbox.uids(PROCESSED)) == count


def test_uidvalidity_change_rereads_folder(
    tmp_path: Path, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    mailbox.create("Support")
    env = add_imap(
        make_env(tmp_path / "gw"),
        imap_table(dovecot.port, folder="Support", processed_folder=""),
    )
    poll(env)
    first = build_mail(sender=CUSTOMER, subject="Drucker offline")
    second = build_mail(sender=CUSTOMER, subject="Kein Zugriff auf Berichte")
    mailbox.append(first, "Support")
    mailbox.append(second, "Support")
    assert poll(env)[0]["stored"] == 2
    before = mailbox.uidvalidity("Support")

    # Recreated, the folder numbers its mail from UID 1 again: the new
    # message gets UID 1, which the old state counts as read already.
    mailbox.delete("Support")
    mailbox.create("Support")
    assert mailbox.uidvalidity("Support") != before
    mailbox.append(build_mail(sender=CUSTOMER, subject="Neue Störung"), "Support")
    mailbox.append(first, "Support")
    assert poll(env)[0]["error"] is None

    subjects = sorted(case["subject"] for case in env.json("cases", "--json"))
    assert subjects == ["Drucker offline", "Kein Zugriff auf Berichte", "Neue Störung"]
    for case in env.json("cases", "--json"):
        assert len(env.json("show", case["number"], "--json")["comments"]) == 1
    states = [(row["state"], row["reason"]) for row in inbound(env)]
    assert states.count(("ignored", "duplicate")) == 1
    assert states.count(("processed", "")) == 3

    # The next round reads only what is new under the new UIDVALIDITY.
    assert poll(env)[0]["stored"] == 0


def test_password_file_and_wrong_password(
    tmp_path: Path, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    secret = tmp_path / "imap-password"
    env = add_imap(
        make_env(tmp_path / "gw"), imap_table(dovecot.port, password_file=secret)
    )
    absent = poll(env, check=False)[0]
    assert f"cannot read password_file {secret}" in absent["error"]

    secret.write_text("not-the-password\n")
    failed = poll(env, check=False)[0]
    assert "LOGIN failed: NO" in failed["error"]
    assert "not-the-password" not in failed["error"]

    from tests.imap.dovecot import PASSWORD

    secret.write_text(PASSWORD + "\n")
    assert poll(env)[0]["error"] is None


def test_imap_poll_without_mailbox_fails(tmp_path: Path) -> None:
    env = make_env(tmp_path / "gw")

    done = env.run("imap-poll", "--once", check=False)

    assert done.returncode == 78
    assert "no [[imap]] table in the config" in done.stderr.decode()


def test_imap_poll_runs_until_sigterm(imap_env: GatewayEnv, mailbox: Mailbox) -> None:
    process = subprocess.Popen(
        [GATEWAY, "imap-poll", "--config", str(imap_env.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: polled_once(imap_env), 30, "the first poll")
        mailbox.append(build_mail(sender=CUSTOMER, subject="Über den Dauerbetrieb"))
        wait_until(lambda: count_rows(imap_env, "case") == 1, 30, "the case opened")
    finally:
        process.terminate()
        _output, errors = process.communicate(timeout=30)

    assert process.returncode == 0, errors.decode()
    assert imap_env.json("cases", "--json")[0]["subject"] == "Über den Dauerbetrieb"


def test_rejected_message_holds_back_none(
    tmp_path: Path, mailbox: Mailbox, dovecot: Dovecot
) -> None:
    for subject in ("Erste Anfrage", "Zweite Anfrage", "Dritte Anfrage"):
        mailbox.append(build_mail(sender=CUSTOMER, subject=subject))
    rejected_uid = mailbox.uids("INBOX")[1]
    proxy = FetchRejectingProxy(dovecot.port, rejected_uid)
    env = add_imap(
        make_env(tmp_path / "gw"), imap_table(proxy.port, ingest_existing=True)
    )
    try:
        [result] = poll(env)
        [again] = poll(env)
    finally:
        proxy.close()

    assert result["error"] is None
    assert result["stored"] == 2
    assert again["stored"] == 0
    subjects = sorted(case["subject"] for case in env.json("cases", "--json"))
    assert subjects == ["Dritte Anfrage", "Erste Anfrage"]
    # The rejected message stays in the folder, unread, for a person to look at.
    assert mailbox.uids("INBOX") == [rejected_uid]
    assert b"\\Seen" not in mailbox.flags(rejected_uid)
