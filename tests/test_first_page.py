"""The queue's first page is read before the app starts and is in the very first frame."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from screens_helpers import ACTOR, SIZE, fixed_clock, seed, settle, table_column
from textual import events
from textual.message import Message

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


async def test_the_first_frame_written_shows_the_rows_with_the_table_focused(
    tmp_path: Path,
) -> None:
    desk = _desk(tmp_path)
    app = IllApp(desk, clock=fixed_clock(), first_page=prefetch_first_page(desk))
    # The frames a terminal would get: Textual drops the updates it composes inside a batch.
    written: list[str] = []
    original = app._display

    def display(screen: Any, update: Any) -> None:
        if not app._batch_count and hasattr(update, "render_segments"):
            text = update.render_segments(app.console)
            written.append(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text))
        original(screen, update)

    app._display = display  # type: ignore[method-assign,assignment]
    focus_moves: list[str] = []

    def hook(message: Message) -> None:
        if type(message) in (events.Focus, events.Blur):
            focus_moves.append(type(message).__name__)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await pilot.pause()
        assert app.screen.focused is app.screen.query_one("#queue-table", QueueTable)
        # the table took the focus once: the search box never had it (nor showed its cursor)
        assert focus_moves == ["Focus"]
    first = written[0]
    for title in ("Being and Time", "Cybernetics", "Algebraic Topology"):
        assert title in first
    # the key bar of the table (not of the search box) from the first frame on
    assert "Open" in first
    assert "Back to table" not in first
