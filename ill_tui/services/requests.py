"""Use cases on one request: create it, change its status, add a note, read its history.

Every function takes an explicit session and leaves committing to the caller's unit of work
(``ill_tui.db.session_scope``), so a status change and its Event land together or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ill_tui import identifiers, workflow
from ill_tui.clock import Clock, utcnow
from ill_tui.models import Direction, Event, Note, Partner, Patron, Request, ServiceType, Status
from ill_tui.money import InvalidMoney, Money


class RequestNotFound(LookupError):
    """No request has that id."""

    def __init__(self, request_id: int) -> None:
        super().__init__(f"Request {request_id} does not exist.")
        self.request_id = request_id


class StaleRequest(RuntimeError):
    """Someone else changed the request since it was read; reload and try again."""

    def __init__(self, request_id: int) -> None:
        super().__init__(
            f"Request {request_id} was changed by someone else in the meantime. "
            "It has been reloaded; check it and try again."
        )
        self.request_id = request_id


class ValidationFailed(ValueError):
    """A form with errors: ``errors`` maps each field name to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass
class RequestForm:
    """What staff typed into the new-request form, as text, before any checking.

    ``patron`` is a patron's barcode (borrowing); ``partner`` is a partner's agency id such as
    ``ISIL:DK-820010`` or its exact name (lending: the library that asked us).
    """

    direction: str = Direction.BORROWING.value
    service_type: str = ServiceType.LOAN.value
    title: str = ""
    author: str = ""
    edition: str = ""
    publisher: str = ""
    place_of_publication: str = ""
    year: str = ""
    isbn: str = ""
    issn: str = ""
    oclc_number: str = ""
    lccn: str = ""
    doi: str = ""
    article_title: str = ""
    article_author: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    patron: str = ""
    partner: str = ""
    partner_request_id: str = ""
    needed_by: str = ""
    max_cost: str = ""
    max_cost_currency: str = ""
    note: str = ""


FORM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RequestForm))

_TEXT_LIMITS = {
    "title": 500, "author": 300, "edition": 100, "publisher": 200,
    "place_of_publication": 200, "article_title": 500, "article_author": 300,
    "volume": 32, "issue": 32, "pages": 32, "partner_request_id": 100,
}  # fmt: skip


@dataclass
class CleanRequest:
    """A checked form: typed values ready to store (identifiers in their compact forms)."""

    direction: Direction
    service_type: ServiceType
    values: dict[str, object] = field(default_factory=dict)
    patron: str = ""
    partner: str = ""
    note: str = ""


def validate_form(form: RequestForm, *, today: date) -> CleanRequest:
    """Check a form without touching the database.

    Raises:
        ValidationFailed: with one message per field that is wrong.
    """
    errors: dict[str, str] = {}
    values: dict[str, object] = {}

    def text(name: str) -> str:
        return str(getattr(form, name)).strip()

    try:
        direction = Direction(text("direction").lower())
    except ValueError:
        errors["direction"] = "Choose borrowing or lending."
        direction = Direction.BORROWING
    try:
        service_type = ServiceType(text("service_type").title())
    except ValueError:
        errors["service_type"] = "Choose Loan or Copy."
        service_type = ServiceType.LOAN

    for name, limit in _TEXT_LIMITS.items():
        value = text(name)
        if len(value) > limit:
            errors[name] = f"At most {limit} characters."
        values[name] = value or None

    if not text("title"):
        errors["title"] = (
            "The journal or book title is required."
            if service_type is ServiceType.COPY
            else "The title is required."
        )
    if service_type is ServiceType.COPY and not text("article_title"):
        errors["article_title"] = "A copy request needs the article or chapter title."
    values["title"] = text("title")

    checks = {
        "isbn": identifiers.normalise_isbn,
        "issn": identifiers.normalise_issn,
        "oclc_number": identifiers.normalise_oclc,
        "lccn": identifiers.normalise_lccn,
        "doi": identifiers.normalise_doi,
    }
    for name, check in checks.items():
        raw = text(name)
        values[name] = None
        if raw:
            try:
                values[name] = check(raw)
            except identifiers.InvalidIdentifier as exc:
                errors[name] = str(exc)

    year = text("year")
    values["year"] = year or None
    if year:
        match = re.fullmatch(r"(\d{3,4})(?:\s*-\s*(\d{2,4}))?", year)
        if not match:
            errors["year"] = "Write the year as digits, e.g. 1998 or 1998-2001."
        elif int(match.group(1)) > today.year + 1:
            errors["year"] = f"{match.group(1)} is in the future."

    needed_by = text("needed_by")
    values["needed_by"] = None
    if needed_by:
        try:
            parsed = date.fromisoformat(needed_by)
        except ValueError:
            errors["needed_by"] = "Write the date as YYYY-MM-DD, e.g. 2026-12-31."
        else:
            if parsed < today:
                errors["needed_by"] = f"{parsed.isoformat()} is already past."
            values["needed_by"] = parsed

    cost, currency = text("max_cost"), text("max_cost_currency")
    values["max_cost"] = None
    values["max_cost_currency"] = None
    if cost or currency:
        if not currency:
            errors["max_cost_currency"] = "Give the currency of the maximum cost (e.g. USD)."
        if not cost:
            errors["max_cost"] = "Give the amount for that currency."
        if cost and currency:
            try:
                money = Money.parse(cost, currency)
            except InvalidMoney as exc:
                key = "max_cost_currency" if "urrency" in str(exc) else "max_cost"
                errors[key] = str(exc)
            else:
                values["max_cost"] = money.amount
                values["max_cost_currency"] = money.currency

    if direction is Direction.BORROWING and not text("patron"):
        errors["patron"] = "A borrowing request needs the patron's barcode."
    if direction is Direction.LENDING and not text("partner"):
        errors["partner"] = "A lending request needs the requesting library (agency id or name)."

    if errors:
        raise ValidationFailed(errors)
    return CleanRequest(
        direction=direction,
        service_type=service_type,
        values=values,
        patron=text("patron"),
        partner=text("partner"),
        note=text("note"),
    )


