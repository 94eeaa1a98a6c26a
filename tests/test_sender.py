"""The outbox and its sender: order per partner, backoff, confirmations, staff retry/cancel.

Partners are real HTTP servers on loopback (``iso_instances.ThreadServer`` running the real
endpoint app with a receiver that records what arrived), started late, stopped, or made to
refuse; the outbox is a real SQLite database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from iso_instances import ThreadServer, free_port
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.iso18626 import codec
from adapters.iso18626.endpoint import make_app
from adapters.iso18626.sender import OutboxSender
from ill_tui import protocol as p
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import IsoMessage, Note, Partner, Request
from ill_tui.services import outbox

US = p.AgencyId(type="ISIL", value="US-BORROW")
FAST = outbox.RetryPolicy(
    base_delay=timedelta(seconds=0.2), factor=2, max_delay=timedelta(seconds=1), max_attempts=50
)


class Recorder:
    """A partner's receiver: remembers every message (raw bytes) and answers OK or ERROR."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.raw: list[bytes] = []
        self.refuse: set[str] = set()  # request ids answered with ERROR

    def __call__(self, message: p.AgencyMessage, raw: bytes, received: datetime) -> p.Confirmation:
        with self.lock:
            self.raw.append(raw)
        if message.header.requesting_agency_request_id in self.refuse:
            error = p.ErrorData(
                error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE, error_value="no such request"
            )
            return p.confirm(message, now=received, error=error)
        return p.confirm(message, now=received)

    def ids(self) -> list[str]:
        with self.lock:
            raws = list(self.raw)
        return [_request_id(raw) for raw in raws]


def _request_id(raw: bytes) -> str:
    message = codec.parse(raw).message
    assert isinstance(message, p.RequestingAgencyMessage)
    return message.header.requesting_agency_request_id


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite outbox only (the long scenario runs once, not once per database)."""
    eng = open_database(sqlite_url(tmp_path / "outbox.db"))
    yield eng
    eng.dispose()


# The other tests take conftest's ``engine``: once on SQLite, once on PostgreSQL.


def add_partner(engine: Engine, value: str, url: str | None) -> int:
    with session_scope(engine) as session:
        partner = Partner(
            agency_id_type="ISIL", agency_id_value=value, name=f"Library {value}",
            country="DK", currency="DKK", endpoint_url=url,
        )  # fmt: skip
        session.add(partner)
        session.flush()
        assert partner.id is not None
        return partner.id


def add_request(engine: Engine, title: str = "Moby-Dick") -> int:
    with session_scope(engine) as session:
        request = Request(direction="borrowing", status="Received", title=title)
        session.add(request)
        session.flush()
        assert request.id is not None
        return request.id


def queue_message(
    engine: Engine, partner_id: int, request_id: int, exchange: str, *, at: datetime | None = None
) -> int:
    """Write one outbound Received message as the exchange service does: pending, exact bytes."""
    with session_scope(engine) as session:
        partner = session.get(Partner, partner_id)
        assert partner is not None
        message = p.RequestingAgencyMessage(
            header=p.Header(
                supplying_agency_id=p.AgencyId(type="ISIL", value=partner.agency_id_value),
                requesting_agency_id=US,
                timestamp=at or datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
                requesting_agency_request_id=exchange,
            ),
            action=p.Action.RECEIVED,
        )
        row = IsoMessage(
            direction="out", kind=message.kind.value, request_id=request_id,
            partner_id=partner_id, peer=partner.agency_id, agency_request_id=exchange,
            summary=f"Received {exchange}", body=codec.build(message).decode("utf-8"),
            state="pending",
        )  # fmt: skip
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def messages(engine: Engine) -> dict[int, IsoMessage]:
    with session_scope(engine) as session:
        return {m.id: m for m in session.exec(select(IsoMessage)).all() if m.id is not None}


def notes(engine: Engine, request_id: int) -> list[str]:
    with session_scope(engine) as session:
        return [n.text for n in session.exec(select(Note).where(Note.request_id == request_id))]


def partner_server(recorder: Recorder, port: int | None = None) -> ThreadServer:
    return ThreadServer(make_app(recorder), port=port)


async def drain(sender: OutboxSender, until: Callable[[], bool], *, within: float = 20.0) -> float:
    """Run the sender until ``until()`` holds; return the seconds it took."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    started = time.monotonic()
    try:
        while not until():
            if time.monotonic() - started > within:
                raise AssertionError("the outbox did not get there in time")
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        return time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def states(engine: Engine) -> dict[int, str]:
    return {mid: m.state for mid, m in messages(engine).items()}


# ---------------------------------------------------------------------------- pure rules


