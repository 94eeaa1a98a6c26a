"""Citation verification: find the catalog record a request asks for, and what staff do with it.

Searching (network, async, no database) and storing (database, sync, no network) are separate
so a screen can run the first in an async worker and the second in a thread:

- ``Verifier.search`` asks every configured target at once (``search_many``), strongest
  identifiers first (ISBN in both forms, ISSN, OCLC number, LCCN), then title + author,
  narrowed by the year when a catalog finds too much, with looser fallbacks for typos. Every
  record found is scored (``ill_tui.scoring``) and the candidates classified: matched,
  ambiguous, not found, or unreachable when no target answered at all.
- ``record_outcome`` stores the result: ``Request.verification``, the candidates as
  ``MarcRecord`` rows with score and reasons (the matched one ``accepted``), the holdings of the
  matched record (``RequestHolding``; our own catalog's as ``Request.local_holding``, "we own
  this") and a duplicate open request of the same patron (``duplicates.find_duplicates``).
- Staff then accept a candidate (all its fields, or some), mark the citation "not found as
  cited", or cancel a request we own ourselves.

Status: verifying on its own changes no status (a batch over every New request must not move
hundreds of requests). When staff act on the result of a *New* request (take fields from a
record, or mark it not found as cited), the request moves New -> Verifying, and that Event
says what was done; on a request already past New the same words go into a Note.
"""

from __future__ import annotations

import asyncio
import io
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import pymarc
import sqlalchemy as sa
from sqlmodel import Session, col, select

from ill_tui import scoring
from ill_tui.catalog import (
    CatalogError,
    CatalogRecord,
    Clause,
    Holding,
    Target,
    TargetUnreachable,
    extract_holdings,
)
from ill_tui.citation import Citation
from ill_tui.clock import Clock, utcnow
from ill_tui.models import Direction, MarcRecord, Request, RequestHolding, Status
from ill_tui.ports import CatalogSearch
from ill_tui.scoring import AMBIGUOUS, MATCHED, NOT_FOUND, UNREACHABLE, RecordSummary, Score
from ill_tui.services import duplicates, requests
from ill_tui.services.requests import ValidationFailed

#: Records asked for per search and target. Five is plenty to verify against: a search that
#: finds more is narrowed by the cited year, and staff can edit the search; every record
#: asked for is parsed and scored (``python -m benchmarks verify --max-records 10`` compares).
MAX_RECORDS = 5
#: Candidates kept per request (the best ones).
KEEP_CANDIDATES = 10
#: Concurrent verifications in a batch ("verify all New requests").
BATCH_CONCURRENCY = 8

#: Citation fields staff can take from a record, with their labels, in reading order.
TAKEABLE_FIELDS: tuple[tuple[str, str], ...] = (
    ("title", "Title"),
    ("author", "Author"),
    ("edition", "Edition"),
    ("publisher", "Publisher"),
    ("place_of_publication", "Place"),
    ("year", "Year"),
    ("isbn", "ISBN"),
    ("issn", "ISSN"),
    ("oclc_number", "OCLC number"),
    ("lccn", "LCCN"),
)
_LIMITS = {
    "title": 500, "author": 300, "edition": 100, "publisher": 200, "place_of_publication": 200,
    "year": 16, "isbn": 13, "issn": 9, "oclc_number": 20, "lccn": 20,
}  # fmt: skip


class NothingToVerify(ValueError):
    """The citation has nothing to search for (no identifier, no title)."""


class NoTargets(RuntimeError):
    """No catalog targets are configured, so nothing can be verified."""

    def __init__(self) -> None:
        super().__init__(
            "No catalogs are configured to verify against: add targets to the targets file "
            "(see `ill-tui run --targets`)."
        )


# ---------------------------------------------------------------------------- search terms
@dataclass(frozen=True)
class SearchTerms:
    """What is searched for and scored against: the citation, or terms staff edited."""

    title: str = ""
    author: str = ""
    year: str = ""
    publisher: str = ""
    edition: str = ""
    isbn: str = ""
    issn: str = ""
    oclc_number: str = ""
    lccn: str = ""

    @classmethod
    def of(cls, citation: Request | Citation) -> SearchTerms:
        """The search terms of a request's (or an intake) citation."""
        return cls(
            title=citation.title or "",
            author=citation.author or "",
            year=citation.year or "",
            publisher=citation.publisher or "",
            edition=citation.edition or "",
            isbn=citation.isbn or "",
            issn=citation.issn or "",
            oclc_number=citation.oclc_number or "",
            lccn=citation.lccn or "",
        )