def find_partner(session: Session, text: str) -> Partner | None:
    """Find a partner by ``TYPE:VALUE`` agency id, bare agency id value, or exact name."""
    text = text.strip()
    if ":" in text:
        kind, _, value = text.partition(":")
        found = session.exec(
            select(Partner).where(
                sa.func.upper(Partner.agency_id_type) == kind.strip().upper(),
                Partner.agency_id_value == value.strip(),
            )
        ).first()
        if found:
            return found
    return session.exec(
        select(Partner).where(
            sa.or_(
                col(Partner.agency_id_value) == text,
                sa.func.lower(Partner.name) == text.lower(),
            )
        )
    ).first()


def resolve_party(session: Session, clean: CleanRequest) -> tuple[Patron | None, Partner | None]:
    """The patron (borrowing) or partner library (lending) a checked form names.

    Raises:
        ValidationFailed: unknown or inactive, with the message for that field.
    """
    if clean.direction is Direction.BORROWING:
        patron = session.exec(select(Patron).where(Patron.barcode == clean.patron)).first()
        if patron is None:
            raise ValidationFailed({"patron": f"No patron has the barcode {clean.patron}."})
        if not patron.active:
            raise ValidationFailed({"patron": f"Patron {patron.name} is not active."})
        return patron, None
    partner = find_partner(session, clean.partner)
    if partner is None:
        raise ValidationFailed({"partner": f"No partner library matches {clean.partner}."})
    if not partner.active:
        raise ValidationFailed({"partner": f"Partner {partner.name} is not active."})
    return None, partner


