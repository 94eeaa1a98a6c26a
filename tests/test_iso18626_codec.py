"""The ISO 18626 codec: strict output, lenient and safe input (issue 3, acceptance point 1).

Every message ``build`` makes is checked here against the v1.2 XSD with a validator the test
loads itself, from ``tests/data/iso18626/xsd`` (not the package copy the codec uses), so a
codec that skipped or broke its own validation would still be caught. The third-party samples
in ``tests/data/iso18626`` (see SOURCES.md there) are the corpus for parsing.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.iso18626 import codec
from adapters.iso18626.codec import (
    DEFAULT_MAX_BYTES,
    InvalidMessage,
    MessageTooLarge,
    NotIso18626,
    NotXml,
    SchemaViolation,
    UnsafeXml,
    build,
    parse,
    validate,
)
from ill_tui import protocol as p

DATA = Path(__file__).parent / "data" / "iso18626"
XSD = DATA / "xsd" / "ISO-18626-v1_2.xsd"
NS = "http://illtransactions.org/2013/iso18626"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """The v1.2 XSD, loaded by the test itself (independent of the codec's copy)."""
    return etree.XMLSchema(etree.parse(str(XSD)))


def assert_valid(schema: etree.XMLSchema, data: bytes) -> None:
    document = etree.fromstring(data)
    assert schema.validate(document), [e.message for e in schema.error_log]
    assert document.tag == f"{{{NS}}}ISO18626Message"
    assert document.get(f"{{{NS}}}version") == "1.2"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


# ---------------------------------------------------------------------------- strategies

# XML 1.0 can carry tab, newline, carriage return and everything from U+0020 except surrogates
# and U+FFFE/U+FFFF ("Cn" also leaves out unassigned code points, which costs nothing here).
text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs", "Cc", "Cn")), st.sampled_from("\t\n\r")
    ),
    max_size=12,
)
opt_text = st.none() | text
# Ids a partner can act on: not empty, not only blanks.
ident = text.filter(lambda s: s.strip() != "")

offsets = st.one_of(
    st.just(UTC),
    # whole minutes within +-14:00, as xs:dateTime writes them
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    # odd offsets (seconds, or beyond 14:00) the codec must write as UTC instead
    st.integers(-86399, 86399).map(lambda s: timezone(timedelta(seconds=s))),
)
when = st.datetimes(
    min_value=datetime(1900, 1, 2),  # noqa: DTZ001 - bounds of a strategy; timezones= adds the zone
    max_value=datetime(2200, 12, 30),  # noqa: DTZ001
    timezones=offsets,
)
opt_when = st.none() | when
amounts = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False
)


