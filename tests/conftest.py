"""Shared fixtures: databases (a SQLite file, a real PostgreSQL server) and a fixed clock.

Fixtures other test modules are meant to use:

- ``db_url``: the URL of a fresh, *empty* database, once on SQLite and once on PostgreSQL
  (test ids ``[sqlite]`` / ``[postgresql]``; the PostgreSQL run carries the ``postgres``
  mark, so ``-m "not postgres"`` leaves it out). Call ``ill_tui.db.open_database(db_url)``
  to migrate it, or use ``engine``.
- ``engine``: ``open_database(db_url)``, i.e. migrated to head; disposed afterwards.
- ``sqlite_url``: a fresh SQLite file URL only. ``pg_url``: a fresh PostgreSQL database only.
- ``pg_server``: the session's PostgreSQL server (``tests/pg_server.py``), started on first
  use on a free loopback port and stopped (its directory deleted) at the end of the session.
- ``zebra``: the session's Index Data Zebra SRU server (``tests/zebra_server.py``) with real
  MARC records: ``zebra.url("biblio")`` (all 3,689) and ``zebra.url("local")`` (99 British
  Library records with 852 holdings); stopped and its directory deleted at the end.
- ``clock``: a ``FixedClock`` (callable, aware UTC, ``advance(...)`` to move it on);
  ``FIXED_NOW`` is where it starts.

When PostgreSQL is not installed the PostgreSQL variants are skipped with the reason, except
under ``CI=true``, where a missing server fails the test instead. The same holds for Zebra.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).parent))

from pg_server import PostgresServer, PostgresUnavailable, start_server  # noqa: E402
from zebra_server import ZebraServer, ZebraUnavailable  # noqa: E402
from zebra_server import start_server as start_zebra  # noqa: E402

from ill_tui.config import sqlite_url as _sqlite_url  # noqa: E402
from ill_tui.db import open_database  # noqa: E402

FIXED_NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


class FixedClock:
    """A clock for tests: returns the same aware UTC instant until told to move."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        assert now.tzinfo is not None, "the clock must be timezone-aware"
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock on by ``timedelta(**delta)`` and return the new time."""
        self.now = self.now + timedelta(**delta)
        return self.now


def in_ci() -> bool:
    """True when running under CI, where missing servers are failures, not skips."""
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture
def clock() -> FixedClock:
    """A fixed clock starting at ``FIXED_NOW``."""
    return FixedClock()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet (one per test)."""
    return _sqlite_url(tmp_path / "ill-tui.db")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (skipped/failed if not installed)."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    sys.stderr.write(
        f"\n[pg_server] PostgreSQL started on 127.0.0.1:{server.port} "
        f"in {server.started_in:.2f}s ({server.bin_dir})\n"
    )
    # A run stopped by `timeout` (SIGTERM) must not leave a server behind: turn SIGTERM into
    # KeyboardInterrupt, which pytest unwinds through the teardowns; atexit is the last resort.
    atexit.register(server.stop)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sigterm_to_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database: once SQLite, once PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """``open_database(db_url)``: the fresh database migrated to head."""
    eng = open_database(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


# ---------------------------------------------------------------------------- Zebra (SRU)
@pytest.fixture(scope="session")
def zebra() -> Iterator[ZebraServer]:
    """A real Zebra SRU server for the whole session (skipped/failed if not installed)."""
    try:
        server = start_zebra()
    except ZebraUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    sys.stderr.write(
        f"\n[zebra] Zebra serving {server.databases} on 127.0.0.1:{server.port}, answering "
        f"after {server.started_in:.2f}s ("
        + ("register from cache" if server.from_cache else f"indexed in {server.indexed_in:.2f}s")
        + ")\n"
    )
    atexit.register(server.stop)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