def create_request(
    session: Session, *, form: RequestForm, actor: str, clock: Clock = utcnow
) -> Request:
    """Check ``form``, then store a new request with its first Event (and note, if any).

    Raises:
        ValidationFailed: the form has errors, including an unknown or inactive patron/partner.
    """
    now = clock()
    clean = validate_form(form, today=now.date())
    patron, partner = resolve_party(session, clean)
    status = workflow.INITIAL[clean.direction]
    request = Request(
        direction=clean.direction.value,
        service_type=clean.service_type.value,
        status=status.value,
        is_open=True,
        patron_id=patron.id if patron else None,
        partner_id=partner.id if partner else None,
        party_name=(patron.name if patron else partner.name if partner else ""),
        created_at=now,
        updated_at=now,
        **clean.values,  # type: ignore[arg-type]
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    session.add(
        Event(
            request_id=request.id,
            actor=actor,
            at=now,
            from_status=None,
            to_status=status.value,
            reason="Request created",
        )
    )
    if clean.note:
        session.add(Note(request_id=request.id, author=actor, at=now, text=clean.note))
    session.flush()
    return request


def get_request(session: Session, request_id: int) -> Request:
    """Return the request or raise ``RequestNotFound``."""
    request = session.get(Request, request_id)
    if request is None:
        raise RequestNotFound(request_id)
    return request


def change_status(
    session: Session,
    *,
    request_id: int,
    to_status: Status | str,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
    clock: Clock = utcnow,
) -> Request:
    """Move a request to ``to_status`` and write its Event, in the caller's transaction.

    ``expected_version`` is the version staff saw; if the request changed since, nothing is
    written and ``StaleRequest`` is raised (optimistic locking).

    Raises:
        RequestNotFound, StaleRequest, workflow.IllegalTransition, workflow.ReasonRequired.
    """
    request = get_request(session, request_id)
    source = request.status
    version = request.version if expected_version is None else expected_version
    if request.version != version:
        raise StaleRequest(request_id)
    workflow.check_transition(request.direction, source, to_status, reason)
    target = Status(to_status)
    now = clock()
    result = session.execute(
        sa.update(Request)
        .where(col(Request.id) == request_id, col(Request.version) == version)
        .values(
            status=target.value,
            is_open=workflow.is_open(request.direction, target),
            updated_at=now,
            version=version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleRequest(request_id)
    session.add(
        Event(
            request_id=request_id,
            actor=actor,
            at=now,
            from_status=source,
            to_status=target.value,
            reason=(reason or "").strip() or None,
        )
    )
    session.flush()
    session.refresh(request)
    return request


def add_note(
    session: Session, *, request_id: int, author: str, text: str, clock: Clock = utcnow
) -> Note:
    """Attach a note to a request.

    Raises:
        RequestNotFound: no such request.
        ValidationFailed: the note is empty or too long.
    """
    body = text.strip()
    if not body:
        raise ValidationFailed({"text": "The note is empty."})
    if len(body) > 10000:
        raise ValidationFailed({"text": "A note can hold at most 10,000 characters."})
    get_request(session, request_id)
    note = Note(request_id=request_id, author=author, at=clock(), text=body)
    session.add(note)
    session.flush()
    return note


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a request's history: a status change or a note."""

    at: datetime
    actor: str
    kind: str  # "status" or "note"
    text: str
    from_status: str | None = None
    to_status: str | None = None


@dataclass(frozen=True)
class RequestDetail:
    """Everything the request detail screen shows."""

    request: Request
    patron: Patron | None
    partner: Partner | None
    events: list[Event]
    notes: list[Note]
    transitions: list[workflow.Transition]

    @property
    def history(self) -> list[HistoryEntry]:
        """Events and notes merged, oldest first."""
        entries = [
            HistoryEntry(
                at=e.at,
                actor=e.actor,
                kind="status",
                text=(
                    f"{e.from_status or '—'} → {e.to_status}"
                    + (f": {e.reason}" if e.reason else "")
                ),
                from_status=e.from_status,
                to_status=e.to_status,
            )
            for e in self.events
        ]
        entries += [
            HistoryEntry(at=n.at, actor=n.author, kind="note", text=n.text) for n in self.notes
        ]
        return sorted(entries, key=lambda h: (h.at, h.kind != "status"))


def request_detail(session: Session, request_id: int) -> RequestDetail:
    """Load a request with its patron, partner, events, notes and allowed transitions."""
    request = get_request(session, request_id)
    patron = session.get(Patron, request.patron_id) if request.patron_id else None
    partner = session.get(Partner, request.partner_id) if request.partner_id else None
    events = list(
        session.exec(
            select(Event)
            .where(Event.request_id == request_id)
            .order_by(col(Event.at), col(Event.id))
        )
    )
    notes = list(
        session.exec(
            select(Note).where(Note.request_id == request_id).order_by(col(Note.at), col(Note.id))
        )
    )
    return RequestDetail(
        request=request,
        patron=patron,
        partner=partner,
        events=events,
        notes=notes,
        transitions=workflow.transitions_from(request.direction, request.status),
    )


def money_or_none(amount: Decimal | None, currency: str | None) -> Money | None:
    """A Money for display, or None when either part is missing."""
    if amount is None or not currency:
        return None
    return Money(amount, currency)
