"""Verification benchmark: 1,000 damaged citations verified against a real Zebra.

Builds a Zebra from the test records (``tests/data/sru/records``) less a held-out set, makes
1,000 citations from the records with realistic damage (typos, dropped subtitle or leading
article, author as "First Last", year off by one, hyphenated or ISBN-10-for-13, a wrong check
digit, no identifier, diacritics stripped, all caps) plus citations of the held-out records
(not in the catalog), and verifies them with the real ``Verifier`` and ``SruClient`` at
concurrency 8. Then it replays exactly the SRU requests the verification sent, with bare
httpx at the same concurrency, for the raw throughput. After an untimed warm-up run, both
run five times, interleaved (``ROUNDS``); every timing is printed and the medians compared,
and so are the client's CPU seconds per search, which the load of other work on the machine
does not move.

Prints: citations/s; the fraction matched to the right record (with an identifier, title /
author only, and by kind of damage); the fraction of not-in-catalog citations left unmatched;
false automatic matches; the raw SRU throughput and the ratio. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import gc
import random
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
import pymarc
from stdnum import isbn as stdnum_isbn

from adapters.sru import SruClient, request_params
from ill_tui import scoring
from ill_tui.catalog import DEFAULT_INDEXES, Target
from ill_tui.scoring import MATCHED, RecordSummary, summarise
from ill_tui.services.verification import MAX_RECORDS, SearchTerms, Verifier, record_key

TESTS = Path(__file__).resolve().parent.parent / "tests"
RECORDS = TESTS / "data" / "sru" / "records"
CITATIONS = 1000
HELD_OUT = 100  # records left out of the catalog; their citations must stay unmatched
CONCURRENCY = 8
SEED = 18626
#: Timed runs after the warm-up, interleaved so that a machine getting busier or quieter
#: (2 cores shared with other work) weighs on both alike; the medians are reported.
ROUNDS = ("raw", "verify", "verify", "raw", "raw", "verify", "verify", "raw", "raw", "verify")

TARGET_RAW_RATIO = 0.80
TARGET_WITH_ID = 0.97
TARGET_TEXT_ONLY = 0.90

ID_DAMAGE = ("hyphenated ISBN", "ISBN-10 for 13", "wrong check digit")
TEXT_DAMAGE = (
    "clean",
    "typo",
    "dropped subtitle",
    "dropped leading article",
    "author as First Last",
    "year off by one",
    "no identifier",
    "diacritics stripped",
    "all caps",
)


@dataclass(frozen=True)
class Case:
    """One citation of the benchmark and what the right answer is."""

    terms: SearchTerms
    damage: str
    key: str | None  # the source record's key; None = not in the catalog
    has_identifier: bool  # carries a valid identifier


def load_records() -> list[pymarc.Record]:
    """Every record of the test data (LC sample and the marc2bibframe2 samples)."""
    records: list[pymarc.Record] = []
    with (RECORDS / "lc-booksall-2016-part01-sample.mrc").open("rb") as handle:
        records += [r for r in pymarc.MARCReader(handle, to_unicode=True, force_utf8=True) if r]
    for path in sorted((RECORDS / "marc2bibframe2-dataset").glob("*.xml")):
        records += [r for r in pymarc.parse_xml_to_array(str(path)) if r]
    return records


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def typo(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters, or drop one, in a word of five letters or more."""
    words = text.split()
    long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    word = words[i]
    j = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    else:
        word = word[:j] + word[j + 1 :]
    words[i] = word
    return " ".join(words)


def first_last(author: str) -> str:
    """ "Stringer, Arthur, 1874-1950" -> "Arthur Stringer"."""
    name = re.sub(r",?\s*[\d?-]{4,}.*$", "", author).strip(" ,.")
    if "," not in name:
        return name
    last, first = (part.strip() for part in name.split(",", 1))
    return f"{first} {last}".strip()


def raw_isbn(record: pymarc.Record) -> str:
    """The first 020 $a as printed (without its qualifier)."""
    for f in record.get_fields("020"):
        for value in f.get_subfields("a"):
            return value.split()[0] if value.split() else ""
    return ""