def opt(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


def tuples(strategy: st.SearchStrategy[object], max_size: int = 3) -> st.SearchStrategy[object]:
    return st.lists(strategy, max_size=max_size).map(tuple)


agency = st.builds(p.AgencyId, type=text, value=text)
costs = st.builds(p.Costs, amount=amounts, currency=text)
physical = st.builds(
    p.PhysicalAddress,
    line1=opt_text,
    line2=opt_text,
    locality=opt_text,
    postal_code=opt_text,
    region=opt_text,
    country=opt_text,
)
electronic = st.builds(p.ElectronicAddress, type=text, data=text)
address = physical | electronic
record_id = st.builds(p.BibliographicRecordId, code=text, value=text)

header = st.builds(
    p.Header,
    supplying_agency_id=agency,
    requesting_agency_id=agency,
    timestamp=when,
    requesting_agency_request_id=ident,
    multiple_item_request_id=text,
    supplying_agency_request_id=opt_text,
    requesting_agency_authentication=opt(
        st.builds(p.Authentication, account_id=opt_text, security_code=opt_text)
    ),
)
confirmation_header = st.builds(
    p.ConfirmationHeader,
    timestamp=when,
    timestamp_received=when,
    message_status=st.sampled_from(list(p.MessageStatus)),
    supplying_agency_id=opt(agency),
    requesting_agency_id=opt(agency),
    requesting_agency_request_id=opt_text,
    multiple_item_request_id=opt_text,
)
error_data = opt(
    st.builds(p.ErrorData, error_type=st.sampled_from(list(p.ErrorType)), error_value=opt_text)
)

bibliographic = st.builds(
    p.BibliographicInfo,
    **{
        f.name: opt_text
        for f in dataclasses.fields(p.BibliographicInfo)
        if f.name not in ("bibliographic_item_ids", "bibliographic_record_ids")
    },
    bibliographic_item_ids=tuples(st.builds(p.BibliographicItemId, code=text, value=text)),
    bibliographic_record_ids=tuples(record_id),
)
service = st.builds(
    p.ServiceInfo,
    service_type=st.sampled_from(list(p.ServiceType)),
    request_type=opt(st.sampled_from(list(p.RequestType))),
    request_sub_types=tuples(st.sampled_from(list(p.RequestSubType))),  # the XSD allows 3
    requesting_agency_previous_request_id=opt_text,
    service_level=opt_text,
    preferred_format=opt_text,
    need_before_date=opt_when,
    copyright_compliance=opt_text,
    any_edition=opt(st.sampled_from(list(p.YesNo))),
    start_date=opt_when,
    end_date=opt_when,
    note=opt_text,
)
requests = st.builds(
    p.IllRequest,
    header=header,
    bibliographic_info=bibliographic,
    publication_info=opt(
        st.builds(
            p.PublicationInfo,
            publisher=opt_text,
            publication_type=opt_text,
            publication_date=opt_text,
            place_of_publication=opt_text,
        )
    ),
    service_info=opt(service),
    supplier_info=tuples(
        st.builds(
            p.SupplierInfo,
            sort_order=opt(st.integers()),
            supplier_code=opt(agency),
            supplier_description=opt_text,
            bibliographic_record_id=opt(record_id),
            call_number=opt_text,
            summary_holdings=opt_text,
            availability_note=opt_text,
        )
    ),
    requested_delivery_info=tuples(
        st.builds(p.RequestedDeliveryInfo, sort_order=opt(st.integers()), address=opt(address))
    ),
    requesting_agency_info=opt(
        st.builds(
            p.RequestingAgencyInfo, name=opt_text, contact_name=opt_text, addresses=tuples(address)
        )
    ),
    patron_info=opt(
        st.builds(
            p.PatronInfo,
            patron_id=opt_text,
            surname=opt_text,
            given_name=opt_text,
            patron_type=opt_text,
            send_to_patron=opt(st.sampled_from(list(p.YesNo))),
            addresses=tuples(address),
        )
    ),
    billing_info=opt(
        st.builds(
            p.BillingInfo,
            payment_method=opt_text,
            maximum_costs=opt(costs),
            billing_method=opt_text,
            billing_name=opt_text,
            address=opt(address),
        )
    ),
)
supplying_messages = st.builds(
    p.SupplyingAgencyMessage,
    header=header,
    message_info=st.builds(
        p.MessageInfo,
        reason_for_message=st.sampled_from(list(p.ReasonForMessage)),
        answer_yes_no=opt(st.sampled_from(list(p.YesNo))),
        note=opt_text,
        reason_unfilled=opt_text,
        reason_retry=opt_text,
        offered_costs=opt(costs),
        retry_after=opt_when,
        retry_before=opt_when,
    ),
    status_info=st.builds(
        p.StatusInfo,
        status=st.sampled_from(list(p.Status)),
        last_change=when,
        expected_delivery_date=opt_when,
        due_date=opt_when,
    ),
    delivery_info=opt(
        st.builds(
            p.DeliveryInfo,
            date_sent=when,
            item_id=opt_text,
            sent_via=opt_text,
            sent_to_patron=opt(st.booleans()),
            loan_condition=opt_text,
            delivered_format=opt_text,
            delivery_costs=opt(costs),
        )
    ),
    return_info=opt(
        st.builds(
            p.ReturnInfo,
            return_agency_id=opt(agency),
            name=opt_text,
            physical_address=opt(physical),
        )
    ),
)
requesting_messages = st.builds(
    p.RequestingAgencyMessage,
    header=header,
    action=st.sampled_from(list(p.Action)),
    note=opt_text,
)
request_confirmations = st.builds(
    p.RequestConfirmation, header=confirmation_header, error_data=error_data
)
supplying_confirmations = st.builds(
    p.SupplyingAgencyMessageConfirmation,
    header=confirmation_header,
    reason_for_message=opt(st.sampled_from(list(p.ReasonForMessage))),
    error_data=error_data,
)
requesting_confirmations = st.builds(
    p.RequestingAgencyMessageConfirmation,
    header=confirmation_header,
    action=opt(st.sampled_from(list(p.Action))),
    error_data=error_data,
)

ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def round_trip(schema: etree.XMLSchema, message: p.Message) -> None:
    data = build(message)
    assert_valid(schema, data)
    parsed = parse(data)
    assert parsed.message == message
    assert parsed.warnings == ()


@ROUND_TRIP
@given(message=requests)
def test_requests_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.IllRequest
) -> None:
    round_trip(schema, message)


@ROUND_TRIP
@given(message=supplying_messages)
def test_supplying_agency_messages_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.SupplyingAgencyMessage
) -> None:
    round_trip(schema, message)


@ROUND_TRIP
@given(message=requesting_messages)
def test_requesting_agency_messages_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.RequestingAgencyMessage
) -> None:
    round_trip(schema, message)


@ROUND_TRIP
@given(message=request_confirmations)
def test_request_confirmations_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.RequestConfirmation
) -> None:
    round_trip(schema, message)


@ROUND_TRIP
@given(message=supplying_confirmations)
def test_supplying_agency_message_confirmations_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.SupplyingAgencyMessageConfirmation
) -> None:
    round_trip(schema, message)


@ROUND_TRIP
@given(message=requesting_confirmations)
def test_requesting_agency_message_confirmations_build_valid_and_round_trip(
    schema: etree.XMLSchema, message: p.RequestingAgencyMessageConfirmation
) -> None:
    round_trip(schema, message)


