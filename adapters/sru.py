"""SRU searchRetrieve over httpx: CQL built from clauses, MARCXML answers as pymarc records.

``SruClient`` implements ``ill_tui.ports.CatalogSearch`` for SRU 1.1, 1.2 and 2.0. It shares
one ``httpx.AsyncClient`` (keep-alive) between all targets, limits how many searches run at once
against each target, and gives each search the target's timeout. Every failure comes out as an
``ill_tui.catalog.CatalogError`` whose message names the target in words staff understand.

User text never becomes CQL syntax: every term is quoted, ``"`` and ``\\`` are escaped, and the
CQL masking characters ``*``, ``?`` and ``^`` are replaced by spaces (catalog indexes drop them
as punctuation anyway). Identifiers are normalised before querying, because SRU servers
normalise them only on the index side: an ISBN is sent as digits (ISBN-13 and, for 978
ISBNs, ISBN-10 too), an ISSN as its 8 characters, an OCLC number without prefix, an LCCN
LC-normalised.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import httpx
import pymarc
from lxml import etree

from ill_tui import identifiers
from ill_tui.catalog import (
    IDENTIFIER_KEYS,
    KEY_LABELS,
    CatalogError,
    CatalogRecord,
    Clause,
    InvalidQuery,
    InvalidResponse,
    MarcField,
    MarcFields,
    SearchResult,
    Target,
    TargetDiagnostic,
    TargetUnreachable,
    UnsupportedIndex,
    diagnostic_error,
    extract_holdings,
)
from ill_tui.scoring import SUMMARY_TAGS

log = logging.getLogger(__name__)

SRW_NS = "http://www.loc.gov/zing/srw/"  # SRU 1.1 / 1.2
SRU2_NS = "http://docs.oasis-open.org/ns/search-ws/sruResponse"  # SRU 2.0
MARC_NS = "http://www.loc.gov/MARC21/slim"
RESPONSE_NAMESPACES = (SRW_NS, SRU2_NS)
#: Record schemas that are surrogate diagnostics instead of records.
DIAGNOSTIC_SCHEMAS = ("info:srw/schema/1/diagnostics-v1.1", "info:srw/schema/1/diagnostic-v1.1")

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
USER_AGENT = "ill-tui (SRU client)"

# Inbound XML: no entities, no DTDs, no network, no gigantic trees.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False
)

_COMPARISONS = frozenset({"<", "<=", ">", ">="})


# ---------------------------------------------------------------------------- CQL
def cql_term(text: str) -> str:
    """Quote ``text`` as one CQL term that can never be read as CQL syntax.

    Masking characters (``*``, ``?``, ``^``) and control characters become spaces, runs of
    white space collapse, and ``\\`` and ``"`` are escaped inside the quotes.

    For example ``The "best" *of* it?`` becomes ``"The \\"best\\" of it"``.
    """
    if text.isprintable() and "*" not in text and "?" not in text and "^" not in text:
        cleaned = text  # nothing to replace (the usual case): no look at each character
    else:
        cleaned = "".join(
            " " if ch in "*?^" or unicodedata.category(ch)[0] == "C" else ch for ch in text
        )
    # A word of punctuation alone ("&", ":", a lone quote) is not in any index, and with the
    # "all" relation Zebra then finds nothing; indexes drop punctuation, so drop such words.
    cleaned = " ".join(
        word for word in cleaned.split() if word.isalnum() or any(ch.isalnum() for ch in word)
    )
    escaped = cleaned.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_ISBN_IN_TEXT = re.compile(r"(?<![\dXx])(?:97[89][\s-]?)?(?:\d[\s-]?){9}[\dXx](?![\dXx])")


def _digits_x(value: str) -> str:
    return re.sub(r"[^0-9X]", "", value.upper())


def _is_isbn13(value: str) -> bool:
    """Whether ``value`` is already a compact, valid ISBN-13 (what verification searches
    with): then it need not go through python-stdnum again, the slow part of a search."""
    if len(value) != 13 or not value.isascii() or not value.isdigit():
        return False
    if value[:3] not in ("978", "979"):
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(value[:12]))
    return (10 - total % 10) % 10 == int(value[12])


def _isbn10_of(isbn13: str) -> str:
    """The ISBN-10 of a compact, valid 978 ISBN-13 (its nine digits and their check digit)."""
    body = isbn13[3:12]
    check = sum((i + 1) * int(d) for i, d in enumerate(body)) % 11
    return body + ("X" if check == 10 else str(check))


def identifier_terms(key: str, value: str) -> list[str]:
    """The normalised forms of an identifier to search for (one or two), never empty.

    A valid ISBN gives its ISBN-13 and, for 978 ISBNs, its ISBN-10; a value that fails its
    check is still searched as digits and X only (catalogs carry wrong ISBNs as printed).

    Raises:
        InvalidQuery: nothing of the identifier is left to search for.
    """
    label = KEY_LABELS[key]
    terms: list[str] = []
    try:
        if key == "isbn":
            # "ISBN 0-8369-3272-2 (v. 1)": the ISBN is the run of 10 or 13 digits/X in it
            isbn13 = value if _is_isbn13(value) else ""
            if not isbn13:
                found = _ISBN_IN_TEXT.search(value)
                isbn13 = identifiers.normalise_isbn(found.group() if found else value)
            terms = [isbn13]
            if isbn13.startswith("978"):
                terms.append(_isbn10_of(isbn13))
        elif key == "issn":
            terms = [identifiers.normalise_issn(value)]
        elif key == "oclc":
            terms = [identifiers.normalise_oclc(value)]
        elif key == "lccn":
            terms = [identifiers.normalise_lccn(value)]
    except identifiers.InvalidIdentifier:
        if key == "lccn":
            fallback = re.sub(r"[^0-9a-z]", "", value.lower())
        elif key == "oclc":
            fallback = re.sub(r"\D", "", value)
        else:
            fallback = _digits_x(value)
        terms = [fallback] if fallback else []
    if not terms:
        raise InvalidQuery(f"{label} {value.strip()!r} has nothing in it to search for")
    return terms


def build_cql(target: Target, clauses: Sequence[Clause]) -> str:
    """The CQL query for ``clauses`` at ``target``: each clause quoted, joined with ``and``.

    Raises:
        UnsupportedIndex: a clause's key has no index at this target.
        InvalidQuery: no clause has anything to search for.
    """
    parts: list[str] = []
    for clause in clauses:
        index = target.indexes.get(clause.key)
        if not index:
            raise UnsupportedIndex(
                target=target.name,
                uri="info:srw/diagnostic/1/16",
                message="Unsupported index",
                details=f"no {KEY_LABELS[clause.key]} index configured",
                text=f"{target.name} cannot be searched by {KEY_LABELS[clause.key]} "
                "(no index configured for it)",
            )
        if not clause.value.strip():
            continue
        if clause.key in IDENTIFIER_KEYS:
            forms = [f"{index}={cql_term(t)}" for t in identifier_terms(clause.key, clause.value)]
            parts.append(forms[0] if len(forms) == 1 else "(" + " or ".join(forms) + ")")
        elif clause.key == "date":
            year = re.search(r"\d{4}", clause.value)
            if year is None:
                raise InvalidQuery(f"year {clause.value.strip()!r} has no four-digit year in it")
            relation = clause.relation if clause.relation in _COMPARISONS else "="
            parts.append(f"{index}{relation}{cql_term(year.group())}")
        else:
            if clause.relation in _COMPARISONS:
                raise InvalidQuery(f"a {KEY_LABELS[clause.key]} cannot be compared with <, >")
            term = cql_term(clause.value)
            if term == '""':
                continue
            relation = "=" if clause.relation == "==" else clause.relation
            spaced = relation.isalpha()  # "all", "any", "adj" need spaces around them
            parts.append(f"{index} {relation} {term}" if spaced else f"{index}{relation}{term}")
    if not parts:
        raise InvalidQuery("nothing to search for: every search field is empty")
    return " and ".join(parts)


def request_params(target: Target, query: str, max_records: int) -> dict[str, str]:
    """The searchRetrieve parameters for ``target``'s SRU version."""
    params = {
        # SRU 2.0 servers take a missing version as 2.0; multi-version servers (YAZ) need it.
        "version": target.version,
        "query": query,
        "startRecord": "1",
        "maximumRecords": str(max_records),
        "recordSchema": "marcxml",
    }
    if target.version.startswith("1."):
        params["operation"] = "searchRetrieve"
        params["recordPacking"] = "xml"
    else:
        params["recordXMLEscaping"] = "xml"
    return params


