"""The alembic migrations build exactly the schema the SQLModel classes describe, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel

from ill_tui import models  # noqa: F401  (registers the tables)
from ill_tui.db import alembic_config, current_revision, head_revision, open_database
from ill_tui.services.queue import ALL, QueueQuery, load_page

TABLES = {
    "patron", "partner", "request", "rota_entry", "event", "note",
    "marc_record", "request_holding", "iso_message",
}  # fmt: skip


def _include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Leave out what the text index adds beside the models on purpose.

    SQLite: the FTS5 virtual table ``request_fts`` and its shadow tables. PostgreSQL: the GIN
    expression index ``ix_request_search``. Everything else must match.
    """
    if type_ == "table" and name is not None:
        return name != "alembic_version" and not name.startswith("request_fts")
    if type_ == "index":
        return name != "ix_request_search"
    return True


def drift(engine: sa.Engine) -> list[Any]:
    """What alembic autogenerate would change to make the database match the models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": _include_name,
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))


@pytest.fixture
def migrated(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_migrated_schema_matches_the_models(migrated: sa.Engine) -> None:
    assert current_revision(migrated) == head_revision()
    assert drift(migrated) == []


def test_the_drift_check_sees_drift(migrated: sa.Engine) -> None:
    """The comparison above is not vacuous: a missing index and column are reported."""
    with migrated.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_request_dir_party"))
        conn.execute(sa.text("ALTER TABLE note ADD COLUMN pinned INTEGER"))
    found = {(d[0], getattr(d[-1], "name", None)) for d in drift(migrated) if isinstance(d, tuple)}
    assert ("add_index", "ix_request_dir_party") in found
    assert ("remove_column", "pinned") in found


def test_downgrade_to_base_and_upgrade_again(migrated: sa.Engine) -> None:
    cfg = alembic_config(migrated)
    command.downgrade(cfg, "base")
    assert current_revision(migrated) is None
    left = set(sa.inspect(migrated).get_table_names()) - {"alembic_version"}
    assert left == set(), f"downgrade left {left}"
    if migrated.dialect.name == "sqlite":
        with migrated.connect() as conn:
            triggers = conn.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
        assert triggers == []

    command.upgrade(cfg, "head")
    assert current_revision(migrated) == head_revision()
    assert set(sa.inspect(migrated).get_table_names()) >= TABLES
    assert drift(migrated) == []
    # ...and the text index works again after the round trip.
    with migrated.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO request (direction, service_type, status, is_open, title, "
                "party_name, rota_position, created_at, updated_at, version) VALUES "
                "('borrowing', 'Loan', 'New', true, 'Round trip', '', 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            )
        )
    with Session(migrated) as session:
        page = load_page(session, QueueQuery(text="round", status=ALL))
    assert [r.title for r in page.rows] == ["Round trip"]