@settings(max_examples=100, deadline=None)
@given(message=st.one_of(requests, supplying_messages, requesting_messages), now=when)
def test_confirm_makes_a_valid_confirmation_that_echoes_the_message(
    schema: etree.XMLSchema, message: p.AgencyMessage, now: datetime
) -> None:
    ok = p.confirm(message, now=now)
    refused = p.confirm(
        message,
        now=now,
        error=p.ErrorData(error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE, error_value="no"),
    )
    for confirmation in (ok, refused):
        assert_valid(schema, build(confirmation))
        assert confirmation.kind is message.kind.confirmation
        assert confirmation.header.requesting_agency_request_id == (
            message.header.requesting_agency_request_id
        )
        assert confirmation.header.supplying_agency_id == message.header.supplying_agency_id
    assert p.is_ok(ok)
    assert not p.is_ok(refused)
    if isinstance(message, p.SupplyingAgencyMessage):
        assert isinstance(ok, p.SupplyingAgencyMessageConfirmation)
        assert ok.reason_for_message is message.message_info.reason_for_message
    if isinstance(message, p.RequestingAgencyMessage):
        assert isinstance(ok, p.RequestingAgencyMessageConfirmation)
        assert ok.action is message.action


# ---------------------------------------------------------------------------- the corpus

# Samples whose XML is v1.2-valid (SOURCES.md) and that an endpoint must be able to act on.
VALID_SAMPLES = {
    "crosslink/broker-catalog-request-1.xml": p.IllRequest,
    "crosslink/broker-catalog-request-2.xml": p.IllRequest,
    "crosslink/broker-catalog-request-3.xml": p.IllRequest,
    "crosslink/broker-testdata-reqmsg-notification.xml": p.RequestingAgencyMessage,
    "crosslink/broker-testdata-reqmsg-ok.xml": p.RequestingAgencyMessage,
    "crosslink/broker-testdata-request-loaned-overdue-renew.xml": p.IllRequest,
    "crosslink/broker-testdata-request-loaned-overdue.xml": p.IllRequest,
    "crosslink/broker-testdata-request-loaned.xml": p.IllRequest,
    "crosslink/broker-testdata-request-locally-available.xml": p.IllRequest,
    "crosslink/broker-testdata-request-reminder.xml": p.IllRequest,
    "crosslink/broker-testdata-request-unfilled-2.xml": p.IllRequest,
    "crosslink/broker-testdata-request-unfilled-willsupply.xml": p.IllRequest,
    "crosslink/broker-testdata-request-unfilled.xml": p.IllRequest,
    "crosslink/broker-testdata-request-willsupply-loaned-cancel.xml": p.IllRequest,
    "crosslink/broker-testdata-request-willsupply-loaned.xml": p.IllRequest,
    "crosslink/broker-testdata-request-willsupply-unfilled-willsupply-loaned.xml": p.IllRequest,
    "crosslink/broker-testdata-supmsg-notification-2.xml": p.SupplyingAgencyMessage,
    "crosslink/broker-testdata-supmsg-notification.xml": p.SupplyingAgencyMessage,
    "crosslink/broker-testdata-supmsg-ok.xml": p.SupplyingAgencyMessage,
    "crosslink/illmock-examples-cancel-req.xml": p.IllRequest,
    "crosslink/illmock-examples-error-req.xml": p.IllRequest,
    "crosslink/illmock-examples-renew-req.xml": p.IllRequest,
    "crosslink/illmock-examples-req.xml": p.IllRequest,
    "mod-rs/integration-illmockrequest.xml": p.IllRequest,
}

# Also v1.2-valid, but patron requests with an empty requestingAgencyRequestId: crosslink's
# illmock takes them as "act as requester and assign the id yourself". A supplier must refuse
# them (the default); a peer that assigns ids reads them with require_request_id=False.
PATRON_REQUESTS_WITHOUT_ID = [
    "crosslink/illmock-reqform-example.xml",
    "crosslink/misc-request-mock-error.xml",
    "crosslink/misc-request-mock-unfilled.xml",
]

EMPTY_ID = "requestingAgencyRequestId: cannot be empty"
UDV = p.ErrorType.UNRECOGNISED_DATA_VALUE

# crosslink's negative samples, and what its broker answers (SOURCES.md).
NEGATIVE_SAMPLES = {
    "crosslink/broker-testdata-reqmsg-no-reqid.xml": (
        p.MessageKind.REQUESTING_AGENCY_MESSAGE,
        UDV,
        EMPTY_ID,
    ),
    "crosslink/broker-testdata-request-no-reqid.xml": (p.MessageKind.REQUEST, UDV, EMPTY_ID),
    "crosslink/broker-testdata-supmsg-no-reqid.xml": (
        p.MessageKind.SUPPLYING_AGENCY_MESSAGE,
        UDV,
        EMPTY_ID,
    ),
    "crosslink/broker-testdata-supmsg-invalid-reason.xml": (
        p.MessageKind.SUPPLYING_AGENCY_MESSAGE,
        p.ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE,
        "invalid reason: NoGoodReason",
    ),
}


def test_the_corpus_is_all_accounted_for() -> None:
    """Every sample copied into tests/data has an expected outcome in this module."""
    covered = (
        set(VALID_SAMPLES)
        | set(PATRON_REQUESTS_WITHOUT_ID)
        | set(NEGATIVE_SAMPLES)
        | set(LENIENT_SAMPLES)
        | set(REFUSED_SAMPLES)
        | {"crosslink/broker-testdata-msg-invalid.xml"}
    )
    on_disk = {str(path.relative_to(DATA)) for path in DATA.glob("*/*.xml")}
    assert on_disk == covered


