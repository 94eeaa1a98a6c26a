"""OpenURL links (1.0 KEV and 0.1) -> ``Citation``.

Library discovery systems, databases (PubMed, EBSCO, Google Scholar) and citation managers
send a patron's citation to an ILL form as an OpenURL. Two dialects are in use:

- **OpenURL 1.0** (ANSI/NISO Z39.88-2004) in Key/Encoded-Value format: ``url_ver=Z39.88-2004``,
  ``rft_val_fmt=info:ofi/fmt:kev:mtx:book`` or ``...:journal``, the referent's fields as
  ``rft.*`` keys (``rft.genre``, ``rft.btitle``/``rft.atitle``/``rft.jtitle``/``rft.title``,
  ``rft.au``/``rft.aulast``/``rft.aufirst``, ``rft.isbn``, ``rft.issn``/``rft.eissn``,
  ``rft.date``, ``rft.volume``/``rft.issue``/``rft.spage``/``rft.epage``/``rft.pages``,
  ``rft.pub``/``rft.place``/``rft.edition``) and identifiers as ``rft_id`` URIs
  (``info:doi/``, ``info:pmid/``, ``urn:ISBN:``, ``urn:ISSN:``, ``info:oclcnum/``,
  ``info:lccn/``); the referrer as ``rfr_id``.
- **OpenURL 0.1**: bare keys (``genre``, ``title``, ``atitle``, ``aulast``, ``isbn``, ``issn``,
  ``date``, ``volume``, ``spage``, ...), identifiers as ``id=doi:...`` / ``id=pmid:...``, the
  referrer as ``sid``.

``parse_openurl`` accepts a whole link or only its query string, decodes percent-encoding and
``+``, and returns a ``Citation`` (identifiers in their compact form when they are valid; an
invalid one is passed on as written so the form can say what is wrong with it). A link without
a title or an identifier raises ``OpenURLError`` with a message staff can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl

from ill_tui import identifiers
from ill_tui.citation import COPY, LOAN, Citation, CitationLinkError

KEV_VERSION = "Z39.88-2004"
_FORMAT_PREFIX = "info:ofi/fmt:kev:mtx:"
_BOOK_FORMATS = frozenset({"book", "dissertation"})
_JOURNAL_FORMATS = frozenset({"journal"})
# Genres that name a part of a book or journal: staff ask for a copy of that part.
_PART_GENRES = frozenset({"article", "bookitem", "chapter", "proceeding", "preprint"})
_AUTHOR_LIMIT = 300


class OpenURLError(CitationLinkError):
    """The link is not an OpenURL we can read, or it carries nothing to request."""


Values = dict[str, list[str]]


def parse_openurl(link: str) -> Citation:
    """Read an OpenURL 1.0 (KEV) or 0.1 link into a ``Citation``.

    Args:
        link: the whole link (``https://resolver.example.edu/ill?url_ver=...``) or only its
            query string (``url_ver=Z39.88-2004&rft.genre=book&...``). ``&amp;`` copied from
            HTML is read as ``&``.

    Raises:
        OpenURLError: empty, not key=value pairs, an OpenURL version or format we do not read,
            or no title, ISBN, ISSN, DOI, PMID or OCLC number at all.
    """
    values = _pairs(link)
    version = _version(values)

    def first(*keys: str) -> str:
        for key in keys:
            for value in values.get(key, ()):
                if value:
                    return value
        return ""

    if version == "1.0":
        prefix = "rft."
        fmt = first("rft_val_fmt").lower().removeprefix(_FORMAT_PREFIX)
        if fmt and fmt not in _BOOK_FORMATS | _JOURNAL_FORMATS:
            raise OpenURLError(
                f"This OpenURL describes a {fmt!r}, not a book or a journal article; "
                "enter the request by hand."
            )
        ids = values.get("rft_id", [])
        source = first("rfr_id").removeprefix("info:sid/")
    else:
        prefix = ""
        fmt = ""
        ids = values.get("id", []) + values.get("rft_id", [])
        source = first("sid").removeprefix("info:sid/")

    def get(*keys: str) -> str:
        return first(*(prefix + key for key in keys))

    genre = get("genre").lower()
    atitle = get("atitle")
    is_part = genre in _PART_GENRES or (not genre and bool(atitle))
    if fmt in _JOURNAL_FORMATS or genre in ("article", "journal", "issue", "preprint"):
        container = get("jtitle", "title", "stitle", "btitle")
    else:
        container = get("btitle", "title", "jtitle", "stitle")
    authors = _authors(values, prefix)

    found = _identifiers(ids)
    isbn = get("isbn") or found.get("isbn", "")
    issn = get("issn") or found.get("issn", "") or get("eissn")
    citation = Citation(
        title=container,
        author="" if is_part else authors,
        article_title=atitle if is_part else "",
        article_author=authors if is_part else "",
        edition=get("edition"),
        publisher=get("pub", "publisher", "inst"),
        place_of_publication=get("place"),
        year=_year(get("date")),
        volume=get("volume"),
        issue=get("issue"),
        pages=_pages(get("pages"), get("spage"), get("epage")),
        isbn=_clean(isbn, identifiers.normalise_isbn),
        issn=_clean(issn, identifiers.normalise_issn),
        oclc_number=_clean(found.get("oclc_number", ""), identifiers.normalise_oclc),
        lccn=_clean(found.get("lccn", ""), identifiers.normalise_lccn),
        doi=_clean(found.get("doi", ""), identifiers.normalise_doi),
        pmid=_clean(found.get("pmid", ""), identifiers.normalise_pmid),
        service_type=COPY if is_part else LOAN,
        source=source,
    )
    if not (
        citation.title
        or citation.article_title
        or citation.isbn
        or citation.issn
        or citation.doi
        or citation.pmid
        or citation.oclc_number
    ):
        raise OpenURLError(
            "This link has no title, ISBN, ISSN or DOI (nor a PMID or OCLC number), so there "
            "is nothing to request. Check that the whole link was copied."
        )
    return citation


# -- reading the link ---------------------------------------------------------------------------


def _pairs(link: str) -> Values:
    """The decoded key/value pairs of the link's query, keys in lower case, values tidied."""
    text = link.strip().replace("&amp;", "&")
    if not text:
        raise OpenURLError("The link is empty; paste the whole OpenURL.")
    text = text.split("#", 1)[0]
    if "?" in text:
        query = text.split("?", 1)[1]
        if not query.strip():
            raise OpenURLError(
                "This link has no query (nothing after '?'), so it is not an OpenURL."
            )
    elif re.match(r"^(?:[a-z][a-z0-9+.-]*://|/|www\.)", text, re.IGNORECASE):
        raise OpenURLError("This link has no query (nothing after '?'), so it is not an OpenURL.")
    else:
        query = text
    if "=" not in query:
        raise OpenURLError("This is not an OpenURL: it has no key=value pairs.")
    encoding = "utf-8"
    if re.search(r"(?:^|&)ctx_enc=info(?::|%3a)ofi/enc(?::|%3a)iso-8859-1", query, re.IGNORECASE):
        encoding = "latin-1"
    try:
        pairs = parse_qsl(query, encoding=encoding, errors="strict")
    except UnicodeDecodeError:
        # OpenURL 0.1 predates the UTF-8 rule; old sources send Latin-1.
        pairs = parse_qsl(query, encoding="latin-1")
    values: Values = {}
    for key, value in pairs:
        tidy = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", value).split())
        values.setdefault(key.strip().lower(), []).append(tidy)
    return values


def _version(values: Values) -> str:
    """``"1.0"`` or ``"0.1"``."""
    declared = next((v for v in values.get("url_ver", []) + values.get("ctx_ver", []) if v), "")
    if declared:
        if declared.upper() != KEV_VERSION.upper():
            raise OpenURLError(
                f"OpenURL version {declared!r} is not supported; links in OpenURL 1.0 "
                f"({KEV_VERSION}) and 0.1 can be read."
            )
        return "1.0"
    if any(key.startswith(("rft.", "rft_")) for key in values):
        return "1.0"
    return "0.1"


def _authors(values: Values, prefix: str) -> str:
    """One author line: ``Last, First`` from aulast/aufirst, then further ``au`` names."""

    def first(key: str) -> str:
        return next((v for v in values.get(prefix + key, ()) if v), "")

    names: list[str] = []
    last = first("aulast")
    if last:
        given = first("aufirst") or first("auinit") or first("auinit1")
        names.append(f"{last}, {given}" if given else last)
    for name in values.get(prefix + "au", ()):
        if name and not (last and name.lower().startswith(last.lower())) and name not in names:
            names.append(name)
    corp = first("aucorp")
    if corp and not names:
        names.append(corp)
    line = ""
    for name in names:
        candidate = f"{line}; {name}" if line else name
        if len(candidate) > _AUTHOR_LIMIT - len("; et al."):
            return f"{line}; et al." if line else name[:_AUTHOR_LIMIT]
        line = candidate
    return line


_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("info:doi/", "doi"),
    ("doi:", "doi"),
    ("https://doi.org/", "doi"),
    ("http://doi.org/", "doi"),
    ("https://dx.doi.org/", "doi"),
    ("http://dx.doi.org/", "doi"),
    ("info:pmid/", "pmid"),
    ("pmid:", "pmid"),
    ("urn:isbn:", "isbn"),
    ("isbn:", "isbn"),
    ("urn:issn:", "issn"),
    ("issn:", "issn"),
    ("info:oclcnum/", "oclc_number"),
    ("oclcnum:", "oclc_number"),
    ("info:lccn/", "lccn"),
    ("lccn:", "lccn"),
)


def _identifiers(ids: list[str]) -> dict[str, str]:
    """Identifier URIs (``rft_id``, 0.1 ``id``) by citation field; the first of each kind wins."""
    found: dict[str, str] = {}
    for uri in ids:
        lowered = uri.lower()
        for prefix, name in _ID_PREFIXES:
            if lowered.startswith(prefix):
                found.setdefault(name, uri[len(prefix) :].strip())
                break
    return found


def _clean(value: str, normalise: Callable[[str], str]) -> str:
    """The compact identifier when valid, else the value as written (the form reports it)."""
    if not value:
        return ""
    try:
        return normalise(value)
    except identifiers.InvalidIdentifier:
        return value


def _year(date: str) -> str:
    """``2004-05-01`` / ``May 2004`` -> ``2004``; anything else is passed on for the form."""
    match = re.search(r"(?<!\d)(\d{4})(?!\d)", date)
    return match.group(1) if match else date


def _pages(pages: str, start: str, end: str) -> str:
    if pages:
        return pages
    if start and end:
        return f"{start}-{end}"
    return start
