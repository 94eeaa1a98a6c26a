"""The fast inbound path: what ``exchange.receive`` writes for a plain new request.

A plain new request (not a Retry) is written with SQL Core statements; a Retry naming a
request we do not know takes the ORM path and makes a new request too. Both must leave the
same rows, so a partner's request looks the same to staff whichever way it came in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import FixedClock
from iso_instances import ThreadServer
from sqlalchemy.engine import Engine

from adapters.iso18626.endpoint import make_app
from adapters.iso18626.port import Iso18626Codec
from ill_tui import protocol as p
from ill_tui.config import Settings
from ill_tui.db import open_database, session_scope
from ill_tui.models import Event, IsoMessage, Note, Partner, Request
from ill_tui.services import exchange

US = p.AgencyId(type="ISIL", value="US-LEND")
THEM = p.AgencyId(type="ISIL", value="US-BORROW")


@pytest.fixture
def lender(engine: Engine) -> Engine:
    """Our database, knowing the borrowing partner (with credentials)."""
    return _with_partner(engine)


def _with_partner(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        session.add(
            Partner(
                agency_id_type=THEM.type,
                agency_id_value=THEM.value,
                name="Borrowing Library",
                country="US",
                currency="USD",
                account_id="acct",
                security_code="s3cret",
            )
        )
    return engine


def _request(
    rid: str,
    *,
    retry_of: str | None = None,
    note: str | None = "Please hurry",
    auth: p.Authentication | None = None,
) -> p.IllRequest:
    return p.IllRequest(
        header=p.Header(
            supplying_agency_id=US,
            requesting_agency_id=THEM,
            timestamp=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
            requesting_agency_request_id=rid,
            requesting_agency_authentication=auth
            or p.Authentication(account_id="acct", security_code="s3cret"),
        ),
        bibliographic_info=p.BibliographicInfo(
            title="Moby Dick",
            author="Melville, Herman",
            title_of_component="Chapter 1",
            bibliographic_item_ids=(
                p.BibliographicItemId(code="ISBN", value="9780142437247"),
                p.BibliographicItemId(code="ISSN", value="not an issn"),
                p.BibliographicItemId(code="SYSNO", value="42"),
            ),
        ),
        publication_info=p.PublicationInfo(publisher="Penguin", publication_date="c2003"),
        service_info=p.ServiceInfo(
            service_type=p.ServiceType.COPY_OR_LOAN,
            request_type=p.RequestType.RETRY if retry_of else None,
            requesting_agency_previous_request_id=retry_of,
            need_before_date=datetime(2026, 4, 1, tzinfo=UTC),
            note=note,
        ),
        billing_info=p.BillingInfo(maximum_costs=p.Costs(amount=Decimal("12.50"), currency="EUR")),
    )


def _raw_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    """The rows as the driver returns them (no SQLAlchemy type conversion), by id."""
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _receive(engine: Engine, message: p.AgencyMessage, clock: FixedClock) -> p.Confirmation:
    codec = Iso18626Codec()
    raw = codec.build(message)
    settings = Settings(
        database_url=str(engine.url), agency_id_type=US.type, agency_id_value=US.value
    )
    return exchange.receive(engine, message, raw, codec=codec, settings=settings, clock=clock)


def _rows(engine: Engine, model: type[Any], **where: object) -> list[dict[str, Any]]:
    table = model.__table__
    query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query.order_by(table.c.id))]


def test_plain_request_stores_the_same_rows_as_the_orm_path(
    lender: Engine, clock: FixedClock
) -> None:
    """A new request (Core) and a Retry of an unknown request (ORM) differ only in ids."""
    assert p.is_ok(_receive(lender, _request("R-1"), clock))
    assert p.is_ok(_receive(lender, _request("R-2", retry_of="R-unknown"), clock))

    core, orm = _rows(lender, Request)
    assert core["partner_request_id"] == "R-1"
    assert core["exchange_id"] == str(core["id"])
    assert orm["exchange_id"] == str(orm["id"])
    ignore = {"id", "exchange_id", "partner_request_id"}
    assert {k: v for k, v in core.items() if k not in ignore} == {
        k: v for k, v in orm.items() if k not in ignore
    }
    # what staff see of it: a Copy (an article was named), the money, the date, the ISBN
    assert core["service_type"] == "Copy"
    assert core["status"] == "RequestReceived"
    assert core["max_cost_currency"] == "EUR"
    assert str(core["max_cost"]).startswith("12.5")
    assert core["isbn"] == "9780142437247"
    assert core["year"] == "2003"

    core_events = _rows(lender, Event, request_id=core["id"])
    orm_events = _rows(lender, Event, request_id=orm["id"])
    assert [e["reason"] for e in core_events] == [
        "Request R-1 from Borrowing Library over ISO 18626"
    ]
    assert [(e["actor"], e["at"], e["from_status"], e["to_status"]) for e in core_events] == [
        (e["actor"], e["at"], e["from_status"], e["to_status"]) for e in orm_events
    ]
    core_notes = [
        (n["author"], n["at"], n["text"]) for n in _rows(lender, Note, request_id=core["id"])
    ]
    orm_notes = [
        (n["author"], n["at"], n["text"]) for n in _rows(lender, Note, request_id=orm["id"])
    ]
    assert core_notes == orm_notes
    assert [text for _, _, text in core_notes][0] == "Note from Borrowing Library: Please hurry"
    assert "SYSNO 42 kept only here" in core_notes[1][2]

    # and as the database holds them, before any type conversion on the way out: the
    # batch path's values are written exactly as the ORM writes them
    raw_core, raw_orm = _raw_rows(lender, "request")
    assert {k: v for k, v in raw_core.items() if k not in ignore} == {
        k: v for k, v in raw_orm.items() if k not in ignore
    }
    raw_core_event, raw_orm_event = _raw_rows(lender, "event")
    apart = {"id", "request_id", "reason"}  # the reasons name each its own request
    assert {k: v for k, v in raw_core_event.items() if k not in apart} == {
        k: v for k, v in raw_orm_event.items() if k not in apart
    }

    first, second = _rows(lender, IsoMessage)
    assert first["request_id"] == core["id"]
    assert second["request_id"] == orm["id"]
    ignore = {"id", "request_id", "agency_request_id", "summary", "body", "digest", "confirmation"}
    assert {k: v for k, v in first.items() if k not in ignore} == {
        k: v for k, v in second.items() if k not in ignore
    }
    raw_first, raw_second = _raw_rows(lender, "iso_message")
    assert {k: v for k, v in raw_first.items() if k not in ignore} == {
        k: v for k, v in raw_second.items() if k not in ignore
    }
    assert first["state"] == "applied"
    assert first["confirmation_status"] == "OK"
    assert "<messageStatus>OK</messageStatus>" in (first["confirmation"] or "")


def test_repeated_plain_request_is_confirmed_again_and_applied_once(
    lender: Engine, clock: FixedClock
) -> None:
    message = _request("R-1")
    assert p.is_ok(_receive(lender, message, clock))
    assert p.is_ok(_receive(lender, message, clock))
    assert len(_rows(lender, Request)) == 1
    assert len(_rows(lender, IsoMessage)) == 1
    assert len(_rows(lender, Event)) == 1


def test_request_id_in_use_is_refused_and_stored_as_refused(
    lender: Engine, clock: FixedClock
) -> None:
    assert p.is_ok(_receive(lender, _request("R-1"), clock))
    again = _receive(lender, _request("R-1", note="a different message, same id"), clock)
    assert again.error_data is not None
    assert again.error_data.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert again.error_data.error_value == "requestingAgencyRequestId R-1 is already in use"
    assert len(_rows(lender, Request)) == 1
    messages = _rows(lender, IsoMessage)
    assert [m["state"] for m in messages] == ["applied", "refused"]
    assert messages[1]["request_id"] is None
    assert messages[1]["error_value"] == "requestingAgencyRequestId R-1 is already in use"


def test_wrong_credentials_or_unknown_agency_store_nothing(
    lender: Engine, clock: FixedClock
) -> None:
    wrong = _request("R-1", auth=p.Authentication(account_id="acct", security_code="guess"))
    error = _receive(lender, wrong, clock).error_data
    assert error is not None
    assert error.error_value == "Authentication failed for agency ISIL:US-BORROW"
    stranger = _request("R-2")
    nobody = p.AgencyId(type="ISIL", value="XX-NOBODY")
    stranger = replace(stranger, header=replace(stranger.header, requesting_agency_id=nobody))
    error = _receive(lender, stranger, clock).error_data
    assert error is not None
    assert error.error_value == "Unknown or inactive agency ISIL:XX-NOBODY"
    assert _rows(lender, Request) == []
    assert _rows(lender, IsoMessage) == []


# ---------------------------------------------------------------------------- group commit


def _inbound(*messages: p.AgencyMessage) -> list[tuple[p.AgencyMessage, bytes, datetime]]:
    codec = Iso18626Codec()
    at = datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC)
    return [(message, codec.build(message), at) for message in messages]


def _receive_many(
    engine: Engine, inbound: list[tuple[p.AgencyMessage, bytes, datetime]], clock: FixedClock
) -> list[p.Confirmation | Exception]:
    settings = Settings(
        database_url=str(engine.url), agency_id_type=US.type, agency_id_value=US.value
    )
    return exchange.receive_many(
        engine, inbound, codec=Iso18626Codec(), settings=settings, clock=clock
    )


def _ok(answer: p.Confirmation | Exception) -> bool:
    return not isinstance(answer, Exception) and p.is_ok(answer)


def test_batch_applies_each_once_and_refuses_only_the_bad_one(
    lender: Engine, clock: FixedClock
) -> None:
    """Twins in one batch are applied once; an id in use is refused; the rest stand."""
    assert p.is_ok(_receive(lender, _request("R-0"), clock))
    twin = _request("R-2")
    stranger = _request("R-5")
    nobody = p.AgencyId(type="ISIL", value="XX-NOBODY")
    stranger = replace(stranger, header=replace(stranger.header, requesting_agency_id=nobody))
    batch = _inbound(
        _request("R-1"),
        twin,
        _request("R-0", note="same id as an earlier request"),
        twin,
        _request("R-3", retry_of="R-unknown"),  # the ORM path, after the batch
        stranger,
        _request("R-4"),
    )
    answers = _receive_many(lender, batch, clock)

    assert [_ok(a) for a in answers] == [True, True, False, True, True, False, True]
    refused = answers[2]
    assert isinstance(refused, p.RequestConfirmation)
    assert refused.error_data is not None
    assert refused.error_data.error_value == "requestingAgencyRequestId R-0 is already in use"
    unknown = answers[5]
    assert isinstance(unknown, p.RequestConfirmation)
    assert unknown.error_data is not None
    assert unknown.error_data.error_value == "Unknown or inactive agency ISIL:XX-NOBODY"
    requests = [r["partner_request_id"] for r in _rows(lender, Request)]
    assert sorted(requests) == ["R-0", "R-1", "R-2", "R-3", "R-4"]
    states = sorted((m["agency_request_id"], m["state"]) for m in _rows(lender, IsoMessage))
    assert states == [
        ("R-0", "applied"),
        ("R-0", "refused"),
        ("R-1", "applied"),
        ("R-2", "applied"),
        ("R-3", "applied"),
        ("R-4", "applied"),
    ]
    # and the whole batch again: every message recognised, nothing applied twice
    again = _receive_many(lender, batch, clock)
    assert [_ok(a) for a in again] == [True, True, False, True, True, False, True]
    assert len(_rows(lender, Request)) == 5
    assert len(_rows(lender, IsoMessage)) == 6


def test_a_batch_from_two_partners_ties_each_message_to_its_own_request(
    lender: Engine, clock: FixedClock
) -> None:
    """Two libraries may use the same request id: in one batch each gets its own request,
    and every log row, Event and supplyingAgencyRequestId belongs to the right one."""
    other = p.AgencyId(type="ISIL", value="DE-OTHER")
    with session_scope(lender) as session:
        session.add(
            Partner(
                agency_id_type=other.type,
                agency_id_value=other.value,
                name="Other Library",
                country="DE",
                currency="EUR",
            )
        )

    def from_other(rid: str) -> p.IllRequest:
        message = _request(rid, auth=None)
        header = replace(
            message.header, requesting_agency_id=other, requesting_agency_authentication=None
        )
        return replace(message, header=header)

    messages = [m for i in range(6) for m in (_request(f"R-{i}"), from_other(f"R-{i}"))]
    answers = _receive_many(lender, _inbound(*messages), clock)

    assert all(_ok(a) for a in answers)
    partners = {r["id"]: r["name"] for r in _rows(lender, Partner)}
    requests = {r["id"]: r for r in _rows(lender, Request)}
    assert sorted(
        (partners[r["partner_id"]], r["partner_request_id"]) for r in requests.values()
    ) == sorted(
        (name, f"R-{i}") for i in range(6) for name in ("Borrowing Library", "Other Library")
    )
    for request in requests.values():
        assert request["exchange_id"] == str(request["id"])
    for row in _rows(lender, IsoMessage):
        request = requests[row["request_id"]]
        assert request["partner_request_id"] == row["agency_request_id"]
        assert request["partner_id"] == row["partner_id"]
    events = _rows(lender, Event)
    assert sorted(e["request_id"] for e in events) == sorted(requests)
    for event in events:
        request = requests[event["request_id"]]
        assert event["reason"] == (
            f"Request {request['partner_request_id']} from {partners[request['partner_id']]} "
            "over ISO 18626"
        )


def test_a_batch_that_fails_is_received_one_by_one(sqlite_url: str, clock: FixedClock) -> None:
    """A database error in the batch undoes it; each message is then tried on its own."""
    engine = open_database(sqlite_url)
    try:
        with _with_partner(engine).begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON request WHEN new.partner_request_id = "
                "'R-BOOM' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        answers = _receive_many(
            engine, _inbound(_request("R-1"), _request("R-BOOM"), _request("R-2")), clock
        )
        assert _ok(answers[0])
        assert isinstance(answers[1], sa.exc.IntegrityError)
        assert _ok(answers[2])
        assert sorted(r["partner_request_id"] for r in _rows(engine, Request)) == ["R-1", "R-2"]
        assert sorted(m["agency_request_id"] for m in _rows(engine, IsoMessage)) == ["R-1", "R-2"]
    finally:
        engine.dispose()


def test_concurrent_posts_over_http_are_batched_and_applied_once(
    sqlite_url: str, clock: FixedClock
) -> None:
    """40 POSTs at once, 10 of them the same message: all OK, each request stored once."""
    engine = _with_partner(open_database(sqlite_url))
    codec = Iso18626Codec()
    settings = Settings(database_url=sqlite_url, agency_id_type=US.type, agency_id_value=US.value)
    batches: list[int] = []

    def receive_many(
        inbound: Sequence[tuple[p.AgencyMessage, bytes, datetime]],
    ) -> list[p.Confirmation | Exception]:
        batches.append(len(inbound))
        return exchange.receive_many(engine, inbound, codec=codec, settings=settings, clock=clock)

    def receive(message: p.AgencyMessage, raw: bytes, _at: datetime) -> p.Confirmation:
        raise AssertionError("every message goes through receive_many")

    bodies = [codec.build(_request(f"R-{i}")) for i in range(30)]
    bodies += [codec.build(_request("R-TWIN"))] * 10

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        server.url, content=body, headers={"Content-Type": "application/xml"}
                    )
                    for body in bodies
                )
            )

    try:
        with ThreadServer(make_app(receive, receive_many=receive_many, clock=clock)) as server:
            responses = asyncio.run(post_all())
    finally:
        engine.dispose()
    assert [r.status_code for r in responses] == [200] * 40
    for response, body in zip(responses, bodies, strict=True):
        answer = codec.parse(response.content)
        assert isinstance(answer, p.RequestConfirmation)
        assert p.is_ok(answer)
        sent = codec.parse(body)
        assert isinstance(sent, p.IllRequest)
        assert response.headers["X-Request-ID"] == sent.header.requesting_agency_request_id
    requests = [r["partner_request_id"] for r in _rows(engine, Request)]
    assert sorted(requests) == sorted({f"R-{i}" for i in range(30)} | {"R-TWIN"})
    assert len(_rows(engine, IsoMessage)) == 31
    assert sum(batches) == 40
    assert max(batches) > 1  # they did wait for the writer and went in together


def _sequential_senders(
    sqlite_url: str, clock: FixedClock, *, senders: int, each: int, gather: float
) -> tuple[list[int], float]:
    """``senders`` partners, each POSTing ``each`` requests one after the other (as an outbox
    does) to a real server; returns the batch sizes the writer took and the seconds taken."""
    engine = _with_partner(open_database(sqlite_url))
    codec = Iso18626Codec()
    settings = Settings(database_url=sqlite_url, agency_id_type=US.type, agency_id_value=US.value)
    batches: list[int] = []

    def receive_many(
        inbound: Sequence[tuple[p.AgencyMessage, bytes, datetime]],
    ) -> list[p.Confirmation | Exception]:
        batches.append(len(inbound))
        return exchange.receive_many(engine, inbound, codec=codec, settings=settings, clock=clock)

    def receive(message: p.AgencyMessage, raw: bytes, _at: datetime) -> p.Confirmation:
        raise AssertionError("every message goes through receive_many")

    async def sender(url: str, n: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(each):
                body = codec.build(_request(f"S{n}-{i}"))
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/xml"}
                )
                answer = codec.parse(response.content)
                assert isinstance(answer, p.RequestConfirmation)
                assert p.is_ok(answer)

    async def send_all(url: str) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(sender(url, n) for n in range(senders)))
        return time.perf_counter() - started

    app = make_app(receive, receive_many=receive_many, clock=clock, gather=gather)
    try:
        with ThreadServer(app) as server:
            seconds = asyncio.run(send_all(server.url))
        assert len(_rows(engine, Request)) == senders * each
    finally:
        engine.dispose()
    return batches, seconds


def test_the_writer_gathers_the_partners_it_just_answered_into_one_commit(
    sqlite_url: str, clock: FixedClock
) -> None:
    """Four partners sending one after another: their messages share commits."""
    batches, _ = _sequential_senders(sqlite_url, clock, senders=4, each=10, gather=0.2)
    assert sum(batches) == 40
    # Without gathering, the writer takes whoever is waiting the moment it is free, and
    # four senders fall into turns of one or two; gathering waits for those just answered.
    assert sorted(batches)[len(batches) // 2] == 4, batches


def test_a_lone_partner_is_not_kept_waiting_for_others(sqlite_url: str, clock: FixedClock) -> None:
    """Gathering only waits while other messages wait: one sender never pays the delay."""
    batches, seconds = _sequential_senders(sqlite_url, clock, senders=1, each=10, gather=0.5)
    assert batches == [1] * 10
    assert seconds < 5 * 0.5  # ten messages; waiting for others would take 10 x 0.5 s