def _url_prefix(target: Target, max_records: int) -> str:
    """The searchRetrieve URL up to the query's value (``...&query=``).

    A base URL may carry parameters of its own (an API key, ``x-`` extensions): they are
    kept, before ours, except those ours replace. A fragment is never sent.
    """
    parts = urlsplit(target.base_url)
    params = request_params(target, "", max_records)
    del params["query"]
    own = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    own = [(k, v) for k, v in own if k != "query"]
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return f"{base}?{urlencode([*own, *params.items()])}&query="


# ---------------------------------------------------------------------------- parsing
def _local(tag: object) -> str:
    # "{namespace}name" -> "name"; comments and processing instructions have no str tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    # "{*}name": any namespace or none, matched by lxml without making each child's tag text
    return next(parent.iterchildren(f"{{*}}{name}"), None)


def _child_text(parent: etree._Element, name: str) -> str | None:
    child = _child(parent, name)
    return child.text.strip() if child is not None and child.text else None


_MARC_LEADER = f"{{{MARC_NS}}}leader"
_MARC_CONTROL = f"{{{MARC_NS}}}controlfield"
_MARC_DATA = f"{{{MARC_NS}}}datafield"
_MARC_SUBFIELD = f"{{{MARC_NS}}}subfield"
_LEADERS = frozenset({_MARC_LEADER, "leader"})
_CONTROLS = frozenset({_MARC_CONTROL, "controlfield"})
_DATAS = frozenset({_MARC_DATA, "datafield"})
_SUBFIELDS = frozenset({_MARC_SUBFIELD, "subfield"})
_KNOWN = _LEADERS | _CONTROLS | _DATAS


