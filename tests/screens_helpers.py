"""Helpers for the Pilot tests of the screens: a seeded temp database, a fixed clock, text.

Kept out of ``conftest.py`` on purpose (another module owns it); the screen tests import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.text import Text
from sqlalchemy.engine import Engine
from textual.content import Content

from ill_tui.app import IllApp
from ill_tui.db import open_database, session_scope
from ill_tui.models import Partner, Patron
from ill_tui.services.desk import Desk
from ill_tui.services.requests import RequestForm, change_status, create_request

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ACTOR = "tester"
SIZE = (120, 40)


def fixed_clock(at: datetime = NOW) -> Callable[[], datetime]:
    """A clock that always says ``at``."""
    return lambda: at


# (days ago, form values); ids follow this order, so id order is age order.
BORROWING = (
    (10, {"title": "Being and Time", "author": "Heidegger, Martin", "patron": "P001",
          "isbn": "9780060638504", "needed_by": "2026-04-01"}),
    (7, {"title": "Cybernetics", "author": "Wiener, Norbert", "patron": "P002",
         "needed_by": "2026-03-10"}),
    (5, {"title": "Algebraic Topology", "author": "Hatcher, Allen", "patron": "P001"}),
    (3, {"title": "Zen and the Art of Motorcycle Maintenance", "author": "Pirsig, Robert",
         "patron": "P002"}),
)  # fmt: skip
LENDING = (
    (6, {"direction": "lending", "title": "Moby-Dick", "author": "Melville, Herman",
         "partner": "ISIL:DK-820010"}),
    (2, {"direction": "lending", "title": "On the Origin of Species", "author": "Darwin",
         "partner": "Zeta University Library"}),
)  # fmt: skip


def seed(engine: Engine) -> dict[str, int]:
    """Two patrons, two partners, four borrowing and two lending requests.

    Borrowing: "Being and Time" (New, oldest), "Cybernetics" (New), "Algebraic Topology"
    (Verifying), "Zen and the Art…" (Cancelled). Lending: "Moby-Dick", "On the Origin of
    Species" (both RequestReceived). Returns the request ids by short name.
    """
    ids: dict[str, int] = {}
    with session_scope(engine) as session:
        session.add(Patron(barcode="P001", name="Ada Lovelace"))
        session.add(Patron(barcode="P002", name="Grace Hopper"))
        session.add(
            Partner(
                agency_id_type="ISIL",
                agency_id_value="DK-820010",
                name="Royal Danish Library",
                country="DK",
                currency="DKK",
            )
        )
        session.add(
            Partner(
                agency_id_type="OCLC",
                agency_id_value="ZZU",
                name="Zeta University Library",
                country="US",
                currency="USD",
            )
        )
        session.flush()
        for days, values in BORROWING + LENDING:
            request = create_request(
                session,
                form=RequestForm(**values),  # type: ignore[arg-type]
                actor=ACTOR,
                clock=fixed_clock(NOW - timedelta(days=days)),
            )
            assert request.id is not None
            ids[values["title"].split()[0].lower()] = request.id
        change_status(
            session, request_id=ids["algebraic"], to_status="Verifying", actor=ACTOR,
            clock=fixed_clock(NOW - timedelta(days=4)),
        )  # fmt: skip
        change_status(
            session, request_id=ids["zen"], to_status="Cancelled", actor=ACTOR,
            reason="Patron no longer needs it", clock=fixed_clock(NOW - timedelta(days=2)),
        )  # fmt: skip
    return ids


def make_app(tmp_path: Path, *, seeded: bool = True, **kwargs: Any) -> tuple[IllApp, Engine]:
    """An app over a fresh migrated SQLite database in ``tmp_path`` (seeded unless told not)."""
    engine = open_database(f"sqlite:///{tmp_path}/t.db")
    if seeded:
        seed(engine)
    desk = Desk(engine, actor=ACTOR, clock=fixed_clock())
    return IllApp(desk, clock=fixed_clock(), **kwargs), engine


def plain(value: object) -> str:
    """The text of what a Static/Label shows (str, Content or rich Text)."""
    if isinstance(value, Text):
        return value.plain
    if isinstance(value, Content):
        return value.plain
    return str(value)


def table_column(table: Any, key: str) -> list[str]:
    """The plain text of one column of a DataTable, top to bottom."""
    return [plain(cell) for cell in table.get_column(key)]


def rendered(renderable: object, width: int = 120) -> str:
    """Render a rich renderable (e.g. a Static's rich Table) to plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


async def settle(pilot: Any) -> None:
    """Let workers finish and their messages be handled (no sleeping)."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    # The counts per status are recounted once typing pauses (a short timer): wait for them.
    for _ in range(200):
        if not getattr(pilot.app.screen, "counts_pending", False):
            break
        await pilot.pause(0.02)
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()
