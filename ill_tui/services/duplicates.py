"""Duplicate requests: the same patron asking again for something already on its way.

A new (or re-verified) request duplicates an *open* request of the same patron (or, for
lending, the same partner library) when

1. an identifier matches: ISBN (stored as ISBN-13, so an ISBN-10 typed or pasted matches
   too), ISSN, OCLC number, LCCN, DOI (case-insensitive) or PMID; or
2. the titles are near-identical (``TITLE_THRESHOLD``) and so are the authors
   (``AUTHOR_THRESHOLD``, or the same surname), compared after folding case, diacritics,
   punctuation and a leading article; ``tests/test_duplicates.py`` shows why these thresholds.

An ISBN, ISSN, OCLC number or LCCN names a whole book or journal: two *copies* (chapters,
articles) from the same book or journal are different requests unless the parts match as well
(near-identical article titles, or the same volume, issue and pages). A DOI or PMID names the
part itself. A copy and a loan are never duplicates of each other.

Every lookup goes through the patron (or partner) index and reads only that patron's open
requests, never the whole table.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from rapidfuzz import fuzz
from sqlmodel import Session, col, select

from ill_tui import identifiers
from ill_tui.citation import CITATION_FIELDS, COPY, Citation
from ill_tui.models import Request

# Percent similarity (rapidfuzz.fuzz.ratio on folded text) from which two titles are taken for
# the same title; typos, dropped leading articles, stripped diacritics and case score 90-100,
# different volumes or similar titles of different works score below (see the test).
TITLE_THRESHOLD = 90.0
# A word of one title with no word at least this alike in the other makes the titles differ.
WORD_THRESHOLD = 70.0
# Percent similarity (token_sort_ratio, so "First Last" = "Last, First") for authors.
AUTHOR_THRESHOLD = 85.0
# With no author on one side the title alone must be nearly exact.
TITLE_ONLY_THRESHOLD = 97.0
# At most this many of a patron's most recent open requests are compared by title.
FUZZY_LIMIT = 500

_CONTAINER_IDS = ("isbn", "issn", "oclc_number", "lccn")
_PART_IDS = ("doi", "pmid")
_LABELS = {
    "isbn": "ISBN",
    "issn": "ISSN",
    "oclc_number": "OCLC number",
    "lccn": "LCCN",
    "doi": "DOI",
    "pmid": "PMID",
}
# leading articles of the languages ILL titles come in most (English, German, French, Spanish,
# Italian, Dutch); dropped on both sides alike
_ARTICLES = frozenset(
    {"the", "a", "an", "der", "die", "das", "ein", "eine", "le", "la", "les", "l", "un", "une",
     "el", "los", "las", "il", "lo", "gli", "i", "de", "het", "een"}
)  # fmt: skip


@dataclass(frozen=True)
class Duplicate:
    """An open request that the citation duplicates, and why staff should look at it."""

    request_id: int
    title: str
    status: str
    created_at: datetime
    reason: str
    by_identifier: bool
    score: float  # 100 for an identifier match, else the title similarity

    def describe(self) -> str:
        """One line for staff: ``request 12 (New, "Title"): same ISBN 9780306406157``."""
        return f'request {self.request_id} ({self.status}, "{self.title}"): {self.reason}'


def citation_of(request: Request) -> Citation:
    """A request's citation as a ``Citation`` (None read as "")."""
    values = {name: getattr(request, name) or "" for name in CITATION_FIELDS}
    return Citation(**values, service_type=request.service_type)


