"""An ISO 18626 partner simulator that answers as Index Data's illmock (crosslink) does.

``ill-tui simulate-partner`` runs it: a standalone ISO 18626 peer with no database, for tests,
training and the demo sandbox (whose partners all point at ``http://127.0.0.1:8626/iso18626``).
One simulator plays every partner: the agency a message is addressed to is the agency that
answers, so its follow-up messages carry the request's own header (supplying agency = the
agency the request was addressed to, requesting agency = the sender, and the sender's
``requestingAgencyAuthentication`` echoed, since credentials are symmetric per partnership).

The behaviour follows illmock as summarised in ``../shared/conformance/iso18626/SOURCES.md``:

* HTTP: POST ``/iso18626`` (and ``/``); another method gets 405, a content type that is not
  ``application/xml`` or ``text/xml`` 415, bytes that are not an ISO 18626 message 400 (plain
  text). Replies are ``application/xml`` with ``X-Request-ID`` set to the request id.
* Supplier role, for a ``request`` (not a PatronRequest) and a ``requestingAgencyMessage``. The
  scenario is a ``MOCK:<supplierId>:<SCENARIO>`` token in serviceInfo/note when ``<supplierId>``
  is the supplying agency's id value, else bibliographicInfo/supplierUniqueRecordId, else (an
  ill-tui extension) the scenario configured for that agency; empty or unknown means UNFILLED
  (see ``scenario_for``). After the OK RequestConfirmation the statuses of the scenario go to
  the requester (the first http(s) address in requestingAgencyInfo, else the peer URL) one by
  one, ``delay`` apart, the first with reasonForMessage RequestResponse and later ones
  StatusChange. Loaned carries a due date 14 days on, sentVia, deliveredFormat and itemId.
  Received triggers Overdue or Recalled when the scenario says so; Renew is answered
  RenewResponse Y (status Loaned, and a new due date 14 days after the current one, which
  illmock leaves out); Cancel CancelResponse Y / Cancelled before Loaned and N / Loaned after;
  ShippedReturn LoanCompleted.
* Requester role, for a ``request`` whose requestSubType includes PatronRequest (the simulator
  forwards it as a plain Request to the supplier named in supplierInfo/supplierDescription, else
  the peer URL) and for every ``supplyingAgencyMessage``: on Loaned it sends Received and, a
  delay later, ShippedReturn (not with the notes ``#RENEW#`` or ``#RECALL#``); on Recalled
  ShippedReturn; on Overdue with ``#RENEW#`` Renew, then ShippedReturn; with ``#CANCEL#`` a
  Cancel on the first message; on RetryPossible a Retry request (a new request id unless
  ``#RETRYKEEPID#``; maximumCosts = offeredCosts after CostExceedsMaxCost); a Notification
  is confirmed and otherwise ignored.
* State lives in memory, keyed by supplier, requester and request id, and is dropped after
  LoanCompleted, CopyCompleted, Unfilled, RetryPossible and Cancelled.

Where this simulator and illmock differ: illmock reads any ``action``, ``status`` or
``reasonForMessage`` value, while the ill-tui codec refuses values outside the XSD, so such a
message gets an ERROR confirmation (UnsupportedActionType, UnrecognisedDataValue,
UnsupportedReasonForMessageType) instead of OK. The renewal due date and the per-agency
scenarios are additions; the default peer URL is ``ill-tui serve``'s address, not illmock's
``localhost:8081``; a body over ``max_bytes`` gets 413.

Every message the simulator sends is built by ``adapters.iso18626.codec.build`` and therefore
valid against the v1.2 XSD. Follow-up sends have timeouts; a failure is logged and ends that
chain of messages, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from adapters.iso18626 import codec
from adapters.iso18626.endpoint import header_value
from ill_tui import protocol as p
from ill_tui.clock import Clock, utcnow

log = logging.getLogger(__name__)

DEFAULT_PORT = 8626
"""The port the demo sandbox's partners point at (``http://127.0.0.1:8626/iso18626``)."""

DEFAULT_DELAY_MS = 100
"""Pause before each follow-up message, as illmock's ``MESSAGE_DELAY`` default."""

DEFAULT_PEER_URL = "http://127.0.0.1:8627/iso18626"
"""Where follow-ups go when a request names no http(s) address: ``ill-tui serve``'s default
address (illmock's ``PEER_URL`` defaults to ``http://localhost:8081/iso18626`` instead)."""

