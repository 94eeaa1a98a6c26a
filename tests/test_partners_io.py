"""Partner directory import/export: CSV and TOML round trips, all-or-nothing imports."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ill_tui import demo
from ill_tui.config import sqlite_url
from ill_tui.db import open_database, session_scope
from ill_tui.models import Partner
from ill_tui.partners_io import (
    PARTNER_FIELDS,
    PartnerFileError,
    export_partners,
    import_partners,
    partner_record,
    to_toml,
)

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

TRICKY = [
    Partner(
        agency_id_type="ISIL", agency_id_value="DK-820010", name="Det Kgl. Bibliotek",
        country="DK", currency="DKK", endpoint_url="https://ill.kb.dk/iso18626",
        email="ill@kb.dk", account_id="kb", security_code='s3"cr\\et',
        loan_charge=Decimal("75.00"), copy_charge=Decimal("0"), loan_period_days=30,
        policies='Line one, with "quotes"\nline two\ttabbed; \\backslash\\ ünïcødé',
        consortia="DANBIB,NORDIC", active=True,
    ),
    Partner(
        agency_id_type="OCLC", agency_id_value="EYM", name="University of Michigan, Ann Arbor",
        country="US", currency="USD", loan_charge=Decimal("12.5"), copy_charge=Decimal("7.25"),
        loan_period_days=42, active=False,
    ),
    Partner(
        agency_id_type="ISIL", agency_id_value="JP-1000001", name="国立国会図書館",
        country="JP", currency="JPY", loan_charge=Decimal("2500"), copy_charge=Decimal("1200"),
    ),
]  # fmt: skip


def _engine(path: Path) -> Engine:
    return open_database(sqlite_url(path))


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Engine]:
    engine = _engine(tmp_path / "source.db")
    with session_scope(engine) as s:
        for p in TRICKY:
            s.add(Partner(**p.model_dump(exclude={"id"})))
    yield engine
    engine.dispose()


def _directory(engine: Engine) -> list[dict[str, Any]]:
    """The directory as comparable values (charges as Decimal, ordered by agency id)."""
    with Session(engine) as s:
        partners = s.exec(select(Partner)).all()
        records = []
        for p in partners:
            if p.agency_id_type == demo.DEMO_MARKER_TYPE:
                continue
            record = partner_record(p)
            record["loan_charge"] = Decimal(record["loan_charge"])
            record["copy_charge"] = Decimal(record["copy_charge"])
            records.append(record)
    return sorted(records, key=lambda r: (r["agency_id_type"], r["agency_id_value"]))


def _import(engine: Engine, path: Path):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return import_partners(s, path, clock=lambda: NOW)


@pytest.mark.parametrize("suffix", [".csv", ".toml"])
def test_round_trip_gives_the_same_directory(source: Engine, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"partners{suffix}"
    with session_scope(source) as s:
        assert export_partners(s, path) == 3
    target = _engine(tmp_path / "target.db")
    report = _import(target, path)
    assert report.ok
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    assert _directory(target) == _directory(source)
    assert _directory(target)[0]["policies"] == TRICKY[0].policies
    # the same file again changes nothing
    again = _import(target, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    # and a second export is byte for byte the first
    second = tmp_path / f"second{suffix}"
    with session_scope(target) as s:
        export_partners(s, second)
    assert second.read_bytes() == path.read_bytes()
    target.dispose()


def test_import_updates_by_agency_id(source: Engine, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    with session_scope(source) as s:
        export_partners(s, path)
    text = path.read_text(encoding="utf-8").replace("2500,1200", "3000,1200")
    text += "ISIL,SE-Uu,Uppsala universitetsbibliotek,se,sek,,,,,150,100,30,,,yes\n"
    path.write_text(text, encoding="utf-8")
    report = _import(source, path)
    assert report.ok, report.lines()
    assert (report.created, report.updated, report.unchanged) == (1, 1, 2)
    with Session(source) as s:
        ndl = s.exec(select(Partner).where(Partner.agency_id_value == "JP-1000001")).one()
        assert ndl.loan_charge == Decimal("3000")
        assert ndl.version == 2
        uppsala = s.exec(select(Partner).where(Partner.agency_id_value == "SE-Uu")).one()
        assert (uppsala.country, uppsala.currency, uppsala.active) == ("SE", "SEK", True)
        assert uppsala.endpoint_url is None
        assert len(s.exec(select(Partner)).all()) == 4


def test_demo_directory_round_trips_without_its_marker(tmp_path: Path) -> None:
    sandbox = _engine(tmp_path / "demo.db")
    demo.build_demo(sandbox, requests=0, now=NOW)
    path = tmp_path / "demo.toml"
    with session_scope(sandbox) as s:
        count = export_partners(s, path)
    assert count >= 25
    assert demo.DEMO_MARKER_VALUE not in path.read_text(encoding="utf-8")
    live = _engine(tmp_path / "live.db")
    assert _import(live, path).created == count
    assert _directory(live) == _directory(sandbox)
    assert not demo.is_demo_database(live)
    sandbox.dispose()
    live.dispose()


CSV_HEADER = ",".join(PARTNER_FIELDS) + "\n"


def test_one_bad_csv_row_imports_nothing_and_names_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        CSV_HEADER
        + 'ISIL,DK-1,"Good, with a\nline break",DK,DKK,,,,,1.00,2.00,30,,,true\n'  # lines 2-3
        + "ISIL,DK-2,Bad currency,DK,DKX,,,,,1,2,30,,,true\n"  # line 4
        + "ISIL,DK-3,Bad everything,Denmark,DKK,ftp://x,nope,,,-1,abc,0,,,maybe\n"  # line 5
        + "ISIL,DK-1,Twice,DK,DKK,,,,,,,,,,\n"  # line 6: same agency id as line 2
        + ",,,,,,,,,,,,,,\n"  # blank rows are skipped
        + "ISIL,,No value,DK,DKK,,,,,,,,,,\n",  # line 8
        encoding="utf-8",
    )
    engine = _engine(tmp_path / "db.db")
    report = _import(engine, path)
    assert not report.ok
    assert [e.line for e in report.errors] == [4, 5, 6, 8]
    assert "DKX" in report.errors[0].message
    assert "already appears on line 2" in report.errors[2].message
    assert "agency_id_value is required" in report.errors[3].message
    with Session(engine) as s:
        assert s.exec(select(Partner)).all() == []
    # the row of line 5 is wrong in seven ways and says so
    path.write_text(
        CSV_HEADER + "ISIL,DK-3,Bad everything,Denmark,DKK,ftp://x,nope,,,-1,abc,0,,,maybe\n",
        encoding="utf-8",
    )
    (error,) = _import(engine, path).errors
    assert error.line == 2
    for word in ("country", "endpoint_url", "email", "loan_charge", "copy_charge",
                 "loan_period_days", "active"):  # fmt: skip
        assert word in error.message
    engine.dispose()


def test_one_bad_toml_table_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "# directory\n\n"
        '[[partner]]\nagency_id_type = "ISIL"\nagency_id_value = "DK-1"\nname = "Good"\n'
        'country = "DK"\ncurrency = "DKK"\nloan_charge = 12.5\nloan_period_days = 30\n\n'
        '[[partner]]\nagency_id_type = "ISIL"\nagency_id_value = "DK-2"\nname = "Bad"\n'
        'country = "DK"\ncurrency = "DKK"\nloan_period_days = "soon"\nactive = "yes"\n',
        encoding="utf-8",
    )
    engine = _engine(tmp_path / "db.db")
    report = _import(engine, path)
    assert [e.line for e in report.errors] == [12]
    assert "loan_period_days" in report.errors[0].message
    assert "nothing imported" in report.lines()[0]
    with Session(engine) as s:
        assert s.exec(select(Partner)).all() == []
    engine.dispose()


def test_the_demo_marker_cannot_be_imported(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(CSV_HEADER + "DEMO,ill-tui-sandbox,Marker,ZZ,XXX,,,,,,,,,,false\n", "utf-8")
    engine = _engine(tmp_path / "db.db")
    (error,) = _import(engine, path).errors
    assert "reserved" in error.message
    engine.dispose()


@pytest.mark.parametrize("name", ["partners.json", "partners", "partners.xlsx"])
def test_unknown_extension_is_refused(source: Engine, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("x", encoding="utf-8")
    with session_scope(source) as s, pytest.raises(PartnerFileError, match=r"\.csv or \.toml"):
        import_partners(s, path)
    with session_scope(source) as s, pytest.raises(PartnerFileError, match=r"\.csv or \.toml"):
        export_partners(s, path)


def test_unusable_files_are_refused(source: Engine, tmp_path: Path) -> None:
    cases = {
        "missing.csv": None,
        "header.csv": "agency,name\nISIL,x\n",
        "empty.csv": "",
        "broken.toml": "[[partner]\nname = 1",
        "other.toml": '[library]\nname = "x"\n',
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text, encoding="utf-8")
        with session_scope(source) as s, pytest.raises(PartnerFileError):
            import_partners(s, path)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(name=_text, policies=_text)
def test_toml_strings_survive_any_text(name: str, policies: str) -> None:
    record = {"agency_id_type": "ISIL", "agency_id_value": "X", "name": name, "policies": policies}
    (table,) = tomllib.loads(to_toml([record]))["partner"]
    assert table["name"] == name
    assert table["policies"] == policies
