"""The ISO 18626 exchange: what an inbound message does to our data, and what staff send.

Inbound (``receive``), called by the HTTP endpoint after it has parsed the body::

    confirmation = receive(engine, message, raw, codec=codec, settings=settings, clock=clock)

``message`` is the parsed ``IllRequest``, ``SupplyingAgencyMessage`` or
``RequestingAgencyMessage`` and ``raw`` the exact bytes received. ``receive`` opens its own
transaction and returns the confirmation object to answer with (build it with the codec).
In order it:

1. authenticates the sender: the requesting agency of a request or requesting agency message,
   the supplying agency of a supplying agency message, must be a known, active ``Partner``;
   when that partner has an account id or security code configured, the header's
   ``requestingAgencyAuthentication`` must carry the same pair (constant-time compare). Our own
   agency (``Settings.agency_id_*``) must be the addressee. A failure is answered ERROR /
   UnrecognisedDataValue and leaves nothing but a log line: an unknown peer cannot fill our
   message log.
2. recognises a repeated message by the SHA-256 digest of ``raw``: it is confirmed again with
   the same result and not applied a second time.
3. stores the raw message (``IsoMessage``, direction in) and applies it to its request in ONE
   transaction, committed before the confirmation is returned. A message that cannot be
   applied (unknown request id, a request id already in use, a status change the workflow does
   not allow) is answered ERROR with words saying why, changes nothing, and is stored with
   state ``refused`` so staff see it.

What a message does:

* ``request``: a new lending request (RequestReceived), or, for ``requestType`` Retry naming a
  lending request of ours in RetryPossible, that request back to RequestReceived.
* ``supplyingAgencyMessage``: moves the borrowing request whose ``exchange_id`` is its
  ``requestingAgencyRequestId`` (due dates, offered costs and reasons go into the Event and
  notes). Unfilled moves on to the next lender in the rota (``services.sourcing``). A message
  about an earlier attempt (a lender we have moved on from) is kept as a note, not applied.
* ``requestingAgencyMessage``: Received moves the lending request Shipped -> Loaned;
  ShippedReturn, Renew, Cancel, Notification and ShippedForward are notes staff act on
  (``answer_renew``, ``answer_cancel``); StatusRequest queues a StatusRequestResponse.

Outbound: every staff action the protocol carries goes through ``change_status`` or one of the
action functions here (and ``services.sourcing`` for requests and the rota). The message is
built with the codec (so it is XSD-valid) and written to the outbox (``IsoMessage``, direction
out, state pending) in the same transaction as the status change and its Event. The outbox
sender (``services.outbox``) delivers it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ill_tui import identifiers, workflow
from ill_tui import protocol as p
from ill_tui.clock import Clock, utcnow
from ill_tui.config import Settings
from ill_tui.db import BulkInsert, ListStatement, session_scope
from ill_tui.models import (
    Direction,
    Event,
    IsoMessage,
    MessageDirection,
    MessageState,
    Note,
    Partner,
    Request,
    RotaEntry,
    ServiceType,
    Status,
)
from ill_tui.money import InvalidMoney, Money
from ill_tui.ports import CodecError, MessageCodec
from ill_tui.services import requests

log = logging.getLogger(__name__)

S = Status

# ---------------------------------------------------------------------------- errors


class ExchangeError(RuntimeError):
    """A protocol-carrying action cannot be done; the text says why in staff's words."""


class NotAnExchange(ExchangeError):
    """The request has no ISO 18626 exchange with a partner (never sent, or typed in by hand)."""

    def __init__(self, request_id: int, what: str) -> None:
        super().__init__(
            f"Request {request_id} is not in an ISO 18626 exchange with a partner, "
            f"so there is no one to {what}."
        )
        self.request_id = request_id


class CodecMissing(ExchangeError):
    """A transition must send an ISO 18626 message but no codec or settings were wired in."""

    def __init__(self, request_id: int) -> None:
        super().__init__(
            f"Request {request_id} is exchanged with a partner over ISO 18626, and this "
            "change must send a message, but messaging is not set up in this program."
        )
        self.request_id = request_id


class WrongStatus(ExchangeError):
    """The action does not fit the request's current status."""


class MessageNotBuilt(ExchangeError):
    """The codec refused to build the message (it would not be valid ISO 18626)."""


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True)
class StatusDetails:
    """What a protocol-carrying status change tells the partner beyond the status itself.

    Attributes:
        due_date: lending, shipping a loan: when it is due back (default: today plus the
            partner's loan period).
        reason_unfilled: lending Unfilled: the ``reasonUnfilled`` value (e.g. ``NotHeld``);
            defaults to the Event reason.
        reason_retry: lending RetryPossible: the ``reasonRetry`` value (e.g.
            ``CostExceedsMaxCost``); defaults to the Event reason.
        offered_costs: lending RetryPossible: what we would charge.
        retry_after: lending RetryPossible (e.g. OnLoan): ask again after this date.
        note: free text for the message's note (defaults to the Event reason).
    """

    due_date: date | None = None
    reason_unfilled: str | None = None
    reason_retry: str | None = None
    offered_costs: Money | None = None
    retry_after: date | None = None
    note: str | None = None


# ---------------------------------------------------------------------------- small helpers


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def our_agency(settings: Settings) -> p.AgencyId:
    """Our own agency id, from the settings."""
    return p.AgencyId(type=settings.agency_id_type, value=settings.agency_id_value)


def partner_agency(partner: Partner) -> p.AgencyId:
    """A partner's agency id as ISO 18626 writes it."""
    return p.AgencyId(type=partner.agency_id_type, value=partner.agency_id_value)


def _same_agency(a: p.AgencyId, b: p.AgencyId) -> bool:
    return a.type.strip().upper() == b.type.strip().upper() and a.value.strip() == b.value.strip()


class _Credentials(Protocol):
    """What the authentication check reads: a ``Partner`` or a row of the partner table."""

    @property
    def account_id(self) -> str | None: ...

    @property
    def security_code(self) -> str | None: ...


def _authentication(partner: Partner) -> p.Authentication | None:
    """The credentials of the partnership, sent in every message to ``partner`` (when set)."""
    if not partner.account_id and not partner.security_code:
        return None
    return p.Authentication(
        account_id=partner.account_id or None, security_code=partner.security_code or None
    )


def _credentials_match(partner: _Credentials, given: p.Authentication | None) -> bool:
    """True when ``given`` carries the partnership's credentials (or none are configured)."""
    if not partner.account_id and not partner.security_code:
        return True
    account = (given.account_id if given else None) or ""
    code = (given.security_code if given else None) or ""
    # Both compared every time, so the answer's timing does not say which one was wrong.
    ok_account = hmac.compare_digest(account.encode(), (partner.account_id or "").encode())
    ok_code = hmac.compare_digest(code.encode(), (partner.security_code or "").encode())
    return ok_account and ok_code


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _costs(money: Money | None) -> p.Costs | None:
    return None if money is None else p.Costs(amount=money.amount, currency=money.currency)


def _money(costs: p.Costs | None) -> Money | None:
    if costs is None:
        return None
    try:
        return costs.to_money()
    except InvalidMoney:
        return None


def _format_costs(costs: p.Costs) -> str:
    money = _money(costs)
    if money is not None:
        return f"{money.amount} {money.currency}"
    return f"{costs.amount} {costs.currency}"


def _add_note(session: Session, request: Request, author: str, text: str, now: datetime) -> None:
    assert request.id is not None
    session.add(Note(request_id=request.id, author=author[:100], at=now, text=text.strip()[:10000]))


def _partner_of(session: Session, request: Request) -> Partner | None:
    return session.get(Partner, request.partner_id) if request.partner_id else None


