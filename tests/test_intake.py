"""Batch intake (CSV), one request at a time through ``intake_request``, and the command.

Runs on SQLite and on a real PostgreSQL (``engine`` fixture); every test checks what is in the
database afterwards, not only what the report says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import select

from ill_tui.cli import cli
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import Event, Note, Partner, Patron, Request
from ill_tui.services.intake import (
    BATCH_COLUMNS,
    IntakeFileError,
    IntakeMode,
    import_requests,
    intake_request,
)
from ill_tui.services.requests import RequestForm, ValidationFailed

HEADER = "title,author,isbn,pmid,service_type,article_title,patron,direction,partner,needed_by\n"
GOOD_1 = 'Being and Time,"Heidegger, Martin",0-06-063850-8,,,,P001,,,\n'
GOOD_2 = "Nature,,,13054692,Copy,Molecular structure of nucleic acids,P002,,,2026-12-31\n"
GOOD_3 = 'Moby-Dick,"Melville, Herman",,,,,,lending,ISIL:DK-820010,\n'
BAD_ISBN = "Cybernetics,,0-262-73009-1,,,,P001,,,\n"  # line 5 when after the three good rows
BAD_ROW = ",,,pmid-x,Copy,,P404,,,1999-01-01\n"  # line 6: title, pmid, article, patron, date


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        session.add(Patron(barcode="P001", name="Ada Lovelace"))
        session.add(Patron(barcode="P002", name="Grace Hopper"))
        session.add(
            Partner(agency_id_type="ISIL", agency_id_value="DK-820010", name="Royal Danish Library",
                    country="DK", currency="DKK")
        )  # fmt: skip
    return engine


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("request", "event", "note")
        )


def run_import(engine: Engine, text: str, mode: IntakeMode, clock: Any) -> Any:
    with session_scope(engine) as session:
        return import_requests(session, "batch.csv", text=text, mode=mode, actor="t", clock=clock)


def test_good_file_imports_every_row(seeded: Engine, clock: Any) -> None:
    report = run_import(seeded, HEADER + GOOD_1 + GOOD_2 + GOOD_3, IntakeMode.ALL_OR_NONE, clock)
    assert report.ok
    assert report.rows == 3
    assert [row.line for row in report.imported] == [2, 3, 4]
    assert counts(seeded) == (3, 3, 0)
    with session_scope(seeded) as session:
        rows = list(session.exec(select(Request).order_by(Request.id)))  # type: ignore[arg-type]
    assert [(r.title, r.direction, r.service_type, r.party_name) for r in rows] == [
        ("Being and Time", "borrowing", "Loan", "Ada Lovelace"),
        ("Nature", "borrowing", "Copy", "Grace Hopper"),
        ("Moby-Dick", "lending", "Loan", "Royal Danish Library"),
    ]
    assert rows[0].isbn == "9780060638504"
    assert rows[1].pmid == "13054692"
    ids = [r.id for r in rows]
    assert report.lines() == [
        "batch.csv: 3 of 3 rows imported.",
        f"  requests created: {ids[0]}-{ids[2]}",
    ]


def test_all_or_none_imports_nothing_and_reports_every_rejected_row(
    seeded: Engine, clock: Any
) -> None:
    text = HEADER + GOOD_1 + GOOD_2 + GOOD_3 + BAD_ISBN + BAD_ROW
    report = run_import(seeded, text, IntakeMode.ALL_OR_NONE, clock)
    assert not report.ok
    assert report.imported == []
    assert counts(seeded) == (0, 0, 0)
    assert report.rejected_lines == [5, 6]
    by_line = {(e.line, e.field): e.message for e in report.errors}
    assert by_line[(5, "isbn")] == "ISBN 0-262-73009-1 has a wrong check digit."
    assert set(by_line) == {
        (5, "isbn"),
        (6, "title"),
        (6, "article_title"),
        (6, "pmid"),
        (6, "needed_by"),
    }  # the patron is only looked up once the row itself is right
    assert "PMID pmid-x" in by_line[(6, "pmid")]
    lines = report.lines()
    assert lines[0] == "batch.csv: nothing imported; 2 of 5 rows rejected (all or none):"
    assert "  line 5, isbn: ISBN 0-262-73009-1 has a wrong check digit." in lines
    assert "  line 6, needed_by: 1999-01-01 is already past." in lines


def test_accepted_only_imports_the_good_rows(seeded: Engine, clock: Any) -> None:
    text = HEADER + GOOD_1 + BAD_ISBN + GOOD_2 + "Cybernetics,,,,,,P404,,,\n" + GOOD_3
    report = run_import(seeded, text, IntakeMode.ACCEPTED_ONLY, clock)
    assert not report.ok
    assert [row.line for row in report.imported] == [2, 4, 6]
    assert report.rejected_lines == [3, 5]
    assert [str(e) for e in report.errors] == [
        "line 3, isbn: ISBN 0-262-73009-1 has a wrong check digit.",
        "line 5, patron: No patron has the barcode P404.",
    ]
    assert counts(seeded) == (3, 3, 0)
    assert report.lines()[0] == "batch.csv: 3 of 5 rows imported, 2 rejected:"


def test_a_file_that_fails_half_way_writes_nothing(
    seeded: Engine, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction: a database error on the third row rolls back the first two."""
    import ill_tui.services.intake as intake

    real = intake.intake_request
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(intake, "intake_request", failing)
    with pytest.raises(sa.exc.OperationalError):
        run_import(seeded, HEADER + GOOD_1 + GOOD_2 + GOOD_3, IntakeMode.ACCEPTED_ONLY, clock)
    assert counts(seeded) == (0, 0, 0)