def _set_verification(request: Request, status: str, now: datetime) -> None:
    """Record the verification result on ``request`` (a change: its version moves on)."""
    request.verification = status
    request.verified_at = now
    request.updated_at = now
    request.version += 1


def identifier_flags(terms: SearchTerms) -> list[str]:
    """Sentences about identifiers that cannot be searched (wrong check digit, bad form)."""
    flags: list[str] = []
    for attr, kind in _IDENTIFIER_KINDS:
        raw = getattr(terms, attr).strip()
        if raw:
            # checked once (cached): the searches and the scoring of every candidate check
            # the same cited value again
            value, _, sentence = scoring.check_identifier(kind, raw)
            if value is None:
                flags.append(f"{sentence} Searched by the other fields instead.")
    return flags


#: Citation attribute -> identifier kind (``scoring.check_identifier``), strongest first.
_IDENTIFIER_KINDS = (("isbn", "isbn"), ("issn", "issn"), ("oclc_number", "oclc"), ("lccn", "lccn"))


# Compiled once: every verification builds its searches with them.
_AUTHOR_SEPARATOR = re.compile(r";| and | & ")
_BLANKS = re.compile(r"\s+")
_SUBTITLE = re.compile(r"\s*[:;=/]\s*|\s+-\s+")
_APOSTROPHE = re.compile(r"(\w)['’](\w)")


def _surname(author: str) -> str:
    """The word a catalog's author index surely has: the (first) surname."""
    first = _AUTHOR_SEPARATOR.split(unicodedata.normalize("NFC", author), maxsplit=1)[0]
    if "," in first:
        return first.split(",", 1)[0].strip()
    words = [w for w in _BLANKS.split(first.strip()) if w and not w.endswith(".")]
    return words[-1] if words else first.strip()


def _title_words(title: str) -> list[str]:
    """The words of the main title as a catalog's title index holds them.

    Zebra and most catalogs keep "sit-down" and "1936-1937" as one word and "practitioner's"
    as "practitioners", so words are split on blanks and ISBD punctuation only; a leading
    article is dropped (catalogs skip it with the nonfiling indicator).
    """
    # Composed characters: a decomposed "í" (i + combining accent, as MARC-8 records and
    # some pasted text have it) would otherwise split the word in two at the accent.
    main = unicodedata.normalize("NFC", title)
    main = _SUBTITLE.split(main, maxsplit=1)[0]
    main = _APOSTROPHE.sub(r"\1\2", main)
    words: list[str] = []
    for token in main.split():
        if token.isalnum():  # most words: nothing to drop
            words.append(token)
            continue
        # letters, digits, inner hyphens and combining marks left without a composed form
        kept = "".join(
            ch if ch.isalnum() or ch == "-" or unicodedata.category(ch).startswith("M") else " "
            for ch in token
        )
        words.extend(w for w in (part.strip("-") for part in kept.split()) if w)
    if len(words) > 1 and scoring.fold(words[0]) in scoring.LEADING_ARTICLES:
        words = words[1:]
    return words


def _year_clauses(year: str) -> list[Clause]:
    match = re.search(r"\d{4}", year)
    if not match:
        return []
    value = int(match.group())
    return [Clause("date", str(value - 1), ">="), Clause("date", str(value + 1), "<=")]


def identifier_searches(terms: SearchTerms) -> list[list[Clause]]:
    """One search per valid identifier, strongest first (ISBN, ISSN, OCLC number, LCCN)."""
    searches: list[list[Clause]] = []
    for attr, key in _IDENTIFIER_KINDS:
        raw = getattr(terms, attr).strip()
        if not raw:
            continue
        value, _, _ = scoring.check_identifier(key, raw)
        if value is None:
            continue  # flagged by identifier_flags; the other fields are searched
        searches.append([Clause(key, value)])
    return searches


