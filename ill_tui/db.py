"""Engine, sessions and migrations.

SQLite (a file, WAL, foreign keys on) is the embedded default; PostgreSQL is used by URL.
``open_database`` is what the app and every command call: it creates the engine and upgrades the
schema to the newest alembic revision before anything else touches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Engine
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message says why in plain words."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    cursor.close()


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the connection settings ill-tui relies on."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 5}
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    """An alembic Config that runs our packaged migrations against ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration revision this version of ill-tui knows."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema of ``engine``'s database to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def _known_revision(script: ScriptDirectory, revision: str) -> bool:
    """True when ``revision`` is one of our migrations (alembic raises for unknown ids)."""
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def open_database(url: str) -> Engine:
    """Create the engine and migrate the database to the newest schema.

    Raises:
        DatabaseError: the database cannot be reached or is newer than this program.
    """
    engine = create_db_engine(url)
    try:
        current = current_revision(engine)
        script = ScriptDirectory(str(MIGRATIONS_DIR))
        if current is not None and not _known_revision(script, current):
            raise DatabaseError(
                f"The database is at schema revision {current}, which this version of "
                "ill-tui does not know; it was made by a newer version."
            )
        if current != head_revision():
            upgrade(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"Cannot open the database {engine.url!r}: {exc.orig}") from exc
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
