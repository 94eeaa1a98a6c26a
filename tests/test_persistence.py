"""Requests, events, notes and the queues on a real database: SQLite and PostgreSQL.

Every test here runs twice through ``db_url`` (ids ``[sqlite]`` and ``[postgresql]``), except
the ``EXPLAIN QUERY PLAN`` checks, which are about SQLite's plans.

Free-text search differs on purpose between the two: SQLite's FTS5 index uses the
``unicode61 remove_diacritics 2`` tokenizer, so ``muller`` finds ``Müller``; PostgreSQL's
index uses the ``simple`` configuration (no dictionary, no unaccent), so there only the
exact letters (``Müller``, ``müller``) find it. ``test_diacritics`` pins both behaviours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from ill_tui import db as dbmod
from ill_tui.clock import Clock
from ill_tui.db import DatabaseError, current_revision, head_revision, open_database, session_scope
from ill_tui.models import Direction, Event, Note, Partner, Patron, Request, Status
from ill_tui.services import queue
from ill_tui.services import requests as svc
from ill_tui.services.queue import ALL, OPEN, QueueQuery, SortKey
from ill_tui.workflow import IllegalTransition, ReasonRequired

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


class Ticker:
    """A clock that moves one minute on each call: every write gets its own instant."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def eng(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    with session_scope(engine) as session:
        session.add_all(
            [
                Patron(barcode="P1", name="Ada Reader"),
                Patron(barcode="P2", name="Zoë Müller", category="faculty"),
                Patron(barcode="P3", name="Gone Away", active=False),
                Partner(
                    agency_id_type="ISIL", agency_id_value="DK-820010",
                    name="Royal Danish Library", country="DK", currency="DKK",
                    loan_charge=Decimal("9999999999.9999"), copy_charge=Decimal("0.0001"),
                ),
                Partner(
                    agency_id_type="OCLC", agency_id_value="ZCU", name="Columbia University",
                    country="US", currency="USD", loan_charge=Decimal("12.5"),
                ),
            ]
        )  # fmt: skip
    yield engine
    engine.dispose()


def borrow(title: str = "Quantum Mechanics and Path Integrals", **kw: Any) -> svc.RequestForm:
    return svc.RequestForm(direction="borrowing", title=title, patron=kw.pop("patron", "P1"), **kw)


def lend(title: str = "A Lent Book", **kw: Any) -> svc.RequestForm:
    return svc.RequestForm(
        direction="lending", title=title, partner=kw.pop("partner", "ISIL:DK-820010"), **kw
    )


def create(engine: sa.Engine, form: svc.RequestForm, clock: Clock | None = None) -> Request:
    with session_scope(engine) as session:
        return svc.create_request(session, form=form, actor="ann", clock=clock or Ticker())


def move(engine: sa.Engine, request_id: int, *path: Status, reason: str | None = None) -> None:
    for status in path:
        with session_scope(engine) as session:
            svc.change_status(
                session, request_id=request_id, to_status=status, actor="bo", reason=reason
            )


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(table)).one()
            for table in (Request, Event, Note)
        )


def snapshot(engine: sa.Engine, request_id: int) -> tuple[Any, ...]:
    with Session(engine) as session:
        r = session.get(Request, request_id)
        assert r is not None
        events = session.exec(select(func.count()).where(Event.request_id == request_id)).one()
        return (r.status, r.is_open, r.version, r.updated_at, events)


# ------------------------------------------------------------------------------- migrations