def make_case(record: pymarc.Record, summary: RecordSummary, damage: str, rng: random.Random,
              key: str | None) -> Case:  # fmt: skip
    """A citation of ``record`` with one kind of damage."""
    title, author, year = summary.title, summary.author, summary.year
    isbn = summary.isbns[0] if summary.isbns else ""
    # Text damage: half the citations keep the ISBN, so both paths are measured.
    keep_isbn = damage in ID_DAMAGE or (damage not in ("no identifier",) and rng.random() < 0.5)
    if damage == "typo":
        title = typo(title, rng)
    elif damage == "dropped subtitle":
        title = summary.main_title or title
    elif damage == "dropped leading article":
        title = re.sub(r"^(the|a|an|der|die|das|le|la|les|el|il)\s+", "", title, flags=re.I)
    elif damage == "author as First Last":
        author = first_last(author)
    elif damage == "year off by one" and year.isdigit():
        year = str(int(year) + rng.choice((-1, 1)))
    elif damage == "diacritics stripped":
        title, author = strip_diacritics(title), strip_diacritics(author)
    elif damage == "all caps":
        title, author = title.upper(), author.upper()
    elif damage == "hyphenated ISBN":
        isbn = str(stdnum_isbn.format(isbn))
    elif damage == "ISBN-10 for 13":
        printed = raw_isbn(record)
        # cite the other form than the record prints
        if len(re.sub(r"[^0-9Xx]", "", printed)) == 13 and isbn.startswith("978"):
            isbn = str(stdnum_isbn.to_isbn10(isbn))
        else:
            isbn = summary.isbns[0]
    elif damage == "wrong check digit":
        last = isbn[-1]
        isbn = isbn[:-1] + str((int(last) + 1) % 10 if last.isdigit() else 0)
    terms = SearchTerms(title=title, author=author, year=year, isbn=isbn if keep_isbn else "")
    valid = bool(terms.isbn) and damage != "wrong check digit"
    return Case(terms=terms, damage=damage, key=key, has_identifier=valid)


def make_cases(records: list[pymarc.Record], rng: random.Random) -> tuple[list[Case], set[int]]:
    """The held-out record numbers and 1,000 cases (of which ``HELD_OUT`` not in catalog)."""
    summaries = [summarise(r) for r in records]
    keys = [record_key(s) for s in summaries]
    key_count = Counter(keys)
    usable = [i for i, s in enumerate(summaries) if s.title.strip()]
    # Held out: records whose item appears once, so leaving them out leaves no twin behind.
    unique = [i for i in usable if key_count[keys[i]] == 1]
    held = set(rng.sample(unique, HELD_OUT))
    cases: list[Case] = []
    for i in held:
        damage = rng.choice(TEXT_DAMAGE)
        cases.append(make_case(records[i], summaries[i], damage, rng, None))
    kept = [i for i in usable if i not in held]
    with_isbn = [i for i in kept if summaries[i].isbns]
    while len(cases) < CITATIONS:
        damage = rng.choice(TEXT_DAMAGE + ID_DAMAGE)
        i = rng.choice(with_isbn if damage in ID_DAMAGE else kept)
        cases.append(make_case(records[i], summaries[i], damage, rng, keys[i]))
    rng.shuffle(cases)
    return cases, held


def write_catalog(records: list[pymarc.Record], held: set[int], folder: Path) -> Path:
    path = folder / "catalog.xml"
    writer = pymarc.XMLWriter(path.open("wb"))
    for i, record in enumerate(records):
        if i not in held:
            writer.write(record)
    writer.close()
    return path


async def verify_all(
    target: Target, cases: list[Case], *, keep: bool = True, max_records: int = MAX_RECORDS
) -> tuple[float, list[object], list[str]]:
    """Verify every case at ``CONCURRENCY``; the time, the outcomes (if ``keep``: the app
    keeps none in memory, so timed runs drop them) and the searches sent."""
    outcomes: list[object] = [None] * len(cases)
    queries: list[str] = []
    limit = asyncio.Semaphore(CONCURRENCY)
    async with SruClient() as sru:
        verifier = Verifier(sru, [target], max_records=max_records)
        # one warm-up search so both runs start with an open connection
        await verifier.search(SearchTerms(title="warm up"))

        async def one(n: int) -> None:
            async with limit:
                outcome = await verifier.search(cases[n].terms)
                if keep:
                    outcomes[n] = outcome
                queries.extend(q.split(": ", 1)[1] for q in outcome.queries)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(len(cases))))
        elapsed = time.perf_counter() - t0
    return elapsed, outcomes, queries


