"""Citation verification against the real Zebra: matched, ambiguous, not found, unreachable,
local holdings, and what staff do with the result (accept, not found as cited, cancel)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from zebra_server import ZebraServer, free_port

from adapters.sru import SruClient
from ill_tui.catalog import DEFAULT_INDEXES, MARC21_852, Target
from ill_tui.db import open_database, session_scope
from ill_tui.models import Event, MarcRecord, Note, Partner, Patron, Request, RequestHolding
from ill_tui.services import verification
from ill_tui.services.desk import Desk
from ill_tui.services.requests import RequestForm, ValidationFailed
from ill_tui.services.verification import SearchTerms, Verifier

ZEBRA_INDEXES = {**DEFAULT_INDEXES, "oclc": "local.oclc"}
LOOM = "00000074"  # The loom of destiny / Arthur Stringer, 1899, ISBN-10 0836932722
EIGHTH_DAY = "007625792"  # British Library: The eighth day / John Case, ISBN 0786251301, 852


def union(zebra: ZebraServer) -> Target:
    """A union catalog: all records; its 852s are partners' holdings (lender candidates)."""
    return Target(
        name="Union catalog",
        base_url=zebra.url("biblio"),
        indexes=ZEBRA_INDEXES,
        holdings=MARC21_852,
    )


def ours(zebra: ZebraServer) -> Target:
    """Our own catalog: the British Library records, whose 852s say "we own this"."""
    return Target(
        name="Our catalog",
        base_url=zebra.url("local"),
        indexes=ZEBRA_INDEXES,
        local=True,
        holdings=MARC21_852,
    )


