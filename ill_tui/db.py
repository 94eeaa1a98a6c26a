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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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


def _null(value: None) -> None:
    return value


# sqlite3 binds str, int, float and bytes as they are, but sends every other parameter
# through its adapter registry first; for None, which has no adapter, that lookup raises
# and clears two AttributeErrors (``__adapt__``, ``__conform__``) before binding NULL. An
# adapter that hands None back binds the same NULL for a fraction of that (a batch of
# inbound requests binds about sixty Nones a message).
sqlite3.register_adapter(type(None), _null)


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
        interval: seconds between checkpoints. A page written again and again between two
            checkpoints (an index's root, the text index's newest segment) is copied once.
    """

    def __init__(self, path: str | Path, *, interval: float = 0.25) -> None:
        self.path = str(path)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        """How many checkpoints the thread has made."""

    def checkpoint(self, conn: sqlite3.Connection | None = None) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now (on ``conn``, or a connection of its own): (busy,
        frames in the WAL, frames copied back)."""
        own = conn is None
        conn = sqlite3.connect(self.path, timeout=5) if conn is None else conn
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            if own:
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
        conn: sqlite3.Connection | None = None  # the thread's own, kept between checkpoints
        try:
            while True:
                stopping = self._stop.wait(self.interval)
                try:
                    conn = conn or sqlite3.connect(self.path, timeout=5)
                    self.checkpoint(conn)
                    self.runs += 1
                except sqlite3.Error:
                    log.warning(
                        "WAL checkpoint of %s failed; trying again", self.path, exc_info=True
                    )
                    if conn is not None:
                        conn.close()
                    conn = None
                if stopping:
                    return
        finally:
            if conn is not None:
                conn.close()


def _driver_execute(conn: sa.Connection, sql: str, params: Any, *, many: bool = False) -> list[Any]:
    """Run ``sql`` on a cursor of ``conn``'s own DBAPI connection, inside its transaction.

    What ``conn.exec_driver_sql`` does, without its execution context and result objects
    (about 10 us a statement, as much as SQLite's own work for a small batch): the rows come
    back as the driver's tuples (none for a statement without a result), and a driver error
    is raised as the SQLAlchemy exception ``exec_driver_sql`` would raise
    (``sa.exc.IntegrityError`` for a unique key taken, and so on).
    """
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except dbapi_error as error:
        raise sa.exc.DBAPIError.instance(
            sql, params, error, dbapi_error, dialect=conn.dialect, ismulti=many
        ) from error
    finally:
        cursor.close()