async def replay_raw(
    target: Target, queries: list[str], *, max_records: int = MAX_RECORDS
) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
    ) as http:
        await http.get(target.base_url, params=request_params(target, "dc.title=warm", max_records))

        async def one(query: str) -> None:
            async with limit:
                response = await http.get(
                    target.base_url, params=request_params(target, query, max_records), timeout=10
                )
                response.raise_for_status()
                _ = response.content

        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in queries))
        return time.perf_counter() - t0


def _interleave(rounds: tuple[str, ...], raw: list[float], ver: list[float]) -> list[float]:
    raw_left, ver_left = iter(raw), iter(ver)
    return [next(raw_left) if kind == "raw" else next(ver_left) for kind in rounds]


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f} % ({part}/{whole})" if whole else "  n/a"


def run(max_records: int = MAX_RECORDS) -> int:
    """Build Zebra, verify the citations, replay the queries raw, print the figures.

    Args:
        max_records: records asked for per search (the verification service's default).
    """
    sys.path.insert(0, str(TESTS))
    from zebra_server import ZebraUnavailable, start_server  # noqa: PLC0415

    rng = random.Random(SEED)
    records = load_records()
    cases, held = make_cases(records, rng)
    with tempfile.TemporaryDirectory(prefix="ill-tui-bench-verify-") as tmp:
        catalog = write_catalog(records, held, Path(tmp))
        try:
            zebra = start_server({"biblio": (str(catalog),)})
        except ZebraUnavailable as exc:
            print(f"Zebra is not installed: {exc}")
            return 2
        try:
            print(
                f"Zebra: {zebra.databases['biblio']} records in the catalog "
                f"({len(held)} held out), started in {zebra.started_in:.1f} s; "
                f"{max_records} records asked for per search"
            )
            target = Target(
                name="Union catalog",
                base_url=zebra.url("biblio"),
                indexes={**DEFAULT_INDEXES, "oclc": "local.oclc"},
                timeout=10.0,
                max_concurrency=CONCURRENCY,
            )
            # A first, untimed verification finds the searches to replay and warms Zebra
            # up (its first pass over the register is several times slower). Then A-B-B-A:
            # raw, verification, verification, raw, so that a machine getting busier or
            # quieter during the run (2 shared cores) weighs on both alike.
            _, outcomes, queries = asyncio.run(verify_all(target, cases, max_records=max_records))
            # The app freezes what lives as long as it does (gc.freeze in IllApp.on_mount);
            # here the kept outcomes would otherwise be rescanned by every full collection.
            gc.collect()
            gc.freeze()
            raw_times: list[float] = []
            verify_times: list[float] = []
            # CPU seconds of this process: what the client side costs, whatever else the two
            # shared cores are doing (wall times swing with the load of other work).
            cpu: dict[str, list[float]] = {"raw": [], "verify": []}
            for kind in ROUNDS:
                cpu_before = time.process_time()
                if kind == "raw":
                    raw_times.append(
                        asyncio.run(replay_raw(target, queries, max_records=max_records))
                    )
                    cpu["raw"].append(time.process_time() - cpu_before)
                    continue
                scoring.clear_caches()  # no help from the warm-up run's folded texts
                seconds, _, again = asyncio.run(
                    verify_all(target, cases, keep=False, max_records=max_records)
                )
                cpu["verify"].append(time.process_time() - cpu_before)
                verify_times.append(seconds)
                if sorted(again) != sorted(queries):
                    print("warning: a timed verification run sent other searches")
            print("timings (s): " + ", ".join(
                f"{kind} {t:.2f}" for kind, t in zip(
                    ROUNDS, _interleave(ROUNDS, raw_times, verify_times), strict=True)
            ))  # fmt: skip
            elapsed = statistics.median(verify_times)
            raw = statistics.median(raw_times)
            raw_cpu, verify_cpu = (1000 * statistics.median(cpu[k]) / len(queries)
                                   for k in ("raw", "verify"))  # fmt: skip
            print(f"client CPU per search (median): raw httpx {raw_cpu:.2f} ms, verification "
                  f"{verify_cpu:.2f} ms (parse MARCXML, score, store nothing): "
                  f"raw/verification = {100 * raw_cpu / verify_cpu:.1f} %")  # fmt: skip
        finally:
            zebra.stop()
    report(cases, outcomes, queries, elapsed, raw)
    return 0


