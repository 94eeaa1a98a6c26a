"""ISO 18626 exchanges between two (or three) ill-tui databases, in process, codec real.

Each library has its own database (SQLite files, or PostgreSQL databases on the test server);
every outbox message is handed to the other side's ``exchange.receive`` as its stored bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import FixedClock
from iso_helpers import (
    Delivery,
    Library,
    add_patron,
    connect,
    deliver_one,
    disagreements,
    make_library,
    new_borrowing,
    pump,
)
from sqlmodel import select

from ill_tui import protocol as p
from ill_tui.config import sqlite_url
from ill_tui.db import session_scope
from ill_tui.models import (
    IsoMessage,
    MessageDirection,
    MessageState,
    Note,
    Partner,
    Request,
    RotaEntry,
)
from ill_tui.money import Money
from ill_tui.services import exchange, sourcing

MakeLibrary = Callable[[str, str], Library]


@pytest.fixture
def library(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest, clock: FixedClock
) -> Iterator[MakeLibrary]:
    """Make libraries, each with a fresh database of the ``db_url`` kind (disposed after)."""
    made: list[Library] = []
    dropped: list[Callable[[], None]] = []

    def make(agency: str, name: str) -> Library:
        if not made:
            url = db_url
        elif db_url.startswith("sqlite"):
            url = sqlite_url(tmp_path / f"library-{len(made)}.db")
        else:
            server = request.getfixturevalue("pg_server")
            database = server.create_database()
            url = server.url(database)
            dropped.append(lambda: server.drop_database(database))
        lib = make_library(url, agency, name, clock)
        made.append(lib)
        return lib

    yield make
    for lib in made:
        lib.engine.dispose()
    for drop in dropped:
        drop()


@pytest.fixture
def pair(library: MakeLibrary) -> tuple[Library, Library]:
    """A borrowing library and a lending library that are partners of each other."""
    borrower = library("ISIL:US-BORROW", "Borrowing Library")
    lender = library("ISIL:US-LEND", "Lending Library")
    connect(borrower, lender, account_id="acct-7", security_code="s3cret-code")
    add_patron(borrower)
    return borrower, lender


def _send_to(borrower: Library, lender: Library, **form: str) -> Request:
    request = new_borrowing(borrower, **form)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(lender)])
    return borrower.desk.send_request(request.id)


def _lending(lender: Library) -> Request:
    return lender.only_request("lending")


def _all_ok(deliveries: list[Delivery]) -> None:
    bad = [(d.kind, d.summary, d.confirmation) for d in deliveries if not d.ok]
    assert not bad, bad


def _sync(borrower: Library, *lenders: Library) -> None:
    """Deliver everything; every message confirmed OK, and both sides agree on each status."""
    _all_ok(pump(borrower, *lenders))
    for lender in lenders:
        assert disagreements(borrower, lender) == []


# ---------------------------------------------------------------------------- lifecycles


def test_loan_lifecycle_both_databases_agree(
    pair: tuple[Library, Library], clock: FixedClock
) -> None:
    borrower, lender = pair
    sent = _send_to(
        borrower, lender, needed_by="2026-12-20", max_cost="20", max_cost_currency="USD"
    )
    assert sent.id is not None
    assert sent.status == "RequestReceived"
    assert sent.exchange_id == f"{sent.id}-1"
    _sync(borrower, lender)

    lending = _lending(lender)
    assert lending.status == "RequestReceived"
    assert lending.party_name == "Borrowing Library"
    assert (lending.title, lending.author, lending.isbn) == (
        "The Name of the Rose",
        "Eco, Umberto",
        "9780151446476",
    )
    assert lending.partner_request_id == sent.exchange_id
    assert lending.needed_by == date(2026, 12, 20)
    assert (lending.max_cost, lending.max_cost_currency) == (Decimal("20.0000"), "USD")
    assert lending.id is not None

    clock.advance(hours=2)
    lender.desk.change_status(lending.id, "WillSupply")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "WillSupply"
    # the lender's own id came with its answer
    assert borrower.request(sent.id).partner_request_id == lending.exchange_id

    clock.advance(days=1)
    due = date(2026, 12, 22)
    lender.desk.change_status(lending.id, "Shipped", details=exchange.StatusDetails(due_date=due))
    _sync(borrower, lender)
    loaned = borrower.request(sent.id)
    assert (loaned.status, loaned.due_date) == ("Loaned", due)

    clock.advance(days=3)
    borrower.desk.change_status(sent.id, "Received")
    _sync(borrower, lender)
    assert lender.request(lending.id).status == "Loaned"

    borrower.desk.change_status(sent.id, "CheckedOut")
    assert not lender.pending()
    assert not borrower.pending()
    clock.advance(days=10)
    borrower.desk.change_status(sent.id, "Returned")
    _sync(borrower, lender)
    detail = lender.desk.request_detail(lending.id)
    assert any("shipped the item back" in n.text for n in detail.notes)
    assert detail.request.status == "Loaned"

    clock.advance(days=2)
    lender.desk.change_status(lending.id, "LoanCompleted")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "LoanCompleted"
    assert lender.request(lending.id).status == "LoanCompleted"
    assert not borrower.request(sent.id).is_open
    assert not lender.request(lending.id).is_open

    # Every message is in both logs: what one side sent, the other applied.
    out_b = [m.kind for m in borrower.messages(MessageDirection.OUTBOUND)]
    in_l = [m.kind for m in lender.messages(MessageDirection.INBOUND)]
    assert (
        out_b
        == in_l
        == [
            "request",
            "requestingAgencyMessage",
            "requestingAgencyMessage",
        ]
    )
    assert [m.summary for m in lender.messages(MessageDirection.OUTBOUND)] == [
        "WillSupply",
        "Loaned, due 2026-12-22",
        "LoanCompleted",
    ]
    assert all(m.state == "applied" for m in lender.messages(MessageDirection.INBOUND))
    assert all(m.state == "sent" for m in borrower.messages(MessageDirection.OUTBOUND))
    # The borrower's history tells the story, each step by the lender named.
    steps = [(e.from_status, e.to_status, e.actor) for e in borrower.events(sent.id)]
    assert steps == [
        (None, "New", "staff at Borrowing Library"),
        ("New", "Sourcing", "staff at Borrowing Library"),
        ("Sourcing", "RequestReceived", "staff at Borrowing Library"),
        ("RequestReceived", "WillSupply", "Lending Library"),
        ("WillSupply", "Loaned", "Lending Library"),
        ("Loaned", "Received", "staff at Borrowing Library"),
        ("Received", "CheckedOut", "staff at Borrowing Library"),
        ("CheckedOut", "Returned", "staff at Borrowing Library"),
        ("Returned", "LoanCompleted", "Lending Library"),
    ]


def test_copy_lifecycle_ends_copy_completed_on_both_sides(
    pair: tuple[Library, Library], clock: FixedClock
) -> None:
    borrower, lender = pair
    sent = _send_to(
        borrower,
        lender,
        service_type="Copy",
        title="Journal of Documentation",
        article_title="On citation",
        pages="12-19",
        isbn="",
        issn="0022-0418",
    )
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    assert (lending.service_type, lending.article_title, lending.pages, lending.issn) == (
        "Copy",
        "On citation",
        "12-19",
        "00220418",
    )
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(lending.id, "CopyCompleted")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "CopyCompleted"
    assert lender.request(lending.id).status == "CopyCompleted"


def test_unfilled_moves_the_rota_to_a_second_lender_that_loans(
    library: MakeLibrary, clock: FixedClock
) -> None:
    borrower = library("ISIL:US-BORROW", "Borrowing Library")
    first = library("ISIL:US-FIRST", "First Lender")
    second = library("ISIL:US-SECOND", "Second Lender")
    connect(borrower, first)
    connect(borrower, second, account_id="b2", security_code="code-2")
    add_patron(borrower)
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(first), borrower.partner_id(second)])
    borrower.desk.send_request(request.id)
    _sync(borrower, first, second)

    at_first = _lending(first)
    assert at_first.id is not None
    first.desk.change_status(
        at_first.id,
        "Unfilled",
        reason="Not on the shelf",
        details=exchange.StatusDetails(reason_unfilled="NotOnShelf"),
    )
    _sync(borrower, first, second)
    moved = borrower.request(request.id)
    assert moved.status == "RequestReceived"
    assert moved.partner_id == borrower.partner_id(second)
    assert moved.exchange_id == f"{request.id}-2"
    assert moved.rota_position == 2
    events = borrower.events(request.id)
    unfilled = [e for e in events if e.to_status == "Unfilled"]
    assert len(unfilled) == 1
    assert unfilled[0].reason is not None
    assert "NotOnShelf" in unfilled[0].reason
    assert "next lender" in unfilled[0].reason
    with session_scope(borrower.engine) as session:
        outcomes = [(e.position, e.outcome) for e in sourcing.rota(session, request.id)]
    assert outcomes == [(1, "Unfilled"), (2, "RequestReceived")]

    at_second = _lending(second)
    assert at_second.id is not None
    assert at_second.partner_request_id == f"{request.id}-2"
    second.desk.change_status(at_second.id, "WillSupply")
    second.desk.change_status(
        at_second.id, "Shipped", details=exchange.StatusDetails(due_date=date(2027, 1, 4))
    )
    _sync(borrower, first, second)
    assert borrower.request(request.id).status == "Loaned"
    assert borrower.request(request.id).due_date == date(2027, 1, 4)
    assert first.request(at_first.id).status == "Unfilled"


def test_unfilled_at_the_last_lender_comes_back_to_staff(
    pair: tuple[Library, Library],
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "Unfilled", reason="NotHeld")
    _sync(borrower, lender)
    back = borrower.request(sent.id)
    assert back.status == "Unfilled"
    assert back.is_open
    last = borrower.events(sent.id)[-1]
    assert last.to_status == "Unfilled"
    assert last.reason is not None
    assert "Rota exhausted: 1 lenders asked." in last.reason
    with pytest.raises(sourcing.RotaExhausted, match="1 lenders asked"):
        borrower.desk.advance_rota(sent.id)
    assert not borrower.pending()


def test_retry_possible_with_cost_accepted_as_a_retry(
    pair: tuple[Library, Library], clock: FixedClock
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender, max_cost="10", max_cost_currency="USD")
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(
        lending.id,
        "RetryPossible",
        reason="Our charge is higher",
        details=exchange.StatusDetails(
            reason_retry="CostExceedsMaxCost", offered_costs=Money(Decimal("35"), "USD")
        ),
    )
    _sync(borrower, lender)
    waiting = borrower.request(sent.id)
    assert waiting.status == "RetryPossible"
    offer = borrower.desk.retry_offer(sent.id)
    assert offer is not None
    assert offer.reason_retry == "CostExceedsMaxCost"
    assert offer.money == Money(Decimal("35"), "USD")
    assert offer.partner_name == "Lending Library"
    reason = borrower.events(sent.id)[-1].reason or ""
    assert "CostExceedsMaxCost" in reason
    assert "35.00 USD" in reason

    clock.advance(hours=1)
    retried = borrower.desk.accept_retry(sent.id)
    assert retried.status == "RequestReceived"
    assert retried.exchange_id == f"{sent.id}-2"
    assert (retried.max_cost, retried.max_cost_currency) == (Decimal("35.0000"), "USD")
    retry_row = borrower.pending()[0]
    retry = borrower.codec.parse(retry_row.body.encode())
    assert isinstance(retry, p.IllRequest)
    assert retry.service_info is not None
    assert retry.service_info.request_type is p.RequestType.RETRY
    assert retry.service_info.requesting_agency_previous_request_id == f"{sent.id}-1"
    assert retry.billing_info is not None
    assert retry.billing_info.maximum_costs == p.Costs(amount=Decimal("35.00"), currency="USD")
    _sync(borrower, lender)

    # The lender's request came back to it (one request, not two), with the new id and cost.
    again = _lending(lender)
    assert again.id == lending.id
    assert again.status == "RequestReceived"
    assert again.partner_request_id == f"{sent.id}-2"
    assert (again.max_cost, again.max_cost_currency) == (Decimal("35.0000"), "USD")
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(lending.id, "Shipped")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "Loaned"
    # default due date: today plus the partner's loan period (21 days in iso_helpers)
    assert borrower.request(sent.id).due_date == clock().date() + timedelta(days=21)


def test_declined_retry_moves_on_or_comes_back_to_staff(
    pair: tuple[Library, Library],
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "RetryPossible", reason="OnLoan")
    _sync(borrower, lender)
    declined = borrower.desk.decline_retry(sent.id)
    assert declined.status == "Sourcing"
    assert "Rota exhausted: 1 lenders asked" in (borrower.events(sent.id)[-1].reason or "")
    assert not borrower.pending()


def test_renew_asked_and_answered(pair: tuple[Library, Library], clock: FixedClock) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(
        lending.id, "Shipped", details=exchange.StatusDetails(due_date=date(2026, 12, 14))
    )
    _sync(borrower, lender)
    borrower.desk.change_status(sent.id, "Received")
    borrower.desk.request_renew(sent.id, note="Patron needs two more weeks")
    _sync(borrower, lender)
    notes = lender.desk.request_detail(lending.id).notes
    assert any("asks to renew" in n.text and "two more weeks" in n.text for n in notes)

    with pytest.raises(ValueError, match="must be after"):
        lender.desk.answer_renew(lending.id, yes=True, due_date=date(2026, 12, 1))
    lender.desk.answer_renew(lending.id, yes=True, due_date=date(2026, 12, 28))
    _sync(borrower, lender)
    renewed = borrower.request(sent.id)
    assert (renewed.status, renewed.due_date) == ("Received", date(2026, 12, 28))
    assert lender.request(lending.id).due_date == date(2026, 12, 28)
    assert any(
        "Renewal granted" in n.text and "2026-12-28" in n.text
        for n in borrower.desk.request_detail(sent.id).notes
    )

    borrower.desk.request_renew(sent.id)
    _sync(borrower, lender)
    lender.desk.answer_renew(lending.id, yes=False, note="Wanted here")
    _sync(borrower, lender)
    assert borrower.request(sent.id).due_date == date(2026, 12, 28)
    assert any(
        "Renewal refused" in n.text and "Wanted here" in n.text
        for n in borrower.desk.request_detail(sent.id).notes
    )


def test_cancel_before_shipping_cancels_both_sides(pair: tuple[Library, Library]) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    _sync(borrower, lender)

    # Cancelling at a lender asks it; the status waits for the answer.
    asked = borrower.desk.change_status(sent.id, "Cancelled", reason="Patron no longer needs it")
    assert asked.status == "WillSupply"
    _sync(borrower, lender)
    assert any("asks to cancel" in n.text for n in lender.desk.request_detail(lending.id).notes)
    lender.desk.answer_cancel(lending.id, yes=True)
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "Cancelled"
    assert lender.request(lending.id).status == "Cancelled"
    assert not borrower.request(sent.id).is_open


def test_cancel_refused_after_shipping_keeps_the_loan(pair: tuple[Library, Library]) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    _sync(borrower, lender)
    borrower.desk.request_cancel(sent.id, "Found a copy locally")
    lender.desk.change_status(lending.id, "Shipped")
    _sync(borrower, lender)
    lender.desk.answer_cancel(lending.id, yes=False, reason="Already in the post")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "Loaned"
    assert lender.request(lending.id).status == "Shipped"
    assert any(
        "refused to cancel" in n.text and "Already in the post" in n.text
        for n in borrower.desk.request_detail(sent.id).notes
    )


def test_status_request_is_answered_with_the_current_status(
    pair: tuple[Library, Library],
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    # The lender pulls the item (a local stage: nothing sent), the borrower asks.
    lender.desk.change_status(lending.id, "Pulling")
    assert not lender.pending()
    borrower.desk.request_status(sent.id)
    deliveries = pump(borrower, lender)
    _all_ok(deliveries)
    assert [d.summary for d in deliveries] == [
        "StatusRequest",
        "StatusRequestResponse (ExpectToSupply)",
    ]
    # the answer tells the borrower where the request is: the status follows it
    assert borrower.request(sent.id).status == "ExpectToSupply"
    assert any(
        "reports the status ExpectToSupply" in n.text
        for n in borrower.desk.request_detail(sent.id).notes
    )


def test_no_answer_within_the_timeout_moves_to_the_next_lender(
    library: MakeLibrary, clock: FixedClock
) -> None:
    borrower = library("ISIL:US-BORROW", "Borrowing Library")
    silent = library("ISIL:US-SILENT", "Silent Lender")
    second = library("ISIL:US-SECOND", "Second Lender")
    connect(borrower, silent)
    connect(borrower, second)
    add_patron(borrower)
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(silent), borrower.partner_id(second)])
    borrower.desk.send_request(request.id)
    _sync(borrower, silent, second)
    kwargs = {"codec": borrower.codec, "settings": borrower.settings, "clock": clock}

    clock.advance(days=6, hours=23)
    assert sourcing.advance_stalled(borrower.engine, **kwargs) == []  # type: ignore[arg-type]
    clock.advance(hours=1)
    assert sourcing.advance_stalled(borrower.engine, **kwargs) == [request.id]  # type: ignore[arg-type]
    moved = borrower.request(request.id)
    assert moved.status == "RequestReceived"
    assert moved.partner_id == borrower.partner_id(second)
    reasons = [e.reason or "" for e in borrower.events(request.id)]
    assert any("No answer from Silent Lender within 7 days" in r for r in reasons)
    _sync(borrower, silent, second)
    assert silent.request(_lending(silent).id or 0).status == "RequestReceived"
    assert any(
        "asks to cancel" in n.text
        for n in silent.desk.request_detail(_lending(silent).id or 0).notes
    )
    assert _lending(second).status == "RequestReceived"

    # The silent lender answers late: kept as a note, the request is not moved back.
    late_id = _lending(silent).id
    assert late_id is not None
    silent.desk.change_status(late_id, "WillSupply")
    _sync(borrower, silent, second)
    assert borrower.request(request.id).status == "RequestReceived"
    assert any(
        "Late message from Silent Lender" in n.text
        for n in borrower.desk.request_detail(request.id).notes
    )


# ---------------------------------------------------------------------------- refusals


def _request_bytes(borrower: Library, lender: Library) -> tuple[IsoMessage, bytes]:
    _send_to(borrower, lender)
    row = borrower.pending()[0]
    return row, row.body.encode()


def _receive(lib: Library, raw: bytes) -> p.Confirmation:
    message = lib.codec.parse(raw)
    assert isinstance(message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage)
    return exchange.receive(
        lib.engine, message, raw, codec=lib.codec, settings=lib.settings, clock=lib.clock
    )


def _nothing_stored(lib: Library) -> None:
    with session_scope(lib.engine) as session:
        assert session.exec(select(IsoMessage)).first() is None
        assert session.exec(select(Request)).first() is None


def _error(confirmation: p.Confirmation) -> p.ErrorData:
    assert confirmation.header.message_status is p.MessageStatus.ERROR
    assert confirmation.error_data is not None
    return confirmation.error_data


def _with_auth(raw: bytes, lib: Library, auth: p.Authentication | None) -> bytes:
    message = lib.codec.parse(raw)
    assert isinstance(message, p.IllRequest)
    header = replace(message.header, requesting_agency_authentication=auth)
    return lib.codec.build(replace(message, header=header))


@pytest.mark.parametrize(
    "auth",
    [
        p.Authentication(account_id="acct-7", security_code="wrong-code"),
        p.Authentication(account_id="someone-else", security_code="s3cret-code"),
        None,
    ],
    ids=["wrong-code", "wrong-account", "missing"],
)
def test_bad_credentials_are_refused_and_nothing_is_stored(
    pair: tuple[Library, Library], auth: p.Authentication | None, caplog: pytest.LogCaptureFixture
) -> None:
    borrower, lender = pair
    _, raw = _request_bytes(borrower, lender)
    with caplog.at_level(logging.WARNING, logger="ill_tui.services.exchange"):
        confirmation = _receive(lender, _with_auth(raw, lender, auth))
    error = _error(confirmation)
    assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert error.error_value == "Authentication failed for agency ISIL:US-BORROW"
    assert "s3cret" not in caplog.text
    assert "wrong-code" not in caplog.text
    assert "ISIL:US-BORROW" in caplog.text
    with session_scope(lender.engine) as session:
        assert session.exec(select(IsoMessage)).first() is None
        assert session.exec(select(Request)).first() is None
    # the right credentials are accepted
    assert p.is_ok(_receive(lender, raw))


def test_unknown_or_inactive_agency_and_wrong_addressee_are_refused(
    pair: tuple[Library, Library], library: MakeLibrary
) -> None:
    borrower, lender = pair
    stranger = library("ISIL:US-STRANGER", "Stranger")
    connect(stranger, lender)  # the stranger knows the lender, but not as itself...
    with session_scope(lender.engine) as session:
        row = session.get(Partner, lender.partner_id(stranger))
        assert row is not None
        row.active = False
    add_patron(stranger)
    _, raw = _request_bytes(stranger, lender)
    assert _error(_receive(lender, raw)).error_value == (
        "Unknown or inactive agency ISIL:US-STRANGER"
    )
    with session_scope(lender.engine) as session:
        session.delete(session.get(Partner, lender.partner_id(stranger)))
    assert _error(_receive(lender, raw)).error_value == (
        "Unknown or inactive agency ISIL:US-STRANGER"
    )
    # A request from a partner meant for another library: not ours to take.
    _, raw = _request_bytes(borrower, lender)
    message = lender.codec.parse(raw)
    assert isinstance(message, p.IllRequest)
    other = replace(
        message.header, supplying_agency_id=p.AgencyId(type="ISIL", value="US-ELSEWHERE")
    )
    error = _error(_receive(lender, lender.codec.build(replace(message, header=other))))
    assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert "ISIL:US-ELSEWHERE" in (error.error_value or "")
    _nothing_stored(lender)


def test_a_repeated_message_is_confirmed_again_and_applied_once(
    pair: tuple[Library, Library],
) -> None:
    borrower, lender = pair
    row, raw = _request_bytes(borrower, lender)
    first = _receive(lender, raw)
    second = _receive(lender, raw)
    assert p.is_ok(first)
    assert p.is_ok(second)
    assert second.header.requesting_agency_request_id == first.header.requesting_agency_request_id
    with session_scope(lender.engine) as session:
        assert len(list(session.exec(select(Request)))) == 1
        assert len(list(session.exec(select(IsoMessage)))) == 1
    # the same holds for a message that moves a request: applied once, one Event
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    will = lender.pending()[0]
    sent = borrower.request(row.request_id or 0)
    deliver_one(lender, borrower, will)
    events = len(borrower.events(sent.id or 0))
    again = _receive(borrower, will.body.encode())
    assert p.is_ok(again)
    assert again.reason_for_message is p.ReasonForMessage.REQUEST_RESPONSE  # type: ignore[union-attr]
    assert len(borrower.events(sent.id or 0)) == events


def test_a_repeated_refused_message_gets_the_same_error(pair: tuple[Library, Library]) -> None:
    borrower, lender = pair
    _, raw = _request_bytes(borrower, lender)
    assert p.is_ok(_receive(lender, raw))
    message = lender.codec.parse(raw)
    assert isinstance(message, p.IllRequest)
    clash = replace(message, bibliographic_info=replace(message.bibliographic_info, title="Other"))
    raw2 = lender.codec.build(clash)
    for _ in range(2):
        error = _error(_receive(lender, raw2))
        assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
        rid = message.header.requesting_agency_request_id
        assert error.error_value == f"requestingAgencyRequestId {rid} is already in use"
    with session_scope(lender.engine) as session:
        rows = list(session.exec(select(IsoMessage)))
        assert [r.state for r in rows] == ["applied", "refused"]
        assert len(list(session.exec(select(Request)))) == 1


def test_unknown_request_id_is_refused(pair: tuple[Library, Library], clock: FixedClock) -> None:
    borrower, lender = pair
    message = p.SupplyingAgencyMessage(
        header=p.Header(
            supplying_agency_id=lender.agency,
            requesting_agency_id=borrower.agency,
            timestamp=clock(),
            requesting_agency_request_id="999-1",
            requesting_agency_authentication=p.Authentication(
                account_id="acct-7", security_code="s3cret-code"
            ),
        ),
        message_info=p.MessageInfo(reason_for_message=p.ReasonForMessage.STATUS_CHANGE),
        status_info=p.StatusInfo(status=p.Status.LOANED, last_change=clock()),
    )
    error = _error(_receive(borrower, borrower.codec.build(message)))
    assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert error.error_value == "non-existing RequestingAgencyRequestId 999-1"
    with session_scope(borrower.engine) as session:
        (row,) = session.exec(select(IsoMessage))
        assert (row.state, row.error_type, row.request_id) == (
            "refused",
            "UnrecognisedDataValue",
            None,
        )


def test_an_illegal_transition_is_refused_with_nothing_applied(
    pair: tuple[Library, Library], clock: FixedClock
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    # The lender's side says LoanCompleted before anything was lent.
    with session_scope(lender.engine) as session:
        request = session.get(Request, lending.id)
        partner = session.get(Partner, lender.partner_id(borrower))
        assert request is not None
        assert partner is not None
        message = exchange._supplying_message(
            request,
            partner,
            lender.settings,
            clock(),
            status=p.Status.LOAN_COMPLETED,
            reason=p.ReasonForMessage.STATUS_CHANGE,
        )
    before = borrower.request(sent.id)
    events = len(borrower.events(sent.id))
    error = _error(_receive(borrower, borrower.codec.build(message)))
    assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert error.error_value is not None
    assert "cannot go from RequestReceived to LoanCompleted" in error.error_value
    after = borrower.request(sent.id)
    assert (after.status, after.version, after.partner_request_id) == (
        before.status,
        before.version,
        before.partner_request_id,
    )
    assert len(borrower.events(sent.id)) == events
    with session_scope(borrower.engine) as session:
        refused = session.exec(select(IsoMessage).where(IsoMessage.direction == "in")).one()
        assert (refused.state, refused.request_id) == ("refused", sent.id)
        with_rota = session.exec(select(RotaEntry)).one()
        assert with_rota.outcome == "RequestReceived"


def test_received_for_a_request_not_shipped_is_refused(pair: tuple[Library, Library]) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    # Forge the borrower's "Received" before anything was shipped.
    with session_scope(borrower.engine) as session:
        request = session.get(Request, sent.id)
        assert request is not None
        exchange._send_action(
            session,
            codec=borrower.codec,
            settings=borrower.settings,
            request=request,
            action=p.Action.RECEIVED,
            note=None,
            now=borrower.clock(),
        )
    (delivery,) = pump(borrower, lender)
    error = _error(delivery.confirmation)
    assert "cannot go from RequestReceived to Loaned" in (error.error_value or "")
    assert delivery.confirmation.action is p.Action.RECEIVED  # type: ignore[union-attr]
    assert _lending(lender).status == "RequestReceived"
    with session_scope(borrower.engine) as session:
        failed = session.get(IsoMessage, delivery.row_id)
        assert failed is not None
        assert failed.state == MessageState.FAILED.value


def test_a_protocol_change_without_messaging_set_up_is_refused(
    pair: tuple[Library, Library],
) -> None:
    borrower, lender = pair
    _send_to(borrower, lender)
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    bare = lender.desk.__class__(lender.engine, actor="staff", clock=lender.clock)
    with pytest.raises(exchange.CodecMissing):
        bare.change_status(lending.id, "WillSupply")
    assert _lending(lender).status == "RequestReceived"
    # a local stage needs no message and still works without it
    assert bare.change_status(lending.id, "Pulling").status == "Pulling"
    with session_scope(lender.engine) as session:
        assert session.exec(select(Note)).first() is None


# ---------------------------------------------------------------------------- corpus samples

CORPUS = Path(__file__).parent / "data" / "iso18626" / "crosslink"


def _corpus_messages() -> list[Path]:
    from adapters.iso18626 import codec

    found = []
    for path in sorted(CORPUS.glob("*.xml")):
        try:
            message = codec.parse(path.read_bytes()).message
        except codec.Iso18626Error:
            continue  # refused by the codec: never reaches the exchange service
        if isinstance(message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage):
            found.append(path)
    return found


def test_corpus_messages_reach_the_service_with_the_right_answers(
    library: MakeLibrary,
) -> None:
    """Third-party messages (crosslink) from a known partner: each request becomes a lending
    request with its citation; each agency message about a request we never had is refused
    with UnrecognisedDataValue, as crosslink's broker answers."""
    paths = _corpus_messages()
    assert len(paths) >= 20
    lib = library("ISIL:US-CORPUS", "Corpus Library")
    created = 0
    for path in paths:
        raw = path.read_bytes()
        message = lib.codec.parse(raw)
        assert isinstance(
            message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage
        )
        sender, addressee = exchange._sender_and_addressee(message)
        settings = replace(
            lib.settings, agency_id_type=addressee.type, agency_id_value=addressee.value
        )
        with session_scope(lib.engine) as session:
            if exchange.find_partner_by_agency(session, sender) is None:
                session.add(
                    Partner(
                        agency_id_type=sender.type,
                        agency_id_value=sender.value,
                        name=f"Partner {sender.value}",
                        country="DK",
                        currency="DKK",
                    )
                )
        confirmation = exchange.receive(
            lib.engine, message, raw, codec=lib.codec, settings=settings, clock=lib.clock
        )
        rid = message.header.requesting_agency_request_id
        if isinstance(message, p.IllRequest):
            with session_scope(lib.engine) as session:
                stored = session.exec(
                    select(Request).where(Request.partner_request_id == rid)
                ).all()
            if p.is_ok(confirmation):
                created += 1
                (request,) = stored
                assert request.direction == "lending"
                assert request.status == "RequestReceived"
                bib = message.bibliographic_info
                assert request.title == (bib.title or bib.title_of_component or request.title)
            else:  # a sample that reuses an id another sample already took
                assert _error(confirmation).error_value == (
                    f"requestingAgencyRequestId {rid} is already in use"
                ), path.name
        else:
            error = _error(confirmation)
            assert error.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE, path.name
            assert error.error_value == f"non-existing RequestingAgencyRequestId {rid}"
    assert created >= 10
    # a second delivery of every sample changes nothing
    with session_scope(lib.engine) as session:
        before = len(session.exec(select(IsoMessage)).all())
    for path in paths[:5]:
        raw = path.read_bytes()
        message = lib.codec.parse(raw)
        assert isinstance(
            message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage
        )
        _, addressee = exchange._sender_and_addressee(message)
        settings = replace(
            lib.settings, agency_id_type=addressee.type, agency_id_value=addressee.value
        )
        exchange.receive(
            lib.engine, message, raw, codec=lib.codec, settings=settings, clock=lib.clock
        )
    with session_scope(lib.engine) as session:
        assert len(session.exec(select(IsoMessage)).all()) == before


def test_overdue_and_recall_from_the_lender_move_the_borrowing_request(
    pair: tuple[Library, Library], clock: FixedClock
) -> None:
    borrower, lender = pair
    sent = _send_to(borrower, lender)
    assert sent.id is not None
    _sync(borrower, lender)
    lending = _lending(lender)
    assert lending.id is not None
    lender.desk.change_status(lending.id, "WillSupply")
    lender.desk.change_status(lending.id, "Shipped")
    _sync(borrower, lender)
    borrower.desk.change_status(sent.id, "Received")
    _sync(borrower, lender)
    clock.advance(days=30)
    lender.desk.change_status(lending.id, "Overdue")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "Overdue"
    lender.desk.change_status(lending.id, "Recalled", reason="Needed for a course")
    _sync(borrower, lender)
    recalled = borrower.request(sent.id)
    assert recalled.status == "Recalled"
    assert "Needed for a course" in (borrower.events(sent.id)[-1].reason or "")
    borrower.desk.change_status(sent.id, "Returned")
    _sync(borrower, lender)
    lender.desk.change_status(lending.id, "LoanCompleted")
    _sync(borrower, lender)
    assert borrower.request(sent.id).status == "LoanCompleted"
