"""The SRU adapter against a real Index Data Zebra server with real MARC records.

The ``zebra`` fixture (tests/zebra_server.py) serves two databases on one loopback port:
``biblio``, a union catalog of 3,689 records (LC and marc2bibframe2 samples), and ``local``, the
99 British Library records with their real 852 holdings, standing in for our own catalog.
"""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import ssl
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pymarc
import pytest
from lxml import etree
from zebra_server import ZebraServer, ZebraUnavailable
from zebra_server import start_server as start_zebra_server

from adapters.sru import (
    SruClient,
    build_cql,
    cql_term,
    marc_from_element,
    marc_view,
    parse_response,
    request_params,
)
from ill_tui import scoring
from ill_tui.catalog import (
    ALMA_AVA,
    DEFAULT_INDEXES,
    KOHA_952,
    MARC21_852,
    CatalogError,
    Clause,
    InvalidQuery,
    InvalidResponse,
    SearchResult,
    Target,
    TargetConfigError,
    TargetDiagnostic,
    TargetUnreachable,
    UnsupportedIndex,
    extract_holdings,
    load_targets,
)

DATA = Path(__file__).parent / "data" / "sru"

# Records of the test data, as their 001 control numbers (trimmed) and titles.
LOOM = "00000074"  # The loom of destiny / Arthur Stringer, ISBN-10 0836932722, (OCoLC)647986
COTTON = "00012504"  # Cotton harvest management, ISBN-13 9780939809059 only
SALT = "00008454"  # Worth their salt, too, ISBN-10 087421288X (ends in X)
FOX = "00009251"  # Arguedas, José María: The fox from up above and the fox from down below
ACTA = "Acta cytologica."  # ISSN 0001-5547
OAG = "007177759"  # British Library: OAG flight atlas, ISSN 1471-2989, three 852 holdings

ZEBRA_INDEXES = {**DEFAULT_INDEXES, "oclc": "local.oclc"}


def union(zebra: ZebraServer, version: str = "1.2", **kw: object) -> Target:
    """The union catalog target (all records)."""
    kw.setdefault("indexes", ZEBRA_INDEXES)
    return Target(
        name="Union catalog",
        base_url=zebra.url("biblio"),
        version=version,
        **kw,  # type: ignore[arg-type]
    )


def our_catalog(zebra: ZebraServer) -> Target:
    """Our own catalog: the British Library records with 852 holdings."""
    return Target(
        name="Our catalog",
        base_url=zebra.url("local"),
        indexes=ZEBRA_INDEXES,
        local=True,
        holdings=MARC21_852,
    )


def ids(result: SearchResult) -> list[str]:
    return [record.record_id for record in result.records]


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for every test's HTTP client (loading the CA store takes ~0.3 s)."""
    return ssl.create_default_context()


@pytest.fixture
async def sru() -> AsyncIterator[SruClient]:
    async with httpx.AsyncClient(verify=tls()) as http, SruClient(http) as client:
        yield client


# ---------------------------------------------------------------------------- identifiers
@pytest.mark.parametrize(
    "isbn",
    [
        pytest.param("0836932722", id="isbn10"),
        pytest.param("0-8369-3272-2", id="isbn10-hyphenated"),
        pytest.param("0 8369 3272 2", id="isbn10-spaces"),
        pytest.param("9780836932720", id="isbn13-of-stored-isbn10"),
        pytest.param("978-0-8369-3272-0", id="isbn13-hyphenated"),
        pytest.param("ISBN 0836932722 (pbk.)", id="isbn-with-words"),
        pytest.param("ISBN 0-8369-3272-2 (v. 1)", id="isbn-with-words-and-digits"),
    ],
)
async def test_isbn_in_any_spelling_finds_the_record(
    zebra: ZebraServer, sru: SruClient, isbn: str
) -> None:
    result = await sru.search(union(zebra), [Clause("isbn", isbn)])
    assert result.total == 1
    assert ids(result) == [LOOM]
    assert result.records[0].record.title == "The loom of destiny"


