"""ISO 18626 (v1.2) messages as plain, frozen dataclasses.

This is the protocol's vocabulary for the core: the six message types ILL partners exchange
(``IllRequest``, ``RequestConfirmation``, ``SupplyingAgencyMessage`` and its confirmation,
``RequestingAgencyMessage`` and its confirmation) with the parts the v1.2 XSD defines. Field
names are the XSD's element names in snake case (``requestingAgencyRequestId`` ->
``requesting_agency_request_id``); repeated elements are tuples, optional ones default to
``None``. Closed XSD enumerations are ``StrEnum`` s with the XSD's exact spellings; open
"scheme/value pair" fields (``reasonUnfilled``, ``sentVia``, ``loanCondition``, ...) are plain
strings. Time stamps are timezone-aware ``datetime`` s; money is ``Decimal`` plus an ISO 4217
code. XML lives in ``adapters.iso18626.codec``; nothing here knows about it.

The v1.2 schema has no ``shippingInfo`` or ``activeSection``: those arrived with the 2021
revision, so they are not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from ill_tui.money import Money

NAMESPACE = "http://illtransactions.org/2013/iso18626"
VERSION = "1.2"


class Status(StrEnum):
    """The twelve ISO 18626 statuses of a request at its supplier (XSD ``type_status``)."""

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


class ReasonForMessage(StrEnum):
    """Why a supplying agency sends a message (XSD ``type_reasonForMessage``)."""

    REQUEST_RESPONSE = "RequestResponse"
    STATUS_REQUEST_RESPONSE = "StatusRequestResponse"
    RENEW_RESPONSE = "RenewResponse"
    CANCEL_RESPONSE = "CancelResponse"
    STATUS_CHANGE = "StatusChange"
    NOTIFICATION = "Notification"


class Action(StrEnum):
    """What a requesting agency tells its supplier (XSD ``type_action``)."""

    STATUS_REQUEST = "StatusRequest"
    RECEIVED = "Received"
    CANCEL = "Cancel"
    RENEW = "Renew"
    SHIPPED_RETURN = "ShippedReturn"
    SHIPPED_FORWARD = "ShippedForward"
    NOTIFICATION = "Notification"


class MessageStatus(StrEnum):
    """Whether a confirmation accepts the message (XSD ``type_messageStatus``)."""

    OK = "OK"
    ERROR = "ERROR"


class ErrorType(StrEnum):
    """Why a message was refused (XSD ``type_errorType``)."""

    UNSUPPORTED_ACTION_TYPE = "UnsupportedActionType"
    UNSUPPORTED_REASON_FOR_MESSAGE_TYPE = "UnsupportedReasonForMessageType"
    UNRECOGNISED_DATA_ELEMENT = "UnrecognisedDataElement"
    UNRECOGNISED_DATA_VALUE = "UnrecognisedDataValue"
    BADLY_FORMED_MESSAGE = "BadlyFormedMessage"


class RequestType(StrEnum):
    """A first request, a retry after RetryPossible, or a reminder (XSD ``type_requestType``)."""

    NEW = "New"
    RETRY = "Retry"
    REMINDER = "Reminder"


class RequestSubType(StrEnum):
    """XSD ``type_requestSubType`` (at most three per request)."""

    BOOKING_REQUEST = "BookingRequest"
    MULTIPLE_ITEM_REQUEST = "MultipleItemRequest"
    PATRON_REQUEST = "PatronRequest"
    TRANSFER_REQUEST = "TransferRequest"
    SUPPLYING_LIBRARYS_CHOICE = "SupplyingLibrarysChoice"


class ServiceType(StrEnum):
    """XSD ``type_serviceType``."""

    COPY = "Copy"
    LOAN = "Loan"
    COPY_OR_LOAN = "CopyOrLoan"


class YesNo(StrEnum):
    """XSD ``type_yesNo``."""

    Y = "Y"
    N = "N"


class MessageKind(StrEnum):
    """The six message types, named by their XML element."""

    REQUEST = "request"
    REQUEST_CONFIRMATION = "requestConfirmation"
    SUPPLYING_AGENCY_MESSAGE = "supplyingAgencyMessage"
    SUPPLYING_AGENCY_MESSAGE_CONFIRMATION = "supplyingAgencyMessageConfirmation"
    REQUESTING_AGENCY_MESSAGE = "requestingAgencyMessage"
    REQUESTING_AGENCY_MESSAGE_CONFIRMATION = "requestingAgencyMessageConfirmation"

    @property
    def confirmation(self) -> MessageKind:
        """The kind that confirms this one (a confirmation confirms nothing: itself)."""
        return _CONFIRMED_BY.get(self, self)


_CONFIRMED_BY = {
    MessageKind.REQUEST: MessageKind.REQUEST_CONFIRMATION,
    MessageKind.SUPPLYING_AGENCY_MESSAGE: MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION,
    MessageKind.REQUESTING_AGENCY_MESSAGE: MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION,
}


# ---------------------------------------------------------------------------- small parts


@dataclass(frozen=True, slots=True, kw_only=True)
class AgencyId:
    """An agency id: its type (``ISIL``, ``OCLC``, ``DNUCNI``, ...) and value."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> AgencyId:
        """Read ``TYPE:VALUE`` (as staff and partner files write it).

        Raises:
            ValueError: when there is no colon or either side is empty.
        """
        type_, sep, value = text.strip().partition(":")
        if not sep or not type_.strip() or not value.strip():
            raise ValueError(
                f"Agency id {text.strip()!r} must look like TYPE:VALUE, e.g. ISIL:DK-1"
            )
        return cls(type=type_.strip(), value=value.strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class Authentication:
    """``requestingAgencyAuthentication``: the requester's account at the supplier."""

    account_id: str | None = None
    security_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """An amount of money as ISO 18626 carries it (``type_costs``).

    Not ``ill_tui.money.Money``: a partner may send any precision or a currency code we do not
    know, and the message must still be read and stored as sent. Use ``to_money`` to check it.
    """

    amount: Decimal
    currency: str

    def to_money(self) -> Money:
        """Return the amount as ``ill_tui.money.Money``, rounded to the currency's minor units.

        Raises:
            ill_tui.money.InvalidMoney: when the currency is not an ISO 4217 code.
        """
        return Money(self.amount, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class BibliographicItemId:
    """An identifier of the item: ``code`` is ISBN, ISSN, OCLC, LCCN, DOI, PMID, ..."""

    code: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BibliographicRecordId:
    """An identifier of a catalogue record: ``code`` names the catalogue or scheme."""

    code: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhysicalAddress:
    """A postal address; ``region`` is ISO 3166-2, ``country`` ISO 3166-1."""

    line1: str | None = None
    line2: str | None = None
    locality: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectronicAddress:
    """An electronic address: ``type`` is e.g. ``EMAIL``, ``URL``, ``FTP``; ``data`` the address."""

    type: str
    data: str


Address = PhysicalAddress | ElectronicAddress
"""The XSD's ``address`` element is a choice of the two."""


# ---------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The ``header`` of a request and of both agency messages."""

    supplying_agency_id: AgencyId
    requesting_agency_id: AgencyId
    timestamp: datetime
    requesting_agency_request_id: str
    multiple_item_request_id: str = ""
    supplying_agency_request_id: str | None = None
    requesting_agency_authentication: Authentication | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorData:
    """Why a confirmation says ERROR; ``error_value`` explains it in words."""

    error_type: ErrorType
    error_value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmationHeader:
    """The ``confirmationHeader`` of the three confirmations."""

    timestamp: datetime
    timestamp_received: datetime
    message_status: MessageStatus
    supplying_agency_id: AgencyId | None = None
    requesting_agency_id: AgencyId | None = None
    requesting_agency_request_id: str | None = None
    multiple_item_request_id: str | None = None


# ---------------------------------------------------------------------------- request parts


@dataclass(frozen=True, slots=True, kw_only=True)
class BibliographicInfo:
    """What is wanted. ``supplier_unique_record_id`` is the supplier's own record id."""

    supplier_unique_record_id: str | None = None
    title: str | None = None
    author: str | None = None
    subtitle: str | None = None
    series_title: str | None = None
    edition: str | None = None
    title_of_component: str | None = None
    author_of_component: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages_requested: str | None = None
    estimated_no_pages: str | None = None
    bibliographic_item_ids: tuple[BibliographicItemId, ...] = ()
    sponsor: str | None = None
    information_source: str | None = None
    bibliographic_record_ids: tuple[BibliographicRecordId, ...] = ()

    def item_id(self, code: str) -> str | None:
        """The first ``bibliographicItemId`` with ``code`` (``"ISBN"``, ``"issn"``, ...), if any.

        Codes are compared without regard to case, as partners spell them either way.
        """
        wanted = code.casefold()
        for item in self.bibliographic_item_ids:
            if item.code.strip().casefold() == wanted:
                return item.value
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicationInfo:
    """Publisher, type, date and place of publication."""

    publisher: str | None = None
    publication_type: str | None = None
    publication_date: str | None = None
    place_of_publication: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """How the requester wants it supplied (``serviceType`` is the only required part)."""

    service_type: ServiceType
    request_type: RequestType | None = None
    request_sub_types: tuple[RequestSubType, ...] = ()
    requesting_agency_previous_request_id: str | None = None
    service_level: str | None = None
    preferred_format: str | None = None
    need_before_date: datetime | None = None
    copyright_compliance: str | None = None
    any_edition: YesNo | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplierInfo:
    """One candidate supplier the requester suggests, with its holdings."""

    sort_order: int | None = None
    supplier_code: AgencyId | None = None
    supplier_description: str | None = None
    bibliographic_record_id: BibliographicRecordId | None = None
    call_number: str | None = None
    summary_holdings: str | None = None
    availability_note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestedDeliveryInfo:
    """Where to deliver, in order of preference (lowest ``sort_order`` first)."""

    sort_order: int | None = None
    address: Address | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestingAgencyInfo:
    """The requesting library's name, contact and addresses."""

    name: str | None = None
    contact_name: str | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PatronInfo:
    """The patron the item is for (sent only when the partners agree to it)."""

    patron_id: str | None = None
    surname: str | None = None
    given_name: str | None = None
    patron_type: str | None = None
    send_to_patron: YesNo | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingInfo:
    """How the requester pays, and the most it will pay (``maximum_costs``)."""

    payment_method: str | None = None
    maximum_costs: Costs | None = None
    billing_method: str | None = None
    billing_name: str | None = None
    address: Address | None = None


# ---------------------------------------------------------------------------- supplier parts


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageInfo:
    """Why the supplier writes, and its answer and conditions."""

    reason_for_message: ReasonForMessage
    answer_yes_no: YesNo | None = None
    note: str | None = None
    reason_unfilled: str | None = None
    reason_retry: str | None = None
    offered_costs: Costs | None = None
    retry_after: datetime | None = None
    retry_before: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusInfo:
    """The request's status at the supplier, and its dates."""

    status: Status
    last_change: datetime
    expected_delivery_date: datetime | None = None
    due_date: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryInfo:
    """What was sent, when and how."""

    date_sent: datetime
    item_id: str | None = None
    sent_via: str | None = None
    sent_to_patron: bool | None = None
    loan_condition: str | None = None
    delivered_format: str | None = None
    delivery_costs: Costs | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnInfo:
    """Where a loan goes back to."""

    return_agency_id: AgencyId | None = None
    name: str | None = None
    physical_address: PhysicalAddress | None = None


# ---------------------------------------------------------------------------- the six messages


@dataclass(frozen=True, slots=True, kw_only=True)
class IllRequest:
    """An ISO 18626 ``request`` (not ``ill_tui.models.Request``, our stored transaction)."""

    header: Header
    bibliographic_info: BibliographicInfo
    publication_info: PublicationInfo | None = None
    service_info: ServiceInfo | None = None
    supplier_info: tuple[SupplierInfo, ...] = ()
    requested_delivery_info: tuple[RequestedDeliveryInfo, ...] = ()
    requesting_agency_info: RequestingAgencyInfo | None = None
    patron_info: PatronInfo | None = None
    billing_info: BillingInfo | None = None

    kind: ClassVar[MessageKind] = MessageKind.REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplyingAgencyMessage:
    """A message from the supplier: an answer or a status change."""

    header: Header
    message_info: MessageInfo
    status_info: StatusInfo
    delivery_info: DeliveryInfo | None = None
    return_info: ReturnInfo | None = None

    kind: ClassVar[MessageKind] = MessageKind.SUPPLYING_AGENCY_MESSAGE


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestingAgencyMessage:
    """A message from the requester: an action such as Received, Renew or Cancel."""

    header: Header
    action: Action
    note: str | None = None

    kind: ClassVar[MessageKind] = MessageKind.REQUESTING_AGENCY_MESSAGE


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestConfirmation:
    """The synchronous answer to a request."""

    header: ConfirmationHeader
    error_data: ErrorData | None = None

    kind: ClassVar[MessageKind] = MessageKind.REQUEST_CONFIRMATION


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplyingAgencyMessageConfirmation:
    """The synchronous answer to a supplying agency message (echoes its reason)."""

    header: ConfirmationHeader
    reason_for_message: ReasonForMessage | None = None
    error_data: ErrorData | None = None

    kind: ClassVar[MessageKind] = MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestingAgencyMessageConfirmation:
    """The synchronous answer to a requesting agency message (echoes its action)."""

    header: ConfirmationHeader
    action: Action | None = None
    error_data: ErrorData | None = None

    kind: ClassVar[MessageKind] = MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION


AgencyMessage = IllRequest | SupplyingAgencyMessage | RequestingAgencyMessage
"""The three messages that start an exchange (each is answered by a confirmation)."""

Confirmation = (
    RequestConfirmation | SupplyingAgencyMessageConfirmation | (RequestingAgencyMessageConfirmation)
)
"""The three synchronous answers."""

Message = (
    IllRequest
    | RequestConfirmation
    | SupplyingAgencyMessage
    | SupplyingAgencyMessageConfirmation
    | RequestingAgencyMessage
    | RequestingAgencyMessageConfirmation
)
"""Any of the six ISO 18626 messages."""


# ---------------------------------------------------------------------------- helpers


def confirmation_for(
    kind: MessageKind,
    header: Header | None,
    *,
    now: datetime,
    received: datetime | None = None,
    error: ErrorData | None = None,
    reason_for_message: ReasonForMessage | None = None,
    action: Action | None = None,
) -> Confirmation:
    """Make the confirmation that answers a message of ``kind`` with ``header``.

    This is what an endpoint sends back when it could read only part of a message (say the
    header, but not an unknown ``action``): ``header`` may then be ``None``. The confirmation
    echoes the agency ids and request ids, so the sender can match it.

    Args:
        kind: the kind of message being answered (request, supplying or requesting message).
        header: the answered message's header, when it could be read.
        now: when the confirmation is made (its ``timestamp``); from the injected clock.
        received: when the message arrived (``timestampReceived``); defaults to ``now``.
        error: the reason for refusing it; ``None`` confirms it with OK.
        reason_for_message: echoed in a supplying agency message confirmation.
        action: echoed in a requesting agency message confirmation.

    Raises:
        ValueError: if ``kind`` is itself a confirmation (confirmations are not confirmed).
    """
    if kind.confirmation is kind:
        raise ValueError(f"A {kind} is a confirmation; confirmations are not confirmed.")
    confirmation_header = ConfirmationHeader(
        timestamp=now,
        timestamp_received=received if received is not None else now,
        message_status=MessageStatus.OK if error is None else MessageStatus.ERROR,
        supplying_agency_id=header.supplying_agency_id if header else None,
        requesting_agency_id=header.requesting_agency_id if header else None,
        requesting_agency_request_id=header.requesting_agency_request_id if header else None,
        multiple_item_request_id=header.multiple_item_request_id if header else None,
    )
    if kind is MessageKind.REQUEST:
        return RequestConfirmation(header=confirmation_header, error_data=error)
    if kind is MessageKind.SUPPLYING_AGENCY_MESSAGE:
        return SupplyingAgencyMessageConfirmation(
            header=confirmation_header, reason_for_message=reason_for_message, error_data=error
        )
    return RequestingAgencyMessageConfirmation(
        header=confirmation_header, action=action, error_data=error
    )


def confirm(
    message: AgencyMessage,
    *,
    now: datetime,
    error: ErrorData | None = None,
    received: datetime | None = None,
) -> Confirmation:
    """Make the confirmation for ``message``: OK, or ERROR when ``error`` is given.

    A supplying agency message confirmation echoes the message's ``reasonForMessage`` and a
    requesting agency message confirmation its ``action``, as crosslink and ReShare do.

    Args:
        message: the request or agency message being answered.
        now: when the confirmation is made; from the injected clock.
        error: why the message is refused, or ``None`` for OK.
        received: when the message arrived; defaults to ``now``.
    """
    reason = (
        message.message_info.reason_for_message
        if isinstance(message, SupplyingAgencyMessage)
        else None
    )
    action = message.action if isinstance(message, RequestingAgencyMessage) else None
    return confirmation_for(
        message.kind,
        message.header,
        now=now,
        received=received,
        error=error,
        reason_for_message=reason,
        action=action,
    )


def is_ok(confirmation: Confirmation) -> bool:
    """True when ``confirmation`` accepts the message it answers."""
    return confirmation.header.message_status is MessageStatus.OK