def test_backoff_schedule_is_deterministic_exponential_and_capped() -> None:
    policy = outbox.RetryPolicy(
        base_delay=timedelta(seconds=2), factor=2, max_delay=timedelta(seconds=60)
    )
    assert [policy.delay(n).total_seconds() for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.delay(10_000) == timedelta(seconds=60)
    with pytest.raises(ValueError, match="base_delay"):
        outbox.RetryPolicy(base_delay=timedelta(0))


def test_only_the_oldest_pending_message_of_each_partner_is_due(engine: Engine) -> None:
    a = add_partner(engine, "DK-A", "http://127.0.0.1:9/iso18626")
    b = add_partner(engine, "DK-B", "http://127.0.0.1:9/iso18626")
    r1, r2 = add_request(engine), add_request(engine, "Cybernetics")
    a1 = queue_message(engine, a, r1, "1-1")
    b1 = queue_message(engine, b, r2, "2-1")
    a2 = queue_message(engine, a, r2, "2-2")
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    with session_scope(engine) as session:
        assert outbox.due_messages(session, now=now) == [a1, b1]
        # a1 is scheduled for later: partner A waits, its later a2 does not overtake it
        session.get(IsoMessage, a1).next_attempt_at = now + timedelta(seconds=5)  # type: ignore[union-attr]
    with session_scope(engine) as session:
        assert outbox.due_messages(session, now=now) == [b1]
        assert outbox.due_messages(session, now=now + timedelta(seconds=5)) == [a1, b1]
        assert outbox.next_wake(session) == now + timedelta(seconds=5)
    # a failed a1 holds back later messages of ITS request only; a2 is another request
    with session_scope(engine) as session:
        session.get(IsoMessage, a1).state = "failed"  # type: ignore[union-attr]
        a3 = queue_message(engine, a, r1, "1-1")
    with session_scope(engine) as session:
        assert outbox.due_messages(session, now=now) == [b1, a2]
        session.get(IsoMessage, a2).state = "sent"  # type: ignore[union-attr]
    with session_scope(engine) as session:
        assert a3 not in outbox.due_messages(session, now=now)


def test_a_claim_is_taken_once(engine: Engine) -> None:
    a = add_partner(engine, "DK-A", "http://127.0.0.1:9/iso18626")
    mid = queue_message(engine, a, add_request(engine), "1-1")
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    with session_scope(engine) as session:
        first = outbox.claim(session, mid, now=now, policy=FAST)
    with session_scope(engine) as session:
        second = outbox.claim(session, mid, now=now, policy=FAST)
        assert outbox.due_messages(session, now=now) == []
    assert first is not None
    assert first.body.startswith(b"<?xml")
    assert second is None
    # a sender that died holding the claim: after the lease it is due again
    with session_scope(engine) as session:
        assert outbox.claim(session, mid, now=now + FAST.lease, policy=FAST) is not None


# ---------------------------------------------------------------------------- over HTTP


async def test_partner_down_then_up_gets_everything_in_order_once(engine: Engine) -> None:
    port = free_port()
    a = add_partner(engine, "DK-A", f"http://127.0.0.1:{port}/iso18626")
    request_id = add_request(engine)
    ids = [queue_message(engine, a, request_id, f"1-{n}") for n in range(5)]
    sender = OutboxSender(engine, policy=FAST, poll_interval=0.05, connect_timeout=1)

    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        # Down: the head is tried again and again on the backoff schedule; nothing else moves.
        deadline = time.monotonic() + 10
        while messages(engine)[ids[0]].attempts < 3:
            assert time.monotonic() < deadline, "the sender did not retry the head"
            await asyncio.sleep(0.05)
        head = messages(engine)[ids[0]]
        assert head.state == "pending"
        assert "cannot connect" in (head.last_error or "")
        assert all(messages(engine)[i].attempts == 0 for i in ids[1:])
        assert head.next_attempt_at is not None
        # Up: everything arrives, in order, once.
        recorder = Recorder()
        with partner_server(recorder, port=port):
            deadline = time.monotonic() + 15
            while any(s != "sent" for s in states(engine).values()):
                assert time.monotonic() < deadline, states(engine)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # anything sent twice would show up now
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert recorder.ids() == [f"1-{n}" for n in range(5)]
    sent = messages(engine)
    assert all(sent[i].confirmation_status == "OK" for i in ids)
    assert sent[ids[0]].attempts >= 4  # three failures and the success
    assert all(sent[i].attempts == 1 for i in ids[1:])


async def test_error_confirmation_fails_the_message_notes_the_request_and_staff_can_retry(
    engine: Engine,
) -> None:
    recorder = Recorder()
    recorder.refuse.add("7-1")
    with partner_server(recorder) as server:
        a = add_partner(engine, "DK-A", server.url)
        r1, r2 = add_request(engine), add_request(engine, "Cybernetics")
        refused = queue_message(engine, a, r1, "7-1")
        held = queue_message(engine, a, r1, "7-1")  # later message of the same request
        other = queue_message(engine, a, r2, "8-1")  # another request of the same partner
        sender = OutboxSender(engine, policy=FAST, poll_interval=0.05)
        await drain(sender, lambda: states(engine)[other] == "sent")
        now = states(engine)
        assert now[refused] == "failed"
        assert now[held] == "pending"  # waits for staff to settle the failed one
        failed = messages(engine)[refused]
        assert failed.error_type == "UnrecognisedDataValue"
        assert failed.error_value == "no such request"
        assert any("refused by the partner: UnrecognisedDataValue: no such request" in n
                   for n in notes(engine, r1))  # fmt: skip

        with session_scope(engine) as session:
            rows = outbox.list_messages(session, outbox.MessageList.FAILED)
            assert [(r.id, r.last_error) for r in rows] == [
                (refused, "UnrecognisedDataValue: no such request")
            ]
            with pytest.raises(outbox.OutboxError, match="only a failed message"):
                outbox.retry_message(session, held, now=datetime.now(UTC), actor="ann")
        recorder.refuse.clear()
        with session_scope(engine) as session:
            outbox.retry_message(session, refused, now=datetime.now(UTC), actor="ann")
        await drain(sender, lambda: states(engine)[held] == "sent")
        assert states(engine)[refused] == "sent"
        assert recorder.ids() == ["7-1", "8-1", "7-1", "7-1"]


async def test_staff_cancel_a_pending_message_and_it_is_never_sent(engine: Engine) -> None:
    recorder = Recorder()
    with partner_server(recorder) as server:
        a = add_partner(engine, "DK-A", server.url)
        r1 = add_request(engine)
        cancelled = queue_message(engine, a, r1, "1-1")
        kept = queue_message(engine, a, r1, "1-2")
        with session_scope(engine) as session:
            outbox.cancel_message(session, cancelled, now=datetime.now(UTC), actor="ann")
        with session_scope(engine) as session, pytest.raises(outbox.OutboxError):
            outbox.cancel_message(session, cancelled, now=datetime.now(UTC), actor="ann")
        sender = OutboxSender(engine, policy=FAST, poll_interval=0.05)
        await drain(sender, lambda: states(engine)[kept] == "sent")
    assert states(engine)[cancelled] == "cancelled"
    assert recorder.ids() == ["1-2"]
    assert any("cancelled by ann" in n for n in notes(engine, r1))


async def test_http_errors_are_retried_and_a_partner_without_url_fails_at_once(
    engine: Engine,
) -> None:
    async def boom(_request: object) -> PlainTextResponse:
        return PlainTextResponse("database on fire", status_code=500)

    app = Starlette(routes=[Route("/iso18626", boom, methods=["POST"])])
    with ThreadServer(app) as server:
        a = add_partner(engine, "DK-A", server.url)
        nowhere = add_partner(engine, "DK-N", None)
        r1 = add_request(engine)
        m500 = queue_message(engine, a, r1, "1-1")
        lost = queue_message(engine, nowhere, add_request(engine), "2-1")
        policy = outbox.RetryPolicy(
            base_delay=timedelta(seconds=0.05), max_delay=timedelta(seconds=0.1), max_attempts=3
        )
        sender = OutboxSender(engine, policy=policy, poll_interval=0.05)
        await drain(sender, lambda: states(engine)[m500] == "failed")
    failed = messages(engine)
    assert failed[m500].attempts == 3
    assert failed[m500].last_error is not None
    assert failed[m500].last_error.startswith("HTTP 500 from")
    assert "database on fire" in failed[m500].last_error
    assert any("could not be delivered after 3 attempts" in n for n in notes(engine, r1))
    assert failed[lost].state == "failed"
    assert failed[lost].attempts == 1
    assert "has no ISO 18626 endpoint URL" in (failed[lost].last_error or "")


async def test_two_senders_on_one_database_post_each_message_once(engine: Engine) -> None:
    recorder = Recorder()
    with partner_server(recorder) as server:
        partners = [add_partner(engine, f"DK-{n}", server.url) for n in range(3)]
        request_id = add_request(engine)
        for n in range(60):
            queue_message(engine, partners[n % 3], request_id, f"1-{n}")
        first = OutboxSender(engine, policy=FAST, poll_interval=0.02)
        second = OutboxSender(engine, policy=FAST, poll_interval=0.02)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in (first, second)]
        try:
            deadline = time.monotonic() + 30
            while any(s != "sent" for s in states(engine).values()):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    received = recorder.ids()
    assert sorted(received) == sorted(f"1-{n}" for n in range(60))
    for k in range(3):  # each partner got its messages in order
        mine = [r for r in received if int(r.split("-")[1]) % 3 == k]
        assert mine == sorted(mine, key=lambda r: int(r.split("-")[1]))


