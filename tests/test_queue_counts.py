"""Counts per status: right numbers, and a count staff typed past can be interrupted."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ill_tui.db import open_database, session_scope
from ill_tui.models import Direction
from ill_tui.services import queue


def _bulk(engine: Engine, n: int) -> None:
    rows = [
        {
            "direction": "borrowing" if i % 2 else "lending",
            "service_type": "Loan",
            "status": "New" if i % 3 else "Cancelled",
            "is_open": bool(i % 3),
            "title": f"history of volume {i}",
            "party_name": "Ada",
            "rota_position": 0,
            "created_at": "2026-01-01 00:00:00",
            "updated_at": "2026-01-01 00:00:00",
            "version": 1,
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO request (direction, service_type, status, is_open, title, "
                "party_name, rota_position, created_at, updated_at, version) VALUES "
                "(:direction, :service_type, :status, :is_open, :title, :party_name, "
                ":rota_position, :created_at, :updated_at, :version)"
            ),
            rows,
        )


@pytest.fixture
def big(sqlite_url: str) -> Engine:
    engine = open_database(sqlite_url)
    _bulk(engine, 6000)
    return engine


def test_counts_per_status_with_and_without_text(big: Engine) -> None:
    with session_scope(big) as session:
        counts = queue.status_counts(session, queue.QueueQuery(direction=Direction.BORROWING))
        text = queue.status_counts(
            session, queue.QueueQuery(direction=Direction.BORROWING, text="hist volume")
        )
    assert counts == {"New": 2000, "Cancelled": 1000}
    assert text == counts


def test_a_cancelled_count_stops_and_the_connection_stays_usable(big: Engine) -> None:
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return True

    query = queue.QueueQuery(direction=Direction.BORROWING)
    with session_scope(big) as session, pytest.raises(queue.QueryCancelled):
        queue.status_counts(session, query, cancelled=cancelled)
    assert asked, "the query never asked whether it was cancelled"
    with session_scope(big) as session:  # the pooled connection has no handler left on it
        assert sum(queue.status_counts(session, query, cancelled=lambda: False).values()) == 3000
        assert sum(queue.status_counts(session, query).values()) == 3000


def test_text_search_follows_a_status_change(db_url: str) -> None:
    """The text index narrows searches to a queue; a status change must move the request."""
    from ill_tui.models import Patron
    from ill_tui.services import requests

    engine = open_database(db_url)
    try:
        with session_scope(engine) as session:
            session.add(Patron(barcode="P1", name="Grace Hopper"))
        with session_scope(engine) as session:
            form = requests.RequestForm(title="Compilers in practice", patron="P1")
            request_id = requests.create_request(session, form=form, actor="t").id
        assert request_id is not None

        def ids(status: str) -> list[int]:
            q = queue.QueueQuery(direction=Direction.BORROWING, status=status, text="compil")
            with session_scope(engine) as session:
                return [row.id for row in queue.load_page(session, q).rows]

        def counts() -> dict[str, int]:
            q = queue.QueueQuery(direction=Direction.BORROWING, text="compil")
            with session_scope(engine) as session:
                return queue.status_counts(session, q)

        assert ids(queue.OPEN) == [request_id]
        assert ids("New") == [request_id]
        assert counts() == {"New": 1}
        with session_scope(engine) as session:
            requests.change_status(
                session, request_id=request_id, to_status="Cancelled", actor="t", reason="dup"
            )
        assert ids(queue.OPEN) == []
        assert ids("New") == []
        assert ids("Cancelled") == [request_id]
        assert ids(queue.ALL) == [request_id]
        assert counts() == {"Cancelled": 1}
    finally:
        engine.dispose()