LOAN_PERIOD = timedelta(days=14)
"""How long a simulated loan runs: dueDate is the Loaned message's time plus this."""

OFFERED_COSTS = p.Costs(amount=Decimal(35), currency="USD")
"""What RETRY:COST offers (illmock's figure)."""

XML = "application/xml"

# Scenario -> the statuses sent after the confirmation, and what follows a Received.
_FLOWS: dict[str, tuple[tuple[p.Status, ...], bool, bool]] = {
    "LOANED": ((p.Status.LOANED,), False, False),
    "WILLSUPPLY": ((p.Status.WILL_SUPPLY,), False, False),
    "WILLSUPPLY_LOANED": ((p.Status.WILL_SUPPLY, p.Status.LOANED), False, False),
    "UNFILLED": ((p.Status.UNFILLED,), False, False),
    "WILLSUPPLY_UNFILLED": ((p.Status.WILL_SUPPLY, p.Status.UNFILLED), False, False),
    "LOANED_OVERDUE": ((p.Status.LOANED,), True, False),
    "WILLSUPPLY_LOANED_OVERDUE": ((p.Status.WILL_SUPPLY, p.Status.LOANED), True, False),
    "LOANED_RECALLED": ((p.Status.LOANED,), False, True),
    "WILLSUPPLY_LOANED_RECALLED": ((p.Status.WILL_SUPPLY, p.Status.LOANED), False, True),
}
_RETRY_REASONS = {
    "RETRY:COST": "CostExceedsMaxCost",
    "RETRY:ONLOAN": "OnLoan",
    "RETRY:COND": "LoanCondition",
    "RETRY:NOTFOUNDASCITED": "NotFoundAsCited",
}
SCENARIOS = (
    *_FLOWS,
    "COMPLETED",
    *_RETRY_REASONS,
    "ERROR",
    "HTTP-ERROR-400",
    "HTTP-ERROR-500",
)
"""Every scenario keyword the supplier knows (``RETRY:X_Y`` combines two of the RETRY ones)."""

_TERMINAL = frozenset(
    {
        p.Status.LOAN_COMPLETED,
        p.Status.COPY_COMPLETED,
        p.Status.UNFILLED,
        p.Status.RETRY_POSSIBLE,
        p.Status.CANCELLED,
    }
)
_TOKEN_END = "#,; \t\n\r"
_STATUS_REASONS = (p.ReasonForMessage.REQUEST_RESPONSE, p.ReasonForMessage.STATUS_CHANGE)


# ---------------------------------------------------------------------------- scenarios


def _scenario_in_note(request: p.IllRequest) -> str:
    note = request.service_info.note if request.service_info else None
    if not note:
        return ""
    start = note.find("MOCK:")
    if start < 0:
        return ""
    value = note[start + len("MOCK:") :]
    ends = [i for i in (value.find(c) for c in _TOKEN_END) if i >= 0]
    if ends:
        value = value[: min(ends)]
    symbol, sep, scenario = value.partition(":")
    if not sep or symbol != request.header.supplying_agency_id.value:
        return ""
    return scenario


def scenario_for(request: p.IllRequest, defaults: Mapping[str, str] | None = None) -> str:
    """The scenario the supplier plays for ``request``, as illmock chooses it.

    A ``MOCK:<supplierId>:<SCENARIO>`` token in serviceInfo/note wins when ``<supplierId>`` is
    the request's supplying agency id value; otherwise bibliographicInfo/supplierUniqueRecordId
    is the scenario; then (an ill-tui extension, since ill-tui sends no supplierUniqueRecordId
    and a rota's later requests carry no note) the scenario ``defaults`` gives the supplying
    agency id value; none of these gives ``"UNFILLED"``. ``RETRY:X_Y`` gives ``RETRY:X`` for a
    new request and ``Y`` for a request of type Retry; a Retry of a plain ``RETRY:X`` gives
    ``""`` (the request is confirmed and nothing follows).

    Args:
        request: the incoming ISO 18626 request.
        defaults: scenario per supplying agency id value, for requests that name none; the
            key ``*`` covers every agency not named.

    Returns:
        The scenario keyword; an unknown keyword is played as UNFILLED by the supplier.
    """
    scenario = (
        _scenario_in_note(request)
        or request.bibliographic_info.supplier_unique_record_id
        or _configured(defaults or {}, request.header.supplying_agency_id.value)
    )
    if not scenario:
        return "UNFILLED"
    if not scenario.startswith("RETRY"):
        return scenario
    first, sep, then = scenario.partition("_")
    info = request.service_info
    if info is not None and info.request_type is p.RequestType.RETRY:
        return then if sep else ""
    return first


