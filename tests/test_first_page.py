"""The queue's first page is read before the app starts and is in the very first frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from screens_helpers import ACTOR, SIZE, fixed_clock, seed, settle, table_column

from ill_tui.app import IllApp, prefetch_first_page
from ill_tui.db import open_database
from ill_tui.services.desk import Desk
from screens.queue import QueueScreen
from screens.widgets.queue_table import QueueTable


def titles(app: Any) -> list[str]:
    return table_column(app.screen.query_one("#queue-table", QueueTable), "title")


def _desk(tmp_path: Path) -> Desk:
    engine = open_database(f"sqlite:///{tmp_path}/t.db")
    seed(engine)
    return Desk(engine, actor=ACTOR, clock=fixed_clock())


async def test_prefetched_first_page_is_shown_without_asking_the_database_again(
    tmp_path: Path,
) -> None:
    desk = _desk(tmp_path)
    first = prefetch_first_page(desk)
    assert first is not None
    asked: list[Any] = []
    original = desk.load_page

    def counting(query: Any) -> Any:
        asked.append(query)
        return original(query)

    desk.load_page = counting  # type: ignore[method-assign]
    app = IllApp(desk, clock=fixed_clock(), first_page=first)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen)
        # open borrowing requests, oldest first: the cancelled one is not in the queue
        assert titles(app) == ["Being and Time", "Cybernetics", "Algebraic Topology"]
        assert asked == []
        await settle(pilot)
        assert app.screen.counts  # the counts per status still follow
        await pilot.press("l")  # and the queue loads normally after that
        await settle(pilot)
        assert titles(app) == ["Moby-Dick", "On the Origin of Species"]
        assert len(asked) == 1


async def test_a_failed_prefetch_leaves_the_screen_to_load_and_report(tmp_path: Path) -> None:
    desk = _desk(tmp_path)

    def broken(query: Any) -> Any:
        raise RuntimeError("database unreachable")

    desk.load_page = broken  # type: ignore[method-assign]
    assert prefetch_first_page(desk) is None
    app = IllApp(desk, clock=fixed_clock(), first_page=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors
        assert "database unreachable" in errors[0].message