async def test_isbn13_record_found_by_its_isbn13_and_its_isbn10(
    zebra: ZebraServer, sru: SruClient
) -> None:
    by13 = await sru.search(union(zebra), [Clause("isbn", "978-0-939809-05-9")])
    by10 = await sru.search(union(zebra), [Clause("isbn", "0-939809-05-2")])
    assert ids(by13) == ids(by10) == [COTTON]


@pytest.mark.parametrize("isbn", ["087421288X", "0-87421-288-x", "0 87421 288 X"])
async def test_hyphenated_isbn10_ending_in_x(zebra: ZebraServer, sru: SruClient, isbn: str) -> None:
    # Sent as typed, Zebra splits the final X off as a word and finds nothing.
    result = await sru.search(union(zebra), [Clause("isbn", isbn)])
    assert ids(result) == [SALT]


@pytest.mark.parametrize("issn", ["0001-5547", "00015547", " 0001 5547 "])
async def test_issn_with_and_without_hyphen(zebra: ZebraServer, sru: SruClient, issn: str) -> None:
    result = await sru.search(union(zebra), [Clause("issn", issn)])
    assert result.total == 1
    assert result.records[0].record.title == ACTA


@pytest.mark.parametrize("oclc", ["647986", "(OCoLC)647986", "ocm00647986", "(OCoLC)ocm00647986"])
async def test_oclc_number_forms(zebra: ZebraServer, sru: SruClient, oclc: str) -> None:
    result = await sru.search(union(zebra), [Clause("oclc", oclc)])
    assert ids(result) == [LOOM]


async def test_lccn_is_normalised(zebra: ZebraServer, sru: SruClient) -> None:
    result = await sru.search(union(zebra), [Clause("lccn", "00-74")])
    assert ids(result) == [LOOM]


async def test_isbn_with_wrong_check_digit_is_still_searched_as_printed(
    zebra: ZebraServer, sru: SruClient
) -> None:
    target = union(zebra)
    assert build_cql(target, [Clause("isbn", "0-8369-3272-3")]) == 'bath.isbn="0836932723"'
    result = await sru.search(target, [Clause("isbn", "0-8369-3272-3")])
    assert result.total == 0


# ---------------------------------------------------------------------------- words
async def test_title_and_author(zebra: ZebraServer, sru: SruClient) -> None:
    result = await sru.search(
        union(zebra), [Clause("title", "The loom of destiny"), Clause("author", "Stringer")]
    )
    assert ids(result) == [LOOM]
    assert result.query == 'dc.title all "The loom of destiny" and dc.creator all "Stringer"'
    # the same title with another author finds nothing: the clauses are joined with "and"
    other = await sru.search(
        union(zebra), [Clause("title", "The loom of destiny"), Clause("author", "Arguedas")]
    )
    assert other.total == 0


@pytest.mark.parametrize(
    "author",
    ["Arguedas, José María", "José María Arguedas", "Jose Maria Arguedas", "ARGUEDAS, JOSÉ"],
)
async def test_author_with_diacritics(zebra: ZebraServer, sru: SruClient, author: str) -> None:
    result = await sru.search(union(zebra), [Clause("author", author), Clause("title", "fox")])
    assert ids(result) == [FOX]
    # the record comes back with its diacritics (decomposed, as LC stores them)
    name = result.records[0].record["100"]["a"]
    assert unicodedata.normalize("NFC", name) == "Arguedas, José María."


async def test_title_author_year(zebra: ZebraServer, sru: SruClient) -> None:
    clauses = [Clause("title", "loom destiny"), Clause("date", "1899")]
    assert ids(await sru.search(union(zebra), clauses)) == [LOOM]
    later = [Clause("title", "loom destiny"), Clause("date", "1900", ">=")]
    assert (await sru.search(union(zebra), later)).total == 0


async def test_no_hits(zebra: ZebraServer, sru: SruClient) -> None:
    result = await sru.search(union(zebra), [Clause("title", "zyxwv quxbaz nonexistent")])
    assert result.total == 0
    assert result.records == ()
    assert result.diagnostics == ()


