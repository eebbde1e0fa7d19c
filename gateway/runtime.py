"""The runtime of one process: settings, the store engine and the templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Settings, load_settings
from gateway.db import make_engine, upgrade_schema
from gateway.errors import StoreError
from gateway.models import utcnow
from gateway.outbound.render import TemplateRenderer


def _ignore(_ids: list[int]) -> None:
    return None


@dataclass
class Runtime:
    """Settings plus the objects built from them, shared by one process.

    ``outbound_queued`` is called with the ids of outbox rows after the
    transaction that queued them commits. The job layer sets it so that
    the rows go to a delivery worker. ``clock`` returns the current time
    (aware, UTC) for the case lifecycle; tests replace it.
    """

    settings: Settings
    outbound_queued: Callable[[list[int]], None] = field(default=_ignore)
    clock: Callable[[], datetime] = field(default=utcnow)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.store.url)

    @cached_property
    def renderer(self) -> TemplateRenderer:
        return TemplateRenderer(
            self.settings.templates_dir, self.settings.desk.language
        )

    def prepare_store(self) -> None:
        """Create the data folder and bring the schema up to date.

        Raises StoreError naming the store when either fails.
        """
        try:
            self.settings.store.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade_schema(self.engine)
        except (OSError, SQLAlchemyError) as exc:
            url = make_url(self.settings.store.url).render_as_string(hide_password=True)
            raise StoreError(
                f"cannot open the store {url} "
                f"(data_dir {self.settings.store.data_dir}): "
                f"{exc}; check [store] url and data_dir"
            ) from exc


def load_runtime(config_path: Path | None = None) -> Runtime:
    runtime = Runtime(load_settings(config_path))
    runtime.prepare_store()
    return runtime