def find_duplicates(
    session: Session,
    *,
    patron_id: int | None,
    citation: Citation | Request,
    exclude_id: int | None = None,
    partner_id: int | None = None,
) -> list[Duplicate]:
    """Open requests of the same patron (or partner) that ``citation`` duplicates.

    Args:
        session: the caller's unit of work (read only here).
        patron_id: whose requests to look at (borrowing).
        citation: the citation to compare, or a request (its citation is used).
        exclude_id: the request being checked itself.
        partner_id: for lending requests: the requesting library instead of a patron.

    Returns:
        Identifier matches first, then title/author matches by falling similarity; each with
        its reason. Empty when neither ``patron_id`` nor ``partner_id`` is given.
    """
    if isinstance(citation, Request):
        citation = citation_of(citation)
    if patron_id is not None:
        owner = col(Request.patron_id) == patron_id
    elif partner_id is not None:
        owner = col(Request.partner_id) == partner_id
    else:
        return []
    scope = [owner, col(Request.is_open).is_(True)]
    if exclude_id is not None:
        scope.append(col(Request.id) != exclude_id)

    found: dict[int, Duplicate] = {}
    for request, kind in _identifier_matches(session, scope, citation):
        if request.id is not None and request.id not in found:
            other = citation_of(request)
            if _same_item_by_identifier(citation, other, kind):
                value = getattr(request, kind)
                found[request.id] = _duplicate(
                    request, f"same {_LABELS[kind]} {value}", by_identifier=True, score=100.0
                )
    if citation.title or citation.article_title:
        recent = session.exec(
            select(Request).where(*scope).order_by(col(Request.id).desc()).limit(FUZZY_LIMIT)
        )
        for request in recent:
            if request.id is None or request.id in found:
                continue
            match = title_author_match(citation, citation_of(request))
            if match is not None:
                score, reason = match
                found[request.id] = _duplicate(request, reason, by_identifier=False, score=score)
    return sorted(found.values(), key=lambda d: (not d.by_identifier, -d.score, d.request_id))


def _identifier_matches(
    session: Session, scope: list[sa.ColumnElement[bool]], citation: Citation
) -> list[tuple[Request, str]]:
    """Open requests in ``scope`` sharing one of the citation's identifiers, with which one."""
    wanted: dict[str, str] = {}
    for kind, normalise in (
        ("isbn", identifiers.normalise_isbn),
        ("issn", identifiers.normalise_issn),
        ("oclc_number", identifiers.normalise_oclc),
        ("lccn", identifiers.normalise_lccn),
        ("doi", identifiers.normalise_doi),
        ("pmid", identifiers.normalise_pmid),
    ):
        raw = getattr(citation, kind)
        if raw:
            try:
                wanted[kind] = normalise(raw)
            except identifiers.InvalidIdentifier:
                continue  # a wrong identifier matches nothing; the title may still
    if not wanted:
        return []
    clauses: list[sa.ColumnElement[bool]] = []
    for kind, value in wanted.items():
        column = getattr(Request, kind)
        if kind == "doi":
            clauses.append(sa.func.upper(column) == identifiers.doi_key(value))
        else:
            clauses.append(column == value)
    rows = session.exec(select(Request).where(*scope, sa.or_(*clauses)).order_by(col(Request.id)))
    matches: list[tuple[Request, str]] = []
    for request in rows:
        for kind, value in wanted.items():
            stored = getattr(request, kind) or ""
            same = (
                identifiers.doi_key(stored) == identifiers.doi_key(value)
                if kind == "doi"
                else stored == value
            )
            if same:
                matches.append((request, kind))
    # the strongest kind first (a DOI or PMID names the part itself)
    order = {kind: i for i, kind in enumerate(_PART_IDS + _CONTAINER_IDS)}
    matches.sort(key=lambda m: order[m[1]])
    return matches


def _same_item_by_identifier(new: Citation, old: Citation, kind: str) -> bool:
    """Whether a shared identifier of ``kind`` means the same item (see the module docstring)."""
    if (new.service_type == COPY) != (old.service_type == COPY):
        return False
    if kind in _PART_IDS:
        return True
    if new.service_type == COPY:
        return _same_part(new, old)
    if kind == "issn":  # a loan of a journal is of one volume and issue
        return _fold(new.volume) == _fold(old.volume) and _fold(new.issue) == _fold(old.issue)
    return True


def _same_part(new: Citation, old: Citation) -> bool:
    """Two copies from the same book or journal: the same article or chapter?"""
    if (
        new.article_title
        and old.article_title
        and title_similarity(new.article_title, old.article_title) >= TITLE_THRESHOLD
    ):
        return True
    place = (_fold(new.volume), _fold(new.issue), _fold(new.pages))
    return all(place) and place == (_fold(old.volume), _fold(old.issue), _fold(old.pages))