class BulkInsert:
    """An INSERT of many rows with fixed columns, for the paths where SQLAlchemy's per-row
    work costs more than the database's (the ISO 18626 endpoint stores a batch of messages
    with a few of these; profiled, statement preparation and parameter processing took
    more time than SQLite's own inserts).

    The statement is compiled by SQLAlchemy once per dialect and row count, each value is
    converted by the column type's own bind processor, exactly as ``conn.execute(insert)``
    converts it, and the statement goes to the driver's cursor (``_driver_execute``): the
    same rows are stored, with none of the per-call compilation and result set-up.

    Args:
        table: the table.
        columns: the columns every row gives, in any order.
        returning: columns to return for the rows inserted (one multi-row INSERT ...
            RETURNING; the rows come back in no promised order).
    """

    def __init__(
        self, table: sa.Table, columns: Sequence[str], returning: Sequence[str] = ()
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.returning = tuple(returning)
        self._prepared: dict[tuple[str, str, int], _Prepared] = {}

    def _statement(self, dialect: sa.Dialect, rows: int) -> _Prepared:
        key = (dialect.name, str(dialect.paramstyle), rows)
        prepared = self._prepared.get(key)
        if prepared is not None:
            return prepared
        width = len(self.columns)
        names = {f"r{i}c{j}": (i, j) for i in range(rows) for j in range(width)}
        values: list[dict[str, Any]] = [
            {c: sa.bindparam(f"r{i}c{j}") for j, c in enumerate(self.columns)} for i in range(rows)
        ]
        statement: Any = self.table.insert().values(values if rows > 1 else values[0])
        if self.returning:
            statement = statement.returning(*(self.table.c[n] for n in self.returning))
        compiled = statement.compile(dialect=dialect)
        processors = [
            self.table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in self.columns
        ]
        converters = tuple(zip(self.columns, processors, strict=True))
        in_order: tuple[tuple[str, Callable[[Any], Any] | None], ...] | None = None
        if compiled.positional:
            order = [names[name] for name in compiled.positiontup or ()]
            first = [j for i, j in order[:width]]
            # SQLite's "?" parameters: row after row, each in the table's column order
            if order == [(i, j) for i in range(rows) for j in first]:
                in_order = tuple(converters[j] for j in first)
        prepared = self._prepared[key] = _Prepared(compiled.string, converters, in_order)
        return prepared

    @staticmethod
    def _named(
        row: Mapping[str, Any],
        i: int,
        converters: Sequence[tuple[str, Callable[[Any], Any] | None]],
    ) -> dict[str, Any]:
        """Row ``i``'s converted values under the statement's parameter names (``r{i}c{j}``)."""
        return {
            f"r{i}c{j}": row[column] if convert is None else convert(row[column])
            for j, (column, convert) in enumerate(converters)
        }

    def execute(
        self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (one statement); return its RETURNING rows (none without).

        Raises:
            KeyError: a row lacks one of the columns.
        """
        prepared = self._statement(conn.dialect, len(rows))
        params: Any
        if prepared.in_order is not None:
            params = [
                row[column] if convert is None else convert(row[column])
                for row in rows
                for column, convert in prepared.in_order
            ]
        else:
            params = {}
            for i, row in enumerate(rows):
                params.update(self._named(row, i, prepared.converters))
        return _driver_execute(conn, prepared.sql, params)

    def execute_many(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` with the driver's executemany (no RETURNING)."""
        prepared = self._statement(conn.dialect, 1)
        params: Any
        if prepared.in_order is not None:
            params = [
                [
                    row[column] if convert is None else convert(row[column])
                    for column, convert in prepared.in_order
                ]
                for row in rows
            ]
        else:
            params = [self._named(row, 0, prepared.converters) for row in rows]
        _driver_execute(conn, prepared.sql, params, many=True)


class _Prepared(NamedTuple):
    """A ``BulkInsert`` statement compiled for one dialect and row count."""

    sql: str
    converters: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    """(column, bind processor) in ``BulkInsert.columns`` order."""
    in_order: tuple[tuple[str, Callable[[Any], Any] | None], ...] | None
    """The same, in the order of one row's positional parameters, when the statement takes
    its rows one after the other that way (SQLite); else None (named parameters)."""


class ListStatement:
    """A statement about a list of values (``x IN (...)``), compiled once per dialect and
    list length and run on the driver's cursor (``_driver_execute``), for hot paths where
    SQLAlchemy's per-call compilation of expanding parameters costs more than the
    database's work. Rows come back as plain tuples.

    Args:
        build: ``build(n)`` returns the statement for ``n`` values, whose parameters are
            ``sa.bindparam("v0")`` ... ``sa.bindparam(f"v{n - 1}")`` plus any named scalars
            given to ``execute``. Values go to the driver as they are, so they must be
            ones it takes without conversion: text and integers. A statement with named
            scalars only is run with no values (``n`` is 0).
    """

    def __init__(self, build: Callable[[int], Any]) -> None:
        self.build = build
        self._compiled: dict[
            tuple[str, str, int], tuple[str, tuple[str, ...] | None, dict[str, Any]]
        ] = {}

    def execute(
        self, conn: sa.Connection, values: Sequence[Any], **scalars: Any
    ) -> list[tuple[Any, ...]]:
        """Run it for ``values`` (and the named ``scalars``); return its rows (none for an
        UPDATE)."""
        dialect = conn.dialect
        key = (dialect.name, str(dialect.paramstyle), len(values))
        found = self._compiled.get(key)
        if found is None:
            compiled = self.build(len(values)).compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            # literal values the statement binds itself (e.g. a direction it always asks for)
            fixed = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not (name.startswith("v") and name[1:].isdigit()) and name not in scalars
            }
            found = self._compiled[key] = (compiled.string, order, fixed)
        sql, order, fixed = found
        params = {**fixed, **scalars, **{f"v{i}": value for i, value in enumerate(values)}}
        if order is not None:
            return _driver_execute(conn, sql, tuple(params[name] for name in order))
        return _driver_execute(conn, sql, params)