def test_open_database_migrates_then_is_a_no_op(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_database(db_url)
    try:
        assert current_revision(engine) == head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert {"patron", "partner", "request", "rota_entry", "event", "note"} <= tables
    finally:
        engine.dispose()

    def no_upgrade(*_a: object, **_k: object) -> None:
        raise AssertionError("a second open must not migrate again")

    monkeypatch.setattr(dbmod, "upgrade", no_upgrade)
    engine = open_database(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_database_from_a_newer_version_is_refused(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="newer version"):
        open_database(db_url)


# --------------------------------------------------------------------------- create_request


def test_create_request_stores_request_first_event_and_note(eng: sa.Engine) -> None:
    clock = Ticker()
    form = borrow(
        author="Feynman, Richard", isbn="0-306-40615-2", oclc_number="ocm00012345",
        lccn="sn 78-1234", doi="doi:10.1000/182", year="1965", needed_by="2026-12-31",
        max_cost="25.5", max_cost_currency="usd", note="Patron needs it for a seminar.",
    )  # fmt: skip
    request = create(eng, form, clock)
    assert request.id is not None
    with Session(eng) as session:
        stored = session.get(Request, request.id)
        assert stored is not None
        assert (stored.direction, stored.status, stored.is_open, stored.version) == (
            "borrowing", "New", True, 1,
        )  # fmt: skip
        assert stored.party_name == "Ada Reader"
        assert (stored.isbn, stored.oclc_number, stored.lccn, stored.doi) == (
            "9780306406157", "12345", "sn78001234", "10.1000/182",
        )  # fmt: skip
        assert stored.needed_by == date(2026, 12, 31)
        assert (stored.max_cost, stored.max_cost_currency) == (Decimal("25.50"), "USD")
        assert stored.created_at == clock.now
        events = session.exec(select(Event).where(Event.request_id == request.id)).all()
        notes = session.exec(select(Note).where(Note.request_id == request.id)).all()
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [(None, "New", "ann")]
    assert [(n.author, n.text) for n in notes] == [("ann", "Patron needs it for a seminar.")]


def test_create_lending_request_finds_the_partner(eng: sa.Engine) -> None:
    for spelled in ("ISIL:DK-820010", "isil:DK-820010", "DK-820010", "royal danish library"):
        request = create(eng, lend(partner=spelled))
        assert (request.status, request.party_name) == ("RequestReceived", "Royal Danish Library")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (borrow(isbn="0-306-40615-3"), "isbn"),  # wrong check digit
        (borrow(issn="0022-1431"), "issn"),
        (borrow(title=""), "title"),
        (borrow(max_cost="-5", max_cost_currency="USD"), "max_cost"),
        (borrow(max_cost="1e12", max_cost_currency="USD"), "max_cost"),
        (borrow(max_cost="5", max_cost_currency="XYZ"), "max_cost_currency"),
        (borrow(patron="NOPE"), "patron"),
        (borrow(patron="P3"), "patron"),  # inactive
        (lend(partner="ISIL:XX-0000"), "partner"),
        (svc.RequestForm(direction="sideways", title="x", patron="P1"), "direction"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_refused_form_writes_nothing(eng: sa.Engine, form: svc.RequestForm, field: str) -> None:
    with pytest.raises(svc.ValidationFailed) as info:
        create(eng, form)
    assert field in info.value.errors
    assert info.value.errors[field]
    assert counts(eng) == (0, 0, 0)


# ---------------------------------------------------------------------------- change_status


def test_change_status_writes_status_and_event_together(eng: sa.Engine) -> None:
    clock = Ticker()
    request_id = create(eng, borrow(), clock).id
    assert request_id is not None
    with session_scope(eng) as session:
        svc.change_status(
            session, request_id=request_id, to_status="Cancelled", actor="bo",
            reason="  Patron no longer needs it ", expected_version=1, clock=clock,
        )  # fmt: skip
    with Session(eng) as session:
        r = session.get(Request, request_id)
        assert r is not None
        assert (r.status, r.is_open, r.version, r.updated_at) == ("Cancelled", False, 2, clock.now)
        last = session.exec(select(Event).order_by(col(Event.id).desc())).first()
    assert last is not None
    assert (last.actor, last.from_status, last.to_status, last.reason, last.at) == (
        "bo", "New", "Cancelled", "Patron no longer needs it", clock.now,
    )  # fmt: skip


def test_illegal_or_unreasoned_transitions_write_nothing(eng: sa.Engine) -> None:
    request_id = create(eng, borrow()).id
    assert request_id is not None
    before = snapshot(eng, request_id)
    with pytest.raises(IllegalTransition, match="Verifying, Sourcing, Cancelled"):
        move(eng, request_id, Status.LOANED)
    with pytest.raises(ReasonRequired):
        move(eng, request_id, Status.CANCELLED, reason="   ")
    with pytest.raises(svc.RequestNotFound):
        move(eng, 999_999, Status.VERIFYING)
    assert snapshot(eng, request_id) == before


def test_a_failing_event_rolls_the_status_back(eng: sa.Engine) -> None:
    request_id = create(eng, borrow()).id
    assert request_id is not None
    before = snapshot(eng, request_id)
    # The status UPDATE runs first; the Event INSERT then fails (actor is NOT NULL).
    with pytest.raises(sa.exc.IntegrityError), session_scope(eng) as session:
        svc.change_status(
            session,
            request_id=request_id,
            to_status=Status.VERIFYING,
            actor=None,  # type: ignore[arg-type]
        )
    assert snapshot(eng, request_id) == before


def test_a_stale_version_is_refused_and_changes_nothing(eng: sa.Engine) -> None:
    request_id = create(eng, borrow()).id
    assert request_id is not None
    move(eng, request_id, Status.VERIFYING)  # version 2 now
    before = snapshot(eng, request_id)
    with pytest.raises(svc.StaleRequest), session_scope(eng) as session:
        svc.change_status(
            session, request_id=request_id, to_status=Status.SOURCING, actor="cy",
            expected_version=1,
        )  # fmt: skip
    assert snapshot(eng, request_id) == before


def test_two_desks_racing_one_loses(eng: sa.Engine) -> None:
    """Both read version 1; the first commit wins, the second is told to reload."""
    request_id = create(eng, borrow()).id
    assert request_id is not None
    with Session(eng) as first, Session(eng) as second:
        svc.get_request(first, request_id)
        seen = svc.get_request(second, request_id).version
        svc.change_status(first, request_id=request_id, to_status="Verifying", actor="ann")
        first.commit()
        with pytest.raises(svc.StaleRequest):
            svc.change_status(
                second, request_id=request_id, to_status="Sourcing", actor="bo",
                expected_version=seen,
            )  # fmt: skip
        second.rollback()
    assert snapshot(eng, request_id)[:3] == ("Verifying", True, 2)


# ------------------------------------------------------------------------ notes and history


def test_add_note(eng: sa.Engine) -> None:
    request_id = create(eng, borrow()).id
    assert request_id is not None
    with session_scope(eng) as session:
        note = svc.add_note(
            session, request_id=request_id, author="cy", text="  Called the patron "
        )
    assert note.text == "Called the patron"
    for text in ("", "   "):
        with pytest.raises(svc.ValidationFailed), session_scope(eng) as session:
            svc.add_note(session, request_id=request_id, author="cy", text=text)
    with pytest.raises(svc.ValidationFailed), session_scope(eng) as session:
        svc.add_note(session, request_id=request_id, author="cy", text="x" * 10_001)
    with pytest.raises(svc.RequestNotFound), session_scope(eng) as session:
        svc.add_note(session, request_id=424242, author="cy", text="lost")
    assert counts(eng)[2] == 1


def test_history_merges_events_and_notes_in_time_order(eng: sa.Engine) -> None:
    clock = Ticker()
    request_id = create(eng, borrow(note="first note"), clock).id  # event + note at t1
    assert request_id is not None
    with session_scope(eng) as session:
        svc.add_note(session, request_id=request_id, author="cy", text="second", clock=clock)
        svc.change_status(
            session, request_id=request_id, to_status="Verifying", actor="bo", clock=clock
        )
        svc.add_note(session, request_id=request_id, author="cy", text="third", clock=clock)
        svc.change_status(
            session, request_id=request_id, to_status="Cancelled", actor="bo",
            reason="Duplicate", clock=clock,
        )  # fmt: skip
    with Session(eng) as session:
        detail = svc.request_detail(session, request_id)
    history = [(h.kind, h.from_status, h.to_status, h.text) for h in detail.history]
    assert history == [
        ("status", None, "New", "— → New: Request created"),  # same instant: status first
        ("note", None, None, "first note"),
        ("note", None, None, "second"),
        ("status", "New", "Verifying", "New → Verifying"),
        ("note", None, None, "third"),
        ("status", "Verifying", "Cancelled", "Verifying → Cancelled: Duplicate"),
    ]
    ats = [h.at for h in detail.history]
    assert ats == sorted(ats)
    assert all(at.tzinfo is not None and at.utcoffset() == timedelta(0) for at in ats)
    assert detail.patron is not None
    assert detail.patron.barcode == "P1"
    assert detail.transitions == []  # Cancelled is final


# ----------------------------------------------------------------------------------- queues


TITLES = ["Zebra studies", "alpha", "Alpha", "Émile", "beta", "Gamma rays", "delta"]


@pytest.fixture
def queue_eng(eng: sa.Engine) -> sa.Engine:
    """37 borrowing requests in a mix of statuses, titles, patrons and dates, 5 lending ones."""
    clock = Ticker()
    for i in range(37):
        form = borrow(
            title=f"{TITLES[i % len(TITLES)]} {i // 3}",
            patron="P2" if i % 5 == 0 else "P1",
            needed_by="" if i % 4 == 0 else (date(2027, 1, 1) + timedelta(days=i % 6)).isoformat(),
        )
        request_id = create(eng, form, clock).id
        assert request_id is not None
        if i % 4 == 1:
            move(eng, request_id, Status.VERIFYING)
        elif i % 4 == 2:
            move(eng, request_id, Status.CANCELLED, reason="dup")
        elif i % 4 == 3:
            move(eng, request_id, Status.SOURCING)
    for i in range(5):
        create(eng, lend(title=f"Lent {i}"), clock)
    return eng


def load(engine: sa.Engine, **kw: Any) -> queue.QueuePage:
    with Session(engine) as session:
        return queue.load_page(session, QueueQuery(**kw))


def all_rows(engine: sa.Engine, **kw: Any) -> list[queue.QueueRow]:
    page = load(engine, page=0, page_size=10_000, **kw)
    assert not page.has_more
    return page.rows


SORTS = [(sort, descending) for sort in SortKey for descending in (False, True)]


@pytest.mark.parametrize("status", [OPEN, ALL])
def test_pages_have_no_duplicates_or_gaps(queue_eng: sa.Engine, status: str) -> None:
    """Every sort key, both directions: the pages put together are the whole queue, in order."""
    for sort, descending in SORTS:
        check_paging(queue_eng, sort=sort, descending=descending, status=status)


def check_paging(engine: sa.Engine, *, sort: SortKey, descending: bool, status: str) -> None:
    what = f"sort={sort} descending={descending} status={status}"
    everything = all_rows(engine, sort=sort, descending=descending, status=status)
    assert len(everything) == (28 if status == OPEN else 37), what
    paged: list[queue.QueueRow] = []
    page_no = 0
    while True:
        page = load(engine, sort=sort, descending=descending, status=status,
                    page=page_no, page_size=8)  # fmt: skip
        assert len(page.rows) <= 8, what
        paged += page.rows
        if not page.has_more:
            break
        assert len(page.rows) == 8, what
        page_no += 1
    assert page_no == (len(everything) - 1) // 8, what
    assert [r.id for r in paged] == [r.id for r in everything], what
    assert len({r.id for r in paged}) == len(paged), what
    beyond = load(engine, sort=sort, descending=descending, status=status, page=page_no + 1,
                  page_size=8)  # fmt: skip
    assert (beyond.rows, beyond.has_more) == ([], False), what

    key = {
        SortKey.ID: lambda r: (r.id,),
        SortKey.AGE: lambda r: (r.id,),
        SortKey.STATUS: lambda r: (r.status, r.id),
        SortKey.TITLE: lambda r: (r.title, r.id),  # C collation on PostgreSQL: bytewise
        SortKey.PARTY: lambda r: (r.party, r.id),
    }.get(sort)
    if key is not None:
        assert paged == sorted(paged, key=key, reverse=descending), what
    else:  # needed_by: NULLs sort first on SQLite, last on PostgreSQL; the rest is ordered
        dated = [(r.needed_by, r.id) for r in paged if r.needed_by is not None]
        assert dated == sorted(dated, reverse=descending), what


def test_status_filters_and_counts(queue_eng: sa.Engine) -> None:
    open_rows = all_rows(queue_eng, status=OPEN)
    assert {r.status for r in open_rows} == {"New", "Verifying", "Sourcing"}
    every = all_rows(queue_eng, status=ALL)
    assert {r.status for r in every} == {"New", "Verifying", "Sourcing", "Cancelled"}
    verifying = all_rows(queue_eng, status="Verifying")
    assert len(verifying) == 9
    assert {r.status for r in verifying} == {"Verifying"}
    lending = all_rows(queue_eng, direction=Direction.LENDING, status=ALL)
    assert [r.title for r in lending] == [f"Lent {i}" for i in range(5)]
    with Session(queue_eng) as session:
        counts_ = queue.status_counts(session, QueueQuery(status="Verifying"))
        lending_counts = queue.status_counts(session, QueueQuery(direction=Direction.LENDING))
        zebra = queue.status_counts(session, QueueQuery(text="zebra"))
    assert counts_ == {"New": 10, "Verifying": 9, "Sourcing": 9, "Cancelled": 9}
    assert lending_counts == {"RequestReceived": 5}
    zebra_rows = all_rows(queue_eng, status=ALL, text="zebra")
    assert sum(zebra.values()) == len(zebra_rows) == 6


# ------------------------------------------------------------------------------ text filter


@pytest.fixture
def search_eng(eng: sa.Engine) -> sa.Engine:
    create(eng, borrow("Quantum Mechanics and Path Integrals", author="Feynman, Richard",
                       isbn="0-306-40615-2"))  # fmt: skip
    glaciology = borrow(
        "Journal of Glaciology", service_type="Copy", issn="0022-1430",
        article_title="Ice flow in valleys", article_author="Nye, J. F.",
    )  # fmt: skip
    create(eng, glaciology)
    create(eng, borrow("Études de géographie", patron="P2"))
    create(eng, borrow("Serials with an X", issn="2434-561X"))
    create(eng, borrow("Quiet time"))
    create(eng, lend("Danish sagas", partner="ISIL:DK-820010"))
    create(eng, lend("American poems", partner="OCLC:ZCU"))
    return eng


def titles(engine: sa.Engine, text: str, direction: Direction = Direction.BORROWING) -> list[str]:
    page = load(engine, text=text, status=ALL, direction=direction)
    return [r.title for r in page.rows]


QUANTUM = "Quantum Mechanics and Path Integrals"
ICE = "Ice flow in valleys (Journal of Glaciology)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quant", [QUANTUM]),  # a word prefix, as staff type
        ("Qu", [QUANTUM, "Quiet time"]),
        ("QUANTUM path", [QUANTUM]),  # every word must match
        ("quantum glaciology", []),
        ("feynman", [QUANTUM]),
        ("0-306-40615-2", [QUANTUM]),  # ISBN-10, hyphenated: stored as ISBN-13
        ("9780306406157", [QUANTUM]),
        ("0022-1430", [ICE]),  # ISSN with hyphen
        ("2434-561x", ["Serials with an X"]),
        ("nye", [ICE]),  # article author
        ("valleys", [ICE]),  # article title
        ("ada reader", [QUANTUM, ICE, "Serials with an X", "Quiet time"]),  # patron name
        ("Müller", ["Études de géographie"]),
        ("géographie", ["Études de géographie"]),
    ],
)
def test_text_filter(search_eng: sa.Engine, text: str, expected: list[str]) -> None:
    assert titles(search_eng, text) == expected


