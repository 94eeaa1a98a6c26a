"""Sourcing: the rota of candidate lenders, and moving a borrowing request along it.

A borrowing request's rota is its ``RotaEntry`` rows in ``position`` order; ``Request.
rota_position`` is the position of the lender that has it now (0 before the first is asked).

* ``send_request`` sends the request (Sourcing -> RequestReceived) to the next lender in the
  rota, or to a lender staff choose (added to the end of the rota). Each attempt gets its own
  ``requestingAgencyRequestId`` (``exchange_id`` = ``"{request id}-{attempt}"``).
* An Unfilled answer moves on by itself (``exchange`` calls ``advance``): Unfilled -> Sourcing
  -> RequestReceived at the next lender, with a new Request in the outbox.
* ``advance_stalled`` (called periodically by the outbox sender) does the same for requests a
  lender has not answered within ``Settings.rota_timeout_days``, telling that lender we
  withdraw (action Cancel) first.
* An exhausted rota comes back to staff: the request **stays Unfilled**, and the Event says
  "Rota exhausted: N lenders asked." Staff can add a lender (``send_request`` with
  ``partner_id`` after moving it to Sourcing) or cancel.
* RetryPossible: ``retry_offer`` reads the lender's conditions and offered costs from the
  stored message; ``accept_retry`` sends a Retry request (``requestingAgencyPreviousRequestId``,
  ``maximumCosts`` = the offered costs) to the same lender; ``decline_retry`` moves on to the
  next lender (or, exhausted, back to Sourcing for staff to choose).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from ill_tui import protocol as p
from ill_tui import workflow
from ill_tui.clock import Clock, utcnow
from ill_tui.config import Settings
from ill_tui.db import session_scope
from ill_tui.models import (
    Direction,
    IsoMessage,
    MessageDirection,
    Partner,
    Request,
    RotaEntry,
    Status,
)
from ill_tui.money import Money
from ill_tui.ports import CodecError, MessageCodec
from ill_tui.services import exchange, requests

log = logging.getLogger(__name__)

S = Status


class RotaExhausted(exchange.ExchangeError):
    """Every lender in the rota has been asked; staff choose another or cancel."""

    def __init__(self, request_id: int, asked: int) -> None:
        super().__init__(
            f"Rota exhausted for request {request_id}: {asked} lenders asked. "
            "Choose another lender or cancel the request."
        )
        self.request_id = request_id
        self.asked = asked


class PartnerUnavailable(exchange.ExchangeError):
    """The chosen lender does not exist or is not active."""


class NoRetryOffer(exchange.ExchangeError):
    """The request is not in RetryPossible, or the lender's offer cannot be found."""


@dataclass(frozen=True)
class RetryOffer:
    """A lender's RetryPossible: why, on what conditions, at what cost.

    Attributes:
        partner_name: the lender.
        request_id_at_lender: the requestingAgencyRequestId it answered.
        reason_retry: e.g. ``CostExceedsMaxCost``, ``OnLoan``, ``LoanCondition``.
        offered_costs: what it would charge, as sent (``money`` when the currency is known).
        retry_after, retry_before: when to ask again.
        loan_condition: e.g. ``NoReproduction``.
        note: the lender's words.
        at: when the offer came.
    """

    partner_name: str
    request_id_at_lender: str
    reason_retry: str | None
    offered_costs: p.Costs | None
    retry_after: datetime | None
    retry_before: datetime | None
    loan_condition: str | None
    note: str | None
    at: datetime

    @property
    def money(self) -> Money | None:
        """The offered costs as ``Money``, or None (none offered, or an unknown currency)."""
        return exchange._money(self.offered_costs)


# ---------------------------------------------------------------------------- the rota


def rota(session: Session, request_id: int) -> list[RotaEntry]:
    """The request's rota, in order."""
    return list(
        session.exec(
            select(RotaEntry)
            .where(RotaEntry.request_id == request_id)
            .order_by(col(RotaEntry.position))
        )
    )


def set_rota(session: Session, *, request_id: int, partner_ids: list[int]) -> list[RotaEntry]:
    """Replace the lenders not yet asked with ``partner_ids``, in that order.

    Entries already asked (at or before the current position) are kept as history.

    Raises:
        RequestNotFound; PartnerUnavailable: an id is not an active partner.
    """
    request = requests.get_request(session, request_id)
    for partner_id in partner_ids:
        partner = session.get(Partner, partner_id)
        if partner is None or not partner.active:
            raise PartnerUnavailable(f"Partner {partner_id} does not exist or is not active.")
    session.execute(
        sa.delete(RotaEntry).where(
            col(RotaEntry.request_id) == request_id,
            col(RotaEntry.position) > request.rota_position,
        )
    )
    for offset, partner_id in enumerate(partner_ids, start=1):
        session.add(
            RotaEntry(
                request_id=request_id,
                position=request.rota_position + offset,
                partner_id=partner_id,
            )
        )
    session.flush()
    return rota(session, request_id)


