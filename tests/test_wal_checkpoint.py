"""``ill-tui serve`` checkpoints SQLite's write-ahead log in a thread, not in a commit.

What staff would notice if this went wrong: the ``-wal`` file beside the database growing
while the server runs, or rows missing after a stop.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from ill_tui.db import SERVE_AUTOCHECKPOINT, WalCheckpointer, open_database

PAGE = 4096


def _write(engine: sa.Engine, transactions: int, rows: int = 20) -> None:
    """Small write transactions, one after the other, as the endpoint makes them."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, b BLOB)")
    for _ in range(transactions):
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO filler (b) VALUES (?)", [(b"x" * 1500,) for _ in range(rows)]
            )


def _wal_pages(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size // PAGE if wal.exists() else 0


def _bursts(engine: sa.Engine, path: Path, checkpointer: WalCheckpointer | None = None) -> int:
    """20 bursts of 15 transactions (about 120 pages each) with pauses; the largest WAL.

    With a checkpointer, each pause lasts until it has started a checkpoint after the burst
    (two runs), as a pause in real traffic outlasts its interval.
    """
    largest = 0
    for _ in range(20):
        _write(engine, 15)
        largest = max(largest, _wal_pages(path))
        if checkpointer is None:
            time.sleep(0.05)
            continue
        until = checkpointer.runs + 2
        deadline = time.monotonic() + 10
        while checkpointer.runs < until and time.monotonic() < deadline:
            time.sleep(0.005)
    return largest


def test_the_checkpointer_keeps_the_wal_small_between_bursts(tmp_path: Path) -> None:
    path = tmp_path / "serve.db"
    engine = open_database(f"sqlite:///{path}", autocheckpoint=SERVE_AUTOCHECKPOINT)
    checkpointer = WalCheckpointer(path, interval=0.02)
    checkpointer.start()
    try:
        largest = _bursts(engine, path, checkpointer)
    finally:
        checkpointer.stop()
    try:
        # The ~2,400 pages written never pile up: after each pause the WAL starts over.
        assert largest < 600, largest
        with engine.connect() as conn:
            count = conn.exec_driver_sql("SELECT count(*) FROM filler").scalar_one()
        assert count == 300 * 20
    finally:
        engine.dispose()


def test_without_the_checkpointer_the_serve_settings_let_the_wal_grow(tmp_path: Path) -> None:
    """The control: the same bursts on the server's settings, nobody checkpointing."""
    path = tmp_path / "serve.db"
    engine = open_database(f"sqlite:///{path}", autocheckpoint=SERVE_AUTOCHECKPOINT)
    try:
        assert _bursts(engine, path) > 2000
        busy, frames, copied = WalCheckpointer(path).checkpoint()
        assert busy == 0
        assert copied == frames > 2000
    finally:
        engine.dispose()
