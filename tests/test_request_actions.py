"""Pilot tests of the ISO 18626 staff actions on the request detail screen.

Two libraries, each with its own SQLite database (``iso_helpers``): staff press the keys on
the borrower's or the lender's detail screen, ``pump`` carries the queued messages across, and
the tests check the screen, the history and the outbox (``IsoMessage`` rows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import FixedClock
from iso_helpers import Library, add_patron, connect, make_library, new_borrowing, pump
from screens_helpers import SIZE, plain, rendered, settle
from textual.widgets import DataTable, Input, Label, OptionList, Static

from ill_tui import protocol as p
from ill_tui.app import IllApp
from ill_tui.config import sqlite_url
from ill_tui.models import IsoMessage, MessageDirection
from ill_tui.money import Money
from ill_tui.services import exchange
from screens.confirm import ConfirmModal
from screens.help import key_entries, palette_commands
from screens.protocol_actions import (
    CancelAnswerModal,
    LenderPickerModal,
    ReasonModal,
    RenewAnswerModal,
    RetryOfferModal,
)
from screens.request_detail import RequestDetailScreen

BORROWER_KEYS = {"Send to next lender", "Choose lender", "Retry offer", "Ask to renew",
                 "Ask to cancel", "Ask status"}  # fmt: skip
LENDER_KEYS = {"Answer renewal", "Answer cancellation"}


@pytest.fixture
def libraries(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[Library, Library, Library]]:
    """A borrowing library and two lending libraries, partners of each other (SQLite files)."""
    borrower = make_library(sqlite_url(tmp_path / "b.db"), "ISIL:US-BORROW", "Borrowing Library",
                            clock)  # fmt: skip
    lender = make_library(sqlite_url(tmp_path / "l.db"), "ISIL:US-LEND", "Lending Library", clock)
    second = make_library(sqlite_url(tmp_path / "s.db"), "ISIL:US-SECOND", "Second Library",
                          clock)  # fmt: skip
    connect(borrower, lender)
    connect(borrower, second)
    add_patron(borrower)
    yield borrower, lender, second
    for library in (borrower, lender, second):
        library.engine.dispose()


@asynccontextmanager
async def detail_of(library: Library, request_id: int) -> AsyncIterator[tuple[Any, Any]]:
    """Run ``library``'s app with the detail screen of ``request_id`` open."""
    app = IllApp(library.desk, clock=library.clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(RequestDetailScreen(library.desk, request_id, clock=library.clock))
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        yield app, pilot


def exchange_panel(app: Any) -> str:
    """The text of the detail screen's ISO 18626 panel."""
    return rendered(app.screen.query_one("#exchange", Static).content)


def history(app: Any) -> list[str]:
    """The 'What' column of the detail screen's history, oldest first."""
    table = app.screen.query_one("#history-table", DataTable)
    return [plain(cell) for cell in table.get_column("what")]


def shown_keys(app: Any) -> set[str]:
    """The descriptions of the keys ``?`` lists for the current screen."""
    return {entry.description for entry in key_entries(app.screen)}


def outbox(library: Library) -> list[IsoMessage]:
    """The library's outbound messages, oldest first."""
    return library.messages(MessageDirection.OUTBOUND)


async def _answer_modal(pilot: Any, modal_type: type, *keys: str) -> None:
    await settle(pilot)
    assert isinstance(pilot.app.screen, modal_type), type(pilot.app.screen).__name__
    await pilot.press(*keys)
    await settle(pilot)


def _sent_and_received(borrower: Library, lender: Library) -> tuple[int, int]:
    """A borrowing request sent (by the desk) to ``lender`` and received there."""
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(lender)])
    borrower.desk.send_request(request.id)
    pump(borrower, lender)
    lending = lender.only_request("lending")
    assert lending.id is not None
    return request.id, lending.id