def next_lender(session: Session, request: Request) -> RotaEntry | None:
    """The first rota entry after the current one whose partner is active, if any."""
    for entry in session.exec(
        select(RotaEntry)
        .join(Partner, col(Partner.id) == col(RotaEntry.partner_id))
        .where(
            RotaEntry.request_id == request.id,
            col(RotaEntry.position) > request.rota_position,
            col(Partner.active).is_(True),
        )
        .order_by(col(RotaEntry.position))
    ):
        return entry
    return None


def lenders_asked(session: Session, request: Request) -> int:
    """How many different lenders have been sent this request."""
    count = session.exec(
        select(func.count(sa.distinct(col(IsoMessage.partner_id)))).where(
            IsoMessage.request_id == request.id,
            IsoMessage.direction == MessageDirection.OUTBOUND.value,
            IsoMessage.kind == p.MessageKind.REQUEST.value,
        )
    ).one()
    return int(count)


def _attempts(session: Session, request_id: int) -> int:
    count = session.exec(
        select(func.count(col(IsoMessage.id))).where(
            IsoMessage.request_id == request_id,
            IsoMessage.direction == MessageDirection.OUTBOUND.value,
            IsoMessage.kind == p.MessageKind.REQUEST.value,
        )
    ).one()
    return int(count)


# ---------------------------------------------------------------------------- sending


def send_request(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
    partner_id: int | None = None,
    note: str | None = None,
    request_type: p.RequestType = p.RequestType.NEW,
    previous_request_id: str | None = None,
    maximum_costs: p.Costs | None = None,
    reason: str | None = None,
) -> Request:
    """Send a borrowing request in Sourcing to a lender (Sourcing -> RequestReceived).

    Args:
        partner_id: the lender staff chose (added to the rota if it is not next in it);
            ``None`` for the next lender in the rota.
        note: the request's ``serviceInfo/note`` (e.g. conditions for the lender).
        request_type, previous_request_id, maximum_costs: for a Retry (``accept_retry``).
        reason: the Event's reason (default: "Request sent to <lender> ...").

    Raises:
        RequestNotFound; workflow.IllegalTransition: not in Sourcing; RotaExhausted: no lender
        left and none chosen; PartnerUnavailable; exchange.MessageNotBuilt.
    """
    request = requests.get_request(session, request_id)
    workflow.check_transition(request.direction, request.status, S.REQUEST_RECEIVED)
    if request.direction != Direction.BORROWING.value:
        raise workflow.IllegalTransition(
            Direction(request.direction), Status(request.status), S.REQUEST_RECEIVED
        )
    entry: RotaEntry | None
    if partner_id is None:
        entry = next_lender(session, request)
        if entry is None:
            raise RotaExhausted(request_id, lenders_asked(session, request))
    else:
        chosen = session.get(Partner, partner_id)
        if chosen is None or not chosen.active:
            raise PartnerUnavailable(f"Partner {partner_id} does not exist or is not active.")
        entry = next_lender(session, request)
        if request_type is p.RequestType.RETRY:
            entry = session.exec(
                select(RotaEntry).where(
                    RotaEntry.request_id == request_id,
                    RotaEntry.position == request.rota_position,
                )
            ).first()
        if entry is None or entry.partner_id != partner_id:
            last = max((e.position for e in rota(session, request_id)), default=0)
            entry = RotaEntry(
                request_id=request_id, position=max(last, request.rota_position) + 1,
                partner_id=partner_id,
            )  # fmt: skip
            session.add(entry)
            session.flush()
    partner = session.get(Partner, entry.partner_id)
    assert partner is not None
    now = clock()
    attempt = _attempts(session, request_id) + 1
    total = len(rota(session, request_id))
    request = requests.change_status(
        session,
        request_id=request_id,
        to_status=S.REQUEST_RECEIVED,
        actor=actor,
        reason=reason or (f"Request sent to {partner.name} (lender {entry.position} of {total})"),
        clock=clock,
    )
    request.exchange_id = f"{request_id}-{attempt}"
    request.partner_id = partner.id
    request.partner_request_id = None
    request.sent_at = now
    request.rota_position = entry.position
    entry.outcome = p.Status.REQUEST_RECEIVED.value
    session.add(entry)
    session.add(request)
    message = exchange.build_ill_request(
        request,
        partner,
        settings,
        now,
        request_type=request_type,
        previous_request_id=previous_request_id,
        maximum_costs=maximum_costs,
        note=note,
    )
    kind = "Retry request" if request_type is p.RequestType.RETRY else "Request"
    exchange._enqueue(
        session,
        codec=codec,
        request=request,
        partner=partner,
        message=message,
        summary=f"{kind}: {request.display_title}",
        now=now,
    )
    session.flush()
    return request