async def test_max_records_limits_records_not_total(zebra: ZebraServer, sru: SruClient) -> None:
    result = await sru.search(union(zebra), [Clause("title", "history")], max_records=3)
    assert result.total > 3
    assert len(result.records) == 3
    counted = await sru.search(union(zebra), [Clause("title", "history")], max_records=0)
    assert counted.total == result.total
    assert counted.records == ()


# ---------------------------------------------------------------------------- CQL safety
def test_cql_term_quotes_escapes_and_neutralises() -> None:
    assert cql_term('The "best" *of* it?') == '"The \\"best\\" of it"'
    assert cql_term("a\\b ^c^") == '"a\\\\b c"'
    assert cql_term("x\n\ty\x00z") == '"x y z"'
    assert cql_term(" & : * ") == '""'


async def test_title_with_quotes_and_asterisks_is_not_cql(
    zebra: ZebraServer, sru: SruClient
) -> None:
    result = await sru.search(union(zebra), [Clause("title", '"The loom" of* destiny?')])
    assert ids(result) == [LOOM]
    # "*" is no truncation: "destin*" is the word "destin", which no title has
    assert (await sru.search(union(zebra), [Clause("title", "loom destin*")])).total == 0


async def test_injected_cql_stays_a_search_term(zebra: ZebraServer, sru: SruClient) -> None:
    injected = 'zzqx" or cql.allRecords=1 or dc.title="history'
    result = await sru.search(union(zebra), [Clause("title", injected)])
    assert result.total == 0
    assert result.query.startswith('dc.title all "zzqx\\" or cql.allRecords=1')


async def test_nothing_to_search_for(zebra: ZebraServer, sru: SruClient) -> None:
    with pytest.raises(InvalidQuery, match="every search field is empty"):
        await sru.search(union(zebra), [Clause("title", "*** ???")])
    with pytest.raises(InvalidQuery, match="ISBN"):
        await sru.search(union(zebra), [Clause("isbn", "n/a")])
    with pytest.raises(InvalidQuery, match="year"):
        await sru.search(union(zebra), [Clause("date", "recent")])


# ---------------------------------------------------------------------------- diagnostics
async def test_bad_index_is_a_clear_unsupported_index_error(
    zebra: ZebraServer, sru: SruClient
) -> None:
    target = union(zebra, indexes={**ZEBRA_INDEXES, "title": "dc.nosuchindex"})
    with pytest.raises(UnsupportedIndex) as caught:
        await sru.search(target, [Clause("title", "loom")])
    error = caught.value
    assert error.uri == "info:srw/diagnostic/1/16"
    assert error.number == 16
    assert error.message == "Unsupported index"
    assert error.target == "Union catalog"
    assert str(error).startswith("Union catalog cannot search this way: it has no such index")


async def test_other_diagnostic_keeps_its_message(zebra: ZebraServer, sru: SruClient) -> None:
    target = union(zebra, indexes={**ZEBRA_INDEXES, "title": "nosuchset.title"})
    with pytest.raises(TargetDiagnostic) as caught:
        await sru.search(target, [Clause("title", "loom")])
    assert not isinstance(caught.value, UnsupportedIndex)
    assert caught.value.number == 15
    assert str(caught.value) == "Union catalog could not run the search: Unsupported context set"


async def test_index_not_configured_is_refused_without_asking(sru: SruClient) -> None:
    # Nothing listens on this address: the error must come before any network use.
    target = Target(name="LC", base_url="http://127.0.0.1:9/lcdb", indexes={"title": "dc.title"})
    with pytest.raises(UnsupportedIndex, match="LC cannot be searched by OCLC number"):
        await sru.search(target, [Clause("oclc", "647986")])


