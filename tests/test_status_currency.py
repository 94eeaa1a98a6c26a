"""The status-change dialog offers costs in our own currency unless told otherwise."""

from __future__ import annotations

from pathlib import Path

from screens_helpers import ACTOR, fixed_clock, seed

from ill_tui.config import Settings
from ill_tui.db import open_database
from ill_tui.services.desk import Desk
from screens.status_change import StatusChangeModal


def _modal(desk: Desk, **kwargs: str) -> StatusChangeModal:
    return StatusChangeModal(
        desk, request_id=1, direction="lending", status="RequestReceived", version=1, **kwargs
    )


def test_offered_cost_currency_defaults_to_the_home_currency(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    engine = open_database(url)
    seed(engine)
    settings = Settings(database_url=url, home_currency="DKK")
    desk = Desk(engine, actor=ACTOR, clock=fixed_clock(), settings=settings)
    assert _modal(desk).home_currency == "DKK"
    assert _modal(desk, home_currency="EUR").home_currency == "EUR"
    bare = Desk(engine, actor=ACTOR, clock=fixed_clock())
    assert _modal(bare).home_currency == "USD"
    engine.dispose()