def advance(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
    reason: str | None = None,
    partner_id: int | None = None,
) -> Request:
    """Move an Unfilled or RetryPossible request on to the next lender in its rota, or to
    the lender staff chose (``partner_id``), in one transaction.

    Raises:
        RequestNotFound; RotaExhausted: no lender left (nothing is changed);
        PartnerUnavailable: the chosen partner is unknown or inactive;
        workflow.IllegalTransition: not Unfilled or RetryPossible.
    """
    request = requests.get_request(session, request_id)
    workflow.check_transition(request.direction, request.status, S.SOURCING)
    if partner_id is None:
        entry = next_lender(session, request)
        if entry is None:
            raise RotaExhausted(request_id, lenders_asked(session, request))
        partner = session.get(Partner, entry.partner_id)
        assert partner is not None
        default_reason = f"Moving on to the next lender, {partner.name}"
    else:
        partner = session.get(Partner, partner_id)
        if partner is None or not partner.active:
            raise PartnerUnavailable(f"Partner {partner_id} does not exist or is not active.")
        default_reason = f"Choosing another lender: {partner.name}"
    requests.change_status(
        session,
        request_id=request_id,
        to_status=S.SOURCING,
        actor=actor,
        reason=reason or default_reason,
        clock=clock,
    )
    return send_request(
        session, request_id=request_id, actor=actor, codec=codec, settings=settings,
        clock=clock, partner_id=partner_id,
    )  # fmt: skip


# ---------------------------------------------------------------------------- RetryPossible


def retry_offer(session: Session, request_id: int, *, codec: MessageCodec) -> RetryOffer | None:
    """The current lender's RetryPossible offer for a borrowing request, if it made one.

    Read from the stored inbound message, so a screen can show the conditions and costs.
    """
    request = requests.get_request(session, request_id)
    if not request.exchange_id:
        return None
    rows = session.exec(
        select(IsoMessage)
        .where(
            IsoMessage.request_id == request_id,
            IsoMessage.direction == MessageDirection.INBOUND.value,
            IsoMessage.kind == p.MessageKind.SUPPLYING_AGENCY_MESSAGE.value,
            IsoMessage.agency_request_id == request.exchange_id,
            IsoMessage.state == "applied",
        )
        .order_by(col(IsoMessage.id).desc())
    )
    partner = session.get(Partner, request.partner_id) if request.partner_id else None
    for row in rows:
        try:
            message = codec.parse(row.body.encode("utf-8"))
        except CodecError:
            log.warning("Stored message %s cannot be read again", row.id)
            continue
        if not isinstance(message, p.SupplyingAgencyMessage):
            continue
        if message.status_info.status is not p.Status.RETRY_POSSIBLE:
            continue
        info = message.message_info
        return RetryOffer(
            partner_name=partner.name if partner else row.peer,
            request_id_at_lender=request.exchange_id,
            reason_retry=info.reason_retry,
            offered_costs=info.offered_costs,
            retry_after=info.retry_after,
            retry_before=info.retry_before,
            loan_condition=(
                message.delivery_info.loan_condition if message.delivery_info else None
            ),
            note=info.note,
            at=row.created_at,
        )
    return None


def accept_retry(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
    note: str | None = None,
) -> Request:
    """Accept the lender's conditions: a Retry request to the same lender.

    RetryPossible -> Sourcing -> RequestReceived; the Retry carries
    ``requestingAgencyPreviousRequestId`` and, when costs were offered, ``maximumCosts`` equal
    to them (also kept as the request's maximum cost).

    Raises:
        RequestNotFound; NoRetryOffer: not RetryPossible, or the offer cannot be found.
    """
    request = requests.get_request(session, request_id)
    if request.status != S.RETRY_POSSIBLE.value:
        raise NoRetryOffer(f"Request {request_id} is {request.status}, not RetryPossible.")
    offer = retry_offer(session, request_id, codec=codec)
    if offer is None or request.partner_id is None or request.exchange_id is None:
        raise NoRetryOffer(f"No retry offer from the lender is stored for request {request_id}.")
    previous = request.exchange_id
    money = offer.money
    if money is not None:
        request.max_cost, request.max_cost_currency = money.amount, money.currency
        session.add(request)
    terms = offer.reason_retry or "conditions"
    if offer.offered_costs is not None:
        terms += f", {exchange._format_costs(offer.offered_costs)}"
    requests.change_status(
        session,
        request_id=request_id,
        to_status=S.SOURCING,
        actor=actor,
        reason=f"Accepted the conditions of {offer.partner_name} ({terms})",
        clock=clock,
    )
    return send_request(
        session,
        request_id=request_id,
        actor=actor,
        codec=codec,
        settings=settings,
        clock=clock,
        partner_id=request.partner_id,
        note=note,
        request_type=p.RequestType.RETRY,
        previous_request_id=previous,
        maximum_costs=offer.offered_costs,
        reason=f"Retry sent to {offer.partner_name} (previous request {previous})",
    )