@pytest.mark.parametrize("name", sorted(VALID_SAMPLES))
def test_valid_samples_parse_and_survive_build_and_parse_again(
    schema: etree.XMLSchema, name: str
) -> None:
    first = parse(sample(name))
    assert type(first.message) is VALID_SAMPLES[name]
    rebuilt = build(first.message)
    assert_valid(schema, rebuilt)
    assert parse(rebuilt).message == first.message


def test_a_crosslink_loan_reads_as_staff_expect() -> None:
    message = parse(sample("crosslink/broker-testdata-supmsg-ok.xml")).message
    assert isinstance(message, p.SupplyingAgencyMessage)
    assert str(message.header.supplying_agency_id) == "ISIL:SUP_B"
    assert message.header.requesting_agency_request_id == "6ad1ff2e-bab2-4978-b064-656c0e67ebd6"
    assert message.status_info.status is p.Status.LOANED
    assert message.message_info.reason_for_message is p.ReasonForMessage.STATUS_CHANGE
    # nanoseconds "20:12:00.629710681Z" are cut to Python's microseconds
    assert message.status_info.last_change == datetime(2024, 12, 12, 20, 12, 0, 629710, tzinfo=UTC)
    assert message.delivery_info is not None
    assert message.delivery_info.item_id == "12345"


@pytest.mark.parametrize("name", PATRON_REQUESTS_WITHOUT_ID)
def test_patron_requests_without_an_id_are_refused_unless_the_peer_assigns_ids(
    schema: etree.XMLSchema, name: str
) -> None:
    with pytest.raises(InvalidMessage) as refused:
        parse(sample(name))
    assert (refused.value.error_type, refused.value.error_value) == (UDV, EMPTY_ID)

    parsed = parse(sample(name), require_request_id=False)
    assert isinstance(parsed.message, p.IllRequest)
    assert parsed.message.service_info is not None
    assert p.RequestSubType.PATRON_REQUEST in parsed.message.service_info.request_sub_types
    # build refuses nothing the schema allows: an empty id is valid XML, just not actionable
    rebuilt = build(parsed.message)
    assert_valid(schema, rebuilt)
    assert parse(rebuilt, require_request_id=False).message == parsed.message


@pytest.mark.parametrize("name", sorted(NEGATIVE_SAMPLES))
def test_negative_samples_give_the_iso_error_crosslink_gives(
    schema: etree.XMLSchema, name: str
) -> None:
    kind, error_type, error_value = NEGATIVE_SAMPLES[name]
    with pytest.raises(InvalidMessage) as refused:
        parse(sample(name))
    error = refused.value
    assert (error.kind, error.error_type, error.error_value) == (kind, error_type, error_value)
    # The endpoint answers with an ERROR confirmation of the right kind that echoes the ids.
    confirmation = error.confirmation(now=datetime(2026, 11, 23, 9, 30, tzinfo=UTC))
    assert confirmation.kind is kind.confirmation
    assert not p.is_ok(confirmation)
    assert confirmation.header.requesting_agency_id is not None
    assert_valid(schema, build(confirmation))


def test_an_unknown_action_is_unsupported_action_type() -> None:
    data = sample("crosslink/broker-testdata-reqmsg-ok.xml")
    assert b"<action>Cancel</action>" in data
    with pytest.raises(InvalidMessage) as refused:
        parse(data.replace(b"<action>Cancel</action>", b"<action>WeCancelThisMessage</action>"))
    assert refused.value.error_type is p.ErrorType.UNSUPPORTED_ACTION_TYPE
    assert refused.value.error_value == "invalid action: WeCancelThisMessage"
    assert refused.value.header is not None
    assert refused.value.header.requesting_agency_request_id != ""


def test_an_unknown_status_is_unrecognised_data_value_and_the_reason_is_echoed() -> None:
    data = sample("crosslink/broker-testdata-supmsg-ok.xml")
    with pytest.raises(InvalidMessage) as refused:
        parse(data.replace(b"<status>Loaned</status>", b"<status>WeCouldLoan</status>"))
    assert refused.value.error_type is UDV
    assert refused.value.error_value == "invalid status: WeCouldLoan"
    confirmation = refused.value.confirmation(now=datetime(2026, 11, 23, tzinfo=UTC))
    assert isinstance(confirmation, p.SupplyingAgencyMessageConfirmation)
    assert confirmation.reason_for_message is p.ReasonForMessage.STATUS_CHANGE


def test_a_root_without_a_message_is_not_iso18626() -> None:
    # crosslink answers this with a plain HTTP 400: there is nothing to confirm
    with pytest.raises(NotIso18626):
        parse(sample("crosslink/broker-testdata-msg-invalid.xml"))


