"""The entities of ILL work, as SQLModel tables.

One name per concept, as in DESIGN.md: a **Request** is one ILL transaction, borrowing (we ask)
or lending (we supply); a **Partner** is another library; a **Patron** is one of our users; a
**RotaEntry** is one candidate lender of a borrowing request; an **Event** records a change of
status (who, when, from, to, why); a **Note** is free text staff attach to a request.

The schema itself is created by the alembic migrations in ``ill_tui/migrations``; a test
checks that these classes and the migrated database agree.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from ill_tui.clock import as_utc, utcnow


class Direction(StrEnum):
    """Which side of the transaction we are on."""

    BORROWING = "borrowing"
    LENDING = "lending"


class ServiceType(StrEnum):
    """ISO 18626 service types."""

    LOAN = "Loan"
    COPY = "Copy"


class Status(StrEnum):
    """ISO 18626 statuses plus the local stages the protocol does not cover."""

    # local stages, borrowing
    NEW = "New"
    VERIFYING = "Verifying"
    SOURCING = "Sourcing"
    RECEIVED = "Received"
    CHECKED_OUT = "CheckedOut"
    RETURNED = "Returned"
    # local stages, lending
    PULLING = "Pulling"
    SHIPPED = "Shipped"
    # ISO 18626 statuses
    REQUEST_RECEIVED = "RequestReceived"
    EXPECT_TO_SUPPLY = "ExpectToSupply"
    WILL_SUPPLY = "WillSupply"
    LOANED = "Loaned"
    OVERDUE = "Overdue"
    RECALLED = "Recalled"
    RETRY_POSSIBLE = "RetryPossible"
    UNFILLED = "Unfilled"
    COPY_COMPLETED = "CopyCompleted"
    LOAN_COMPLETED = "LoanCompleted"
    COMPLETED_WITHOUT_RETURN = "CompletedWithoutReturn"
    CANCELLED = "Cancelled"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always handed back timezone-aware.

    SQLite has no time zones and returns naive values; PostgreSQL uses ``timestamptz``.
    Either way the application sees aware UTC datetimes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


MONEY = sa.Numeric(14, 4, asdecimal=True)


def _ts(index: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=index)


class Patron(SQLModel, table=True):
    """One of our library's users, who asks us to borrow for them."""

    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=254)
    category: str = Field(default="undergraduate", max_length=32)
    department: str | None = Field(default=None, max_length=120)
    active: bool = Field(default=True)
    created_at: datetime = _ts()


