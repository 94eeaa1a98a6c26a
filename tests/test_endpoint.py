"""The inbound endpoint, as partners meet it: a real ``ill-tui serve`` on a loopback port.

Negative samples from the conformance corpus (tests/data/iso18626, see its SOURCES.md) get
the answers crosslink's broker gives; hostile bodies (XXE, billion laughs, 20 MB, non-XML,
another namespace) are refused; after each, the server answers a good message normally and
stores it once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from iso_instances import ServeProcess, post_xml
from sqlmodel import select

from adapters.iso18626 import codec
from ill_tui import protocol as p
from ill_tui.cli import cli
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import IsoMessage, Partner, Request

CORPUS = Path(__file__).parent / "data" / "iso18626" / "crosslink"
US = p.AgencyId(type="ISIL", value="US-LEND")
PARTNER = p.AgencyId(type="ISIL", value="DK-A")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``ill-tui serve`` for the module, with partner ISIL:DK-A known to it."""
    directory = tmp_path_factory.mktemp("endpoint")
    url = sqlite_url(directory / "lender.db")
    engine = open_database(url)
    with session_scope(engine) as session:
        session.add(
            Partner(agency_id_type="ISIL", agency_id_value="DK-A", name="Library A",
                    country="DK", currency="DKK")
        )  # fmt: skip
    engine.dispose()
    proc = ServeProcess(url, agency=str(US), log_path=directory / "serve.log")
    proc.start()
    try:
        yield proc
    finally:
        status = proc.stop()
        assert status == 0, proc.log_text()
        assert "ill-tui serve: stopped by SIGTERM" in proc.log_text()


def request_body(request_id: str, *, sender: p.AgencyId = PARTNER) -> bytes:
    message = p.IllRequest(
        header=p.Header(
            supplying_agency_id=US,
            requesting_agency_id=sender,
            timestamp=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
            requesting_agency_request_id=request_id,
        ),
        bibliographic_info=p.BibliographicInfo(title="Moby-Dick", author="Melville, Herman"),
        service_info=p.ServiceInfo(service_type=p.ServiceType.LOAN),
    )
    return codec.build(message)


def confirmation(response: httpx.Response) -> p.Confirmation:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    message = codec.parse(response.content, require_request_id=False).message
    assert isinstance(
        message,
        p.RequestConfirmation
        | p.SupplyingAgencyMessageConfirmation
        | p.RequestingAgencyMessageConfirmation,
    )
    return message


def lending_requests(server: ServeProcess, partner_request_id: str) -> int:
    engine = open_database(server.db_url)
    try:
        with session_scope(engine) as session:
            rows = session.exec(
                select(Request).where(Request.partner_request_id == partner_request_id)
            ).all()
            return len(rows)
    finally:
        engine.dispose()


def assert_still_serving(server: ServeProcess, request_id: str) -> None:
    """The server answers a good request with OK and stores it once, even when sent twice."""
    body = request_body(request_id)
    first = post_xml(server.url, body)
    answer = confirmation(first)
    assert p.is_ok(answer), answer
    assert first.headers["x-request-id"] == request_id
    assert p.is_ok(confirmation(post_xml(server.url, body)))  # a repeat: confirmed again
    assert lending_requests(server, request_id) == 1


# ---------------------------------------------------------------------------- plain HTTP refusals


def test_other_methods_and_content_types_are_refused(server: ServeProcess) -> None:
    assert httpx.get(server.url).status_code == 405
    assert httpx.put(server.url, content=b"<x/>").status_code == 405
    body = request_body("ct-1")
    for content_type in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
        assert post_xml(server.url, body, content_type=content_type).status_code == 415
    # text/xml and a charset parameter are fine; "/" is the same endpoint
    assert p.is_ok(confirmation(post_xml(server.url, body, content_type="text/xml; charset=utf-8")))
    root = server.url.removesuffix("iso18626")
    assert p.is_ok(confirmation(post_xml(root, request_body("ct-2"))))
    assert lending_requests(server, "ct-1") == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"this is not xml", id="not-xml"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<ISO18626Message xmlns='urn:other'><request/></ISO18626Message>",
                     id="wrong-namespace"),
        pytest.param((CORPUS / "broker-testdata-msg-invalid.xml").read_bytes(),
                     id="corpus-msg-invalid"),
    ],
)  # fmt: skip
def test_bytes_that_are_not_an_iso_message_get_400_plain_text(
    server: ServeProcess, body: bytes
) -> None:
    response = post_xml(server.url, body)
    assert response.status_code == 400
    assert response.text == "invalid ISO18626 message"
    assert_still_serving(server, f"after-400-{len(body)}")