@pytest.mark.slow
async def test_partner_down_for_60_seconds_loses_nothing(sqlite_engine: Engine) -> None:
    """The real scenario: the default backoff schedule (capped), a partner down for 60 s."""
    engine = sqlite_engine
    port = free_port()
    partners = [add_partner(engine, f"DK-{n}", f"http://127.0.0.1:{port}/iso18626") for n in "AB"]
    request_id = add_request(engine)
    ids = [queue_message(engine, partners[n % 2], request_id, f"1-{n}") for n in range(40)]
    policy = outbox.RetryPolicy(max_delay=timedelta(seconds=10))  # 2, 4, 8, 10, 10, ... s
    sender = OutboxSender(engine, policy=policy, poll_interval=0.5, connect_timeout=2)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    recorder = Recorder()
    try:
        await asyncio.sleep(60)
        down = messages(engine)
        assert all(down[i].state == "pending" for i in ids)
        assert down[ids[0]].attempts >= 5
        with partner_server(recorder, port=port):
            came_back = time.monotonic()
            while any(s != "sent" for s in states(engine).values()):
                assert time.monotonic() - came_back < 30, states(engine)
                await asyncio.sleep(0.1)
            delivered_in = time.monotonic() - came_back
            await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    received = recorder.ids()
    assert sorted(received) == sorted(f"1-{n}" for n in range(40))
    assert len(received) == 40  # none twice
    for k in range(2):
        mine = [int(r.split("-")[1]) for r in received if int(r.split("-")[1]) % 2 == k]
        assert mine == sorted(mine)
    print(f"\npartner down 60 s: all 40 delivered {delivered_in:.1f} s after it came back")