# ---------------------------------------------------------------------------- versions
@pytest.mark.parametrize("version", ["1.1", "1.2", "2.0"])
async def test_each_sru_version_parses(zebra: ZebraServer, sru: SruClient, version: str) -> None:
    result = await sru.search(union(zebra, version), [Clause("isbn", "0836932722")])
    assert result.total == 1
    record = result.records[0]
    assert record.record_id == LOOM
    assert record.record.title == "The loom of destiny"
    assert str(record.record.leader) == "01012cam a22002171  4500"
    assert record.marcxml.startswith('<record xmlns="http://www.loc.gov/MARC21/slim">')
    assert pymarc.parse_xml_to_array(io.StringIO(record.marcxml))[0].title == (  # type: ignore[no-untyped-call]
        "The loom of destiny"
    )


@pytest.mark.parametrize(
    ("version", "namespace", "packing"),
    [
        ("1.1", "http://www.loc.gov/zing/srw/", {"recordPacking": "string"}),
        ("1.2", "http://www.loc.gov/zing/srw/", {"recordPacking": "string"}),
        (
            "2.0",
            "http://docs.oasis-open.org/ns/search-ws/sruResponse",
            {"recordXMLEscaping": "string"},
        ),
    ],
)
async def test_response_namespaces_and_string_packing(
    zebra: ZebraServer, version: str, namespace: str, packing: dict[str, str]
) -> None:
    target = union(zebra, version)
    query = build_cql(target, [Clause("isbn", "0836932722")])
    params = {**request_params(target, query, 1), **packing}
    async with httpx.AsyncClient(verify=tls()) as http:
        body = (await http.get(target.base_url, params=params)).content
    assert f'xmlns:zs="{namespace}"'.encode() in body
    assert b"&lt;record" in body  # the record arrived as an escaped string
    result = parse_response(target, body, query)
    assert ids(result) == [LOOM]
    assert result.records[0].record.author == "Stringer, Arthur, 1874-1950."


# ---------------------------------------------------------------------------- holdings
async def test_local_catalog_holdings_from_852(zebra: ZebraServer, sru: SruClient) -> None:
    result = await sru.search(our_catalog(zebra), [Clause("issn", "1471-2989")])
    assert ids(result) == [OAG]
    holdings = result.records[0].holdings
    assert [(h.agency, h.location, h.call_number) for h in holdings] == [
        ("British Library", "STI, BIPC", "(B) DIR 912.21 Business"),
        ("British Library", "DSC", "6196.390250"),
        ("British Library", "STI, RES", "(XP) AA 769 -E(11)"),
    ]
    assert {h.target for h in holdings} == {"Our catalog"}
    # the union catalog has the same record but is not configured to read holdings
    union_result = await sru.search(union(zebra), [Clause("issn", "1471-2989")])
    assert union_result.records[0].holdings == ()


def test_alma_ava_holdings_from_a_real_alma_response() -> None:
    body = (DATA / "responses" / "alma-availability-sru.xml").read_bytes()
    target = Target(name="Berkeley", base_url="https://example.org/view/sru/01UCS_BER",
                    holdings=ALMA_AVA)  # fmt: skip
    result = parse_response(target, body)
    assert result.total == 2
    assert ids(result) == ["991005668359706532", "991005668209706532"]
    first, second = (r.holdings[0] for r in result.records)
    assert first.availability == "unavailable (0 of 1 items)"
    assert second.availability == "available (1 of 1 items)"
    assert (first.agency, first.location, first.call_number) == (
        "01UCS_BER",
        "Morrison Library, Morrison",
        None,
    )


