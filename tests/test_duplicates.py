"""Duplicate requests: same patron, same identifier or near-identical title and author.

The first tests justify the thresholds: real kinds of damage to one title (typos, case,
diacritics, a dropped leading article or subtitle) all score at or above ``TITLE_THRESHOLD``,
and different works with similar titles all score below it. The rest run against a real
database (SQLite and PostgreSQL), including a check that the lookups use the patron index.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ill_tui.citation import COPY, Citation
from ill_tui.db import session_scope
from ill_tui.models import Partner, Patron, Request
from ill_tui.services.duplicates import (
    AUTHOR_THRESHOLD,
    TITLE_THRESHOLD,
    author_similarity,
    find_duplicates,
    title_similarity,
)
from ill_tui.services.requests import RequestForm, change_status, create_request

# (citation as typed first, the same title as typed again)
SAME_TITLE = [
    ("Being and Time", "being and time"),
    ("Being and Time", "Being and Tmie"),  # transposed letters
    ("Algebraic Topology", "Algebraic Topolgy"),  # dropped letter
    ("Introduction to Algorithms", "Introduction to Algorithm"),
    ("The Structure of Scientific Revolutions", "Structure of Scientific Revolutions"),
    ("Der Zauberberg", "Zauberberg"),
    ("Les Misérables", "Les Miserables"),  # diacritics stripped
    ("Gödel, Escher, Bach: an Eternal Golden Braid", "GODEL ESCHER BACH: AN ETERNAL GOLDEN BRAID"),
    ("Gödel, Escher, Bach: an Eternal Golden Braid", "Gödel, Escher, Bach"),  # no subtitle
    ("Cybernetics: or Control and Communication in the Animal and the Machine", "Cybernetics"),
    ("Pride & Prejudice", "Pride and Prejudice"),
]
# (one work, another work with a similar title)
DIFFERENT_TITLE = [
    ("Harry Potter and the Chamber of Secrets", "Harry Potter and the Prisoner of Azkaban"),
    ("Introduction to Algorithms", "Introduction to Automata Theory"),
    ("Handbook of Physics, Volume 1", "Handbook of Physics, Volume 2"),
    ("Journal of Physics A", "Journal of Physics B"),
    ("A Brief History of Time", "A Brief History of Tea"),
    ("History", "History of Rome"),
    ("Principles of Economics", "Principles of Ecology"),
    ("Mathematical Methods of Classical Mechanics", "Mathematical Methods of Quantum Mechanics"),
    ("Modern Physics", "Modern Optics"),
    ("The Republic", "The Prince"),
    ("Linear Algebra", "Abstract Algebra"),
]
SAME_AUTHOR = [
    ("Heidegger, Martin", "Martin Heidegger"),
    ("Heidegger, Martin", "Heidegger, M."),
    ("Wiener, Norbert", "Weiner, Norbert"),
    ("Müller, Jörg", "Mueller, Joerg"),
    ("Kuhn, Thomas S.", "Thomas Kuhn"),
]
DIFFERENT_AUTHOR = [
    ("Pirsig, Robert", "Pérez, Roberto"),
    ("Hatcher, Allen", "Hawking, Stephen"),
    ("Wiener, Norbert", "Weber, Max"),
]


def test_title_threshold_separates_damage_from_different_works(
    capsys: pytest.CaptureFixture[str],
) -> None:
    same = [title_similarity(a, b) for a, b in SAME_TITLE]
    different = [title_similarity(a, b) for a, b in DIFFERENT_TITLE]
    with capsys.disabled():
        print(
            f"\ntitle similarity: damaged copies {min(same):.1f}..{max(same):.1f}, "
            f"different works {min(different):.1f}..{max(different):.1f}, "
            f"threshold {TITLE_THRESHOLD}"
        )
    assert min(same) >= TITLE_THRESHOLD, list(zip(SAME_TITLE, same, strict=True))
    assert max(different) < TITLE_THRESHOLD, list(zip(DIFFERENT_TITLE, different, strict=True))
    # symmetric
    for a, b in SAME_TITLE + DIFFERENT_TITLE:
        assert title_similarity(a, b) == pytest.approx(title_similarity(b, a))


def test_author_threshold() -> None:
    for a, b in SAME_AUTHOR:
        assert author_similarity(a, b) >= AUTHOR_THRESHOLD, (a, b)
    for a, b in DIFFERENT_AUTHOR:
        assert author_similarity(a, b) < AUTHOR_THRESHOLD, (a, b)


# ------------------------------------------------------------------------------ with a database


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        ada = Patron(barcode="P001", name="Ada Lovelace")
        grace = Patron(barcode="P002", name="Grace Hopper")
        zeta = Partner(
            agency_id_type="ISIL", agency_id_value="DK-1", name="Zeta", country="DK", currency="DKK"
        )
        session.add_all([ada, grace, zeta])
        session.flush()
        assert ada.id is not None
        assert grace.id is not None
        assert zeta.id is not None
        return {"ada": ada.id, "grace": grace.id, "zeta": zeta.id}


def add(session: Session, clock: Any, **values: str) -> Request:
    values.setdefault("patron", "P001")
    return create_request(session, form=RequestForm(**values), actor="t", clock=clock)


def ids(found: list[Any]) -> list[int]:
    return [d.request_id for d in found]


def test_identifier_matches(engine: Engine, people: dict[str, int], clock: Any) -> None:
    with session_scope(engine) as session:
        book = add(session, clock, title="Being and Time", isbn="0-06-063850-8")
        oclc = add(session, clock, title="Cybernetics", oclc_number="ocm00000123")
        doi = add(
            session, clock, service_type="Copy", title="Nature", article_title="DNA",
            doi="10.1038/171737A0", issn="0028-0836",
        )  # fmt: skip
        pmid = add(session, clock, service_type="Copy", title="Lancet", article_title="Trial")
        pmid.pmid = "12345"
        session.add(pmid)
        add(session, clock, title="Being and Time", isbn="0-06-063850-8", patron="P002")
        session.flush()
        ada = people["ada"]

        def find(**c: str) -> list[Any]:
            return find_duplicates(session, patron_id=ada, citation=Citation(**c))

        by_isbn = find(title="Sein und Zeit", isbn="9780060638504")  # ISBN-13 of the ISBN-10
        assert ids(by_isbn) == [book.id]
        assert by_isbn[0].by_identifier
        assert by_isbn[0].reason == "same ISBN 9780060638504"
        assert ids(find(title="x", isbn="ISBN 0060638508")) == [book.id]
        assert ids(find(title="x", oclc_number="(OCoLC)123")) == [oclc.id]
        # a DOI compares case-insensitively; the part itself, so any article title
        assert ids(find(title="x", article_title="y", service_type=COPY,
                        doi="10.1038/171737a0")) == [doi.id]  # fmt: skip
        assert ids(find(title="x", article_title="y", service_type=COPY, pmid="PMID 12345")) == [
            pmid.id
        ]
        # another patron's request is not a duplicate; neither is a wrong ISBN
        assert find(title="x", isbn="0-06-063850-9") == []
        assert (
            find_duplicates(session, patron_id=people["grace"], citation=Citation(title="Cyber"))
            == []
        )
        # the request itself is excluded when re-checked
        assert find_duplicates(session, patron_id=ada, citation=book, exclude_id=book.id) == []
        # closed requests are not duplicates
        change_status(session, request_id=book.id, to_status="Cancelled", actor="t",
                      reason="test", clock=clock)  # fmt: skip
        assert find(title="Sein und Zeit", isbn="9780060638504") == []


def test_copies_from_the_same_journal_are_not_duplicates(
    engine: Engine, people: dict[str, int], clock: Any
) -> None:
    with session_scope(engine) as session:
        first = add(
            session, clock, service_type="Copy", title="Nature", issn="0028-0836",
            article_title="Molecular structure of nucleic acids", article_author="Watson, J",
            volume="171", issue="4356", pages="737-738",
        )  # fmt: skip
        ada = people["ada"]

        def find(**c: str) -> list[Any]:
            return find_duplicates(
                session, patron_id=ada, citation=Citation(service_type=COPY, **c)
            )

        other_article = find(
            title="Nature", issn="00280836", article_title="Photo 51", volume="171", pages="740"
        )
        assert other_article == []
        same_by_place = find(
            title="Nature", issn="00280836", article_title="", volume="171", issue="4356",
            pages="737-738",
        )  # fmt: skip
        assert ids(same_by_place) == [first.id]
        same_by_title = find(
            title="Nature", issn="0028-0836", article_title="Molecular structure of nucleic acid"
        )
        assert ids(same_by_title) == [first.id]
        # a loan of a book is never a duplicate of a copy of one of its chapters
        assert (
            find_duplicates(
                session, patron_id=ada, citation=Citation(title="Nature", issn="0028-0836")
            )
            == []
        )


def test_title_and_author_matches(engine: Engine, people: dict[str, int], clock: Any) -> None:
    with session_scope(engine) as session:
        kuhn = add(
            session, clock, title="The Structure of Scientific Revolutions",
            author="Kuhn, Thomas S.",
        )  # fmt: skip
        add(session, clock, title="Handbook of Physics, Volume 1", author="Smith, J")
        ada = people["ada"]

        def find(**c: str) -> list[Any]:
            return find_duplicates(session, patron_id=ada, citation=Citation(**c))

        found = find(title="STRUCTURE OF SCIENTIFIC REVOLUTIONS", author="Thomas Kuhn")
        assert ids(found) == [kuhn.id]
        assert not found[0].by_identifier
        assert found[0].reason == "title 100 % and author 100 % alike"
        assert found[0].describe().startswith(f'request {kuhn.id} (New, "The Structure')
        assert find(title="The Structure of Scientific Revolutions", author="Popper, Karl") == []
        assert find(title="Handbook of Physics, Volume 2", author="Smith, J") == []
        # no author to compare: only a nearly exact title counts
        assert ids(find(title="structure of scientific revolutions")) == [kuhn.id]
        assert ids(find(title="Structure of Scientific Revolution")) == [kuhn.id]  # 98.6 %
        assert find(title="Structre of Scientifc Revolutons") == []  # 3 typos: 95.5 %, < 97
        # ...but with the author to back it up, three typos still match
        assert ids(find(title="Structre of Scientifc Revolutons", author="Kuhn")) == [kuhn.id]


def test_identifier_matches_come_first(engine: Engine, people: dict[str, int], clock: Any) -> None:
    with session_scope(engine) as session:
        by_title = add(session, clock, title="Cybernetics", author="Wiener, Norbert")
        by_isbn = add(session, clock, title="Kybernetik", isbn="026273009X")
        found = find_duplicates(
            session,
            patron_id=people["ada"],
            citation=Citation(title="Cybernetics", author="Norbert Wiener", isbn="9780262730099"),
        )
        assert ids(found) == [by_isbn.id, by_title.id]


def test_lending_requests_compare_by_partner(
    engine: Engine, people: dict[str, int], clock: Any
) -> None:
    with session_scope(engine) as session:
        theirs = add(session, clock, direction="lending", partner="ISIL:DK-1", patron="",
                     title="Moby-Dick", isbn="0-306-40615-2")  # fmt: skip
        found = find_duplicates(
            session,
            patron_id=None,
            partner_id=people["zeta"],
            citation=Citation(title="Moby Dick", isbn="9780306406157"),
        )
        assert ids(found) == [theirs.id]
        assert find_duplicates(session, patron_id=None, citation=Citation(title="Moby")) == []


# ------------------------------------------------------------------------------- index use


@pytest.fixture
def crowded(engine: Engine, people: dict[str, int], clock: Any) -> Engine:
    """5,000 open requests of another patron beside Ada's few, statistics gathered."""
    rows = [
        {"direction": "borrowing", "service_type": "Loan", "status": "New", "is_open": True,
         "title": f"Title {i}", "isbn": f"{9780000000000 + i}", "patron_id": people["grace"],
         "party_name": "Grace Hopper", "rota_position": 0, "created_at": clock(),
         "updated_at": clock(), "version": 1}
        for i in range(5_000)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(Request), rows)
    with session_scope(engine) as session:
        add(session, clock, title="Being and Time", isbn="0-06-063850-8")
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    return engine


