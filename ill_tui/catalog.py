"""Catalogs we search for MARC records and holdings: targets, queries, results, errors.

This is the core's vocabulary for catalog lookups; ``adapters/sru.py`` speaks SRU with it and
returns these objects. A **target** is one configured catalog (our own, a union catalog, a
partner's), with the index names its server understands for each kind of search key. A search is
a list of **clauses** (key, value, relation) that must all hold. The answer is a
``SearchResult`` with MARC records (pymarc) and, for targets that carry holdings in their
records, the **holdings** found in them (852, Koha 952 or Alma AVA style).

Targets are configured in a TOML file (``load_targets``)::

    [[target]]
    name = "Our catalog"
    base_url = "https://catalog.example.org/sru/biblio"   # the database is the path
    version = "1.2"            # "1.1", "1.2" or "2.0"
    timeout = 5                # seconds
    max_concurrency = 4        # searches at once against this target
    local = true               # our own catalog: holdings here mean "we own this"
    holdings = "852"           # "852", "952" (Koha), "AVA" (Alma), or a table (see below)

    [target.indexes]           # only what differs from DEFAULT_INDEXES; "" = not searchable
    oclc = "local.oclc"

A custom holdings layout is a table: ``holdings = {tag = "999", agency = ["a"],
location = ["b"], call_number = ["c"], availability = ["d"]}``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import pymarc

#: The search keys a target may map to its own index names.
INDEX_KEYS: Final = ("isbn", "issn", "oclc", "lccn", "title", "author", "date")
#: Keys whose values are identifiers: normalised (digits and X only) before querying.
IDENTIFIER_KEYS: Final = frozenset({"isbn", "issn", "oclc", "lccn"})
#: Human names of the keys, for messages staff read.
KEY_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "isbn": "ISBN",
        "issn": "ISSN",
        "oclc": "OCLC number",
        "lccn": "LCCN",
        "title": "title",
        "author": "author",
        "date": "year",
    }
)

#: CQL index names of the Bath profile and Dublin Core context sets, which most SRU servers
#: (Zebra, Koha, Alma via alma.* aliases, LC) accept. OCLC numbers have no standard index;
#: ``bath.standardIdentifier`` finds them on servers that index 035 there.
DEFAULT_INDEXES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "isbn": "bath.isbn",
        "issn": "bath.issn",
        "oclc": "bath.standardIdentifier",
        "lccn": "bath.lccn",
        "title": "dc.title",
        "author": "dc.creator",
        "date": "dc.date",
    }
)

#: CQL relations a clause may use. Ranges (``<`` ...) make sense on ``date`` only.
RELATIONS: Final = frozenset({"all", "any", "=", "adj", "==", "<", "<=", ">", ">="})
SRU_VERSIONS: Final = ("1.1", "1.2", "2.0")

HoldingsKind = Literal["plain", "koha", "alma"]


# ---------------------------------------------------------------------------- errors
class CatalogError(Exception):
    """Base of every catalog lookup failure; ``str()`` is a sentence staff can read.

    Attributes:
        target: the name of the target it concerns, when there is one.
    """

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class TargetUnreachable(CatalogError):
    """The target did not answer usefully: refused, timed out, HTTP error, no such database."""


class InvalidResponse(CatalogError):
    """The target answered, but not with an SRU response we can read."""


class InvalidQuery(CatalogError):
    """Nothing searchable is left of the clauses (e.g. an ISBN with no digits in it)."""


class TargetConfigError(CatalogError):
    """The target configuration (TOML) is wrong; the message says where and how."""


class TargetDiagnostic(CatalogError):
    """The target ran the request and answered with an SRU diagnostic.

    Attributes:
        uri: the diagnostic URI, e.g. ``info:srw/diagnostic/1/16``.
        message: the diagnostic's own message (or the standard one for its number).
        details: the diagnostic's details, if any (often the offending index or value).
    """

    def __init__(
        self, *, target: str, uri: str, message: str, details: str | None = None, text: str = ""
    ) -> None:
        readable = text or f"{target} could not run the search: {message}" + (
            f" ({details})" if details else ""
        )
        super().__init__(readable, target=target)
        self.uri = uri
        self.message = message
        self.details = details

    @property
    def number(self) -> int | None:
        """The diagnostic number of a standard SRU diagnostic URI, else ``None``."""
        prefix = "info:srw/diagnostic/1/"
        tail = self.uri[len(prefix) :] if self.uri.startswith(prefix) else ""
        return int(tail) if tail.isdigit() else None


class UnsupportedIndex(TargetDiagnostic):
    """Diagnostic 16: the target has no such index, or (Zebra) no record fills it.

    Treat it per target as "this index cannot find it here", not as a broken catalog.
    """


#: Standard SRU diagnostic messages, for servers that send only the URI.
_DIAGNOSTIC_MESSAGES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "General system error",
        2: "System temporarily unavailable",
        3: "Authentication error",
        4: "Unsupported operation",
        5: "Unsupported version",
        6: "Unsupported parameter value",
        7: "Mandatory parameter not supplied",
        8: "Unsupported parameter",
        10: "Query syntax error",
        15: "Unsupported context set",
        16: "Unsupported index",
        19: "Unsupported relation",
        20: "Unsupported relation modifier",
        27: "Empty term unsupported",
        35: "Term contains only stopwords",
        60: "Result set not created: too many matching records",
        61: "First record position out of range",
        66: "Unknown schema for retrieval",
        67: "Record not available in this schema",
        235: "Database does not exist",
    }
)


def diagnostic_error(
    *, target: str, uri: str, message: str | None, details: str | None
) -> TargetDiagnostic:
    """The named error for an SRU diagnostic: ``UnsupportedIndex`` for 16, else the base.

    Args:
        target: the target's name.
        uri: the diagnostic URI.
        message: the diagnostic's message, if the server sent one.
        details: the diagnostic's details, if any.
    """
    probe = TargetDiagnostic(target=target, uri=uri, message="")
    number = probe.number
    text = (message or "").strip() or _DIAGNOSTIC_MESSAGES.get(number or 0, "") or uri
    details = (details or "").strip() or None
    if number == 16:
        readable = f"{target} cannot search this way: it has no such index (SRU: {text}" + (
            f", {details})" if details else ")"
        )
        return UnsupportedIndex(
            target=target, uri=uri, message=text, details=details, text=readable
        )
    return TargetDiagnostic(target=target, uri=uri, message=text, details=details)


# ---------------------------------------------------------------------------- MARC view
class MarcField:
    """A read-only MARC field as scoring and holdings read it: pymarc's reading rules, without
    pymarc's cost.

    A search parses every record it brings back, and what is scored needs only a dozen of a
    record's fields; building a full ``pymarc.Field`` for each of them was the larger part of
    a search's CPU. The same rules as pymarc apply: a tag of digits below ``010`` is a control
    field (``data``, no subfields), any other tag a data field (indicators, subfields).

    Attributes:
        tag: the three-character tag.
        data: a control field's value (``None`` for a data field).
        indicator1: the first indicator (a data field's; ``None`` for a control field).
        indicator2: the second indicator.
        subfields: (code, value) pairs in record order.
        control_field: whether it is a control field.
    """

    __slots__ = ("control_field", "data", "indicator1", "indicator2", "subfields", "tag")

    def __init__(
        self,
        tag: str,
        *,
        indicators: tuple[str, str] = (" ", " "),
        subfields: Sequence[tuple[str, str]] = (),
        data: str | None = None,
    ) -> None:
        """Args:
        tag: the tag as written (a numeric tag of another length is zero-padded, as pymarc
            does).
        indicators: a data field's two indicators.
        subfields: a data field's (code, value) pairs.
        data: a control field's value.
        """
        if len(tag) != 3 and tag.isdigit():
            tag = f"{int(tag):03}"
        self.tag = tag
        self.control_field = tag < "010" and tag.isdigit()
        if self.control_field:
            self.data = data
            self.indicator1: str | None = None
            self.indicator2: str | None = None
            self.subfields: tuple[tuple[str, str], ...] = ()
        else:
            self.data = None
            self.indicator1, self.indicator2 = indicators
            self.subfields = tuple(subfields)

    def is_control_field(self) -> bool:
        """Whether it is a control field (``001``-``009``): data, no subfields."""
        return self.control_field

    def get_subfields(self, *codes: str) -> list[str]:
        """The values of the subfields with any of ``codes``, in record order."""
        return [value for code, value in self.subfields if code in codes]

    def get(self, code: str, default: str | None = None) -> str | None:
        """The value of the first subfield ``code``, else ``default``."""
        for found, value in self.subfields:
            if found == code:
                return value
        return default

    def __repr__(self) -> str:
        if self.control_field:
            return f"MarcField({self.tag!r}, data={self.data!r})"
        return f"MarcField({self.tag!r}, subfields={self.subfields!r})"


class MarcFields:
    """Some fields of a record, read like a ``pymarc.Record`` (``get``, ``get_fields``).

    ``CatalogRecord.view`` gives one: the fields scoring and holdings need, read straight from
    the response, while the whole ``pymarc.Record`` is built only when something asks for it.
    """

    __slots__ = ("fields",)

    def __init__(self, fields: Sequence[MarcField]) -> None:
        """Args:
        fields: the fields, in record order.
        """
        self.fields = tuple(fields)

    def get(self, tag: str) -> MarcField | None:
        """The first field with ``tag``, or ``None``."""
        for f in self.fields:
            if f.tag == tag:
                return f
        return None

    def get_fields(self, *tags: str) -> list[MarcField]:
        """Every field with one of ``tags``, in record order."""
        return [f for f in self.fields if f.tag in tags]


#: A MARC record as read by scoring and holdings: a whole pymarc record or a ``MarcFields``.
MarcLike = pymarc.Record | MarcFields
AnyField = pymarc.Field | MarcField


# ---------------------------------------------------------------------------- holdings
@dataclass(frozen=True)
class HoldingsFormat:
    """Which MARC field and subfields of a target's records carry its holdings.

    Each of ``agency``, ``location``, ``call_number`` and ``availability`` lists subfield
    codes whose values are joined (in the order listed). ``kind`` says how availability is
    read: ``plain`` takes the listed subfields as text, ``koha`` reads Koha's 952 status
    subfields ($q on loan, $0 withdrawn, $1 lost, $7 not for loan), ``alma`` reads AVA $e with
    the item counts $f (total) and $g (unavailable).
    """

    tag: str
    agency: tuple[str, ...] = ()
    location: tuple[str, ...] = ()
    call_number: tuple[str, ...] = ()
    availability: tuple[str, ...] = ()
    kind: HoldingsKind = "plain"
    label: str = ""

    def __post_init__(self) -> None:
        if not (len(self.tag) == 3 and self.tag.isalnum()):
            raise ValueError(f"holdings tag {self.tag!r} is not a three-character MARC tag")
        for codes in (self.agency, self.location, self.call_number, self.availability):
            for code in codes:
                if len(code) != 1 or not code.isalnum():
                    raise ValueError(f"holdings subfield code {code!r} is not one letter or digit")


#: MARC 21 holdings location: $a institution, $b/$c location, $k/$h/$i/$m call number parts,
#: $j shelving control number (used by e.g. the British Library instead of $h).
MARC21_852: Final = HoldingsFormat(
    tag="852",
    agency=("a",),
    location=("b", "c"),
    call_number=("k", "h", "i", "m", "j"),
    label="MARC 21 852",
)
#: Koha's item field: $a home library, $b current library, $c shelving location, $o call number.
KOHA_952: Final = HoldingsFormat(
    tag="952",
    agency=("a",),
    location=("b", "c"),
    call_number=("o",),
    kind="koha",
    label="Koha 952",
)
#: Alma's availability field (SRU with holdings): $a institution, $q library name, $c location,
#: $d call number, $e available / unavailable / check_holdings.
ALMA_AVA: Final = HoldingsFormat(
    tag="AVA",
    agency=("a",),
    location=("q", "c"),
    call_number=("d",),
    availability=("e",),
    kind="alma",
    label="Alma AVA",
)
HOLDINGS_FORMATS: Final[Mapping[str, HoldingsFormat]] = MappingProxyType(
    {
        "852": MARC21_852,
        "marc21": MARC21_852,
        "952": KOHA_952,
        "koha": KOHA_952,
        "ava": ALMA_AVA,
        "alma": ALMA_AVA,
    }
)


@dataclass(frozen=True)
class Holding:
    """One holding of a record at a target: who has it, where, under what call number."""

    target: str
    call_number: str | None
    location: str | None
    availability: str | None
    agency: str | None


def _joined(field_: AnyField, codes: Sequence[str], sep: str = " ") -> str | None:
    values = [v.strip() for code in codes for v in field_.get_subfields(code) if v and v.strip()]
    return sep.join(values) or None


def _koha_availability(field_: AnyField) -> str:
    def flagged(code: str) -> bool:
        value = (field_.get(code) or "").strip()
        return value not in ("", "0")

    if flagged("0"):
        return "withdrawn"
    if flagged("1"):
        return "lost"
    if flagged("7"):
        return "not for loan"
    due = (field_.get("q") or "").strip()
    if due:
        return f"on loan, due {due}"
    return "available"


def _alma_availability(field_: AnyField, fmt: HoldingsFormat) -> str | None:
    status = _joined(field_, fmt.availability)
    total, unavailable = (field_.get("f") or "").strip(), (field_.get("g") or "").strip()
    if status and total.isdigit() and unavailable.isdigit():
        free = max(int(total) - int(unavailable), 0)
        return f"{status.replace('_', ' ')} ({free} of {total} items)"
    return status.replace("_", " ") if status else None


def extract_holdings(record: MarcLike, target: str, fmt: HoldingsFormat) -> tuple[Holding, ...]:
    """The holdings in ``record`` laid out as ``fmt`` says; empty when it has none.

    Args:
        record: a MARC record as returned by the target (or a view with its ``fmt.tag``
            fields).
        target: the target's name (kept on every holding).
        fmt: which field and subfields carry the holdings.
    """
    holdings: list[Holding] = []
    for field_ in record.get_fields(fmt.tag):
        if field_.is_control_field():
            continue
        if fmt.kind == "koha":
            availability: str | None = _koha_availability(field_)
        elif fmt.kind == "alma":
            availability = _alma_availability(field_, fmt)
        else:
            availability = _joined(field_, fmt.availability, "; ")
        holdings.append(
            Holding(
                target=target,
                call_number=_joined(field_, fmt.call_number),
                location=_joined(field_, fmt.location, ", "),
                availability=availability,
                agency=_joined(field_, fmt.agency),
            )
        )
    return tuple(holdings)


# ---------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """One configured SRU catalog.

    Attributes:
        name: what staff call it ("Our catalog", "LC").
        base_url: the SRU base URL; its path is the database (``http://host:210/biblio``).
        version: the SRU version to speak: "1.1", "1.2" or "2.0".
        indexes: CQL index name per search key (``INDEX_KEYS``); a key left out cannot be
            searched at this target.
        timeout: seconds a search may take before the target counts as not answering.
        max_concurrency: searches at once against this target.
        local: our own catalog: holdings found here mean "we own this".
        holdings: where the target's records carry holdings, or ``None`` if they do not.
    """

    name: str
    base_url: str
    version: str = "1.2"
    # A mappingproxy is unhashable, so dataclasses wants a factory; the value is the same.
    indexes: Mapping[str, str] = field(default_factory=lambda: DEFAULT_INDEXES)
    timeout: float = 5.0
    max_concurrency: int = 4
    local: bool = False
    holdings: HoldingsFormat | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a target needs a name")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{self.name}: base_url {self.base_url!r} must be an http:// or https:// URL"
            )
        if self.version not in SRU_VERSIONS:
            raise ValueError(
                f"{self.name}: SRU version {self.version!r} is not one of {', '.join(SRU_VERSIONS)}"
            )
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"{self.name}: timeout must be a positive number of seconds")
        if self.max_concurrency < 1:
            raise ValueError(f"{self.name}: max_concurrency must be at least 1")
        unknown = sorted(set(self.indexes) - set(INDEX_KEYS))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown index keys {', '.join(unknown)} "
                f"(known: {', '.join(INDEX_KEYS)})"
            )

    def __hash__(self) -> int:  # indexes is a Mapping; identity by name and address is enough
        return hash((self.name, self.base_url, self.version))

    @property
    def timeout_text(self) -> str:
        """The timeout as staff read it: ``5 s``, ``2.5 s``."""
        return f"{self.timeout:g} s"


@dataclass(frozen=True)
class Clause:
    """One condition of a search: ``key`` (an ``INDEX_KEYS`` entry) ``relation`` ``value``."""

    key: str
    value: str
    relation: str = "all"

    def __post_init__(self) -> None:
        if self.key not in INDEX_KEYS:
            raise ValueError(f"unknown search key {self.key!r} (known: {', '.join(INDEX_KEYS)})")
        if self.relation not in RELATIONS:
            raise ValueError(
                f"unknown relation {self.relation!r} (known: {', '.join(sorted(RELATIONS))})"
            )


class CatalogRecord:
    """One record a target returned: its MARCXML, the parsed record and its holdings.

    Read-only. ``marcxml`` (the standalone MARCXML document, what is stored) and ``record``
    (the whole record, parsed by pymarc, for the MARC view) may be handed over as functions
    that make them: an adapter that reads many records then builds them only for the records
    that are stored or shown, once, on first access. ``view`` is what scoring reads.

    Equality and hash are those of (target, record_id, marcxml, holdings), as before.
    """

    __slots__ = ("_fields", "_marcxml", "_record", "holdings", "record_id", "target")
    target: str
    record_id: str
    holdings: tuple[Holding, ...]
    _marcxml: str | Callable[[], str]
    _record: pymarc.Record | Callable[[], pymarc.Record]
    _fields: MarcFields | None

    def __init__(
        self,
        target: str,
        record_id: str,
        marcxml: str | Callable[[], str],
        record: pymarc.Record | Callable[[], pymarc.Record],
        holdings: tuple[Holding, ...] = (),
        *,
        view: MarcFields | None = None,
    ) -> None:
        """Args:
        target: the target's name.
        record_id: the record's id at the target (001, else the SRU record identifier).
        marcxml: the MARCXML text, or a function that makes it.
        record: the pymarc record, or a function that makes it.
        holdings: the holdings read from the record.
        view: the fields scoring needs (``scoring.SUMMARY_TAGS``), read without pymarc;
            ``None`` = read them from ``record``.
        """
        set_ = object.__setattr__
        set_(self, "target", target)
        set_(self, "record_id", record_id)
        set_(self, "holdings", holdings)
        set_(self, "_marcxml", marcxml)
        set_(self, "_record", record)
        set_(self, "_fields", view)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CatalogRecord is read-only (cannot set {name})")

    @property
    def marcxml(self) -> str:
        """The record as a standalone MARCXML document."""
        value = self._marcxml
        if not isinstance(value, str):
            value = value()
            object.__setattr__(self, "_marcxml", value)
        return value

    @property
    def record(self) -> pymarc.Record:
        """The whole record, parsed by pymarc."""
        value = self._record
        if isinstance(value, pymarc.Record):
            return value
        record: pymarc.Record = value()
        object.__setattr__(self, "_record", record)
        return record

    @property
    def view(self) -> MarcLike:
        """What scoring reads: the adapter's ``MarcFields`` if it gave one, else ``record``."""
        return self._fields if self._fields is not None else self.record

    def _key(self) -> tuple[str, str, str, tuple[Holding, ...]]:
        return (self.target, self.record_id, self.marcxml, self.holdings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CatalogRecord):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"CatalogRecord(target={self.target!r}, record_id={self.record_id!r}, "
            f"holdings={self.holdings!r})"
        )


@dataclass(frozen=True)
class SearchResult:
    """A target's answer: how many records match in all, and the first ones.

    Attributes:
        query: the query as sent (CQL), for staff who want to see what was asked.
        diagnostics: non-fatal diagnostics (e.g. a record the target could not supply).
    """

    target: str
    total: int
    records: tuple[CatalogRecord, ...]
    query: str = ""
    diagnostics: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- configuration
_TARGET_KEYS: Final = frozenset(
    {"name", "base_url", "version", "indexes", "timeout", "max_concurrency", "local", "holdings"}
)
_HOLDINGS_KEYS: Final = frozenset(
    {"tag", "agency", "location", "call_number", "availability", "kind"}
)


def _codes(value: Any, where: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TargetConfigError(f"{where}: holdings {what} must be a list of subfield codes")
    return tuple(value)


def _holdings(value: Any, where: str) -> HoldingsFormat | None:
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        fmt = HOLDINGS_FORMATS.get(value.strip().lower())
        if fmt is None:
            raise TargetConfigError(
                f"{where}: holdings {value!r} is not one of 852, 952 (Koha), AVA (Alma) "
                "or a table with tag and subfields"
            )
        return fmt
    if not isinstance(value, dict):
        raise TargetConfigError(f"{where}: holdings must be a name (852, 952, AVA) or a table")
    unknown = sorted(set(value) - _HOLDINGS_KEYS)
    if unknown:
        raise TargetConfigError(f"{where}: unknown holdings keys {', '.join(unknown)}")
    tag, kind = value.get("tag"), value.get("kind", "plain")
    if not isinstance(tag, str):
        raise TargetConfigError(f'{where}: holdings needs a tag (e.g. tag = "852")')
    if kind not in ("plain", "koha", "alma"):
        raise TargetConfigError(f"{where}: holdings kind must be plain, koha or alma")
    try:
        return HoldingsFormat(
            tag=tag,
            agency=_codes(value.get("agency", []), where, "agency"),
            location=_codes(value.get("location", []), where, "location"),
            call_number=_codes(value.get("call_number", []), where, "call_number"),
            availability=_codes(value.get("availability", []), where, "availability"),
            kind=kind,
            label=f"{tag} (custom)",
        )
    except ValueError as exc:
        raise TargetConfigError(f"{where}: {exc}") from None


def _indexes(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return DEFAULT_INDEXES
    if not isinstance(value, dict):
        raise TargetConfigError(f'{where}: indexes must be a table (isbn = "bath.isbn", ...)')
    merged = dict(DEFAULT_INDEXES)
    for key, index in value.items():
        if key not in INDEX_KEYS:
            raise TargetConfigError(
                f"{where}: unknown index key {key!r} (known: {', '.join(INDEX_KEYS)})"
            )
        if not isinstance(index, str) or any(c.isspace() or c in '"()=<>/' for c in index):
            raise TargetConfigError(f"{where}: index for {key} must be a CQL index name")
        if index:
            merged[key] = index
        else:  # "" switches the key off for this target
            merged.pop(key, None)
    return MappingProxyType(merged)


def parse_targets(data: Mapping[str, Any], source: str = "targets") -> tuple[Target, ...]:
    """Build targets from parsed TOML (``{"target": [{...}, ...]}``).

    Args:
        data: the parsed document.
        source: where it came from, named in error messages (a file name).

    Raises:
        TargetConfigError: a missing or unknown key, a wrong type or value, a duplicate name.
    """
    unknown_top = sorted(set(data) - {"target"})
    if unknown_top:
        raise TargetConfigError(
            f"{source}: unknown top-level keys {', '.join(unknown_top)} "
            "(expected [[target]] tables)"
        )
    entries = data.get("target", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TargetConfigError(f"{source}: targets are [[target]] tables")
    targets: list[Target] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        label = entry.get("name")
        where = f"{source}, target {number}" + (f" ({label})" if isinstance(label, str) else "")
        unknown = sorted(set(entry) - _TARGET_KEYS)
        if unknown:
            raise TargetConfigError(f"{where}: unknown keys {', '.join(unknown)}")
        for required in ("name", "base_url"):
            if not isinstance(entry.get(required), str) or not entry[required].strip():
                raise TargetConfigError(f"{where}: {required} is missing or not text")
        name = entry["name"].strip()
        if name.casefold() in seen:
            raise TargetConfigError(f"{where}: another target is already called {name!r}")
        seen.add(name.casefold())
        version = entry.get("version", "1.2")
        timeout = entry.get("timeout", 5.0)
        concurrency = entry.get("max_concurrency", 4)
        local = entry.get("local", False)
        if isinstance(version, float | int) and not isinstance(version, bool):
            version = f"{version:.1f}"  # version = 1.2 written without quotes
        if not isinstance(version, str):
            raise TargetConfigError(f'{where}: version must be "1.1", "1.2" or "2.0"')
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TargetConfigError(f"{where}: timeout must be a number of seconds")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TargetConfigError(f"{where}: max_concurrency must be a whole number")
        if not isinstance(local, bool):
            raise TargetConfigError(f"{where}: local must be true or false")
        try:
            targets.append(
                Target(
                    name=name,
                    base_url=entry["base_url"].strip(),
                    version=version,
                    indexes=_indexes(entry.get("indexes"), where),
                    timeout=float(timeout),
                    max_concurrency=concurrency,
                    local=local,
                    holdings=_holdings(entry.get("holdings"), where),
                )
            )
        except ValueError as exc:
            raise TargetConfigError(f"{where}: {exc}") from None
    return tuple(targets)


def load_targets(path: Path | str) -> tuple[Target, ...]:
    """Read the targets of a TOML file (see the module docstring for its layout).

    Raises:
        TargetConfigError: the file is missing, not TOML, or describes a bad target.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetConfigError(f"{path}: no such target file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetConfigError(f"{path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_targets(data, str(path))