async def test_send_to_the_next_lender_in_the_rota_and_then_a_chosen_one(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, second = libraries
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(lender)])

    async with detail_of(borrower, request.id) as (app, pilot):
        panel = exchange_panel(app)
        assert "Rota 1" in panel
        assert "Lending Library — not asked" in panel
        assert "Next lender" in panel
        keys = shown_keys(app)
        assert {"Send to next lender", "Choose lender"} <= keys
        assert not keys & (LENDER_KEYS | {"Ask to renew", "Ask to cancel", "Retry offer"})
        palette = {command.title for command in palette_commands(app.screen)}
        assert "Send to next lender" in palette

        await pilot.press("s")
        await settle(pilot)
        assert "RequestReceived" in plain(app.screen.query_one("#detail-heading", Label).content)
        assert "Request sent to Lending Library (lender 1 of 1)" in history(app)[-1]
        panel = exchange_panel(app)
        assert "Lender now" in panel
        assert "Lending Library (ISIL:US-LEND)" in panel
        assert "RequestReceived  ◀ now" in panel
        # at a lender: sending is over; asking about it is what fits now
        keys = shown_keys(app)
        assert "Send to next lender" not in keys
        assert {"Ask to cancel", "Ask status"} <= keys

    [sent] = outbox(borrower)
    assert (sent.kind, sent.peer, sent.state) == ("request", "ISIL:US-LEND", "pending")
    pump(borrower, lender)
    assert lender.only_request("lending").title == "The Name of the Rose"

    # The lender cannot supply: the rota is exhausted, staff choose another lender by key.
    lending = lender.only_request("lending")
    assert lending.id is not None
    lender.desk.change_status(
        lending.id,
        "Unfilled",
        reason="Not held here",
        details=exchange.StatusDetails(reason_unfilled="NotHeld"),
    )
    pump(borrower, lender)
    assert borrower.request(request.id).status == "Unfilled"

    async with detail_of(borrower, request.id) as (app, pilot):
        assert "Lending Library — Unfilled" in exchange_panel(app)
        assert "Send to next lender" not in shown_keys(app)  # no lender left in the rota
        await pilot.press("l")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, LenderPickerModal)
        options = picker.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels == [
            "Lending Library (ISIL:US-LEND, US)  — asked before",
            "Second Library (ISIL:US-SECOND, US)",
        ]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Request sent to Second Library (lender 2 of 2)" in history(app)[-1]
        assert "Second Library — RequestReceived  ◀ now" in exchange_panel(app)

    last = outbox(borrower)[-1]
    assert (last.kind, last.peer) == ("request", "ISIL:US-SECOND")
    pump(borrower, second)
    assert second.only_request("lending").status == "RequestReceived"


async def test_accept_a_retry_offer_after_seeing_its_conditions_and_costs(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, _ = libraries
    request_id, lending_id = _sent_and_received(borrower, lender)
    lender.desk.change_status(
        lending_id,
        "RetryPossible",
        reason="Our charge is higher",
        details=exchange.StatusDetails(
            reason_retry="CostExceedsMaxCost", offered_costs=Money(Decimal("35"), "USD")
        ),
    )
    pump(borrower, lender)
    assert borrower.request(request_id).status == "RetryPossible"

    async with detail_of(borrower, request_id) as (app, pilot):
        panel = exchange_panel(app)
        assert "CostExceedsMaxCost" in panel
        assert "$35.00" in panel
        assert "Retry offer" in shown_keys(app)

        # Escape closes the offer and changes nothing.
        await pilot.press("o")
        await _answer_modal(pilot, RetryOfferModal, "escape")
        assert borrower.request(request_id).status == "RetryPossible"

        await pilot.press("o")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, RetryOfferModal)
        shown = plain(modal.query_one("#retry-offer-text", Static).content)
        assert "Reason: CostExceedsMaxCost" in shown
        assert "Offered cost: $35.00" in shown
        assert "no lender is left" in plain(modal.query_one("#retry-decline-hint", Label).content)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        lines = history(app)
        assert any("Accepted the conditions of Lending Library" in line for line in lines)
        assert f"previous request {request_id}-1" in lines[-1]

    retried = borrower.request(request_id)
    assert (retried.status, retried.exchange_id) == ("RequestReceived", f"{request_id}-2")
    retry_row = outbox(borrower)[-1]
    assert retry_row.summary.startswith("Retry request")
    retry = borrower.codec.parse(retry_row.body.encode())
    assert isinstance(retry, p.IllRequest)
    assert retry.service_info is not None
    assert retry.service_info.request_type is p.RequestType.RETRY
    assert retry.billing_info is not None
    assert retry.billing_info.maximum_costs == p.Costs(amount=Decimal("35.00"), currency="USD")
    pump(borrower, lender)
    again = lender.request(lending_id)
    assert (again.status, again.partner_request_id) == ("RequestReceived", f"{request_id}-2")


