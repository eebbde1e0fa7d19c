"""Render one sample mail of every kind, for docs/mails.md and its test.

Run ``python -m tests.mail_samples > docs/mails.md`` after changing a
template; tests/test_templates.py fails while the page is out of date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.config import Settings
from gateway.lifecycle.surveys import rating_links
from gateway.models import Case, Comment, Contact
from gateway.outbound.outbox import Notification, notification_context
from gateway.outbound.render import RenderedMail, TemplateRenderer

KINDS = (
    "confirmation",
    "comment_update",
    "pending_closure",
    "reopened",
    "survey",
    "escalation_confirmation",
    "escalation_notice",
    "bounce_notice",
)
SUPPORT = "support@desk.example.com"
TOKEN = "ref_00DExample_5aMpLeT0k3n:ref"


def sample_settings() -> Settings:
    settings = Settings()
    settings.desk.support_addresses = [SUPPORT]
    settings.desk.portal_url = "https://portal.desk.example.com/cases"
    return settings


def sample_case(status: str) -> Case:
    opened = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    return Case(
        id=42,
        token=TOKEN,
        subject="Label printer in the warehouse stopped",
        status=status,
        escalation_level=1,
        opened_at=opened,
        last_modified_at=opened,
    )


def sample_notification(
    kind: str, settings: Settings
) -> tuple[Notification, Case | None]:
    status = {
        "comment_update": "Waiting on Customer",
        "pending_closure": "Pending Closure",
        "reopened": "In Progress",
        "survey": "Closed",
        "escalation_confirmation": "Escalated",
        "escalation_notice": "Escalated",
    }.get(kind, "Unassigned")
    case = sample_case(status)
    comment = Comment(
        case_id=42,
        author="sven@staff.example.com",
        author_name="Sven Support",
        new_text="Please switch the printer off and on again.",
    )
    context: dict[str, Any] = {}
    recipients: tuple[str, ...] = ()
    previous = None
    if kind == "confirmation":
        previous = Case(id=17, token="ref_00DExample_0ld:ref", subject="Printer jams")
        case.previous_case_id = 17
    if kind == "survey":
        context["ratings"] = rating_links("en", SUPPORT, case.number, TOKEN)
    if kind == "escalation_notice":
        context["reason"] = "escalation"
        recipients = ("lead@staff.example.com",)
        comment = Comment(
            case_id=42,
            author="erika@kunde.example.org",
            author_name="Erika Beispiel",
            new_text="Escalate",
        )
    if kind == "bounce_notice":
        recipients = ("desk@staff.example.com",)
        context["bounce"] = {
            "recipient": "erika@kunde.example.org",
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 user unknown",
        }
    with_comment = kind in ("comment_update", "escalation_notice")
    notification = Notification(
        kind,
        case,
        comment if with_comment else None,
        recipients=recipients,
        context=context,
    )
    return notification, previous


def render_sample(kind: str, language: str = "en") -> RenderedMail:
    settings = sample_settings()
    settings.desk.language = language
    notification, previous = sample_notification(kind, settings)
    contact = Contact(email="erika@kunde.example.org", name="Erika Beispiel")
    context = notification_context(settings, notification, contact, previous)
    renderer = TemplateRenderer(settings.templates_dir, language)
    return renderer.render(kind, context)


def mails_page() -> str:
    parts = [
        "# Notification mails\n",
        "One mail of each outbox kind as its plain-text part, in English, from "
        "the templates in `templates/en/`. The German templates in "
        "`templates/de/` have the same structure. `python -m tests.mail_samples "
        "> docs/mails.md` writes this page; the test suite checks it is current.\n",
    ]
    for kind in KINDS:
        mail = render_sample(kind)
        parts.append(f"## `{kind}`\n")
        parts.append(f"Subject: {mail.subject}\n")
        parts.append("```text\n" + mail.text.rstrip("\n") + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(mails_page(), end="")
