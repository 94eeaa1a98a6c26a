"""Scoring catalog records against a citation: how likely is this record the item asked for?

Pure functions, no I/O. ``summarise`` reads the fields that matter from a MARC record (245
title, 1XX/7XX names, 008 or 260/264 year, publisher, 250 edition, 020/022/035/010
identifiers). ``score_candidate`` compares a citation with one record and says why: every
score carries its reasons ("ISBN 9780306406157 matches 020 $a", "title 92 %", "year off by
one"). ``classify`` turns the scores of all candidates into a verdict: matched (one record,
confidently), ambiguous (staff must choose) or not found.

Text is compared after folding case, diacritics, punctuation and a leading article, and the
main title (before the subtitle) is compared as well, so a dropped subtitle costs little. An
identifier that matches dominates the score, but never alone: a record whose ISBN matches while
its title is something else entirely is left to staff (the citation's ISBN may be a typo that
happens to be another book's). The thresholds are chosen so that no record is taken
automatically unless title and author agree; ``benchmarks/verify.py`` measures them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from rapidfuzz import fuzz

from ill_tui import identifiers
from ill_tui.catalog import AnyField, MarcLike

# Verdicts, as stored in Request.verification (``unreachable`` is the service's: no target
# answered, so nothing could be scored).
MATCHED: Final = "matched"
AMBIGUOUS: Final = "ambiguous"
NOT_FOUND: Final = "not_found"
UNREACHABLE: Final = "unreachable"

# Weights of the parts of a citation in the text score; parts the citation lacks are left out
# and the rest re-weighted, so a bare title is judged on the title alone.
WEIGHTS: Final = {"title": 0.6, "author": 0.25, "year": 0.1, "publisher": 0.03, "edition": 0.02}

# A record is taken automatically only when all of these hold for the best candidate:
MATCH_SCORE: Final = 85.0  # its overall score
MATCH_TITLE: Final = 88.0  # its title similarity
MATCH_AUTHOR: Final = 75.0  # its author similarity, when both sides name an author
MATCH_TITLE_ALONE: Final = 99.0  # the title, when the citation names no author
MATCH_MARGIN: Final = 6.0  # how far it leads the next candidate (a different record)
# With a matching identifier, the title must still be recognisably the same.
IDENTIFIER_TITLE: Final = 60.0
# Below this the best candidate is not even worth showing as "ambiguous".
AMBIGUOUS_SCORE: Final = 55.0
# Lost when the citation's valid ISBN/ISSN differs from every one the record carries.
IDENTIFIER_CONFLICT: Final = 8.0

# Leading articles dropped before comparing titles (the languages ILL titles come in most).
LEADING_ARTICLES: Final = frozenset(
    {"the", "a", "an", "der", "die", "das", "ein", "eine", "le", "la", "les", "l", "un", "une",
     "el", "los", "las", "il", "lo", "gli", "i", "de", "het", "een"}
)  # fmt: skip
_SPECIAL = str.maketrans(
    {"ı": "i", "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th"}
)


class CitationFields(Protocol):
    """What scoring reads of a citation (a ``Request`` or a ``Citation`` both fit)."""

    @property
    def title(self) -> str | None: ...
    @property
    def author(self) -> str | None: ...
    @property
    def year(self) -> str | None: ...
    @property
    def publisher(self) -> str | None: ...
    @property
    def edition(self) -> str | None: ...
    @property
    def isbn(self) -> str | None: ...
    @property
    def issn(self) -> str | None: ...
    @property
    def oclc_number(self) -> str | None: ...
    @property
    def lccn(self) -> str | None: ...


def fold(text: str | None) -> str:
    """Text as compared: lower case, no diacritics or punctuation, single spaces.

    >>> fold("  Éléments d'Économie: POLITIQUE! ")
    'elements d economie politique'
    """
    if not text:
        return ""
    return _fold(text)


_NON_WORD = re.compile(r"[\W_]+")
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


class _WithoutCombining(dict[int, int | None]):
    """A ``str.translate`` table that drops combining marks and keeps every other character.

    Filled as characters are met (``unicodedata.combining`` once per code point), so a title
    is stripped of its accents in C instead of a Python loop over its characters.
    """

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_WITHOUT_COMBINING = _WithoutCombining()


@functools.lru_cache(maxsize=8192)
def _fold(text: str) -> str:
    # Cached: a citation's fields are folded once per candidate, and a batch sees the same
    # catalog records again and again.
    plain = text
    if not text.isascii():
        # Twice: case folding can expose letters that decompose further, and the other way
        # round (mathematical letters, ligatures), and fold must be stable when applied again.
        for _ in range(2):
            decomposed = unicodedata.normalize("NFKD", plain.casefold().translate(_SPECIAL))
            plain = decomposed.translate(_WITHOUT_COMBINING)
            if plain.isascii():
                # what the second round would do to plain ASCII (NFKD may give capitals)
                plain = plain.lower()
                break
    else:
        plain = plain.lower()
    plain = plain.replace("&", " and ")
    if plain.isascii():
        # the same as the pattern below for ASCII (letters and digits kept), in C
        return " ".join(plain.translate(_ASCII_NON_WORD).split())
    return " ".join(_NON_WORD.sub(" ", plain).split())


def clear_caches() -> None:
    """Forget the folded texts and checked identifiers kept between calls (benchmarks time
    cold runs with it)."""
    _fold.cache_clear()
    _normalised.cache_clear()
    check_identifier.cache_clear()


def fold_title(text: str | None) -> str:
    """``fold`` and drop a leading article ("The Loom of Destiny" -> "loom of destiny")."""
    words = fold(text).split()
    if len(words) > 1 and words[0] in LEADING_ARTICLES:
        words = words[1:]
    return " ".join(words)


# Patterns compiled once: scoring runs for every record of every search.
_SUBTITLE = re.compile(r"\s*[:;=/]\s*|\s+-\s+|\.\s")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NAME_DATES = re.compile(r"[\d?-]{4,}.*$")
_NUMBER = re.compile(r"\d+")


def main_title(text: str | None) -> str:
    """The title before its subtitle (``:`` ``;`` `` / `` or `` = ``), folded."""
    head = _SUBTITLE.split(text or "", maxsplit=1)[0]
    return fold_title(head)


def _year(text: str | None) -> int | None:
    match = _YEAR.search(text or "")
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True)
class RecordSummary:
    """The parts of a MARC record a citation is compared with, as clean text.

    ``isbns`` are ISBN-13s (an ISBN-10 in the record is converted), ``issns`` 8 characters,
    ``oclc_numbers`` bare digits, ``lccns`` LC-normalised; values a record carries but that
    fail their check are left out (they cannot match a checked citation value).
    """

    record_id: str
    title: str = ""  # 245 $a $b $n $p, without the ISBD punctuation at the end
    main_title: str = ""  # 245 $a $n $p
    author: str = ""  # 100/110/111 $a (no dates)
    other_authors: tuple[str, ...] = ()  # 700/710/711 $a
    responsibility: str = ""  # 245 $c
    year: str = ""  # 008/07-10, else a four-digit year of 260/264 $c
    publisher: str = ""  # 260/264 $b
    place: str = ""  # 260/264 $a
    edition: str = ""  # 250 $a
    isbns: tuple[str, ...] = ()
    issns: tuple[str, ...] = ()
    oclc_numbers: tuple[str, ...] = ()
    lccns: tuple[str, ...] = ()

    def citation_values(self) -> dict[str, str]:
        """The record as citation fields (``Request`` attribute names), filled ones only.

        This is what "take the record's fields into the citation" writes.
        """
        values = {
            "title": self.title,
            "author": self.author,
            "edition": self.edition,
            "publisher": self.publisher,
            "place_of_publication": self.place,
            "year": self.year,
            "isbn": self.isbns[0] if self.isbns else "",
            "issn": self.issns[0] if self.issns else "",
            "oclc_number": self.oclc_numbers[0] if self.oclc_numbers else "",
            "lccn": self.lccns[0] if self.lccns else "",
        }
        return {name: value for name, value in values.items() if value}


# A final period that ends an abbreviation or an initial stays ("2nd ed.", "Enos T.").
_ABBREVIATION = re.compile(r"(?:\b\w{1,3}|ausg|aufl|uitg|izd|corp|bros|pbk)\.$", re.IGNORECASE)


_TRAILING_ISBD = re.compile(r"[\s/:;,=]+$")


def _clean(text: str) -> str:
    """Drop ISBD punctuation at the end of a subfield ("Chicago," -> "Chicago")."""
    text = " ".join(text.split()).strip("[] ")
    if text.endswith(("/", ":", ";", ",", "=")):  # it cannot end in a blank here
        text = _TRAILING_ISBD.sub("", text)
    if text.endswith(".") and not _ABBREVIATION.search(text):
        text = text.rstrip(". ")
    return text.strip("[] ")


def _subfields(f: AnyField, codes: str) -> list[str]:
    """The cleaned, non-empty values of subfields ``codes``: all of the first code, then
    all of the next (not record order)."""
    found: list[str] = []
    for code in codes:
        for value in f.get_subfields(code):
            if value:
                cleaned = _clean(value)
                if cleaned:
                    found.append(cleaned)
    return found


_NORMALISERS = {
    "isbn": identifiers.normalise_isbn,
    "issn": identifiers.normalise_issn,
    "lccn": identifiers.normalise_lccn,
    "oclc": identifiers.normalise_oclc,
}


@functools.lru_cache(maxsize=16384)
def _normalised(kind: str, value: str) -> str | None:
    """An identifier's compact form, or None when it fails its check (cached: python-stdnum
    is the slowest part of reading a record, and a citation's ISBN is compared with every
    candidate)."""
    try:
        return _NORMALISERS[kind](value)
    except identifiers.InvalidIdentifier:
        return None


def _name(f: AnyField) -> str:
    parts = _subfields(f, "a")
    if f.tag.endswith(("10", "11")):
        parts += _subfields(f, "b")
    return " ".join(parts)


def _identifiers(record: MarcLike, tag: str, code: str, kind: str) -> tuple[str, ...]:
    found: list[str] = []
    for f in record.get_fields(tag):
        for value in f.get_subfields(code):
            if kind == "oclc":
                if "ocolc" not in value.lower():
                    continue
                value = value.split(")", 1)[-1]
            norm = _normalised(kind, value)
            if norm is not None and norm not in found:
                found.append(norm)
    return tuple(found)


#: The fields ``summarise`` reads: a record view with these (``catalog.MarcFields``) gives
#: the same summary as the whole record.
SUMMARY_TAGS: Final = frozenset(
    {"001", "008", "010", "020", "022", "035", "100", "110", "111", "245", "250", "260", "264",
     "700", "710", "711"}
)  # fmt: skip


def summarise(record: MarcLike) -> RecordSummary:
    """Read what scoring and the citation need from a MARC 21 bibliographic record.

    Args:
        record: the whole pymarc record, or a view holding at least its ``SUMMARY_TAGS``
            fields (what a search reads without building pymarc records).
    """
    control = record.get("001")
    record_id = (control.data or "").strip() if control is not None else ""
    title = main = responsibility = ""
    f245 = record.get("245")
    if f245 is not None:
        main = " ".join(_subfields(f245, "anp"))
        title = " ".join(_subfields(f245, "a"))
        sub = " ".join(_subfields(f245, "b"))
        if sub:
            title = f"{title} : {sub}"
        numbering = " ".join(_subfields(f245, "np"))
        if numbering:
            title = f"{title}. {numbering}"
        responsibility = " ".join(_subfields(f245, "c"))
    author = ""
    for tag in ("100", "110", "111"):
        f = record.get(tag)
        if f is not None:
            author = _name(f)
            break
    others = tuple(
        name for f in record.get_fields("700", "710", "711") if (name := _name(f)) and name
    )
    year = ""
    f008 = record.get("008")
    if f008 is not None and f008.data and len(f008.data) >= 11 and f008.data[7:11].isdigit():
        year = f008.data[7:11]
    publisher = place = ""
    for f in record.get_fields("260", "264"):
        if f.tag == "264" and f.indicator2 not in ("1", " "):
            continue  # 264 _0/_2/_3/_4: production, distribution, manufacture, copyright
        publisher = publisher or " ".join(_subfields(f, "b"))
        place = place or " ".join(_subfields(f, "a"))
        if not year:
            found = _year(" ".join(f.get_subfields("c")))
            year = str(found) if found else ""
    edition = ""
    f250 = record.get("250")
    if f250 is not None:
        edition = " ".join(_subfields(f250, "a"))
    return RecordSummary(
        record_id=record_id,
        title=title,
        main_title=main,
        author=author,
        other_authors=others,
        responsibility=responsibility,
        year=year,
        publisher=publisher,
        place=place,
        edition=edition,
        isbns=_identifiers(record, "020", "a", "isbn"),
        issns=_identifiers(record, "022", "a", "issn"),
        oclc_numbers=_identifiers(record, "035", "a", "oclc"),
        lccns=_identifiers(record, "010", "a", "lccn"),
    )


# ---------------------------------------------------------------------------- similarity
def title_similarity(cited: str | None, title: str, main: str = "") -> float:
    """Percent similarity of a cited title and a record's title (0-100).

    The whole titles are compared, and the main titles too, so a citation that drops or adds
    the subtitle still scores high; a subtitle left out costs a little (2 points), since
    the record says more than the citation.
    """
    cited_full = fold_title(cited)
    if not cited_full:
        return 0.0
    record_full = fold_title(title)
    best = float(fuzz.ratio(cited_full, record_full)) if record_full else 0.0
    cited_main = main_title(cited)
    record_main = fold_title(main) if main else main_title(title)
    if record_main and len(min(cited_main, record_main, key=len)) >= 4:
        best = max(best, float(fuzz.ratio(cited_main, record_main)) - 2.0)
        best = max(best, float(fuzz.ratio(cited_full, record_main)) - 2.0)
    return best


def _name_forms(name: str) -> tuple[str, str]:
    """(folded name, surname): "Arguedas, José María, 1911-1969" -> ("arguedas jose maria",
    "arguedas"); "José María Arguedas" -> (..., "arguedas")."""
    without_dates = _NAME_DATES.sub("", name)
    folded = fold(without_dates)
    words = folded.split()
    if not words:
        return "", ""
    surname = fold(without_dates.split(",", 1)[0]) if "," in without_dates else words[-1]
    return folded, surname


def author_similarity(cited: str | None, summary: RecordSummary) -> float:
    """Percent similarity of a cited author and the record's names (0-100).

    "Last, First" and "First Last" are alike; the best of the main entry, the added entries
    and the statement of responsibility counts (the citation may name a second author).
    """
    cited_folded, cited_surname = _name_forms(cited or "")
    if not cited_folded:
        return 0.0
    best = 0.0
    for name in (summary.author, *summary.other_authors):
        folded, surname = _name_forms(name)
        if not folded:
            continue
        score = float(fuzz.token_sort_ratio(cited_folded, folded))
        if surname and cited_surname:
            surname_score = float(fuzz.ratio(cited_surname, surname))
            # Same surname, and the given names agree as far as the shorter one goes
            # ("S. H. Aurand" vs "Aurand, Samuel Herbert"): as good as the same name.
            if surname_score >= 90:
                score = max(score, 85.0 + surname_score / 10 - (0 if _initials_agree(
                    cited_folded, folded, cited_surname, surname) else 15.0))  # fmt: skip
        best = max(best, min(score, 100.0))
    if best < 85.0 and summary.responsibility:
        statement = fold(summary.responsibility)
        if cited_surname and cited_surname in statement.split():
            best = max(best, 85.0)
    return best


def _initials_agree(a: str, b: str, surname_a: str, surname_b: str) -> bool:
    given_a = [w for w in a.split() if w != surname_a]
    given_b = [w for w in b.split() if w != surname_b]
    if not given_a or not given_b:
        return True
    return all(x[0] == y[0] for x, y in zip(given_a, given_b, strict=False))


def _text_similarity(cited: str | None, value: str) -> float | None:
    a, b = fold(cited), fold(value)
    if not a or not b:
        return None
    return float(fuzz.token_set_ratio(a, b))


def _edition_similarity(cited: str | None, value: str) -> float | None:
    a, b = fold(cited), fold(value)
    if not a:
        return None
    numbers_a, numbers_b = _NUMBER.findall(a), _NUMBER.findall(b)
    if numbers_a and numbers_b:
        return 100.0 if numbers_a[0] == numbers_b[0] else 0.0
    if not b:
        # "1st ed." cited, no 250 in the record: first editions usually carry none
        return 100.0 if numbers_a[:1] == ["1"] or "first" in a else 50.0
    return float(fuzz.token_set_ratio(a, b))


# ---------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Score:
    """How well one record fits a citation, and why.

    Attributes:
        value: 0-100, higher is better.
        identifier: the identifier that matched ("ISBN 9780306406157"), if one did.
        title: title similarity (0-100), or ``None`` when the citation has no title.
        author: author similarity, or ``None`` when either side names no author.
        year_gap: years between the cited year and the record's, or ``None``.
        reasons: the sentences staff read.
    """

    value: float
    identifier: str | None = None
    title: float | None = None
    author: float | None = None
    year_gap: int | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """The reasons as one line ("ISBN ... matches 020 $a; title 92 %; year off by one")."""
        return "; ".join(self.reasons)


@functools.lru_cache(maxsize=4096)
def check_identifier(kind: str, value: str) -> tuple[str | None, str, str]:
    """A cited identifier checked once per citation, not once per candidate and search.

    Args:
        kind: ``isbn``, ``issn``, ``lccn`` or ``oclc``.
        value: the identifier as cited.

    Returns:
        (compact form, "", "") when valid; else (None, what is wrong with it in a few words,
        the ``InvalidIdentifier`` sentence staff read).
    """
    try:
        return _NORMALISERS[kind](value), "", ""
    except identifiers.WrongCheckDigit as exc:
        return None, "has a wrong check digit", str(exc)
    except identifiers.InvalidIdentifier as exc:
        return None, "is not valid", str(exc)


def _checked(kind: str, value: str) -> tuple[str | None, str]:
    """(compact form, "") of a cited identifier, or (None, what is wrong with it)."""
    cited, problem, _ = check_identifier(kind, value)
    return cited, problem


def _identifier_match(
    citation: CitationFields, summary: RecordSummary, reasons: list[str]
) -> tuple[str | None, bool]:
    """(the identifier that matched, whether a valid cited identifier conflicts)."""
    conflict = False
    checks = (
        ("isbn", "ISBN", "isbn", summary.isbns, "020 $a"),
        ("issn", "ISSN", "issn", summary.issns, "022 $a"),
        ("oclc_number", "OCLC number", "oclc", summary.oclc_numbers, "035 $a"),
        ("lccn", "LCCN", "lccn", summary.lccns, "010 $a"),
    )
    for attr, label, kind, values, where in checks:
        raw = getattr(citation, attr) or ""
        if not raw.strip():
            continue
        cited, problem = _checked(kind, raw)
        if cited is None:
            reasons.append(f"cited {label} {raw.strip()} {problem} (not compared)")
            continue
        if cited in values:
            reasons.insert(0, f"{label} {cited} matches {where}")
            return f"{label} {cited}", False
        if values and attr in ("isbn", "issn"):
            reasons.append(f"{label} {cited} differs from the record's ({values[0]})")
            conflict = True
    return None, conflict


def score_candidate(citation: CitationFields, summary: RecordSummary) -> Score:
    """Score one record against a citation, with the reasons.

    An identifier match gives 70 points plus 30 % of the text score, so it dominates any
    text-only candidate but still ranks two records sharing an ISBN by their text.
    """
    reasons: list[str] = []
    matched_id, conflict = _identifier_match(citation, summary, reasons)

    parts: dict[str, float] = {}
    title = None
    if fold(citation.title):
        title = title_similarity(citation.title, summary.title, summary.main_title)
        parts["title"] = title
        reasons.append(f"title {title:.0f} %")
    author = None
    if fold(citation.author):
        if summary.author or summary.other_authors or summary.responsibility:
            author = author_similarity(citation.author, summary)
            parts["author"] = author
            reasons.append(f"author {author:.0f} %")
        else:
            reasons.append("the record names no author")
    year_gap = None
    cited_year, record_year = _year(citation.year), _year(summary.year)
    if cited_year is not None:
        if record_year is None:
            reasons.append("the record has no year")
        else:
            year_gap = abs(cited_year - record_year)
            parts["year"] = {0: 100.0, 1: 70.0, 2: 40.0}.get(year_gap, 0.0)
            reasons.append(
                "year matches"
                if year_gap == 0
                else "year off by one"
                if year_gap == 1
                else f"year {cited_year} vs {record_year}"
            )
    publisher = _text_similarity(citation.publisher, summary.publisher)
    if publisher is not None:
        parts["publisher"] = publisher
        reasons.append(f"publisher {publisher:.0f} %")
    edition = _edition_similarity(citation.edition, summary.edition)
    if edition is not None:
        parts["edition"] = edition
        if edition < 100:
            reasons.append(f"edition {edition:.0f} %")

    weight = sum(WEIGHTS[name] for name in parts)
    text = sum(WEIGHTS[name] * value for name, value in parts.items()) / weight if weight else 0.0
    if matched_id:
        value = 70.0 + 0.3 * text if parts else 100.0
    else:
        value = text - (IDENTIFIER_CONFLICT if conflict else 0.0)
    return Score(
        value=round(max(value, 0.0), 1),
        identifier=matched_id,
        title=title,
        author=author,
        year_gap=year_gap,
        reasons=tuple(reasons),
    )


# ---------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class Verdict:
    """What the candidates add up to.

    Attributes:
        status: ``MATCHED``, ``AMBIGUOUS`` or ``NOT_FOUND``.
        best: index of the best candidate in the list given to ``classify`` (``None`` when
            there are none).
        reason: why, in one sentence.
    """

    status: str
    best: int | None
    reason: str


def _confident(citation: CitationFields, score: Score) -> tuple[bool, str]:
    """Whether one candidate on its own is good enough to take without asking staff."""
    if score.identifier:
        if score.title is not None and score.title < IDENTIFIER_TITLE:
            return False, f"{score.identifier} matches but the title is only {score.title:.0f} %"
        if score.author is not None and score.author < 50.0:
            return False, f"{score.identifier} matches but the author is only {score.author:.0f} %"
        return True, f"{score.identifier} matches"
    if score.author is not None and score.author < MATCH_AUTHOR:
        return False, f"the author is only {score.author:.0f} % alike"
    if score.title is None or score.title < MATCH_TITLE:
        return False, f"the title is only {score.title or 0:.0f} % alike"
    if score.value < MATCH_SCORE:
        return False, f"best score {score.value:.0f} without an identifier"
    if score.author is None:
        if fold(citation.author):
            return False, "the record names no author to compare with"
        if score.title < MATCH_TITLE_ALONE or (score.year_gap or 0) > 1:
            return False, "title only (no author cited), not close enough to be sure"
    return True, f"title {score.title:.0f} % and author" + (
        f" {score.author:.0f} %" if score.author is not None else " not cited"
    )


def classify(
    citation: CitationFields,
    scores: Sequence[Score],
    keys: Sequence[str] | None = None,
) -> Verdict:
    """Decide from the scored candidates whether the citation is matched, ambiguous or
    not found.

    Args:
        citation: what was cited.
        scores: one score per candidate.
        keys: one key per candidate saying which are the same record (e.g. found at two
            targets); candidates with equal keys never make each other ambiguous.

    A candidate is matched only when it is good enough on its own (see ``_confident``) and
    leads every *other* record by ``MATCH_MARGIN`` (two records sharing the cited ISBN, or
    two editions alike in title, author and year, are for staff to tell apart).
    """
    if not scores:
        return Verdict(NOT_FOUND, None, "no catalog has a record like it")
    keys = list(keys) if keys is not None else [str(i) for i in range(len(scores))]
    order = sorted(range(len(scores)), key=lambda i: -scores[i].value)
    best = order[0]
    top = scores[best]
    if top.value < AMBIGUOUS_SCORE:
        return Verdict(NOT_FOUND, best, f"best candidate scores only {top.value:.0f}")
    confident, why = _confident(citation, top)
    if not confident:
        return Verdict(AMBIGUOUS, best, why)
    for other in order[1:]:
        if keys[other] == keys[best]:
            continue
        rival = scores[other]
        if rival.identifier and not top.identifier:
            return Verdict(
                AMBIGUOUS, best, f"the cited {rival.identifier} belongs to another record"
            )
        if rival.value > top.value - MATCH_MARGIN:
            return Verdict(
                AMBIGUOUS,
                best,
                f"two records fit almost equally ({top.value:.0f} and {rival.value:.0f})",
            )
    return Verdict(MATCHED, best, why)