def test_a_confirmation_is_not_answered(server: ServeProcess) -> None:
    now = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    ok = p.confirm(codec.parse(request_body("conf-1")).message, now=now)  # type: ignore[arg-type]
    response = post_xml(server.url, codec.build(ok))
    assert response.status_code == 400


# ---------------------------------------------------------------------------- ERROR confirmations


def _sample(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


NEGATIVE = [
    pytest.param(
        _sample("broker-testdata-supmsg-invalid-reason.xml"),
        "UnsupportedReasonForMessageType", "invalid reason: NoGoodReason", id="invalid-reason",
    ),
    pytest.param(
        re.sub(rb"<action>[^<]*</action>", b"<action>WeCancelThisMessage</action>",
               _sample("broker-testdata-reqmsg-ok.xml")),
        "UnsupportedActionType", "invalid action: WeCancelThisMessage", id="invalid-action",
    ),
    pytest.param(
        re.sub(rb"<status>[^<]*</status>", b"<status>WeCouldLoan</status>",
               _sample("broker-testdata-supmsg-ok.xml")),
        "UnrecognisedDataValue", "invalid status: WeCouldLoan", id="invalid-status",
    ),
    pytest.param(
        _sample("broker-testdata-reqmsg-no-reqid.xml"), "UnrecognisedDataValue",
        "requestingAgencyRequestId: cannot be empty", id="reqmsg-no-reqid",
    ),
    pytest.param(
        _sample("broker-testdata-supmsg-no-reqid.xml"), "UnrecognisedDataValue",
        "requestingAgencyRequestId: cannot be empty", id="supmsg-no-reqid",
    ),
    pytest.param(
        _sample("broker-testdata-request-no-reqid.xml"), "UnrecognisedDataValue",
        "requestingAgencyRequestId: cannot be empty", id="request-no-reqid",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "error_type", "error_value"), NEGATIVE)
def test_corpus_negatives_get_error_confirmations_with_the_xsd_error_type(
    server: ServeProcess, body: bytes, error_type: str, error_value: str
) -> None:
    answer = confirmation(post_xml(server.url, body))
    assert answer.header.message_status is p.MessageStatus.ERROR
    assert answer.error_data is not None
    assert answer.error_data.error_type.value == error_type
    assert answer.error_data.error_value == error_value
    assert_still_serving(server, f"after-{error_type}-{len(body)}")


def test_an_unknown_partner_is_refused_and_nothing_is_stored(server: ServeProcess) -> None:
    stranger = p.AgencyId(type="ISIL", value="XX-NOBODY")
    answer = confirmation(post_xml(server.url, request_body("stranger-1", sender=stranger)))
    assert answer.error_data is not None
    assert answer.error_data.error_type is p.ErrorType.UNRECOGNISED_DATA_VALUE
    assert lending_requests(server, "stranger-1") == 0
    engine = open_database(server.db_url)
    try:
        with session_scope(engine) as session:
            assert not session.exec(
                select(IsoMessage).where(IsoMessage.agency_request_id == "stranger-1")
            ).all()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- hostile bodies


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


def test_xxe_is_refused_and_the_file_never_shows(server: ServeProcess, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626" '
        'xmlns:ill="http://illtransactions.org/2013/iso18626" ill:version="1.2">'
        "<requestingAgencyMessage><header><supplyingAgencyId><agencyIdType>ISIL</agencyIdType>"
        "<agencyIdValue>US-LEND</agencyIdValue></supplyingAgencyId><requestingAgencyId>"
        "<agencyIdType>ISIL</agencyIdType><agencyIdValue>DK-A</agencyIdValue>"
        "</requestingAgencyId><multipleItemRequestId/><timestamp>2026-11-23T09:30:00Z</timestamp>"
        "<requestingAgencyRequestId>&x;</requestingAgencyRequestId></header>"
        "<action>Notification</action><note>&x;</note></requestingAgencyMessage></ISO18626Message>"
    ).encode()
    response = post_xml(server.url, body)
    assert response.status_code == 400
    assert "TOP-SECRET" not in response.text
    assert "TOP-SECRET" not in server.log_text()
    assert_still_serving(server, "after-xxe")


def test_billion_laughs_is_refused_at_once(server: ServeProcess) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    )
    body = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        '<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626">'
        "<request><header>&lol9;</header></request></ISO18626Message>"
    ).encode()
    assert server.proc is not None
    before = _rss_kb(server.proc.pid)
    response = post_xml(server.url, body, timeout=5)
    assert response.status_code == 400
    assert _rss_kb(server.proc.pid) - before < 20_000
    assert_still_serving(server, "after-laughs")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_20_mb_body_is_refused_without_being_buffered(
    server: ServeProcess, chunked: bool
) -> None:
    assert server.proc is not None
    before = _rss_kb(server.proc.pid)
    head = request_body("big-1")[: -len(b"</ISO18626Message>")]
    size = 20 * 1024 * 1024
    chunk = b"<!--" + b"x" * (64 * 1024 - 7) + b"-->"

    def body() -> Iterator[bytes]:
        yield head
        sent = len(head)
        while sent < size:
            yield chunk
            sent += len(chunk)

    headers = {"Content-Type": "application/xml"}
    if not chunked:
        headers["Content-Length"] = str(
            len(head) + len(chunk) * -(-(size - len(head)) // len(chunk))
        )
    status: int | None
    try:
        status = httpx.post(server.url, content=body(), headers=headers, timeout=30).status_code
    except httpx.TransportError:
        status = None  # the server answered and closed while we were still writing
    assert status in (413, None)
    assert _rss_kb(server.proc.pid) - before < 15_000  # never held the 20 MB
    assert lending_requests(server, "big-1") == 0
    assert_still_serving(server, f"after-20mb-{chunked}")


def test_one_log_line_per_message(server: ServeProcess) -> None:
    body = request_body("logged-1")
    assert p.is_ok(confirmation(post_xml(server.url, body)))
    lines = [line for line in server.log_text().splitlines() if "logged-1" in line]
    assert len(lines) == 1
    assert re.search(r"in: request from ISIL:DK-A logged-1: OK \(\d+\.\d ms\)", lines[0])


def test_serve_refuses_a_public_address_without_allow_remote(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "not a loopback address" in result.output
    assert "--allow-remote" in result.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("request_id", ["Bestilling-ø-1", "Заявка-7", "R-1\nX-Evil: yes"])
def test_a_request_id_no_http_header_can_carry_is_still_confirmed(
    server: ServeProcess, request_id: str
) -> None:
    """X-Request-ID echoes the id only when a header can hold it; the message is confirmed
    and stored once either way (a 500 here would make the partner send it for ever)."""
    response = post_xml(server.url, request_body(request_id))
    assert p.is_ok(confirmation(response))
    echoed = response.headers.get("x-request-id")
    assert echoed in (request_id, None)
    assert "x-evil" not in response.headers
    assert lending_requests(server, request_id) == 1


def test_serve_on_one_cpu_runs_there_and_answers(tmp_path: Path) -> None:
    """--cpu N keeps every thread of the server on that CPU; a CPU it may not use is named."""
    allowed = sorted(os.sched_getaffinity(0))
    refused = CliRunner().invoke(
        cli, ["serve", "--db", str(tmp_path / "x.db"), "--cpu", str(max(allowed) + 1)]
    )
    assert refused.exit_code == 1
    assert f"may run on CPUs {allowed} only" in refused.output

    url = sqlite_url(tmp_path / "lender.db")
    engine = open_database(url)
    with session_scope(engine) as session:
        session.add(
            Partner(agency_id_type="ISIL", agency_id_value="DK-A", name="Library A",
                    country="DK", currency="DKK")
        )  # fmt: skip
    engine.dispose()
    cpu = allowed[-1]
    proc = ServeProcess(
        url, agency=str(US), log_path=tmp_path / "serve.log", extra_args=("--cpu", str(cpu))
    )
    proc.start()
    try:
        assert p.is_ok(confirmation(post_xml(proc.url, request_body("CPU-1"))))
        assert proc.proc is not None
        tasks = Path(f"/proc/{proc.proc.pid}/task")
        for task in tasks.iterdir():  # the event loop, the writer, the checkpointer...
            status = (task / "status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list"))
            assert line.split(":")[1].strip() == str(cpu)
    finally:
        assert proc.stop() == 0
