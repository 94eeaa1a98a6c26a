"""In-process ISO 18626 exchanges between ill-tui libraries, each with its own database.

No HTTP: ``pump`` hands every pending outbox message of one library, as its stored bytes, to
the addressee's ``exchange.receive`` (after parsing them with the real codec, as the endpoint
does), and records the confirmation on the sender's outbox row as the outbox sender would.
The HTTP version of the same exchanges lives with the endpoint's tests.

    borrower = make_library(url_a, "ISIL:BORROW", "Borrowing Library", clock)
    lender = make_library(url_b, "ISIL:LEND", "Lending Library", clock)
    connect(borrower, lender)            # each side gets a Partner row for the other
    ...staff actions through borrower.desk / lender.desk...
    pump(borrower, lender)               # deliver until both outboxes are empty
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from adapters.iso18626.port import Iso18626Codec
from ill_tui import protocol as p
from ill_tui.clock import Clock
from ill_tui.config import Settings
from ill_tui.db import open_database, session_scope
from ill_tui.models import (
    Event,
    IsoMessage,
    MessageDirection,
    MessageState,
    Partner,
    Patron,
    Request,
)
from ill_tui.services import exchange, requests
from ill_tui.services.desk import Desk


@dataclass
class Library:
    """One ill-tui installation: its database, settings, codec and desk."""

    name: str
    agency: p.AgencyId
    engine: Engine
    settings: Settings
    codec: Iso18626Codec
    clock: Clock
    desk: Desk
    partner_ids: dict[str, int] = field(default_factory=dict)  # other agency -> Partner.id

    def partner_id(self, other: Library) -> int:
        """The id of ``other``'s Partner row in this library's database."""
        return self.partner_ids[str(other.agency)]

    def request(self, request_id: int) -> Request:
        """A request, freshly read."""
        with session_scope(self.engine) as session:
            return requests.get_request(session, request_id)

    def only_request(self, direction: str) -> Request:
        """The one request of ``direction`` (fails if there is not exactly one)."""
        with session_scope(self.engine) as session:
            rows = list(session.exec(select(Request).where(Request.direction == direction)))
        assert len(rows) == 1, f"{self.name}: {len(rows)} {direction} requests"
        return rows[0]

    def events(self, request_id: int) -> list[Event]:
        """The request's Events, oldest first."""
        with session_scope(self.engine) as session:
            return list(
                session.exec(
                    select(Event).where(Event.request_id == request_id).order_by(col(Event.id))
                )
            )

    def messages(self, direction: MessageDirection | None = None) -> list[IsoMessage]:
        """The message log, in order."""
        with session_scope(self.engine) as session:
            query = select(IsoMessage).order_by(col(IsoMessage.id))
            if direction is not None:
                query = query.where(IsoMessage.direction == direction.value)
            return list(session.exec(query))

    def pending(self) -> list[IsoMessage]:
        """Outbound messages still waiting in the outbox."""
        return [
            m
            for m in self.messages(MessageDirection.OUTBOUND)
            if m.state == MessageState.PENDING.value
        ]


def make_library(
    url: str,
    agency: str,
    name: str,
    clock: Clock,
    *,
    endpoint_url: str | None = None,
    rota_timeout_days: int = 7,
) -> Library:
    """Open (migrate) the database at ``url`` as the library ``agency`` (``TYPE:VALUE``)."""
    agency_id = p.AgencyId.parse(agency)
    engine = open_database(url)
    settings = Settings(
        database_url=url,
        agency_id_type=agency_id.type,
        agency_id_value=agency_id.value,
        library_name=name,
        endpoint_url=endpoint_url,
        rota_timeout_days=rota_timeout_days,
    )
    codec = Iso18626Codec()
    desk = Desk(engine, actor=f"staff at {name}", clock=clock, codec=codec, settings=settings)
    return Library(name, agency_id, engine, settings, codec, clock, desk)


def connect(
    a: Library,
    b: Library,
    *,
    account_id: str | None = None,
    security_code: str | None = None,
    currency: str = "USD",
) -> None:
    """Make ``a`` and ``b`` partners of each other, with the partnership's credentials."""
    for here, there in ((a, b), (b, a)):
        with session_scope(here.engine) as session:
            partner = Partner(
                agency_id_type=there.agency.type,
                agency_id_value=there.agency.value,
                name=there.name,
                country="US",
                currency=currency,
                account_id=account_id,
                security_code=security_code,
                loan_period_days=21,
                loan_charge=Decimal("0"),
            )
            session.add(partner)
            session.flush()
            assert partner.id is not None
            here.partner_ids[str(there.agency)] = partner.id