def describe(case: Case, outcome: object, what: str) -> str:
    """A false match, for the report: the citation and the record taken."""
    best = outcome.best  # type: ignore[attr-defined]
    return (
        f"  {what}: {case.damage}: {case.terms.title[:60]!r} / {case.terms.author[:30]!r} "
        f"{case.terms.year} -> {best.summary.title[:60]!r} / {best.summary.author[:30]!r} "
        f"{best.summary.year} ({best.score.text})"
    )


def report(
    cases: list[Case], outcomes: list[object], queries: list[str], elapsed: float, raw: float
) -> None:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    false_matches: list[str] = []
    missed_examples: list[str] = []
    for case, outcome in zip(cases, outcomes, strict=True):
        status = outcome.status  # type: ignore[attr-defined]
        best = outcome.best  # type: ignore[attr-defined]
        if case.key is None:
            total["not in catalog"] += 1
            if status != MATCHED:
                right["not in catalog"] += 1
            else:
                false_matches.append(describe(case, outcome, "not in the catalog"))
            continue
        statuses[case.damage][status] += 1
        group = "with identifier" if case.has_identifier else "title/author only"
        total[group] += 1
        total[case.damage] += 1
        if status == MATCHED and best is not None:
            if best.key == case.key:
                right[group] += 1
                right[case.damage] += 1
            else:
                false_matches.append(describe(case, outcome, "another record"))
        elif len(missed_examples) < 8:
            errors = "; ".join(outcome.errors.values())  # type: ignore[attr-defined]
            missed_examples.append(
                f"  {case.damage}: {case.terms.title[:50]!r} / {case.terms.author[:25]!r} "
                f"-> {status} ({outcome.reason})" + (f" [errors: {errors}]" if errors else "")  # type: ignore[attr-defined]
            )
    n = len(cases)
    failed = sum(1 for o in outcomes if o.errors)  # type: ignore[attr-defined]
    if failed:
        print(f"{failed} citations met a catalog error (timeout, refused) in some search")
    print(f"\n{n} citations verified at concurrency {CONCURRENCY} in {elapsed:.2f} s: "
          f"{n / elapsed:.1f} citations/s, {len(queries)} SRU searches "
          f"({len(queries) / n:.2f} per citation)")  # fmt: skip
    raw_rate, our_rate = len(queries) / raw, len(queries) / elapsed
    ratio = our_rate / raw_rate
    print(f"raw SRU, the same {len(queries)} searches with bare httpx: {raw:.2f} s, "
          f"{raw_rate:.1f} searches/s; verification ran {our_rate:.1f} searches/s = "
          f"{100 * ratio:.1f} % of raw (target >= {100 * TARGET_RAW_RATIO:.0f} %)")  # fmt: skip
    print("\nmatched to the right record:")
    for group, target in (("with identifier", TARGET_WITH_ID),
                          ("title/author only", TARGET_TEXT_ONLY)):  # fmt: skip
        print(f"  {group:<26} {pct(right[group], total[group])}  (target >= {100 * target:.0f} %)")
    print("by damage:")
    for damage in TEXT_DAMAGE + ID_DAMAGE:
        counts = ", ".join(f"{s} {c}" for s, c in sorted(statuses[damage].items()))
        print(f"  {damage:<26} {pct(right[damage], total[damage])}   [{counts}]")
    unmatched = pct(right["not in catalog"], total["not in catalog"])
    print(f"\nnot in the catalog, left unmatched: {unmatched}")
    print(f"false automatic matches: {len(false_matches)} (target 0)")
    for line in false_matches:
        print(line)
    if missed_examples:
        print("\nsome citations not matched automatically (staff choose among the candidates):")
        print("\n".join(missed_examples))


if __name__ == "__main__":
    sys.exit(run())