def text_searches(terms: SearchTerms, words: Sequence[str] | None = None) -> list[list[Clause]]:
    """Title + author searches, from the strictest to the loosest, each tried while the ones
    before found nothing: main title and surname; main title alone; surname with any of the
    longest title words (a typo in the title); the title with one word left out at a time;
    the author alone (within a year either side of the cited year, if there is one).

    Args:
        terms: what is searched for.
        words: ``_title_words(terms.title)`` when the caller has them already.
    """
    if words is None:
        words = _title_words(terms.title)
    if not words:
        return []
    title = " ".join(words)
    surname = _surname(terms.author) if terms.author.strip() else ""
    searches: list[list[Clause]] = []
    if surname:
        searches.append([Clause("title", title), Clause("author", surname)])
    searches.append([Clause("title", title)])
    longest = sorted({w for w in words if len(w) >= 4}, key=lambda w: (-len(w), w))[:3]
    if surname and longest:
        searches.append([Clause("title", " ".join(longest), "any"), Clause("author", surname)])
    if len(words) >= 2:
        for left_out in sorted(set(words), key=lambda w: (-len(w), w))[:4]:
            rest = [w for w in words if w != left_out]
            if rest and len("".join(rest)) >= 4:
                searches.append([Clause("title", " ".join(rest))])
    if surname:
        # a one-word title with a typo in it: the author's records, by the year if cited
        searches.append([Clause("author", surname), *_year_clauses(terms.year)])
    return searches


# ---------------------------------------------------------------------------- outcome
@dataclass(frozen=True)
class Candidate:
    """One record a target returned, scored against the search terms.

    ``source`` is the record as the target returned it, whose MARCXML text is made only when
    ``marcxml`` is first read (for storing: most records found are only scored), or that text.
    """

    target: str
    record_id: str
    source: CatalogRecord | str
    summary: RecordSummary
    score: Score
    holdings: tuple[Holding, ...] = ()
    local: bool = False  # found at our own catalog

    @property
    def marcxml(self) -> str:
        """The record as a standalone MARCXML document (what is stored)."""
        source = self.source
        return source if isinstance(source, str) else source.marcxml

    @property
    def key(self) -> str:
        """Which records are the same item (the same record at two targets, or one ISBN)."""
        return record_key(self.summary)


def record_key(summary: RecordSummary) -> str:
    """The identity of the item a record describes, for telling candidates apart."""
    if summary.isbns:
        return "isbn:" + min(summary.isbns)
    if summary.oclc_numbers:
        return "oclc:" + min(summary.oclc_numbers)
    if summary.lccns:
        return "lccn:" + min(summary.lccns)
    return "text:" + "|".join(
        (scoring.fold_title(summary.title), scoring.fold(summary.author), summary.year)
    )


@dataclass(frozen=True)
class Outcome:
    """What a verification found, before it is stored.

    Attributes:
        status: matched / ambiguous / not_found / unreachable.
        reason: why, in one sentence.
        candidates: the records found, best first.
        flags: identifiers that could not be searched (wrong check digit ...).
        errors: target name -> what went wrong there (unreachable, diagnostic).
        queries: the searches that ran, as "target: CQL" lines.
    """

    status: str
    reason: str
    candidates: tuple[Candidate, ...] = ()
    flags: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    queries: tuple[str, ...] = ()

    @property
    def best(self) -> Candidate | None:
        """The matched record (only when the status is matched)."""
        return self.candidates[0] if self.status == MATCHED and self.candidates else None

    @property
    def local_holdings(self) -> tuple[Holding, ...]:
        """Holdings of the matched record at our own catalog ("we own this")."""
        best = self.best
        if best is None:
            return ()
        return tuple(
            h for c in self.candidates if c.local and c.key == best.key for h in c.holdings
        )


