"""The ISO 18626 partner simulator (``ill-tui simulate-partner``), against illmock's behaviour.

The simulator runs as a real process (``python -m ill_tui.cli simulate-partner``) on a free
loopback port. Its peer is a real loopback receiver (Starlette under uvicorn in a thread) that
records every message the simulator sends, checks it against the v1.2 XSD with a validator
this test loads itself, and answers with confirmations built by the codec. Every scenario of
``../shared/conformance/iso18626/SOURCES.md`` is played: the confirmation, the follow-up
statuses in order and their fields, the reactions to Received / Renew / Cancel /
ShippedReturn, the HTTP errors, the validation errors and the requester role.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from adapters.iso18626 import codec
from adapters.iso18626.simulator import scenario_for
from ill_tui import protocol as p
from ill_tui.cli import cli

ROOT = Path(__file__).resolve().parent.parent
_XSD_COPIES = (
    ROOT / "tests" / "data" / "iso18626" / "xsd" / "ISO-18626-v1_2.xsd",
    ROOT / "adapters" / "iso18626" / "ISO-18626-v1_2.xsd",
)
XSD = next(path for path in _XSD_COPIES if path.exists())
NS = p.NAMESPACE
SENT_AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # time stamp of what the test sends
DELAY_MS = 40
WAIT = 15.0  # seconds to wait for follow-ups on a busy machine
QUIET = 0.8  # seconds of silence that show nothing more is coming (20 x the delay)
AUTH = p.Authentication(account_id="sim-ill", security_code="s3cret")
REQUESTER = p.AgencyId(type="ISIL", value="DK-TEST")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Got:
    """One message the receiver got: where, the raw bytes, the parsed message, XSD errors."""

    path: str
    body: bytes
    message: p.Message
    xsd_errors: tuple[str, ...]

    @property
    def request_id(self) -> str:
        header = self.message.header
        assert isinstance(header, p.Header)
        return header.requesting_agency_request_id


class Receiver:
    """A loopback ISO 18626 peer that records what it gets and confirms it (OK)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/iso18626"
        self.peer_url = f"http://127.0.0.1:{self.port}/peer"  # the simulator's --peer-url
        self.got: list[Got] = []
        self.changed = threading.Condition()
        self.schema = etree.XMLSchema(etree.parse(str(XSD)))
        self.schema_lock = threading.Lock()
        app = Starlette(
            routes=[
                Route("/iso18626", self.endpoint, methods=["POST"]),
                Route("/peer", self.endpoint, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the loopback receiver did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.schema_lock:
            document = etree.fromstring(body)
            valid = self.schema.validate(document)
            errors = () if valid else tuple(e.message for e in self.schema.error_log)
        try:
            message = codec.parse(body).message
        except codec.Iso18626Error as error:
            return PlainTextResponse(str(error), 400)
        with self.changed:
            self.got.append(Got(request.url.path, body, message, errors))
            self.changed.notify_all()
        assert not isinstance(
            message,
            p.RequestConfirmation
            | p.SupplyingAgencyMessageConfirmation
            | p.RequestingAgencyMessageConfirmation,
        )
        confirmation = p.confirm(message, now=datetime.now(UTC))
        return Response(codec.build(confirmation), media_type="application/xml")

    def wait_for(self, request_id: str, count: int, timeout: float = WAIT) -> list[Got]:
        """The first ``count`` messages about ``request_id``, all XSD-valid, in arrival order."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                mine = [g for g in self.got if g.request_id == request_id]
                if len(mine) >= count:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [describe(g.message) for g in mine]
                    raise AssertionError(f"{request_id}: wanted {count} messages, got {kinds}")
                self.changed.wait(left)
        for g in mine:
            assert not g.xsd_errors, (describe(g.message), g.xsd_errors)
        return mine[:count]

    def settled(self, request_id: str, count: int) -> list[Got]:
        """Exactly ``count`` messages about ``request_id``, and no more after a quiet spell."""
        mine = self.wait_for(request_id, count)
        time.sleep(QUIET)
        with self.changed:
            later = [g for g in self.got if g.request_id == request_id]
        assert [describe(g.message) for g in later] == [describe(g.message) for g in mine]
        return mine


def describe(message: p.Message) -> str:
    if isinstance(message, p.SupplyingAgencyMessage):
        return f"{message.message_info.reason_for_message}/{message.status_info.status}"
    if isinstance(message, p.RequestingAgencyMessage):
        return f"action {message.action}"
    return str(message.kind)


def statuses(got: list[Got]) -> list[str]:
    return [describe(g.message) for g in got]


def supplying(got: Got) -> p.SupplyingAgencyMessage:
    assert isinstance(got.message, p.SupplyingAgencyMessage)
    return got.message


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------- the simulator


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def simulator(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("simulator") / "simulator.log"
    env = {k: v for k, v in os.environ.items() if k != "ILL_TUI_ENDPOINT_URL"}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ill_tui.cli",
                "simulate-partner",
                "--port",
                str(port),
                "--delay",
                str(DELAY_MS),
                "--peer-url",
                receiver.peer_url,
                "--scenario",
                "SIM-CONFIGURED=WILLSUPPLY_LOANED",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    sim = Simulator(f"http://127.0.0.1:{port}/iso18626", process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"simulate-partner exited:\n{sim.log()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"simulate-partner did not start:\n{sim.log()}"
                time.sleep(0.1)
        yield sim
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def rid() -> str:
    """A request id no other test uses (the simulator keeps its state for the module)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def make_request(
    request_id: str,
    *,
    answer_to: str | None,
    supplier: str = "SIM-A",
    record: str | None = None,
    note: str | None = None,
    service_type: p.ServiceType = p.ServiceType.LOAN,
    request_type: p.RequestType | None = None,
    previous: str | None = None,
    delivery: tuple[p.RequestedDeliveryInfo, ...] = (),
    requester: p.AgencyId = REQUESTER,
    sub_types: tuple[p.RequestSubType, ...] = (),
    supplier_info: tuple[p.SupplierInfo, ...] = (),
) -> p.IllRequest:
    """An ISO 18626 request from the test's library to ``supplier`` (a simulated partner)."""
    return p.IllRequest(
        header=p.Header(
            supplying_agency_id=p.AgencyId(type="ISIL", value=supplier),
            requesting_agency_id=requester,
            timestamp=SENT_AT,
            requesting_agency_request_id=request_id,
            requesting_agency_authentication=AUTH,
        ),
        bibliographic_info=p.BibliographicInfo(
            supplier_unique_record_id=record, title="Cybernetics", author="Wiener, Norbert"
        ),
        service_info=p.ServiceInfo(
            service_type=service_type,
            request_type=request_type,
            requesting_agency_previous_request_id=previous,
            request_sub_types=sub_types,
            note=note,
        ),
        supplier_info=supplier_info,
        requested_delivery_info=delivery,
        requesting_agency_info=(
            None
            if answer_to is None
            else p.RequestingAgencyInfo(
                name="Test library",
                addresses=(
                    p.ElectronicAddress(type="EMAIL", data="ill@example.org"),
                    p.ElectronicAddress(type="URL", data=answer_to),
                ),
            )
        ),
    )


def action(
    request_id: str, act: p.Action, *, supplier: str = "SIM-A", note: str | None = None
) -> p.RequestingAgencyMessage:
    return p.RequestingAgencyMessage(
        header=p.Header(
            supplying_agency_id=p.AgencyId(type="ISIL", value=supplier),
            requesting_agency_id=REQUESTER,
            timestamp=SENT_AT,
            requesting_agency_request_id=request_id,
            requesting_agency_authentication=AUTH,
        ),
        action=act,
        note=note,
    )


def post(sim: Simulator, message: p.Message) -> httpx.Response:
    return httpx.post(
        sim.url,
        content=codec.build(message),
        headers={"Content-Type": "application/xml"},
        timeout=30,
    )


def confirmation(response: httpx.Response, schema: etree.XMLSchema) -> p.Message:
    """The simulator's synchronous answer: HTTP 200, application/xml, XSD-valid."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert schema.validate(etree.fromstring(response.content)), schema.error_log
    return codec.parse(response.content).message


def ok(response: httpx.Response, receiver: Receiver, request_id: str) -> p.Message:
    answer = confirmation(response, receiver.schema)
    assert response.headers["x-request-id"] == request_id
    assert answer.header.message_status is p.MessageStatus.OK, answer
    assert answer.header.requesting_agency_request_id == request_id
    return answer


def error(response: httpx.Response, receiver: Receiver) -> p.ErrorData:
    answer = confirmation(response, receiver.schema)
    assert answer.header.message_status is p.MessageStatus.ERROR
    assert isinstance(
        answer,
        p.RequestConfirmation
        | p.SupplyingAgencyMessageConfirmation
        | p.RequestingAgencyMessageConfirmation,
    )
    assert answer.error_data is not None
    return answer.error_data


# ---------------------------------------------------------------------------- HTTP


def test_http_errors(simulator: Simulator) -> None:
    good = codec.build(make_request("t-http", answer_to=None, record="WILLSUPPLY"))
    assert httpx.get(simulator.url, timeout=10).status_code == 405
    wrong_type = httpx.post(
        simulator.url, content=good, headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert wrong_type.status_code == 415
    xml = {"Content-Type": "text/xml; charset=utf-8"}
    for bad in (
        b"not xml at all",
        b"<ISO18626Message xmlns='urn:other'><request/></ISO18626Message>",
        f"<ISO18626Message xmlns='{NS}'/>".encode(),  # crosslink's msg-invalid.xml
        codec.build(
            p.confirm(make_request("t-http", answer_to=None), now=SENT_AT)
        ),  # a confirmation alone is no message to answer
    ):
        answer = httpx.post(simulator.url, content=bad, headers=xml, timeout=10)
        assert answer.status_code == 400, bad
        assert answer.text == "invalid ISO18626 message"
    huge = good.replace(b"Cybernetics", b"C" * (3 * 1024 * 1024))
    assert httpx.post(simulator.url, content=huge, headers=xml, timeout=30).status_code == 413
    # ... and the next good message is answered as usual.
    after = httpx.post(simulator.url, content=good, headers=xml, timeout=10)
    assert after.status_code == 200
    assert codec.parse(after.content).message.header.message_status is p.MessageStatus.OK


@pytest.mark.parametrize("status", [400, 500])
def test_http_error_scenarios(
    simulator: Simulator, receiver: Receiver, rid: str, status: int
) -> None:
    answer = post(
        simulator, make_request(rid, answer_to=receiver.url, record=f"HTTP-ERROR-{status}")
    )
    assert answer.status_code == status
    assert answer.text == f"MOCK HTTP-ERROR-{status}"
    receiver.settled(rid, 0)


# ---------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize(
    ("scenario", "service_type", "expected"),
    [
        ("LOANED", p.ServiceType.LOAN, ["RequestResponse/Loaned"]),
        ("WILLSUPPLY", p.ServiceType.LOAN, ["RequestResponse/WillSupply"]),
        (
            "WILLSUPPLY_LOANED",
            p.ServiceType.LOAN,
            ["RequestResponse/WillSupply", "StatusChange/Loaned"],
        ),
        ("UNFILLED", p.ServiceType.LOAN, ["RequestResponse/Unfilled"]),
        (
            "WILLSUPPLY_UNFILLED",
            p.ServiceType.COPY,
            ["RequestResponse/WillSupply", "StatusChange/Unfilled"],
        ),
        ("COMPLETED", p.ServiceType.LOAN, ["RequestResponse/LoanCompleted"]),
        ("COMPLETED", p.ServiceType.COPY, ["RequestResponse/CopyCompleted"]),
        ("LOANED_OVERDUE", p.ServiceType.LOAN, ["RequestResponse/Loaned"]),
        (
            "WILLSUPPLY_LOANED_RECALLED",
            p.ServiceType.LOAN,
            ["RequestResponse/WillSupply", "StatusChange/Loaned"],
        ),
        ("NO-SUCH-SCENARIO", p.ServiceType.LOAN, ["RequestResponse/Unfilled"]),
        (None, p.ServiceType.LOAN, ["RequestResponse/Unfilled"]),
    ],
)
def test_scenario_statuses(
    simulator: Simulator,
    receiver: Receiver,
    rid: str,
    scenario: str | None,
    service_type: p.ServiceType,
    expected: list[str],
) -> None:
    request = make_request(rid, answer_to=receiver.url, record=scenario, service_type=service_type)
    answer = ok(post(simulator, request), receiver, rid)
    assert isinstance(answer, p.RequestConfirmation)
    assert answer.header.supplying_agency_id == request.header.supplying_agency_id
    assert answer.header.requesting_agency_id == REQUESTER

    got = receiver.settled(rid, len(expected))
    assert statuses(got) == expected
    assert {g.path for g in got} == {"/iso18626"}  # the address the request named
    supplier_ids = set()
    for g in got:
        header = supplying(g).header
        # One simulator plays every partner: it answers as the agency that was asked.
        assert header.supplying_agency_id == p.AgencyId(type="ISIL", value="SIM-A")
        assert header.requesting_agency_id == REQUESTER
        assert header.requesting_agency_authentication == AUTH
        supplier_ids.add(header.supplying_agency_request_id)
    assert len(supplier_ids) == 1
    assert None not in supplier_ids


def test_log_has_a_line_per_message(simulator: Simulator, receiver: Receiver, rid: str) -> None:
    request = make_request(rid, answer_to=receiver.url, record="WILLSUPPLY_LOANED")
    ok(post(simulator, request), receiver, rid)
    receiver.wait_for(rid, 2)
    deadline = time.monotonic() + WAIT
    while f"sent StatusChange Loaned for {rid}" not in simulator.log():
        assert time.monotonic() < deadline, simulator.log()
        time.sleep(0.05)
    lines = [line for line in simulator.log().splitlines() if rid in line]
    assert (
        f"request {rid} from ISIL:DK-TEST to ISIL:SIM-A, scenario 'WILLSUPPLY_LOANED'" in (lines[0])
    )
    assert f"sent RequestResponse WillSupply for {rid} to {receiver.url}: OK" in lines[1]
    assert f"sent StatusChange Loaned for {rid} to {receiver.url}: OK" in lines[2]


def test_many_requests_at_once(simulator: Simulator, receiver: Receiver) -> None:
    flows = {
        "WILLSUPPLY_LOANED": ["RequestResponse/WillSupply", "StatusChange/Loaned"],
        "LOANED": ["RequestResponse/Loaned"],
        "WILLSUPPLY_UNFILLED": ["RequestResponse/WillSupply", "StatusChange/Unfilled"],
    }
    batch = [(f"t-{uuid.uuid4().hex[:12]}", scenario) for scenario in flows for _ in range(40)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        simulator.url,
                        content=codec.build(make_request(r, answer_to=receiver.url, record=sc)),
                        headers={"Content-Type": "application/xml"},
                    )
                    for r, sc in batch
                )
            )

    answers = asyncio.run(send_all())
    for (request_id, _), answer in zip(batch, answers, strict=True):
        ok(answer, receiver, request_id)
    for request_id, scenario in batch:
        got = receiver.wait_for(request_id, len(flows[scenario]), timeout=60)
        assert statuses(got) == flows[scenario]  # in order
    time.sleep(QUIET)
    for request_id, scenario in batch:
        arrived = [g for g in receiver.got if g.request_id == request_id]
        assert len(arrived) == len(flows[scenario])  # and each once


def test_follow_ups_are_a_delay_apart(simulator: Simulator, receiver: Receiver, rid: str) -> None:
    ok(
        post(simulator, make_request(rid, answer_to=receiver.url, record="WILLSUPPLY_LOANED")),
        receiver,
        rid,
    )
    will, loaned = (supplying(g) for g in receiver.wait_for(rid, 2))
    gap = loaned.header.timestamp - will.header.timestamp
    assert gap >= timedelta(milliseconds=DELAY_MS * 0.9)


def test_note_selects_the_scenario_for_its_supplier_only(
    simulator: Simulator, receiver: Receiver
) -> None:
    mine, other = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    ok(
        post(
            simulator,
            make_request(
                mine,
                answer_to=receiver.url,
                record="UNFILLED",
                note="Please hurry #MOCK:SIM-A:WILLSUPPLY_LOANED; thanks",
            ),
        ),
        receiver,
        mine,
    )
    ok(
        post(
            simulator,
            make_request(
                other, answer_to=receiver.url, record="WILLSUPPLY", note="MOCK:SIM-B:LOANED"
            ),
        ),
        receiver,
        other,
    )
    assert statuses(receiver.settled(mine, 2)) == [
        "RequestResponse/WillSupply",
        "StatusChange/Loaned",
    ]
    assert statuses(receiver.settled(other, 1)) == ["RequestResponse/WillSupply"]


def test_configured_scenario_when_the_request_names_none(
    simulator: Simulator, receiver: Receiver
) -> None:
    plain, noted = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    request = make_request(plain, answer_to=receiver.url, supplier="SIM-CONFIGURED")
    ok(post(simulator, request), receiver, plain)
    assert statuses(receiver.settled(plain, 2)) == [
        "RequestResponse/WillSupply",
        "StatusChange/Loaned",
    ]
    # What the request names still wins.
    request = make_request(
        noted,
        answer_to=receiver.url,
        supplier="SIM-CONFIGURED",
        note="MOCK:SIM-CONFIGURED:UNFILLED",
    )
    ok(post(simulator, request), receiver, noted)
    assert statuses(receiver.settled(noted, 1)) == ["RequestResponse/Unfilled"]


@pytest.mark.parametrize(
    ("note", "record", "request_type", "defaults", "scenario"),
    [
        (None, None, None, {}, "UNFILLED"),
        (None, "LOANED", None, {"SIM-A": "WILLSUPPLY"}, "LOANED"),
        ("MOCK:SIM-A:COMPLETED", "LOANED", None, {}, "COMPLETED"),
        ("ask MOCK:SIM-B:COMPLETED", "LOANED", None, {}, "LOANED"),  # another lender's token
        ("x MOCK:SIM-A:RETRY:COND_LOANED;y", None, None, {}, "RETRY:COND"),
        ("MOCK:SIM-A:RETRY:COND_LOANED", None, p.RequestType.RETRY, {}, "LOANED"),
        (None, "RETRY:ONLOAN", p.RequestType.RETRY, {}, ""),
        (None, None, None, {"SIM-A": "WILLSUPPLY"}, "WILLSUPPLY"),
        (None, None, None, {"*": "LOANED", "SIM-B": "UNFILLED"}, "LOANED"),
        (None, None, None, {"*": "LOANED", "SIM-A": "RETRY:COST"}, "RETRY:COST"),
    ],
)
def test_scenario_selection(
    note: str | None,
    record: str | None,
    request_type: p.RequestType | None,
    defaults: dict[str, str],
    scenario: str,
) -> None:
    request = make_request(
        "t-pure", answer_to=None, record=record, note=note, request_type=request_type
    )
    assert scenario_for(request, defaults) == scenario


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--scenario", "LOANED"], "must look like AGENCY=SCENARIO"),
        (["--scenario", "=LOANED"], "must look like AGENCY=SCENARIO"),
        (["--peer-url", "ftp://example.org/"], "must be an http:// or https:// URL"),
        (["--delay", "-5"], "Invalid value for '--delay'"),
        (["--host", "0.0.0.0"], "add --allow-remote"),
    ],
)
def test_bad_options_are_named(args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, ["simulate-partner", *args], prog_name="ill-tui")
    assert result.exit_code != 0
    assert words in result.output
    assert "Traceback" not in result.output


def test_peer_url_when_the_request_names_no_address(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, make_request(rid, answer_to=None, record="LOANED")), receiver, rid)
    (got,) = receiver.settled(rid, 1)
    assert got.path == "/peer"


ADDRESS = p.PhysicalAddress(line1="1 Library Way", locality="Aarhus", country="DK")


@pytest.mark.parametrize(
    ("delivery", "service_type", "sent_via", "delivered_format", "item_id"),
    [
        ((), p.ServiceType.LOAN, "URL", "PDF", "http://example.com/123456789"),
        (
            (p.RequestedDeliveryInfo(sort_order=1, address=ADDRESS),),
            p.ServiceType.LOAN,
            "Mail",
            "Printed",
            "123456789",
        ),
        (
            (p.RequestedDeliveryInfo(sort_order=1, address=ADDRESS),),
            p.ServiceType.COPY,
            "Mail",
            "PaperCopy",
            "123456789",
        ),
        (
            (
                p.RequestedDeliveryInfo(sort_order=2, address=ADDRESS),
                p.RequestedDeliveryInfo(
                    sort_order=1,
                    address=p.ElectronicAddress(type="EMAIL", data="ill@example.org"),
                ),
            ),
            p.ServiceType.LOAN,
            "Email",
            "PDF",
            "123456789",
        ),
        (
            (
                p.RequestedDeliveryInfo(
                    sort_order=1, address=p.ElectronicAddress(type="FTP", data="ftp.example.org")
                ),
                p.RequestedDeliveryInfo(sort_order=3, address=ADDRESS),
            ),
            p.ServiceType.LOAN,
            "FTP",
            "PDF",
            "ftp://ftp.example.com/1234567889",
        ),
    ],
)
def test_loaned_carries_due_date_and_delivery(
    simulator: Simulator,
    receiver: Receiver,
    rid: str,
    delivery: tuple[p.RequestedDeliveryInfo, ...],
    service_type: p.ServiceType,
    sent_via: str,
    delivered_format: str,
    item_id: str,
) -> None:
    request = make_request(
        rid, answer_to=receiver.url, record="LOANED", delivery=delivery, service_type=service_type
    )
    before = datetime.now(UTC)
    ok(post(simulator, request), receiver, rid)
    loaned = supplying(receiver.settled(rid, 1)[0])
    assert loaned.status_info.status is p.Status.LOANED
    due = loaned.status_info.due_date
    assert due is not None
    assert due - loaned.status_info.last_change == timedelta(days=14)
    assert before - timedelta(seconds=5) <= loaned.status_info.last_change <= datetime.now(UTC)
    info = loaned.delivery_info
    assert info is not None
    assert (info.sent_via, info.delivered_format, info.item_id) == (
        sent_via,
        delivered_format,
        item_id,
    )


@pytest.mark.parametrize(
    ("scenario", "reason_retry"),
    [
        ("RETRY:COST", "CostExceedsMaxCost"),
        ("RETRY:ONLOAN", "OnLoan"),
        ("RETRY:COND", "LoanCondition"),
        ("RETRY:NOTFOUNDASCITED", "NotFoundAsCited"),
    ],
)
def test_retry_scenarios(
    simulator: Simulator, receiver: Receiver, rid: str, scenario: str, reason_retry: str
) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record=scenario)), receiver, rid)
    message = supplying(receiver.settled(rid, 1)[0])
    info = message.message_info
    assert message.status_info.status is p.Status.RETRY_POSSIBLE
    assert info.reason_for_message is p.ReasonForMessage.REQUEST_RESPONSE
    assert info.reason_retry == reason_retry
    if scenario == "RETRY:COST":
        assert info.reason_unfilled == "CostExceedsMaxCost"
        assert info.offered_costs == p.Costs(amount=Decimal(35), currency="USD")
    else:
        assert info.reason_unfilled is None
        assert info.offered_costs is None
    if scenario == "RETRY:ONLOAN":
        assert info.retry_after is not None
        assert abs(info.retry_after - message.status_info.last_change) < timedelta(seconds=1)
    else:
        assert info.retry_after is None
    delivery = message.delivery_info
    if scenario == "RETRY:COND":
        assert delivery is not None
        assert delivery.loan_condition == "NoReproduction"
    elif scenario == "RETRY:NOTFOUNDASCITED":
        assert delivery is not None
        assert delivery.item_id
    else:
        assert delivery is None


@pytest.mark.parametrize("keep_id", [False, True])
def test_retry_then_the_second_scenario(
    simulator: Simulator, receiver: Receiver, keep_id: bool
) -> None:
    first = f"t-{uuid.uuid4().hex[:12]}"
    # With the same id (#RETRYKEEPID#), the Retry is accepted only because RetryPossible
    # dropped the first request's state.
    second = first if keep_id else f"t-{uuid.uuid4().hex[:12]}"
    ok(
        post(simulator, make_request(first, answer_to=receiver.url, record="RETRY:COST_LOANED")),
        receiver,
        first,
    )
    assert statuses(receiver.wait_for(first, 1)) == ["RequestResponse/RetryPossible"]
    retry = make_request(
        second,
        answer_to=receiver.url,
        record="RETRY:COST_LOANED",
        request_type=p.RequestType.RETRY,
        previous=first,
    )
    ok(post(simulator, retry), receiver, second)
    got = receiver.settled(second, 2 if keep_id else 1)
    loaned = got[-1]
    assert describe(loaned.message) == "RequestResponse/Loaned"
    assert supplying(loaned).status_info.due_date is not None
    if not keep_id:
        receiver.settled(first, 1)


def test_retry_without_a_second_scenario_is_only_confirmed(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    retry = make_request(
        rid, answer_to=receiver.url, record="RETRY:ONLOAN", request_type=p.RequestType.RETRY
    )
    ok(post(simulator, retry), receiver, rid)
    receiver.settled(rid, 0)


def test_error_scenario(simulator: Simulator, receiver: Receiver, rid: str) -> None:
    answer = post(simulator, make_request(rid, answer_to=receiver.url, record="ERROR"))
    assert error(answer, receiver) == p.ErrorData(
        error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE, error_value="MOCK ERROR"
    )
    receiver.settled(rid, 0)


# ---------------------------------------------------------------------------- validation


def test_request_validation(simulator: Simulator, receiver: Receiver, rid: str) -> None:
    no_id = make_request("", answer_to=receiver.url, record="LOANED")
    assert error(post(simulator, no_id), receiver) == p.ErrorData(
        error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE,
        error_value="requestingAgencyRequestId: cannot be empty",
    )
    no_requester = make_request(
        rid, answer_to=receiver.url, record="LOANED", requester=p.AgencyId(type="ISIL", value="")
    )
    assert error(post(simulator, no_requester), receiver).error_type is (
        p.ErrorType.UNRECOGNISED_DATA_VALUE
    )
    no_supplier = make_request(rid, answer_to=receiver.url, record="LOANED", supplier="")
    assert error(post(simulator, no_supplier), receiver).error_type is (
        p.ErrorType.UNRECOGNISED_DATA_VALUE
    )

    first = make_request(rid, answer_to=receiver.url, record="WILLSUPPLY")
    ok(post(simulator, first), receiver, rid)
    assert error(post(simulator, first), receiver) == p.ErrorData(
        error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE,
        error_value="RequestingAgencyRequestId already exists",
    )
    # The same id at another supplier is another transaction.
    other = make_request(rid, answer_to=receiver.url, record="WILLSUPPLY", supplier="SIM-B")
    ok(post(simulator, other), receiver, rid)
    got = receiver.settled(rid, 2)
    assert sorted(supplying(g).header.supplying_agency_id.value for g in got) == ["SIM-A", "SIM-B"]


def test_unsupported_action_is_refused_with_its_error_type(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    body = codec.build(action(rid, p.Action.RECEIVED)).replace(
        b"<action>Received</action>", b"<action>WeCancelThisMessage</action>"
    )
    answer = httpx.post(
        simulator.url, content=body, headers={"Content-Type": "application/xml"}, timeout=10
    )
    assert error(answer, receiver) == p.ErrorData(
        error_type=p.ErrorType.UNSUPPORTED_ACTION_TYPE,
        error_value="invalid action: WeCancelThisMessage",
    )


def test_terminal_status_drops_the_state(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="UNFILLED")), receiver, rid)
    receiver.settled(rid, 1)
    # Dropped after Unfilled: the id may be used again, and actions about it change nothing.
    ok(post(simulator, action(rid, p.Action.RENEW)), receiver, rid)
    receiver.settled(rid, 1)
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="LOANED")), receiver, rid)
    assert statuses(receiver.settled(rid, 2))[1] == "RequestResponse/Loaned"


# ---------------------------------------------------------------------------- reactions


def test_action_for_an_unknown_request_is_confirmed_and_ignored(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    answer = ok(post(simulator, action(rid, p.Action.CANCEL)), receiver, rid)
    assert isinstance(answer, p.RequestingAgencyMessageConfirmation)
    assert answer.action is p.Action.CANCEL
    receiver.settled(rid, 0)


@pytest.mark.parametrize(
    ("scenario", "before", "after_received"),
    [
        ("LOANED", 1, None),
        ("LOANED_OVERDUE", 1, "StatusChange/Overdue"),
        ("WILLSUPPLY_LOANED_OVERDUE", 2, "StatusChange/Overdue"),
        ("LOANED_RECALLED", 1, "StatusChange/Recalled"),
        ("WILLSUPPLY_LOANED_RECALLED", 2, "StatusChange/Recalled"),
    ],
)
def test_received_triggers_overdue_or_recalled(
    simulator: Simulator,
    receiver: Receiver,
    rid: str,
    scenario: str,
    before: int,
    after_received: str | None,
) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record=scenario)), receiver, rid)
    got = receiver.wait_for(rid, before)
    assert statuses(got)[-1].endswith("/Loaned")
    answer = ok(post(simulator, action(rid, p.Action.RECEIVED)), receiver, rid)
    assert isinstance(answer, p.RequestingAgencyMessageConfirmation)
    assert answer.action is p.Action.RECEIVED
    expected = statuses(got) + ([after_received] if after_received else [])
    assert statuses(receiver.settled(rid, len(expected))) == expected
    # Only once: a second Received changes nothing.
    ok(post(simulator, action(rid, p.Action.RECEIVED)), receiver, rid)
    receiver.settled(rid, len(expected))


def test_renew_is_answered_yes_with_a_new_due_date(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="LOANED")), receiver, rid)
    receiver.wait_for(rid, 1)
    ok(post(simulator, action(rid, p.Action.RENEW)), receiver, rid)
    loaned, renewed = (supplying(g) for g in receiver.settled(rid, 2))
    assert renewed.message_info.reason_for_message is p.ReasonForMessage.RENEW_RESPONSE
    assert renewed.message_info.answer_yes_no is p.YesNo.Y
    assert renewed.status_info.status is p.Status.LOANED
    assert renewed.status_info.due_date is not None
    assert loaned.status_info.due_date is not None
    assert renewed.status_info.due_date == loaned.status_info.due_date + timedelta(days=14)
    assert renewed.header.supplying_agency_request_id == loaned.header.supplying_agency_request_id


def test_cancel_before_loaned_is_accepted(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(
        post(simulator, make_request(rid, answer_to=receiver.url, record="WILLSUPPLY")),
        receiver,
        rid,
    )
    receiver.wait_for(rid, 1)
    ok(post(simulator, action(rid, p.Action.CANCEL)), receiver, rid)
    got = receiver.settled(rid, 2)
    answer = supplying(got[1])
    assert describe(answer) == "CancelResponse/Cancelled"
    assert answer.message_info.answer_yes_no is p.YesNo.Y
    # Cancelled is final: the request is forgotten and its id may be used again.
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="UNFILLED")), receiver, rid)
    receiver.settled(rid, 3)


def test_cancel_racing_a_scenario_is_answered_consistently(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    # Cancel right after the confirmation of a WillSupply-then-Loaned chain. Which goes out
    # first depends on timing (as in illmock); the answer must agree with what went out.
    request = make_request(rid, answer_to=receiver.url, record="WILLSUPPLY_LOANED")
    ok(post(simulator, request), receiver, rid)
    ok(post(simulator, action(rid, p.Action.CANCEL)), receiver, rid)
    seen = statuses(receiver.wait_for(rid, 2))
    if "StatusChange/Loaned" in seen:
        assert statuses(receiver.settled(rid, 3))[2] == "CancelResponse/Loaned"
    else:
        final = statuses(receiver.settled(rid, 2))
        assert "CancelResponse/Cancelled" in final  # and no Loaned after it


def test_cancel_after_loaned_is_refused(simulator: Simulator, receiver: Receiver, rid: str) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="LOANED")), receiver, rid)
    receiver.wait_for(rid, 1)
    ok(post(simulator, action(rid, p.Action.CANCEL)), receiver, rid)
    answer = supplying(receiver.settled(rid, 2)[1])
    assert describe(answer) == "CancelResponse/Loaned"
    assert answer.message_info.answer_yes_no is p.YesNo.N
    assert answer.status_info.due_date is None


def test_shipped_return_completes_the_loan(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, make_request(rid, answer_to=receiver.url, record="LOANED")), receiver, rid)
    receiver.wait_for(rid, 1)
    ok(post(simulator, action(rid, p.Action.RECEIVED)), receiver, rid)
    ok(post(simulator, action(rid, p.Action.SHIPPED_RETURN)), receiver, rid)
    got = receiver.settled(rid, 2)
    assert statuses(got) == ["RequestResponse/Loaned", "StatusChange/LoanCompleted"]
    # LoanCompleted is final: another ShippedReturn is confirmed and changes nothing.
    ok(post(simulator, action(rid, p.Action.SHIPPED_RETURN)), receiver, rid)
    receiver.settled(rid, 2)


def test_status_request_and_notification_are_ignored(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(
        post(simulator, make_request(rid, answer_to=receiver.url, record="WILLSUPPLY")),
        receiver,
        rid,
    )
    receiver.wait_for(rid, 1)
    for act in (p.Action.STATUS_REQUEST, p.Action.NOTIFICATION):
        answer = ok(post(simulator, action(rid, act, note="hello")), receiver, rid)
        assert isinstance(answer, p.RequestingAgencyMessageConfirmation)
        assert answer.action is act
    receiver.settled(rid, 1)


def test_a_peer_that_is_down_does_not_stop_the_simulator(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/iso18626"
    ok(
        post(simulator, make_request(rid, answer_to=dead, record="WILLSUPPLY_LOANED")),
        receiver,
        rid,
    )
    deadline = time.monotonic() + WAIT
    while "failed" not in simulator.log() or rid not in simulator.log():
        assert time.monotonic() < deadline, simulator.log()
        time.sleep(0.1)
    assert simulator.process.poll() is None
    # The chain stopped at the failure, and the next request is served as usual.
    receiver.settled(rid, 0)
    again = f"{rid}-2"
    ok(
        post(simulator, make_request(again, answer_to=receiver.url, record="LOANED")),
        receiver,
        again,
    )
    assert statuses(receiver.settled(again, 1)) == ["RequestResponse/Loaned"]


# ---------------------------------------------------------------------------- requester role


def patron_request(
    request_id: str, receiver: Receiver, *, note: str | None = None, supplier: str = "LENDER"
) -> p.IllRequest:
    """A patron request asking the simulator to borrow from the receiver (as supplier)."""
    return make_request(
        request_id,
        answer_to=None,
        supplier=supplier,
        note=note,
        sub_types=(p.RequestSubType.PATRON_REQUEST,),
        supplier_info=(p.SupplierInfo(sort_order=1, supplier_description=receiver.url),),
    )


def supplier_says(
    forwarded: p.IllRequest,
    status: p.Status,
    *,
    reason: p.ReasonForMessage = p.ReasonForMessage.STATUS_CHANGE,
    reason_retry: str | None = None,
    offered: p.Costs | None = None,
    answer: p.YesNo | None = None,
) -> p.SupplyingAgencyMessage:
    return p.SupplyingAgencyMessage(
        header=dataclasses.replace(
            forwarded.header, timestamp=SENT_AT, supplying_agency_request_id="LENDER-1"
        ),
        message_info=p.MessageInfo(
            reason_for_message=reason,
            reason_retry=reason_retry,
            offered_costs=offered,
            answer_yes_no=answer,
        ),
        status_info=p.StatusInfo(status=status, last_change=SENT_AT),
    )


def forwarded_request(receiver: Receiver, request_id: str) -> p.IllRequest:
    (got,) = receiver.wait_for(request_id, 1)
    assert isinstance(got.message, p.IllRequest)
    return got.message


def actions(got: list[Got]) -> list[str]:
    return [describe(g.message) for g in got]


def test_patron_request_is_forwarded_as_a_plain_request(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    answer = ok(post(simulator, patron_request(rid, receiver)), receiver, rid)
    assert isinstance(answer, p.RequestConfirmation)
    forwarded = forwarded_request(receiver, rid)
    assert forwarded.service_info is not None
    assert forwarded.service_info.request_sub_types == ()
    assert forwarded.supplier_info == ()
    assert forwarded.header.supplying_agency_id == p.AgencyId(type="ISIL", value="LENDER")
    assert forwarded.bibliographic_info.title == "Cybernetics"


def test_requester_receives_and_returns_a_loan(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, patron_request(rid, receiver)), receiver, rid)
    forwarded = forwarded_request(receiver, rid)
    # A Notification is confirmed and ignored, whatever status it carries.
    note = supplier_says(forwarded, p.Status.LOANED, reason=p.ReasonForMessage.NOTIFICATION)
    noted = ok(post(simulator, note), receiver, rid)
    assert isinstance(noted, p.SupplyingAgencyMessageConfirmation)
    assert noted.reason_for_message is p.ReasonForMessage.NOTIFICATION
    receiver.settled(rid, 1)
    will = supplier_says(
        forwarded, p.Status.WILL_SUPPLY, reason=p.ReasonForMessage.REQUEST_RESPONSE
    )
    answer = ok(post(simulator, will), receiver, rid)
    assert isinstance(answer, p.SupplyingAgencyMessageConfirmation)
    assert answer.reason_for_message is p.ReasonForMessage.REQUEST_RESPONSE
    ok(post(simulator, supplier_says(forwarded, p.Status.LOANED)), receiver, rid)
    got = receiver.settled(rid, 3)
    assert actions(got) == ["request", "action Received", "action ShippedReturn"]
    for g in got[1:]:
        assert isinstance(g.message, p.RequestingAgencyMessage)
        assert g.message.header.supplying_agency_request_id == "LENDER-1"
    ok(post(simulator, supplier_says(forwarded, p.Status.LOAN_COMPLETED)), receiver, rid)
    # Completed: the simulator forgets the request.
    gone = error(post(simulator, supplier_says(forwarded, p.Status.LOAN_COMPLETED)), receiver)
    assert gone == p.ErrorData(
        error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE,
        error_value="non-existing RequestingAgencyRequestId",
    )


def test_requester_cancels_renews_and_returns_on_recall(
    simulator: Simulator, receiver: Receiver
) -> None:
    cancel, renew, recall = (f"t-{uuid.uuid4().hex[:12]}" for _ in range(3))
    ok(post(simulator, patron_request(cancel, receiver, note="#CANCEL#")), receiver, cancel)
    ok(post(simulator, patron_request(renew, receiver, note="#RENEW#")), receiver, renew)
    ok(post(simulator, patron_request(recall, receiver, note="#RECALL#")), receiver, recall)

    first = forwarded_request(receiver, cancel)
    ok(post(simulator, supplier_says(first, p.Status.WILL_SUPPLY)), receiver, cancel)
    assert actions(receiver.settled(cancel, 2)) == ["request", "action Cancel"]

    second = forwarded_request(receiver, renew)
    ok(post(simulator, supplier_says(second, p.Status.LOANED)), receiver, renew)
    assert actions(receiver.settled(renew, 2)) == ["request", "action Received"]  # no return yet
    ok(post(simulator, supplier_says(second, p.Status.OVERDUE)), receiver, renew)
    assert actions(receiver.settled(renew, 4))[2:] == ["action Renew", "action ShippedReturn"]

    third = forwarded_request(receiver, recall)
    ok(post(simulator, supplier_says(third, p.Status.LOANED)), receiver, recall)
    assert actions(receiver.settled(recall, 2)) == ["request", "action Received"]
    ok(post(simulator, supplier_says(third, p.Status.RECALLED)), receiver, recall)
    assert actions(receiver.settled(recall, 3))[2] == "action ShippedReturn"


def test_requester_retries_with_the_offered_cost(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    ok(post(simulator, patron_request(rid, receiver)), receiver, rid)
    forwarded = forwarded_request(receiver, rid)
    offered = p.Costs(amount=Decimal("42.50"), currency="EUR")
    retry_possible = supplier_says(
        forwarded,
        p.Status.RETRY_POSSIBLE,
        reason_retry="CostExceedsMaxCost",
        offered=offered,
    )
    ok(post(simulator, retry_possible), receiver, rid)
    deadline = time.monotonic() + WAIT
    while True:
        retries = [
            g.message
            for g in receiver.got
            if isinstance(g.message, p.IllRequest)
            and g.message.service_info is not None
            and g.message.service_info.requesting_agency_previous_request_id == rid
        ]
        if retries:
            break
        assert time.monotonic() < deadline, "no Retry request arrived"
        time.sleep(0.05)
    (retry,) = retries
    assert retry.service_info is not None
    assert retry.service_info.request_type is p.RequestType.RETRY
    assert retry.header.requesting_agency_request_id != rid  # a new id (no #RETRYKEEPID#)
    assert retry.billing_info is not None
    assert retry.billing_info.maximum_costs == offered
    # The old id is forgotten, the new one is known.
    new_id = retry.header.requesting_agency_request_id
    assert error(post(simulator, supplier_says(forwarded, p.Status.LOANED)), receiver)
    renamed = dataclasses.replace(
        forwarded,
        header=dataclasses.replace(forwarded.header, requesting_agency_request_id=new_id),
    )
    ok(post(simulator, supplier_says(renamed, p.Status.UNFILLED)), receiver, new_id)


def test_requester_unknown_request_is_an_error(
    simulator: Simulator, receiver: Receiver, rid: str
) -> None:
    stray = make_request(rid, answer_to=None)
    answer = error(post(simulator, supplier_says(stray, p.Status.LOANED)), receiver)
    assert answer.error_value == "non-existing RequestingAgencyRequestId"


def test_patron_request_to_a_supplier_that_is_down(simulator: Simulator, rid: str) -> None:
    request = make_request(
        rid,
        answer_to=None,
        sub_types=(p.RequestSubType.PATRON_REQUEST,),
        supplier_info=(
            p.SupplierInfo(supplier_description=f"http://127.0.0.1:{free_port()}/iso18626"),
        ),
    )
    answer = post(simulator, request)
    assert answer.status_code == 200
    parsed = codec.parse(answer.content).message
    assert isinstance(parsed, p.RequestConfirmation)
    assert parsed.header.message_status is p.MessageStatus.ERROR
    assert parsed.error_data is not None
    assert parsed.error_data.error_type is p.ErrorType.UNRECOGNISED_DATA_ELEMENT
    assert parsed.error_data.error_value is not None
    assert parsed.error_data.error_value.startswith("error sending request to supplier")


def test_patron_request_passes_the_suppliers_error_on(simulator: Simulator, rid: str) -> None:
    # The simulator as requester, forwarding to itself as supplier, which plays ERROR.
    request = make_request(
        rid,
        answer_to=None,
        record="ERROR",
        sub_types=(p.RequestSubType.PATRON_REQUEST,),
        supplier_info=(p.SupplierInfo(supplier_description=simulator.url),),
    )
    answer = codec.parse(post(simulator, request).content).message
    assert isinstance(answer, p.RequestConfirmation)
    assert answer.header.message_status is p.MessageStatus.ERROR
    assert answer.error_data == p.ErrorData(
        error_type=p.ErrorType.UNRECOGNISED_DATA_VALUE, error_value="MOCK ERROR"
    )


def test_requester_and_supplier_roles_play_a_loan_through_together(
    simulator: Simulator, rid: str
) -> None:
    # illmock's own loop: one simulator borrows from itself, answers going to itself too.
    request = make_request(
        rid,
        answer_to=simulator.url,
        record="LOANED",
        sub_types=(p.RequestSubType.PATRON_REQUEST,),
        supplier_info=(p.SupplierInfo(supplier_description=simulator.url),),
    )
    answer = codec.parse(post(simulator, request).content).message
    assert answer.header.message_status is p.MessageStatus.OK
    expected = [
        f"sent New request for {rid} to {simulator.url}: OK",
        f"sent RequestResponse Loaned for {rid} to {simulator.url}: OK",
        f"sent action Received for {rid} to {simulator.url}: OK",
        f"sent action ShippedReturn for {rid} to {simulator.url}: OK",
        f"sent StatusChange LoanCompleted for {rid} to {simulator.url}: OK",
    ]
    deadline = time.monotonic() + WAIT
    while expected[-1] not in simulator.log():
        assert time.monotonic() < deadline, simulator.log()
        time.sleep(0.05)
    sent = [line for line in simulator.log().splitlines() if "sent " in line and rid in line]
    said = [line.split("simulator: ", 1)[1] for line in sent]
    assert sorted(said) == sorted(expected)
    # Each role's own messages go out in order (the two roles' lines may interleave).
    assert said.index(expected[1]) < said.index(expected[4])
    assert said.index(expected[2]) < said.index(expected[3]) < said.index(expected[4])