async def test_decline_a_retry_offer_moves_on_to_the_next_lender(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, second = libraries
    request_id, lending_id = _sent_and_received(borrower, lender)
    borrower.desk.set_rota(request_id, [borrower.partner_id(second)])
    lender.desk.change_status(lending_id, "RetryPossible", reason="OnLoan")
    pump(borrower, lender)

    async with detail_of(borrower, request_id) as (app, pilot):
        await pilot.press("o")
        await settle(pilot)
        hint = plain(app.screen.query_one("#retry-decline-hint", Label).content)
        assert "sends the request to Second Library" in hint
        await pilot.press("d")
        await settle(pilot)
        assert "Second Library — RequestReceived  ◀ now" in exchange_panel(app)

    assert (outbox(borrower)[-1].kind, outbox(borrower)[-1].peer) == ("request", "ISIL:US-SECOND")


async def test_renew_asked_by_the_borrower_and_answered_by_the_lender(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, _ = libraries
    request_id, lending_id = _sent_and_received(borrower, lender)
    lender.desk.change_status(lending_id, "WillSupply")
    lender.desk.change_status(
        lending_id, "Shipped", details=exchange.StatusDetails(due_date=date(2026, 12, 14))
    )
    pump(borrower, lender)
    assert borrower.request(request_id).status == "Loaned"

    async with detail_of(borrower, request_id) as (app, pilot):
        assert "Ask to renew" in shown_keys(app)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ReasonModal)
        await pilot.press(*"Two more weeks", "ctrl+s")
        await settle(pilot)
        assert "Note: Asked the lender to renew the loan" in history(app)[-1]
    renew = outbox(borrower)[-1]
    assert (renew.kind, renew.summary) == ("requestingAgencyMessage", "Renew: Two more weeks")
    pump(borrower, lender)

    async with detail_of(lender, lending_id) as (app, pilot):
        keys = shown_keys(app)
        assert {"Answer renewal", "Answer cancellation"} <= keys
        assert not keys & BORROWER_KEYS
        assert any("asks to renew the loan: Two more weeks" in line for line in history(app))
        await pilot.press("R")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, RenewAnswerModal)
        assert "Due now: 2026-12-14" in plain(modal.query_one("#renew-current", Label).content)
        # A date not after the current due date is refused beside the field; nothing is sent.
        await pilot.press(*"2026-12-01", "ctrl+s")
        await settle(pilot)
        error = plain(modal.query_one("#renew-error", Label).content)
        assert "must be after the current one, 2026-12-14" in error
        assert outbox(lender)[-1].summary != "Renewal granted, due 2026-12-01"
        modal.query_one("#renew-due", Input).clear()
        await pilot.press(*"2026-12-28", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Renewal granted until 2026-12-28" in history(app)[-1]
        terms = rendered(app.screen.query_one("#terms", Static).content)
        assert "2026-12-28" in terms
    assert outbox(lender)[-1].summary == "Renewal granted, due 2026-12-28"
    pump(borrower, lender)
    assert borrower.request(request_id).due_date == date(2026, 12, 28)


async def test_cancel_asked_with_a_reason_confirmed_and_answered(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, _ = libraries
    request_id, lending_id = _sent_and_received(borrower, lender)
    lender.desk.change_status(lending_id, "WillSupply")
    pump(borrower, lender)
    sent_before = len(outbox(borrower))

    async with detail_of(borrower, request_id) as (app, pilot):
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ReasonModal)
        await pilot.press("ctrl+s")  # a reason is required
        await settle(pilot)
        assert "A reason is required." in plain(app.screen.query_one("#reason-error").content)
        await pilot.press(*"Patron left", "ctrl+s")
        # Saying no at the confirmation sends nothing.
        await _answer_modal(pilot, ConfirmModal, "n")
        assert len(outbox(borrower)) == sent_before
        await pilot.press("x")
        await settle(pilot)
        await pilot.press(*"Patron left", "ctrl+s")
        await _answer_modal(pilot, ConfirmModal, "y")
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Note: Asked the lender to cancel: Patron left" in history(app)[-1]
        # the status waits for the lender's answer
        assert borrower.request(request_id).status == "WillSupply"
    cancel = outbox(borrower)[-1]
    assert (cancel.kind, cancel.summary) == ("requestingAgencyMessage", "Cancel: Patron left")
    pump(borrower, lender)

    async with detail_of(lender, lending_id) as (app, pilot):
        await pilot.press("X")
        await settle(pilot)
        assert isinstance(app.screen, CancelAnswerModal)
        await pilot.press("y")
        # agreeing cancels our request: asked once more
        await _answer_modal(pilot, ConfirmModal, "y")
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Cancelled" in plain(app.screen.query_one("#detail-heading", Label).content)
        assert not shown_keys(app) & LENDER_KEYS  # closed: nothing left to answer
    assert outbox(lender)[-1].summary.startswith("Cancelled")
    pump(borrower, lender)
    assert borrower.request(request_id).status == "Cancelled"
    assert lender.request(lending_id).status == "Cancelled"


async def test_cancel_refused_by_the_lender_with_a_reason(
    libraries: tuple[Library, Library, Library],
) -> None:
    borrower, lender, _ = libraries
    request_id, lending_id = _sent_and_received(borrower, lender)
    lender.desk.change_status(lending_id, "WillSupply")
    lender.desk.change_status(lending_id, "Shipped")
    pump(borrower, lender)
    async with detail_of(borrower, request_id) as (app, _):
        # shipped: a cancellation can no longer be asked
        assert "Ask to cancel" not in shown_keys(app)
    borrower.desk.request_status(request_id)
    pump(borrower, lender)

    async with detail_of(lender, lending_id) as (app, pilot):
        await pilot.press("X")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, CancelAnswerModal)
        modal.query_one("#cancel-reason", Input).focus()
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert "Say why" in plain(modal.query_one("#cancel-error", Label).content)
        await pilot.press(*"Already shipped", "ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Cancellation refused: Already shipped" in history(app)[-1]
    assert outbox(lender)[-1].summary == "Cancellation refused: Already shipped"
    assert lender.request(lending_id).status == "Shipped"


async def test_a_refused_action_is_reported_in_words(
    libraries: tuple[Library, Library, Library],
) -> None:
    """The desk refuses (the request moved on meanwhile): staff read why; nothing is sent."""
    borrower, lender, _ = libraries
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.set_rota(request.id, [borrower.partner_id(lender)])
    async with detail_of(borrower, request.id) as (app, pilot):
        # Someone else sends it from another terminal while this screen shows Sourcing.
        borrower.desk.send_request(request.id)
        sent = len(outbox(borrower))
        await pilot.press("s")
        await settle(pilot)
        notes = [n.message for n in app._notifications]
        assert any("RequestReceived" in str(text) for text in notes), notes
        assert len(outbox(borrower)) == sent
        # reloaded: the screen now shows where the request is
        assert "RequestReceived" in plain(app.screen.query_one("#detail-heading", Label).content)


async def test_no_protocol_keys_without_messaging(tmp_path: Path) -> None:
    from screens_helpers import make_app

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        assert not shown_keys(app) & (BORROWER_KEYS | LENDER_KEYS)
        assert "messaging is not set up" in exchange_panel(app)