# The mod-rs unit samples are bare message elements (no ISO18626Message envelope), with
# "+0000" offsets and qualified schemes. They are read, with warnings, rather than refused:
# each is unambiguous about which message it is and what it says, and a library whose partner
# runs a slightly-off serializer wants its loan processed, not stranded behind an error it
# cannot fix. Every coercion is reported in Parsed.warnings so the endpoint can log it.
# The v1.0 envelopes (no multipleItemRequestId) are read the same way.
LENIENT_SAMPLES = {
    "mod-rs/unit-request.xml": (p.IllRequest, "bare request"),
    "mod-rs/unit-requestConfirmation.xml": (p.RequestConfirmation, "bare requestConfirmation"),
    "mod-rs/unit-supplyingAgencyMessage.xml": (p.SupplyingAgencyMessage, "bare supplying"),
    "mod-rs/unit-supplyingAgencyMessageConfirmation.xml": (
        p.SupplyingAgencyMessageConfirmation,
        "bare supplyingAgencyMessageConfirmation",
    ),
    "mod-rs/unit-requestingAgencyMessage.xml": (p.RequestingAgencyMessage, "bare requesting"),
    "mod-rs/unit-requestingAgencyMessageConfirmation.xml": (
        p.RequestingAgencyMessageConfirmation,
        "bare requestingAgencyMessageConfirmation",
    ),
    "mod-rs/okapi-scripts-iso18626_req_1.xml": (p.IllRequest, "version '1.0'"),
    "mod-rs/protocol_tests-case1_request.xml": (p.IllRequest, "version '1.0'"),
}

# Samples that are not messages anyone can act on; each gets a clear, named error.
REFUSED_SAMPLES = {
    # templates with placeholders instead of time stamps
    "mod-rs/integration-cancelResponseReplyNoTemplate.xml": (InvalidMessage, "_TIMESTAMP_"),
    "mod-rs/integration-unfilledNotification.xml": (InvalidMessage, "timestamp_holder"),
    # ... and with no namespace at all
    "mod-rs/integration-statusChangeExpectToSupplyTemplate.xml": (NotIso18626, "namespace"),
    "mod-rs/integration-statusChangeUnfilledTemplate.xml": (NotIso18626, "namespace"),
    # a patron request with no supplying agency: nobody to send it to
    "mod-rs/integration-patronRequest.xml": (InvalidMessage, "supplyingAgencyId: missing"),
    "mod-rs/integration-patronRequestRetry.xml": (InvalidMessage, "supplyingAgencyId: missing"),
    # a template whose status is "status_holder"
    "mod-rs/integration-supplyingAgencyMessage_statusChange.xml": (
        InvalidMessage,
        "invalid status: status_holder",
    ),
}


@pytest.mark.parametrize("name", sorted(LENIENT_SAMPLES))
def test_lenient_samples_parse_with_warnings_and_build_valid(
    schema: etree.XMLSchema, name: str
) -> None:
    kind, warning = LENIENT_SAMPLES[name]
    parsed = parse(sample(name))
    assert type(parsed.message) is kind
    assert any(warning in w for w in parsed.warnings), parsed.warnings
    rebuilt = build(parsed.message)  # what we would send back is strict v1.2
    assert_valid(schema, rebuilt)
    assert parse(rebuilt).message == parsed.message


@pytest.mark.parametrize("name", sorted(REFUSED_SAMPLES))
def test_unusable_samples_are_refused_with_a_named_error(name: str) -> None:
    error, words = REFUSED_SAMPLES[name]
    with pytest.raises(error, match=words):
        parse(sample(name))


def unset_fields(value: object, path: str = "") -> set[str]:
    """Paths of every field left None or empty in a dataclass tree."""
    if not dataclasses.is_dataclass(value):
        return set()
    missing = set()
    for field in dataclasses.fields(value):
        child = getattr(value, field.name)
        here = f"{path}.{field.name}" if path else field.name
        if child is None or child == ():
            missing.add(here)
        elif isinstance(child, tuple):
            for item in child:
                missing |= unset_fields(item, here)
        else:
            missing |= unset_fields(child, here)
    return missing


def test_every_field_of_the_full_mod_rs_request_is_read() -> None:
    """unit-request.xml fills in (nearly) every element: the reader must not drop any."""
    parsed = parse(sample("mod-rs/unit-request.xml"))
    # only what that sample itself leaves out
    assert unset_fields(parsed.message) == {
        "supplier_info.bibliographic_record_id",
        "requesting_agency_info.addresses",
        "patron_info.addresses",
        "billing_info.address",
    }
    message = parsed.message
    assert isinstance(message, p.IllRequest)
    assert message.header.requesting_agency_authentication == p.Authentication(
        account_id="accountId1", security_code="securityCode1"
    )
    assert message.header.multiple_item_request_id == "multipleItemRequestId1"
    assert [i.code for i in message.bibliographic_info.bibliographic_item_ids] == [
        "bibliographicItemIdentifierCode1",
        "bibliographicItemIdentifierCode2",
        "bibliographicItemIdentifierCode3",
    ]
    assert message.service_info is not None
    assert message.service_info.request_sub_types == (
        p.RequestSubType.BOOKING_REQUEST,
        p.RequestSubType.MULTIPLE_ITEM_REQUEST,
        p.RequestSubType.PATRON_REQUEST,
    )
    assert message.service_info.need_before_date == datetime(1900, 1, 2, 23, 59, 59, tzinfo=UTC)
    assert message.billing_info is not None
    assert message.billing_info.maximum_costs == p.Costs(
        amount=Decimal(1), currency="currencyCode1"
    )
    assert [s.sort_order for s in message.supplier_info] == [1, 2, 3]
    # the schemes it carries are reported, not silently lost
    assert any("scheme attributes dropped" in w and "http://uri5" in w for w in parsed.warnings)