def test_duplicates_are_flagged_within_the_file_and_against_the_database(
    seeded: Engine, clock: Any
) -> None:
    run_import(seeded, HEADER + GOOD_1, IntakeMode.ALL_OR_NONE, clock)
    again = "Being and time,Martin Heidegger,,,,,P001,,,\n"  # by title and author
    same_isbn = "Sein und Zeit,,9780060638504,,,,P001,,,\n"  # by ISBN, 13 for 10
    report = run_import(seeded, HEADER + again + same_isbn + GOOD_2, IntakeMode.ALL_OR_NONE, clock)
    assert report.ok
    with session_scope(seeded) as session:
        rows = list(session.exec(select(Request).order_by(Request.id)))  # type: ignore[arg-type]
        notes = list(session.exec(select(Note)))
    first = rows[0].id
    assert [r.duplicate_of_id for r in rows] == [None, first, first, None]
    assert [row.duplicate.request_id if row.duplicate else None for row in report.imported] == [
        first,
        first,
        None,
    ]
    assert len(notes) == 2
    assert all(n.text.startswith(f"Possible duplicate of request {first} (New,") for n in notes)
    assert f"  line 2: request {rows[1].id} may duplicate request {first}" in "\n".join(
        report.lines()
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("title,colour,size\nX,red,2\n", "unknown columns 'colour', 'size'"),
        ("title,isbn,title\nX,1,Y\n", "repeated columns title"),
        ("author,isbn\nX,1\n", "no title column"),
    ],
)
def test_bad_files_are_refused_up_front(seeded: Engine, clock: Any, text: str, words: str) -> None:
    with pytest.raises(IntakeFileError, match=words) as caught:
        run_import(seeded, text, IntakeMode.ACCEPTED_ONLY, clock)
    assert "Nothing was imported" in str(caught.value) or words == "empty"
    assert counts(seeded) == (0, 0, 0)


def test_short_and_long_rows_and_quoted_lines(seeded: Engine, clock: Any) -> None:
    text = (
        "title,patron,note\n"
        '"Being and Time",P001,"a note\nover two lines"\n'  # lines 2-3
        "Cybernetics,P001\n"  # line 4: too few values
        "Nature,P001,x,y\n"  # line 5: too many
        "\n"
        "Algebraic Topology,P002,\n"  # line 7
    )
    report = run_import(seeded, text, IntakeMode.ACCEPTED_ONLY, clock)
    assert [str(e) for e in report.errors] == [
        "line 4: has 2 values but the header has 3 columns.",
        "line 5: has 4 values but the header has 3 columns.",
    ]
    assert [row.line for row in report.imported] == [2, 7]
    with session_scope(seeded) as session:
        note = session.exec(select(Note)).one()
    assert note.text == "a note\nover two lines"


