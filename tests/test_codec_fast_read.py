"""What the quicker ISO 18626 reader must keep: every value, every warning and its order.

The reader finds children through a table by qualified tag, keeps the first element of each
name with any repeats aside, reads date-times of the usual shape with
``datetime.fromisoformat``, looks for a "!" before it searches for a DOCTYPE, and the protocol
dataclasses store their fields through their slots. The expected results below are what the
reader gave before those changes; each test fails if a shortcut changes one.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.iso18626.codec import InvalidMessage, parse
from ill_tui import protocol as p

NS = "http://illtransactions.org/2013/iso18626"
DATA = Path(__file__).parent / "data" / "iso18626"
SUPMSG = (DATA / "crosslink" / "broker-testdata-supmsg-ok.xml").read_bytes()
LAST_CHANGE = b"<lastChange>2024-12-12T20:12:00.629710681Z</lastChange>"

# A request with something to overlook at every level: repeats (of a text element, a part, a
# repeatable element and a required one), unknown elements in and out of the namespace, an
# attribute and a child element on a text element, a scheme, a comment and a PI, a "!" in text.
UNTIDY_REQUEST = f"""<?xml version="1.0"?>
<ISO18626Message xmlns="{NS}" xmlns:ill="{NS}" ill:version="1.2"><!-- from a partner -->
<request>
<header>
<supplyingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>US-LEND</agencyIdValue>
</supplyingAgencyId>
<requestingAgencyId><agencyIdType ill:scheme="urn:isil">ISIL</agencyIdType>
<agencyIdValue>US-BORROW</agencyIdValue></requestingAgencyId>
<multipleItemRequestId/>
<timestamp>2024-12-12T20:12:00Z</timestamp><timestamp>2024-12-13T20:12:00Z</timestamp>
<requestingAgencyRequestId>r-1</requestingAgencyRequestId>
</header>
<bibliographicInfo>
<title>First title</title><title>Second title</title><title>Third title</title>
<author lang="en">Melville, Herman<i>the author</i></author>
<bibliographicItemId><bibliographicItemIdentifier>9780142437247</bibliographicItemIdentifier>
<bibliographicItemIdentifierCode>ISBN</bibliographicItemIdentifierCode></bibliographicItemId>
<?pi ignored?>
<shelfMark>QA76</shelfMark>
<bibliographicItemId><bibliographicItemIdentifier>0142437247</bibliographicItemIdentifier>
<bibliographicItemIdentifierCode>isbn</bibliographicItemIdentifierCode></bibliographicItemId>
<x:title xmlns:x="urn:x">Not ours</x:title>
</bibliographicInfo>
<publicationInfo><publisher>Penguin</publisher></publicationInfo>
<publicationInfo><publisher>Other</publisher></publicationInfo>
<serviceInfo><serviceType>loan</serviceType><note>Urgent! Thanks!</note></serviceInfo>
<plain>in the namespace, not in the schema</plain>
</request>
<extension xmlns="urn:ext"/>
</ISO18626Message>""".encode()


def test_an_untidy_request_gives_the_same_message_and_warnings_in_the_same_order() -> None:
    parsed = parse(UNTIDY_REQUEST)
    assert parsed.message == p.IllRequest(
        header=p.Header(
            supplying_agency_id=p.AgencyId(type="ISIL", value="US-LEND"),
            requesting_agency_id=p.AgencyId(type="ISIL", value="US-BORROW"),
            timestamp=datetime(2024, 12, 12, 20, 12, tzinfo=UTC),
            requesting_agency_request_id="r-1",
        ),
        bibliographic_info=p.BibliographicInfo(
            title="First title",
            author="Melville, Herman",
            bibliographic_item_ids=(
                p.BibliographicItemId(code="ISBN", value="9780142437247"),
                p.BibliographicItemId(code="isbn", value="0142437247"),
            ),
        ),
        publication_info=p.PublicationInfo(publisher="Penguin"),
        service_info=p.ServiceInfo(service_type=p.ServiceType.LOAN, note="Urgent! Thanks!"),
    )
    assert parsed.warnings == (
        "unknown element ISO18626Message/{urn:ext}extension ignored",
        f"unknown element request/{{{NS}}}plain ignored",
        "request/header/timestamp repeated 2 times; the first one is used",
        f"unknown element request/bibliographicInfo/{{{NS}}}shelfMark ignored",
        "unknown element request/bibliographicInfo/{urn:x}title ignored",
        "request/bibliographicInfo/title repeated 3 times; the first one is used",
        "unknown attribute lang on request/bibliographicInfo/author ignored",
        "request/bibliographicInfo/author should hold text only; its child elements are ignored",
        "request/publicationInfo repeated 2 times; the first one is used",
        "request/serviceInfo/serviceType: 'loan' read as 'Loan'",
        "scheme attributes dropped: request/header/requestingAgencyId/agencyIdType=urn:isil",
    )


def offset(hours: int, minutes: int = 0) -> timezone:
    return timezone(timedelta(hours=hours, minutes=minutes))


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        # digits past microseconds are cut, never rounded up into the next second
        ("2024-12-12T21:12:00.9999999+01:00", datetime(2024, 12, 12, 21, 12, 0, 999999, offset(1))),
        ("2024-12-12T20:12:00.000001Z", datetime(2024, 12, 12, 20, 12, 0, 1, UTC)),
        ("2024-12-12T14:42:00.5-05:30", datetime(2024, 12, 12, 14, 42, 0, 500000, offset(-5, -30))),
        ("2024-12-12T20:12:00-00:00", datetime(2024, 12, 12, 20, 12, tzinfo=UTC)),
        ("2024-12-13T10:12:00+14:00", datetime(2024, 12, 13, 10, 12, tzinfo=offset(14))),
    ],
)
def test_a_usual_time_stamp_keeps_its_instant_and_its_offset(written: str, meant: datetime) -> None:
    parsed = parse(SUPMSG.replace(LAST_CHANGE, f"<lastChange>{written}</lastChange>".encode()))
    assert isinstance(parsed.message, p.SupplyingAgencyMessage)
    last_change = parsed.message.status_info.last_change
    assert last_change == meant
    assert last_change.utcoffset() == meant.utcoffset()
    assert parsed.warnings == ()


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("2024-02-30T10:00:00+01:00", "day is out of range for month"),
        ("2024-12-12T20:12:60Z", "second must be in 0..59"),
        ("2024-12-12T20:60:00+01:00", "minute must be in 0..59"),
        ("0000-01-01T00:00:00Z", "year 0 is out of range"),
        ("2024-12-12T20:12:00+14:01", "bad offset"),
        ("9999-12-31T24:00:00Z", "date value out of range"),
        ("2024-12-12T24:00:01Z", "hour 24 is only allowed as 24:00:00"),
    ],
)
def test_an_impossible_time_stamp_is_refused_in_the_same_words(written: str, words: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        parse(SUPMSG.replace(LAST_CHANGE, f"<lastChange>{written}</lastChange>".encode()))
    assert refused.value.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert refused.value.error_value == (
        f"supplyingAgencyMessage/statusInfo/lastChange: {words}: {written!r}"
    )


PARTS = [
    cls
    for cls in vars(p).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == p.__name__
]


@pytest.mark.parametrize("cls", PARTS, ids=lambda cls: cls.__name__)
def test_each_protocol_dataclass_is_made_as_its_fields_say(cls: type) -> None:
    fields = dataclasses.fields(cls)
    parameters = inspect.signature(cls).parameters
    assert list(parameters) == [f.name for f in fields]
    assert {parameter.kind for parameter in parameters.values()} == {inspect.Parameter.KEYWORD_ONLY}
    assert [parameters[f.name].default for f in fields] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    # every field lands in its own slot; the defaults fill the rest
    required = {f.name: object() for f in fields if f.default is dataclasses.MISSING}
    made = cls(**required)
    for field in fields:
        assert getattr(made, field.name) is required.get(field.name, field.default)
    given = {f.name: object() for f in fields}
    made = cls(**given)
    assert [getattr(made, f.name) for f in fields] == list(given.values())
    assert made == cls(**given)
    assert dataclasses.replace(made) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, fields[0].name, None)
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\.__init__\(\) got an unexpected"):
        cls(**given, not_a_field=1)
    if required:
        with pytest.raises(TypeError, match=rf"^{cls.__name__}\.__init__\(\) missing"):
            cls()
