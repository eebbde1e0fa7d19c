"""Fixtures shared by the outbound tests: a free loopback port, the project's
templates and a notification context."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
TOKEN = "ref_00DGw4tWy_5kQ2m9XvBz:ref"


@pytest.fixture
def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def templates_dir() -> Path:
    return TEMPLATES_DIR


@pytest.fixture
def mail_context() -> dict[str, Any]:
    """Return the context of a comment_update mail, which covers confirmation too."""
    return {
        "case": {
            "number": "00000042",
            "subject": "Drucker druckt nicht – Fehler 0x42",
            "status": "In Progress",
            "severity": "Urgent",
            "priority": "High",
            "type": "General Inquiry",
            "customer_reference": "KD-7781",
            "opened_at": "04.12.2025 14:51",
        },
        "contact_name": "Jürgen Weiß",
        "case_url": "https://portal.example.com/cases/00000042",
        "token": TOKEN,
        "desk_name": "Customer Support",
        "language": "en",
        "comment": {
            "author_name": "Anna Schmidt",
            "text": "Bitte starten Sie den Drucker neu.\nGrüße aus Köln",
        },
    }
