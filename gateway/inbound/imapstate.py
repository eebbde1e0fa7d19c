"""The store's record of how far each IMAP folder has been read."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.db import read_only, session_scope
from gateway.models import ImapFolderState, utcnow


def load_state(engine: Engine, mailbox: str) -> ImapFolderState | None:
    """Return the state of ``mailbox`` (user@host:port/folder), if it was read."""
    with Session(read_only(engine), expire_on_commit=False) as session:
        return session.exec(
            select(ImapFolderState).where(ImapFolderState.mailbox == mailbox)
        ).first()


def save_state(
    engine: Engine, mailbox: str, uidvalidity: int, last_uid: int
) -> ImapFolderState:
    """Record that ``mailbox`` has been read up to ``last_uid`` under ``uidvalidity``.

    The first call creates the row, and its time is the folder's start.
    """
    with session_scope(engine) as session:
        state = session.exec(
            select(ImapFolderState)
            .where(ImapFolderState.mailbox == mailbox)
            .with_for_update()
        ).first()
        if state is None:
            state = ImapFolderState(
                mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid
            )
        state.uidvalidity = uidvalidity
        state.last_uid = last_uid
        state.updated_at = utcnow()
        session.add(state)
        return state