def test_intake_request_reports_pmid_with_the_other_errors(seeded: Engine, clock: Any) -> None:
    with session_scope(seeded) as session, pytest.raises(ValidationFailed) as caught:
        intake_request(
            session, form=RequestForm(title="", patron="P001"), pmid="12a", actor="t", clock=clock
        )
    assert set(caught.value.errors) == {"title", "pmid"}
    with session_scope(seeded) as session, pytest.raises(ValidationFailed) as caught:
        intake_request(
            session, form=RequestForm(title="X", patron="P404"), pmid="12a", actor="t", clock=clock
        )
    assert caught.value.errors == {
        "patron": "No patron has the barcode P404.",
        "pmid": "PMID 12a is not a PubMed id (digits, e.g. 15361993).",
    }
    assert counts(seeded) == (0, 0, 0)


# ------------------------------------------------------------------------- ill-tui import-requests


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ILL_TUI_DATABASE_URL", raising=False)
    path = tmp_path / "ill.db"
    engine = open_database(sqlite_url(path))
    with session_scope(engine) as session:
        session.add(Patron(barcode="P001", name="Ada Lovelace"))
        session.add(Patron(barcode="P002", name="Grace Hopper"))
    engine.dispose()
    return path


def cli_counts(path: Path) -> tuple[int, int, int]:
    engine = sa.create_engine(sqlite_url(path))
    try:
        return counts(engine)
    finally:
        engine.dispose()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="ill-tui", catch_exceptions=False)


def test_cli_all_or_none_then_accepted_only(db_file: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.csv"
    batch.write_text("\ufeff" + HEADER + GOOD_1 + BAD_ISBN + GOOD_2, encoding="utf-8")

    result = invoke("import-requests", str(batch), "--db", str(db_file))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("Mode: all or none.")  # stated before it runs
    assert lines[1] == f"{batch}: nothing imported; 1 of 3 rows rejected (all or none):"
    assert lines[2] == "  line 3, isbn: ISBN 0-262-73009-1 has a wrong check digit."
    assert cli_counts(db_file) == (0, 0, 0)

    result = invoke("import-requests", str(batch), "--accepted-only", "--db", str(db_file))
    assert result.exit_code == 1  # some rows were rejected
    lines = result.output.splitlines()
    assert lines[0].startswith("Mode: accepted rows only.")
    assert lines[1] == f"{batch}: 2 of 3 rows imported, 1 rejected:"
    assert cli_counts(db_file) == (2, 2, 0)

    # the same article (same PMID) for the same patron again: imported, flagged, noted
    batch.write_text(HEADER + GOOD_2.replace("Nature", "Nature (London)"), encoding="utf-8")
    result = invoke("import-requests", str(batch), "--db", str(db_file))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == f"{batch}: 1 of 1 rows imported."
    assert lines[2].startswith("  line 2: request 3 may duplicate request 2 (New, ")
    assert lines[2].endswith(": same PMID 13054692")
    assert cli_counts(db_file) == (3, 3, 1)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        (b"title,patron\n\xff\xfe,P001\n", "is not UTF-8"),
        (b"title,shelf\nX,1\n", "unknown columns 'shelf'"),
    ],
)
def test_cli_file_errors(db_file: Path, tmp_path: Path, content: bytes | None, words: str) -> None:
    batch = tmp_path / "in.csv"
    if content is not None:
        batch.write_bytes(content)
    result = invoke("import-requests", str(batch), "--db", str(db_file))
    assert result.exit_code == 1
    assert words in result.output
    assert "Traceback" not in result.output
    assert cli_counts(db_file) == (0, 0, 0)


def test_columns_documented_in_the_help() -> None:
    result = invoke("import-requests", "--help")
    text = " ".join(result.output.split())
    for column in BATCH_COLUMNS:
        assert column in text, column
    assert "ALL OR NONE" in text
    assert "--accepted-only" in text


def test_events_of_imported_rows(db_file: Path, tmp_path: Path) -> None:
    batch = tmp_path / "b.csv"
    batch.write_text(HEADER + GOOD_1, encoding="utf-8")
    assert invoke("import-requests", str(batch), "--db", str(db_file)).exit_code == 0
    engine = sa.create_engine(sqlite_url(db_file))
    try:
        with session_scope(engine) as session:
            event = session.exec(select(Event)).one()
    finally:
        engine.dispose()
    assert (event.from_status, event.to_status, event.reason) == (None, "New", "Request created")