def _duplicate(request: Request, reason: str, *, by_identifier: bool, score: float) -> Duplicate:
    assert request.id is not None
    return Duplicate(
        request_id=request.id,
        title=request.display_title,
        status=request.status,
        created_at=request.created_at,
        reason=reason,
        by_identifier=by_identifier,
        score=score,
    )


# -- title and author similarity ------------------------------------------------------------------


def fold(text: str) -> str:
    """Text as compared: lower case, no diacritics or punctuation, no leading article."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("ß", "ss").replace("æ", "ae").replace("ø", "o").replace("&", " and ")
    words = re.sub(r"[^\w]+", " ", plain).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def _fold(text: str) -> str:
    return fold(text) if text else ""


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def title_similarity(a: str, b: str) -> float:
    """Percent similarity of two titles (0 when they carry different numbers, e.g. volumes).

    The main titles (before ``:``) are compared too, so a dropped subtitle still matches.
    """
    fa, fb = fold(a), fold(b)
    if not fa or not fb:
        return 0.0
    if _numbers(fa) != _numbers(fb):
        return 0.0
    score = _aligned_ratio(fa, fb)
    main_a, main_b = fold(a.split(":", 1)[0]), fold(b.split(":", 1)[0])
    if ":" in a + b and main_a and main_b and len(min(main_a, main_b, key=len)) >= 8:
        # a little less than a full match: the subtitle was not compared
        score = max(score, _aligned_ratio(main_a, main_b) - 2.0)
    return score


def _aligned_ratio(fa: str, fb: str) -> float:
    """``fuzz.ratio`` of folded titles, capped below the threshold when a word has no
    near-identical counterpart on the other side.

    A typo changes a word a little ("Tmie" and "Time" are 75 % alike); a different word
    ("Tea", or "A" and "B" in "Journal of Physics A/B") names a different work even when the
    titles as a whole are 93-95 % alike.
    """
    score = float(fuzz.ratio(fa, fb))
    words_a, words_b = fa.split(), fb.split()
    for these, those in ((words_a, words_b), (words_b, words_a)):
        for word in these:
            best = max(fuzz.ratio(word, other) for other in those)
            if best < WORD_THRESHOLD:
                return min(score, TITLE_THRESHOLD - 1.0)
    return score


def _surname(name: str) -> str:
    first = re.split(r"[;]", name, maxsplit=1)[0]
    if "," in first:
        return fold(first.split(",", 1)[0])
    words = fold(first).split()
    return words[-1] if words else ""


def author_similarity(a: str, b: str) -> float:
    """Percent similarity of two author lines; 100 when the (first) surnames are equal."""
    fa, fb = fold(a), fold(b)
    if not fa or not fb:
        return 0.0
    surname_a = _surname(a)
    if surname_a and surname_a == _surname(b):
        return 100.0
    return float(fuzz.token_sort_ratio(fa, fb))


def title_author_match(new: Citation, old: Citation) -> tuple[float, str] | None:
    """``(score, reason)`` when ``new`` and ``old`` are near-identical by title and author."""
    if (new.service_type == COPY) != (old.service_type == COPY):
        return None
    if new.service_type == COPY:
        title_new, title_old = new.article_title, old.article_title
        author_new, author_old = new.article_author, old.article_author
    else:
        title_new, title_old = new.title, old.title
        author_new, author_old = new.author, old.author
    if new.volume and old.volume and _fold(new.volume) != _fold(old.volume):
        return None
    title = title_similarity(title_new, title_old)
    if title < TITLE_THRESHOLD:
        return None
    if author_new.strip() and author_old.strip():
        author = author_similarity(author_new, author_old)
        if author < AUTHOR_THRESHOLD:
            return None
        return title, f"title {title:.0f} % and author {author:.0f} % alike"
    if title < TITLE_ONLY_THRESHOLD:
        return None
    return title, f"title {title:.0f} % alike (no author to compare)"
