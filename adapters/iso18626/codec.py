"""ISO 18626 v1.2 XML <-> ``ill_tui.protocol`` dataclasses.

Strict on output, lenient on input:

* ``build`` writes the XSD's element order, the qualified ``ill:version`` attribute and the
  mandatory (possibly empty) ``multipleItemRequestId``, then validates the result against the
  v1.2 XSD shipped beside this module and raises ``SchemaViolation`` rather than send anything
  the schema refuses.
* ``parse`` reads what partners really send: fractional seconds of any length, ``Z``,
  ``+0000`` and ``+00:00`` offsets, elements in any order, missing optional parts, a bare
  message element without the ``ISO18626Message`` envelope. What it had to overlook or coerce
  comes back as ``Parsed.warnings``. Values the protocol cannot act on (an unknown status,
  reason or action, a missing request id) raise ``InvalidMessage`` carrying the ISO
  ``ErrorType`` and words for the ERROR confirmation.
* ``parse`` is safe on hostile input: a size limit, no DTDs (any DOCTYPE is refused: billion
  laughs, XXE), no entity expansion, no network.

Scheme attributes (``ill:scheme`` on scheme/value pairs) are not modelled: the protocol
dataclasses keep the values as plain strings, so a scheme is reported as a warning and dropped.
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import NoReturn, TypeVar

from lxml import etree

from ill_tui import protocol as p

NS = p.NAMESPACE
_Q = "{" + NS + "}"
_VERSION_ATTR = _Q + "version"
_SCHEME_ATTR = _Q + "scheme"

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
"""Largest body ``parse`` reads by default. Real messages are a few kilobytes."""

XSD_RESOURCE = "ISO-18626-v1_2.xsd"

_E = TypeVar("_E", bound=StrEnum)


# ---------------------------------------------------------------------------- errors


class Iso18626Error(Exception):
    """Base of every error this codec raises."""


class MessageTooLarge(Iso18626Error):
    """The body is longer than the limit; it was not parsed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"Message of {size} bytes is over the limit of {limit} bytes.")
        self.size = size
        self.limit = limit


class NotXml(Iso18626Error):
    """The body is not well-formed XML."""


class UnsafeXml(NotXml):
    """The body has a DOCTYPE (entities, external DTDs); ISO 18626 never needs one."""


class NotIso18626(Iso18626Error):
    """Well-formed XML, but not an ISO 18626 message (wrong namespace, no known message).

    An endpoint answers this with a plain HTTP 400, as crosslink does: there is no message to
    confirm.
    """