def test_text_filter_partner_name_in_lending(search_eng: sa.Engine) -> None:
    assert titles(search_eng, "royal", Direction.LENDING) == ["Danish sagas"]
    assert titles(search_eng, "columbia univ", Direction.LENDING) == ["American poems"]
    assert titles(search_eng, "royal") == []  # the borrowing queue has no such party


def test_short_words_are_ignored_and_reported(search_eng: sa.Engine) -> None:
    page = load(search_eng, text="quantum a", status=ALL)
    assert [r.title for r in page.rows] == [QUANTUM]
    assert page.ignored_terms == ("a",)


def test_text_filter_follows_updates(search_eng: sa.Engine) -> None:
    with session_scope(search_eng) as session:
        request = session.exec(select(Request).where(Request.title == "Quiet time")).one()
        request.title = "Loud noises"
    assert titles(search_eng, "quiet") == []
    assert titles(search_eng, "loud") == ["Loud noises"]


def test_diacritics(search_eng: sa.Engine, db_url: str) -> None:
    folded = titles(search_eng, "muller") + titles(search_eng, "etudes")
    if db_url.startswith("sqlite"):
        # FTS5 unicode61 remove_diacritics 2: staff need not type the accents.
        assert folded == ["Études de géographie"] * 2
    else:
        # PostgreSQL 'simple' config does not fold accents (no unaccent): only exact letters.
        assert folded == []
        assert titles(search_eng, "müller") == ["Études de géographie"]


