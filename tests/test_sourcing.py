"""The rota: choosing lenders, sending to a chosen one, and one message arriving twice at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FixedClock
from iso_helpers import Library, add_patron, connect, make_library, new_borrowing, pump
from sqlmodel import select

from ill_tui import protocol as p
from ill_tui.config import sqlite_url
from ill_tui.db import session_scope
from ill_tui.models import IsoMessage, Request
from ill_tui.services import exchange, sourcing


@pytest.fixture
def three(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest, clock: FixedClock
) -> Iterator[tuple[Library, Library, Library]]:
    """A borrower and two lenders, each with its own database of the ``db_url`` kind."""
    urls = [db_url]
    drops = []
    for n in (1, 2):
        if db_url.startswith("sqlite"):
            urls.append(sqlite_url(tmp_path / f"lib-{n}.db"))
        else:
            server = request.getfixturevalue("pg_server")
            name = server.create_database()
            urls.append(server.url(name))
            drops.append((server, name))
    libs = (
        make_library(urls[0], "ISIL:US-B", "Borrower", clock),
        make_library(urls[1], "ISIL:US-L1", "Lender One", clock),
        make_library(urls[2], "ISIL:US-L2", "Lender Two", clock),
    )
    connect(libs[0], libs[1])
    connect(libs[0], libs[2])
    add_patron(libs[0])
    yield libs
    for lib in libs:
        lib.engine.dispose()
    for server, name in drops:
        server.drop_database(name)


def test_set_rota_replaces_only_the_lenders_not_yet_asked(
    three: tuple[Library, Library, Library],
) -> None:
    borrower, one, two = three
    request = new_borrowing(borrower)
    assert request.id is not None
    ids = [borrower.partner_id(one), borrower.partner_id(two)]
    borrower.desk.set_rota(request.id, ids)
    borrower.desk.send_request(request.id)
    # after the first lender was asked, a new rota keeps it and replaces the rest
    entries = borrower.desk.set_rota(request.id, [borrower.partner_id(two)])
    assert [(e.position, e.partner_id, e.outcome) for e in entries] == [
        (1, ids[0], "RequestReceived"),
        (2, ids[1], None),
    ]
    with pytest.raises(sourcing.PartnerUnavailable):
        borrower.desk.set_rota(request.id, [9999])


def test_a_chosen_lender_outside_the_rota_is_added_to_it(
    three: tuple[Library, Library, Library],
) -> None:
    borrower, one, two = three
    request = new_borrowing(borrower)
    assert request.id is not None
    with pytest.raises(sourcing.RotaExhausted, match="0 lenders asked"):
        borrower.desk.send_request(request.id)
    assert borrower.request(request.id).status == "Sourcing"
    sent = borrower.desk.send_request(request.id, partner_id=borrower.partner_id(two), note="MOCK")
    assert sent.partner_id == borrower.partner_id(two)
    assert sent.rota_position == 1
    (row,) = borrower.pending()
    message = borrower.codec.parse(row.body.encode())
    assert isinstance(message, p.IllRequest)
    assert message.header.supplying_agency_id == two.agency
    assert message.service_info is not None
    assert message.service_info.note == "MOCK"
    pump(borrower, one, two)
    assert two.only_request("lending").title == "The Name of the Rose"


def test_the_same_message_arriving_twice_at_once_is_applied_once(
    three: tuple[Library, Library, Library],
) -> None:
    borrower, one, _ = three
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.send_request(request.id, partner_id=borrower.partner_id(one))
    (row,) = borrower.pending()
    raw = row.body.encode()
    message = one.codec.parse(raw)
    assert isinstance(message, p.IllRequest)
    answers: list[p.Confirmation] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        answers.append(
            exchange.receive(
                one.engine, message, raw, codec=one.codec, settings=one.settings, clock=one.clock
            )
        )

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 4
    assert all(p.is_ok(a) for a in answers)
    with session_scope(one.engine) as session:
        assert len(session.exec(select(Request)).all()) == 1
        assert len(session.exec(select(IsoMessage)).all()) == 1


def test_an_unfilled_request_goes_to_a_chosen_lender_in_one_step(
    three: tuple[Library, Library, Library],
) -> None:
    borrower, one, two = three
    request = new_borrowing(borrower)
    assert request.id is not None
    borrower.desk.send_request(request.id, partner_id=borrower.partner_id(one))
    pump(borrower, one, two)
    lending = one.only_request("lending")
    assert lending.id is not None
    one.desk.change_status(lending.id, "Unfilled", reason="NotHeld")
    pump(borrower, one, two)
    assert borrower.request(request.id).status == "Unfilled"  # the rota had no one else
    # an unknown lender: refused, and the request is left exactly as it was
    with pytest.raises(sourcing.PartnerUnavailable):
        borrower.desk.advance_rota(request.id, partner_id=9999)
    assert borrower.request(request.id).status == "Unfilled"
    sent = borrower.desk.advance_rota(request.id, partner_id=borrower.partner_id(two))
    assert sent.status == "RequestReceived"
    assert sent.partner_id == borrower.partner_id(two)
    reasons = [e.reason or "" for e in borrower.events(request.id)]
    assert any("Choosing another lender: Lender Two" in r for r in reasons)
    pump(borrower, one, two)
    assert two.only_request("lending").title == "The Name of the Rose"
