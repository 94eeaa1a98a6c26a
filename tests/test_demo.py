"""The demo sandbox: realistic, legal, complete, deterministic, refreshable, searchable."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from stdnum import isbn as stdnum_isbn
from stdnum import issn as stdnum_issn

from ill_tui import demo, workflow
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import Direction, Event, Partner, Patron, Request, ServiceType
from ill_tui.services import queue, requests

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
N = 3000


def _build(path: Path, **kwargs: Any) -> tuple[Engine, demo.DemoSummary]:
    engine = open_database(sqlite_url(path))
    kwargs.setdefault("requests", N)
    kwargs.setdefault("now", NOW)
    return engine, demo.build_demo(engine, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, demo.DemoSummary]:
    engine, summary = _build(tmp_path_factory.mktemp("demo") / "demo.db")
    yield engine, summary
    engine.dispose()


@pytest.fixture(scope="module")
def rows(built: tuple[Engine, demo.DemoSummary]) -> dict[str, Any]:
    engine, _ = built
    with Session(engine) as s:
        return {
            "requests": list(s.exec(select(Request).order_by(Request.id))),
            "events": list(s.exec(select(Event).order_by(Event.request_id, Event.id))),
            "partners": {p.id: p for p in s.exec(select(Partner))},
            "patrons": {p.id: p for p in s.exec(select(Patron))},
        }


def _libraries(rows: dict[str, Any]) -> list[Partner]:
    return [p for p in rows["partners"].values() if p.agency_id_type != demo.DEMO_MARKER_TYPE]


def test_directory_spans_countries_and_currencies(
    built: tuple[Engine, demo.DemoSummary], rows: dict[str, Any]
) -> None:
    libraries = _libraries(rows)
    assert len(libraries) >= 25
    assert len({p.country for p in libraries}) >= 6
    assert len({p.currency for p in libraries}) >= 5
    assert any(not p.active for p in libraries)
    assert sum(p.active for p in libraries) >= 20
    assert {p.agency_id_type for p in libraries} >= {"ISIL", "OCLC"}
    for p in libraries:
        assert p.endpoint_url == demo.SIMULATOR_URL
        assert p.email
        assert "@" in p.email
        assert p.loan_charge >= 0
        assert p.copy_charge >= 0
        assert p.loan_period_days > 0
    _, summary = built
    assert summary.partners == len(libraries)
    assert summary.countries == len({p.country for p in libraries})


def test_patrons_and_requests_counted(
    built: tuple[Engine, demo.DemoSummary], rows: dict[str, Any]
) -> None:
    patrons = rows["patrons"]
    assert len(patrons) == 300
    assert len({p.barcode for p in patrons.values()}) == 300
    assert {p.category for p in patrons.values()} == {
        "faculty", "graduate", "undergraduate", "staff",
    }  # fmt: skip
    assert any(not p.name.isascii() for p in patrons.values())  # diacritics and more
    assert len(rows["requests"]) == N
    _, summary = built
    assert summary.requests == N
    assert summary.patrons == 300
    assert summary.events == len(rows["events"])
    assert sum(summary.by_status.values()) == N


def test_every_status_of_both_directions_and_both_services(rows: dict[str, Any]) -> None:
    seen = {(r.direction, r.status) for r in rows["requests"]}
    for direction in Direction:
        for status in workflow.STATUSES[direction]:
            assert (direction.value, status.value) in seen, (direction, status)
    assert {(r.direction, r.service_type) for r in rows["requests"]} == {
        (d.value, s.value) for d in Direction for s in ServiceType
    }


def test_identifiers_are_valid(rows: dict[str, Any]) -> None:
    loans = [r for r in rows["requests"] if r.service_type == ServiceType.LOAN.value]
    copies = [r for r in rows["requests"] if r.service_type == ServiceType.COPY.value]
    isbns = [r.isbn for r in loans if r.isbn]
    assert len(isbns) > len(loans) // 2
    for value in isbns:
        assert len(value) == 13, value
        assert stdnum_isbn.is_valid(value), value
    for r in copies:
        assert r.issn
        assert stdnum_issn.is_valid(r.issn), r.issn
        assert r.article_title
        assert r.volume
        assert r.issue
        assert r.pages
        assert r.isbn is None
    assert any(r.doi for r in copies)
    assert all(r.doi.startswith("10.") for r in copies if r.doi)
    assert all(r.title and r.year for r in rows["requests"])


def test_histories_are_legal_paths_over_two_years(rows: dict[str, Any]) -> None:
    by_request: dict[int, list[Event]] = defaultdict(list)
    for e in rows["events"]:
        by_request[e.request_id].append(e)
    assert set(by_request) == {r.id for r in rows["requests"]}
    for r in rows["requests"]:
        events = by_request[r.id]
        first = events[0]
        assert first.from_status is None
        assert first.to_status == workflow.INITIAL[Direction(r.direction)].value
        assert first.reason == "Request created"
        assert first.at == r.created_at
        status = first.to_status
        for before, e in zip(events, events[1:], strict=False):
            assert e.from_status == status
            workflow.check_transition(r.direction, status, e.to_status, e.reason)
            assert e.at > before.at
            assert e.actor
            status = e.to_status
        assert status == r.status
        assert events[-1].at < NOW
        assert r.updated_at == events[-1].at
        assert r.version == len(events)
    created = [r.created_at for r in rows["requests"]]
    assert created == sorted(created)  # id order is arrival order
    assert NOW - created[0] > timedelta(days=700)
    assert NOW - created[-1] < timedelta(days=2)


def test_party_open_partner_and_due_dates(rows: dict[str, Any]) -> None:
    partners, patrons = rows["partners"], rows["patrons"]
    for r in rows["requests"]:
        assert r.is_open == workflow.is_open(r.direction, r.status)
        if r.direction == Direction.BORROWING.value:
            assert r.patron_id is not None
            assert r.party_name == patrons[r.patron_id].name
        else:
            assert r.patron_id is None
            assert r.partner_id is not None
            assert r.party_name == partners[r.partner_id].name
        if r.status in ("Loaned", "Received", "CheckedOut", "Overdue", "Shipped"):
            assert r.due_date is not None, r
            assert r.partner_id is not None
    overdue = [r for r in rows["requests"] if r.status == "Overdue"]
    assert all(r.due_date < NOW.date() for r in overdue)


def test_rota_entries_name_the_lenders(built: tuple[Engine, demo.DemoSummary]) -> None:
    engine, summary = built
    with engine.connect() as conn:
        rota = conn.execute(
            sa.text("SELECT request_id, position, partner_id, outcome FROM rota_entry")
        ).all()
        lenders = dict(
            conn.execute(
                sa.text("SELECT id, partner_id FROM request WHERE direction = 'borrowing'")
            ).all()
        )
    assert len(rota) == summary.rota_entries > 0
    positions: dict[int, list[int]] = defaultdict(list)
    for request_id, position, _partner_id, _outcome in rota:
        assert request_id in lenders  # only borrowing requests have a rota
        positions[request_id].append(position)
    for request_id, got in positions.items():
        assert sorted(got) == list(range(1, len(got) + 1))
        assert lenders[request_id] is not None
    assert {o for *_, o in rota} >= {"Unfilled", "LoanCompleted", "CopyCompleted"}


def test_text_index_is_complete_and_kept_afterwards(built: tuple[Engine, demo.DemoSummary]) -> None:
    engine, _ = built
    with Session(engine) as s:
        counts = queue.status_counts(
            s, queue.QueueQuery(direction=Direction.BORROWING, text="glaciology")
        )
        expected = s.execute(
            sa.text(
                "SELECT count(*) FROM request WHERE direction = 'borrowing' AND "
                "(title LIKE '%glaciology%' OR article_title LIKE '%glaciology%')"
            )
        ).scalar_one()
        page = queue.load_page(
            s, queue.QueueQuery(direction=Direction.BORROWING, status=queue.ALL, text="glaciol")
        )
    assert expected > 0
    assert sum(counts.values()) == expected
    assert page.rows
    assert all("glaciology" in row.title.lower() for row in page.rows)
    # the triggers are back: a request made afterwards is found at once
    with session_scope(engine) as s:
        barcode = s.exec(select(Patron.barcode).where(Patron.active)).first()
        made = requests.create_request(
            s,
            form=requests.RequestForm(title="Zyxwvut Quokka Studies", patron=str(barcode)),
            actor="test",
            clock=lambda: NOW,
        )
        assert made.id == N + 1
    with Session(engine) as s:
        found = queue.load_page(
            s, queue.QueueQuery(direction=Direction.BORROWING, text="quokka")
        ).rows
    assert [row.id for row in found] == [N + 1]


def _schema(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {
            (name, sql)
            for name, sql in conn.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')")
            )
        }


def _digest(engine: Engine) -> str:
    h = hashlib.sha256()
    with engine.connect() as conn:
        for table in ("partner", "patron", "request", "event", "note", "rota_entry"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")):
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def test_same_seed_same_data_refresh_does_not_duplicate(tmp_path: Path) -> None:
    fresh = open_database(sqlite_url(tmp_path / "fresh.db"))
    engine_a, _ = _build(tmp_path / "a.db", requests=800, seed=5)
    engine_b, _ = _build(tmp_path / "b.db", requests=800, seed=5)
    engine_c, _ = _build(tmp_path / "c.db", requests=800, seed=6)
    assert _digest(engine_a) == _digest(engine_b)
    assert _digest(engine_a) != _digest(engine_c)
    assert _schema(engine_a) == _schema(fresh)  # indexes and triggers exactly as migrated
    # a refresh wipes first: same seed gives the same database again
    demo.build_demo(engine_a, requests=800, seed=5, now=NOW)
    assert _digest(engine_a) == _digest(engine_b)
    summary = demo.build_demo(engine_a, requests=200, seed=5, now=NOW)
    with engine_a.connect() as conn:
        n_requests, n_partners, n_markers, max_event_request = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM request), (SELECT count(*) FROM partner), "
                "(SELECT count(*) FROM partner WHERE agency_id_type = 'DEMO'), "
                "(SELECT max(request_id) FROM event)"
            )
        ).one()
        fts_rows = conn.execute(sa.text("SELECT count(*) FROM request_fts")).scalar_one()
    assert (n_requests, n_markers, max_event_request) == (200, 1, 200)
    assert n_partners == summary.partners + 1
    assert fts_rows == 200
    for engine in (fresh, engine_a, engine_b, engine_c):
        engine.dispose()


def test_worker_processes_make_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "BATCH", 300)  # several chunks, so the workers really share
    serial, _ = _build(tmp_path / "serial.db", requests=1500, workers=0)
    parallel, summary = _build(tmp_path / "parallel.db", requests=1500, workers=2)
    assert summary.requests == 1500
    assert _digest(serial) == _digest(parallel)
    serial.dispose()
    parallel.dispose()


def test_refuses_to_wipe_a_live_database(tmp_path: Path) -> None:
    engine = open_database(sqlite_url(tmp_path / "live.db"))
    with session_scope(engine) as s:
        s.add(Partner(agency_id_type="ISIL", agency_id_value="DK-1", name="Real", country="DK",
                      currency="DKK"))  # fmt: skip
    assert demo.holds_other_data(engine)
    assert not demo.is_demo_database(engine)
    with pytest.raises(demo.NotADemoDatabase):
        demo.build_demo(engine, requests=50, now=NOW)
    with engine.connect() as conn:  # untouched
        assert conn.execute(sa.text("SELECT name FROM partner")).scalars().all() == ["Real"]
    demo.build_demo(engine, requests=50, now=NOW, force=True)
    assert demo.is_demo_database(engine)
    assert not demo.holds_other_data(engine)
    engine.dispose()


def _indexes(engine: Engine) -> list[tuple[str, str]]:
    sql = (
        "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name"
        if engine.dialect.name == "sqlite"
        else "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "ORDER BY indexname"
    )
    with engine.connect() as conn:
        return [(name, definition) for name, definition in conn.execute(sa.text(sql))]


def test_small_sandbox_on_each_database(db_url: str) -> None:
    """SQLite and PostgreSQL: the load, the refresh and the id sequences afterwards."""
    engine = open_database(db_url)
    try:
        migrated = _indexes(engine)
        demo.build_demo(engine, requests=300, now=NOW)
        assert _indexes(engine) == migrated  # dropped for the load, back exactly as they were
        summary = demo.build_demo(engine, requests=300, now=NOW)  # refresh
        with session_scope(engine) as s:
            assert len(s.exec(select(Request)).all()) == 300
            assert len(s.exec(select(Event)).all()) == summary.events
            barcode = s.exec(select(Patron.barcode).where(Patron.active)).first()
            made = requests.create_request(
                s,
                form=requests.RequestForm(title="After the demo", patron=str(barcode)),
                actor="test",
                clock=lambda: NOW,
            )
            assert made.id == 301
            requests.add_note(s, request_id=made.id, author="t", text="ok", clock=lambda: NOW)
        with Session(engine) as s:
            page = queue.load_page(s, queue.QueueQuery(text="After the demo"))
            assert [row.id for row in page.rows] == [301]
            statuses = {(r.direction, r.status) for r in s.exec(select(Request))}
        assert len(statuses) == sum(len(v) for v in workflow.STATUSES.values())
    finally:
        engine.dispose()