def test_every_field_of_the_full_mod_rs_supplying_agency_message_is_read() -> None:
    message = parse(sample("mod-rs/unit-supplyingAgencyMessage.xml")).message
    assert unset_fields(message) == set()
    assert isinstance(message, p.SupplyingAgencyMessage)
    assert message.delivery_info is not None
    assert message.delivery_info.sent_to_patron is True
    assert message.return_info is not None
    assert message.return_info.physical_address == p.PhysicalAddress(
        line1="line11",
        line2="line21",
        locality="locality1",
        postal_code="postalCode1",
        region="region1",
        country="country1",
    )


def test_every_field_of_the_mod_rs_confirmations_is_read() -> None:
    for name in (
        "mod-rs/unit-requestConfirmation.xml",
        "mod-rs/unit-supplyingAgencyMessageConfirmation.xml",
        "mod-rs/unit-requestingAgencyMessageConfirmation.xml",
        "mod-rs/unit-requestingAgencyMessage.xml",
    ):
        assert unset_fields(parse(sample(name)).message) == set(), name


# ---------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626"
  xmlns:ill="http://illtransactions.org/2013/iso18626" ill:version="1.2">
 <requestingAgencyMessage><header><supplyingAgencyId><agencyIdType>ISIL</agencyIdType>
 <agencyIdValue>&lol9;</agencyIdValue></supplyingAgencyId></header></requestingAgencyMessage>
</ISO18626Message>"""


def xxe(secret: Path) -> bytes:
    return (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "'
        + secret.as_uri().encode()
        + b'">]>'
        + sample("crosslink/broker-testdata-reqmsg-ok.xml")
        .split(b"?>", 1)[1]
        .replace(b"<action>Cancel</action>", b"<action>Cancel</action><note>&xxe;</note>")
    )


def test_a_billion_laughs_payload_is_refused() -> None:
    with pytest.raises(UnsafeXml):
        parse(BILLION_LAUGHS)


def test_an_xxe_payload_is_refused_and_the_file_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    with pytest.raises(UnsafeXml) as refused:
        parse(xxe(secret))
    assert "TOP SECRET" not in str(refused.value)


def test_a_doctype_hidden_by_utf16_is_still_refused(tmp_path: Path) -> None:
    """The quick byte check cannot see UTF-16; the check after parsing does."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    data = xxe(secret).replace(b'<?xml version="1.0"?>', b"")
    utf16 = '<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16") + data.decode().encode(
        "utf-16-le"
    )
    assert b"<!DOCTYPE" not in utf16
    with pytest.raises(UnsafeXml):
        parse(utf16)


def test_an_external_dtd_is_refused() -> None:
    data = (
        b'<!DOCTYPE ISO18626Message SYSTEM "http://127.0.0.1:9/evil.dtd">'
        + sample("crosslink/broker-testdata-reqmsg-ok.xml").split(b"?>", 1)[1]
    )
    with pytest.raises(UnsafeXml):
        parse(data)


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    twenty_mb = b"<a>" + b"x" * (20 * 1024 * 1024) + b"</a>"
    with pytest.raises(MessageTooLarge) as refused:
        parse(twenty_mb)
    assert refused.value.limit == DEFAULT_MAX_BYTES
    good = sample("crosslink/broker-testdata-supmsg-ok.xml")
    with pytest.raises(MessageTooLarge):
        parse(good, max_bytes=len(good) - 1)
    assert parse(good, max_bytes=len(good)).message.kind is p.MessageKind.SUPPLYING_AGENCY_MESSAGE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b'{"request": {}}',
        b"<ISO18626Message",
        b"<a>&undefined;</a>",
        b"\xff\xfe\x00",
    ],
)
def test_non_xml_is_refused(data: bytes) -> None:
    with pytest.raises(NotXml):
        parse(data)


@pytest.mark.parametrize(
    "data",
    [
        # the right element names in another namespace
        sample("crosslink/broker-testdata-supmsg-ok.xml").replace(
            b"http://illtransactions.org/2013/iso18626", b"urn:example:not-iso18626"
        ),
        b"<html><body>502 Bad Gateway</body></html>",
        b'<ill:somethingElse xmlns:ill="http://illtransactions.org/2013/iso18626"/>',
    ],
)
def test_xml_that_is_not_iso18626_is_refused(data: bytes) -> None:
    with pytest.raises(NotIso18626):
        parse(data)


def test_the_next_good_message_parses_after_hostile_ones() -> None:
    for bad in (BILLION_LAUGHS, b"nonsense", b"<x xmlns='urn:y'/>"):
        with pytest.raises((NotXml, NotIso18626)):
            parse(bad)
    assert isinstance(
        parse(sample("crosslink/broker-testdata-supmsg-ok.xml")).message, p.SupplyingAgencyMessage
    )


# ---------------------------------------------------------------------------- leniency

SUPMSG = sample("crosslink/broker-testdata-supmsg-ok.xml")
LAST_CHANGE = b"<lastChange>2024-12-12T20:12:00.629710681Z</lastChange>"