def add_patron(library: Library, barcode: str = "P0001", name: str = "Ada Reader") -> None:
    """A patron to borrow for."""
    with session_scope(library.engine) as session:
        session.add(Patron(barcode=barcode, name=name))


def new_borrowing(
    library: Library, *, title: str = "The Name of the Rose", service_type: str = "Loan", **form
) -> Request:
    """A borrowing request in Sourcing (created, then moved past verification)."""
    values: dict[str, str] = {
        "direction": "borrowing",
        "service_type": service_type,
        "title": title,
        "author": "Eco, Umberto",
        "isbn": "9780151446476",
        "patron": "P0001",
    }
    if service_type == "Copy":
        values.setdefault("article_title", "A chapter")
    values.update(form)
    request = library.desk.create_request(requests.RequestForm(**values))
    assert request.id is not None
    return library.desk.change_status(request.id, "Sourcing")


@dataclass
class Delivery:
    """One message handed from one library to another, and how it was confirmed."""

    sender: Library
    receiver: Library
    row_id: int
    kind: str
    summary: str
    confirmation: p.Confirmation

    @property
    def ok(self) -> bool:
        """True for an OK confirmation."""
        return p.is_ok(self.confirmation)


def deliver_one(sender: Library, receiver: Library, row: IsoMessage) -> Delivery:
    """Hand one stored outbound message to ``receiver`` and record the confirmation."""
    raw = row.body.encode("utf-8")
    message = receiver.codec.parse(raw)
    assert isinstance(message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage)
    confirmation = exchange.receive(
        receiver.engine,
        message,
        raw,
        codec=receiver.codec,
        settings=receiver.settings,
        clock=receiver.clock,
    )
    # The confirmation travels as XML too: build it on one side, read it on the other.
    echoed = sender.codec.parse(receiver.codec.build(confirmation))
    assert isinstance(
        echoed,
        p.RequestConfirmation
        | p.SupplyingAgencyMessageConfirmation
        | p.RequestingAgencyMessageConfirmation,
    )
    with session_scope(sender.engine) as session:
        stored = session.get(IsoMessage, row.id)
        assert stored is not None
        stored.attempts += 1
        stored.sent_at = sender.clock()
        stored.confirmation = receiver.codec.build(confirmation).decode("utf-8")
        stored.confirmation_status = echoed.header.message_status.value
        if p.is_ok(echoed):
            stored.state = MessageState.SENT.value
        else:
            stored.state = MessageState.FAILED.value
            assert echoed.error_data is not None
            stored.error_type = echoed.error_data.error_type.value
            stored.error_value = echoed.error_data.error_value
        session.add(stored)
    assert row.id is not None
    return Delivery(sender, receiver, row.id, row.kind, row.summary, echoed)


def pump(*libraries: Library, rounds: int = 50) -> list[Delivery]:
    """Deliver pending messages between ``libraries`` until every outbox is empty.

    Messages go in outbox order, each to the library whose agency is its peer.
    """
    by_agency = {str(lib.agency).upper(): lib for lib in libraries}
    done: list[Delivery] = []
    for _ in range(rounds):
        moved = False
        for sender in libraries:
            for row in sender.pending():
                receiver = by_agency[row.peer.upper()]
                done.append(deliver_one(sender, receiver, row))
                moved = True
        if not moved:
            return done
    raise AssertionError(f"outboxes still not empty after {rounds} rounds")


# What a borrowing status may be when the lender's request is in a given status: the same
# ISO status, or our local stages while the lender still sees the loan as out.
_AGREES: dict[str, set[str]] = {
    "Shipped": {"Loaned"},
    "Loaned": {"Received", "CheckedOut", "Returned", "Overdue"},
    "Overdue": {"Returned"},
    "Recalled": {"Returned"},
    "Pulling": {"RequestReceived", "ExpectToSupply"},
}


def disagreements(borrower: Library, lender: Library) -> list[str]:
    """Pairs of requests (borrower's, lender's) whose statuses do not describe the same state.

    A borrowing request is paired with the lending request that holds its current exchange id.
    """
    with session_scope(lender.engine) as session:
        lending = {
            r.partner_request_id: r
            for r in session.exec(select(Request).where(Request.direction == "lending"))
        }
    found: list[str] = []
    with session_scope(borrower.engine) as session:
        for mine in session.exec(select(Request).where(Request.direction == "borrowing")):
            theirs = lending.get(mine.exchange_id)
            if theirs is None or mine.partner_id != borrower.partner_ids.get(str(lender.agency)):
                continue
            if mine.status != theirs.status and mine.status not in _AGREES.get(
                theirs.status, set()
            ):
                found.append(f"{mine.exchange_id}: borrower {mine.status}, lender {theirs.status}")
    return found
