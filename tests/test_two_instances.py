"""ISO 18626 over HTTP between real ill-tui instances on loopback.

Each library has its own SQLite database and its own ``ill-tui serve`` process (endpoint and
outbox sender). Staff actions go through each library's ``Desk`` (the services), exactly as
the app calls them; the messages they queue travel over HTTP, delivered by the serve
processes' outbox senders and applied by the other side's endpoint. Nothing is pumped by hand.

Also here: ``kill -9`` of a receiving server during a burst of 500 messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from iso_helpers import Library, add_patron, connect, make_library, new_borrowing
from iso_instances import ServeProcess, free_port
from sqlalchemy.engine import Engine
from sqlmodel import select

from adapters.iso18626 import codec
from adapters.iso18626.sender import OutboxSender
from ill_tui import protocol as p
from ill_tui.clock import utcnow
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import IsoMessage, Partner, Request
from ill_tui.money import Money
from ill_tui.services import exchange, outbox

FAST_OUTBOX = ("--retry-base", "0.2", "--retry-max", "2", "--poll", "0.1")


@dataclass
class Instance:
    """One library: its database and desk (``lib``) and its running ``ill-tui serve``."""

    lib: Library
    serve: ServeProcess


def wait_for(what: str, check: Callable[[], bool], *, within: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` if it does not in time."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Instance]]:
    """A borrower and two lenders, partners of each other, each with its serve process."""
    directory = tmp_path_factory.mktemp("instances")
    specs = {
        "borrower": ("ISIL:US-BORROW", "Borrowing Library"),
        "first": ("ISIL:US-FIRST", "First Lender"),
        "second": ("ISIL:US-SECOND", "Second Lender"),
    }
    ports = {key: free_port() for key in specs}
    made: dict[str, Instance] = {}
    for key, (agency, name) in specs.items():
        url = sqlite_url(directory / f"{key}.db")
        serve = ServeProcess(
            url, agency=agency, port=ports[key], log_path=directory / f"{key}.log",
            extra_args=FAST_OUTBOX,
        )  # fmt: skip
        lib = make_library(url, agency, name, utcnow, endpoint_url=serve.url)
        made[key] = Instance(lib, serve)
    borrower = made["borrower"].lib
    connect(borrower, made["first"].lib, account_id="acct-1", security_code="code-1")
    connect(borrower, made["second"].lib, account_id="acct-2", security_code="code-2")
    add_patron(borrower)
    # Each side reaches the other at its serve's URL.
    for here in made.values():
        with session_scope(here.lib.engine) as session:
            for there in made.values():
                partner_id = here.lib.partner_ids.get(str(there.lib.agency))
                if partner_id is not None:
                    partner = session.get(Partner, partner_id)
                    assert partner is not None
                    partner.endpoint_url = there.serve.url
                    session.add(partner)
    started: list[ServeProcess] = []
    try:
        for instance in made.values():
            instance.serve.start()
            started.append(instance.serve)
        yield made
    finally:
        for serve in started:
            assert serve.stop() == 0, serve.log_text()
        for instance in made.values():
            instance.lib.engine.dispose()


def lending_for(lender: Library, borrower_request: Request) -> Request:
    """The lender's request for the borrower's current exchange (waits for it to arrive)."""
    found: list[Request] = []

    def arrived() -> bool:
        with session_scope(lender.engine) as session:
            found[:] = session.exec(
                select(Request).where(Request.partner_request_id == borrower_request.exchange_id)
            ).all()
        return bool(found)

    wait_for(f"{lender.name} to receive {borrower_request.exchange_id}", arrived)
    assert len(found) == 1
    return found[0]


def status_becomes(lib: Library, request_id: int, status: str) -> None:
    wait_for(
        f"{lib.name} request {request_id} to be {status}",
        lambda: lib.request(request_id).status == status,
    )


def settled(libraries: dict[str, Instance]) -> None:
    """Every outbox is empty, every message sent, and each arrived once at its addressee."""
    instances = list(libraries.values())

    def empty() -> bool:
        return not any(i.lib.pending() for i in instances)

    wait_for("every outbox to empty", empty)
    by_agency = {str(i.lib.agency): i.lib for i in instances}
    for instance in instances:
        for message in instance.lib.messages():
            if message.direction != "out":
                continue
            assert message.state == "sent", (message.kind, message.summary, message.last_error)
            addressee = by_agency[message.peer]
            digest = hashlib.sha256(message.body.encode("utf-8")).hexdigest()
            with session_scope(addressee.engine) as session:
                arrived = session.exec(select(IsoMessage).where(IsoMessage.digest == digest)).all()
            assert [m.state for m in arrived] == ["applied"], message.summary


def send_to(borrower: Library, lenders: list[Library], **form: str) -> Request:
    request = new_borrowing(borrower, **form)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(lender) for lender in lenders])
    return borrower.desk.send_request(request.id)


# ---------------------------------------------------------------------------- lifecycles


def test_loan_lifecycle_over_http(libraries: dict[str, Instance]) -> None:
    b, l1 = libraries["borrower"], libraries["first"]
    borrower, lender = b.lib, l1.lib
    sent = send_to(borrower, [lender], title="Loan over HTTP")
    assert sent.id is not None
    lending = lending_for(lender, sent)
    assert lending.id is not None
    assert (lending.status, lending.title) == ("RequestReceived", "Loan over HTTP")

    lender.desk.change_status(lending.id, "WillSupply")
    status_becomes(borrower, sent.id, "WillSupply")
    due = datetime.now(UTC).date() + timedelta(days=30)
    lender.desk.change_status(lending.id, "Shipped", details=exchange.StatusDetails(due_date=due))
    status_becomes(borrower, sent.id, "Loaned")
    assert borrower.request(sent.id).due_date == due

    borrower.desk.change_status(sent.id, "Received")
    status_becomes(lender, lending.id, "Loaned")
    borrower.desk.change_status(sent.id, "Returned")
    wait_for(
        "the lender to hear of the return",
        lambda: any(
            "shipped the item back" in n.text for n in lender.desk.request_detail(lending.id).notes
        ),
    )
    lender.desk.change_status(lending.id, "LoanCompleted")
    status_becomes(borrower, sent.id, "LoanCompleted")
    settled(libraries)
    assert lender.request(lending.id).status == "LoanCompleted"
    # one line per message in each server's log
    assert f"from {borrower.agency} {sent.exchange_id}: OK" in l1.serve.log_text()
    assert f"to {lender.agency} (request {sent.id}): sent, confirmed OK" in b.serve.log_text()


def test_copy_lifecycle_over_http(libraries: dict[str, Instance]) -> None:
    b, l1 = libraries["borrower"], libraries["first"]
    borrower, lender = b.lib, l1.lib
    sent = send_to(
        borrower, [lender], service_type="Copy", title="Journal of Documentation",
        article_title="Copies over HTTP", pages="1-9", isbn="", issn="0022-0418",
    )  # fmt: skip
    assert sent.id is not None
    lending = lending_for(lender, sent)
    assert lending.id is not None
    assert (lending.service_type, lending.article_title) == ("Copy", "Copies over HTTP")
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(lending.id, "CopyCompleted")
    status_becomes(borrower, sent.id, "CopyCompleted")
    settled(libraries)
    assert lender.request(lending.id).status == "CopyCompleted"


def test_unfilled_moves_on_to_a_second_lender_that_loans(libraries: dict[str, Instance]) -> None:
    b, l1, l2 = libraries["borrower"], libraries["first"], libraries["second"]
    borrower, first, second = b.lib, l1.lib, l2.lib
    sent = send_to(borrower, [first, second], title="Unfilled then loaned")
    assert sent.id is not None
    at_first = lending_for(first, sent)
    assert at_first.id is not None
    first.desk.change_status(
        at_first.id, "Unfilled", reason="Not on the shelf",
        details=exchange.StatusDetails(reason_unfilled="NotOnShelf"),
    )  # fmt: skip
    wait_for(
        "the borrower to move on to the second lender",
        lambda: borrower.request(sent.id).exchange_id == f"{sent.id}-2",  # type: ignore[arg-type]
    )
    moved = borrower.request(sent.id)
    assert moved.partner_id == borrower.partner_id(second)
    at_second = lending_for(second, moved)
    assert at_second.id is not None
    second.desk.change_status(at_second.id, "WillSupply")
    second.desk.change_status(
        at_second.id, "Shipped", details=exchange.StatusDetails(due_date=date(2027, 1, 4))
    )
    status_becomes(borrower, sent.id, "Loaned")
    assert borrower.request(sent.id).due_date == date(2027, 1, 4)
    settled(libraries)
    assert first.request(at_first.id).status == "Unfilled"
    assert second.request(at_second.id).status == "Shipped"


def test_retry_possible_with_cost_accepted_over_http(libraries: dict[str, Instance]) -> None:
    b, l1 = libraries["borrower"], libraries["first"]
    borrower, lender = b.lib, l1.lib
    sent = send_to(
        borrower, [lender], title="Retry over HTTP", max_cost="10", max_cost_currency="USD"
    )
    assert sent.id is not None
    lending = lending_for(lender, sent)
    assert lending.id is not None
    lender.desk.change_status(
        lending.id, "RetryPossible", reason="Our charge is higher",
        details=exchange.StatusDetails(
            reason_retry="CostExceedsMaxCost", offered_costs=Money(Decimal("35"), "USD")
        ),
    )  # fmt: skip
    status_becomes(borrower, sent.id, "RetryPossible")
    offer = borrower.desk.retry_offer(sent.id)
    assert offer is not None
    assert offer.money == Money(Decimal("35"), "USD")
    retried = borrower.desk.accept_retry(sent.id)
    assert retried.exchange_id == f"{sent.id}-2"
    again = lending_for(lender, retried)
    assert again.id == lending.id  # the same lending request came back, with the new cost
    status_becomes(lender, lending.id, "RequestReceived")
    assert (lender.request(lending.id).max_cost, lender.request(lending.id).max_cost_currency) == (
        Decimal("35.0000"),
        "USD",
    )
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(lending.id, "Shipped")
    status_becomes(borrower, sent.id, "Loaned")
    settled(libraries)


def test_renew_answered_over_http(libraries: dict[str, Instance]) -> None:
    b, l1 = libraries["borrower"], libraries["first"]
    borrower, lender = b.lib, l1.lib
    sent = send_to(borrower, [lender], title="Renew over HTTP")
    assert sent.id is not None
    lending = lending_for(lender, sent)
    assert lending.id is not None
    first_due = datetime.now(UTC).date() + timedelta(days=14)
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(
        lending.id, "Shipped", details=exchange.StatusDetails(due_date=first_due)
    )
    status_becomes(borrower, sent.id, "Loaned")
    borrower.desk.change_status(sent.id, "Received")
    borrower.desk.request_renew(sent.id, note="Two more weeks, please")
    wait_for(
        "the lender to see the renew request",
        lambda: any(
            "asks to renew" in n.text for n in lender.desk.request_detail(lending.id).notes
        ),
    )
    new_due = first_due + timedelta(days=14)
    lender.desk.answer_renew(lending.id, yes=True, due_date=new_due)
    wait_for("the new due date", lambda: borrower.request(sent.id).due_date == new_due)
    settled(libraries)
    assert lender.request(lending.id).due_date == new_due
    assert borrower.request(sent.id).status == "Received"


def test_cancel_before_shipping_over_http(libraries: dict[str, Instance]) -> None:
    b, l1 = libraries["borrower"], libraries["first"]
    borrower, lender = b.lib, l1.lib
    sent = send_to(borrower, [lender], title="Cancel over HTTP")
    assert sent.id is not None
    lending = lending_for(lender, sent)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    status_becomes(borrower, sent.id, "WillSupply")
    borrower.desk.change_status(sent.id, "Cancelled", reason="Patron no longer needs it")
    wait_for(
        "the lender to see the cancel request",
        lambda: any(
            "asks to cancel" in n.text for n in lender.desk.request_detail(lending.id).notes
        ),
    )
    lender.desk.answer_cancel(lending.id, yes=True)
    status_becomes(borrower, sent.id, "Cancelled")
    settled(libraries)
    assert lender.request(lending.id).status == "Cancelled"


def test_both_databases_agree_on_every_exchange(libraries: dict[str, Instance]) -> None:
    """Across all the lifecycles above: each borrowing request and its current lender agree."""
    borrower = libraries["borrower"].lib
    lenders = {str(i.lib.agency): i.lib for k, i in libraries.items() if k != "borrower"}
    settled(libraries)
    with session_scope(borrower.engine) as session:
        borrowing = session.exec(select(Request).where(Request.direction == "borrowing")).all()
        partners = {pt.id: pt.agency_id for pt in session.exec(select(Partner))}
    assert borrowing, "run with the lifecycle tests"
    # The borrower's local stages (Received, Returned, ...) stand for the lender's Loaned.
    same = {
        ("Received", "Loaned"), ("Loaned", "Shipped"), ("Returned", "Loaned"),
    }  # fmt: skip
    for request in borrowing:
        lender = lenders[partners[request.partner_id]]
        with session_scope(lender.engine) as session:
            theirs = session.exec(
                select(Request).where(Request.partner_request_id == request.exchange_id)
            ).one()
        pair = (request.status, theirs.status)
        assert request.status == theirs.status or pair in same, (request.title, pair)
        assert request.due_date == theirs.due_date or request.service_type == "Copy"


# ---------------------------------------------------------------------------- crash


def _queue_requests(engine_url: str, target: ServeProcess, n: int) -> None:
    """n outbound Requests to ISIL:US-LEND (as the exchange service stores them)."""
    engine = open_database(engine_url)
    try:
        with session_scope(engine) as session:
            partner = Partner(
                agency_id_type="ISIL", agency_id_value="US-LEND", name="Lender",
                country="US", currency="USD", endpoint_url=target.url,
            )  # fmt: skip
            session.add(partner)
            session.flush()
            for i in range(n):
                message = p.IllRequest(
                    header=p.Header(
                        supplying_agency_id=p.AgencyId(type="ISIL", value="US-LEND"),
                        requesting_agency_id=p.AgencyId(type="ISIL", value="US-BURST"),
                        timestamp=utcnow(),
                        requesting_agency_request_id=f"burst-{i}",
                    ),
                    bibliographic_info=p.BibliographicInfo(title=f"Burst item {i}"),
                    service_info=p.ServiceInfo(service_type=p.ServiceType.LOAN),
                )
                session.add(
                    IsoMessage(
                        direction="out", kind="request", partner_id=partner.id,
                        peer="ISIL:US-LEND", agency_request_id=f"burst-{i}",
                        summary=f"Request burst-{i}", body=codec.build(message).decode(),
                        state="pending",
                    )
                )  # fmt: skip
    finally:
        engine.dispose()


def _sent_ids(engine: Engine) -> set[str]:
    with session_scope(engine) as session:
        rows = session.exec(
            select(IsoMessage.agency_request_id).where(IsoMessage.state == "sent")
        ).all()
        return {r for r in rows if r}


def _stored_ids(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        rows = session.exec(
            select(Request.partner_request_id).where(Request.direction == "lending")
        ).all()
        return [r for r in rows if r]


@pytest.mark.slow
def test_kill_9_during_a_burst_of_500_loses_no_confirmed_message(tmp_path: Path) -> None:
    lender_url = sqlite_url(tmp_path / "lender.db")
    sender_url = sqlite_url(tmp_path / "sender.db")
    engine = open_database(lender_url)
    with session_scope(engine) as session:
        session.add(
            Partner(agency_id_type="ISIL", agency_id_value="US-BURST", name="Burst Library",
                    country="US", currency="USD")
        )  # fmt: skip
    engine.dispose()
    port = free_port()
    lender = ServeProcess(
        lender_url, agency="ISIL:US-LEND", port=port, log_path=tmp_path / "lender.log",
        extra_args=("--no-sender",),
    )  # fmt: skip
    _queue_requests(sender_url, lender, 500)
    sender_engine = open_database(sender_url)
    policy = outbox.RetryPolicy(
        base_delay=timedelta(seconds=0.2), max_delay=timedelta(seconds=1), max_attempts=1000
    )
    sender = OutboxSender(sender_engine, policy=policy, poll_interval=0.05, connect_timeout=1)

    async def sent_at_least(n: int, *, pause: float) -> None:
        for _ in range(100_000):
            if len(_sent_ids(sender_engine)) >= n:
                return
            await asyncio.sleep(pause)

    async def scenario() -> tuple[set[str], list[str]]:
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        try:
            lender.start()
            await sent_at_least(150, pause=0.02)
            lender.kill()  # SIGKILL in the middle of the burst
            confirmed = _sent_ids(sender_engine)
            stored_at_kill = _stored_ids(lender_engine)
            await asyncio.sleep(1.0)  # the sender meets a dead partner for a while
            lender.start()
            await sent_at_least(500, pause=0.05)
            return confirmed, stored_at_kill
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            lender.stop()

    lender_engine = open_database(lender_url)
    started = time.monotonic()
    try:
        confirmed, stored_at_kill = asyncio.run(asyncio.wait_for(scenario(), 240))
        final = _stored_ids(lender_engine)
    finally:
        sender_engine.dispose()
        lender_engine.dispose()
    took = time.monotonic() - started
    assert 150 <= len(confirmed) < 500
    # every message that got an OK before the kill was in the database at the kill, once
    assert confirmed <= set(stored_at_kill)
    assert len(stored_at_kill) == len(set(stored_at_kill))
    # after the restart: all 500 delivered, each stored exactly once
    final = _stored_ids(lender_engine)
    assert sorted(final) == sorted(f"burst-{i}" for i in range(500))
    print(
        f"\nkill -9 after {len(confirmed)} confirmed ({len(stored_at_kill)} stored at the kill);"
        f" all 500 delivered once, {took:.1f} s in all"
    )