def test_koha_952_availability() -> None:
    # A record laid out as Koha exports items (952 $a home library, $c shelving location,
    # $o call number, $q due date, $0 withdrawn, $1 lost, $7 not for loan); built here,
    # since no Koha sample with item statuses ships with the test data.
    def item(**subfields: str) -> pymarc.Field:
        return pymarc.Field(
            "952",
            indicators=pymarc.Indicators(" ", " "),
            subfields=[pymarc.Subfield(code.lstrip("_"), v) for code, v in subfields.items()],
        )

    record = pymarc.Record()
    record.add_field(  # type: ignore[no-untyped-call]
        item(a="CPL", b="CPL", c="GEN", o="641.3 Gra", _7="0", _1="0", _0="0"),
        item(a="CPL", b="MPL", o="641.3 Gra", q="2026-12-01"),
        item(a="MPL", o="REF 641.3", _7="1"),
        item(a="MPL", o="641.3 Gra", _1="1"),
        item(a="MPL", o="641.3 Gra", _0="1"),
    )
    holdings = extract_holdings(record, "Koha", KOHA_952)
    assert [h.availability for h in holdings] == [
        "available",
        "on loan, due 2026-12-01",
        "not for loan",
        "lost",
        "withdrawn",
    ]
    assert (holdings[0].agency, holdings[0].location, holdings[0].call_number) == (
        "CPL",
        "CPL, GEN",
        "641.3 Gra",
    )


# ---------------------------------------------------------------------------- failures
@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_timeout_in_words(sru: SruClient, silent_port: int) -> None:
    target = Target(name="Slow partner", base_url=f"http://127.0.0.1:{silent_port}/db",
                    timeout=0.3)  # fmt: skip
    with pytest.raises(TargetUnreachable) as caught:
        await sru.search(target, [Clause("title", "loom")])
    assert str(caught.value) == "Slow partner did not answer within 0.3 s"


async def test_unknown_database_is_unreachable(zebra: ZebraServer, sru: SruClient) -> None:
    target = Target(name="Partner", base_url=zebra.url("nosuchdb"))
    with pytest.raises(TargetUnreachable) as caught:
        await sru.search(target, [Clause("title", "loom")])
    assert "has no catalog database 'nosuchdb'" in str(caught.value)
    assert "HTTP 404" in str(caught.value)


async def test_answer_that_is_not_sru(sru: SruClient) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        page = b"<html><body>Welcome to our OPAC</body></html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(page)).encode()
            + b"\r\n\r\n"
            + page
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        target = Target(name="OPAC", base_url=f"http://127.0.0.1:{port}/")
        with pytest.raises(InvalidResponse, match="OPAC did not answer with an SRU"):
            await sru.search(target, [Clause("title", "loom")])
    finally:
        server.close()
        await server.wait_closed()


async def test_stopped_server_is_unreachable_while_others_answer(
    zebra: ZebraServer, sru: SruClient
) -> None:
    replica = zebra.start_replica()
    partner = Target(name="Partner library", base_url=replica.url("biblio"), indexes=ZEBRA_INDEXES)
    clauses = [Clause("isbn", "0836932722")]
    assert ids(await sru.search(partner, clauses)) == [LOOM]  # it answers while it runs
    replica.stop()

    with pytest.raises(TargetUnreachable) as caught:
        await sru.search(partner, clauses)
    assert str(caught.value) == (
        f"Partner library is not answering at 127.0.0.1:{replica.port}: the connection was "
        "refused (the catalog server is down or the address is wrong)"
    )

    answers = await sru.search_many([our_catalog(zebra), partner, union(zebra)], clauses)
    assert list(answers) == ["Our catalog", "Partner library", "Union catalog"]
    assert isinstance(answers["Partner library"], TargetUnreachable)
    ours, theirs = answers["Our catalog"], answers["Union catalog"]
    assert isinstance(ours, SearchResult)
    assert ours.total == 0  # not in our catalog
    assert isinstance(theirs, SearchResult)
    assert ids(theirs) == [LOOM]


async def test_search_many_keeps_each_targets_error(zebra: ZebraServer, sru: SruClient) -> None:
    bad_index = Target(name="Odd server", base_url=zebra.url("biblio"),
                       indexes={**ZEBRA_INDEXES, "title": "dc.nosuchindex"})  # fmt: skip
    answers = await sru.search_many(
        [bad_index, union(zebra), Target(name="Gone", base_url=zebra.url("gone"))],
        [Clause("title", "loom of destiny")],
    )
    assert isinstance(answers["Odd server"], UnsupportedIndex)
    assert isinstance(answers["Gone"], TargetUnreachable)
    assert isinstance(answers["Union catalog"], SearchResult)
    assert all(isinstance(a, SearchResult | CatalogError) for a in answers.values())
    with pytest.raises(ValueError, match="target names must be unique"):
        await sru.search_many([union(zebra), union(zebra, "2.0")], [Clause("title", "loom")])