def test_post_message_names_each_failure() -> None:
    async def go() -> list[str]:
        async with httpx.AsyncClient(timeout=1) as client:
            refused = await _post(client, f"http://127.0.0.1:{free_port()}/iso18626")
            return [refused]

    async def _post(client: httpx.AsyncClient, url: str) -> str:
        from adapters.iso18626.sender import post_message

        answer = await post_message(client, url, b"<x/>", connect_timeout=1, read_timeout=1)
        assert answer.confirmation is None
        return answer.failure

    (refused,) = asyncio.run(go())
    assert refused.startswith("cannot connect to http://127.0.0.1:")


async def test_the_app_delivers_the_outbox_while_it_runs(tmp_path: Path) -> None:
    """IllApp runs the sender as a worker: a queued message reaches the partner, and the
    Messages screen shows it under Sent."""
    from screens_helpers import ACTOR, SIZE, fixed_clock, table_column
    from textual.widgets import DataTable

    from ill_tui.app import IllApp
    from ill_tui.services.desk import Desk
    from screens.messages import MessagesScreen

    engine = open_database(sqlite_url(tmp_path / "app.db"))
    recorder = Recorder()
    try:
        with partner_server(recorder) as server:
            partner = add_partner(engine, "DK-A", server.url)
            queue_message(engine, partner, add_request(engine), "9-1")
            sender = OutboxSender(engine, policy=FAST, poll_interval=0.05)
            app = IllApp(Desk(engine, actor=ACTOR, clock=fixed_clock()), sender=sender)
            async with app.run_test(size=SIZE) as pilot:
                for _ in range(200):
                    if recorder.ids():
                        break
                    await pilot.pause(0.05)
                assert recorder.ids() == ["9-1"]
                app.push_screen(MessagesScreen(app.desk, which="sent"))
                # (not settle(): it waits for every worker, and the sender's never ends)
                for _ in range(100):
                    await pilot.pause(0.05)
                    table = app.screen.query_one("#messages-table", DataTable)
                    if table.row_count:
                        break
                assert table_column(table, "summary") == ["Received 9-1"]
    finally:
        engine.dispose()


async def test_the_periodic_task_runs_at_start_and_then_every_interval(engine: Engine) -> None:
    """``ill-tui serve`` hangs the rota timeout check here; it must run, and not too often."""
    from conftest import FixedClock

    clock = FixedClock()
    calls: list[datetime] = []
    sender = OutboxSender(
        engine, clock=clock, poll_interval=0.01, periodic=calls.append, periodic_every=300
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # many idle passes, the clock standing still
        assert calls == [clock.now]
        clock.advance(seconds=299)
        await asyncio.sleep(0.1)
        assert len(calls) == 1
        clock.advance(seconds=1)
        for _ in range(100):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert calls[1] == clock.now
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
