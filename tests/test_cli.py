"""The ``ill-tui`` command line: every command, its help, and clean failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner, Result

from ill_tui import __version__
from ill_tui.cli import cli
from ill_tui.config import sqlite_url
from ill_tui.db import alembic_config, create_db_engine, head_revision

FIELDS = (
    "agency_id_type,agency_id_value,name,country,currency,endpoint_url,email,account_id,"
    "security_code,loan_charge,copy_charge,loan_period_days,policies,consortia,active\n"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user data directory and no database URL from the developer's environment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ILL_TUI_DATABASE_URL", raising=False)
    return tmp_path / "xdg" / "ill-tui"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="ill-tui", catch_exceptions=False)


def count(path: Path, table: str = "request") -> int:
    engine = sa.create_engine(sqlite_url(path))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


class FakeApp:
    """Stands in for ill_tui.app.IllApp: records how it was made and that it ran."""

    made: list[dict[str, Any]] = []

    def __init__(
        self,
        desk: Any,
        *,
        settings: Any = None,
        demo: bool = False,
        first_page: Any = None,
        sender: Any = None,
    ) -> None:
        FakeApp.made.append(
            {"desk": desk, "settings": settings, "demo": demo, "first_page": first_page,
             "sender": sender, "ran": False}
        )  # fmt: skip

    def run(self) -> None:
        FakeApp.made[-1]["ran"] = True


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import ill_tui.app

    FakeApp.made = []
    monkeypatch.setattr(ill_tui.app, "IllApp", FakeApp)
    return FakeApp.made


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"ill-tui, version {__version__}"


@pytest.mark.parametrize(
    "command",
    [[], ["demo"], ["migrate"], ["partners"], ["partners", "import"], ["partners", "export"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: ill-tui" in result.output
    if command != ["partners"]:
        assert "Example" in result.output


def test_import_help_states_all_or_nothing() -> None:
    text = " ".join(run("partners", "import", "--help").output.split())
    assert "ALL OR NOTHING" in text
    assert "nothing is imported" in text


def test_demo_builds_refreshes_and_does_not_open_with_no_open(
    tmp_path: Path, fake_app: list[dict[str, Any]]
) -> None:
    db = tmp_path / "sandbox.db"
    result = run("demo", "--no-open", "--requests", "200", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "Requests: 200" in result.stdout
    assert "requests: 200 of 200" in result.stderr  # progress
    assert count(db) == 200
    again = run("demo", "--no-open", "--requests", "150", "--seed", "3", "--db", str(db))
    assert again.exit_code == 0
    assert count(db) == 150
    assert fake_app == []


def test_demo_opens_the_app_in_demo_mode(tmp_path: Path, fake_app: list[dict[str, Any]]) -> None:
    db = tmp_path / "sandbox.db"
    result = run("demo", "--requests", "60", "--db", str(db))
    assert result.exit_code == 0, result.output
    (made,) = fake_app
    assert made["demo"] is True
    assert made["ran"] is True
    assert made["settings"].database_url == sqlite_url(db)
    assert str(made["desk"].engine.url) == sqlite_url(db)
    # the borrowing queue's first page is read before the app starts
    assert made["first_page"].rows
    assert made["first_page"].query.direction == "borrowing"
    # the app is wired for ISO 18626 and for pasting OpenURL links into the form
    desk = made["desk"]
    assert desk.codec is not None
    citation = desk.read_citation_link(
        "https://example.org/resolve?url_ver=Z39.88-2004&rft_val_fmt=info:ofi/fmt:kev:mtx:book"
        "&rft.btitle=Cybernetics&rft.isbn=9780262730099"
    )
    assert citation.title == "Cybernetics"


def test_demo_defaults_to_its_own_file_not_the_live_database(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "live.db"
    monkeypatch.setenv("ILL_TUI_DATABASE_URL", str(live))
    result = run("demo", "--no-open", "--requests", "80")
    assert result.exit_code == 0, result.output
    assert count(home / "demo.db") == 80
    assert not live.exists()


def test_demo_refuses_a_live_database_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    partners = tmp_path / "p.csv"
    partners.write_text(FIELDS + "ISIL,DK-820010,Det Kgl. Bibliotek,DK,DKK,,,,,,,,,,\n", "utf-8")
    assert run("partners", "import", str(partners), "--db", str(db)).exit_code == 0
    refused = run("demo", "--no-open", "--requests", "50", "--db", str(db))
    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    assert count(db) == 0
    assert count(db, "partner") == 1
    forced = run("demo", "--no-open", "--requests", "50", "--force", "--db", str(db))
    assert forced.exit_code == 0
    assert count(db) == 50


def test_migrate_reports_before_and_after(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    first = run("migrate", "--db", str(db))
    assert first.exit_code == 0
    assert "Revision before: (empty database)" in first.output
    assert f"Revision after:  {head_revision()} (newest)" in first.output
    second = run("--db", str(db), "migrate")  # --db before the command works too
    assert f"Revision before: {head_revision()}" in second.output
    assert "Already up to date." in second.output


def test_migrate_upgrades_an_older_database_and_keeps_its_requests(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    assert run("demo", "--no-open", "--requests", "50", "--db", str(db)).exit_code == 0
    engine = create_db_engine(sqlite_url(db))
    command.downgrade(alembic_config(engine), "0001")
    engine.dispose()
    result = run("migrate", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "Revision before: 0001" in result.output
    assert f"Revision after:  {head_revision()} (newest)" in result.output
    engine = create_db_engine(sqlite_url(db))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM request")).scalar_one() == 50
    engine.dispose()


def test_partners_export_and_import(tmp_path: Path) -> None:
    sandbox, live = tmp_path / "demo.db", tmp_path / "live.db"
    assert run("demo", "--no-open", "--requests", "0", "--db", str(sandbox)).exit_code == 0
    for name in ("dir.csv", "dir.toml"):
        exported = run("partners", "export", str(tmp_path / name), "--db", str(sandbox))
        assert exported.exit_code == 0
        assert "Wrote 35 partners" in exported.output
    imported = run("partners", "import", str(tmp_path / "dir.toml"), "--db", str(live))
    assert imported.exit_code == 0
    assert "35 added" in imported.output
    again = run("partners", "import", str(tmp_path / "dir.csv"), "--db", str(live))
    assert "0 added, 0 updated, 35 unchanged" in again.output


def test_partners_import_with_a_bad_row_fails_and_names_the_line(tmp_path: Path) -> None:
    db, path = tmp_path / "db.db", tmp_path / "bad.csv"
    path.write_text(
        FIELDS + "ISIL,DK-1,Good,DK,DKK,,,,,,,,,,\n" + "ISIL,DK-2,Bad,DK,KRONER,,,,,,,,,,\n",
        encoding="utf-8",
    )
    result = run("partners", "import", str(path), "--db", str(db))
    assert result.exit_code == 1
    assert "nothing imported" in result.stderr
    assert "line 3:" in result.stderr
    assert count(db, "partner") == 0


def test_partners_unknown_format_is_a_clean_error(tmp_path: Path) -> None:
    result = run("partners", "export", str(tmp_path / "p.xlsx"), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert ".csv or .toml" in result.stderr


@pytest.mark.parametrize(
    "url",
    ["nosuchdriver://x/y", "postgresql://nobody@127.0.0.1:1/none", "not a url://"],
)
def test_bad_database_is_a_one_line_error(url: str) -> None:
    result = CliRunner().invoke(cli, ["--db", url, "migrate"], prog_name="ill-tui")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_no_command_opens_the_app_on_the_configured_database(
    home: Path, fake_app: list[dict[str, Any]]
) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    (made,) = fake_app
    assert made["demo"] is False
    assert made["ran"] is True
    assert made["settings"].database_url == sqlite_url(home / "ill-tui.db")
    assert (home / "ill-tui.db").exists()  # created and migrated before the app starts


def test_subprocess_smoke(tmp_path: Path) -> None:
    """The real entry point, in its own process: help, and a clean failure."""
    ok = subprocess.run(
        [sys.executable, "-m", "ill_tui.cli", "--help"], capture_output=True, text=True
    )
    assert ok.returncode == 0
    assert "Usage: ill-tui" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ill_tui.cli", "--db", "nosuchdriver://x", "migrate"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: ")
    assert "Traceback" not in bad.stderr


def test_a_bad_setting_in_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILL_TUI_ROTA_TIMEOUT_DAYS", "a week")
    result = run("migrate", "--db", str(tmp_path / "x.db"))
    assert result.exit_code != 0
    assert "ILL_TUI_ROTA_TIMEOUT_DAYS must be a whole number of days, not 'a week'" in result.output
    assert not (tmp_path / "x.db").exists()