# ---------------------------------------------------------------------------- client
async def test_per_target_concurrency_limit(zebra: ZebraServer) -> None:
    in_flight = peak = 0

    async def sent(request: httpx.Request) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    async def answered(response: httpx.Response) -> None:
        nonlocal in_flight
        in_flight -= 1

    hooks = {"request": [sent], "response": [answered]}
    async with httpx.AsyncClient(event_hooks=hooks, verify=tls()) as http:  # type: ignore[arg-type]
        sru = SruClient(http)
        target = union(zebra, max_concurrency=2)
        words = ["history", "war", "women", "art", "music", "church", "law", "city"]
        results = await asyncio.gather(
            *(sru.search(target, [Clause("title", w)], max_records=5) for w in words)
        )
        assert all(r.total > 0 for r in results)
        assert peak == 2
        await sru.aclose()
        assert not http.is_closed  # the client belongs to whoever passed it in


async def test_client_made_by_context_manager_is_closed(zebra: ZebraServer) -> None:
    async with SruClient() as sru:
        await sru.search(union(zebra), [Clause("isbn", "0836932722")])
        http = sru._http
        assert http is not None
    assert http.is_closed


# ---------------------------------------------------------------------------- configuration
TARGETS_TOML = """
[[target]]
name = "Our catalog"
base_url = "http://127.0.0.1:9999/local"
version = "1.2"
local = true
holdings = "852"
[target.indexes]
oclc = "local.oclc"

[[target]]
name = "Koha partner"
base_url = "https://koha.example.org/biblios"
version = 1.1
timeout = 2.5
max_concurrency = 2
holdings = "koha"
[target.indexes]
date = ""

[[target]]
name = "Odd ILS"
base_url = "https://ils.example.org/sru/main"
version = "2.0"
holdings = { tag = "999", agency = ["a"], location = ["b", "c"], call_number = "d" }
"""


def test_load_targets(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS_TOML, encoding="utf-8")
    ours, koha, odd = load_targets(path)

    assert ours == Target(
        name="Our catalog",
        base_url="http://127.0.0.1:9999/local",
        indexes={**DEFAULT_INDEXES, "oclc": "local.oclc"},
        local=True,
        holdings=MARC21_852,
    )
    assert (koha.version, koha.timeout, koha.max_concurrency, koha.local) == ("1.1", 2.5, 2, False)
    assert koha.holdings is KOHA_952
    assert "date" not in koha.indexes  # "" switches a key off
    assert koha.indexes["isbn"] == "bath.isbn"
    assert koha.timeout_text == "2.5 s"
    assert odd.version == "2.0"
    assert odd.holdings is not None
    assert (odd.holdings.tag, odd.holdings.location, odd.holdings.call_number) == (
        "999",
        ("b", "c"),
        ("d",),
    )