def marc_from_element(element: etree._Element) -> pymarc.Record:
    """A pymarc record from a MARCXML ``record`` element (namespaced or not)."""
    # Every search parses its records here, so tags are compared as the qualified names
    # lxml gives (MARC namespace or none) instead of splitting each tag; a MARC element in
    # another namespace is no MARCXML and is skipped, as before (the record's namespace is
    # checked by ``_record_element``, its children share it).
    leader = " " * 24
    fields: list[pymarc.Field] = []
    new_field = pymarc.Field
    new_subfield = pymarc.Subfield
    for node in element:
        tag = node.tag
        if isinstance(tag, str) and tag not in _KNOWN:
            tag = _local(tag)  # a prefix of another namespace: read by local name, as ever
        if tag in _DATAS:
            subfields = [
                new_subfield(sub.get("code", " "), sub.text or "")
                for sub in node
                if sub.tag in _SUBFIELDS or _local(sub.tag) == "subfield"
            ]
            indicators = pymarc.Indicators(node.get("ind1", " "), node.get("ind2", " "))
            fields.append(
                new_field(node.get("tag", "   "), indicators=indicators, subfields=subfields)
            )
        elif tag in _CONTROLS:
            fields.append(new_field(node.get("tag", "   "), data=node.text or ""))
        elif tag in _LEADERS:
            leader = (node.text or "").ljust(24)[:24]
    record = pymarc.Record(fields=fields)
    record.leader = pymarc.Leader(leader)  # as sent: Record() would rewrite parts of it
    return record


def marc_view(element: etree._Element, tags: frozenset[str]) -> MarcFields:
    """The fields of a MARCXML ``record`` element whose tags are in ``tags``, read as
    ``marc_from_element`` reads them (same tags, indicators, subfields and values).

    Scoring needs a dozen fields of the thirty or more a record has: reading only those, as
    plain values, costs a fraction of building the whole pymarc record, which is left for the
    records that are stored or shown (``CatalogRecord.record``).
    """
    fields: list[MarcField] = []
    # lxml picks the fields by local name in any namespace (as marc_from_element reads them),
    # in record order, without making a tag text for every element.
    for node in element.iterchildren("{*}datafield", "{*}controlfield"):
        tag = node.get("tag", "   ")
        if tag not in tags and not (len(tag) != 3 and tag.isdigit() and f"{int(tag):03}" in tags):
            continue
        if str(node.tag).endswith("datafield"):
            subfields = [
                (sub.get("code", " "), sub.text or "") for sub in node.iterchildren("{*}subfield")
            ]
            indicators = (node.get("ind1", " "), node.get("ind2", " "))
            fields.append(MarcField(tag, indicators=indicators, subfields=subfields))
        else:
            fields.append(MarcField(tag, data=node.text or ""))
    return MarcFields(fields)