def _configured(defaults: Mapping[str, str], agency_value: str) -> str | None:
    """The configured scenario of an agency; ``*`` stands for every agency not named."""
    return defaults.get(agency_value) or defaults.get("*")


def _delivery_method(request: p.IllRequest) -> str:
    """sentVia for a loan: the best-ranked requested delivery address decides (URL if none)."""
    method = "URL"
    best: int | None = None
    for wanted in request.requested_delivery_info:
        order = wanted.sort_order or 0  # illmock reads a missing sortOrder as 0
        if best is not None and order >= best:
            continue
        address = wanted.address
        if isinstance(address, p.PhysicalAddress) and address.line1:
            method, best = "Mail", order
        elif isinstance(address, p.ElectronicAddress):
            kind = address.type.strip().upper()
            if kind == "EMAIL":
                method, best = "Email", order
            elif kind == "FTP":
                method, best = "FTP", order
    return method


def _http_url(text: str | None) -> str | None:
    if text and text.startswith(("http://", "https://")):
        return text
    return None


def _requester_url(request: p.IllRequest) -> str | None:
    info = request.requesting_agency_info
    for address in info.addresses if info else ():
        if isinstance(address, p.ElectronicAddress) and _http_url(address.data):
            return address.data
    return None


# ---------------------------------------------------------------------------- state


@dataclass(eq=False)
class _Supplying:
    """What the supplier remembers about one request it answers."""

    header: p.Header
    supplier_request_id: str
    peer_url: str
    service_type: p.ServiceType
    sent_via: str
    reason_retry: str | None = None
    overdue: bool = False
    recalled: bool = False
    loaned: bool = False
    due: datetime | None = None
    first_response: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(eq=False)
class _Requesting:
    """What the requester remembers about one request it sent."""

    request: p.IllRequest
    supplier_url: str
    cancel: bool = False
    renew: bool = False
    recall: bool = False
    retry_keep_id: bool = False
    received: bool = False


SupplierKey = tuple[str, str, str]
RequesterKey = tuple[str, str]


def _supplier_key(header: p.Header) -> SupplierKey:
    return (
        header.supplying_agency_id.value,
        header.requesting_agency_id.value,
        header.requesting_agency_request_id,
    )


def _requester_key(header: p.Header) -> RequesterKey:
    return (header.requesting_agency_id.value, header.requesting_agency_request_id)


def _header_problem(header: p.Header) -> str | None:
    """What illmock's header check refuses: an empty request id or agency id value."""
    if not header.requesting_agency_request_id.strip():
        return "requestingAgencyRequestId: cannot be empty"
    if not header.requesting_agency_id.value.strip():
        return "requestingAgencyId: cannot be empty"
    if not header.supplying_agency_id.value.strip():
        return "supplyingAgencyId: cannot be empty"
    return None


class SendFailed(Exception):
    """A follow-up message could not be delivered or was not confirmed as expected."""


# ---------------------------------------------------------------------------- the simulator