def _enqueue(
    session: Session,
    *,
    codec: MessageCodec,
    request: Request,
    partner: Partner,
    message: p.AgencyMessage,
    summary: str,
    now: datetime,
) -> IsoMessage:
    """Build ``message`` and put it in the outbox, in the caller's transaction."""
    try:
        body = codec.build(message)
    except CodecError as error:
        raise MessageNotBuilt(
            f"The {message.kind} for request {request.id} could not be built: {error}"
        ) from error
    row = IsoMessage(
        direction=MessageDirection.OUTBOUND.value,
        kind=message.kind.value,
        request_id=request.id,
        partner_id=partner.id,
        peer=str(partner_agency(partner))[:100],
        agency_request_id=message.header.requesting_agency_request_id[:100],
        summary=summary[:300],
        body=body.decode("utf-8"),
        state=MessageState.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------------------- headers


def borrower_header(
    request: Request, partner: Partner, settings: Settings, now: datetime
) -> p.Header:
    """The header of a message we send as the requesting agency (borrowing request)."""
    assert request.exchange_id
    return p.Header(
        supplying_agency_id=partner_agency(partner),
        requesting_agency_id=our_agency(settings),
        timestamp=now,
        requesting_agency_request_id=request.exchange_id,
        supplying_agency_request_id=request.partner_request_id or None,
        requesting_agency_authentication=_authentication(partner),
    )


def lender_header(
    request: Request, partner: Partner, settings: Settings, now: datetime
) -> p.Header:
    """The header of a message we send as the supplying agency (lending request)."""
    assert request.partner_request_id
    return p.Header(
        supplying_agency_id=our_agency(settings),
        requesting_agency_id=partner_agency(partner),
        timestamp=now,
        requesting_agency_request_id=request.partner_request_id,
        supplying_agency_request_id=request.exchange_id or None,
        requesting_agency_authentication=_authentication(partner),
    )


# ---------------------------------------------------------------------------- outbound: borrowing

_ITEM_IDS: tuple[tuple[str, str], ...] = (
    ("isbn", "ISBN"),
    ("issn", "ISSN"),
    ("oclc_number", "OCLC"),
    ("lccn", "LCCN"),
    ("doi", "DOI"),
    ("pmid", "PMID"),
)


def build_ill_request(
    request: Request,
    partner: Partner,
    settings: Settings,
    now: datetime,
    *,
    request_type: p.RequestType = p.RequestType.NEW,
    previous_request_id: str | None = None,
    maximum_costs: p.Costs | None = None,
    note: str | None = None,
) -> p.IllRequest:
    """The ISO 18626 request for a borrowing request at ``partner`` (its current exchange id).

    The patron is not named: partners get what they need to supply, not who asked.
    """
    ids = tuple(
        p.BibliographicItemId(code=code, value=str(getattr(request, attr)))
        for attr, code in _ITEM_IDS
        if getattr(request, attr)
    )
    copy = request.service_type == ServiceType.COPY.value
    bib = p.BibliographicInfo(
        title=request.title or None,
        author=request.author or None,
        edition=request.edition or None,
        title_of_component=request.article_title or None,
        author_of_component=request.article_author or None,
        volume=request.volume or None,
        issue=request.issue or None,
        pages_requested=request.pages or None,
        bibliographic_item_ids=ids,
    )
    publication = None
    if request.publisher or request.year or request.place_of_publication:
        publication = p.PublicationInfo(
            publisher=request.publisher or None,
            publication_date=request.year or None,
            place_of_publication=request.place_of_publication or None,
        )
    service = p.ServiceInfo(
        service_type=p.ServiceType.COPY if copy else p.ServiceType.LOAN,
        request_type=request_type,
        requesting_agency_previous_request_id=previous_request_id,
        need_before_date=_midnight(request.needed_by) if request.needed_by else None,
        note=note or None,
    )
    addresses: tuple[p.Address, ...] = ()
    if settings.endpoint_url:
        addresses = (p.ElectronicAddress(type="URL", data=settings.endpoint_url),)
    if maximum_costs is None and request.max_cost is not None and request.max_cost_currency:
        maximum_costs = p.Costs(amount=request.max_cost, currency=request.max_cost_currency)
    return p.IllRequest(
        header=borrower_header(request, partner, settings, now),
        bibliographic_info=bib,
        publication_info=publication,
        service_info=service,
        requesting_agency_info=p.RequestingAgencyInfo(
            name=settings.library_name, addresses=addresses
        ),
        billing_info=(
            p.BillingInfo(maximum_costs=maximum_costs) if maximum_costs is not None else None
        ),
    )


def _send_action(
    session: Session,
    *,
    codec: MessageCodec,
    settings: Settings,
    request: Request,
    action: p.Action,
    note: str | None,
    now: datetime,
) -> IsoMessage:
    partner = _partner_of(session, request)
    if partner is None or not request.exchange_id:
        assert request.id is not None
        raise NotAnExchange(request.id, f"send {action.value} to")
    message = p.RequestingAgencyMessage(
        header=borrower_header(request, partner, settings, now),
        action=action,
        note=_clip(note, 2000),
    )
    summary = action.value + (f": {note.strip()}" if note and note.strip() else "")
    return _enqueue(
        session,
        codec=codec,
        request=request,
        partner=partner,
        message=message,
        summary=summary,
        now=now,
    )


# Borrowing statuses in which the item is with the lender's answer still to come: there a
# cancellation is asked of the lender, not decided by us.
_AT_LENDER: frozenset[Status] = frozenset({S.REQUEST_RECEIVED, S.EXPECT_TO_SUPPLY, S.WILL_SUPPLY})


def _borrowing_action(source: Status, target: Status) -> p.Action | None:
    if source is S.LOANED and target is S.RECEIVED:
        return p.Action.RECEIVED
    if target is S.RETURNED:
        return p.Action.SHIPPED_RETURN
    return None


def request_cancel(
    session: Session,
    *,
    request_id: int,
    actor: str,
    reason: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Ask the lender to cancel a borrowing request (action Cancel).

    The status does not change yet: it becomes Cancelled when the lender answers
    CancelResponse Y; an N (already shipped) is kept as a note.

    Raises:
        RequestNotFound, NotAnExchange, WrongStatus: not at a lender that can still cancel.
    """
    request = requests.get_request(session, request_id)
    if request.direction != Direction.BORROWING.value or Status(request.status) not in _AT_LENDER:
        raise WrongStatus(
            f"Request {request_id} is {request.status}; a cancellation can be asked of the "
            "lender only before it ships (RequestReceived, ExpectToSupply, WillSupply)."
        )
    if not (reason and reason.strip()):
        raise workflow.ReasonRequired(S.CANCELLED)
    now = clock()
    _send_action(
        session,
        codec=codec,
        settings=settings,
        request=request,
        action=p.Action.CANCEL,
        note=reason,
        now=now,
    )
    _add_note(session, request, actor, f"Asked the lender to cancel: {reason.strip()}", now)
    session.flush()
    return request


def request_renew(
    session: Session,
    *,
    request_id: int,
    actor: str,
    note: str | None = None,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Ask the lender to renew a loan (action Renew); the answer brings the new due date.

    Raises:
        RequestNotFound, NotAnExchange, WrongStatus: nothing on loan to renew.
    """
    request = requests.get_request(session, request_id)
    on_loan = {S.LOANED, S.RECEIVED, S.CHECKED_OUT, S.OVERDUE, S.RECALLED}
    if request.direction != Direction.BORROWING.value or Status(request.status) not in on_loan:
        raise WrongStatus(f"Request {request_id} is {request.status}: no loan to renew.")
    now = clock()
    _send_action(
        session,
        codec=codec,
        settings=settings,
        request=request,
        action=p.Action.RENEW,
        note=note,
        now=now,
    )
    _add_note(session, request, actor, "Asked the lender to renew the loan", now)
    session.flush()
    return request


def request_status(
    session: Session,
    *,
    request_id: int,
    actor: str,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Ask the lender for the request's status (action StatusRequest).

    Raises:
        RequestNotFound, NotAnExchange, WrongStatus: the request is closed.
    """
    request = requests.get_request(session, request_id)
    if request.direction != Direction.BORROWING.value or not request.is_open:
        raise WrongStatus(f"Request {request_id} is {request.status}; there is nothing to ask.")
    _send_action(
        session,
        codec=codec,
        settings=settings,
        request=request,
        action=p.Action.STATUS_REQUEST,
        note=None,
        now=clock(),
    )
    session.flush()
    return request


# ---------------------------------------------------------------------------- outbound: lending

# Lending statuses as the ISO status the borrower sees (local stages mapped to the nearest).
LENDING_ISO_STATUS: dict[Status, p.Status] = {
    S.REQUEST_RECEIVED: p.Status.REQUEST_RECEIVED,
    S.EXPECT_TO_SUPPLY: p.Status.EXPECT_TO_SUPPLY,
    S.PULLING: p.Status.EXPECT_TO_SUPPLY,
    S.WILL_SUPPLY: p.Status.WILL_SUPPLY,
    S.SHIPPED: p.Status.LOANED,
    S.LOANED: p.Status.LOANED,
    S.OVERDUE: p.Status.OVERDUE,
    S.RECALLED: p.Status.RECALLED,
    S.RETRY_POSSIBLE: p.Status.RETRY_POSSIBLE,
    S.UNFILLED: p.Status.UNFILLED,
    S.COPY_COMPLETED: p.Status.COPY_COMPLETED,
    S.LOAN_COMPLETED: p.Status.LOAN_COMPLETED,
    S.COMPLETED_WITHOUT_RETURN: p.Status.COMPLETED_WITHOUT_RETURN,
    S.CANCELLED: p.Status.CANCELLED,
}

# The lending transitions that tell the borrower (target -> the status it is told). Pulling
# and Shipped -> Loaned (the borrower's own Received) tell it nothing new.
_LENDING_SENDS: dict[Status, p.Status] = {
    S.EXPECT_TO_SUPPLY: p.Status.EXPECT_TO_SUPPLY,
    S.WILL_SUPPLY: p.Status.WILL_SUPPLY,
    S.SHIPPED: p.Status.LOANED,
    S.RETRY_POSSIBLE: p.Status.RETRY_POSSIBLE,
    S.UNFILLED: p.Status.UNFILLED,
    S.COPY_COMPLETED: p.Status.COPY_COMPLETED,
    S.LOAN_COMPLETED: p.Status.LOAN_COMPLETED,
    S.OVERDUE: p.Status.OVERDUE,
    S.RECALLED: p.Status.RECALLED,
    S.COMPLETED_WITHOUT_RETURN: p.Status.COMPLETED_WITHOUT_RETURN,
    S.CANCELLED: p.Status.CANCELLED,
}


def _lending_partner(session: Session, request: Request) -> Partner | None:
    """The borrower of a lending request that came to us over ISO 18626, else None."""
    if request.direction != Direction.LENDING.value or not request.partner_request_id:
        return None
    return _partner_of(session, request)


def _supplying_message(
    request: Request,
    partner: Partner,
    settings: Settings,
    now: datetime,
    *,
    status: p.Status,
    reason: p.ReasonForMessage,
    answer: p.YesNo | None = None,
    note: str | None = None,
    reason_unfilled: str | None = None,
    reason_retry: str | None = None,
    offered_costs: p.Costs | None = None,
    retry_after: datetime | None = None,
    due_date: date | None = None,
    delivered: bool = False,
) -> p.SupplyingAgencyMessage:
    return p.SupplyingAgencyMessage(
        header=lender_header(request, partner, settings, now),
        message_info=p.MessageInfo(
            reason_for_message=reason,
            answer_yes_no=answer,
            note=_clip(note, 2000),
            reason_unfilled=_clip(reason_unfilled, 200),
            reason_retry=_clip(reason_retry, 200),
            offered_costs=offered_costs,
            retry_after=retry_after,
        ),
        status_info=p.StatusInfo(
            status=status,
            last_change=now,
            due_date=_midnight(due_date) if due_date else None,
        ),
        delivery_info=p.DeliveryInfo(date_sent=now) if delivered else None,
    )


def _summary(status: p.Status, *, due: date | None = None, why: str | None = None) -> str:
    text = status.value
    if due is not None:
        text += f", due {due.isoformat()}"
    if why:
        text += f": {why}"
    return text


def _send_lending_status(
    session: Session,
    *,
    codec: MessageCodec,
    settings: Settings,
    request: Request,
    partner: Partner,
    source: Status,
    target: Status,
    reason: str | None,
    details: StatusDetails,
    now: datetime,
) -> None:
    iso = _LENDING_SENDS[target]
    note = details.note or reason
    why: str | None = None
    kwargs: dict[str, object] = {}
    due: date | None = None
    if target is S.SHIPPED:
        due = details.due_date or (now.date() + timedelta(days=partner.loan_period_days))
        request.due_date = due
    elif target is S.UNFILLED:
        why = details.reason_unfilled or reason
        kwargs["reason_unfilled"] = why
    elif target is S.RETRY_POSSIBLE:
        why = details.reason_retry or reason
        kwargs["reason_retry"] = why
        kwargs["offered_costs"] = _costs(details.offered_costs)
        if details.retry_after:
            kwargs["retry_after"] = _midnight(details.retry_after)
        if details.offered_costs is not None:
            request.max_cost = details.offered_costs.amount
            request.max_cost_currency = details.offered_costs.currency
    if target is S.CANCELLED:
        message_reason, answer = p.ReasonForMessage.CANCEL_RESPONSE, p.YesNo.Y
    elif source is S.REQUEST_RECEIVED:
        message_reason, answer = p.ReasonForMessage.REQUEST_RESPONSE, None
    else:
        message_reason, answer = p.ReasonForMessage.STATUS_CHANGE, None
    message = _supplying_message(
        request,
        partner,
        settings,
        now,
        status=iso,
        reason=message_reason,
        answer=answer,
        note=note,
        due_date=due,
        delivered=target in (S.SHIPPED, S.COPY_COMPLETED),
        **kwargs,  # type: ignore[arg-type]
    )
    summary = _summary(iso, due=due, why=why)
    if details.offered_costs is not None and target is S.RETRY_POSSIBLE:
        summary += f", offered {details.offered_costs.amount} {details.offered_costs.currency}"
    _enqueue(
        session,
        codec=codec,
        request=request,
        partner=partner,
        message=message,
        summary=summary,
        now=now,
    )


def answer_renew(
    session: Session,
    *,
    request_id: int,
    actor: str,
    yes: bool,
    due_date: date | None = None,
    note: str | None = None,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Answer a borrower's Renew: Y with the new due date, or N (RenewResponse).

    Raises:
        RequestNotFound, NotAnExchange, WrongStatus: not on loan.
        ValueError: Y without a due date, or one not after the current due date.
    """
    request = requests.get_request(session, request_id)
    partner = _lending_partner(session, request)
    if partner is None:
        raise NotAnExchange(request_id, "answer a renewal to")
    status = Status(request.status)
    if status not in (S.SHIPPED, S.LOANED, S.OVERDUE, S.RECALLED):
        raise WrongStatus(f"Request {request_id} is {request.status}: nothing on loan to renew.")
    now = clock()
    if yes:
        if due_date is None:
            raise ValueError("A renewal needs the new due date.")
        if request.due_date is not None and due_date <= request.due_date:
            raise ValueError(
                f"The new due date {due_date.isoformat()} must be after the current one, "
                f"{request.due_date.isoformat()}."
            )
        request.due_date = due_date
    message = _supplying_message(
        request,
        partner,
        settings,
        now,
        status=LENDING_ISO_STATUS[status],
        reason=p.ReasonForMessage.RENEW_RESPONSE,
        answer=p.YesNo.Y if yes else p.YesNo.N,
        note=note,
        due_date=request.due_date,
    )
    _enqueue(
        session,
        codec=codec,
        request=request,
        partner=partner,
        message=message,
        summary=(
            f"Renewal granted, due {due_date.isoformat()}"
            if yes and due_date
            else "Renewal refused"
        ),
        now=now,
    )
    text = (
        f"Renewal granted until {due_date.isoformat()}" if yes and due_date else "Renewal refused"
    )
    _add_note(session, request, actor, text + (f": {note.strip()}" if note else ""), now)
    session.add(request)
    session.flush()
    return request


def answer_cancel(
    session: Session,
    *,
    request_id: int,
    actor: str,
    yes: bool,
    reason: str | None = None,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> Request:
    """Answer a borrower's Cancel: Y cancels the lending request, N keeps it (CancelResponse).

    Raises:
        RequestNotFound, NotAnExchange, workflow.IllegalTransition: Y after shipping.
    """
    request = requests.get_request(session, request_id)
    partner = _lending_partner(session, request)
    if partner is None:
        raise NotAnExchange(request_id, "answer a cancellation to")
    if yes:
        return change_status(
            session,
            request_id=request_id,
            to_status=S.CANCELLED,
            actor=actor,
            reason=reason or "Cancelled at the borrower's request",
            codec=codec,
            settings=settings,
            clock=clock,
        )
    now = clock()
    message = _supplying_message(
        request,
        partner,
        settings,
        now,
        status=LENDING_ISO_STATUS[Status(request.status)],
        reason=p.ReasonForMessage.CANCEL_RESPONSE,
        answer=p.YesNo.N,
        note=reason,
        due_date=request.due_date,
    )
    _enqueue(
        session,
        codec=codec,
        request=request,
        partner=partner,
        message=message,
        summary="Cancellation refused" + (f": {reason.strip()}" if reason else ""),
        now=now,
    )
    _add_note(
        session,
        request,
        actor,
        "Cancellation refused" + (f": {reason.strip()}" if reason else ""),
        now,
    )
    session.flush()
    return request


# ---------------------------------------------------------------------------- change_status


def change_status(
    session: Session,
    *,
    request_id: int,
    to_status: Status | str,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
    details: StatusDetails | None = None,
    codec: MessageCodec | None = None,
    settings: Settings | None = None,
    clock: Clock = utcnow,
) -> Request:
    """Apply a workflow transition and, when the protocol carries it, queue its message.

    Requests outside an ISO 18626 exchange change as ``requests.change_status`` does. For a
    request in an exchange:

    * borrowing Sourcing -> RequestReceived sends the request to the next lender in the rota
      (``services.sourcing.send_request``);
    * borrowing Loaned -> Received sends action Received; any move to Returned sends
      ShippedReturn;
    * borrowing -> Cancelled while the lender has it (RequestReceived, ExpectToSupply,
      WillSupply) asks the lender to cancel (``request_cancel``): the status stays until the
      lender answers;
    * lending ExpectToSupply, WillSupply, Shipped (Loaned with the due date), Unfilled
      (reasonUnfilled), RetryPossible (reasonRetry, offeredCosts), CopyCompleted,
      LoanCompleted, Overdue, Recalled, CompletedWithoutReturn and Cancelled (CancelResponse
      Y) send a supplying agency message.

    The message goes to the outbox in the caller's transaction, with the status change.

    Raises:
        RequestNotFound, StaleRequest, workflow.IllegalTransition, workflow.ReasonRequired,
        CodecMissing: the change must send a message and no codec/settings were given.
        MessageNotBuilt: the message would not be valid ISO 18626 (nothing is changed).
    """
    request = requests.get_request(session, request_id)
    source, target = Status(request.status), Status(to_status)
    details = details or StatusDetails()
    borrowing = request.direction == Direction.BORROWING.value
    in_exchange = bool(request.exchange_id and request.partner_id) if borrowing else False
    lending_partner = None if borrowing else _lending_partner(session, request)
    needs_message = (
        (
            in_exchange
            and (
                _borrowing_action(source, target) is not None
                or (target is S.CANCELLED and source in _AT_LENDER)
            )
        )
        or (borrowing and source is S.SOURCING and target is S.REQUEST_RECEIVED)
        or (lending_partner is not None and target in _LENDING_SENDS)
    )
    if not needs_message:
        return requests.change_status(
            session,
            request_id=request_id,
            to_status=target,
            actor=actor,
            reason=reason,
            expected_version=expected_version,
            clock=clock,
        )
    if codec is None or settings is None:
        raise CodecMissing(request_id)
    if expected_version is not None and request.version != expected_version:
        raise requests.StaleRequest(request_id)
    workflow.check_transition(request.direction, source, target, reason)
    if borrowing and source is S.SOURCING and target is S.REQUEST_RECEIVED:
        from ill_tui.services import sourcing  # sourcing builds on this module

        return sourcing.send_request(
            session,
            request_id=request_id,
            actor=actor,
            codec=codec,
            settings=settings,
            clock=clock,
            note=details.note,
        )
    if borrowing and target is S.CANCELLED:
        return request_cancel(
            session,
            request_id=request_id,
            actor=actor,
            reason=reason or "",
            codec=codec,
            settings=settings,
            clock=clock,
        )
    now = clock()
    request = requests.change_status(
        session,
        request_id=request_id,
        to_status=target,
        actor=actor,
        reason=reason,
        expected_version=expected_version,
        clock=clock,
    )
    if borrowing:
        action = _borrowing_action(source, target)
        assert action is not None
        _send_action(
            session,
            codec=codec,
            settings=settings,
            request=request,
            action=action,
            note=details.note or reason,
            now=now,
        )
    else:
        assert lending_partner is not None
        _send_lending_status(
            session,
            codec=codec,
            settings=settings,
            request=request,
            partner=lending_partner,
            source=source,
            target=target,
            reason=reason,
            details=details,
            now=now,
        )
        session.add(request)
    session.flush()
    return request


# ---------------------------------------------------------------------------- inbound


class Refusal(Exception):
    """An inbound message that cannot be applied; it is answered with an ERROR confirmation.

    Attributes:
        error_type: the ISO ``ErrorType``.
        error_value: words for ``errorValue``.
        request_id: the request it was about, when that is known.
    """

    def __init__(
        self, error_type: p.ErrorType, error_value: str, *, request_id: int | None = None
    ) -> None:
        super().__init__(error_value)
        self.error_type = error_type
        self.error_value = error_value
        self.request_id = request_id


def _unknown_value(text: str, request_id: int | None = None) -> Refusal:
    return Refusal(p.ErrorType.UNRECOGNISED_DATA_VALUE, text, request_id=request_id)


def _sender_and_addressee(message: p.AgencyMessage) -> tuple[p.AgencyId, p.AgencyId]:
    header = message.header
    if isinstance(message, p.SupplyingAgencyMessage):
        return header.supplying_agency_id, header.requesting_agency_id
    return header.requesting_agency_id, header.supplying_agency_id


def find_partner_by_agency(session: Session, agency: p.AgencyId) -> Partner | None:
    """The partner with this agency id (type compared without regard to case)."""
    return session.exec(
        select(Partner).where(
            sa.func.upper(Partner.agency_id_type) == agency.type.strip().upper(),
            Partner.agency_id_value == agency.value.strip(),
        )
    ).first()


def summarise(message: p.AgencyMessage) -> str:
    """A one-line summary of an agency message for the message log."""
    if isinstance(message, p.IllRequest):
        service = message.service_info
        kind = service.request_type.value if service and service.request_type else "New"
        title = message.bibliographic_info.title or message.bibliographic_info.title_of_component
        return f"Request ({kind}): {title or '(no title)'}"[:300]
    if isinstance(message, p.SupplyingAgencyMessage):
        info, status = message.message_info, message.status_info
        text = status.status.value
        if info.reason_for_message not in (
            p.ReasonForMessage.REQUEST_RESPONSE,
            p.ReasonForMessage.STATUS_CHANGE,
        ):
            text = f"{info.reason_for_message.value}"
            if info.answer_yes_no:
                text += f" {info.answer_yes_no.value}"
            text += f" ({status.status.value})"
        if status.due_date:
            text += f", due {status.due_date.date().isoformat()}"
        reason = info.reason_unfilled or info.reason_retry
        if reason:
            text += f": {reason}"
        if info.offered_costs:
            text += f", offered {_format_costs(info.offered_costs)}"
        return text[:300]
    return (message.action.value + (f": {message.note}" if message.note else ""))[:300]


def receive(
    engine: Engine,
    message: p.AgencyMessage,
    raw: bytes,
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
    received: datetime | None = None,
) -> p.Confirmation:
    """Authenticate, store and apply one inbound message; return its confirmation.

    See the module docstring for what each message does. The message and its effects are
    committed before this returns, so an OK confirmation is never sent for something that was
    not stored.

    Args:
        engine: our database.
        message: the parsed request or agency message.
        raw: the bytes exactly as received (stored, and hashed to recognise a repeat).
        codec: builds the stored confirmation and any message queued in answer.
        settings: our agency id (the addressee check) and the rota timeout.
        clock: "now".
        received: when the message arrived (``timestampReceived``; default: now).

    Returns:
        The confirmation to send back: OK, or ERROR with ``errorData`` saying why.
    """
    received = received or clock()
    digest = hashlib.sha256(raw).hexdigest()
    for _attempt in range(5):
        try:
            return _receive_once(
                engine,
                message,
                raw,
                digest,
                codec=codec,
                settings=settings,
                clock=clock,
                received=received,
            )
        except requests.StaleRequest:
            # A staff action or another message changed the request meanwhile: read it again.
            continue
        except sa.exc.IntegrityError:
            # The same message arrived twice at once and its twin was stored first.
            with session_scope(engine) as session:
                twin = _stored(session, digest)
                if twin is not None:
                    return _confirmation_from(twin, message, clock())
            raise
    raise requests.StaleRequest(-1)


Inbound = tuple[p.AgencyMessage, bytes, datetime]
"""One inbound message for ``receive_many``: (parsed message, raw bytes, received at)."""


def receive_many(
    engine: Engine,
    inbound: Sequence[Inbound],
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock = utcnow,
) -> list[p.Confirmation | Exception]:
    """``receive`` for several messages at once, with one commit for the plain new requests.

    Group commit for the endpoint: the plain new requests among ``inbound`` (nearly all the
    traffic) are stored and applied in ONE transaction, committed before this returns, so
    the commit and the connection are paid once per batch instead of once per message. Every
    message gets exactly the confirmation ``receive`` would give it:

    * a message ``receive`` would refuse (a request id in use) is refused before anything of
      it is written, so it takes nothing else down; it then goes through ``receive`` on its
      own after the batch, which stores it as refused and answers ERROR, as ever;
    * other kinds of message (agency messages, retries) go through ``receive`` one by one
      after the batch, in the order given;
    * if the batch transaction fails (a database error), nothing of it is kept and every
      message is received again one by one. Nobody is confirmed before its message is
      committed, since nothing is returned before then;
    * a message that fails on its own too (the database is down) gets its exception in
      its place in the answer, and takes no other message with it.

    Args:
        engine: our database.
        inbound: the messages, each with its exact bytes and when it arrived.
        codec: builds the stored confirmations and any message queued in answer.
        settings: our agency id and the rota timeout.
        clock: "now".

    Returns:
        The confirmations, or the exception a message failed with, in the order of
        ``inbound``.
    """
    answers: list[p.Confirmation | Exception | None] = [None] * len(inbound)
    one_by_one: list[int] = []
    plain: list[int] = []
    for i, (message, _, _) in enumerate(inbound):
        (plain if _plain_request(message) else one_by_one).append(i)
    try:
        with engine.begin() as conn:
            batch = []
            for i in plain:
                message, raw, received = inbound[i]
                assert isinstance(message, p.IllRequest)
                digest = hashlib.sha256(raw).hexdigest()
                batch.append(
                    _PlainInbound(message, _row_values(message, raw, digest, received), received)
                )
            outcomes = (
                _plain_requests_on(conn, batch, codec=codec, settings=settings, clock=clock)
                if batch
                else []
            )
            for i, outcome in zip(plain, outcomes, strict=True):
                if isinstance(outcome, Refusal):
                    one_by_one.append(i)
                else:
                    answers[i] = outcome
    except Exception:
        log.warning(
            "ISO 18626: a batch of %d messages failed and was rolled back; receiving each "
            "on its own",
            len(inbound),
            exc_info=True,
        )
        answers = [None] * len(inbound)
        one_by_one = list(range(len(inbound)))
    for i in sorted(one_by_one):
        message, raw, received = inbound[i]
        try:
            answers[i] = receive(
                engine,
                message,
                raw,
                codec=codec,
                settings=settings,
                clock=clock,
                received=received,
            )
        except Exception as exc:
            log.exception("ISO 18626: %s could not be stored", summarise(message))
            answers[i] = exc
    return [answer for answer in answers if answer is not None]


def _stored(session: Session, digest: str) -> IsoMessage | None:
    return session.exec(select(IsoMessage).where(IsoMessage.digest == digest)).first()


class _StoredOutcome(NamedTuple):
    """How a stored message was answered (what a repeat of it is answered again)."""

    confirmation_status: str | None
    error_type: str | None
    error_value: str | None


def _confirmation_from(
    row: IsoMessage | _StoredOutcome, message: p.AgencyMessage, now: datetime
) -> p.Confirmation:
    error = None
    if row.confirmation_status == p.MessageStatus.ERROR.value and row.error_type:
        error = p.ErrorData(error_type=p.ErrorType(row.error_type), error_value=row.error_value)
    return p.confirm(message, now=now, error=error, received=now)


def _refuse_unstored(
    message: p.AgencyMessage, why: str, received: datetime, now: datetime
) -> p.Confirmation:
    sender, _ = _sender_and_addressee(message)
    log.warning(
        "ISO 18626 %s from %s (request id %r) refused, not stored: %s",
        message.kind.value,
        sender,
        message.header.requesting_agency_request_id,
        why,
    )
    return p.confirm(
        message,
        now=now,
        received=received,
        error=p.ErrorData(error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE, error_value=why),
    )


def _body_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


# ---- the plain new request, in SQL Core
#
# A new request from a partner is nearly all the inbound traffic (a borrower's rota sends one
# to each lender), so it is written with a handful of prepared Core statements instead of the
# ORM's unit of work, which cost ten times the SQL itself (profiled: about 8 ms of Python per
# message against 1 ms in SQLite). Same rows, same values, same transaction, same refusals
# as ``_apply_request``; retries (which move an existing request) take the ORM path.

_PARTNER = Partner.__table__  # type: ignore[attr-defined]
_REQUEST = Request.__table__  # type: ignore[attr-defined]
_EVENT = Event.__table__  # type: ignore[attr-defined]
_NOTE = Note.__table__  # type: ignore[attr-defined]
_MESSAGE = IsoMessage.__table__  # type: ignore[attr-defined]

_PARTNER_BY_AGENCY = ListStatement(  # no list: the agency's type and value only
    lambda _n: sa.select(
        _PARTNER.c.id,
        _PARTNER.c.name,
        _PARTNER.c.active,
        _PARTNER.c.account_id,
        _PARTNER.c.security_code,
    ).where(
        sa.func.upper(_PARTNER.c.agency_id_type) == sa.bindparam("agency_type"),
        _PARTNER.c.agency_id_value == sa.bindparam("agency_value"),
    )
)


def _values(n: int) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(f"v{i}") for i in range(n)]


_MESSAGES_BY_DIGESTS = ListStatement(
    lambda n: sa.select(
        _MESSAGE.c.digest,
        _MESSAGE.c.confirmation_status,
        _MESSAGE.c.error_type,
        _MESSAGE.c.error_value,
    ).where(_MESSAGE.c.digest.in_(_values(n)))
)
_LENDING_BY_PARTNER_IDS = ListStatement(
    lambda n: sa.select(_REQUEST.c.partner_request_id).where(
        _REQUEST.c.direction == Direction.LENDING.value,
        _REQUEST.c.partner_id == sa.bindparam("partner_id"),  # ix_request_partner_request
        _REQUEST.c.partner_request_id.in_(_values(n)),
    )
)
_SET_EXCHANGE_IDS = ListStatement(
    lambda n: (
        _REQUEST.update()
        .where(_REQUEST.c.id.in_(_values(n)))
        .values(exchange_id=sa.cast(_REQUEST.c.id, sa.String))
    )
)


def _static_defaults(model: type[Any]) -> dict[str, Any]:
    """The model's constant field defaults, which the ORM would fill in and Core does not."""
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if not field.is_required() and field.default_factory is None and name != "id"
    }


_REQUEST_DEFAULTS = _static_defaults(Request)
_MESSAGE_DEFAULTS = _static_defaults(IsoMessage)
# The batch's multi-row INSERTs: every row of one gives the same columns. A new request
# gives every column with a constant default, and the ones the message always sets.
_INSERT_REQUESTS = BulkInsert(
    _REQUEST,
    [
        *_REQUEST_DEFAULTS,
        *(
            name
            for name in (
                "direction", "status", "partner_id", "partner_request_id", "needed_by",
                "max_cost", "max_cost_currency", "created_at", "updated_at", "title",
            )
            if name not in _REQUEST_DEFAULTS
        ),
    ],
    returning=("id", "partner_id", "partner_request_id"),
)  # fmt: skip
_INSERT_EVENT = BulkInsert(
    _EVENT, ["request_id", "actor", "at", "from_status", "to_status", "reason"]
)
_INSERT_NOTE = BulkInsert(_NOTE, ["request_id", "author", "at", "text"])
_INSERT_MESSAGE = BulkInsert(
    _MESSAGE,
    [
        *_MESSAGE_DEFAULTS,
        *(
            name
            for name in (
                "direction", "kind", "peer", "agency_request_id", "summary", "body", "digest",
                "created_at", "partner_id", "request_id", "state", "confirmation",
                "confirmation_status",
            )
            if name not in _MESSAGE_DEFAULTS
        ),
    ],
)  # fmt: skip


@dataclass(frozen=True)
class _Sender:
    """The columns of the sending partner that receiving a message reads."""

    id: int
    name: str
    active: bool
    account_id: str | None
    security_code: str | None


def _sender_row(conn: sa.Connection, agency: p.AgencyId) -> _Sender | None:
    rows = _PARTNER_BY_AGENCY.execute(
        conn, (), agency_type=agency.type.strip().upper(), agency_value=agency.value.strip()
    )
    if not rows:
        return None
    partner_id, name, active, account_id, security_code = rows[0]
    return _Sender(partner_id, name, bool(active), account_id, security_code)


def _plain_request(message: p.AgencyMessage) -> bool:
    """A new request, not a retry of an earlier one: the Core path handles it."""
    if not isinstance(message, p.IllRequest):
        return False
    service = message.service_info
    return service is None or service.request_type is not p.RequestType.RETRY


@dataclass
class _PlainInbound:
    """One plain new request of a batch, with the message log's columns for it."""

    message: p.IllRequest
    row_values: Mapping[str, object]
    received: datetime


def _receive_plain_request(
    engine: Engine,
    message: p.IllRequest,
    row_values: Mapping[str, object],
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock,
    received: datetime,
) -> p.Confirmation:
    """``_receive_once`` for a plain new request: a batch of one, in its own transaction.

    Raises:
        Refusal: the request id is in use (as ``_apply_request`` raises it); nothing of
            this message was written.
    """
    with engine.begin() as conn:
        (answer,) = _plain_requests_on(
            conn,
            [_PlainInbound(message, row_values, received)],
            codec=codec,
            settings=settings,
            clock=clock,
        )
    if isinstance(answer, Refusal):
        raise answer
    return answer


def _plain_requests_on(
    conn: sa.Connection,
    batch: Sequence[_PlainInbound],
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock,
) -> list[p.Confirmation | Refusal]:
    """Receive plain new requests in the caller's transaction on ``conn``, set by set.

    The same checks, rows and answers as receiving each on its own in ``batch`` order, with
    a few statements for the whole batch instead of seven per message: the repeats are read
    with one query, each sending partner and the request ids it has in use with one query
    per partner, and the requests, their Events, notes and message-log rows are written
    with one multi-row INSERT each.
    Every check that can refuse a message comes before the first write, and a message
    answered with a ``Refusal`` leaves nothing in the transaction (the caller receives it
    again on its own, which stores it as refused).

    Returns:
        For each message of ``batch``, in order: its confirmation, or the ``Refusal``.
    """
    answers: list[p.Confirmation | Refusal | None] = [None] * len(batch)
    ours = our_agency(settings)
    senders: dict[tuple[str, str], _Sender | None] = {}
    candidates: list[tuple[int, _Sender]] = []
    for i, item in enumerate(batch):
        message = item.message
        sender, addressee = _sender_and_addressee(message)
        key = (sender.type.strip().upper(), sender.value.strip())
        if key not in senders:
            senders[key] = _sender_row(conn, sender)
        partner = senders[key]
        if partner is None or not partner.active:
            why = f"Unknown or inactive agency {sender}"
        elif not _credentials_match(partner, message.header.requesting_agency_authentication):
            why = f"Authentication failed for agency {sender}"
        elif not _same_agency(addressee, ours):
            why = f"This message is addressed to agency {addressee}, which is not us"
        else:
            candidates.append((i, partner))
            continue
        answers[i] = _refuse_unstored(message, why, item.received, clock())
    if not candidates:
        return [answer for answer in answers if answer is not None]

    digests = {str(batch[i].row_values["digest"]) for i, _ in candidates}
    stored = {
        row[0]: _StoredOutcome(*row[1:])
        for row in _MESSAGES_BY_DIGESTS.execute(conn, sorted(digests))
    }
    asked: dict[int, set[str]] = {}  # partner id -> the request ids its messages carry
    for i, partner in candidates:
        rid = batch[i].message.header.requesting_agency_request_id[:100]
        asked.setdefault(partner.id, set()).add(rid)
    taken = {
        (partner_id, rid)
        for partner_id, rids in asked.items()
        for (rid,) in _LENDING_BY_PARTNER_IDS.execute(conn, sorted(rids), partner_id=partner_id)
    }
    new: list[tuple[int, _Sender]] = []
    first_of: dict[str, int] = {}  # digest -> the message of this batch that carries it
    for i, partner in candidates:
        item = batch[i]
        digest = str(item.row_values["digest"])
        twin = stored.get(digest)
        if twin is not None:
            answers[i] = _confirmation_from(twin, item.message, clock())
            continue
        if digest in first_of:  # the same bytes twice in one batch: a repeat of the first
            answers[i] = p.confirm(item.message, now=(now := clock()), received=now)
            continue
        rid = item.message.header.requesting_agency_request_id
        if (partner.id, rid[:100]) in taken:
            answers[i] = _unknown_value(f"requestingAgencyRequestId {rid} is already in use")
            continue
        taken.add((partner.id, rid[:100]))
        first_of[digest] = i
        new.append((i, partner))
    if new:
        _insert_requests(conn, batch, new, answers, codec=codec, clock=clock)
    return [answer for answer in answers if answer is not None]


def _insert_requests(
    conn: sa.Connection,
    batch: Sequence[_PlainInbound],
    new: Sequence[tuple[int, _Sender]],
    answers: list[p.Confirmation | Refusal | None],
    *,
    codec: MessageCodec,
    clock: Clock,
) -> None:
    """Write the new lending requests of ``new``, their Events, notes and log rows.

    Fills in each one's OK confirmation in ``answers``. The caller has checked that no
    request id is in use and that no message is a repeat.
    """
    status = workflow.INITIAL[Direction.LENDING]
    rows: list[dict[str, object]] = []
    notes_of: list[list[str]] = []
    for i, partner in new:
        message = batch[i].message
        header, service = message.header, message.service_info
        now = clock()
        maximum = _money(message.billing_info.maximum_costs) if message.billing_info else None
        values, problems = _citation(message)
        # a column the INSERT does not name would be dropped without a word
        assert values.keys() <= set(_INSERT_REQUESTS.columns), "a citation column not inserted"
        service_type = ServiceType.LOAN
        if service is not None and (
            service.service_type is p.ServiceType.COPY
            or (service.service_type is p.ServiceType.COPY_OR_LOAN and values.get("article_title"))
        ):
            service_type = ServiceType.COPY
        rows.append(
            {
                **_REQUEST_DEFAULTS,
                "direction": Direction.LENDING.value,
                "service_type": service_type.value,
                "status": status.value,
                "is_open": True,
                "partner_id": partner.id,
                "party_name": partner.name[:200],
                "partner_request_id": header.requesting_agency_request_id[:100],
                "needed_by": (
                    service.need_before_date.date()
                    if service and service.need_before_date
                    else None
                ),
                "max_cost": maximum.amount if maximum else None,
                "max_cost_currency": maximum.currency if maximum else None,
                "created_at": now,
                "updated_at": now,
                **values,
            }
        )
        notes = []
        if service is not None and service.note:
            notes.append(f"Note from {partner.name}: {service.note}")
        if problems:
            notes.append("Citation as sent: " + "; ".join(problems))
        notes_of.append(notes)
    # One multi-row INSERT. Its RETURNING rows come in no promised order, so each id is
    # matched to its row by (partner, partner's request id), unique within the batch.
    made = {
        (partner_id, rid): int(request_id)
        for request_id, partner_id, rid in _INSERT_REQUESTS.execute(conn, rows)
    }
    request_ids = [made[(row["partner_id"], row["partner_request_id"])] for row in rows]
    # Our supplyingAgencyRequestId: the request's own number, unique among ours.
    _SET_EXCHANGE_IDS.execute(conn, request_ids)
    events, note_rows, log_rows = [], [], []
    for (i, partner), request_id, row, notes in zip(new, request_ids, rows, notes_of, strict=True):
        item = batch[i]
        actor = partner.name[:100]
        rid = item.message.header.requesting_agency_request_id
        events.append(
            {
                "request_id": request_id,
                "actor": actor,
                "at": row["created_at"],
                "from_status": None,
                "to_status": status.value,
                "reason": f"Request {rid} from {partner.name} over ISO 18626",
            }
        )
        note_rows += [
            {"request_id": request_id, "author": actor, "at": clock(), "text": text.strip()[:10000]}
            for text in notes
        ]
        confirmation = p.confirm(item.message, now=clock(), received=item.received)
        answers[i] = confirmation
        log_rows.append(
            {
                **_MESSAGE_DEFAULTS,
                **item.row_values,
                "partner_id": partner.id,
                "request_id": request_id,
                "state": MessageState.APPLIED.value,
                "confirmation": codec.build(confirmation).decode("utf-8"),
                "confirmation_status": p.MessageStatus.OK.value,
            }
        )
    _INSERT_EVENT.execute_many(conn, events)
    if note_rows:
        _INSERT_NOTE.execute_many(conn, note_rows)
    _INSERT_MESSAGE.execute_many(conn, log_rows)


def _row_values(
    message: p.AgencyMessage, raw: bytes, digest: str, received: datetime
) -> dict[str, object]:
    """The message log's columns for an inbound message, whatever becomes of it."""
    sender, _ = _sender_and_addressee(message)
    return {
        "direction": MessageDirection.INBOUND.value,
        "kind": message.kind.value,
        "peer": str(sender)[:100],
        "agency_request_id": message.header.requesting_agency_request_id[:100] or None,
        "summary": summarise(message),
        "body": _body_text(raw),
        "digest": digest,
        "created_at": received,
    }


def _receive_once(
    engine: Engine,
    message: p.AgencyMessage,
    raw: bytes,
    digest: str,
    *,
    codec: MessageCodec,
    settings: Settings,
    clock: Clock,
    received: datetime,
) -> p.Confirmation:
    sender, addressee = _sender_and_addressee(message)
    row_values = _row_values(message, raw, digest, received)
    try:
        if isinstance(message, p.IllRequest) and _plain_request(message):
            return _receive_plain_request(
                engine,
                message,
                row_values,
                codec=codec,
                settings=settings,
                clock=clock,
                received=received,
            )
        with session_scope(engine) as session:
            partner = find_partner_by_agency(session, sender)
            if partner is None or not partner.active:
                return _refuse_unstored(
                    message, f"Unknown or inactive agency {sender}", received, clock()
                )
            if not _credentials_match(partner, message.header.requesting_agency_authentication):
                return _refuse_unstored(
                    message, f"Authentication failed for agency {sender}", received, clock()
                )
            if not _same_agency(addressee, our_agency(settings)):
                return _refuse_unstored(
                    message,
                    f"This message is addressed to agency {addressee}, which is not us",
                    received,
                    clock(),
                )
            twin = _stored(session, digest)
            if twin is not None:
                return _confirmation_from(twin, message, clock())
            row = IsoMessage(
                **row_values,  # type: ignore[arg-type]
                partner_id=partner.id,
                state=MessageState.APPLIED.value,
            )
            session.add(row)
            # Claim the digest first: a concurrent twin now waits for us, then fails.
            session.flush()
            ctx = _Inbound(session, partner, codec, settings, clock)
            request_id = _APPLY[message.kind](ctx, message)
            confirmation = p.confirm(message, now=clock(), received=received)
            row.request_id = request_id
            row.confirmation = codec.build(confirmation).decode("utf-8")
            row.confirmation_status = p.MessageStatus.OK.value
            session.add(row)
            return confirmation
    except Refusal as refusal:
        error = p.ErrorData(error_type=refusal.error_type, error_value=refusal.error_value[:500])
        confirmation = p.confirm(message, now=clock(), received=received, error=error)
        log.info(
            "ISO 18626 %s from %s refused: %s", message.kind.value, sender, refusal.error_value
        )
        with session_scope(engine) as session:
            partner = find_partner_by_agency(session, sender)
            session.add(
                IsoMessage(
                    **row_values,  # type: ignore[arg-type]
                    partner_id=partner.id if partner else None,
                    request_id=refusal.request_id,
                    state=MessageState.REFUSED.value,
                    confirmation=codec.build(confirmation).decode("utf-8"),
                    confirmation_status=p.MessageStatus.ERROR.value,
                    error_type=refusal.error_type.value,
                    error_value=refusal.error_value[:500],
                )
            )
        return confirmation


@dataclass
class _Inbound:
    """What applying one inbound message needs."""

    session: Session
    partner: Partner
    codec: MessageCodec
    settings: Settings
    clock: Clock

    @property
    def actor(self) -> str:
        return self.partner.name[:100]

    def move(self, request: Request, target: Status, reason: str | None) -> Request:
        """Change the status as the partner, or refuse the message if the workflow says no."""
        assert request.id is not None
        try:
            return requests.change_status(
                self.session,
                request_id=request.id,
                to_status=target,
                actor=self.actor,
                reason=reason,
                clock=self.clock,
            )
        except (workflow.IllegalTransition, workflow.ReasonRequired) as error:
            raise _unknown_value(str(error), request.id) from error

    def note(self, request: Request, text: str) -> None:
        _add_note(self.session, request, self.actor, text, self.clock())


# ---- inbound request (we are the supplier)

_NORMALISE: dict[str, tuple[str, Callable[[str], str]]] = {
    "ISBN": ("isbn", identifiers.normalise_isbn),
    "ISSN": ("issn", identifiers.normalise_issn),
    "OCLC": ("oclc_number", identifiers.normalise_oclc),
    "LCCN": ("lccn", identifiers.normalise_lccn),
    "DOI": ("doi", identifiers.normalise_doi),
    "PMID": ("pmid", identifiers.normalise_pmid),
}


def _citation(message: p.IllRequest) -> tuple[dict[str, object], list[str]]:
    """Request columns from the message's bibliographic and publication info, and problems."""
    bib, pub = message.bibliographic_info, message.publication_info
    problems: list[str] = []
    title = bib.title or bib.title_of_component or bib.series_title
    if not title:
        ids = ", ".join(f"{i.code} {i.value}" for i in bib.bibliographic_item_ids)
        title = f"[no title given{': ' + ids if ids else ''}]"
    values: dict[str, object] = {
        "title": _clip(title, 500),
        "author": _clip(bib.author, 300),
        "edition": _clip(bib.edition, 100),
        "article_title": _clip(bib.title_of_component, 500) if bib.title else None,
        "article_author": _clip(bib.author_of_component, 300),
        "volume": _clip(bib.volume, 32),
        "issue": _clip(bib.issue, 32),
        "pages": _clip(bib.pages_requested, 32),
    }
    for item in bib.bibliographic_item_ids:
        known = _NORMALISE.get(item.code.strip().upper())
        if known is None:
            problems.append(f"Identifier {item.code} {item.value} kept only here")
            continue
        column, normalise = known
        if values.get(column):
            continue
        try:
            values[column] = normalise(item.value)
        except identifiers.InvalidIdentifier as error:
            problems.append(f"{item.code} {item.value!r} as sent: {error}")
    if pub is not None:
        values["publisher"] = _clip(pub.publisher, 200)
        values["place_of_publication"] = _clip(pub.place_of_publication, 200)
        if pub.publication_date:
            year = re.search(r"\d{4}", pub.publication_date)
            values["year"] = year.group(0) if year else _clip(pub.publication_date, 16)
    return values, problems


def _apply_request(ctx: _Inbound, message: p.Message) -> int:
    assert isinstance(message, p.IllRequest)
    session, partner = ctx.session, ctx.partner
    header, service = message.header, message.service_info
    rid = header.requesting_agency_request_id
    now = ctx.clock()

    def lending_by_id(request_id: str) -> Request | None:
        return session.exec(
            select(Request).where(
                Request.direction == Direction.LENDING.value,
                Request.partner_id == partner.id,
                Request.partner_request_id == request_id,
            )
        ).first()

    maximum = _money(message.billing_info.maximum_costs) if message.billing_info else None
    retry = service is not None and service.request_type is p.RequestType.RETRY
    previous_id = service.requesting_agency_previous_request_id if service else None
    if retry and previous_id:
        previous = lending_by_id(previous_id)
        if previous is not None and previous.status == S.RETRY_POSSIBLE.value:
            if rid != previous_id and lending_by_id(rid) is not None:
                raise _unknown_value(f"requestingAgencyRequestId {rid} is already in use")
            assert previous.id is not None
            reason = f"{partner.name} retries (request id {rid})"
            if maximum is not None:
                reason += f", paying up to {maximum.amount} {maximum.currency}"
            request = ctx.move(previous, S.REQUEST_RECEIVED, reason)
            request.partner_request_id = rid[:100]
            if maximum is not None:
                request.max_cost, request.max_cost_currency = maximum.amount, maximum.currency
            if service is not None and service.note:
                ctx.note(request, f"Note from {partner.name}: {service.note}")
            session.add(request)
            session.flush()
            return previous.id
        if previous is not None:
            raise _unknown_value(
                f"Retry of request {previous_id}, which is {previous.status} here, "
                "not RetryPossible",
                previous.id,
            )
    if lending_by_id(rid) is not None:
        raise _unknown_value(f"requestingAgencyRequestId {rid} is already in use")

    values, problems = _citation(message)
    service_type = ServiceType.LOAN
    if service is not None and (
        service.service_type is p.ServiceType.COPY
        or (service.service_type is p.ServiceType.COPY_OR_LOAN and values.get("article_title"))
    ):
        service_type = ServiceType.COPY
    status = workflow.INITIAL[Direction.LENDING]
    request = Request(
        direction=Direction.LENDING.value,
        service_type=service_type.value,
        status=status.value,
        is_open=True,
        partner_id=partner.id,
        party_name=partner.name[:200],
        partner_request_id=rid[:100],
        needed_by=(
            service.need_before_date.date() if service and service.need_before_date else None
        ),
        max_cost=maximum.amount if maximum else None,
        max_cost_currency=maximum.currency if maximum else None,
        created_at=now,
        updated_at=now,
        **values,  # type: ignore[arg-type]
    )
    session.add(request)
    session.flush()
    assert request.id is not None
    # Our supplyingAgencyRequestId: the request's own number, unique among ours.
    request.exchange_id = str(request.id)
    why = f"Request {rid} from {partner.name} over ISO 18626"
    if retry:
        why += f" (a retry of {previous_id}, unknown here)" if previous_id else " (a retry)"
    session.add(
        Event(
            request_id=request.id,
            actor=ctx.actor,
            at=now,
            from_status=None,
            to_status=status.value,
            reason=why,
        )
    )
    if service is not None and service.note:
        ctx.note(request, f"Note from {partner.name}: {service.note}")
    if problems:
        ctx.note(request, "Citation as sent: " + "; ".join(problems))
    session.add(request)
    session.flush()
    return request.id


# ---- inbound supplying agency message (we are the requester)

# The borrowing statuses that an ISO status already describes: Loaned at the lender covers
# our own stages after it arrived here.
_SAME_AS: dict[p.Status, frozenset[Status]] = {
    p.Status.LOANED: frozenset({S.LOANED, S.RECEIVED, S.CHECKED_OUT, S.RETURNED}),
    p.Status.REQUEST_RECEIVED: frozenset({S.REQUEST_RECEIVED}),
}


def _describes(iso: p.Status, status: Status) -> bool:
    return status in _SAME_AS.get(iso, frozenset({Status(iso.value)}))


def _apply_supplying(ctx: _Inbound, message: p.Message) -> int:
    assert isinstance(message, p.SupplyingAgencyMessage)
    session, partner = ctx.session, ctx.partner
    header, info, status_info = message.header, message.message_info, message.status_info
    rid = header.requesting_agency_request_id
    iso, why = status_info.status, info.reason_for_message
    request = session.exec(
        select(Request).where(
            Request.direction == Direction.BORROWING.value,
            Request.exchange_id == rid,
            Request.partner_id == partner.id,
        )
    ).first()
    if request is None:
        earlier = session.exec(
            select(IsoMessage.request_id).where(
                IsoMessage.direction == MessageDirection.OUTBOUND.value,
                IsoMessage.partner_id == partner.id,
                IsoMessage.agency_request_id == rid,
                IsoMessage.kind == p.MessageKind.REQUEST.value,
                col(IsoMessage.request_id).is_not(None),
            )
        ).first()
        if earlier is None:
            raise _unknown_value(f"non-existing RequestingAgencyRequestId {rid}")
        # A lender we moved on from (Unfilled, no answer in time) writes late: staff decide.
        late = requests.get_request(session, earlier)
        ctx.note(
            late,
            f"Late message from {partner.name} about an earlier request ({rid}): "
            f"{summarise(message)}. Not applied: the request has moved on.",
        )
        return earlier
    assert request.id is not None
    request_id = request.id
    if header.supplying_agency_request_id:
        request.partner_request_id = header.supplying_agency_request_id[:100]
    _record_outcome(session, request, iso)
    current = Status(request.status)
    note = info.note.strip() if info.note else ""
    if why is p.ReasonForMessage.NOTIFICATION:
        ctx.note(request, f"Notification from {partner.name}: {note or '(no text)'}")
        session.add(request)
        return request_id

    strict = why in (p.ReasonForMessage.REQUEST_RESPONSE, p.ReasonForMessage.STATUS_CHANGE)
    if why is p.ReasonForMessage.RENEW_RESPONSE:
        if info.answer_yes_no is p.YesNo.Y and status_info.due_date:
            request.due_date = status_info.due_date.date()
            ctx.note(
                request,
                f"Renewal granted by {partner.name}, due {request.due_date.isoformat()}"
                + (f": {note}" if note else ""),
            )
        else:
            ctx.note(request, f"Renewal refused by {partner.name}" + (f": {note}" if note else ""))
    elif why is p.ReasonForMessage.CANCEL_RESPONSE:
        if info.answer_yes_no is p.YesNo.Y or iso is p.Status.CANCELLED:
            reason = f"Cancelled by {partner.name} at our request" + (f": {note}" if note else "")
            request = ctx.move(request, S.CANCELLED, reason)
            session.add(request)
            return request_id
        ctx.note(request, f"{partner.name} refused to cancel" + (f": {note}" if note else ""))
    elif why is p.ReasonForMessage.STATUS_REQUEST_RESPONSE:
        ctx.note(request, f"{partner.name} reports the status {iso.value}")

    if status_info.due_date and iso in (p.Status.LOANED, p.Status.OVERDUE, p.Status.RECALLED):
        request.due_date = status_info.due_date.date()
    if _describes(iso, current):
        session.add(request)
        session.flush()
        return request_id
    target = Status(iso.value)
    if not strict and target not in workflow.allowed_targets(request.direction, current):
        ctx.note(
            request,
            f"{partner.name} reports {iso.value}; kept as it is ({current.value} here)",
        )
        session.add(request)
        session.flush()
        return request_id

    reason = _inbound_reason(partner, message)
    if target is S.UNFILLED:
        from ill_tui.services import sourcing  # sourcing builds on this module

        next_entry = sourcing.next_lender(session, request)
        if next_entry is None:
            reason += f" Rota exhausted: {sourcing.lenders_asked(session, request)} lenders asked."
        else:
            reason += " Moving on to the next lender."
        request = ctx.move(request, target, reason)
        session.add(request)
        session.flush()
        if next_entry is not None:
            sourcing.advance(
                session,
                request_id=request_id,
                actor=ctx.actor,
                codec=ctx.codec,
                settings=ctx.settings,
                clock=ctx.clock,
            )
        return request_id
    request = ctx.move(request, target, reason)
    session.add(request)
    session.flush()
    return request_id


def _inbound_reason(partner: Partner, message: p.SupplyingAgencyMessage) -> str:
    info, status_info = message.message_info, message.status_info
    iso = status_info.status
    parts = [f"{iso.value} at {partner.name}"]
    if info.reason_unfilled:
        parts.append(f"reason: {info.reason_unfilled}")
    if info.reason_retry:
        parts.append(f"retry: {info.reason_retry}")
    if info.offered_costs is not None:
        parts.append(f"offered {_format_costs(info.offered_costs)}")
    if info.retry_after:
        parts.append(f"retry after {info.retry_after.date().isoformat()}")
    if info.retry_before:
        parts.append(f"retry before {info.retry_before.date().isoformat()}")
    if status_info.due_date:
        parts.append(f"due {status_info.due_date.date().isoformat()}")
    if message.delivery_info and message.delivery_info.loan_condition:
        parts.append(f"condition: {message.delivery_info.loan_condition}")
    if info.note:
        parts.append(f"note: {info.note.strip()}")
    return "; ".join(parts) + "."


def _record_outcome(session: Session, request: Request, iso: p.Status) -> None:
    entry = session.exec(
        select(RotaEntry).where(
            RotaEntry.request_id == request.id, RotaEntry.position == request.rota_position
        )
    ).first()
    if entry is not None and entry.partner_id == request.partner_id:
        entry.outcome = iso.value
        session.add(entry)


# ---- inbound requesting agency message (we are the supplier)


def _apply_requesting(ctx: _Inbound, message: p.Message) -> int:
    assert isinstance(message, p.RequestingAgencyMessage)
    session, partner = ctx.session, ctx.partner
    rid = message.header.requesting_agency_request_id
    request = session.exec(
        select(Request).where(
            Request.direction == Direction.LENDING.value,
            Request.partner_id == partner.id,
            Request.partner_request_id == rid,
        )
    ).first()
    if request is None:
        raise _unknown_value(f"non-existing RequestingAgencyRequestId {rid}")
    assert request.id is not None
    status = Status(request.status)
    note = message.note.strip() if message.note else ""
    said = f": {note}" if note else ""
    action = message.action
    on_loan = (S.SHIPPED, S.LOANED, S.OVERDUE, S.RECALLED)
    if action is p.Action.RECEIVED:
        if status in (S.LOANED, S.OVERDUE, S.RECALLED):
            ctx.note(request, f"{partner.name} confirms it received the item{said}")
        else:
            ctx.move(request, S.LOANED, f"Received by {partner.name}{said}")
    elif action is p.Action.SHIPPED_RETURN:
        if status not in on_loan:
            raise _unknown_value(
                f"ShippedReturn for request {rid}, which is {status.value}: nothing on loan",
                request.id,
            )
        ctx.note(request, f"{partner.name} shipped the item back{said}")
    elif action is p.Action.RENEW:
        if status not in on_loan:
            raise _unknown_value(
                f"Renew for request {rid}, which is {status.value}: nothing on loan",
                request.id,
            )
        ctx.note(request, f"{partner.name} asks to renew the loan{said}")
    elif action is p.Action.CANCEL:
        if not request.is_open:
            raise _unknown_value(
                f"Cancel for request {rid}, which is already {status.value}", request.id
            )
        ctx.note(request, f"{partner.name} asks to cancel the request{said}")
    elif action is p.Action.STATUS_REQUEST:
        now = ctx.clock()
        iso = LENDING_ISO_STATUS[status]
        answer = _supplying_message(
            request,
            partner,
            ctx.settings,
            now,
            status=iso,
            reason=p.ReasonForMessage.STATUS_REQUEST_RESPONSE,
            due_date=request.due_date if iso in (p.Status.LOANED, p.Status.OVERDUE) else None,
        )
        _enqueue(
            session,
            codec=ctx.codec,
            request=request,
            partner=partner,
            message=answer,
            summary=f"StatusRequestResponse ({iso.value})",
            now=now,
        )
    elif action is p.Action.SHIPPED_FORWARD:
        ctx.note(request, f"{partner.name} forwarded the item to another library{said}")
    else:
        ctx.note(request, f"Notification from {partner.name}: {note or '(no text)'}")
    session.flush()
    return request.id


_APPLY: dict[p.MessageKind, Callable[[_Inbound, p.Message], int]] = {
    p.MessageKind.REQUEST: _apply_request,
    p.MessageKind.SUPPLYING_AGENCY_MESSAGE: _apply_supplying,
    p.MessageKind.REQUESTING_AGENCY_MESSAGE: _apply_requesting,
}