class InvalidMessage(Iso18626Error):
    """An ISO 18626 message the protocol cannot act on; answer it with an ERROR confirmation.

    Attributes:
        error_type: the ISO ``ErrorType`` for the confirmation's ``errorData``.
        error_value: words for ``errorValue``, e.g. ``"invalid status: WeCouldLoan"``.
        kind: which of the six messages it was.
        header: its header when that could be read (``None`` for confirmations, whose
            ``confirmationHeader`` is not a ``Header``), so the confirmation can echo the ids.
        reason_for_message: the message's reason, when it was readable (echoed).
        action: the message's action, when it was readable (echoed).
        warnings: what the parser overlooked before it gave up.
    """

    def __init__(
        self,
        error_type: p.ErrorType,
        error_value: str,
        *,
        kind: p.MessageKind,
        header: p.Header | None = None,
        reason_for_message: p.ReasonForMessage | None = None,
        action: p.Action | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        super().__init__(f"{kind}: {error_type}: {error_value}")
        self.error_type = error_type
        self.error_value = error_value
        self.kind = kind
        self.header = header
        self.reason_for_message = reason_for_message
        self.action = action
        self.warnings = tuple(warnings)

    @property
    def error_data(self) -> p.ErrorData:
        """The ``errorData`` for the ERROR confirmation."""
        return p.ErrorData(error_type=self.error_type, error_value=self.error_value)

    def confirmation(self, *, now: datetime, received: datetime | None = None) -> p.Confirmation:
        """The ERROR confirmation that answers this message.

        Raises:
            ValueError: when the invalid message was itself a confirmation.
        """
        return p.confirmation_for(
            self.kind,
            self.header,
            now=now,
            received=received,
            error=self.error_data,
            reason_for_message=self.reason_for_message,
            action=self.action,
        )


class SchemaViolation(Iso18626Error):
    """A message that does not validate against the v1.2 XSD (``build`` never sends one).

    Attributes:
        errors: the schema validator's messages, one per problem.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        first = self.errors[0] if self.errors else "invalid"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"Not valid ISO 18626 v1.2: {first}{more}")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed message and what the parser overlooked or coerced to read it."""

    message: p.Message
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- schema


_xsd_bytes: bytes | None = None
_xsd_lock = threading.Lock()
_thread_state = threading.local()


def _schema() -> etree.XMLSchema:
    """The v1.2 schema, loaded once per thread (lxml validators keep per-call error state)."""
    schema: etree.XMLSchema | None = getattr(_thread_state, "schema", None)
    if schema is None:
        global _xsd_bytes
        with _xsd_lock:
            if _xsd_bytes is None:
                _xsd_bytes = (resources.files(__package__) / XSD_RESOURCE).read_bytes()
        schema = etree.XMLSchema(etree.fromstring(_xsd_bytes, _safe_parser()))
        _thread_state.schema = schema
    return schema


def _schema_errors(root: etree._Element) -> list[str]:
    schema = _schema()
    if schema.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def validate(data: bytes) -> None:
    """Check ``data`` against the ISO 18626 v1.2 XSD.

    Raises:
        NotXml: when ``data`` is not well-formed XML (or has a DOCTYPE).
        SchemaViolation: listing every way it breaks the schema.
    """
    errors = _schema_errors(_parse_xml(data))
    if errors:
        raise SchemaViolation(errors)


# ---------------------------------------------------------------------------- build


def build(message: p.Message) -> bytes:
    """Serialise ``message`` as an ISO 18626 v1.2 document (UTF-8, with XML declaration).

    Raises:
        SchemaViolation: when the message cannot be valid v1.2: a naive datetime, a character
            XML cannot carry, a value the XSD refuses. Nothing invalid is ever returned.
        TypeError: when ``message`` is not one of the six ``ill_tui.protocol`` messages.
    """
    if isinstance(message, _CONFIRMATIONS):
        # A confirmation is built twice: for the message log, and for the HTTP answer.
        return _build_confirmation(message)
    return _build(message)


_CONFIRMATIONS = (
    p.RequestConfirmation,
    p.SupplyingAgencyMessageConfirmation,
    p.RequestingAgencyMessageConfirmation,
)


@functools.lru_cache(maxsize=256)
def _build_confirmation(message: p.Confirmation) -> bytes:
    """``build`` for a confirmation, remembered: the dataclasses are frozen, and equal
    messages make equal bytes."""
    return _build(message)


def _build(message: p.Message) -> bytes:
    builder = _BUILDERS.get(type(message))
    if builder is None:
        raise TypeError(f"{type(message).__name__} is not an ISO 18626 message dataclass.")
    # The builder describes the document (which elements, under which parent, with which
    # text); the elements come from a copy of a tree of the same shape, made once. lxml's
    # SubElement costs about 1.5 us an element (it checks each tag name it is given); a
    # copy of the whole tree costs about as much as two of them.
    recorder = _Recorder()
    builder(_Slot(recorder, -1), message)
    root, nodes = _template(type(message), tuple(recorder.shape)).copy()
    try:
        for node, text in zip(nodes, recorder.texts, strict=True):
            node.text = text
    except ValueError as error:  # lxml refuses control characters with ValueError
        raise SchemaViolation([str(error)]) from error
    errors = _schema_errors(root)
    if errors:
        raise SchemaViolation(errors)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


class _Recorder:
    """What a builder asks for, in order: each element's parent (its index, -1 for the root)
    and name, one after the other in ``shape``, and its text in ``texts``."""

    __slots__ = ("shape", "texts")

    def __init__(self) -> None:
        self.shape: list[int | str] = []
        self.texts: list[str | None] = []


class _Slot:
    """An element as the builders see it: its place in a ``_Recorder`` (-1: the root)."""

    __slots__ = ("index", "recorder")

    def __init__(self, recorder: _Recorder, index: int) -> None:
        self.recorder = recorder
        self.index = index


class _Template:
    """A document of one shape, element texts left as they come, to copy for each message."""

    __slots__ = ("positions", "root")

    def __init__(self, shape: tuple[int | str, ...]) -> None:
        root = etree.Element(_Q + "ISO18626Message", nsmap={None: NS, "ill": NS})
        root.set(_VERSION_ATTR, p.VERSION)
        made: list[etree._Element] = []
        for parent, name in zip(shape[::2], shape[1::2], strict=True):
            assert isinstance(parent, int)
            assert isinstance(name, str)
            made.append(etree.SubElement(root if parent < 0 else made[parent], _Q + name))
        # where each element of the shape is in document order, which a copy keeps
        position = {id(element): i for i, element in enumerate(root.iter())}
        self.positions = [position[id(element)] for element in made]
        self.root = root

    def copy(self) -> tuple[etree._Element, list[etree._Element]]:
        """A new document of this shape, and its elements in the order of the shape."""
        root = copy.deepcopy(self.root)
        every = list(root.iter())
        return root, [every[i] for i in self.positions]


_TEMPLATES_PER_THREAD = 512
"""Shapes kept per thread (a request's optional elements make a few dozen in practice)."""


def _template(kind: type, shape: tuple[int | str, ...]) -> _Template:
    """This thread's template for messages of ``kind`` and ``shape`` (lxml trees stay in the
    thread that made them)."""
    templates: dict[tuple[type, tuple[int | str, ...]], _Template] | None = getattr(
        _thread_state, "templates", None
    )
    if templates is None:
        templates = _thread_state.templates = {}
    template = templates.get((kind, shape))
    if template is None:
        if len(templates) >= _TEMPLATES_PER_THREAD:
            templates.clear()
        template = templates[(kind, shape)] = _Template(shape)
    return template


def _sub(parent: _Slot, name: str, text: str | None = None) -> _Slot:
    recorder = parent.recorder
    recorder.shape += (parent.index, name)
    recorder.texts.append(text)
    return _Slot(recorder, len(recorder.texts) - 1)


def _opt(parent: _Slot, name: str, text: str | None) -> None:
    if text is not None:
        _sub(parent, name, text)


def format_datetime(value: datetime) -> str:
    """Write an aware ``value`` as xs:dateTime with its offset (UTC when the offset is odd).

    Raises:
        SchemaViolation: for a naive datetime (ISO 18626 time stamps need an offset).
    """
    if value.tzinfo is UTC:  # nearly every time stamp we write: nothing to check
        return value.isoformat()
    offset = value.utcoffset()
    if offset is None:
        raise SchemaViolation([f"datetime {value.isoformat()} has no time zone"])
    # xs:dateTime offsets are whole minutes within +-14:00.
    if offset % timedelta(minutes=1) or abs(offset) > timedelta(hours=14):
        value = value.astimezone(UTC)
    return value.isoformat()


def _opt_dt(parent: _Slot, name: str, value: datetime | None) -> None:
    if value is not None:
        _sub(parent, name, format_datetime(value))


def _opt_enum(parent: _Slot, name: str, value: StrEnum | None) -> None:
    if value is not None:
        _sub(parent, name, value.value)


def _opt_int(parent: _Slot, name: str, value: int | None) -> None:
    if value is not None:
        _sub(parent, name, str(value))


def _format_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise SchemaViolation([f"amount {value} is not a finite number"])
    return format(value, "f")


def _b_agency(parent: _Slot, name: str, agency: p.AgencyId | None) -> None:
    if agency is None:
        return
    element = _sub(parent, name)
    _sub(element, "agencyIdType", agency.type)
    _sub(element, "agencyIdValue", agency.value)


def _b_costs(parent: _Slot, name: str, costs: p.Costs | None) -> None:
    if costs is None:
        return
    element = _sub(parent, name)
    _sub(element, "currencyCode", costs.currency)
    _sub(element, "monetaryValue", _format_decimal(costs.amount))


def _b_physical(parent: _Slot, address: p.PhysicalAddress) -> None:
    element = _sub(parent, "physicalAddress")
    _opt(element, "line1", address.line1)
    _opt(element, "line2", address.line2)
    _opt(element, "locality", address.locality)
    _opt(element, "postalCode", address.postal_code)
    _opt(element, "region", address.region)
    _opt(element, "country", address.country)


def _b_address(parent: _Slot, address: p.Address | None) -> None:
    if address is None:
        return
    element = _sub(parent, "address")
    if isinstance(address, p.ElectronicAddress):
        electronic = _sub(element, "electronicAddress")
        _sub(electronic, "electronicAddressType", address.type)
        _sub(electronic, "electronicAddressData", address.data)
    else:
        _b_physical(element, address)


def _b_record_id(parent: _Slot, record: p.BibliographicRecordId | None) -> None:
    if record is None:
        return
    element = _sub(parent, "bibliographicRecordId")
    _sub(element, "bibliographicRecordIdentifierCode", record.code)
    _sub(element, "bibliographicRecordIdentifier", record.value)


def _b_header(parent: _Slot, header: p.Header) -> None:
    element = _sub(parent, "header")
    _b_agency(element, "supplyingAgencyId", header.supplying_agency_id)
    _b_agency(element, "requestingAgencyId", header.requesting_agency_id)
    _sub(element, "multipleItemRequestId", header.multiple_item_request_id)
    _sub(element, "timestamp", format_datetime(header.timestamp))
    _sub(element, "requestingAgencyRequestId", header.requesting_agency_request_id)
    _opt(element, "supplyingAgencyRequestId", header.supplying_agency_request_id)
    auth = header.requesting_agency_authentication
    if auth is not None:
        auth_element = _sub(element, "requestingAgencyAuthentication")
        _opt(auth_element, "accountId", auth.account_id)
        _opt(auth_element, "securityCode", auth.security_code)


def _b_confirmation_header(parent: _Slot, header: p.ConfirmationHeader) -> None:
    element = _sub(parent, "confirmationHeader")
    _b_agency(element, "supplyingAgencyId", header.supplying_agency_id)
    _b_agency(element, "requestingAgencyId", header.requesting_agency_id)
    _sub(element, "timestamp", format_datetime(header.timestamp))
    _opt(element, "requestingAgencyRequestId", header.requesting_agency_request_id)
    _opt(element, "multipleItemRequestId", header.multiple_item_request_id)
    _sub(element, "timestampReceived", format_datetime(header.timestamp_received))
    _sub(element, "messageStatus", header.message_status.value)


def _b_error(parent: _Slot, error: p.ErrorData | None) -> None:
    if error is None:
        return
    element = _sub(parent, "errorData")
    _sub(element, "errorType", error.error_type.value)
    _opt(element, "errorValue", error.error_value)


def _b_request(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.IllRequest)
    element = _sub(root, "request")
    _b_header(element, message.header)

    bib = message.bibliographic_info
    bib_element = _sub(element, "bibliographicInfo")
    _opt(bib_element, "supplierUniqueRecordId", bib.supplier_unique_record_id)
    _opt(bib_element, "title", bib.title)
    _opt(bib_element, "author", bib.author)
    _opt(bib_element, "subtitle", bib.subtitle)
    _opt(bib_element, "seriesTitle", bib.series_title)
    _opt(bib_element, "edition", bib.edition)
    _opt(bib_element, "titleOfComponent", bib.title_of_component)
    _opt(bib_element, "authorOfComponent", bib.author_of_component)
    _opt(bib_element, "volume", bib.volume)
    _opt(bib_element, "issue", bib.issue)
    _opt(bib_element, "pagesRequested", bib.pages_requested)
    _opt(bib_element, "estimatedNoPages", bib.estimated_no_pages)
    for item in bib.bibliographic_item_ids:
        item_element = _sub(bib_element, "bibliographicItemId")
        _sub(item_element, "bibliographicItemIdentifier", item.value)
        _sub(item_element, "bibliographicItemIdentifierCode", item.code)
    _opt(bib_element, "sponsor", bib.sponsor)
    _opt(bib_element, "informationSource", bib.information_source)
    for record in bib.bibliographic_record_ids:
        _b_record_id(bib_element, record)

    pub = message.publication_info
    if pub is not None:
        pub_element = _sub(element, "publicationInfo")
        _opt(pub_element, "publisher", pub.publisher)
        _opt(pub_element, "publicationType", pub.publication_type)
        _opt(pub_element, "publicationDate", pub.publication_date)
        _opt(pub_element, "placeOfPublication", pub.place_of_publication)

    service = message.service_info
    if service is not None:
        s = _sub(element, "serviceInfo")
        _opt_enum(s, "requestType", service.request_type)
        for sub_type in service.request_sub_types:
            _sub(s, "requestSubType", sub_type.value)
        _opt(s, "requestingAgencyPreviousRequestId", service.requesting_agency_previous_request_id)
        _sub(s, "serviceType", service.service_type.value)
        _opt(s, "serviceLevel", service.service_level)
        _opt(s, "preferredFormat", service.preferred_format)
        _opt_dt(s, "needBeforeDate", service.need_before_date)
        _opt(s, "copyrightCompliance", service.copyright_compliance)
        _opt_enum(s, "anyEdition", service.any_edition)
        _opt_dt(s, "startDate", service.start_date)
        _opt_dt(s, "endDate", service.end_date)
        _opt(s, "note", service.note)

    for supplier in message.supplier_info:
        s = _sub(element, "supplierInfo")
        _opt_int(s, "sortOrder", supplier.sort_order)
        _b_agency(s, "supplierCode", supplier.supplier_code)
        _opt(s, "supplierDescription", supplier.supplier_description)
        _b_record_id(s, supplier.bibliographic_record_id)
        _opt(s, "callNumber", supplier.call_number)
        _opt(s, "summaryHoldings", supplier.summary_holdings)
        _opt(s, "availabilityNote", supplier.availability_note)

    for delivery in message.requested_delivery_info:
        d = _sub(element, "requestedDeliveryInfo")
        _opt_int(d, "sortOrder", delivery.sort_order)
        _b_address(d, delivery.address)

    agency = message.requesting_agency_info
    if agency is not None:
        a = _sub(element, "requestingAgencyInfo")
        _opt(a, "name", agency.name)
        _opt(a, "contactName", agency.contact_name)
        for address in agency.addresses:
            _b_address(a, address)

    patron = message.patron_info
    if patron is not None:
        pa = _sub(element, "patronInfo")
        _opt(pa, "patronId", patron.patron_id)
        _opt(pa, "surname", patron.surname)
        _opt(pa, "givenName", patron.given_name)
        _opt(pa, "patronType", patron.patron_type)
        _opt_enum(pa, "sendToPatron", patron.send_to_patron)
        for address in patron.addresses:
            _b_address(pa, address)

    billing = message.billing_info
    if billing is not None:
        b = _sub(element, "billingInfo")
        _opt(b, "paymentMethod", billing.payment_method)
        _b_costs(b, "maximumCosts", billing.maximum_costs)
        _opt(b, "billingMethod", billing.billing_method)
        _opt(b, "billingName", billing.billing_name)
        _b_address(b, billing.address)


def _b_supplying(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.SupplyingAgencyMessage)
    element = _sub(root, "supplyingAgencyMessage")
    _b_header(element, message.header)

    info = message.message_info
    m = _sub(element, "messageInfo")
    _sub(m, "reasonForMessage", info.reason_for_message.value)
    _opt_enum(m, "answerYesNo", info.answer_yes_no)
    _opt(m, "note", info.note)
    _opt(m, "reasonUnfilled", info.reason_unfilled)
    _opt(m, "reasonRetry", info.reason_retry)
    _b_costs(m, "offeredCosts", info.offered_costs)
    _opt_dt(m, "retryAfter", info.retry_after)
    _opt_dt(m, "retryBefore", info.retry_before)

    status = message.status_info
    s = _sub(element, "statusInfo")
    _sub(s, "status", status.status.value)
    _opt_dt(s, "expectedDeliveryDate", status.expected_delivery_date)
    _opt_dt(s, "dueDate", status.due_date)
    _sub(s, "lastChange", format_datetime(status.last_change))

    delivery = message.delivery_info
    if delivery is not None:
        d = _sub(element, "deliveryInfo")
        _sub(d, "dateSent", format_datetime(delivery.date_sent))
        _opt(d, "itemId", delivery.item_id)
        _opt(d, "sentVia", delivery.sent_via)
        if delivery.sent_to_patron is not None:
            _sub(d, "sentToPatron", "true" if delivery.sent_to_patron else "false")
        _opt(d, "loanCondition", delivery.loan_condition)
        _opt(d, "deliveredFormat", delivery.delivered_format)
        _b_costs(d, "deliveryCosts", delivery.delivery_costs)

    ret = message.return_info
    if ret is not None:
        r = _sub(element, "returnInfo")
        _b_agency(r, "returnAgencyId", ret.return_agency_id)
        _opt(r, "name", ret.name)
        if ret.physical_address is not None:
            _b_physical(r, ret.physical_address)


def _b_requesting(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.RequestingAgencyMessage)
    element = _sub(root, "requestingAgencyMessage")
    _b_header(element, message.header)
    _sub(element, "action", message.action.value)
    _opt(element, "note", message.note)


def _b_request_confirmation(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.RequestConfirmation)
    element = _sub(root, "requestConfirmation")
    _b_confirmation_header(element, message.header)
    _b_error(element, message.error_data)


def _b_supplying_confirmation(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.SupplyingAgencyMessageConfirmation)
    element = _sub(root, "supplyingAgencyMessageConfirmation")
    _b_confirmation_header(element, message.header)
    _opt_enum(element, "reasonForMessage", message.reason_for_message)
    _b_error(element, message.error_data)


def _b_requesting_confirmation(root: _Slot, message: p.Message) -> None:
    assert isinstance(message, p.RequestingAgencyMessageConfirmation)
    element = _sub(root, "requestingAgencyMessageConfirmation")
    _b_confirmation_header(element, message.header)
    _opt_enum(element, "action", message.action)
    _b_error(element, message.error_data)


_BUILDERS: dict[type, Callable[[_Slot, p.Message], None]] = {
    p.IllRequest: _b_request,
    p.SupplyingAgencyMessage: _b_supplying,
    p.RequestingAgencyMessage: _b_requesting,
    p.RequestConfirmation: _b_request_confirmation,
    p.SupplyingAgencyMessageConfirmation: _b_supplying_confirmation,
    p.RequestingAgencyMessageConfirmation: _b_requesting_confirmation,
}


# ---------------------------------------------------------------------------- parse: XML layer


def _safe_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _reading_parser() -> etree.XMLParser:
    """This thread's safe parser for messages (made once per thread, reused)."""
    parser: etree.XMLParser | None = getattr(_thread_state, "parser", None)
    if parser is None:
        parser = _thread_state.parser = _safe_parser()
    return parser


def _parse_xml(data: bytes) -> etree._Element:
    # Refuse a DOCTYPE before libxml2 reads it (cheap, covers ASCII-compatible encodings) ...
    # Markup cannot appear unescaped in text, so only a CDATA section or a comment quoting
    # "<!DOCTYPE" would be refused wrongly here; no ISO 18626 peer sends either. Most messages
    # have no "!" at all, which one memchr tells.
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise UnsafeXml("A DOCTYPE or entity declaration is not allowed in an ISO 18626 message.")
    try:
        root = etree.fromstring(data, _reading_parser())
    except etree.XMLSyntaxError as error:
        raise NotXml(f"Not well-formed XML: {error}") from error
    except ValueError as error:  # e.g. a str with an encoding declaration
        raise NotXml(f"Not XML: {error}") from error
    if root is None:
        raise NotXml("Empty document.")
    # ... and after it, for encodings the byte check cannot see (UTF-16 and friends).
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("A DOCTYPE is not allowed in an ISO 18626 message.")
    return root


# ---------------------------------------------------------------------------- parse: messages


_DATETIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"T(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)


# Bounded: \d also matches non-ASCII digits, so a partner could send endless distinct offsets.
@functools.lru_cache(maxsize=128)
def _zone(digits: str) -> timezone | None:
    """The time zone of a ``+HHMM`` or ``-HHMM`` offset; ``None`` beyond +-14:00 or past :59."""
    minutes = int(digits[1:3]) * 60 + int(digits[3:5])
    if minutes > 14 * 60 or int(digits[3:5]) > 59:
        return None
    offset = timedelta(minutes=-minutes if digits[0] == "-" else minutes)
    return UTC if not offset else timezone(offset)


@functools.cache
def _members(enum: type[_E]) -> dict[str, _E]:
    """``enum``'s members by value: what ``enum(text)`` finds, without its ValueError."""
    return {member.value: member for member in enum}


_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"[+-]?\d+")