class Partner(SQLModel, table=True):
    """Another library: its identity, its ISO 18626 endpoint, its charges and policies."""

    __table_args__ = (
        sa.UniqueConstraint("agency_id_type", "agency_id_value", name="uq_partner_agency"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agency_id_type: str = Field(max_length=16)  # ISIL, OCLC, DNUCNI, ...
    agency_id_value: str = Field(max_length=64)
    name: str = Field(max_length=200)
    country: str = Field(max_length=2)  # ISO 3166-1 alpha-2
    currency: str = Field(max_length=3)  # ISO 4217
    endpoint_url: str | None = Field(default=None, max_length=500)
    email: str | None = Field(default=None, max_length=254)
    account_id: str | None = Field(default=None, max_length=100)
    security_code: str | None = Field(default=None, max_length=200)
    loan_charge: Decimal = Field(default=Decimal("0"), sa_type=MONEY)
    copy_charge: Decimal = Field(default=Decimal("0"), sa_type=MONEY)
    loan_period_days: int = Field(default=28)
    policies: str = Field(default="", max_length=2000)
    consortia: str = Field(default="", max_length=500)  # comma-separated consortium codes
    active: bool = Field(default=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = Field(default=1)

    @property
    def agency_id(self) -> str:
        """The agency id as staff write it, e.g. ``ISIL:DK-820010``."""
        return f"{self.agency_id_type}:{self.agency_id_value}"


class Request(SQLModel, table=True):
    """One ILL transaction and its citation.

    ``party_name`` is the patron's name for borrowing and the requesting library's name for
    lending, kept here (by the services) so the queues can sort and search on it without a
    join over a million rows. Requests are numbered in the order they arrive, so the queues
    sort by ``id`` for "age" (the text index can then hand rows over already in that order).
    """

    __table_args__ = (
        sa.Index("ix_request_dir_id", "direction", "id"),
        sa.Index("ix_request_dir_open_id", "direction", "is_open", "id"),
        sa.Index("ix_request_dir_status_id", "direction", "status", "id"),
        sa.Index("ix_request_dir_open_status_id", "direction", "is_open", "status", "id"),
        sa.Index("ix_request_dir_title", "direction", "title", "id"),
        sa.Index("ix_request_dir_needed_by", "direction", "needed_by", "id"),
        sa.Index("ix_request_dir_party", "direction", "party_name", "id"),
        sa.Index("ix_request_exchange", "exchange_id"),
        sa.Index("ix_request_partner_request", "partner_id", "partner_request_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    direction: str = Field(max_length=16)
    service_type: str = Field(default=ServiceType.LOAN.value, max_length=8)
    status: str = Field(max_length=32)
    is_open: bool = Field(default=True)  # False once the status is final; kept by the services
    # citation
    title: str = Field(max_length=500)
    author: str | None = Field(default=None, max_length=300)
    edition: str | None = Field(default=None, max_length=100)
    publisher: str | None = Field(default=None, max_length=200)
    place_of_publication: str | None = Field(default=None, max_length=200)
    year: str | None = Field(default=None, max_length=16)
    isbn: str | None = Field(default=None, max_length=13)
    issn: str | None = Field(default=None, max_length=9)
    oclc_number: str | None = Field(default=None, max_length=20)
    lccn: str | None = Field(default=None, max_length=20)
    doi: str | None = Field(default=None, max_length=200)
    pmid: str | None = Field(default=None, max_length=20)
    article_title: str | None = Field(default=None, max_length=500)
    article_author: str | None = Field(default=None, max_length=300)
    volume: str | None = Field(default=None, max_length=32)
    issue: str | None = Field(default=None, max_length=32)
    pages: str | None = Field(default=None, max_length=32)
    # who and where
    patron_id: int | None = Field(default=None, foreign_key="patron.id", index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    party_name: str = Field(default="", max_length=200)
    # the partner's id of this transaction (lending: the borrower's requestingAgencyRequestId;
    # borrowing: the lender's supplyingAgencyRequestId) and our own id in the current exchange
    # (borrowing: the requestingAgencyRequestId we sent; lending: the one we answer with)
    partner_request_id: str | None = Field(default=None, max_length=100)
    exchange_id: str | None = Field(default=None, max_length=100)
    rota_position: int = Field(default=0)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # request sent to lender
    # citation verification (services.verification): matched / ambiguous / not_found /
    # unreachable, and a pointer to an open request this one duplicates
    verification: str | None = Field(default=None, max_length=16)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    local_holding: str | None = Field(default=None, max_length=500)  # "we own this": where
    duplicate_of_id: int | None = Field(default=None)  # a request id; no FK: informational
    # terms and dates
    needed_by: date | None = Field(default=None)
    max_cost: Decimal | None = Field(default=None, sa_type=MONEY)
    max_cost_currency: str | None = Field(default=None, max_length=3)
    due_date: date | None = Field(default=None)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    version: int = Field(default=1)

    @property
    def display_title(self) -> str:
        """The title staff recognise: the article for a copy, with its journal."""
        if self.article_title:
            return f"{self.article_title} ({self.title})"
        return self.title


class RotaEntry(SQLModel, table=True):
    """One candidate lender of a borrowing request, in rota order."""

    __tablename__ = "rota_entry"
    __table_args__ = (sa.UniqueConstraint("request_id", "position", name="uq_rota_position"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    position: int
    partner_id: int = Field(foreign_key="partner.id", index=True)
    outcome: str | None = Field(default=None, max_length=32)  # last status seen at that lender
    created_at: datetime = _ts()


class Event(SQLModel, table=True):
    """A change of a request's status: who, when, from, to, why."""

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    actor: str = Field(max_length=100)
    at: datetime = _ts()
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=2000)


class Note(SQLModel, table=True):
    """Free text staff attach to a request."""

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    author: str = Field(max_length=100)
    at: datetime = _ts()
    text: str = Field(max_length=10000)


class MarcRecord(SQLModel, table=True):
    """A catalog record found while verifying a request's citation, with its score."""

    __tablename__ = "marc_record"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    target: str = Field(max_length=100)  # the catalog it came from
    record_id: str = Field(max_length=100)  # its 001
    marcxml: str = Field(sa_type=sa.Text)
    score: float = Field(default=0.0)
    reasons: str = Field(default="", max_length=2000)
    accepted: bool = Field(default=False)  # the record staff matched the citation to
    created_at: datetime = _ts()


class RequestHolding(SQLModel, table=True):
    """Where a catalog says a copy of a request's item is: ours, or a candidate lender's."""

    __tablename__ = "request_holding"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="request.id", index=True)
    target: str = Field(max_length=100)
    local: bool = Field(default=False)  # our own catalog: we own it
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    agency: str | None = Field(default=None, max_length=100)
    call_number: str | None = Field(default=None, max_length=200)
    location: str | None = Field(default=None, max_length=200)
    availability: str | None = Field(default=None, max_length=100)
    created_at: datetime = _ts()


class MessageDirection(StrEnum):
    """Whether an ISO 18626 message came to us or goes out from us."""

    INBOUND = "in"
    OUTBOUND = "out"


class MessageState(StrEnum):
    """Where a stored ISO 18626 message is in its life."""

    APPLIED = "applied"  # inbound, applied to its request and confirmed OK
    REFUSED = "refused"  # inbound, confirmed with ERROR and not applied
    PENDING = "pending"  # outbound, waiting in the outbox (maybe after failed attempts)
    SENT = "sent"  # outbound, confirmed OK by the partner
    FAILED = "failed"  # outbound, ERROR confirmation or retries exhausted: staff decide
    CANCELLED = "cancelled"  # outbound, cancelled by staff, never to be sent


class IsoMessage(SQLModel, table=True):
    """One ISO 18626 message, inbound or outbound: the message log and the outbox in one.

    Outbound messages are written in the same transaction as the change of status they
    announce and keep their exact bytes, so a retry sends the same message again and never a
    second, different one. Inbound messages are stored with a digest of their bytes, so a
    repeated message is recognised and confirmed again without being applied twice.
    """

    __tablename__ = "iso_message"
    __table_args__ = (sa.Index("ix_iso_message_outbox", "direction", "state", "partner_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    direction: str = Field(max_length=3)
    kind: str = Field(max_length=48)  # Request, SupplyingAgencyMessage, ...
    request_id: int | None = Field(default=None, foreign_key="request.id", index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    peer: str = Field(default="", max_length=100)  # the other agency, "TYPE:VALUE"
    agency_request_id: str | None = Field(default=None, max_length=100)
    summary: str = Field(default="", max_length=300)  # e.g. "Loaned, due 2026-12-07"
    body: str = Field(sa_type=sa.Text)
    digest: str | None = Field(default=None, max_length=64, unique=True)  # inbound only
    state: str = Field(max_length=16)
    confirmation: str | None = Field(default=None, sa_type=sa.Text)
    confirmation_status: str | None = Field(default=None, max_length=8)  # OK / ERROR
    error_type: str | None = Field(default=None, max_length=48)
    error_value: str | None = Field(default=None, max_length=500)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _ts()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