def _marcxml_text(element: etree._Element) -> str:
    """The record as a standalone MARCXML document (without the SRU envelope's namespaces)."""
    # Exclusive canonical XML writes only the namespaces the record itself uses.
    return etree.tostring(element, method="c14n", exclusive=True).decode("utf-8")


@dataclass(frozen=True)
class _Diagnostic:
    uri: str
    message: str | None
    details: str | None


def _diagnostics(root: etree._Element) -> list[_Diagnostic]:
    holder = root if _local(root.tag) == "diagnostics" else _child(root, "diagnostics")
    if holder is None:
        return []
    found = []
    for diag in holder:
        if _local(diag.tag) == "diagnostic":
            found.append(
                _Diagnostic(
                    uri=_child_text(diag, "uri") or "",
                    message=_child_text(diag, "message"),
                    details=_child_text(diag, "details"),
                )
            )
    return found


def _record_element(target: Target, record: etree._Element) -> etree._Element | None:
    """The MARCXML ``record`` inside an SRU ``record`` (packed as XML or as a string)."""
    data = _child(record, "recordData")
    if data is None:
        return None
    packing = _child_text(record, "recordXMLEscaping") or _child_text(record, "recordPacking")
    if packing == "string" or (len(data) == 0 and (data.text or "").strip().startswith("<")):
        try:
            inner = etree.fromstring((data.text or "").strip().encode("utf-8"), _PARSER)
        except etree.XMLSyntaxError as exc:
            raise InvalidResponse(
                f"{target.name} sent a record that is not well-formed XML ({exc})",
                target=target.name,
            ) from None
    else:
        element = next((child for child in data if isinstance(child.tag, str)), None)
        if element is None:
            return None
        inner = element
    if _local(inner.tag) == "collection":
        first = next((c for c in inner if _local(c.tag) == "record"), None)
        if first is None:
            return None
        inner = first
    if _local(inner.tag) != "record":
        return None
    namespace = etree.QName(inner).namespace
    return inner if namespace in (MARC_NS, None) else None


def parse_response(target: Target, body: bytes, query: str = "") -> SearchResult:
    """Read an SRU searchRetrieve response (1.1, 1.2 or 2.0) into a ``SearchResult``.

    Raises:
        TargetDiagnostic: the response is a diagnostic (and carries no records).
        InvalidResponse: the body is not an SRU response, or a record is unreadable.
    """
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidResponse(
            f"{target.name} answered with something that is not XML, so not SRU ({exc})",
            target=target.name,
        ) from None
    name, namespace = _local(root.tag), etree.QName(root).namespace
    diagnostics = _diagnostics(root)
    if name == "diagnostics" and diagnostics:
        first = diagnostics[0]
        raise diagnostic_error(
            target=target.name, uri=first.uri, message=first.message, details=first.details
        )
    if name != "searchRetrieveResponse" or namespace not in RESPONSE_NAMESPACES:
        raise InvalidResponse(
            f"{target.name} did not answer with an SRU searchRetrieve response "
            f"(got <{name}> in {namespace or 'no namespace'})",
            target=target.name,
        )
    total_text = _child_text(root, "numberOfRecords")
    records_node = _child(root, "records")
    sru_records = [] if records_node is None else list(records_node.iterchildren("{*}record"))
    if diagnostics and not sru_records:
        first = diagnostics[0]
        raise diagnostic_error(
            target=target.name, uri=first.uri, message=first.message, details=first.details
        )
    if total_text is None or not total_text.isdigit():
        raise InvalidResponse(
            f"{target.name} sent an SRU response without a number of records",
            target=target.name,
        )
    notes = [
        diagnostic_error(target=target.name, uri=d.uri, message=d.message, details=d.details)
        for d in diagnostics
    ]
    records: list[CatalogRecord] = []
    tags = SUMMARY_TAGS | {"001"} | ({target.holdings.tag} if target.holdings else set())
    for position, sru_record in enumerate(sru_records, start=1):
        schema = _child_text(sru_record, "recordSchema") or ""
        if schema in DIAGNOSTIC_SCHEMAS:
            data = _child(sru_record, "recordData")
            surrogate = (
                None
                if data is None
                else next((d for d in data.iter() if _local(d.tag) == "diagnostic"), None)
            )
            if surrogate is not None:
                notes.append(
                    diagnostic_error(
                        target=target.name,
                        uri=_child_text(surrogate, "uri") or "",
                        message=_child_text(surrogate, "message"),
                        details=_child_text(surrogate, "details"),
                    )
                )
            continue
        element = _record_element(target, sru_record)
        if element is None:
            notes.append(
                TargetDiagnostic(
                    target=target.name,
                    uri="",
                    message=f"record {position} is not MARCXML (schema {schema or 'not given'})",
                )
            )
            continue
        # One pass reads what scoring and holdings need; the MARCXML text and the whole
        # pymarc record are made on first use (a record that is not stored or shown never
        # needs them). The element keeps its response's tree alive until then.
        view = marc_view(element, tags)
        control = view.get("001")
        record_id = (control.data or "").strip() if control is not None else ""
        record_id = (
            record_id or _child_text(sru_record, "recordIdentifier") or f"{target.name}#{position}"
        )
        holdings = extract_holdings(view, target.name, target.holdings) if target.holdings else ()
        records.append(
            CatalogRecord(
                target=target.name,
                record_id=record_id,
                marcxml=functools.partial(_marcxml_text, element),
                record=functools.partial(marc_from_element, element),
                holdings=holdings,
                view=view,
            )
        )
    return SearchResult(
        target=target.name,
        total=int(total_text),
        records=tuple(records),
        query=query,
        diagnostics=tuple(str(n) for n in notes),
    )