async def test_configured_target_searches_zebra(
    tmp_path: Path, zebra: ZebraServer, sru: SruClient
) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS_TOML.replace("127.0.0.1:9999", f"127.0.0.1:{zebra.port}"))
    ours = load_targets(path)[0]
    result = await sru.search(ours, [Clause("issn", "1471-2989")])
    assert len(result.records[0].holdings) == 3


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[target]]\nbase_url = "http://x/db"', "target 1: name is missing"),
        ('[[target]]\nname = "A"', r"target 1 \(A\): base_url is missing"),
        ('[[target]]\nname = "A"\nbase_url = "ftp://x/db"', "must be an http:// or https:// URL"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\nversion = "3.0"', "SRU version '3.0'"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\ntimeout = 0', "timeout must be a"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\ntimeout = "5"', "timeout must be a"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\nmax_concurrency = 0', "at least 1"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\nlocal = "yes"', "true or false"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\nurl = "x"', "unknown keys url"),
        ('[[target]]\nname = "A"\nbase_url = "http://x/db"\nholdings = "MARC"', "holdings 'MARC'"),
        (
            '[[target]]\nname = "A"\nbase_url = "http://x/db"\nholdings = { agency = ["a"] }',
            "holdings needs a tag",
        ),
        (
            '[[target]]\nname = "A"\nbase_url = "http://x/db"\nholdings = { tag = "99" }',
            "not a three-character MARC tag",
        ),
        (
            '[[target]]\nname = "A"\nbase_url = "http://x/db"\n[target.indexes]\nissbn = "x"',
            "unknown index key 'issbn'",
        ),
        (
            '[[target]]\nname = "A"\nbase_url = "http://x/db"\n[target.indexes]\ntitle = "a b"',
            "index for title must be a CQL index name",
        ),
        (
            '[[target]]\nname = "A"\nbase_url = "http://x/db"\n'
            '[[target]]\nname = "a"\nbase_url = "http://y/db"',
            r"target 2 \(a\): another target is already called 'a'",
        ),
        ('[target]\nname = "A"', "targets are \\[\\[target\\]\\] tables"),
        ('[[targets]]\nname = "A"', "unknown top-level keys targets"),
        ("[[target]\nname = ", "not valid TOML"),
    ],
)
def test_bad_target_configuration_is_a_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(TargetConfigError, match=message) as caught:
        load_targets(path)
    assert str(caught.value).startswith(str(path))


def test_missing_target_file(tmp_path: Path) -> None:
    with pytest.raises(TargetConfigError, match="no such target file"):
        load_targets(tmp_path / "nope.toml")


def test_clause_rejects_unknown_keys_and_relations() -> None:
    with pytest.raises(ValueError, match="unknown search key 'doi'"):
        Clause("doi", "10.1000/1")
    with pytest.raises(ValueError, match="unknown relation 'near'"):
        Clause("title", "x", "near")


async def test_oversized_answer_is_refused(zebra: ZebraServer) -> None:
    async with httpx.AsyncClient(verify=tls()) as http:
        sru = SruClient(http, max_response_bytes=20_000)
        small = await sru.search(union(zebra), [Clause("isbn", "0836932722")])
        assert small.total == 1  # one record is about 4 KB
        with pytest.raises(InvalidResponse) as caught:
            await sru.search(union(zebra), [Clause("title", "history")], max_records=50)
    assert str(caught.value) == "Union catalog sent more than 19 KB; ask for fewer records"


def test_missing_zebra_is_reported_with_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ZebraUnavailable, match="zebraidx, zebrasrv, yaz-marcdump not on PATH"):
        start_zebra_server()


async def test_a_hanging_target_does_not_hold_up_the_others(
    zebra: ZebraServer, sru: SruClient, silent_port: int
) -> None:
    hanging = Target(name="Hanging partner", base_url=f"http://127.0.0.1:{silent_port}/db",
                     timeout=0.5)  # fmt: skip
    answers = await sru.search_many(
        [hanging, our_catalog(zebra), union(zebra)], [Clause("issn", "1471-2989")]
    )
    error = answers["Hanging partner"]
    assert isinstance(error, TargetUnreachable)
    assert str(error) == "Hanging partner did not answer within 0.5 s"
    ours = answers["Our catalog"]
    assert isinstance(ours, SearchResult)
    assert ids(ours) == [OAG]
    assert len(ours.records[0].holdings) == 3
    assert isinstance(answers["Union catalog"], SearchResult)


# ---------------------------------------------------------------------------- record view
def _all_test_records() -> list[pymarc.Record]:
    records = DATA / "records"
    with (records / "lc-booksall-2016-part01-sample.mrc").open("rb") as handle:
        found = [r for r in pymarc.MARCReader(handle, to_unicode=True, force_utf8=True) if r]
    for path in sorted((records / "marc2bibframe2-dataset").glob("*.xml")):
        found += [r for r in pymarc.parse_xml_to_array(str(path)) if r]  # type: ignore[no-untyped-call]
    return found