def decline_retry(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Decline the lender's conditions and move on to the next lender.

    With no lender left the request goes back to Sourcing with the Event saying the rota is
    exhausted, for staff to choose another lender or cancel.

    Raises:
        RequestNotFound; NoRetryOffer: not RetryPossible.
    """
    request = requests.get_request(session, request_id)
    if request.status != S.RETRY_POSSIBLE.value:
        raise NoRetryOffer(f"Request {request_id} is {request.status}, not RetryPossible.")
    if next_lender(session, request) is None:
        return requests.change_status(
            session,
            request_id=request_id,
            to_status=S.SOURCING,
            actor=actor,
            reason=(
                "Retry declined. Rota exhausted: "
                f"{lenders_asked(session, request)} lenders asked; choose another lender."
            ),
            clock=clock,
        )
    return advance(
        session,
        request_id=request_id,
        actor=actor,
        codec=codec,
        settings=settings,
        clock=clock,
        reason="Retry declined; moving on to the next lender",
    )


# ---------------------------------------------------------------------------- timeouts


def advance_stalled(
    engine: Engine,
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
    actor: str = "rota",
) -> list[int]:
    """Move on every borrowing request its lender has not answered in time.

    A request still RequestReceived ``settings.rota_timeout_days`` after it was sent: the
    lender is told we withdraw (action Cancel), the request goes Unfilled (reason "No answer
    from X within N days") and on to the next lender; with none left it stays Unfilled with
    "Rota exhausted". Each request is its own transaction, so one failure stops no other.

    Returns:
        The ids of the requests moved.
    """
    now = clock()
    cutoff = now - timedelta(days=settings.rota_timeout_days)
    with session_scope(engine) as session:
        ids = list(
            session.exec(
                select(Request.id)
                .where(
                    Request.direction == Direction.BORROWING.value,
                    Request.status == S.REQUEST_RECEIVED.value,
                    col(Request.sent_at).is_not(None),
                    col(Request.sent_at) <= cutoff,
                )
                .order_by(col(Request.id))
            )
        )
    moved: list[int] = []
    for request_id in ids:
        assert request_id is not None
        try:
            with session_scope(engine) as session:
                _time_out(
                    session,
                    request_id=request_id,
                    actor=actor,
                    codec=codec,
                    settings=settings,
                    clock=clock,
                    cutoff=cutoff,
                )
            moved.append(request_id)
        except (requests.StaleRequest, exchange.ExchangeError, workflow.IllegalTransition):
            log.exception("Request %s could not be moved on after the rota timeout", request_id)
    return moved


def _time_out(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock,
    cutoff: datetime,
) -> None:
    request = requests.get_request(session, request_id)
    # Read again inside this transaction: an answer may have come since the list was made.
    if request.status != S.REQUEST_RECEIVED.value or not request.sent_at:
        return
    if request.sent_at > cutoff:
        return
    partner = session.get(Partner, request.partner_id) if request.partner_id else None
    name = partner.name if partner else "the lender"
    days = settings.rota_timeout_days
    now = clock()
    if partner is not None and request.exchange_id:
        exchange._send_action(
            session,
            codec=codec,
            settings=settings,
            request=request,
            action=p.Action.CANCEL,
            note=f"No answer within {days} days; we have asked another library.",
            now=now,
        )
    entry = next_lender(session, request)
    reason = f"No answer from {name} within {days} days."
    if entry is None:
        reason += f" Rota exhausted: {lenders_asked(session, request)} lenders asked."
    else:
        reason += " Moving on to the next lender."
    requests.change_status(
        session, request_id=request_id, to_status=S.UNFILLED, actor=actor, reason=reason,
        clock=clock,
    )  # fmt: skip
    outcome = session.exec(
        select(RotaEntry).where(
            RotaEntry.request_id == request_id, RotaEntry.position == request.rota_position
        )
    ).first()
    if outcome is not None:
        outcome.outcome = "NoAnswer"
        session.add(outcome)
    if entry is not None:
        advance(
            session,
            request_id=request_id,
            actor=actor,
            codec=codec,
            settings=settings,
            clock=clock,
        )
