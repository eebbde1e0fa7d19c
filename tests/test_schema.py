"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import gateway.models  # noqa: F401  (registers the tables)
from gateway.db import alembic_config, make_engine, upgrade_schema


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    upgrade_schema(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    return list(differences)


def test_migrations_form_a_single_line() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    assert schema_differences(f"sqlite:///{tmp_path}/gateway.db") == []


def test_postgresql_schema_matches_the_models(postgres_url: str) -> None:
    assert schema_differences(postgres_url) == []
