"""The borrowing and lending queues: one page of requests at a time, and counts per status.

A queue never loads the whole table. Each page is one indexed query (``LIMIT``/``OFFSET`` over
an index that matches the sort), and the free-text filter goes through a real text index:
SQLite FTS5 (``request_fts``, kept by triggers) or a PostgreSQL GIN index over a tsvector.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from ill_tui import workflow
from ill_tui.identifiers import search_forms
from ill_tui.models import Direction, UTCDateTime

# Must match the migration that built the index (0001_initial).
SEARCH_COLUMNS = (
    "title", "article_title", "author", "article_author", "isbn", "issn", "oclc_number",
    "party_name",
)  # fmt: skip
PG_SEARCH_VECTOR = (
    "to_tsvector('simple'::regconfig, "
    + " || ' ' || ".join(f"coalesce({c}, '')" for c in SEARCH_COLUMNS)
    + ")"
)

OPEN = "Open"  # status filter: every request not yet in a final status
ALL = "All"  # status filter: everything

MIN_TOKEN = 2  # shorter words would match most of a million rows; they are ignored


class SortKey(StrEnum):
    """Columns a queue can be sorted by."""

    ID = "id"
    STATUS = "status"
    TITLE = "title"
    PARTY = "party"
    AGE = "age"
    NEEDED_BY = "needed_by"


_SORT_COLUMNS: dict[SortKey, tuple[str, ...]] = {
    SortKey.ID: ("id",),
    SortKey.AGE: ("id",),  # requests are numbered as they arrive; id order is age order
    SortKey.STATUS: ("status", "id"),
    SortKey.TITLE: ("title", "id"),
    SortKey.PARTY: ("party_name", "id"),
    SortKey.NEEDED_BY: ("needed_by", "id"),
}


@dataclass(frozen=True)
class QueueQuery:
    """What the queue shows: direction, status filter, text filter, sort and page."""

    direction: Direction = Direction.BORROWING
    status: str = OPEN  # OPEN, ALL or one Status value
    text: str = ""
    sort: SortKey = SortKey.AGE
    descending: bool = False  # AGE ascending = oldest first
    page: int = 0
    page_size: int = 100


@dataclass(frozen=True)
class QueueRow:
    """One line of a queue, as plain values."""

    id: int
    status: str
    service_type: str
    title: str
    party: str
    created_at: datetime
    needed_by: date | None
    version: int
    verification: str | None = None  # matched / ambiguous / not_found / unreachable

    def age_days(self, now: datetime) -> int:
        """Whole days since the request arrived."""
        return max(0, (now - self.created_at).days)


@dataclass(frozen=True)
class QueuePage:
    """A page of rows and whether another page follows."""

    query: QueueQuery
    rows: list[QueueRow]
    has_more: bool
    ignored_terms: tuple[str, ...] = field(default_factory=tuple)


def tokens(text: str) -> tuple[list[str], list[str]]:
    """Split filter text into searchable terms and the ones too short to search.

    Identifiers are matched in their stored form: an ISBN-10 typed with hyphens becomes the
    ISBN-13 digits the index holds.
    """
    kept: list[str] = []
    ignored: list[str] = []
    for raw in text.split():
        forms = search_forms(raw)
        if forms:
            kept.extend(forms)
            continue
        for word in re.findall(r"\w+", raw, flags=re.UNICODE):
            (kept if len(word) >= MIN_TOKEN else ignored).append(word.lower())
    return kept, ignored


def fts5_match(words: Sequence[str], tag: str | None = None) -> str:
    """An FTS5 MATCH expression: every word as a quoted prefix (typing-as-you-go), looked for
    in the citation and party columns only, and, given a ``tag``, narrowed to that queue.
    """
    terms = " AND ".join('"' + w.replace('"', '""') + '"*' for w in words)
    expression = "{" + " ".join(SEARCH_COLUMNS) + "} : (" + terms + ")"
    if tag:
        expression += f' AND queue_tags : "{tag}"'
    return expression


def queue_tag(direction: Direction | str, status: str) -> str:
    """The text-index word that stands for one queue (see migration 0001's ``_queue_tags``).

    ``status`` is ``OPEN``, ``ALL`` or a status value. Narrowing a text search to the open
    borrowing requests inside the index lets FTS5 intersect two word lists instead of walking
    every request that contains a common word.
    """
    d = Direction(direction).value
    if status == OPEN:
        return f"zzo{d}"
    if status == ALL:
        return f"zzd{d}"
    return f"zzs{d}{status.lower()}"


def pg_tsquery(words: Sequence[str]) -> str:
    """A ``to_tsquery('simple', ...)`` text: every word as a prefix, all required."""
    safe = [re.sub(r"[^\w]", "", w, flags=re.UNICODE) for w in words]
    return " & ".join(f"{w}:*" for w in safe if w)


def _filters(q: QueueQuery) -> tuple[list[str], dict[str, Any]]:
    where = ["r.direction = :direction"]
    params: dict[str, Any] = {"direction": q.direction.value}
    if q.status == OPEN:
        where.append("r.is_open = :is_open")
        params["is_open"] = True
    elif q.status != ALL:
        where.append("r.status = :status")
        params["status"] = q.status
    return where, params


_ROW_COLUMNS = (
    "r.id, r.status, r.service_type, r.title, r.article_title, r.party_name, r.created_at, "
    "r.needed_by, r.version, r.verification"
)


def _to_row(row: Sequence[Any]) -> QueueRow:
    title = row[3] if not row[4] else f"{row[4]} ({row[3]})"
    return QueueRow(
        id=row[0],
        status=row[1],
        service_type=row[2],
        title=title,
        party=row[5],
        created_at=row[6],
        needed_by=row[7],
        version=row[8],
        verification=row[9],
    )


def _typed(sql: str) -> sa.TextualSelect:
    return sa.text(sql).columns(created_at=UTCDateTime(), needed_by=sa.Date())


def page_sql(query: QueueQuery, dialect: str) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """The SQL text and parameters of one queue page, and the filter words ignored.

    Kept separate from ``load_page`` so the benchmark can time the very same query raw.
    """
    words, ignored = tokens(query.text)
    where, params = _filters(query)
    order_dir = "DESC" if query.descending else "ASC"
    order = ", ".join(f"r.{c} {order_dir}" for c in _SORT_COLUMNS[query.sort])
    params["limit"] = query.page_size + 1
    params["offset"] = query.page * query.page_size
    if words and dialect == "sqlite":
        params["match"] = fts5_match(words, queue_tag(query.direction, query.status))
        if query.sort in (SortKey.AGE, SortKey.ID):
            # Walk the text index in rowid order and stop at the page: no sort of the matches.
            order = f"f.rowid {order_dir}"
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM request_fts f JOIN request r ON r.id = f.rowid "
            f"WHERE request_fts MATCH :match AND {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
        )
    else:
        if words:
            vector = PG_SEARCH_VECTOR.replace("coalesce(", "coalesce(r.")
            where.append(f"{vector} @@ to_tsquery('simple'::regconfig, :tsquery)")
            params["tsquery"] = pg_tsquery(words)
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM request r WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
        )
    return sql, params, tuple(ignored)


def load_page(session: Session, query: QueueQuery) -> QueuePage:
    """Return one page of the queue described by ``query``."""
    sql, params, ignored = page_sql(query, session.get_bind().dialect.name)
    result = session.execute(_typed(sql), params).all()
    rows = [_to_row(tuple(r)) for r in result[: query.page_size]]
    return QueuePage(
        query=query,
        rows=rows,
        has_more=len(result) > query.page_size,
        ignored_terms=ignored,
    )


class QueryCancelled(RuntimeError):
    """The caller gave up on a query (e.g. staff typed on) and it was interrupted."""


def status_counts(
    session: Session, query: QueueQuery, *, cancelled: Callable[[], bool] | None = None
) -> dict[str, int]:
    """How many requests of the queue's direction (and text filter) are in each status.

    The status filter itself is not applied: the counts are what staff choose a status from.
    Counting a common word over a million rows takes a while; on SQLite, ``cancelled`` is
    polled while the query runs and a True answer interrupts it (``QueryCancelled``), so a
    search that staff have already typed past stops using the CPU.
    """
    words, _ = tokens(query.text)
    params: dict[str, Any] = {"direction": query.direction.value}
    dialect = session.get_bind().dialect.name
    if words and dialect == "sqlite":
        # One count per status inside the text index (two word lists intersected), instead
        # of joining every matching request to read its status.
        statuses = workflow.STATUSES[query.direction]
        parts = []
        for i, status in enumerate(statuses):
            params[f"m{i}"] = fts5_match(words, queue_tag(query.direction, status.value))
            parts.append(
                f"SELECT '{status.value}', count(*) FROM request_fts WHERE request_fts MATCH :m{i}"
            )
        params.pop("direction")
        sql = " UNION ALL ".join(parts)
    elif words:
        params["tsquery"] = pg_tsquery(words)
        vector = PG_SEARCH_VECTOR.replace("coalesce(", "coalesce(r.")
        sql = (
            "SELECT r.status, count(*) FROM request r WHERE r.direction = :direction AND "
            f"{vector} @@ to_tsquery('simple'::regconfig, :tsquery) GROUP BY r.status"
        )
    else:
        sql = (
            "SELECT r.status, count(*) FROM request r WHERE r.direction = :direction "
            "GROUP BY r.status"
        )
    if cancelled is None or dialect != "sqlite":
        rows = session.execute(sa.text(sql), params).all()
        return {status: int(n) for status, n in rows if n}
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    raw.set_progress_handler(lambda: 1 if cancelled() else 0, 5_000)
    try:
        rows = session.execute(sa.text(sql), params).all()
    except sa.exc.OperationalError as exc:
        if cancelled():
            raise QueryCancelled("counting was cancelled") from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)
    return {status: int(n) for status, n in rows if n}