@pytest.mark.parametrize(
    ("written", "meant", "warns"),
    [
        ("2024-12-12T20:12:00Z", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), False),
        ("2024-12-12T20:12:00.5Z", datetime(2024, 12, 12, 20, 12, 0, 500000, tzinfo=UTC), False),
        ("2024-12-12T21:12:00+01:00", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), False),
        ("2024-12-12T15:12:00-05:00", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), False),
        ("2024-12-12T20:12:00+0000", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), True),
        ("2024-12-12T21:42:00+0130", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), True),
        ("2024-12-12T20:12:00", datetime(2024, 12, 12, 20, 12, tzinfo=UTC), True),
        ("2024-12-11T24:00:00Z", datetime(2024, 12, 12, tzinfo=UTC), False),
        (
            " 2024-12-12T20:12:00.123456789+00:00\n",
            datetime(2024, 12, 12, 20, 12, 0, 123456, tzinfo=UTC),
            False,
        ),
    ],
)
def test_time_stamps_are_read_leniently(written: str, meant: datetime, warns: bool) -> None:
    parsed = parse(SUPMSG.replace(LAST_CHANGE, f"<lastChange>{written}</lastChange>".encode()))
    assert isinstance(parsed.message, p.SupplyingAgencyMessage)
    assert parsed.message.status_info.last_change == meant
    assert parsed.message.status_info.last_change.utcoffset() is not None
    assert bool(parsed.warnings) is warns, parsed.warnings


