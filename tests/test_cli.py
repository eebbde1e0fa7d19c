"""The command line: ingest outcomes, the pipe contract, import, comment, extract."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.config import load_settings
from gateway.db import make_engine
from gateway.models import OutboundMessage
from tests.conftest import (
    MESSAGE_ID_DOMAIN,
    ORG_ID,
    STAFF_DOMAIN,
    SUPPORT,
    GatewayEnv,
    build_mail,
    make_env,
)

TOKEN = f"ref_{ORG_ID}_Imp0rtCase1:ref"


def write(folder: Path, name: str, raw: bytes) -> Path:
    path = folder / name
    path.write_bytes(raw)
    return path


def test_ingest_json_reports_new_case(gateway_env: GatewayEnv) -> None:
    mail = write(
        gateway_env.folder, "first.eml", build_mail(subject="Lager: Scanner defekt")
    )
    [outcome] = gateway_env.json_lines("ingest", "--wait", "--json", str(mail))
    assert outcome["state"] == "processed"
    assert outcome["matched_by"] == "new"
    assert outcome["case"] == "00000001"
    assert outcome["message"]["subject"] == "Lager: Scanner defekt"
    assert outcome["message"]["from"] == {
        "email": "erika@kunde.example.org",
        "name": "Erika Beispiel",
    }
    assert "Etiketten" in outcome["message"]["text"]
    assert outcome["bounce"] is None


def test_ingest_reads_stdin(gateway_env: GatewayEnv) -> None:
    [outcome] = gateway_env.json_lines("ingest", "--wait", "--json", stdin=build_mail())
    assert outcome["state"] == "processed"


def test_ingest_same_mail_twice_is_duplicate(gateway_env: GatewayEnv) -> None:
    mail = write(
        gateway_env.folder,
        "twice.eml",
        build_mail(message_id="<twice@kunde.example.org>"),
    )
    first, second = gateway_env.json_lines(
        "ingest", "--wait", "--json", str(mail), str(mail)
    )
    assert first["state"] == "processed"
    assert second["state"] == "ignored"
    assert second["reason"] == "duplicate"
    assert second["case"] == first["case"]
    assert len(gateway_env.json("cases", "--json")) == 1


def test_ingest_unreadable_file_exits_66(gateway_env: GatewayEnv) -> None:
    good = write(gateway_env.folder, "good.eml", build_mail())
    done = gateway_env.run(
        "ingest", "--wait", "--json", str(good), "/nonexistent/mail.eml", check=False
    )
    assert done.returncode == 66
    assert b"/nonexistent/mail.eml" in done.stderr
    assert len(done.stdout.decode().splitlines()) == 1


def test_ingest_storage_failure_exits_75(tmp_path: Path) -> None:
    env = make_env(tmp_path / "gw", store_url="sqlite:////proc/no-such-dir/gateway.db")
    done = env.run("ingest", "--wait", stdin=build_mail(), check=False)
    assert done.returncode == 75
    assert b"cannot open the store" in done.stderr


def test_imported_case_matches_reply_by_references(gateway_env: GatewayEnv) -> None:
    spec = {
        "cases": [
            {
                "token": TOKEN,
                "status": "In Progress",
                "subject": "Alte Anfrage",
                "contact": {
                    "email": "erika@kunde.example.org",
                    "name": "Erika Beispiel",
                },
                "sent_message_ids": ["<old-1@legacy.example.net>"],
            }
        ]
    }
    spec_file = gateway_env.folder / "import.json"
    spec_file.write_text(json.dumps(spec))
    [case] = gateway_env.json("import", str(spec_file), "--json")
    assert case["token"] == TOKEN
    assert case["status"] == "In Progress"
    reply = write(
        gateway_env.folder,
        "reply.eml",
        build_mail(
            subject="Re: Alte Anfrage", in_reply_to="<old-1@legacy.example.net>"
        ),
    )
    [outcome] = gateway_env.json_lines("ingest", "--wait", "--json", str(reply))
    assert outcome["case"] == case["number"]
    assert outcome["matched_by"] == "references"


def test_reply_with_token_in_subject_adds_comment(gateway_env: GatewayEnv) -> None:
    first = write(gateway_env.folder, "a.eml", build_mail())
    [opened] = gateway_env.json_lines("ingest", "--wait", "--json", str(first))
    token = gateway_env.json("show", opened["case"], "--json")["token"]
    reply = write(
        gateway_env.folder,
        "b.eml",
        build_mail(subject=f"Re: Drucker {token}", body="Noch da.\n"),
    )
    [outcome] = gateway_env.json_lines("ingest", "--wait", "--json", str(reply))
    assert outcome["case"] == opened["case"]
    assert outcome["matched_by"] == "subject_token"


def test_comment_command_queues_update(gateway_env: GatewayEnv) -> None:
    first = write(gateway_env.folder, "a.eml", build_mail())
    [opened] = gateway_env.json_lines("ingest", "--wait", "--json", str(first))
    gateway_env.run(
        "comment",
        opened["case"],
        "--author",
        f"sam@{STAFF_DOMAIN}",
        "--text",
        "Erledigt.",
    )
    shown = gateway_env.json("show", opened["case"], "--json")
    assert shown["comments"][-1]["author_kind"] == "staff"
    outbox = gateway_env.json("outbox", "--json")
    assert [m["kind"] for m in outbox] == ["confirmation", "comment_update"]
    assert all(m["status"] == "queued" for m in outbox)
    assert all(m["message_id"].endswith(f"@{MESSAGE_ID_DOMAIN}>") for m in outbox)


def test_comment_by_non_staff_rejected(gateway_env: GatewayEnv) -> None:
    first = write(gateway_env.folder, "a.eml", build_mail())
    [opened] = gateway_env.json_lines("ingest", "--wait", "--json", str(first))
    done = gateway_env.run(
        "comment",
        opened["case"],
        "--author",
        "erika@kunde.example.org",
        "--text",
        "x",
        check=False,
    )
    assert done.returncode == 65
    assert b"not in [desk] staff_domains" in done.stderr
    empty = gateway_env.run(
        "comment",
        opened["case"],
        "--author",
        f"sam@{STAFF_DOMAIN}",
        "--text",
        "  ",
        check=False,
    )
    assert empty.returncode == 65
    assert b"comment text is empty" in empty.stderr


def test_ingest_empty_input_stores_nothing(gateway_env: GatewayEnv) -> None:
    empty = write(gateway_env.folder, "empty.eml", b"")
    done = gateway_env.run("ingest", "--wait", "--json", str(empty), check=False)
    assert done.returncode == 66
    assert b"is empty" in done.stderr
    assert done.stdout == b""


def test_ingest_missing_file_exits_66(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run("ingest", "--wait", "/nonexistent/only.eml", check=False)
    assert done.returncode == 66
    assert b"storing" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["comment", "1", "--author", f"sam@{STAFF_DOMAIN}", "--file", "/nonexistent"],
        ["import", "/nonexistent/cases.json"],
    ],
)
def test_missing_input_file_exits_66(
    gateway_env: GatewayEnv, command: list[str]
) -> None:
    done = gateway_env.run(*command, check=False)
    assert done.returncode == 66
    assert b"/nonexistent" in done.stderr


def test_headerless_inputs_are_not_duplicates(gateway_env: GatewayEnv) -> None:
    one = write(gateway_env.folder, "one.txt", b"just some words")
    two = write(gateway_env.folder, "two.txt", b"other words entirely")
    first, second = gateway_env.json_lines(
        "ingest", "--wait", "--json", str(one), str(two)
    )
    assert first["reason"] != "duplicate"
    assert second["reason"] != "duplicate"


def test_confirmation_threads_to_customer_mail(gateway_env: GatewayEnv) -> None:
    raw = build_mail(message_id="<first@kunde.example.org>")
    mail = write(gateway_env.folder, "a.eml", raw)
    gateway_env.json_lines("ingest", "--wait", "--json", str(mail))
    engine = make_engine(load_settings(gateway_env.config).store.url)
    with Session(engine) as session:
        [row] = session.exec(select(OutboundMessage)).all()
    assert row.in_reply_to == "<first@kunde.example.org>"
    assert row.references == ["<first@kunde.example.org>"]


def test_show_unknown_case_names_it(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run("show", "4711", "--json", check=False)
    assert done.returncode == 65
    assert b"case 4711 not found" in done.stderr


def test_invalid_setting_names_key(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run("cases", check=False, env={"GATEWAY_DESK_LANGUAGE": "fr"})
    assert done.returncode == 78
    assert b"[desk] language 'fr' is invalid" in done.stderr


def test_extract_prints_new_text(gateway_env: GatewayEnv) -> None:
    body = write(
        gateway_env.folder,
        "body.txt",
        b"Passt jetzt.\n\nAm 03.12.2026 um 10:15 schrieb Support:\n"
        b"> Bitte neu starten.\n",
    )
    [line] = gateway_env.json_lines("extract", "--json", str(body))
    assert line == {"file": str(body), "text": "Passt jetzt."}


def test_serve_port_in_use_names_address(gateway_env: GatewayEnv) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", gateway_env.smtp_port))
        taken.listen()
        done = gateway_env.run("serve", check=False)
    assert done.returncode == 78
    assert f"cannot listen on 127.0.0.1:{gateway_env.smtp_port}".encode() in done.stderr


def test_inbound_lists_states_and_reasons(gateway_env: GatewayEnv) -> None:
    person = write(gateway_env.folder, "a.eml", build_mail(subject="Scanner"))
    machine = write(
        gateway_env.folder,
        "b.eml",
        build_mail(
            subject="Out of Office", extra_headers={"Auto-Submitted": "auto-replied"}
        ),
    )
    gateway_env.json_lines("ingest", "--wait", "--json", str(person), str(machine))
    newest, oldest = gateway_env.json("inbound", "--json")
    assert (oldest["state"], oldest["subject"], oldest["case"]) == (
        "processed",
        "Scanner",
        "00000001",
    )
    assert (newest["state"], newest["reason"]) == ("ignored", "auto_reply")
    [only] = gateway_env.json("inbound", "--json", "--state", "ignored")
    assert only["id"] == newest["id"]
    done = gateway_env.run("inbound", "--state", "lost", check=False)
    assert done.returncode == 65
    assert b"--state 'lost' is invalid" in done.stderr


def test_ingest_for_other_recipient_exits_67(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run(
        "ingest",
        "--recipient",
        "nobody@elsewhere.example",
        stdin=build_mail(),
        check=False,
    )
    assert done.returncode == 67
    assert b"no recipient is a support address" in done.stderr
    assert gateway_env.json("inbound", "--json") == []


def test_ingest_for_support_recipient_stored(gateway_env: GatewayEnv) -> None:
    done = gateway_env.run("ingest", "--recipient", SUPPORT, stdin=build_mail())
    assert done.returncode == 0