class Verifier:
    """Searches the configured targets for a citation and scores what they return.

    Args:
        catalog: the catalog client (``adapters.sru.SruClient``).
        targets: the configured targets; the one(s) with ``local=True`` are our own catalog.
        max_records: records asked for per search and target.
    """

    def __init__(
        self,
        catalog: CatalogSearch,
        targets: Sequence[Target],
        *,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.catalog = catalog
        self.targets = tuple(targets)
        self.max_records = max_records
        self._by_name = {t.name: t for t in self.targets}

    async def search(self, terms: SearchTerms) -> Outcome:
        """Search every target for ``terms`` and classify what comes back.

        Raises:
            NoTargets: no targets are configured.
            NothingToVerify: no identifier and no title to search for.
        """
        if not self.targets:
            raise NoTargets()
        flags = tuple(identifier_flags(terms))
        id_searches = identifier_searches(terms)
        # the title's words: needed here only when there is no identifier to search by
        words = None if id_searches else _title_words(terms.title)
        if not id_searches and not words:
            raise NothingToVerify(
                "The citation has no identifier and no title to search for."
                + (" " + " ".join(flags) if flags else "")
            )
        found: dict[tuple[str, str], Candidate] = {}
        errors: dict[str, str] = {}
        answered: set[str] = set()
        unanswered: list[list[Clause]] = []  # searches some target did not answer
        queries: list[str] = []

        async def run(clauses: list[Clause]) -> int:
            results = await self.catalog.search_many(
                self.targets, clauses, max_records=self.max_records
            )
            hits = 0
            if any(isinstance(r, TargetUnreachable) for r in results.values()):
                unanswered.append(clauses)
            for name, result in results.items():
                if isinstance(result, CatalogError):
                    if isinstance(result, TargetUnreachable):
                        errors[name] = str(result)
                    else:  # a diagnostic (no such index here ...): it answered
                        answered.add(name)
                    continue
                answered.add(name)
                queries.append(f"{name}: {result.query}")
                hits += result.total
                for record in result.records:
                    self._add(found, terms, record)
            return hits

        for clauses in id_searches:
            if await run(clauses):
                break  # the strongest identifier that finds anything is enough to search by
        verdict = self._verdict(terms, found)
        if verdict.status != MATCHED:
            # built only when needed: most citations with an identifier stop above
            for number, clauses in enumerate(text_searches(terms, words)):
                hits = await run(clauses)
                if hits > self.max_records and number <= 1 and terms.year.strip():
                    await run(clauses + _year_clauses(terms.year))
                if hits:
                    break
            verdict = self._verdict(terms, found)
        if not answered or (verdict.status == NOT_FOUND and unanswered):
            # "Not found" is only true of the catalogs that answered: one that did not may
            # hold the item.
            message = "; ".join(errors.values()) or "no catalog answered"
            if answered:
                message += "; the catalogs that answered found nothing like it"
            return Outcome(
                UNREACHABLE, message, flags=flags, errors=dict(errors), queries=tuple(queries)
            )
        ranked = sorted(found.values(), key=lambda c: (-c.score.value, c.target, c.record_id))
        return Outcome(
            verdict.status,
            verdict.reason,
            candidates=tuple(ranked),
            flags=flags,
            errors=dict(errors),
            queries=tuple(queries),
        )

    def _add(
        self, found: dict[tuple[str, str], Candidate], terms: SearchTerms, record: CatalogRecord
    ) -> None:
        summary = scoring.summarise(record.view)  # no pymarc record built for scoring
        key = (record.target, record.record_id or summary.record_id or f"#{len(found) + 1}")
        if key in found:
            return
        target = self._by_name.get(record.target)
        found[key] = Candidate(
            target=record.target,
            record_id=key[1],
            source=record,
            summary=summary,
            score=scoring.score_candidate(terms, summary),
            holdings=record.holdings,
            local=bool(target and target.local),
        )

    @staticmethod
    def _verdict(terms: SearchTerms, found: Mapping[tuple[str, str], Candidate]) -> scoring.Verdict:
        candidates = sorted(found.values(), key=lambda c: (-c.score.value, c.target, c.record_id))
        verdict = scoring.classify(
            terms, [c.score for c in candidates], [c.key for c in candidates]
        )
        if verdict.best is not None and verdict.best != 0:
            # classify picks by score; the sort above already put that one first
            verdict = replace(verdict, best=0)
        return verdict


# ---------------------------------------------------------------------------- storing
def _holding_text(holding: Holding) -> str:
    parts = [
        f"call number {holding.call_number}" if holding.call_number else "",
        holding.location or "",
        holding.availability or "",
    ]
    return ", ".join(p for p in parts if p) or "no shelf details given"


def local_holding_text(holdings: Sequence[Holding]) -> str | None:
    """ "We own this: ..." for our own catalog's holdings (None when there are none)."""
    if not holdings:
        return None
    text = "We own this: " + "; ".join(_holding_text(h) for h in holdings)
    return text if len(text) <= 500 else text[:499] + "…"


def record_outcome(
    session: Session,
    *,
    request_id: int,
    outcome: Outcome,
    clock: Clock = utcnow,
) -> Request:
    """Store a verification: status, candidates, holdings of the matched record, duplicate.

    Candidates of an earlier verification are replaced, except a record staff accepted. An
    unreachable outcome changes nothing of an earlier result (and marks a request never
    verified ``unreachable``).

    Raises:
        RequestNotFound: no such request.
    """
    request = requests.get_request(session, request_id)
    now = clock()
    if outcome.status == UNREACHABLE:
        # Nothing was learnt: an earlier result (its candidates, holdings, local flag) stands;
        # only a request never verified is marked unreachable.
        if request.verification is None:
            _set_verification(request, UNREACHABLE, now)
            session.add(request)
            session.flush()
        return request
    kept = list(
        session.exec(
            select(MarcRecord).where(
                MarcRecord.request_id == request_id, col(MarcRecord.accepted).is_(True)
            )
        )
    )
    session.execute(
        sa.delete(MarcRecord).where(
            col(MarcRecord.request_id) == request_id, col(MarcRecord.accepted).is_(False)
        )
    )
    session.execute(sa.delete(RequestHolding).where(col(RequestHolding.request_id) == request_id))
    accepted_keys = {(m.target, m.record_id) for m in kept}
    best = outcome.best
    for number, candidate in enumerate(outcome.candidates[:KEEP_CANDIDATES]):
        if (candidate.target, candidate.record_id) in accepted_keys:
            continue
        session.add(
            MarcRecord(
                request_id=request_id,
                target=candidate.target[:100],
                record_id=candidate.record_id[:100],
                marcxml=candidate.marcxml,
                score=candidate.score.value,
                reasons=candidate.score.text[:2000],
                # the automatic match is the record of the item unless staff chose another
                accepted=number == 0 and best is not None and not kept,
                created_at=now,
            )
        )
    if best is not None and not kept:
        _store_holdings(session, request_id, outcome.candidates, best.key, now)
        request.local_holding = local_holding_text(outcome.local_holdings)
    elif not kept:
        request.local_holding = None
    _set_verification(request, MATCHED if kept else outcome.status, now)
    found = duplicates.find_duplicates(
        session,
        patron_id=request.patron_id,
        partner_id=request.partner_id if request.direction == Direction.LENDING else None,
        citation=request,
        exclude_id=request_id,
    )
    request.duplicate_of_id = found[0].request_id if found else None
    session.add(request)
    session.flush()
    return request


def _store_holdings(
    session: Session,
    request_id: int,
    candidates: Sequence[Candidate],
    key: str,
    now: object,
) -> None:
    """Keep the holdings of the record ``key`` names; a partner's holding is linked to the
    partner library whose agency id or name the holding gives (a lender candidate)."""
    seen: set[tuple[str, str | None, str | None, str | None]] = set()
    partners: dict[str, int | None] = {}
    for candidate in candidates:
        if candidate.key != key:
            continue
        for h in candidate.holdings:
            mark = (candidate.target, h.agency, h.call_number, h.location)
            if mark in seen:
                continue
            seen.add(mark)
            partner_id = None
            if h.agency and not candidate.local:
                if h.agency not in partners:
                    found = requests.find_partner(session, h.agency)
                    partners[h.agency] = found.id if found is not None else None
                partner_id = partners[h.agency]
            session.add(
                RequestHolding(
                    request_id=request_id,
                    target=candidate.target[:100],
                    local=candidate.local,
                    partner_id=partner_id,
                    agency=(h.agency or "")[:100] or None,
                    call_number=(h.call_number or "")[:200] or None,
                    location=(h.location or "")[:200] or None,
                    availability=(h.availability or "")[:100] or None,
                    created_at=now,  # type: ignore[arg-type]
                )
            )


# ---------------------------------------------------------------------------- reading
def parse_marcxml(marcxml: str) -> pymarc.Record:
    """The pymarc record of a stored MARCXML string.

    Raises:
        ValueError: the text holds no MARC record.
    """
    records = pymarc.parse_xml_to_array(io.BytesIO(marcxml.encode("utf-8")))  # type: ignore[no-untyped-call]
    if not records or not isinstance(records[0], pymarc.Record):
        raise ValueError("the stored MARCXML holds no record")
    record: pymarc.Record = records[0]
    return record


@dataclass(frozen=True)
class FieldDifference:
    """One citation field next to the record's value for it."""

    name: str
    label: str
    cited: str
    record: str

    @property
    def differs(self) -> bool:
        """True when taking the record's value would change the citation."""
        return bool(self.record) and scoring.fold(self.cited) != scoring.fold(self.record)


@dataclass(frozen=True)
class StoredCandidate:
    """A stored candidate, read back for the Verify screen."""

    id: int
    target: str
    record_id: str
    score: float
    reasons: str
    accepted: bool
    marcxml: str
    summary: RecordSummary
    differences: tuple[FieldDifference, ...]


@dataclass(frozen=True)
class VerificationView:
    """Everything the Verify screen shows of one request."""

    request: Request
    candidates: tuple[StoredCandidate, ...]
    holdings: tuple[RequestHolding, ...]
    duplicate_of: Request | None


def differences(request: Request, summary: RecordSummary) -> tuple[FieldDifference, ...]:
    """The takeable citation fields, cited value beside the record's value."""
    values = summary.citation_values()
    return tuple(
        FieldDifference(name, label, str(getattr(request, name) or ""), values.get(name, ""))
        for name, label in TAKEABLE_FIELDS
    )


def _stored(request: Request, row: MarcRecord) -> StoredCandidate:
    assert row.id is not None
    summary = scoring.summarise(parse_marcxml(row.marcxml))
    return StoredCandidate(
        id=row.id,
        target=row.target,
        record_id=row.record_id,
        score=row.score,
        reasons=row.reasons,
        accepted=row.accepted,
        marcxml=row.marcxml,
        summary=summary,
        differences=differences(request, summary),
    )


def verification_view(session: Session, request_id: int) -> VerificationView:
    """A request with its stored candidates (accepted first, then by score) and holdings.

    Raises:
        RequestNotFound: no such request.
    """
    request = requests.get_request(session, request_id)
    rows = session.exec(
        select(MarcRecord)
        .where(MarcRecord.request_id == request_id)
        .order_by(col(MarcRecord.accepted).desc(), col(MarcRecord.score).desc(), col(MarcRecord.id))
    )
    holdings = session.exec(
        select(RequestHolding)
        .where(RequestHolding.request_id == request_id)
        .order_by(col(RequestHolding.local).desc(), col(RequestHolding.id))
    )
    duplicate = session.get(Request, request.duplicate_of_id) if request.duplicate_of_id else None
    return VerificationView(
        request=request,
        candidates=tuple(_stored(request, row) for row in rows),
        holdings=tuple(holdings),
        duplicate_of=duplicate,
    )


# ---------------------------------------------------------------------------- staff actions
def _record_action(
    session: Session, request: Request, text: str, *, actor: str, clock: Clock
) -> None:
    """New -> Verifying with ``text`` as the Event's reason; past New, ``text`` as a Note."""
    assert request.id is not None
    if request.direction == Direction.BORROWING and request.status == Status.NEW:
        requests.change_status(
            session,
            request_id=request.id,
            to_status=Status.VERIFYING,
            actor=actor,
            reason=text,
            clock=clock,
        )
    else:
        requests.add_note(session, request_id=request.id, author=actor, text=text, clock=clock)


def accept_candidate(
    session: Session,
    *,
    request_id: int,
    candidate_id: int,
    fields: Sequence[str] | None = None,
    actor: str,
    clock: Clock = utcnow,
    targets: Sequence[Target] = (),
) -> Request:
    """Take a candidate record as the request's item, and (some of) its fields into the
    citation.

    Args:
        session: the unit of work.
        request_id: the request.
        candidate_id: the ``MarcRecord`` row staff chose.
        fields: the citation fields to take (``TAKEABLE_FIELDS`` names); ``None`` = every field
            where the record differs; ``()`` = only accept the record, change no field.
        actor: who did it (the Event or Note).
        clock: now.
        targets: the configured targets, to read our own catalog's holdings of the record.

    Raises:
        RequestNotFound: no such request.
        ValidationFailed: no such candidate for this request, an unknown field, or a record
            value too long for the citation field.
    """
    request = requests.get_request(session, request_id)
    row = session.get(MarcRecord, candidate_id)
    if row is None or row.request_id != request_id:
        raise ValidationFailed(
            {"candidate": f"Request {request_id} has no candidate {candidate_id}."}
        )
    summary = scoring.summarise(parse_marcxml(row.marcxml))
    diffs = {d.name: d for d in differences(request, summary)}
    if fields is None:
        chosen = [name for name, d in diffs.items() if d.differs]
    else:
        unknown = [name for name in fields if name not in diffs]
        if unknown:
            raise ValidationFailed({"fields": f"Cannot take {', '.join(unknown)} from a record."})
        chosen = [name for name in fields if diffs[name].record]
    errors = {
        name: f"The record's {diffs[name].label.lower()} is longer than {_LIMITS[name]} characters."
        for name in chosen
        if len(diffs[name].record) > _LIMITS[name]
    }
    if errors:
        raise ValidationFailed(errors)
    now = clock()
    changed = [name for name in chosen if diffs[name].differs]
    for name in chosen:
        setattr(request, name, diffs[name].record)
    session.execute(
        sa.update(MarcRecord)
        .where(col(MarcRecord.request_id) == request_id)
        .values(accepted=col(MarcRecord.id) == candidate_id)
        .execution_options(synchronize_session=False)
    )
    # Holdings of the accepted record: ours ("we own this") and the partners' (lenders).
    session.execute(sa.delete(RequestHolding).where(col(RequestHolding.request_id) == request_id))
    by_name = {t.name: t for t in targets}
    key = record_key(summary)
    local: list[Holding] = []
    others = session.exec(select(MarcRecord).where(MarcRecord.request_id == request_id))
    candidates: list[Candidate] = []
    for other in others:
        target = by_name.get(other.target)
        if target is None or target.holdings is None:
            continue
        other_summary = (
            summary if other.id == candidate_id else scoring.summarise(parse_marcxml(other.marcxml))
        )
        if record_key(other_summary) != key:
            continue
        holdings = extract_holdings(parse_marcxml(other.marcxml), target.name, target.holdings)
        candidates.append(
            Candidate(
                target=target.name,
                record_id=other.record_id,
                source="",
                summary=other_summary,
                score=Score(value=other.score),
                holdings=holdings,
                local=target.local,
            )
        )
        if target.local:
            local.extend(holdings)
    _store_holdings(session, request_id, candidates, key, now)
    request.local_holding = local_holding_text(local)
    _set_verification(request, MATCHED, now)
    session.add(request)
    session.flush()
    labels = ", ".join(diffs[name].label.lower() for name in changed)
    text = f"Citation checked against {row.target} record {row.record_id}" + (
        f": took {labels} from it." if changed else ": the citation agrees with it."
    )
    _record_action(session, request, text, actor=actor, clock=clock)
    session.refresh(request)
    return request


def mark_not_found_as_cited(
    session: Session, *, request_id: int, note: str, actor: str, clock: Clock = utcnow
) -> Request:
    """Staff looked and the item cannot be found as cited: say so, with their note.

    Raises:
        RequestNotFound: no such request.
        ValidationFailed: the note is empty (staff must say what they checked).
    """
    body = note.strip()
    if not body:
        raise ValidationFailed({"note": "Say what was checked (the note is empty)."})
    request = requests.get_request(session, request_id)
    now = clock()
    session.execute(
        sa.update(MarcRecord)
        .where(col(MarcRecord.request_id) == request_id)
        .values(accepted=False)
        .execution_options(synchronize_session=False)
    )
    _set_verification(request, NOT_FOUND, now)
    session.add(request)
    session.flush()
    _record_action(session, request, f"Not found as cited: {body}", actor=actor, clock=clock)
    session.refresh(request)
    return request


def cancel_owned_locally(
    session: Session, *, request_id: int, message: str, actor: str, clock: Clock = utcnow
) -> Request:
    """Cancel a request for an item our own catalog holds, with a message to the patron.

    The Cancelled Event carries where we hold it; the message to the patron is kept as a Note
    (sending it is the mail service's job).

    Raises:
        RequestNotFound: no such request.
        ValidationFailed: we hold no copy on record, or the message is empty.
        workflow.IllegalTransition: the request can no longer be cancelled.
    """
    body = message.strip()
    request = requests.get_request(session, request_id)
    errors: dict[str, str] = {}
    if not request.local_holding:
        errors["local_holding"] = "Our catalog holds no copy of this item on record."
    if not body:
        errors["message"] = "Write the message to the patron."
    if errors:
        raise ValidationFailed(errors)
    requests.change_status(
        session,
        request_id=request_id,
        to_status=Status.CANCELLED,
        actor=actor,
        reason=f"{request.local_holding}. Patron told: {body}",
        clock=clock,
    )
    requests.add_note(
        session, request_id=request_id, author=actor, text=f"Message to the patron: {body}",
        clock=clock,
    )  # fmt: skip
    session.refresh(request)
    return request


def new_request_ids(session: Session, *, limit: int | None = None) -> list[int]:
    """The ids of the borrowing requests in New, oldest first (a batch verification's list)."""
    query = (
        select(Request.id)
        .where(Request.direction == Direction.BORROWING.value, Request.status == Status.NEW.value)
        .order_by(col(Request.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return [i for i in session.exec(query) if i is not None]


@dataclass(frozen=True)
class BatchSummary:
    """What a batch verification did: requests per verification status, and failures."""

    total: int
    done: int
    by_status: Mapping[str, int]
    failed: Mapping[int, str]
    cancelled: bool = False

    def describe(self) -> str:
        """One line for staff: ``Verified 40 of 40: 31 matched, 6 ambiguous, 3 not found.``"""
        names = {MATCHED: "matched", AMBIGUOUS: "ambiguous", NOT_FOUND: "not found",
                 UNREACHABLE: "catalog unreachable"}  # fmt: skip
        parts = [f"{n} {names.get(s, s)}" for s, n in sorted(self.by_status.items()) if n]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        head = f"Verified {self.done} of {self.total}"
        if self.cancelled:
            head += " (stopped)"
        return head + (": " + ", ".join(parts) if parts else "") + "."


#: Told after each request of a batch: (done, total, request id, verification status).
ProgressCallback = Callable[[int, int, int, str], None]


async def verify_batch(
    request_ids: Sequence[int],
    verify_one: Callable[[int], Awaitable[str]],
    *,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    concurrency: int = BATCH_CONCURRENCY,
) -> BatchSummary:
    """Verify many requests, ``concurrency`` at a time, reporting progress after each.

    Args:
        request_ids: the requests, in the order to start them.
        verify_one: verifies one request and returns its verification status.
        progress: told after each request.
        should_stop: polled before each request starts; ``True`` stops starting new ones.
        concurrency: verifications at once.

    A request that fails (its error is not a catalog being down, which is a status) is
    counted in ``failed`` with the error, and the batch goes on.
    """
    limit = asyncio.Semaphore(concurrency)
    by_status: dict[str, int] = {}
    failed: dict[int, str] = {}
    done = 0
    stopped = False

    async def one(request_id: int) -> None:
        nonlocal done, stopped
        async with limit:
            if stopped or (should_stop is not None and should_stop()):
                stopped = True
                return
            try:
                status = await verify_one(request_id)
            except (ValueError, LookupError, CatalogError) as exc:
                failed[request_id] = str(exc)
                status = "failed"
            else:
                by_status[status] = by_status.get(status, 0) + 1
            done += 1
            if progress is not None:
                progress(done, len(request_ids), request_id, status)

    await asyncio.gather(*(one(i) for i in request_ids))
    return BatchSummary(
        total=len(request_ids),
        done=done,
        by_status=by_status,
        failed=failed,
        cancelled=stopped,
    )


# ---------------------------------------------------------------------------- MARC view
@dataclass(frozen=True)
class MarcLine:
    """One field of a MARC record as staff read it: tag, indicators, subfields or data."""

    tag: str
    indicators: str = ""  # two characters, blanks as "_"; "" for the leader and control fields
    subfields: tuple[tuple[str, str], ...] = ()
    data: str = ""  # the leader and control fields (001-009)


def marc_lines(marcxml: str) -> list[MarcLine]:
    """The leader and every field of a stored record, in record order.

    Raises:
        ValueError: the text holds no MARC record.
    """
    record = parse_marcxml(marcxml)
    lines = [MarcLine(tag="LDR", data=str(record.leader))]
    for f in record.get_fields():
        if f.is_control_field():
            lines.append(MarcLine(tag=f.tag, data=f.data or ""))
            continue
        indicators = "".join((i or " ").replace(" ", "_") for i in (f.indicator1, f.indicator2))
        lines.append(
            MarcLine(
                tag=f.tag,
                indicators=indicators,
                subfields=tuple((s.code, s.value) for s in f.subfields),
            )
        )
    return lines