@pytest.mark.parametrize(
    "written", ["yesterday", "2024-13-01T00:00:00Z", "2024-12-12T20:12:00+15:00", "2024-12-12"]
)
def test_a_time_stamp_that_cannot_be_read_is_unrecognised_data_value(written: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        parse(SUPMSG.replace(LAST_CHANGE, f"<lastChange>{written}</lastChange>".encode()))
    assert refused.value.error_type is UDV
    assert "lastChange" in refused.value.error_value


def test_unknown_elements_are_warnings_not_errors() -> None:
    data = SUPMSG.replace(
        b"<itemId>12345</itemId>", b"<itemId>12345</itemId><shelfMark>QA76</shelfMark>"
    ).replace(b"</statusInfo>", b"</statusInfo><x:extra xmlns:x='urn:x'>1</x:extra>")
    parsed = parse(data)
    assert isinstance(parsed.message, p.SupplyingAgencyMessage)
    assert parsed.message.delivery_info is not None
    assert parsed.message.delivery_info.item_id == "12345"
    assert any("shelfMark" in w for w in parsed.warnings)
    assert any("urn:x" in w for w in parsed.warnings)


def test_a_missing_multiple_item_request_id_and_enum_case_are_forgiven() -> None:
    data = SUPMSG.replace(b"<multipleItemRequestId></multipleItemRequestId>", b"").replace(
        b"<status>Loaned</status>", b"<status>loaned</status>"
    )
    parsed = parse(data)
    assert isinstance(parsed.message, p.SupplyingAgencyMessage)
    assert parsed.message.header.multiple_item_request_id == ""
    assert parsed.message.status_info.status is p.Status.LOANED
    assert any("'loaned' read as 'Loaned'" in w for w in parsed.warnings)


def test_a_missing_required_part_is_badly_formed() -> None:
    data = SUPMSG.replace(b"<status>Loaned</status>", b"")
    with pytest.raises(InvalidMessage) as refused:
        parse(data)
    assert refused.value.error_type is p.ErrorType.BADLY_FORMED_MESSAGE
    assert refused.value.error_value == "supplyingAgencyMessage/statusInfo/status: missing"


# ---------------------------------------------------------------------------- strict output

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def loan_message(**status: object) -> p.SupplyingAgencyMessage:
    return p.SupplyingAgencyMessage(
        header=p.Header(
            supplying_agency_id=p.AgencyId.parse("ISIL:DK-820010"),
            requesting_agency_id=p.AgencyId.parse("ISIL:US-NNC"),
            timestamp=NOW,
            requesting_agency_request_id="ILL-42",
        ),
        message_info=p.MessageInfo(reason_for_message=p.ReasonForMessage.REQUEST_RESPONSE),
        status_info=p.StatusInfo(
            **{"status": p.Status.LOANED, "last_change": NOW, **status}  # type: ignore[arg-type]
        ),
    )


def test_build_writes_the_wire_format_partners_expect(schema: etree.XMLSchema) -> None:
    data = build(loan_message(due_date=datetime(2026, 12, 7, 12, 0, tzinfo=UTC)))
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b'ill:version="1.2"' in data
    assert b"<multipleItemRequestId></multipleItemRequestId>" in data
    assert b"<dueDate>2026-12-07T12:00:00+00:00</dueDate>" in data
    assert_valid(schema, data)


def test_messages_of_one_shape_each_carry_their_own_values() -> None:
    """Messages of the same shape are built from one template: nothing of one is left in
    the next, an empty text stays an empty element, and a refused one spoils nothing."""
    first = loan_message(due_date=datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    second = dataclasses.replace(
        first,
        header=dataclasses.replace(
            first.header, requesting_agency_request_id="second", multiple_item_request_id="m-2"
        ),
        status_info=dataclasses.replace(
            first.status_info, due_date=datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
        ),
    )
    spoiled = dataclasses.replace(
        first, header=dataclasses.replace(first.header, requesting_agency_request_id="a\x01b")
    )
    with pytest.raises(SchemaViolation):
        build(spoiled)
    for message in (first, second, first):
        data = build(message)
        assert codec.parse(data).message == message
    assert b"<multipleItemRequestId></multipleItemRequestId>" in build(first)
    assert b"<multipleItemRequestId>m-2</multipleItemRequestId>" in build(second)


def test_build_refuses_a_naive_datetime() -> None:
    with pytest.raises(SchemaViolation, match="no time zone"):
        build(loan_message(last_change=datetime(2026, 11, 23, 9, 30)))  # noqa: DTZ001


def test_build_refuses_characters_xml_cannot_carry() -> None:
    message = dataclasses.replace(
        loan_message(),
        message_info=p.MessageInfo(
            reason_for_message=p.ReasonForMessage.NOTIFICATION, note="bell \x07"
        ),
    )
    with pytest.raises(SchemaViolation):
        build(message)


def test_build_refuses_what_only_the_schema_forbids() -> None:
    """The XSD allows three requestSubTypes; the dataclass cannot know that, validation does."""
    request = p.IllRequest(
        header=loan_message().header,
        bibliographic_info=p.BibliographicInfo(title="Lord of the Rings"),
        service_info=p.ServiceInfo(
            service_type=p.ServiceType.LOAN, request_sub_types=tuple(p.RequestSubType)[:4]
        ),
    )
    with pytest.raises(SchemaViolation, match="requestSubType"):
        build(request)


def test_build_refuses_an_amount_that_is_not_a_number() -> None:
    message = dataclasses.replace(
        loan_message(),
        message_info=p.MessageInfo(
            reason_for_message=p.ReasonForMessage.REQUEST_RESPONSE,
            offered_costs=p.Costs(amount=Decimal("NaN"), currency="USD"),
        ),
    )
    with pytest.raises(SchemaViolation):
        build(message)


def test_validate_accepts_v12_and_names_what_is_wrong_otherwise() -> None:
    validate(sample("crosslink/broker-testdata-supmsg-ok.xml"))
    with pytest.raises(SchemaViolation) as refused:
        validate(
            sample("mod-rs/protocol_tests-case1_request.xml")
        )  # v1.0: no multipleItemRequestId
    assert any("multipleItemRequestId" in e for e in refused.value.errors)
    with pytest.raises(NotXml):
        validate(b"not xml")


# ---------------------------------------------------------------------------- protocol helpers


def test_agency_ids_read_and_write_as_type_colon_value() -> None:
    agency = p.AgencyId.parse(" ISIL:DK-820010 ")
    assert agency == p.AgencyId(type="ISIL", value="DK-820010")
    assert str(agency) == "ISIL:DK-820010"
    for bad in ("ISIL", ":X", "ISIL:", ""):
        with pytest.raises(ValueError, match="TYPE:VALUE"):
            p.AgencyId.parse(bad)


def test_confirmations_are_not_confirmed() -> None:
    with pytest.raises(ValueError, match="not confirmed"):
        p.confirmation_for(p.MessageKind.REQUEST_CONFIRMATION, None, now=NOW)


def test_costs_convert_to_money_rounded_to_the_currency() -> None:
    assert p.Costs(amount=Decimal("35.005"), currency="usd").to_money().amount == Decimal("35.00")


# ---------------------------------------------------------------------------- robustness

FUZZ_SEEDS = [
    sample("crosslink/broker-testdata-supmsg-ok.xml"),
    sample("crosslink/broker-testdata-reqmsg-ok.xml"),
    sample("mod-rs/unit-request.xml"),
    sample("mod-rs/unit-supplyingAgencyMessage.xml"),
    sample("mod-rs/unit-requestConfirmation.xml"),
]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A real message with a few bytes cut, replaced or inserted, or an element's text changed."""
    data = draw(st.sampled_from(FUZZ_SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 40)))
        if draw(st.booleans()):
            # new text in place of the old between two tags: exercises the value readers
            closing = data.find(b"</", start)
            opening = data.rfind(b">", 0, closing) if closing > 0 else -1
            if 0 < opening < closing:
                start, end = opening + 1, closing
            insert = draw(text).encode()
        else:
            insert = draw(st.binary(max_size=8))
        data = data[:start] + insert + data[end:]
    return data


@settings(max_examples=400, deadline=None)
@given(data=mangled())
def test_mangled_messages_give_a_named_error_or_a_message(data: bytes) -> None:
    """Whatever a partner sends, the endpoint gets a Parsed or one of the codec's errors."""
    try:
        parsed = parse(data)
    except codec.Iso18626Error as error:
        event(f"refused: {type(error).__name__}")
        return
    # what was read can always be written back as valid v1.2, or is refused by name
    try:
        rebuilt = build(parsed.message)
    except SchemaViolation as error:
        event(f"parsed, build refused: {error.errors[0][:60]}")
        return
    event("parsed and rebuilt")
    assert parse(rebuilt).message == parsed.message


def test_item_ids_are_found_by_code_in_any_case() -> None:
    message = parse(sample("crosslink/broker-catalog-request-1.xml")).message
    assert isinstance(message, p.IllRequest)
    assert message.bibliographic_info.item_id("isbn") == "1983"
    assert message.bibliographic_info.item_id("ISSN") is None


def test_build_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="not an ISO 18626 message"):
        build(loan_message().header)  # type: ignore[arg-type]
