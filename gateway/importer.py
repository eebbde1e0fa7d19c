"""Import cases from an earlier system, keeping their tokens and sent Message-IDs.

The input is ``{"cases": [{token, status, subject, contact: {email, name},
sent_message_ids, legacy_number?}]}``. Replies to the earlier system's
mails then match the imported cases by token or References like the
gateway's own. The whole file is imported in one transaction, or nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from gateway.cases import create_case, find_or_create_contact
from gateway.config import Settings
from gateway.errors import InputUnreadable, InvalidInput
from gateway.inbound.parse import Address, normalize_message_id
from gateway.lifecycle.status import record_opening
from gateway.models import Case, CaseStatus, StatusCause, ThreadMessage, ThreadSource
from gateway.threading.tokens import is_token


class ImportFileInvalid(InvalidInput):
    """The import file does not have the documented shape; the message names where."""


def read_import_file(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputUnreadable(f"cannot read import file {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileInvalid(f"import file {path} is not valid JSON: {exc}") from exc
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ImportFileInvalid(f'{path}: expected an object with a "cases" list')
    for index, item in enumerate(cases):
        if not isinstance(item, dict):
            raise ImportFileInvalid(f"{path}: cases[{index}] is not an object")
    return cases


def import_cases(
    session: Session, settings: Settings, items: list[dict[str, Any]]
) -> list[Case]:
    """Create one case per item and return them in input order."""
    statuses = {status.value: status for status in CaseStatus}
    created = []
    for index, item in enumerate(items):
        where = f"cases[{index}]"
        token = str(item.get("token") or "")
        if not is_token(token):
            raise ImportFileInvalid(
                f"{where}: token {token!r} is not of the form ref_<org>_<case>:ref"
            )
        if session.exec(select(Case).where(Case.token == token)).first() is not None:
            raise ImportFileInvalid(
                f"{where}: a case with token {token} exists already"
            )
        status_name = str(item.get("status") or CaseStatus.IN_PROGRESS.value)
        if status_name not in statuses:
            raise ImportFileInvalid(
                f"{where}: status {status_name!r} is unknown; use one of "
                + ", ".join(statuses)
            )
        contact_data = item.get("contact") or {}
        email = str(contact_data.get("email") or "").strip()
        if "@" not in email:
            raise ImportFileInvalid(
                f"{where}: contact.email {email!r} is not an address"
            )
        contact = find_or_create_contact(
            session, Address(email.lower(), str(contact_data.get("name") or ""))
        )
        case = create_case(
            session,
            settings,
            subject=str(item.get("subject") or ""),
            contact=contact,
            additional_recipients=[str(a) for a in item.get("cc") or []],
            token=token,
            status=statuses[status_name],
        )
        if item.get("legacy_number"):
            case.legacy_number = str(item["legacy_number"])
        record_opening(session, case, StatusCause.ADMIN, case.opened_at)
        assert case.id is not None
        for raw_id in item.get("sent_message_ids") or []:
            message_id = normalize_message_id(str(raw_id))
            if message_id:
                session.add(
                    ThreadMessage(
                        message_id=message_id,
                        case_id=case.id,
                        source=ThreadSource.IMPORTED,
                    )
                )
        created.append(case)
    session.flush()
    return created