# ---------------------------------------------------------------------------- client
def _size_text(size: int) -> str:
    """``32 MB``, ``500 KB``: a byte count as staff read it."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    return f"{max(size // 1024, 1)} KB"


def _where(target: Target) -> str:
    parts = urlsplit(target.base_url)
    return parts.netloc or target.base_url


def _transport_error(target: Target, exc: httpx.TransportError) -> TargetUnreachable:
    """The librarian's sentence for a connection-level failure."""
    name, where = target.name, _where(target)
    if isinstance(exc, httpx.TimeoutException):
        return TargetUnreachable(f"{name} did not answer within {target.timeout_text}", target=name)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            break
        cause = cause.__cause__ or cause.__context__
    if cause is not None or "refused" in str(exc).lower():
        return TargetUnreachable(
            f"{name} is not answering at {where}: the connection was refused "
            "(the catalog server is down or the address is wrong)",
            target=name,
        )
    if isinstance(exc, httpx.ConnectError):
        return TargetUnreachable(
            f"{name} could not be reached at {where} ({exc or type(exc).__name__})",
            target=name,
        )
    return TargetUnreachable(
        f"{name} broke off the connection before answering ({type(exc).__name__})",
        target=name,
    )


class SruClient:
    """Searches SRU targets over one shared ``httpx.AsyncClient``.

    Either pass the client (the composition root owns and closes it) or use the client as an
    async context manager, which creates a keep-alive client and closes it on exit::

        async with SruClient() as sru:
            result = await sru.search(target, [Clause("isbn", "0-8369-3272-2")])
    """

    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        """Args:
        http: the shared HTTP client; ``None`` = create one on ``__aenter__``.
        max_response_bytes: a larger answer is refused (``InvalidResponse``).
        """
        self._http = http
        self._owns_http = http is None
        self._max_bytes = max_response_bytes
        self._limits: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._prefixes: dict[tuple[str, str, int], str] = {}

    async def __aenter__(self) -> SruClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers={"User-Agent": USER_AGENT, "Accept": "application/xml, text/xml"},
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                follow_redirects=True,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _limit(self, target: Target) -> asyncio.Semaphore:
        key = (target.name, target.base_url)
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = asyncio.Semaphore(target.max_concurrency)
        return limit

    def _url(self, target: Target, query: str, max_records: int) -> httpx.URL:
        """The request URL, built with one parse: the fixed parameters are encoded once per
        target, the query appended (httpx's own merging of ``params`` into the base URL
        parses the URL twice, encodes every parameter on each search, and drops a query
        the base URL has of its own)."""
        key = (target.base_url, target.version, max_records)
        try:
            prefix = self._prefixes[key]
        except KeyError:
            prefix = self._prefixes[key] = _url_prefix(target, max_records)
        return httpx.URL(prefix + quote_plus(query, safe=""))

    async def _fetch(self, target: Target, query: str, max_records: int) -> tuple[int, bytes, str]:
        http = self._http
        assert http is not None, "use SruClient as `async with`, or pass an httpx client"
        timeout = httpx.Timeout(target.timeout)
        request = http.build_request("GET", self._url(target, query, max_records), timeout=timeout)
        response = await http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise InvalidResponse(
                        f"{target.name} sent more than {_size_text(self._max_bytes)}; "
                        "ask for fewer records",
                        target=target.name,
                    )
                chunks.append(chunk)
            return response.status_code, b"".join(chunks), response.reason_phrase
        finally:
            await response.aclose()

    async def search(
        self, target: Target, clauses: Sequence[Clause], *, max_records: int = 10
    ) -> SearchResult:
        """Run one searchRetrieve at ``target`` (see ``ill_tui.ports.CatalogSearch``).

        Args:
            target: the catalog to ask.
            clauses: conditions that must all hold.
            max_records: how many records to bring back (0 = only count them).

        Raises:
            TargetUnreachable: refused, timed out, HTTP error, or no such database.
            TargetDiagnostic: an SRU diagnostic (``UnsupportedIndex`` for diagnostic 16).
            InvalidResponse: not a readable SRU response.
            InvalidQuery: nothing to search for.
        """
        if max_records < 0:
            raise ValueError("max_records must not be negative")
        query = build_cql(target, clauses)
        async with self._limit(target):
            try:
                async with asyncio.timeout(target.timeout):
                    status, body, reason = await self._fetch(target, query, max_records)
            except TimeoutError:
                raise TargetUnreachable(
                    f"{target.name} did not answer within {target.timeout_text}",
                    target=target.name,
                ) from None
            except httpx.TransportError as exc:
                raise _transport_error(target, exc) from exc
            except httpx.HTTPError as exc:  # e.g. too many redirects
                raise TargetUnreachable(
                    f"{target.name} could not be asked ({exc})", target=target.name
                ) from exc
        if status != 200:
            self._raise_for_status(target, status, reason, body)
        return parse_response(target, body, query)

    def _raise_for_status(self, target: Target, status: int, reason: str, body: bytes) -> None:
        # SRU 2.0 servers may put a diagnostic in an error response: that says more.
        try:
            parse_response(target, body)
        except TargetDiagnostic:
            raise
        except CatalogError:
            pass
        name = target.name
        if status == 404:
            database = urlsplit(target.base_url).path.strip("/") or "(none)"
            raise TargetUnreachable(
                f"{name} has no catalog database {database!r} at {_where(target)} "
                "(HTTP 404 Not Found): check the target's base URL",
                target=name,
            )
        if status >= 500:
            raise TargetUnreachable(
                f"{name} had a server error (HTTP {status} {reason}); try again later",
                target=name,
            )
        raise TargetUnreachable(f"{name} refused the search (HTTP {status} {reason})", target=name)

    async def search_many(
        self, targets: Iterable[Target], clauses: Sequence[Clause], *, max_records: int = 10
    ) -> dict[str, SearchResult | CatalogError]:
        """Search several targets at once; each answers with its result or its error.

        One target failing never hides another: its ``CatalogError`` takes its place in the
        answer, keyed by target name, in the order the targets were given.

        Raises:
            ValueError: two targets have the same name.
        """
        targets = list(targets)
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique to tell the answers apart: {names}")

        async def one(target: Target) -> SearchResult | CatalogError:
            try:
                return await self.search(target, clauses, max_records=max_records)
            except CatalogError as exc:
                log.info("SRU search at %s failed: %s", target.name, exc)
                return exc

        if len(targets) == 1:
            # one target (the usual set-up): no task to create and schedule for it
            return {targets[0].name: await one(targets[0])}
        outcomes = await asyncio.gather(*(one(t) for t in targets))
        return {target.name: outcome for target, outcome in zip(targets, outcomes, strict=True)}
