"""Full ill-tui lifecycles against the partner simulator, over HTTP, for each scenario.

One borrowing library: a SQLite database and a real ``ill-tui serve`` process (endpoint and
outbox sender). Its lenders are played by a real ``ill-tui simulate-partner`` process, whose
answers (illmock's scenarios) travel back to ``serve``. Staff actions go through the services
(``services.sourcing`` and ``services.exchange``) in this test process, writing to the same
database, as the app's desk does; nothing is delivered by hand.

The scenario of a request is chosen as a trainer would: ``MOCK:<lender>:<SCENARIO>`` in the
request's note, or the scenario the simulator was started with for that lender
(``--scenario SIM-SECOND=WILLSUPPLY_LOANED``, for rotas, whose later requests carry no note).

Also the other direction: the simulator as a borrower (a PatronRequest makes it send a Request
to our ``serve``), receiving and returning our loan, cancelling (``#CANCEL#``), renewing when
we say Overdue (``#RENEW#``) and retrying at the cost we offer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from iso_instances import ROOT, ServeProcess, free_port, wait_listening
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from adapters.iso18626 import codec
from adapters.iso18626.port import Iso18626Codec
from ill_tui import protocol as p
from ill_tui.clock import utcnow
from ill_tui.config import Settings, sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import Event, IsoMessage, Note, Partner, Patron, Request
from ill_tui.money import Money
from ill_tui.services import exchange, requests, sourcing

OUR_AGENCY = p.AgencyId(type="ISIL", value="US-SIMTEST")
LENDERS = ("SIM-FIRST", "SIM-SECOND")
CREDENTIALS = {"SIM-FIRST": ("first-acct", "first-code"), "SIM-SECOND": ("second-acct", "c2")}
FAST_OUTBOX = ("--retry-base", "0.2", "--retry-max", "1", "--retry-attempts", "3", "--poll", "0.1")
ACTOR = "staff at the test library"


def wait_for(what: str, check: Callable[[], bool], *, within: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` if it does not in time."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


@dataclass
class Library:
    """Our library: its database, settings, codec, serve process and partner ids."""

    engine: Engine
    settings: Settings
    serve: ServeProcess
    codec: Iso18626Codec = field(default_factory=Iso18626Codec)
    partner_ids: dict[str, int] = field(default_factory=dict)

    def run(self, action: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a service function in one transaction, as staff ``ACTOR``."""
        with session_scope(self.engine) as session:
            return action(session, actor=ACTOR, codec=self.codec, settings=self.settings, **kwargs)

    def request(self, request_id: int) -> Request:
        with session_scope(self.engine) as session:
            return requests.get_request(session, request_id)

    def events(self, request_id: int) -> list[Event]:
        with session_scope(self.engine) as session:
            query = select(Event).where(Event.request_id == request_id).order_by(col(Event.id))
            return list(session.exec(query))

    def messages(self, request_id: int) -> list[IsoMessage]:
        with session_scope(self.engine) as session:
            query = (
                select(IsoMessage)
                .where(IsoMessage.request_id == request_id)
                .order_by(col(IsoMessage.id))
            )
            return list(session.exec(query))

    def inbound(self, request_id: int) -> list[p.SupplyingAgencyMessage]:
        """What the lender sent about ``request_id`` and we applied, parsed, in order."""
        found = []
        for row in self.messages(request_id):
            if row.direction == "in" and row.state == "applied":
                message = codec.parse(row.body.encode("utf-8")).message
                if isinstance(message, p.SupplyingAgencyMessage):
                    found.append(message)
        return found

    def becomes(self, request_id: int, status: str, *, within: float = 30.0) -> Request:
        wait_for(
            f"request {request_id} to be {status} (it is {self.request(request_id).status})",
            lambda: self.request(request_id).status == status,
            within=within,
        )
        return self.request(request_id)

    def settled(self, request_id: int) -> None:
        """Every message of the request left the outbox and was confirmed OK."""

        def done() -> bool:
            return all(m.state == "sent" for m in self.messages(request_id) if m.direction == "out")

        wait_for(f"the outbox of request {request_id} to empty", done)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ill-tui simulate-partner`` on a free port; SIM-SECOND loans when asked nothing."""
    port = free_port()
    log = tmp_path_factory.mktemp("sim") / "simulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ill_tui.cli", "simulate-partner", "--port", str(port),
             "--delay", "50", "--scenario", "SIM-SECOND=WILLSUPPLY_LOANED"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_listening(port, timeout=60, proc=process)
        yield f"http://127.0.0.1:{port}/iso18626"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def library(simulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """Our library, served by ``ill-tui serve``, with the simulated lenders as partners."""
    directory = tmp_path_factory.mktemp("library")
    url = sqlite_url(directory / "library.db")
    serve = ServeProcess(
        url, agency=str(OUR_AGENCY), log_path=directory / "serve.log", extra_args=FAST_OUTBOX
    )
    engine = open_database(url)
    settings = Settings(
        database_url=url,
        agency_id_type=OUR_AGENCY.type,
        agency_id_value=OUR_AGENCY.value,
        library_name="Simulator Test Library",
        endpoint_url=serve.url,
    )
    lib = Library(engine, settings, serve)
    with session_scope(engine) as session:
        for value in (*LENDERS, "SIM-BORROWER"):
            account, code = CREDENTIALS.get(value, ("borrower-acct", "borrower-code"))
            partner = Partner(
                agency_id_type="ISIL", agency_id_value=value, name=f"Simulated {value}",
                country="US", currency="USD", endpoint_url=simulator, account_id=account,
                security_code=code, loan_period_days=21, loan_charge=Decimal("0"),
            )  # fmt: skip
            session.add(partner)
            session.flush()
            assert partner.id is not None
            lib.partner_ids[value] = partner.id
        session.add(Patron(barcode="P0001", name="Ada Reader"))
    serve.start()
    try:
        yield lib
    finally:
        assert serve.stop() == 0, serve.log_text()
        engine.dispose()


def borrow(
    lib: Library,
    *,
    lenders: tuple[str, ...] = ("SIM-FIRST",),
    note: str | None = None,
    title: str = "Cybernetics",
    **form: str,
) -> Request:
    """A borrowing request sent to the first of ``lenders`` (its rota), ``note`` included."""
    values = {
        "direction": "borrowing",
        "service_type": "Loan",
        "title": title,
        "author": "Wiener, Norbert",
        "patron": "P0001",
        **form,
    }
    with session_scope(lib.engine) as session:
        made = requests.create_request(session, form=requests.RequestForm(**values), actor=ACTOR)
        assert made.id is not None
        request_id = made.id
        requests.change_status(session, request_id=request_id, to_status="Sourcing", actor=ACTOR)
        sourcing.set_rota(
            session, request_id=request_id, partner_ids=[lib.partner_ids[v] for v in lenders]
        )
    sent: Request = lib.run(sourcing.send_request, request_id=request_id, note=note)
    assert sent.status == "RequestReceived"
    return sent


def mock(scenario: str, lender: str = "SIM-FIRST") -> str:
    return f"Trainer's request. MOCK:{lender}:{scenario}"


def statuses_passed(lib: Library, request_id: int) -> list[str]:
    return [e.to_status for e in lib.events(request_id)]


# ---------------------------------------------------------------------------- loans


@pytest.mark.parametrize("scenario", ["LOANED", "WILLSUPPLY_LOANED"])
def test_loan_lifecycle(library: Library, scenario: str) -> None:
    sent = borrow(library, note=mock(scenario))
    assert sent.id is not None
    loaned = library.becomes(sent.id, "Loaned")
    said = library.inbound(sent.id)
    assert [m.status_info.status for m in said][-1] is p.Status.LOANED
    due = said[-1].status_info.due_date
    assert due is not None
    assert loaned.due_date == due.date()
    assert due - said[-1].status_info.last_change == timedelta(days=14)
    if scenario == "WILLSUPPLY_LOANED":
        assert "WillSupply" in statuses_passed(library, sent.id)

    library.run(exchange.change_status, request_id=sent.id, to_status="Received")
    library.run(exchange.change_status, request_id=sent.id, to_status="Returned")
    done = library.becomes(sent.id, "LoanCompleted")
    library.settled(sent.id)
    assert statuses_passed(library, sent.id)[-4:] == [
        "Loaned",
        "Received",
        "Returned",
        "LoanCompleted",
    ]
    assert done.partner_id == library.partner_ids["SIM-FIRST"]
    sent_kinds = [m.summary for m in library.messages(sent.id) if m.direction == "out"]
    assert [s.split(":")[0] for s in sent_kinds] == ["Request", "Received", "ShippedReturn"]


def test_copy_completed(library: Library) -> None:
    sent = borrow(
        library, note=mock("COMPLETED"), service_type="Copy", article_title="Feedback", pages="1-9"
    )
    assert sent.id is not None
    library.becomes(sent.id, "CopyCompleted")
    library.settled(sent.id)


def test_completed_for_a_loan_never_loaned_is_refused(library: Library) -> None:
    # illmock's COMPLETED answers a loan request with LoanCompleted straight away. Our workflow
    # does not allow RequestReceived -> LoanCompleted: the message is refused with the reason,
    # kept for staff, and nothing changes.
    sent = borrow(library, note=mock("COMPLETED"))
    assert sent.id is not None

    def refused() -> list[IsoMessage]:
        rows = library.messages(sent.id)
        return [m for m in rows if m.direction == "in" and m.state == "refused"]

    wait_for("the LoanCompleted to be refused", lambda: bool(refused()))
    (row,) = refused()
    assert row.error_type == "UnrecognisedDataValue"
    assert row.error_value is not None
    assert "cannot go from RequestReceived to LoanCompleted" in row.error_value
    assert library.request(sent.id).status == "RequestReceived"


def test_renew_gives_a_new_due_date(library: Library) -> None:
    sent = borrow(library, note=mock("LOANED"))
    assert sent.id is not None
    first_due = library.becomes(sent.id, "Loaned").due_date
    assert first_due is not None
    library.run(exchange.change_status, request_id=sent.id, to_status="Received")
    library.run(exchange.request_renew, request_id=sent.id, note="Patron needs it longer")
    wait_for(
        "the renewal answer",
        lambda: library.request(sent.id).due_date == first_due + timedelta(days=14),
    )
    assert library.request(sent.id).status == "Received"
    library.settled(sent.id)


def test_cancel_before_shipping(library: Library) -> None:
    sent = borrow(library, note=mock("WILLSUPPLY"))
    assert sent.id is not None
    library.becomes(sent.id, "WillSupply")
    library.run(exchange.request_cancel, request_id=sent.id, reason="Patron no longer needs it")
    library.becomes(sent.id, "Cancelled")
    library.settled(sent.id)
    answer = library.inbound(sent.id)[-1]
    assert answer.message_info.reason_for_message is p.ReasonForMessage.CANCEL_RESPONSE
    assert answer.message_info.answer_yes_no is p.YesNo.Y


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        ("LOANED_OVERDUE", "Overdue"),
        ("WILLSUPPLY_LOANED_OVERDUE", "Overdue"),
        ("LOANED_RECALLED", "Recalled"),
        ("WILLSUPPLY_LOANED_RECALLED", "Recalled"),
    ],
)
def test_overdue_and_recalled_follow_received(library: Library, scenario: str, status: str) -> None:
    sent = borrow(library, note=mock(scenario))
    assert sent.id is not None
    library.becomes(sent.id, "Loaned")
    library.run(exchange.change_status, request_id=sent.id, to_status="Received")
    library.becomes(sent.id, status)
    library.settled(sent.id)


# ---------------------------------------------------------------------------- not filled


def test_unfilled_moves_on_to_a_second_lender_that_loans(library: Library) -> None:
    # SIM-FIRST is asked nothing in particular: Unfilled; SIM-SECOND was started to loan.
    sent = borrow(library, lenders=LENDERS)
    assert sent.id is not None
    loaned = library.becomes(sent.id, "Loaned")
    assert loaned.exchange_id == f"{sent.id}-2"
    assert loaned.partner_id == library.partner_ids["SIM-SECOND"]
    assert loaned.due_date is not None
    assert statuses_passed(library, sent.id)[-5:] == [
        "Unfilled",
        "Sourcing",
        "RequestReceived",
        "WillSupply",
        "Loaned",
    ]
    library.settled(sent.id)


def test_unfilled_with_the_rota_exhausted_stays_with_staff(library: Library) -> None:
    sent = borrow(library, note=mock("WILLSUPPLY_UNFILLED"))
    assert sent.id is not None
    unfilled = library.becomes(sent.id, "Unfilled")
    assert unfilled.exchange_id == f"{sent.id}-1"
    last = library.events(sent.id)[-1]
    assert last.reason is not None
    assert "Rota exhausted" in last.reason
    library.settled(sent.id)


def test_retry_possible_for_cost_accepted(library: Library) -> None:
    note = mock("RETRY:COST_LOANED")
    sent = borrow(library, note=note, max_cost="10", max_cost_currency="USD")
    assert sent.id is not None
    library.becomes(sent.id, "RetryPossible")
    with session_scope(library.engine) as session:
        offer = sourcing.retry_offer(session, sent.id, codec=library.codec)
    assert offer is not None
    assert offer.reason_retry == "CostExceedsMaxCost"
    assert offer.money == Money(Decimal("35"), "USD")
    retried: Request = library.run(sourcing.accept_retry, request_id=sent.id, note=note)
    assert retried.exchange_id == f"{sent.id}-2"
    loaned = library.becomes(sent.id, "Loaned")
    assert loaned.max_cost == Decimal("35")
    library.settled(sent.id)
    with session_scope(library.engine) as session:
        rows = session.exec(
            select(IsoMessage).where(
                IsoMessage.request_id == sent.id, IsoMessage.direction == "out"
            )
        ).all()
    retry = codec.parse(rows[-1].body.encode("utf-8")).message
    assert isinstance(retry, p.IllRequest)
    assert retry.service_info is not None
    assert retry.service_info.request_type is p.RequestType.RETRY
    assert retry.service_info.requesting_agency_previous_request_id == f"{sent.id}-1"
    assert retry.billing_info is not None
    assert retry.billing_info.maximum_costs == p.Costs(amount=Decimal("35"), currency="USD")


@pytest.mark.parametrize(
    ("scenario", "reason_retry"),
    [
        ("RETRY:ONLOAN", "OnLoan"),
        ("RETRY:COND", "LoanCondition"),
        ("RETRY:NOTFOUNDASCITED", "NotFoundAsCited"),
    ],
)
def test_retry_possible_shows_the_lenders_conditions(
    library: Library, scenario: str, reason_retry: str
) -> None:
    sent = borrow(library, note=mock(scenario))
    assert sent.id is not None
    library.becomes(sent.id, "RetryPossible")
    with session_scope(library.engine) as session:
        offer = sourcing.retry_offer(session, sent.id, codec=library.codec)
    assert offer is not None
    assert offer.reason_retry == reason_retry
    assert offer.offered_costs is None
    library.settled(sent.id)


# ---------------------------------------------------------------------------- refusals


def test_error_scenario_fails_the_message_with_its_reason(library: Library) -> None:
    sent = borrow(library, note=mock("ERROR"))
    assert sent.id is not None

    def failed() -> bool:
        out = [m for m in library.messages(sent.id) if m.direction == "out"]
        return bool(out) and out[0].state == "failed"

    wait_for("the Request to fail", failed)
    (message,) = [m for m in library.messages(sent.id) if m.direction == "out"]
    assert message.error_type == "UnrecognisedDataValue"
    assert message.error_value == "MOCK ERROR"


@pytest.mark.parametrize("code", [400, 500])
def test_http_error_scenarios_are_retried_then_failed(library: Library, code: int) -> None:
    sent = borrow(library, note=mock(f"HTTP-ERROR-{code}"))
    assert sent.id is not None

    def failed() -> bool:
        out = [m for m in library.messages(sent.id) if m.direction == "out"]
        return bool(out) and out[0].state == "failed"

    wait_for("the Request to fail after its attempts", failed, within=60)
    (message,) = [m for m in library.messages(sent.id) if m.direction == "out"]
    assert message.attempts == 3
    assert message.last_error is not None
    assert str(code) in message.last_error


# ---------------------------------------------------------------------------- lending


def lending_request(lib: Library, partner_request_id: str) -> Request | None:
    with session_scope(lib.engine) as session:
        return session.exec(
            select(Request).where(Request.partner_request_id == partner_request_id)
        ).first()


def simulated_borrowing(library: Library, *, note: str | None = None) -> Request:
    """Have the simulator borrow from us (a PatronRequest); our lending request, arrived."""
    request_id = f"sim-{time.monotonic_ns()}"
    patron_request = p.IllRequest(
        header=p.Header(
            supplying_agency_id=OUR_AGENCY,
            requesting_agency_id=p.AgencyId(type="ISIL", value="SIM-BORROWER"),
            timestamp=utcnow(),
            requesting_agency_request_id=request_id,
            requesting_agency_authentication=p.Authentication(
                account_id="borrower-acct", security_code="borrower-code"
            ),
        ),
        bibliographic_info=p.BibliographicInfo(title="Cybernetics", author="Wiener, Norbert"),
        service_info=p.ServiceInfo(
            service_type=p.ServiceType.LOAN,
            request_sub_types=(p.RequestSubType.PATRON_REQUEST,),
            note=note,
        ),
        supplier_info=(p.SupplierInfo(supplier_description=library.serve.url),),
    )
    answer = httpx.post(
        library_simulator_url(library),
        content=codec.build(patron_request),
        headers={"Content-Type": "application/xml"},
        timeout=30,
    )
    confirmation = codec.parse(answer.content).message
    assert confirmation.header.message_status is p.MessageStatus.OK, answer.text
    found: list[Request] = []

    def arrived() -> bool:
        got = lending_request(library, request_id)
        found[:] = [got] if got is not None else []
        return bool(found)

    wait_for("the simulator's Request to arrive", arrived)
    lending = found[0]
    assert (lending.direction, lending.status) == ("lending", "RequestReceived")
    return lending


def heard(library: Library, request_id: int, words: str) -> None:
    """Wait for a note on the request saying ``words`` (what an inbound action left)."""

    def found() -> bool:
        with session_scope(library.engine) as session:
            notes = session.exec(select(Note).where(Note.request_id == request_id)).all()
        return any(words in n.text for n in notes)

    wait_for(f"a note saying {words!r}", found)


def ship(library: Library, request_id: int, days: int = 28) -> None:
    library.run(exchange.change_status, request_id=request_id, to_status="WillSupply")
    library.run(
        exchange.change_status,
        request_id=request_id,
        to_status="Shipped",
        details=exchange.StatusDetails(due_date=utcnow().date() + timedelta(days=days)),
    )


def test_simulated_borrower_receives_and_returns_our_loan(library: Library) -> None:
    lending = simulated_borrowing(library)
    assert lending.id is not None
    ship(library, lending.id)
    # The simulator answers Loaned with Received (our Shipped -> Loaned), then ShippedReturn.
    library.becomes(lending.id, "Loaned")
    heard(library, lending.id, "shipped the item back")
    library.run(exchange.change_status, request_id=lending.id, to_status="LoanCompleted")
    library.becomes(lending.id, "LoanCompleted")
    library.settled(lending.id)


def test_simulated_borrower_cancels(library: Library) -> None:
    lending = simulated_borrowing(library, note="#CANCEL#")
    assert lending.id is not None
    library.run(exchange.change_status, request_id=lending.id, to_status="WillSupply")
    heard(library, lending.id, "asks to cancel")
    library.run(
        exchange.answer_cancel, request_id=lending.id, yes=True, reason="As the borrower asked"
    )
    library.becomes(lending.id, "Cancelled")
    library.settled(lending.id)  # the simulator confirmed our CancelResponse


def test_simulated_borrower_renews_when_overdue(library: Library) -> None:
    lending = simulated_borrowing(library, note="#RENEW#")
    assert lending.id is not None
    ship(library, lending.id, days=7)
    loaned = library.becomes(lending.id, "Loaned")
    assert loaned.due_date is not None
    library.run(exchange.change_status, request_id=lending.id, to_status="Overdue")
    heard(library, lending.id, "asks to renew")
    new_due = loaned.due_date + timedelta(days=21)
    library.run(exchange.answer_renew, request_id=lending.id, yes=True, due_date=new_due)
    heard(library, lending.id, "shipped the item back")  # after its Renew, the item comes back
    assert library.request(lending.id).due_date == new_due
    library.run(exchange.change_status, request_id=lending.id, to_status="LoanCompleted")
    library.becomes(lending.id, "LoanCompleted")
    library.settled(lending.id)


def test_simulated_borrower_retries_at_our_cost(library: Library) -> None:
    lending = simulated_borrowing(library)
    assert lending.id is not None
    first_id = lending.partner_request_id
    library.run(
        exchange.change_status,
        request_id=lending.id,
        to_status="RetryPossible",
        reason="Our charge is higher",
        details=exchange.StatusDetails(
            reason_retry="CostExceedsMaxCost", offered_costs=Money(Decimal("35"), "USD")
        ),
    )
    again = library.becomes(lending.id, "RequestReceived")
    assert again.partner_request_id != first_id  # the simulator's Retry has a new id
    retries = [
        message
        for row in library.messages(lending.id)
        if row.direction == "in"
        and isinstance(message := codec.parse(row.body.encode("utf-8")).message, p.IllRequest)
    ]
    retry = retries[-1]
    assert retry.service_info is not None
    assert retry.service_info.request_type is p.RequestType.RETRY
    assert retry.service_info.requesting_agency_previous_request_id == first_id
    assert retry.billing_info is not None
    assert retry.billing_info.maximum_costs == p.Costs(amount=Decimal("35"), currency="USD")
    assert (again.max_cost, again.max_cost_currency) == (Decimal("35"), "USD")
    library.settled(lending.id)


def library_simulator_url(lib: Library) -> str:
    with session_scope(lib.engine) as session:
        partner = session.get(Partner, lib.partner_ids["SIM-BORROWER"])
        assert partner is not None
        assert partner.endpoint_url is not None
        return partner.endpoint_url


# ---------------------------------------------------------------------------- the demo sandbox


def test_demo_partners_answer_through_the_simulator(tmp_path: Path) -> None:
    """A trainer's set-up: the demo sandbox, ``serve`` and ``simulate-partner --scenario *=``.

    The demo's partners (OCLC and ISIL agencies with credentials) all point at one simulator;
    our requests name no address of ours (no ILL_TUI_ENDPOINT_URL in the staff settings), so
    the simulator answers at its --peer-url, where ``serve`` listens.
    """
    from ill_tui.demo import build_demo

    url = sqlite_url(tmp_path / "demo.db")
    engine = open_database(url)
    build_demo(engine, requests=60, seed=3)
    serve = ServeProcess(
        url, agency=str(OUR_AGENCY), log_path=tmp_path / "serve.log", extra_args=FAST_OUTBOX
    )
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}/iso18626"
    with session_scope(engine) as session:
        partners = session.exec(
            select(Partner)
            .where(Partner.active, col(Partner.endpoint_url).is_not(None))
            .order_by(col(Partner.id))
        ).all()
        lenders = [partners[0], partners[1]]
        for partner in partners:
            partner.endpoint_url = sim_url  # the demo's 8626, on a port free for this test
            session.add(partner)
        patron = session.exec(select(Patron)).first()
        assert patron is not None
        barcode = patron.barcode
        lender_ids = [partner.id for partner in lenders]
        first_agency = lenders[0].agency_id_value
        assert all(partner.account_id and partner.security_code for partner in lenders)
    settings = Settings(
        database_url=url, agency_id_type=OUR_AGENCY.type, agency_id_value=OUR_AGENCY.value
    )
    lib = Library(engine, settings, serve)
    with (tmp_path / "simulator.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ill_tui.cli", "simulate-partner", "--port", str(port),
             "--delay", "50", "--peer-url", serve.url, "--scenario", "*=WILLSUPPLY_LOANED",
             "--scenario", f"{first_agency}=UNFILLED"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_listening(port, timeout=60, proc=process)
        serve.start()
        with session_scope(engine) as session:
            form = requests.RequestForm(
                direction="borrowing", service_type="Loan", title="Demo loan", patron=barcode
            )
            made = requests.create_request(session, form=form, actor=ACTOR)
            assert made.id is not None
            request_id = made.id
            requests.change_status(
                session, request_id=request_id, to_status="Sourcing", actor=ACTOR
            )
            sourcing.set_rota(session, request_id=request_id, partner_ids=lender_ids)
        lib.run(sourcing.send_request, request_id=request_id)
        # The first demo partner says Unfilled; the rota moves on; the second one loans.
        loaned = lib.becomes(request_id, "Loaned")
        assert loaned.partner_id == lender_ids[1]
        assert loaned.due_date is not None
        lib.settled(request_id)
    finally:
        serve.stop()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        engine.dispose()