def nowhere() -> Target:
    """A catalog nobody answers for (a free port on loopback)."""
    return Target(
        name="Partner catalog",
        base_url=f"http://127.0.0.1:{free_port()}/biblio",
        timeout=2.0,
    )


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite, then PostgreSQL) with one patron, P1."""
    engine = open_database(db_url)
    with session_scope(engine) as session:
        session.add(Patron(barcode="P1", name="Ada Reader"))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
async def sru() -> AsyncIterator[SruClient]:
    async with SruClient() as client:
        yield client


def desk_for(db: Engine, sru: SruClient, targets: list[Target], clock: object) -> Desk:
    return Desk(db, actor="tester", clock=clock, verifier=Verifier(sru, targets))  # type: ignore[arg-type]


def new_request(desk: Desk, **citation: str) -> int:
    request = desk.create_request(RequestForm(patron="P1", **citation))
    assert request.id is not None
    return request.id


def stored(db: Engine, request_id: int) -> tuple[Request, list[MarcRecord], list[RequestHolding]]:
    with session_scope(db) as session:
        request = session.get(Request, request_id)
        assert request is not None
        marc = list(session.exec(select(MarcRecord).where(MarcRecord.request_id == request_id)))
        holdings = list(
            session.exec(select(RequestHolding).where(RequestHolding.request_id == request_id))
        )
        return request, marc, holdings


def history(db: Engine, request_id: int) -> tuple[list[Event], list[Note]]:
    with session_scope(db) as session:
        events = list(session.exec(select(Event).where(Event.request_id == request_id)))
        notes = list(session.exec(select(Note).where(Note.request_id == request_id)))
        return events, notes


# ---------------------------------------------------------------------------- outcomes
async def test_matched_by_hyphenated_isbn_10(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra), ours(zebra)], clock)
    rid = new_request(desk, title="Loom of destiny", author="Arthur Stringer", isbn="0-8369-3272-2")
    outcome = await desk.verify_request(rid)
    assert outcome.status == "matched"
    request, marc, holdings = stored(db, rid)
    assert request.verification == "matched"
    assert request.verified_at == clock()  # type: ignore[operator]
    accepted = [m for m in marc if m.accepted]
    assert [(m.target, m.record_id) for m in accepted] == [("Union catalog", LOOM)]
    assert accepted[0].reasons.startswith("ISBN 9780836932720 matches 020 $a")
    assert request.local_holding is None  # the British Library catalog does not hold it
    assert holdings == []
    # verifying changes no status and writes no event beyond the creation
    assert request.status == "New"
    assert len(history(db, rid)[0]) == 1


async def test_local_holdings_say_we_own_it_and_partner_holdings_are_kept(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    with session_scope(db) as session:
        bl = Partner(agency_id_type="ISIL", agency_id_value="GB-UkBL", name="British Library",
                     country="GB", currency="GBP")  # fmt: skip
        session.add(bl)
        session.flush()
        bl_id = bl.id
    desk = desk_for(db, sru, [union(zebra), ours(zebra)], clock)
    rid = new_request(desk, title="The eighth day", author="Case, John", isbn="0786251301")
    outcome = await desk.verify_request(rid)
    assert outcome.status == "matched"
    request, _marc, holdings = stored(db, rid)
    assert request.local_holding == ("We own this: call number LT.2012.x.4103, HMNTS")
    assert sorted((h.target, h.local, h.agency, h.call_number) for h in holdings) == [
        ("Our catalog", True, "British Library", "LT.2012.x.4103"),
        ("Union catalog", False, "British Library", "LT.2012.x.4103"),
    ]
    # the union catalog's holding is a lender candidate, linked to that partner library
    assert {h.target: h.partner_id for h in holdings} == {
        "Our catalog": None,
        "Union catalog": bl_id,
    }
    # staff cancel it with a message to the patron
    with pytest.raises(ValidationFailed, match="message"):
        desk.cancel_owned_locally(rid, "   ")
    cancelled = desk.cancel_owned_locally(rid, "We have it on the shelf at HMNTS.")
    assert cancelled.status == "Cancelled"
    assert cancelled.is_open is False
    events, notes = history(db, rid)
    assert events[-1].to_status == "Cancelled"
    assert events[-1].reason is not None
    assert events[-1].reason.startswith("We own this: call number LT.2012.x.4103")
    assert notes[-1].text == "Message to the patron: We have it on the shelf at HMNTS."


async def test_same_title_other_author_is_ambiguous_never_matched(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    rid = new_request(desk, title="The loom of destiny", author="Henry James", year="1899")
    outcome = await desk.verify_request(rid)
    assert outcome.status == "ambiguous"
    assert outcome.candidates[0].record_id == LOOM
    request, marc, _ = stored(db, rid)
    assert request.verification == "ambiguous"
    assert marc
    assert not any(m.accepted for m in marc)


async def test_nothing_like_it_is_not_found(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    rid = new_request(desk, title="Quantum gravity for house cats", author="Nobody, Anne")
    outcome = await desk.verify_request(rid)
    assert outcome.status == "not_found"
    request, marc, _ = stored(db, rid)
    assert request.verification == "not_found"
    assert marc == []


async def test_wrong_check_digit_is_flagged_and_the_rest_still_searched(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    rid = new_request(desk, title="The loom of destiny", author="Stringer, Arthur")
    terms = SearchTerms(title="The loom of destiny", author="Stringer, Arthur", isbn="0836932723")
    outcome = await desk.verify_request(rid, terms)
    assert outcome.flags == (
        "ISBN 0836932723 has a wrong check digit. Searched by the other fields instead.",
    )
    assert outcome.status == "matched"
    assert outcome.candidates[0].record_id == LOOM
    assert "cited ISBN 0836932723 has a wrong check digit (not compared)" in (
        outcome.candidates[0].score.reasons
    )


async def test_unreachable_target_alone_and_beside_one_that_answers(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    dead = nowhere()
    alone = desk_for(db, sru, [dead], clock)
    rid = new_request(alone, title="The loom of destiny", author="Stringer, Arthur")
    outcome = await alone.verify_request(rid)
    assert outcome.status == "unreachable"
    assert "Partner catalog" in outcome.reason
    assert stored(db, rid)[0].verification == "unreachable"

    both = desk_for(db, sru, [dead, union(zebra)], clock)
    outcome = await both.verify_request(rid)
    assert outcome.status == "matched"
    assert set(outcome.errors) == {"Partner catalog"}
    assert stored(db, rid)[0].verification == "matched"

    # verifying again while the catalog is down leaves the earlier result as it was
    outcome = await alone.verify_request(rid)
    assert outcome.status == "unreachable"
    request, marc, _ = stored(db, rid)
    assert request.verification == "matched"
    assert [m.record_id for m in marc if m.accepted] == [LOOM]

    # nothing found while one catalog did not answer is not "not found": it may be there
    other = new_request(both, title="Quantum gravity for house cats")
    outcome = await both.verify_request(other)
    assert outcome.status == "unreachable"
    assert outcome.reason.startswith("Partner catalog")
    assert outcome.reason.endswith("the catalogs that answered found nothing like it")


async def test_an_open_request_for_the_same_isbn_is_flagged_as_duplicate(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    first = new_request(desk, title="The loom of destiny", isbn="0836932722")
    second = new_request(desk, title="Loom of destiny", author="Stringer", isbn="9780836932720")
    await desk.verify_request(second)
    assert stored(db, second)[0].duplicate_of_id == first
    view = desk.verification_view(second)
    assert view.duplicate_of is not None
    assert view.duplicate_of.id == first


# ---------------------------------------------------------------------------- staff actions
async def test_accept_one_field_then_all(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    rid = new_request(desk, title="The loom of destiny", author="Henry James", year="1898")
    await desk.verify_request(rid)
    view = desk.verification_view(rid)
    top = view.candidates[0]
    assert top.record_id == LOOM
    diffs = {d.name: d for d in top.differences}
    assert (diffs["year"].cited, diffs["year"].record, diffs["year"].differs) == (
        "1898",
        "1899",
        True,
    )
    assert diffs["title"].differs is False

    request = desk.accept_candidate(rid, top.id, ["year"])
    assert (request.year, request.author, request.status) == ("1899", "Henry James", "Verifying")
    assert request.verification == "matched"
    events, _ = history(db, rid)
    assert events[-1].from_status == "New"
    assert events[-1].to_status == "Verifying"
    assert (
        events[-1].reason
        == f"Citation checked against Union catalog record {LOOM}: took year from it."
    )

    request = desk.accept_candidate(rid, top.id)  # all that still differ
    assert request.author == "Stringer, Arthur"
    assert request.isbn == "9780836932720"
    assert request.publisher == "Small, Maynard & Company"
    _, notes = history(db, rid)  # past New: a note, not a second status change
    assert notes[-1].text.startswith(f"Citation checked against Union catalog record {LOOM}: took")
    assert "author" in notes[-1].text
    assert [c.accepted for c in desk.verification_view(rid).candidates][:1] == [True]


async def test_not_found_as_cited_needs_a_note(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra)], clock)
    rid = new_request(desk, title="Quantum gravity for house cats")
    with pytest.raises(ValidationFailed, match="note"):
        desk.mark_not_found_as_cited(rid, "  ")
    request = desk.mark_not_found_as_cited(rid, "Checked LC and WorldCat; asked the patron.")
    assert (request.verification, request.status) == ("not_found", "Verifying")
    events, _ = history(db, rid)
    assert events[-1].reason == "Not found as cited: Checked LC and WorldCat; asked the patron."


async def test_batch_verifies_every_new_request_with_progress(
    zebra: ZebraServer, sru: SruClient, db: Engine, clock: object
) -> None:
    desk = desk_for(db, sru, [union(zebra), ours(zebra)], clock)
    ids = [
        new_request(desk, title="Loom of destiny", author="Arthur Stringer", isbn="0836932722"),
        new_request(desk, title="The eighth day", author="John Case"),
        new_request(desk, title="Quantum gravity for house cats"),
    ]
    desk.change_status(ids[1], "Verifying")  # not New any more: left out
    seen: list[tuple[int, int, int, str]] = []
    summary = await desk.verify_new_requests(progress=lambda *a: seen.append(a))
    assert summary.total == 2
    assert summary.done == 2
    assert dict(summary.by_status) == {"matched": 1, "not_found": 1}
    assert sorted(s[2] for s in seen) == [ids[0], ids[2]]
    assert [s[0] for s in seen] == [1, 2]
    assert summary.describe() == "Verified 2 of 2: 1 matched, 1 not found."
    assert stored(db, ids[1])[0].verification is None


def test_search_plan_strongest_identifiers_first() -> None:
    terms = SearchTerms(
        title="The loom of destiny : a novel",
        author="Arthur Stringer",
        isbn="0-8369-3272-2",
        lccn="00000074",
        issn="0001-5548",  # wrong check digit: flagged, not searched
    )
    plan = verification.identifier_searches(terms)
    assert [[(c.key, c.value) for c in s] for s in plan] == [
        [("isbn", "9780836932720")],
        [("lccn", "00000074")],
    ]
    text = verification.text_searches(terms)
    assert [(c.key, c.value, c.relation) for c in text[0]] == [
        ("title", "loom of destiny", "all"),
        ("author", "Stringer", "all"),
    ]
    # catalog-style words: hyphens and decomposed accents stay inside the word
    decomposed = SearchTerms(title="THE FLINT SIT-DOWN STRIKE OF 1936-1937 : economi\u0301a")
    assert [(c.key, c.value) for c in verification.text_searches(decomposed)[0]] == [
        ("title", "FLINT SIT-DOWN STRIKE OF 1936-1937")
    ]
    assert verification.text_searches(SearchTerms(title="La econom\u0131\u0301a"))[0][0].value == (
        "economı\u0301a"
    )
    assert verification.identifier_flags(terms) == [
        "ISSN 0001-5548 has a wrong check digit. Searched by the other fields instead."
    ]


def test_cli_names_a_bad_targets_file_and_opens_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ill_tui.cli import cli

    bad = tmp_path / "targets.toml"
    bad.write_text('[[target]]\nname = "LC"\nbase_url = "ftp://lccn.loc.gov/"\n', encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(cli, ["--db", db, "--targets", str(bad)])
    assert result.exit_code != 0
    assert "must be an http:// or https:// URL" in result.output
    missing = CliRunner().invoke(cli, ["--db", db, "--targets", str(tmp_path / "none.toml")])
    assert missing.exit_code != 0
    assert "no such target file" in missing.output