class PartnerSimulator:
    """The simulator's state and behaviour; ``app`` is its ASGI application.

    Args:
        delay: pause before each follow-up message (illmock's ``MESSAGE_DELAY``), in seconds.
        peer_url: where follow-ups go when a request names no http(s) address of its own.
        clock: the time source for time stamps and due dates.
        timeout: seconds allowed for each follow-up POST (connect and read).
        requester_agency: the agency id the requester role uses when a patron request leaves
            the requesting agency empty.
        supplier_agency: the same for an empty supplying agency.
        max_bytes: the largest message body accepted.
        scenarios: the scenario each supplying agency (by id value) plays when a request names
            none (an ill-tui extension; see ``scenario_for``).
    """

    def __init__(
        self,
        *,
        delay: float = DEFAULT_DELAY_MS / 1000,
        peer_url: str = DEFAULT_PEER_URL,
        clock: Clock = utcnow,
        timeout: float = 10.0,
        requester_agency: p.AgencyId | None = None,
        supplier_agency: p.AgencyId | None = None,
        max_bytes: int = codec.DEFAULT_MAX_BYTES,
        scenarios: Mapping[str, str] | None = None,
    ) -> None:
        if delay < 0:
            raise ValueError(f"The delay must not be negative, not {delay}.")
        self.delay = delay
        self.peer_url = peer_url
        self.clock = clock
        self.timeout = timeout
        self.requester_agency = requester_agency or p.AgencyId(type="MOCK", value="REQ")
        self.supplier_agency = supplier_agency or p.AgencyId(type="MOCK", value="SUP")
        self.max_bytes = max_bytes
        self.scenarios = dict(scenarios or {})
        self.supplying: dict[SupplierKey, _Supplying] = {}
        self.requesting: dict[RequesterKey, _Requesting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/iso18626", self.endpoint, methods=["POST"]),
                Route("/", self.endpoint, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    # -- lifetime

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        async with httpx.AsyncClient(timeout=timeout) as client:
            self._client = client
            try:
                yield
            finally:
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                self._client = None

    def _later(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background; its failures are logged, never raised."""
        task = asyncio.get_running_loop().create_task(self._guarded(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:  # a background send must never take the server down
            log.exception("simulator: a follow-up failed")

    # -- HTTP

    async def endpoint(self, request: Request) -> Response:
        """Answer one POSTed ISO 18626 message (the Starlette endpoint)."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("application/xml", "text/xml")):
            return PlainTextResponse("only application/xml or text/xml accepted", 415)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self.max_bytes:
                return PlainTextResponse(f"message over {self.max_bytes} bytes", 413)
        received = self.clock()
        try:
            parsed = codec.parse(bytes(body), max_bytes=self.max_bytes, require_request_id=False)
        except codec.InvalidMessage as error:
            if error.kind.confirmation is error.kind:
                return PlainTextResponse("invalid ISO18626 message", 400)
            log.info("simulator: refused %s: %s", error.kind, error)
            confirmation = error.confirmation(now=self.clock(), received=received)
            request_id = error.header.requesting_agency_request_id if error.header else ""
            return self._xml(confirmation, request_id)
        except codec.Iso18626Error as error:
            log.info("simulator: not an ISO 18626 message: %s", error)
            return PlainTextResponse("invalid ISO18626 message", 400)
        message = parsed.message
        if isinstance(message, p.IllRequest):
            sub_types = message.service_info.request_sub_types if message.service_info else ()
            if p.RequestSubType.PATRON_REQUEST in sub_types:
                return await self._patron_request(message, received)
            return self._supplier_request(message, received)
        if isinstance(message, p.RequestingAgencyMessage):
            return self._requesting_message(message, received)
        if isinstance(message, p.SupplyingAgencyMessage):
            return self._supplying_message(message, received)
        # A confirmation on its own is not something a peer POSTs.
        return PlainTextResponse("invalid ISO18626 message", 400)

    def _xml(self, message: p.Message, request_id: str) -> Response:
        echoed = header_value(request_id)  # not every id fits in an HTTP header
        headers = {"X-Request-ID": echoed} if echoed else {}
        return Response(codec.build(message), media_type=XML, headers=headers)

    def _confirm(
        self,
        message: p.AgencyMessage,
        received: datetime,
        error: str | None = None,
        error_type: p.ErrorType = p.ErrorType.UNRECOGNISED_DATA_VALUE,
    ) -> Response:
        data = None if error is None else p.ErrorData(error_type=error_type, error_value=error)
        confirmation = p.confirm(message, now=self.clock(), error=data, received=received)
        return self._xml(confirmation, message.header.requesting_agency_request_id)

    # -- supplier role

    def _supplier_request(self, request: p.IllRequest, received: datetime) -> Response:
        header = request.header
        problem = _header_problem(header)
        if problem:
            return self._confirm(request, received, problem)
        key = _supplier_key(header)
        if key in self.supplying:
            return self._confirm(request, received, "RequestingAgencyRequestId already exists")
        scenario = scenario_for(request, self.scenarios)
        log.info(
            "simulator: request %s from %s to %s, scenario %r",
            header.requesting_agency_request_id,
            header.requesting_agency_id,
            header.supplying_agency_id,
            scenario,
        )
        reason_retry = None
        overdue = recalled = False
        statuses: tuple[p.Status, ...] = ()
        if scenario == "ERROR":
            return self._confirm(request, received, "MOCK ERROR")
        if scenario in ("HTTP-ERROR-400", "HTTP-ERROR-500"):
            return PlainTextResponse(f"MOCK {scenario}", int(scenario[-3:]))
        if scenario in _FLOWS:
            statuses, overdue, recalled = _FLOWS[scenario]
        elif scenario in _RETRY_REASONS:
            statuses, reason_retry = (p.Status.RETRY_POSSIBLE,), _RETRY_REASONS[scenario]
        elif scenario == "COMPLETED":
            info = request.service_info
            copy = info is not None and info.service_type is p.ServiceType.COPY
            statuses = (p.Status.COPY_COMPLETED if copy else p.Status.LOAN_COMPLETED,)
        elif scenario:  # "" is a Retry with nothing more to play; anything unknown: UNFILLED
            statuses = (p.Status.UNFILLED,)
        service = request.service_info
        state = _Supplying(
            header=header,
            supplier_request_id=str(uuid.uuid4()),
            peer_url=_requester_url(request) or self.peer_url,
            service_type=service.service_type if service else p.ServiceType.COPY_OR_LOAN,
            sent_via=_delivery_method(request),
            reason_retry=reason_retry,
            overdue=overdue,
            recalled=recalled,
        )
        self.supplying[key] = state
        response = self._confirm(request, received)
        if statuses:
            self._later(self._send_statuses(key, header, statuses))
        return response

    def _requesting_message(
        self, message: p.RequestingAgencyMessage, received: datetime
    ) -> Response:
        header = message.header
        problem = _header_problem(header)
        if problem:
            return self._confirm(message, received, problem)
        response = self._confirm(message, received)
        key = _supplier_key(header)
        state = self.supplying.get(key)
        log.info("simulator: %s for %s", message.action, "/".join(key))
        if state is None:
            log.warning("simulator: no request %s; %s ignored", "/".join(key), message.action)
            return response
        action = message.action
        if action is p.Action.CANCEL:
            self._later(self._answer_cancel(key, header, state))
        elif action is p.Action.RENEW:
            self._later(
                self._send_one(
                    key,
                    header,
                    state,
                    self.delay / 3,
                    p.Status.LOANED,
                    p.ReasonForMessage.RENEW_RESPONSE,
                    answer=p.YesNo.Y,
                )
            )
        elif action is p.Action.RECEIVED:
            if state.overdue:
                state.overdue = False
                self._later(
                    self._send_one(
                        key,
                        header,
                        state,
                        self.delay / 3,
                        p.Status.OVERDUE,
                        p.ReasonForMessage.STATUS_CHANGE,
                    )
                )
            if state.recalled:
                state.recalled = False
                self._later(
                    self._send_one(
                        key,
                        header,
                        state,
                        self.delay / 3,
                        p.Status.RECALLED,
                        p.ReasonForMessage.STATUS_CHANGE,
                    )
                )
        elif action is p.Action.SHIPPED_RETURN:
            self._later(self._send_statuses(key, header, (p.Status.LOAN_COMPLETED,)))
        # StatusRequest, Notification and ShippedForward: illmock ignores them.
        return response

    async def _send_statuses(
        self, key: SupplierKey, header: p.Header, statuses: tuple[p.Status, ...]
    ) -> None:
        """Send ``statuses`` one by one, ``delay`` apart, while the request is still known."""
        for status in statuses:
            await asyncio.sleep(self.delay)
            state = self.supplying.get(key)
            if state is None:
                log.info("simulator: %s is gone; %s not sent", "/".join(key), status)
                return
            reason = (
                p.ReasonForMessage.REQUEST_RESPONSE
                if state.first_response
                else p.ReasonForMessage.STATUS_CHANGE
            )
            state.first_response = False
            if not await self._send_status(key, header, state, status, reason):
                return

    async def _send_one(
        self,
        key: SupplierKey,
        header: p.Header,
        state: _Supplying,
        pause: float,
        status: p.Status,
        reason: p.ReasonForMessage,
        *,
        answer: p.YesNo | None = None,
    ) -> None:
        await asyncio.sleep(pause)
        await self._send_status(key, header, state, status, reason, answer=answer)

    async def _answer_cancel(self, key: SupplierKey, header: p.Header, state: _Supplying) -> None:
        await asyncio.sleep(self.delay / 2)
        if state.loaned:
            answer, status = p.YesNo.N, p.Status.LOANED
        else:
            answer, status = p.YesNo.Y, p.Status.CANCELLED
        await self._send_status(
            key, header, state, status, p.ReasonForMessage.CANCEL_RESPONSE, answer=answer
        )

    def supplying_message(
        self,
        header: p.Header,
        state: _Supplying,
        status: p.Status,
        reason: p.ReasonForMessage,
        *,
        answer: p.YesNo | None = None,
    ) -> p.SupplyingAgencyMessage:
        """The SupplyingAgencyMessage the supplier sends for ``status`` (no side effects)."""
        now = self.clock()
        reason_retry = reason_unfilled = None
        offered = retry_after = None
        delivery: p.DeliveryInfo | None = None
        if status is p.Status.RETRY_POSSIBLE and state.reason_retry:
            reason_retry = state.reason_retry
            if reason_retry == "CostExceedsMaxCost":
                reason_unfilled = reason_retry  # illmock does this too (a bug there, kept)
                offered = OFFERED_COSTS
            elif reason_retry == "OnLoan":
                retry_after = now
            elif reason_retry == "LoanCondition":
                delivery = p.DeliveryInfo(date_sent=now, loan_condition="NoReproduction")
            elif reason_retry == "NotFoundAsCited":
                delivery = p.DeliveryInfo(date_sent=now, item_id=_ITEM_IDS["Mail"])
        due = None
        if reason is p.ReasonForMessage.RENEW_RESPONSE and answer is p.YesNo.Y:
            # illmock sends no date here; a renewal that names its new due date (one loan
            # period after the current one) is what a borrower can act on.
            due = (state.due or now) + LOAN_PERIOD
        elif status is p.Status.LOANED and reason in _STATUS_REASONS:
            due = now + LOAN_PERIOD
            delivery = p.DeliveryInfo(
                date_sent=now,
                item_id=_ITEM_IDS[state.sent_via],
                sent_via=state.sent_via,
                delivered_format=_format(state.sent_via, state.service_type),
            )
        return p.SupplyingAgencyMessage(
            header=dataclasses.replace(
                header, timestamp=now, supplying_agency_request_id=state.supplier_request_id
            ),
            message_info=p.MessageInfo(
                reason_for_message=reason,
                answer_yes_no=answer,
                reason_unfilled=reason_unfilled,
                reason_retry=reason_retry,
                offered_costs=offered,
                retry_after=retry_after,
            ),
            status_info=p.StatusInfo(status=status, last_change=now, due_date=due),
            delivery_info=delivery,
        )

    async def _send_status(
        self,
        key: SupplierKey,
        header: p.Header,
        state: _Supplying,
        status: p.Status,
        reason: p.ReasonForMessage,
        *,
        answer: p.YesNo | None = None,
    ) -> bool:
        """Send one SupplyingAgencyMessage; True when the requester confirmed it."""
        async with state.lock:
            message = self.supplying_message(header, state, status, reason, answer=answer)
            if status is p.Status.LOANED and reason in _STATUS_REASONS:
                state.loaned = True
            if message.status_info.due_date is not None:
                state.due = message.status_info.due_date
            if status in _TERMINAL:
                self.supplying.pop(key, None)
            try:
                confirmation = await self._post(state.peer_url, message)
            except SendFailed as error:
                log.warning(
                    "simulator: %s %s to %s failed: %s", reason, status, state.peer_url, error
                )
                return False
        if not isinstance(confirmation, p.SupplyingAgencyMessageConfirmation):
            log.warning(
                "simulator: %s answered %s, not its confirmation", status, confirmation.kind
            )
            return False
        if not p.is_ok(confirmation):
            # illmock carries on after an ERROR confirmation; log it so a trainer sees why.
            log.warning("simulator: %s %s refused: %s", reason, status, confirmation.error_data)
        return True

    # -- requester role

    async def _patron_request(self, patron: p.IllRequest, received: datetime) -> Response:
        """Forward a patron request to its supplier as a plain request and remember it."""
        header = patron.header
        now = self.clock()
        header = dataclasses.replace(
            header,
            timestamp=now,
            requesting_agency_request_id=header.requesting_agency_request_id or str(uuid.uuid4()),
            requesting_agency_id=p.AgencyId(
                type=header.requesting_agency_id.type or self.requester_agency.type,
                value=header.requesting_agency_id.value or self.requester_agency.value,
            ),
            supplying_agency_id=p.AgencyId(
                type=header.supplying_agency_id.type or self.supplier_agency.type,
                value=header.supplying_agency_id.value or self.supplier_agency.value,
            ),
        )
        service = patron.service_info
        assert service is not None  # a PatronRequest sub type needs serviceInfo
        request = dataclasses.replace(
            patron,
            header=header,
            service_info=dataclasses.replace(service, request_sub_types=()),
            supplier_info=(),  # illmock does not forward supplierInfo to the supplier
        )
        note = service.note or ""
        supplier_url = next(
            (
                url
                for url in (_http_url(s.supplier_description) for s in patron.supplier_info)
                if url
            ),
            self.peer_url,
        )
        state = _Requesting(
            request=request,
            supplier_url=supplier_url,
            cancel=note == "#CANCEL#",
            renew=note == "#RENEW#",
            recall=note == "#RECALL#",
            retry_keep_id=note == "#RETRYKEEPID#",
        )
        confirmed = dataclasses.replace(patron, header=header)
        key = _requester_key(header)
        # Remembered before sending: the supplier may answer before its confirmation is read.
        self.requesting[key] = state
        try:
            answer = await self._post(supplier_url, request)
        except SendFailed as error:
            self.requesting.pop(key, None)
            return self._confirm(
                confirmed,
                received,
                f"error sending request to supplier: {error}",
                p.ErrorType.UNRECOGNISED_DATA_ELEMENT,
            )
        if not isinstance(answer, p.RequestConfirmation):
            self.requesting.pop(key, None)
            return self._confirm(
                confirmed,
                received,
                "did not receive requestConfirmation from supplier",
                p.ErrorType.UNRECOGNISED_DATA_ELEMENT,
            )
        log.info(
            "simulator: forwarded patron request %s to %s: %s",
            header.requesting_agency_request_id,
            supplier_url,
            answer.header.message_status,
        )
        confirmation = p.confirm(confirmed, now=self.clock(), received=received)
        confirmation = dataclasses.replace(
            confirmation,
            header=dataclasses.replace(
                confirmation.header, message_status=answer.header.message_status
            ),
            error_data=answer.error_data,
        )
        return self._xml(confirmation, header.requesting_agency_request_id)

    def _supplying_message(self, message: p.SupplyingAgencyMessage, received: datetime) -> Response:
        header = message.header
        problem = _header_problem(header)
        if problem:
            return self._confirm(message, received, problem)
        key = _requester_key(header)
        state = self.requesting.get(key)
        if state is None:
            return self._confirm(message, received, "non-existing RequestingAgencyRequestId")
        response = self._confirm(message, received)
        status = message.status_info.status
        log.info("simulator: %s %s for %s", message.message_info.reason_for_message, status, key)
        if message.message_info.reason_for_message is p.ReasonForMessage.NOTIFICATION:
            return response  # a note from the supplier, not a status to act on
        if state.cancel:
            state.cancel = False
            self._later(self._send_action(header, p.Action.CANCEL, self.delay / 10))
            return response
        if status is p.Status.LOANED:
            if not state.received:
                state.received = True
                self._later(self._send_action(header, p.Action.RECEIVED, self.delay / 10))
        elif status is p.Status.OVERDUE:
            if state.renew:
                state.renew = False
                self._later(self._send_action(header, p.Action.RENEW, self.delay / 10))
        elif status is p.Status.RECALLED:
            state.recall = False
            self._later(self._send_action(header, p.Action.SHIPPED_RETURN, self.delay))
        elif status in (p.Status.COPY_COMPLETED, p.Status.LOAN_COMPLETED, p.Status.UNFILLED):
            self.requesting.pop(key, None)
        elif status is p.Status.CANCELLED:
            if message.message_info.answer_yes_no is p.YesNo.Y:
                self.requesting.pop(key, None)
        elif status is p.Status.RETRY_POSSIBLE:
            previous = header.requesting_agency_request_id
            new_id = previous
            if not state.retry_keep_id:
                self.requesting.pop(key, None)
                new_id = str(uuid.uuid4())
                self.requesting[(key[0], new_id)] = state
            self._later(self._send_retry(state, message.message_info, previous, new_id))
        return response

    async def _send_action(self, header: p.Header, action: p.Action, pause: float) -> None:
        await asyncio.sleep(pause)
        state = self.requesting.get(_requester_key(header))
        if state is None:
            log.info("simulator: request %s is gone; %s not sent", _requester_key(header), action)
            return
        message = p.RequestingAgencyMessage(
            header=dataclasses.replace(header, timestamp=self.clock()), action=action
        )
        try:
            answer = await self._post(state.supplier_url, message)
        except SendFailed as error:
            log.warning("simulator: %s to %s failed: %s", action, state.supplier_url, error)
            return
        if not isinstance(answer, p.RequestingAgencyMessageConfirmation) or answer.action != action:
            log.warning("simulator: %s was not confirmed with the same action", action)
            return
        # After Received the item goes back (unless a renewal or recall is to be played out);
        # after a Renew it goes back too.
        returns = action is p.Action.RENEW or (
            action is p.Action.RECEIVED and not state.renew and not state.recall
        )
        if returns:
            self._later(self._send_action(header, p.Action.SHIPPED_RETURN, self.delay))

    async def _send_retry(
        self, state: _Requesting, info: p.MessageInfo, previous: str, new_id: str
    ) -> None:
        old = state.request
        service = old.service_info or p.ServiceInfo(service_type=p.ServiceType.COPY_OR_LOAN)
        billing = old.billing_info
        if info.reason_retry == "CostExceedsMaxCost" and info.offered_costs is not None:
            billing = dataclasses.replace(
                billing or p.BillingInfo(), maximum_costs=info.offered_costs
            )
        await asyncio.sleep(self.delay / 10)
        retry = dataclasses.replace(
            old,
            header=dataclasses.replace(
                old.header, requesting_agency_request_id=new_id, timestamp=self.clock()
            ),
            service_info=dataclasses.replace(
                service,
                request_type=p.RequestType.RETRY,
                requesting_agency_previous_request_id=previous,
            ),
            billing_info=billing,
        )
        state.request = retry
        try:
            await self._post(state.supplier_url, retry)
        except SendFailed as error:
            log.warning("simulator: Retry to %s failed: %s", state.supplier_url, error)

    # -- sending

    async def _post(self, url: str, message: p.AgencyMessage) -> p.Message:
        """POST ``message`` to ``url`` and return the parsed answer.

        Raises:
            SendFailed: on a network error or timeout, an HTTP status other than 200, or an
                answer that is not an ISO 18626 message.
        """
        client = self._client
        if client is None:
            raise SendFailed("the simulator is not running")
        body = codec.build(message)
        try:
            response = await client.post(url, content=body, headers={"Content-Type": XML})
        except httpx.TimeoutException as error:
            raise SendFailed(
                f"no answer within {self.timeout:g} s ({type(error).__name__})"
            ) from error
        except httpx.HTTPError as error:
            raise SendFailed(f"{type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise SendFailed(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            answer = codec.parse(response.content).message
        except codec.Iso18626Error as error:
            raise SendFailed(f"the answer is not an ISO 18626 message: {error}") from error
        # One line per message sent, so a trainer watching the log sees the exchange.
        log.info(
            "simulator: sent %s for %s to %s: %s",
            _describe(message),
            message.header.requesting_agency_request_id,
            url,
            (
                answer.header.message_status
                if isinstance(answer.header, p.ConfirmationHeader)
                else f"answered with a {answer.kind}"
            ),
        )
        return answer


def _describe(message: p.AgencyMessage) -> str:
    if isinstance(message, p.SupplyingAgencyMessage):
        info = message.message_info
        answer = f" {info.answer_yes_no}" if info.answer_yes_no else ""
        return f"{info.reason_for_message}{answer} {message.status_info.status}"
    if isinstance(message, p.RequestingAgencyMessage):
        return f"action {message.action}"
    kind = message.service_info.request_type if message.service_info else None
    return f"{kind or 'New'} request"


_ITEM_IDS = {
    "Email": "123456789",
    "FTP": "ftp://ftp.example.com/1234567889",
    "Mail": "123456789",
    "URL": "http://example.com/123456789",
}


def _format(sent_via: str, service_type: p.ServiceType) -> str:
    if sent_via == "Mail":
        return "PaperCopy" if service_type is p.ServiceType.COPY else "Printed"
    return "PDF"


def run(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    delay_ms: int = DEFAULT_DELAY_MS,
    peer_url: str = DEFAULT_PEER_URL,
    scenarios: Mapping[str, str] | None = None,
) -> None:
    """Serve a ``PartnerSimulator`` with uvicorn until interrupted (SIGINT or SIGTERM).

    Args:
        host: the address to listen on.
        port: the TCP port to listen on.
        delay_ms: pause before each follow-up message, in milliseconds.
        peer_url: where follow-ups go when a request names no http(s) address.
        scenarios: the scenario per supplying agency id value for requests that name none.
    """
    import uvicorn

    # uvicorn configures only its own loggers; the simulator's one line per message needs this.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    simulator = PartnerSimulator(delay=delay_ms / 1000, peer_url=peer_url, scenarios=scenarios)
    uvicorn.run(simulator.app, host=host, port=port, log_level="info", access_log=False)