def _known(*names: str) -> dict[object, str]:
    """The ISO 18626 child elements an element may have, by qualified tag: ``{ns}name -> name``.

    Keyed by ``object``: any child's tag may be looked up (a comment's is a function). The
    tables are made once, below the reader (``_HEADER_PARTS`` and the others).
    """
    return {_Q + name: name for name in names}


class _Children:
    """The known child elements of one element by local name (unknown ones were reported).

    ``first`` holds the first element of each name; ``repeats`` every element of a name that
    came more than once (``None`` when none did, the common case).
    """

    __slots__ = ("first", "path", "repeats")

    def __init__(
        self,
        first: dict[str, etree._Element],
        repeats: dict[str, list[etree._Element]] | None,
        path: str,
    ) -> None:
        self.first = first
        self.repeats = repeats
        self.path = path


class _Reader:
    """Reads one message, collecting warnings; fails with ``InvalidMessage`` for its kind."""

    def __init__(self, kind: p.MessageKind, *, require_request_id: bool = True) -> None:
        self.kind = kind
        self.require_request_id = require_request_id
        self.header: p.Header | None = None
        self.reason_for_message: p.ReasonForMessage | None = None
        self.action: p.Action | None = None
        self.warnings: list[str] = []
        self.schemes: list[str] = []

    # -- failing and warning

    def fail(self, error_type: p.ErrorType, value: str) -> NoReturn:
        raise InvalidMessage(
            error_type,
            value,
            kind=self.kind,
            header=self.header,
            reason_for_message=self.reason_for_message,
            action=self.action,
            warnings=self.warnings,
        )

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    # -- structure

    def children(self, element: etree._Element, path: str, known: dict[object, str]) -> _Children:
        first: dict[str, etree._Element] = {}
        repeats: dict[str, list[etree._Element]] | None = None
        # element[:] makes every child's proxy in one call, cheaper than lxml's iterator.
        for child in element[:]:
            # One dict look-up per child: this loop runs for every element of a message.
            name = known.get(child.tag)
            if name is None:
                # comments and processing instructions are removed; be sure
                if isinstance(child.tag, str):
                    self.warn(f"unknown element {path}/{etree.QName(child).text} ignored")
            elif name not in first:
                first[name] = child
            elif repeats is None:
                repeats = {name: [first[name], child]}
            elif name in repeats:
                repeats[name].append(child)
            else:
                repeats[name] = [first[name], child]
        return _Children(first, repeats, path)

    def one(self, kids: _Children, name: str) -> etree._Element | None:
        # ``text``, ``need`` and ``need_text`` look names up in ``first`` themselves when
        # nothing repeats.
        element = kids.first.get(name)
        if element is not None and kids.repeats is not None and name in kids.repeats:
            times = len(kids.repeats[name])
            self.warn(f"{kids.path}/{name} repeated {times} times; the first one is used")
        return element

    def need(self, kids: _Children, name: str) -> etree._Element:
        element = kids.first.get(name) if kids.repeats is None else self.one(kids, name)
        if element is None:
            self.fail(p.ErrorType.BADLY_FORMED_MESSAGE, f"{kids.path}/{name}: missing")
        return element

    def many(self, kids: _Children, name: str) -> Sequence[etree._Element]:
        if kids.repeats is not None and name in kids.repeats:
            return kids.repeats[name]
        element = kids.first.get(name)
        return () if element is None else (element,)

    # -- values

    def value(self, element: etree._Element, path: str) -> str:
        if element.keys() or len(element):
            self.overlook(element, path)
        return element.text or ""

    def overlook(self, element: etree._Element, path: str) -> None:
        """Report what a text element should not have: attributes, child elements."""
        for attribute, scheme in element.items():
            if etree.QName(attribute).localname == "scheme":
                if scheme:
                    self.schemes.append(f"{path}={scheme}")
            else:
                self.warn(f"unknown attribute {attribute} on {path} ignored")
        if len(element):
            self.warn(f"{path} should hold text only; its child elements are ignored")

    def text(self, kids: _Children, name: str) -> str | None:
        element = kids.first.get(name) if kids.repeats is None else self.one(kids, name)
        if element is None:
            return None
        if element.keys() or len(element):  # rare: the path is made only for the report
            self.overlook(element, f"{kids.path}/{name}")
        return element.text or ""

    def need_text(self, kids: _Children, name: str) -> str:
        element = kids.first.get(name) if kids.repeats is None else None
        if element is None:  # missing (``need`` fails) or repeated (``need`` warns)
            element = self.need(kids, name)
        if element.keys() or len(element):
            self.overlook(element, f"{kids.path}/{name}")
        return element.text or ""

    def datetime_value(self, raw: str, path: str) -> datetime:
        text = raw.strip()
        match = _DATETIME.fullmatch(text)
        if match is None:
            self.fail(p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: not a date-time: {raw!r}")
        year, month, day, hour, minute, second, fraction, tz_text = match.groups()
        if tz_text is None:
            self.warn(f"{path}: {text!r} has no time zone; taken as UTC")
            tz: timezone = UTC
        elif tz_text == "Z":
            tz = UTC
        else:
            if ":" not in tz_text:
                self.warn(f"{path}: offset {tz_text!r} read as {tz_text[:3]}:{tz_text[3:]}")
            zone = _zone(tz_text.replace(":", ""))
            if zone is None:
                self.fail(p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: bad offset: {raw!r}")
            tz = zone
        if tz_text is not None and hour != "24" and text.isascii():
            # The usual shape in one C call, which cuts digits past microseconds too; what it
            # refuses is read below, which has the words for the error.
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                pass
        # Python keeps microseconds; crosslink sends nanoseconds, which are cut, not rounded,
        # so the same text always gives the same instant.
        micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
        end_of_day = hour == "24"  # xs:dateTime allows 24:00:00, the next midnight
        try:
            if end_of_day and (minute, second, micro) != ("00", "00", 0):
                raise ValueError("hour 24 is only allowed as 24:00:00")
            value = datetime(
                int(year),
                int(month),
                int(day),
                0 if end_of_day else int(hour),
                int(minute),
                int(second),
                micro,
                tzinfo=tz,
            )
            if end_of_day:
                value += timedelta(days=1)
        except (ValueError, OverflowError) as error:
            self.fail(p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: {error}: {raw!r}")
        return value

    def dt(self, kids: _Children, name: str) -> datetime | None:
        raw = self.text(kids, name) if name in kids.first else None  # absent: no call
        if raw is None:
            return None
        if not raw.strip():
            self.warn(f"{kids.path}/{name} is empty; taken as absent")
            return None
        return self.datetime_value(raw, f"{kids.path}/{name}")

    def need_dt(self, kids: _Children, name: str) -> datetime:
        return self.datetime_value(self.need_text(kids, name), f"{kids.path}/{name}")

    def enum_value(
        self,
        enum: type[_E],
        raw: str,
        path: str,
        error_type: p.ErrorType = p.ErrorType.UNRECOGNISED_DATA_VALUE,
        label: str | None = None,
    ) -> _E:
        text = raw.strip()
        members: dict[str, _E] = _members(enum)  # (functools.cache loses the type)
        member = members.get(text)
        if member is not None:
            return member
        for member in enum:
            if member.value.lower() == text.lower():
                self.warn(f"{path}: {raw!r} read as {member.value!r}")
                return member
        name = label or path.rsplit("/", 1)[-1]
        self.fail(error_type, f"invalid {name}: {text}")

    def enum(
        self,
        kids: _Children,
        name: str,
        enum: type[_E],
        error_type: p.ErrorType = p.ErrorType.UNRECOGNISED_DATA_VALUE,
        label: str | None = None,
    ) -> _E | None:
        raw = self.text(kids, name) if name in kids.first else None  # absent: no call
        if raw is None:
            return None
        if not raw.strip():
            self.warn(f"{kids.path}/{name} is empty; taken as absent")
            return None
        return self.enum_value(enum, raw, f"{kids.path}/{name}", error_type, label)

    def need_enum(
        self,
        kids: _Children,
        name: str,
        enum: type[_E],
        error_type: p.ErrorType = p.ErrorType.UNRECOGNISED_DATA_VALUE,
        label: str | None = None,
    ) -> _E:
        raw = self.need_text(kids, name)
        return self.enum_value(enum, raw, f"{kids.path}/{name}", error_type, label)

    def integer(self, kids: _Children, name: str) -> int | None:
        raw = self.text(kids, name) if name in kids.first else None  # absent: no call
        if raw is None:
            return None
        text = raw.strip()
        if not text:
            self.warn(f"{kids.path}/{name} is empty; taken as absent")
            return None
        if not _INTEGER.fullmatch(text):
            self.fail(
                p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{kids.path}/{name}: not an integer: {raw!r}"
            )
        return int(text)

    def boolean(self, kids: _Children, name: str) -> bool | None:
        raw = self.text(kids, name) if name in kids.first else None  # absent: no call
        if raw is None:
            return None
        text = raw.strip()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        lowered = text.lower()
        if lowered in ("true", "y", "yes"):
            self.warn(f"{kids.path}/{name}: {raw!r} read as true")
            return True
        if lowered in ("false", "n", "no"):
            self.warn(f"{kids.path}/{name}: {raw!r} read as false")
            return False
        if not text:
            self.warn(f"{kids.path}/{name} is empty; taken as absent")
            return None
        self.fail(
            p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{kids.path}/{name}: not a boolean: {raw!r}"
        )

    # -- parts

    def agency(self, element: etree._Element | None, path: str) -> p.AgencyId | None:
        if element is None:
            return None
        kids = self.children(element, path, _AGENCY_ID_PARTS)
        return p.AgencyId(
            type=self.need_text(kids, "agencyIdType"), value=self.need_text(kids, "agencyIdValue")
        )

    def need_agency(self, kids: _Children, name: str) -> p.AgencyId:
        agency = self.agency(self.need(kids, name), f"{kids.path}/{name}")
        assert agency is not None
        return agency

    def costs(self, kids: _Children, name: str) -> p.Costs | None:
        element = self.one(kids, name)
        if element is None:
            return None
        path = f"{kids.path}/{name}"
        if not len(element) and not (element.text or "").strip():
            self.warn(f"{path} is empty; taken as absent")
            return None
        costs = self.children(element, path, _COSTS_PARTS)
        raw = self.need_text(costs, "monetaryValue")
        text = raw.strip()
        if not _DECIMAL.fullmatch(text):
            self.fail(p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: not an amount: {raw!r}")
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            self.fail(p.ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: not an amount: {raw!r}")
        return p.Costs(amount=amount, currency=self.need_text(costs, "currencyCode"))

    def physical(self, element: etree._Element, path: str) -> p.PhysicalAddress:
        kids = self.children(element, path, _PHYSICAL_ADDRESS_PARTS)
        return p.PhysicalAddress(
            line1=self.text(kids, "line1"),
            line2=self.text(kids, "line2"),
            locality=self.text(kids, "locality"),
            postal_code=self.text(kids, "postalCode"),
            region=self.text(kids, "region"),
            country=self.text(kids, "country"),
        )

    def address(self, element: etree._Element, path: str) -> p.Address | None:
        kids = self.children(element, path, _ADDRESS_PARTS)
        electronic = self.one(kids, "electronicAddress")
        physical = self.one(kids, "physicalAddress")
        if electronic is not None:
            if physical is not None:
                self.warn(f"{path} has both address kinds; the electronic one is used")
            epath = f"{path}/electronicAddress"
            e = self.children(electronic, epath, _ELECTRONIC_ADDRESS_PARTS)
            return p.ElectronicAddress(
                type=self.need_text(e, "electronicAddressType"),
                data=self.need_text(e, "electronicAddressData"),
            )
        if physical is not None:
            return self.physical(physical, f"{path}/physicalAddress")
        self.warn(f"{path} is empty; taken as absent")
        return None

    def addresses(self, kids: _Children) -> tuple[p.Address, ...]:
        found = (self.address(e, f"{kids.path}/address") for e in self.many(kids, "address"))
        return tuple(a for a in found if a is not None)

    def record_id(self, element: etree._Element, path: str) -> p.BibliographicRecordId:
        kids = self.children(element, path, _RECORD_ID_PARTS)
        return p.BibliographicRecordId(
            code=self.need_text(kids, "bibliographicRecordIdentifierCode"),
            value=self.need_text(kids, "bibliographicRecordIdentifier"),
        )

    def read_header(self, element: etree._Element, path: str) -> p.Header:
        kids = self.children(element, path, _HEADER_PARTS)
        auth_element = self.one(kids, "requestingAgencyAuthentication")
        auth = None
        if auth_element is not None:
            a = self.children(
                auth_element, f"{path}/requestingAgencyAuthentication", _AUTHENTICATION_PARTS
            )
            auth = p.Authentication(
                account_id=self.text(a, "accountId"), security_code=self.text(a, "securityCode")
            )
        multiple = self.text(kids, "multipleItemRequestId")
        request_id = self.text(kids, "requestingAgencyRequestId")
        header = p.Header(
            supplying_agency_id=self.need_agency(kids, "supplyingAgencyId"),
            requesting_agency_id=self.need_agency(kids, "requestingAgencyId"),
            multiple_item_request_id=multiple or "",  # mandatory in v1.2, optional elsewhere
            timestamp=self.need_dt(kids, "timestamp"),
            requesting_agency_request_id=request_id or "",
            supplying_agency_request_id=self.text(kids, "supplyingAgencyRequestId"),
            requesting_agency_authentication=auth,
        )
        self.header = header
        # After self.header is set, so the ERROR confirmation can still echo the agency ids.
        if self.require_request_id and not (request_id or "").strip():
            self.fail(
                p.ErrorType.UNRECOGNISED_DATA_VALUE, "requestingAgencyRequestId: cannot be empty"
            )
        return header

    def read_confirmation_header(self, element: etree._Element, path: str) -> p.ConfirmationHeader:
        kids = self.children(element, path, _CONFIRMATION_HEADER_PARTS)
        return p.ConfirmationHeader(
            supplying_agency_id=self.agency(
                self.one(kids, "supplyingAgencyId"), f"{path}/supplyingAgencyId"
            ),
            requesting_agency_id=self.agency(
                self.one(kids, "requestingAgencyId"), f"{path}/requestingAgencyId"
            ),
            timestamp=self.need_dt(kids, "timestamp"),
            requesting_agency_request_id=self.text(kids, "requestingAgencyRequestId"),
            multiple_item_request_id=self.text(kids, "multipleItemRequestId"),
            timestamp_received=self.need_dt(kids, "timestampReceived"),
            message_status=self.need_enum(kids, "messageStatus", p.MessageStatus),
        )

    def read_error(self, kids: _Children) -> p.ErrorData | None:
        element = self.one(kids, "errorData")
        if element is None:
            return None
        e = self.children(element, f"{kids.path}/errorData", _ERROR_DATA_PARTS)
        return p.ErrorData(
            error_type=self.need_enum(e, "errorType", p.ErrorType),
            error_value=self.text(e, "errorValue"),
        )

    # -- the six messages

    def request(self, element: etree._Element) -> p.IllRequest:
        path = "request"
        kids = self.children(element, path, _REQUEST_PARTS)
        header = self.read_header(self.need(kids, "header"), f"{path}/header")
        return p.IllRequest(
            header=header,
            bibliographic_info=self.bibliographic(self.need(kids, "bibliographicInfo")),
            publication_info=self.publication(self.one(kids, "publicationInfo")),
            service_info=self.service(self.one(kids, "serviceInfo")),
            supplier_info=tuple(map(self.supplier, self.many(kids, "supplierInfo"))),
            requested_delivery_info=tuple(
                map(self.delivery_wanted, self.many(kids, "requestedDeliveryInfo"))
            ),
            requesting_agency_info=self.requesting_agency(self.one(kids, "requestingAgencyInfo")),
            patron_info=self.patron(self.one(kids, "patronInfo")),
            billing_info=self.billing(self.one(kids, "billingInfo")),
        )

    def bibliographic(self, element: etree._Element) -> p.BibliographicInfo:
        path = "request/bibliographicInfo"
        kids = self.children(element, path, _BIB_PARTS)
        # Only the strings present: the others keep the dataclass's default, None.
        strings = {
            field: self.text(kids, name) for name, field in _BIB_FIELDS if name in kids.first
        }
        items = []
        for item in self.many(kids, "bibliographicItemId"):
            i = self.children(item, f"{path}/bibliographicItemId", _ITEM_ID_PARTS)
            items.append(
                p.BibliographicItemId(
                    code=self.need_text(i, "bibliographicItemIdentifierCode"),
                    value=self.need_text(i, "bibliographicItemIdentifier"),
                )
            )
        records = tuple(
            self.record_id(e, f"{path}/bibliographicRecordId")
            for e in self.many(kids, "bibliographicRecordId")
        )
        return p.BibliographicInfo(
            **strings, bibliographic_item_ids=tuple(items), bibliographic_record_ids=records
        )

    def publication(self, element: etree._Element | None) -> p.PublicationInfo | None:
        if element is None:
            return None
        kids = self.children(element, "request/publicationInfo", _PUBLICATION_PARTS)
        # Only the strings present, as in ``bibliographic``.
        strings = {
            field: self.text(kids, name)
            for name, field in _PUBLICATION_FIELDS
            if name in kids.first
        }
        return p.PublicationInfo(**strings)

    def service(self, element: etree._Element | None) -> p.ServiceInfo | None:
        if element is None:
            return None
        kids = self.children(element, "request/serviceInfo", _SERVICE_INFO_PARTS)
        sub_types = tuple(
            self.enum_value(
                p.RequestSubType,
                self.value(e, "request/serviceInfo/requestSubType"),
                "request/serviceInfo/requestSubType",
            )
            for e in self.many(kids, "requestSubType")
        )
        return p.ServiceInfo(
            request_type=self.enum(kids, "requestType", p.RequestType),
            request_sub_types=sub_types,
            requesting_agency_previous_request_id=self.text(
                kids, "requestingAgencyPreviousRequestId"
            ),
            service_type=self.need_enum(kids, "serviceType", p.ServiceType),
            service_level=self.text(kids, "serviceLevel"),
            preferred_format=self.text(kids, "preferredFormat"),
            need_before_date=self.dt(kids, "needBeforeDate"),
            copyright_compliance=self.text(kids, "copyrightCompliance"),
            any_edition=self.enum(kids, "anyEdition", p.YesNo),
            start_date=self.dt(kids, "startDate"),
            end_date=self.dt(kids, "endDate"),
            note=self.text(kids, "note"),
        )

    def supplier(self, element: etree._Element) -> p.SupplierInfo:
        path = "request/supplierInfo"
        kids = self.children(element, path, _SUPPLIER_INFO_PARTS)
        record = self.one(kids, "bibliographicRecordId")
        return p.SupplierInfo(
            sort_order=self.integer(kids, "sortOrder"),
            supplier_code=self.agency(self.one(kids, "supplierCode"), f"{path}/supplierCode"),
            supplier_description=self.text(kids, "supplierDescription"),
            bibliographic_record_id=(
                None if record is None else self.record_id(record, f"{path}/bibliographicRecordId")
            ),
            call_number=self.text(kids, "callNumber"),
            summary_holdings=self.text(kids, "summaryHoldings"),
            availability_note=self.text(kids, "availabilityNote"),
        )

    def delivery_wanted(self, element: etree._Element) -> p.RequestedDeliveryInfo:
        path = "request/requestedDeliveryInfo"
        kids = self.children(element, path, _REQUESTED_DELIVERY_INFO_PARTS)
        address = self.one(kids, "address")
        return p.RequestedDeliveryInfo(
            sort_order=self.integer(kids, "sortOrder"),
            address=None if address is None else self.address(address, f"{path}/address"),
        )

    def requesting_agency(self, element: etree._Element | None) -> p.RequestingAgencyInfo | None:
        if element is None:
            return None
        kids = self.children(element, "request/requestingAgencyInfo", _REQUESTING_AGENCY_INFO_PARTS)
        return p.RequestingAgencyInfo(
            name=self.text(kids, "name"),
            contact_name=self.text(kids, "contactName"),
            addresses=self.addresses(kids),
        )

    def patron(self, element: etree._Element | None) -> p.PatronInfo | None:
        if element is None:
            return None
        kids = self.children(element, "request/patronInfo", _PATRON_INFO_PARTS)
        return p.PatronInfo(
            patron_id=self.text(kids, "patronId"),
            surname=self.text(kids, "surname"),
            given_name=self.text(kids, "givenName"),
            patron_type=self.text(kids, "patronType"),
            send_to_patron=self.enum(kids, "sendToPatron", p.YesNo),
            addresses=self.addresses(kids),
        )

    def billing(self, element: etree._Element | None) -> p.BillingInfo | None:
        if element is None:
            return None
        path = "request/billingInfo"
        kids = self.children(element, path, _BILLING_INFO_PARTS)
        address = self.one(kids, "address")
        return p.BillingInfo(
            payment_method=self.text(kids, "paymentMethod"),
            maximum_costs=self.costs(kids, "maximumCosts"),
            billing_method=self.text(kids, "billingMethod"),
            billing_name=self.text(kids, "billingName"),
            address=None if address is None else self.address(address, f"{path}/address"),
        )

    def supplying(self, element: etree._Element) -> p.SupplyingAgencyMessage:
        path = "supplyingAgencyMessage"
        kids = self.children(element, path, _SUPPLYING_AGENCY_MESSAGE_PARTS)
        header = self.read_header(self.need(kids, "header"), f"{path}/header")
        m = self.children(
            self.need(kids, "messageInfo"), f"{path}/messageInfo", _MESSAGE_INFO_PARTS
        )
        reason = self.need_enum(
            m,
            "reasonForMessage",
            p.ReasonForMessage,
            p.ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE,
            "reason",
        )
        self.reason_for_message = reason
        message_info = p.MessageInfo(
            reason_for_message=reason,
            answer_yes_no=self.enum(m, "answerYesNo", p.YesNo),
            note=self.text(m, "note"),
            reason_unfilled=self.text(m, "reasonUnfilled"),
            reason_retry=self.text(m, "reasonRetry"),
            offered_costs=self.costs(m, "offeredCosts"),
            retry_after=self.dt(m, "retryAfter"),
            retry_before=self.dt(m, "retryBefore"),
        )
        s = self.children(self.need(kids, "statusInfo"), f"{path}/statusInfo", _STATUS_INFO_PARTS)
        status_info = p.StatusInfo(
            status=self.need_enum(s, "status", p.Status, label="status"),
            expected_delivery_date=self.dt(s, "expectedDeliveryDate"),
            due_date=self.dt(s, "dueDate"),
            last_change=self.need_dt(s, "lastChange"),
        )
        return p.SupplyingAgencyMessage(
            header=header,
            message_info=message_info,
            status_info=status_info,
            delivery_info=self.delivery(self.one(kids, "deliveryInfo")),
            return_info=self.return_info(self.one(kids, "returnInfo")),
        )

    def delivery(self, element: etree._Element | None) -> p.DeliveryInfo | None:
        if element is None:
            return None
        kids = self.children(element, "supplyingAgencyMessage/deliveryInfo", _DELIVERY_INFO_PARTS)
        return p.DeliveryInfo(
            date_sent=self.need_dt(kids, "dateSent"),
            item_id=self.text(kids, "itemId"),
            sent_via=self.text(kids, "sentVia"),
            sent_to_patron=self.boolean(kids, "sentToPatron"),
            loan_condition=self.text(kids, "loanCondition"),
            delivered_format=self.text(kids, "deliveredFormat"),
            delivery_costs=self.costs(kids, "deliveryCosts"),
        )

    def return_info(self, element: etree._Element | None) -> p.ReturnInfo | None:
        if element is None:
            return None
        path = "supplyingAgencyMessage/returnInfo"
        kids = self.children(element, path, _RETURN_INFO_PARTS)
        physical = self.one(kids, "physicalAddress")
        return p.ReturnInfo(
            return_agency_id=self.agency(
                self.one(kids, "returnAgencyId"), f"{path}/returnAgencyId"
            ),
            name=self.text(kids, "name"),
            physical_address=(
                None if physical is None else self.physical(physical, f"{path}/physicalAddress")
            ),
        )

    def requesting(self, element: etree._Element) -> p.RequestingAgencyMessage:
        path = "requestingAgencyMessage"
        kids = self.children(element, path, _REQUESTING_AGENCY_MESSAGE_PARTS)
        header = self.read_header(self.need(kids, "header"), f"{path}/header")
        action = self.need_enum(
            kids, "action", p.Action, p.ErrorType.UNSUPPORTED_ACTION_TYPE, "action"
        )
        self.action = action
        return p.RequestingAgencyMessage(header=header, action=action, note=self.text(kids, "note"))

    def request_confirmation(self, element: etree._Element) -> p.RequestConfirmation:
        path = "requestConfirmation"
        kids = self.children(element, path, _REQUEST_CONFIRMATION_PARTS)
        return p.RequestConfirmation(
            header=self.read_confirmation_header(
                self.need(kids, "confirmationHeader"), f"{path}/confirmationHeader"
            ),
            error_data=self.read_error(kids),
        )

    def supplying_confirmation(
        self, element: etree._Element
    ) -> p.SupplyingAgencyMessageConfirmation:
        path = "supplyingAgencyMessageConfirmation"
        kids = self.children(element, path, _SUPPLYING_CONFIRMATION_PARTS)
        return p.SupplyingAgencyMessageConfirmation(
            header=self.read_confirmation_header(
                self.need(kids, "confirmationHeader"), f"{path}/confirmationHeader"
            ),
            reason_for_message=self.enum(
                kids,
                "reasonForMessage",
                p.ReasonForMessage,
                p.ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE,
                "reason",
            ),
            error_data=self.read_error(kids),
        )

    def requesting_confirmation(
        self, element: etree._Element
    ) -> p.RequestingAgencyMessageConfirmation:
        path = "requestingAgencyMessageConfirmation"
        kids = self.children(element, path, _REQUESTING_CONFIRMATION_PARTS)
        return p.RequestingAgencyMessageConfirmation(
            header=self.read_confirmation_header(
                self.need(kids, "confirmationHeader"), f"{path}/confirmationHeader"
            ),
            action=self.enum(
                kids, "action", p.Action, p.ErrorType.UNSUPPORTED_ACTION_TYPE, "action"
            ),
            error_data=self.read_error(kids),
        )


_BIB_STRINGS = (
    "supplierUniqueRecordId",
    "title",
    "author",
    "subtitle",
    "seriesTitle",
    "edition",
    "titleOfComponent",
    "authorOfComponent",
    "volume",
    "issue",
    "pagesRequested",
    "estimatedNoPages",
    "sponsor",
    "informationSource",
)
_BIB_REPEATED = ("bibliographicItemId", "bibliographicRecordId")


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_BIB_FIELDS = tuple((name, _snake(name)) for name in _BIB_STRINGS)
_PUBLICATION_STRINGS = ("publisher", "publicationType", "publicationDate", "placeOfPublication")
_PUBLICATION_FIELDS = tuple((name, _snake(name)) for name in _PUBLICATION_STRINGS)


# The child elements each element may have (XSD v1.2), by qualified tag; see _Reader.children.
_AGENCY_ID_PARTS = _known("agencyIdType", "agencyIdValue")
_COSTS_PARTS = _known("currencyCode", "monetaryValue")
_PHYSICAL_ADDRESS_PARTS = _known("line1", "line2", "locality", "postalCode", "region", "country")
_ADDRESS_PARTS = _known("electronicAddress", "physicalAddress")
_ELECTRONIC_ADDRESS_PARTS = _known("electronicAddressType", "electronicAddressData")
_RECORD_ID_PARTS = _known("bibliographicRecordIdentifierCode", "bibliographicRecordIdentifier")
_HEADER_PARTS = _known(
    "supplyingAgencyId",
    "requestingAgencyId",
    "multipleItemRequestId",
    "timestamp",
    "requestingAgencyRequestId",
    "supplyingAgencyRequestId",
    "requestingAgencyAuthentication",
)
_AUTHENTICATION_PARTS = _known("accountId", "securityCode")
_CONFIRMATION_HEADER_PARTS = _known(
    "supplyingAgencyId",
    "requestingAgencyId",
    "timestamp",
    "requestingAgencyRequestId",
    "multipleItemRequestId",
    "timestampReceived",
    "messageStatus",
)
_ERROR_DATA_PARTS = _known("errorType", "errorValue")
_REQUEST_PARTS = _known(
    "header",
    "bibliographicInfo",
    "publicationInfo",
    "serviceInfo",
    "supplierInfo",
    "requestedDeliveryInfo",
    "requestingAgencyInfo",
    "patronInfo",
    "billingInfo",
)
_BIB_PARTS = _known(*_BIB_STRINGS, *_BIB_REPEATED)
_ITEM_ID_PARTS = _known("bibliographicItemIdentifier", "bibliographicItemIdentifierCode")
_PUBLICATION_PARTS = _known(*_PUBLICATION_STRINGS)
_SERVICE_INFO_PARTS = _known(
    "requestType",
    "requestSubType",
    "requestingAgencyPreviousRequestId",
    "serviceType",
    "serviceLevel",
    "preferredFormat",
    "needBeforeDate",
    "copyrightCompliance",
    "anyEdition",
    "startDate",
    "endDate",
    "note",
)
_SUPPLIER_INFO_PARTS = _known(
    "sortOrder",
    "supplierCode",
    "supplierDescription",
    "bibliographicRecordId",
    "callNumber",
    "summaryHoldings",
    "availabilityNote",
)
_REQUESTED_DELIVERY_INFO_PARTS = _known("sortOrder", "address")
_REQUESTING_AGENCY_INFO_PARTS = _known("name", "contactName", "address")
_PATRON_INFO_PARTS = _known(
    "patronId", "surname", "givenName", "patronType", "sendToPatron", "address"
)
_BILLING_INFO_PARTS = _known(
    "paymentMethod", "maximumCosts", "billingMethod", "billingName", "address"
)
_SUPPLYING_AGENCY_MESSAGE_PARTS = _known(
    "header", "messageInfo", "statusInfo", "deliveryInfo", "returnInfo"
)
_MESSAGE_INFO_PARTS = _known(
    "reasonForMessage",
    "answerYesNo",
    "note",
    "reasonUnfilled",
    "reasonRetry",
    "offeredCosts",
    "retryAfter",
    "retryBefore",
)
_STATUS_INFO_PARTS = _known("status", "expectedDeliveryDate", "dueDate", "lastChange")
_DELIVERY_INFO_PARTS = _known(
    "dateSent",
    "itemId",
    "sentVia",
    "sentToPatron",
    "loanCondition",
    "deliveredFormat",
    "deliveryCosts",
)
_RETURN_INFO_PARTS = _known("returnAgencyId", "name", "physicalAddress")
_REQUESTING_AGENCY_MESSAGE_PARTS = _known("header", "action", "note")
_REQUEST_CONFIRMATION_PARTS = _known("confirmationHeader", "errorData")
_SUPPLYING_CONFIRMATION_PARTS = _known("confirmationHeader", "reasonForMessage", "errorData")
_REQUESTING_CONFIRMATION_PARTS = _known("confirmationHeader", "action", "errorData")


_READERS: dict[p.MessageKind, Callable[[_Reader, etree._Element], p.Message]] = {
    p.MessageKind.REQUEST: _Reader.request,
    p.MessageKind.REQUEST_CONFIRMATION: _Reader.request_confirmation,
    p.MessageKind.SUPPLYING_AGENCY_MESSAGE: _Reader.supplying,
    p.MessageKind.SUPPLYING_AGENCY_MESSAGE_CONFIRMATION: _Reader.supplying_confirmation,
    p.MessageKind.REQUESTING_AGENCY_MESSAGE: _Reader.requesting,
    p.MessageKind.REQUESTING_AGENCY_MESSAGE_CONFIRMATION: _Reader.requesting_confirmation,
}
_KINDS = {kind.value: kind for kind in p.MessageKind}
_KIND_TAGS: dict[object, p.MessageKind] = {_Q + kind.value: kind for kind in p.MessageKind}


def parse(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, require_request_id: bool = True
) -> Parsed:
    """Read an ISO 18626 message leniently and safely.

    Args:
        data: the raw body as received.
        max_bytes: refuse anything longer without parsing it.
        require_request_id: refuse a request or agency message with an empty
            ``requestingAgencyRequestId`` (what a partner's endpoint must do). Only a peer that
            takes a patron request and assigns the id itself (crosslink's illmock acting as
            requester for ``requestSubType`` PatronRequest) passes ``False``.

    Returns:
        The message and the warnings: unknown elements skipped, scheme attributes dropped,
        values coerced (``+0000`` offsets, a missing envelope or version, lower-case enums).

    Raises:
        MessageTooLarge: ``data`` is longer than ``max_bytes``.
        NotXml: not well-formed XML; ``UnsafeXml`` (a subclass) when it has a DOCTYPE.
        NotIso18626: XML, but no ISO 18626 message in it (wrong namespace, no known child).
        InvalidMessage: an ISO 18626 message that cannot be acted on; carries the ISO
            ``ErrorType`` and the words for the ERROR confirmation.
    """
    if len(data) > max_bytes:
        raise MessageTooLarge(len(data), max_bytes)
    root = _parse_xml(data)
    warnings: list[str] = []
    # "{namespace}name" (lxml gives every element a str tag; its stubs allow bytes and QName)
    root_tag = str(root.tag)
    if not root_tag.startswith(_Q):
        tag = etree.QName(root).text
        raise NotIso18626(f"Root element {tag} is not in the ISO 18626 namespace {NS}.")
    name = root_tag[len(_Q) :]
    if name == "ISO18626Message":
        version = root.get(_VERSION_ATTR)
        if version is None and root.get("version") is not None:
            version = root.get("version")
            warnings.append("version attribute is not namespace-qualified (ill:version)")
        if version is None:
            warnings.append("ISO18626Message has no version attribute")
        elif version != p.VERSION:
            warnings.append(f"version {version!r} read as {p.VERSION}")
        known: list[tuple[etree._Element, p.MessageKind]] = []
        for child in root:
            kind = _KIND_TAGS.get(child.tag)
            if kind is not None:
                known.append((child, kind))
            elif isinstance(child.tag, str):
                tag = etree.QName(child).text
                warnings.append(f"unknown element ISO18626Message/{tag} ignored")
        if not known:
            raise NotIso18626("ISO18626Message holds no known ISO 18626 message.")
        if len(known) > 1:
            raise NotIso18626("ISO18626Message holds more than one message.")
        element, kind = known[0]
    elif name in _KINDS:
        warnings.append(f"bare {name} without the ISO18626Message envelope")
        element, kind = root, _KINDS[name]
    else:
        raise NotIso18626(f"Root element {name} is not an ISO 18626 message.")

    reader = _Reader(kind, require_request_id=require_request_id)
    reader.warnings.extend(warnings)
    message = _READERS[reader.kind](reader, element)
    if reader.schemes:
        reader.warn("scheme attributes dropped: " + ", ".join(reader.schemes))
    return Parsed(message=message, warnings=tuple(reader.warnings))