# ------------------------------------------------------------------------ types round-trip


def test_timestamps_come_back_aware_utc(eng: sa.Engine) -> None:
    local = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=-5))
    )
    request = create(eng, borrow(), lambda: local)
    with Session(eng) as session:
        stored = session.get(Request, request.id)
        assert stored is not None
        event = session.exec(select(Event)).one()
    for value in (stored.created_at, stored.updated_at, event.at):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert value == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    (row,) = load(eng).rows
    assert row.created_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert row.created_at.utcoffset() == timedelta(0)


def test_money_round_trips_exactly(eng: sa.Engine) -> None:
    create(eng, borrow(max_cost="1234567.891", max_cost_currency="KWD"))
    create(eng, borrow(max_cost="9999999999.99", max_cost_currency="EUR"))
    with Session(eng) as session:
        partners = {p.agency_id_value: p for p in session.exec(select(Partner))}
        costs = [r.max_cost for r in session.exec(select(Request).order_by(col(Request.id)))]
    assert partners["DK-820010"].loan_charge == Decimal("9999999999.9999")
    assert partners["DK-820010"].copy_charge == Decimal("0.0001")
    assert partners["ZCU"].loan_charge == Decimal("12.5")
    assert costs == [Decimal("1234567.891"), Decimal("9999999999.99")]
    assert all(isinstance(c, Decimal) for c in costs)