def test_lookups_use_the_patron_index(crowded: Engine, people: dict[str, int]) -> None:
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    sa.event.listen(crowded, "before_cursor_execute", record)
    try:
        with session_scope(crowded) as session:
            found = find_duplicates(
                session,
                patron_id=people["ada"],
                citation=Citation(title="Being and Time", isbn="0060638508"),
            )
    finally:
        sa.event.remove(crowded, "before_cursor_execute", record)
    assert len(found) == 1
    assert len(statements) == 2  # identifiers, then titles
    dialect = crowded.dialect.name
    with crowded.connect() as conn:
        for statement, params in statements:
            explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql(explain + statement, params)
            )
            assert "ix_request_patron_id" in plan, plan
            assert "SCAN request " not in plan + " ", plan
            assert "Seq Scan" not in plan, plan


def test_journal_loans_are_duplicates_only_for_the_same_volume_and_issue(
    engine: Engine, people: dict[str, int], clock: Any
) -> None:
    with session_scope(engine) as session:
        vol_12 = add(session, clock, title="Annals of Mathematics", issn="0003-486X",
                     volume="12", issue="1")  # fmt: skip
        ada = people["ada"]

        def find(**c: str) -> list[Any]:
            return find_duplicates(session, patron_id=ada, citation=Citation(**c))

        assert ids(find(title="Annals", issn="0003486x", volume="12", issue="1")) == [vol_12.id]
        assert find(title="Annals", issn="0003-486X", volume="13", issue="1") == []
