"""Template values of the case lifecycle: command links, the linked case, extras."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.config import Settings
from gateway.lifecycle.commands import command_links
from gateway.models import Case, CaseStatus, Contact

if TYPE_CHECKING:
    from gateway.outbound.outbox import Notification


def lifecycle_context(
    settings: Settings,
    notification: Notification,
    contact: Contact | None,
    previous: Case | None,
) -> dict[str, Any]:
    """Return the values every template may use beyond the case's own fields.

    ``commands`` is empty for mail to staff (a notification with its own
    recipients), because the links act for the customer, and for a closed
    case, on which they cannot act. ``comment`` is
    None here, and the caller sets it when the notification reports one.
    """
    case = notification.case
    commands: dict[str, str] = {}
    if not notification.recipients and case.status != CaseStatus.CLOSED.value:
        commands = command_links(
            settings.desk.language, settings.sender_address, case.number, case.token
        )
    context: dict[str, Any] = {
        "previous_case": (
            {"number": previous.number, "subject": previous.subject}
            if previous is not None
            else None
        ),
        "commands": commands,
        "comment": None,
        "contact_email": contact.email if contact else "",
        "close_after_days": f"{settings.lifecycle.close_after_days:g}",
        "support_address": settings.sender_address,
        "escalation_level": case.escalation_level,
    }
    context.update(notification.context)
    return context
