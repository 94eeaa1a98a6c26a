"""Engine, sessions and migrations.

SQLite (a file, WAL, foreign keys on) is the embedded default; PostgreSQL is used by URL.
``open_database`` is what the app and every command call: it creates the engine and upgrades the
schema to the newest alembic revision before anything else touches it.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
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

log = logging.getLogger("ill_tui.db")

DEFAULT_AUTOCHECKPOINT = 1000
"""SQLite's own default: the commit that takes the WAL past 1,000 pages checkpoints it."""
SERVE_AUTOCHECKPOINT = 10_000
"""``ill-tui serve``, which runs a ``WalCheckpointer``: at most about 40 MB of WAL."""


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message says why in plain words."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, *, autocheckpoint: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    if autocheckpoint != DEFAULT_AUTOCHECKPOINT:
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    cursor.close()


def create_db_engine(
    url: str, *, echo: bool = False, autocheckpoint: int = DEFAULT_AUTOCHECKPOINT
) -> Engine:
    """Create an engine for ``url`` with the connection settings ill-tui relies on.

    Args:
        url: the database URL.
        echo: log every SQL statement.
        autocheckpoint: SQLite only: the commit that takes the WAL past this many pages
            checkpoints it (SQLite's default is 1,000). Raise it only with a
            ``WalCheckpointer`` running for the file.
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 5}
        )
        sa.event.listen(
            engine, "connect", functools.partial(_sqlite_on_connect, autocheckpoint=autocheckpoint)
        )
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


def open_database(url: str, *, autocheckpoint: int = DEFAULT_AUTOCHECKPOINT) -> Engine:
    """Create the engine and migrate the database to the newest schema.

    Args:
        url: the database URL.
        autocheckpoint: see ``create_db_engine``.

    Raises:
        DatabaseError: the database cannot be reached or is newer than this program.
    """
    engine = create_db_engine(url, autocheckpoint=autocheckpoint)
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


class WalCheckpointer:
    """Copies a SQLite database's write-ahead log back into the file, in a thread of its own.

    By default the connection whose commit takes the WAL past 1,000 pages also checkpoints
    it: that commit waits while about 4 MB are copied and synced. ``ill-tui serve`` answers
    each partner only after its message is committed, so it runs this beside its writer: a
    PASSIVE checkpoint (it never waits for a reader or a writer) every ``interval`` seconds,
    on a connection of its own. Once a checkpoint has copied everything, the next write
    starts the WAL over from the beginning, so in any pause in the traffic the WAL stops
    growing. The server raises its own automatic checkpoint to a larger size
    (``SERVE_AUTOCHECKPOINT``), which still bounds the WAL when traffic never pauses; that
    checkpoint then finds nearly every page copied already. Other processes on the same
    file, such as the app, keep SQLite's default.

    Args:
        path: the database file.
        interval: seconds between checkpoints.
    """

    def __init__(self, path: str | Path, *, interval: float = 0.05) -> None:
        self.path = str(path)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, frames in the WAL, frames copied back)."""
        conn = sqlite3.connect(self.path, timeout=5)
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        return int(busy), int(frames), int(copied)

    def start(self) -> None:
        """Start checkpointing every ``interval`` seconds until ``stop``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            try:
                self.checkpoint()
            except sqlite3.Error:
                log.warning("WAL checkpoint of %s failed; trying again", self.path, exc_info=True)
            if stopping:
                return