# ------------------------------------------------------------------- SQLite query plans


def plan(engine: sa.Engine, query: QueueQuery) -> str:
    sql, params, _ = queue.page_sql(query, "sqlite")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql), params).all()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.fixture
def sqlite_eng(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("status", [OPEN, ALL, "Verifying"])
def test_default_queue_page_walks_an_index(
    sqlite_eng: sa.Engine, status: str, descending: bool
) -> None:
    text = plan(sqlite_eng, QueueQuery(status=status, descending=descending))
    assert "TEMP B-TREE" not in text, text
    assert "USING" in text and "INDEX" in text, text  # noqa: PT018


@pytest.mark.parametrize("sort", [SortKey.AGE, SortKey.ID])
def test_text_filter_page_uses_the_fts_index(sqlite_eng: sa.Engine, sort: SortKey) -> None:
    # (Sorted by title, party or status, SQLite - without ANALYZE statistics - prefers to walk
    # the direction's sort index and probe the FTS table per row; not pinned here.)
    text = plan(sqlite_eng, QueueQuery(text="quantum feyn", sort=sort))
    assert "VIRTUAL TABLE INDEX" in text, text
    assert "SCAN r\n" not in text + "\n", text  # the request table is only looked up by id
    assert "SEARCH r USING INTEGER PRIMARY KEY" in text, text
    assert "TEMP B-TREE" not in text, text  # matches come in rowid order already


def test_a_taken_key_in_the_batch_statements_is_an_integrity_error(eng: sa.Engine) -> None:
    """The endpoint's batch statements go straight to the driver's cursor; a unique key
    already taken still raises SQLAlchemy's IntegrityError (what ``receive`` catches when the
    same message arrives twice at once), and nothing of the failed statement is kept."""
    table = Patron.__table__  # type: ignore[attr-defined]
    columns = ["barcode", "name", "category", "active", "created_at"]
    insert = dbmod.BulkInsert(table, columns, returning=("id", "barcode"))
    now = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)

    def patron(barcode: str, name: str) -> dict[str, Any]:
        return {"barcode": barcode, "name": name, "category": "staff", "active": True,
                "created_at": now}  # fmt: skip

    with eng.begin() as conn:
        ((new_id, barcode),) = insert.execute(conn, [patron("B-1", "One")])
    assert barcode == "B-1"
    with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
        insert.execute(conn, [patron("B-2", "Two"), patron("B-1", "One again")])
    with pytest.raises(sa.exc.IntegrityError), eng.begin() as conn:
        dbmod.BulkInsert(table, columns).execute_many(conn, [patron("B-1", "Once more")])
    with session_scope(eng) as session:
        kept = session.exec(select(Patron).where(col(Patron.barcode).like("B-%"))).all()
        assert [(p.id, p.name, p.created_at) for p in kept] == [(new_id, "One", now)]