def test_the_scoring_view_reads_every_record_as_pymarc_does() -> None:
    # A search scores records from a view of a dozen fields instead of a whole pymarc record:
    # over every test record (3,689), the summary and the 852 holdings must be the same.
    tags = scoring.SUMMARY_TAGS | {"001", "852"}
    records = _all_test_records()
    assert len(records) > 3000
    for record in records:
        element = etree.fromstring(pymarc.record_to_xml(record, namespace=True))  # type: ignore[no-untyped-call]
        whole = marc_from_element(element)
        view = marc_view(element, tags)
        assert scoring.summarise(view) == scoring.summarise(whole) == scoring.summarise(record)
        assert extract_holdings(view, "T", MARC21_852) == extract_holdings(whole, "T", MARC21_852)


def test_a_record_found_is_read_only_and_built_on_first_use() -> None:
    body = (DATA / "responses" / "alma-availability-sru.xml").read_bytes()
    target = Target(name="Berkeley", base_url="https://example.org/view/sru/01UCS_BER",
                    holdings=ALMA_AVA)  # fmt: skip
    first = parse_response(target, body).records[0]
    again = parse_response(target, body).records[0]
    assert first == again
    assert hash(first) == hash(again)
    # the whole record and the MARCXML text come from the same element, made once
    assert first.record is first.record
    assert first.record.title == scoring.summarise(first.view).title != ""
    parsed = pymarc.parse_xml_to_array(io.StringIO(first.marcxml))[0]  # type: ignore[no-untyped-call]
    assert [f.tag for f in parsed.get_fields()] == [f.tag for f in first.record.get_fields()]
    with pytest.raises(AttributeError, match="read-only"):
        first.record_id = "other"


# ---------------------------------------------------------------------------- request URL
@pytest.mark.parametrize("version", ["1.1", "1.2", "2.0"])
async def test_the_request_carries_every_searchretrieve_parameter(
    zebra: ZebraServer, version: str
) -> None:
    # The URL is built once-encoded (a fixed part per target, the query appended): what the
    # server receives must be the parameters of request_params, as httpx would encode them.
    sent: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    target = union(zebra, version)
    clauses = [Clause("title", 'The "loom" of destiny & more?'), Clause("author", "Stringér")]
    async with (
        httpx.AsyncClient(verify=tls(), event_hooks={"request": [keep]}) as http,
        SruClient(http) as sru,
    ):
        result = await sru.search(target, clauses, max_records=3)
    expected = request_params(target, build_cql(target, clauses), 3)
    assert dict(sent[0].url.params) == expected
    assert len(sent[0].url.params.multi_items()) == len(expected)
    assert sent[0].url.path == "/biblio"
    assert result.query == expected["query"]


async def test_a_base_url_keeps_its_own_parameters(zebra: ZebraServer) -> None:
    """A catalog whose address carries parameters of its own (an API key, an ``x-``
    extension) gets them on every search, beside the searchRetrieve ones; ours win a clash."""
    sent: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    target = union(zebra)
    target = Target(
        name=target.name,
        base_url=f"{target.base_url}?x-apikey=s3cret&version=9.9#top",
        version=target.version,
        indexes=target.indexes,
    )
    clauses = [Clause("title", "The loom of destiny"), Clause("author", "Stringer")]
    async with (
        httpx.AsyncClient(verify=tls(), event_hooks={"request": [keep]}) as http,
        SruClient(http) as sru,
    ):
        result = await sru.search(target, clauses, max_records=3)
    params = sent[0].url.params
    assert params["x-apikey"] == "s3cret"
    assert params.get_list("version") == ["1.2"]
    assert params["query"] == build_cql(target, clauses)
    assert sent[0].url.fragment == ""
    assert ids(result) == [LOOM]  # Zebra ignores x- parameters and answers the search
