"""The ``ill-tui`` command: open the app, build the demo sandbox, migrate, import/export partners.

This is a composition root: it reads the settings, opens (and migrates) the database and hands
the engine to the app or to a core function. The Textual app is imported only when it is about
to run, so the other commands start quickly and never need a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ill_tui import __version__
from ill_tui.config import (
    ENV_DATABASE_URL,
    Settings,
    default_data_dir,
    normalise_database_url,
    sqlite_url,
)
from ill_tui.db import (
    DEFAULT_AUTOCHECKPOINT,
    SERVE_AUTOCHECKPOINT,
    DatabaseError,
    WalCheckpointer,
    create_db_engine,
    current_revision,
    head_revision,
)
from ill_tui.db import open_database as _open_database

DB_HELP = (
    "Database URL or SQLite file path, e.g. ~/ill.db or "
    "postgresql://ill@dbhost/ill. Default: $" + ENV_DATABASE_URL + ", else ill-tui.db in the "
    "user data directory."
)


def _fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with status 1 (no traceback)."""
    raise click.ClickException(" ".join(message.split()))


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def open_database(url: str, *, autocheckpoint: int = DEFAULT_AUTOCHECKPOINT) -> Engine:
    """Open and migrate ``url``, turning every way it can fail into a one-line error."""
    try:
        return _open_database(url, autocheckpoint=autocheckpoint)
    except DatabaseError as exc:
        _fail(str(exc))
    except sa.exc.NoSuchModuleError:  # before ArgumentError, its base class
        _fail(f"No database driver for {_safe_url(url)}; use a file path or postgresql://.")
    except sa.exc.ArgumentError as exc:
        _fail(f"{_safe_url(url)} is not a database URL or file path: {exc}")
    except ImportError as exc:
        _fail(f"The database driver for {_safe_url(url)} is not installed: {exc}")
    except sa.exc.SQLAlchemyError as exc:
        _fail(f"Cannot open the database {_safe_url(url)}: {exc}")


def _settings(db: str | None) -> Settings:
    try:
        return Settings.from_env(database_url=db)
    except ValueError as err:
        _fail(str(err))


DEMO_DB_HELP = (
    "Database URL or SQLite file path for the sandbox. Default: demo.db in the user data "
    "directory ($" + ENV_DATABASE_URL + " is not used)."
)


def _db_option(func: Callable[..., Any], help_text: str = DB_HELP) -> Callable[..., Any]:
    return click.option("--db", "db", metavar="URL", default=None, help=help_text)(func)


def _demo_db_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return _db_option(func, DEMO_DB_HELP)


def _group_db(ctx: click.Context, db: str | None) -> str | None:
    """A subcommand's --db, else the one given before the subcommand."""
    if db:
        return db
    parent = ctx.find_root()
    return parent.params.get("db") if parent is not ctx else None


TARGETS_ENV = "ILL_TUI_TARGETS"
TARGETS_HELP = (
    "Catalog targets file (TOML, [[target]] tables) to verify citations against. "
    f"Default: ${TARGETS_ENV}, else targets.toml in the data directory if it exists."
)


def _targets_path(option: Path | None) -> Path | None:
    """--targets, else $ILL_TUI_TARGETS, else the data directory's targets.toml if present."""
    import os

    if option is not None:
        return option
    from_env = os.environ.get(TARGETS_ENV, "").strip()
    if from_env:
        return Path(from_env)
    default = default_data_dir() / "targets.toml"
    return default if default.exists() else None


def _run_app(
    engine: Engine, settings: Settings, *, demo: bool, targets: Path | None = None
) -> None:
    path = _targets_path(targets)
    if path is None:
        _build_app(engine, settings, demo=demo, verifier=None).run()
        return
    import asyncio

    from adapters.sru import SruClient
    from ill_tui.catalog import CatalogError, load_targets
    from ill_tui.services.verification import Verifier

    try:
        catalogs = load_targets(path)
    except CatalogError as exc:
        _fail(str(exc))

    async def run_with_catalogs() -> None:
        # one keep-alive HTTP client for every catalog search, closed when the app ends
        async with SruClient() as sru:
            app = _build_app(engine, settings, demo=demo, verifier=Verifier(sru, catalogs))
            await app.run_async()

    asyncio.run(run_with_catalogs())


def _build_app(engine: Engine, settings: Settings, *, demo: bool, verifier: Any) -> Any:
    """The app over ``engine``: codec, outbox sender and catalog verifier (``None``: no targets)."""
    try:
        from ill_tui.app import IllApp, prefetch_first_page
        from ill_tui.services.desk import Desk
    except ImportError as exc:  # pragma: no cover - only when the install is broken
        _fail(f"Cannot start the terminal interface: {exc}")
    from adapters.iso18626.port import Iso18626Codec
    from adapters.iso18626.sender import OutboxSender
    from adapters.openurl import parse_openurl

    desk = Desk(
        engine, actor=settings.actor, codec=Iso18626Codec(), settings=settings, verifier=verifier
    )
    desk.citation_links = parse_openurl  # the new-request form's "paste an OpenURL" field
    # The app delivers the outbox too, so staff actions reach partners even when no
    # `ill-tui serve` runs; with both running, each message is claimed by one of them.
    app = IllApp(
        desk,
        settings=settings,
        demo=demo,
        first_page=prefetch_first_page(desk),
        sender=OutboxSender(engine),
    )
    return app


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  ill-tui                          open the queues on your database
  ill-tui --db ~/ill/test.db       open another SQLite file
  ILL_TUI_DATABASE_URL=postgresql://ill@db/ill ill-tui
  ill-tui demo                     try it out on a sandbox with 3000 requests
  ill-tui COMMAND --help           help on one command""",
)
@click.version_option(__version__, "-V", "--version", prog_name="ill-tui")
@_db_option
@click.option("--targets", type=click.Path(path_type=Path), default=None, help=TARGETS_HELP)
@click.pass_context
def cli(ctx: click.Context, db: str | None, targets: Path | None) -> None:
    """Interlibrary-loan work in the terminal: borrowing and lending queues.

    Without a command, opens the app on your database, creating or upgrading it first.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(db)
    engine = open_database(settings.database_url)
    _run_app(engine, settings, demo=False, targets=targets)


def _demo_url(db: str | None) -> str:
    if db:
        return normalise_database_url(db)
    return sqlite_url(default_data_dir() / "demo.db")


class _ProgressPrinter:
    """Prints each stage once, and the request count every tenth of the way."""

    def __init__(self) -> None:
        self.stage = ""
        self.step = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage, self.step = stage, -1
        if stage == "requests" and total:
            step = done * 10 // total
            if step != self.step:
                self.step = step
                click.echo(f"  requests: {done:,} of {total:,}", err=True)
        elif done == 0 or (done == total and stage in ("partners", "patrons")):
            label = f"{stage}: {done:,}" if stage in ("partners", "patrons") else f"{stage}..."
            click.echo(f"  {label}", err=True)


@cli.command(
    epilog="""\b
Examples:
  ill-tui demo                         build (or refresh) the sandbox and open it
  ill-tui demo --requests 1000000 --no-open --db /tmp/bench.db
  ill-tui demo --seed 7                another, equally realistic, sandbox"""
)
@_demo_db_option
@click.option(
    "--requests",
    "n_requests",
    type=click.IntRange(min=0),
    default=3000,
    show_default=True,
    help="How many requests to make (borrowing and lending together).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--no-open", is_flag=True, help="Build the sandbox but do not open the app.")
@click.option(
    "--force",
    is_flag=True,
    help="Wipe the database even if it holds data the demo did not make.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    db: str | None,
    n_requests: int,
    seed: int,
    no_open: bool,
    force: bool,
) -> None:
    """Build or refresh the demo sandbox, then open it.

    The sandbox is a separate database (demo.db in the user data directory unless --db
    says otherwise; $ILL_TUI_DATABASE_URL is NOT used, so your live database is never
    touched). It gets partner libraries in 12 countries, patrons, and requests in every
    status with their histories. A refresh deletes all partners, patrons, requests, events,
    notes and rota entries first. A database that holds data the demo did not make is
    refused unless you add --force.
    """
    from ill_tui.demo import NotADemoDatabase, build_demo

    url = _demo_url(_group_db(ctx, db))
    engine = open_database(url)
    click.echo(f"Building the demo sandbox in {_safe_url(url)}", err=True)
    try:
        summary = build_demo(
            engine, requests=n_requests, seed=seed, progress=_ProgressPrinter(), force=force
        )
    except NotADemoDatabase as exc:
        _fail(f"{exc} Add --force to wipe it anyway.")
    except sa.exc.SQLAlchemyError as exc:
        _fail(f"Building the sandbox failed: {exc}")
    for line in summary.lines():
        click.echo(line)
    if not no_open:
        _run_app(engine, _settings(url), demo=True)


@cli.command()
@_db_option
@click.pass_context
def migrate(ctx: click.Context, db: str | None) -> None:
    """Create or upgrade the database schema to the newest revision.

    Prints the revision before and after. The app and every other command do this on their
    own; this command is for upgrading a shared (PostgreSQL) database on purpose.

    \b
    Example:
      ill-tui migrate --db postgresql://ill@dbhost/ill
    """
    url = _settings(_group_db(ctx, db)).database_url
    before = None
    try:
        probe = create_db_engine(url)
        try:
            before = current_revision(probe)
        finally:
            probe.dispose()
    except (sa.exc.SQLAlchemyError, ImportError):
        pass  # open_database below says what is wrong, in one line
    engine = open_database(url)
    after = current_revision(engine)
    click.echo(f"Database: {_safe_url(url)}")
    click.echo(f"Revision before: {before or '(empty database)'}")
    click.echo(f"Revision after:  {after}" + (" (newest)" if after == head_revision() else ""))
    if before == after:
        click.echo("Already up to date.")


@cli.group()
def partners() -> None:
    """Import or export the partner directory (CSV or TOML)."""


_PARTNER_FILE = click.Path(dir_okay=False, path_type=Path)


@partners.command("export")
@click.argument("file", type=_PARTNER_FILE)
@_db_option
@click.pass_context
def partners_export(ctx: click.Context, file: Path, db: str | None) -> None:
    """Write every partner to FILE; .csv or .toml chooses the format.

    The file holds each partner's ISO 18626 account id and security code: keep it private.

    \b
    Examples:
      ill-tui partners export partners.csv
      ill-tui partners export directory.toml --db ~/ill.db
    """
    from ill_tui.db import session_scope
    from ill_tui.partners_io import PartnerFileError, export_partners

    engine = open_database(_settings(_group_db(ctx, db)).database_url)
    try:
        with session_scope(engine) as session:
            count = export_partners(session, file)
    except PartnerFileError as exc:
        _fail(str(exc))
    click.echo(f"Wrote {count} partners to {file}")


@partners.command("import")
@click.argument("file", type=_PARTNER_FILE)
@_db_option
@click.pass_context
def partners_import(ctx: click.Context, file: Path, db: str | None) -> None:
    """Add or update partners from FILE (.csv with a header row, or .toml).

    A partner with the same agency id (agency_id_type and agency_id_value) is updated;
    others are added; partners not in the file are left alone. ALL OR NOTHING: every row is
    checked first, and if any row is wrong nothing is imported and each wrong row is listed
    with its line number (exit status 1).

    \b
    Columns / keys (the first five are required):
      agency_id_type, agency_id_value, name, country (2 letters), currency (ISO 4217),
      endpoint_url, email, account_id, security_code, loan_charge, copy_charge,
      loan_period_days, policies, consortia (comma-separated), active (true/false)

    \b
    Examples:
      ill-tui partners import partners.csv
      ill-tui partners import directory.toml --db postgresql://ill@dbhost/ill
    """
    from ill_tui.db import session_scope
    from ill_tui.partners_io import PartnerFileError, import_partners

    engine = open_database(_settings(_group_db(ctx, db)).database_url)
    try:
        with session_scope(engine) as session:
            report = import_partners(session, file)
    except PartnerFileError as exc:
        _fail(str(exc))
    for line in report.lines():
        click.echo(line, err=not report.ok)
    if not report.ok:
        sys.exit(1)


# -- intake: OpenURL links and batch files (services/intake.py) ---------------------------------


@cli.command("import-openurl")
@click.argument("url")
@click.option(
    "--patron",
    metavar="BARCODE",
    default="",
    help="The patron's barcode (a borrowing request needs one).",
)
@_db_option
@click.pass_context
def import_openurl(ctx: click.Context, url: str, patron: str, db: str | None) -> None:
    """Create a borrowing request (status New) from an OpenURL link.

    URL is a whole OpenURL 1.0 (url_ver=Z39.88-2004, rft.* keys) or 0.1 link, or only its
    query string; quote it for the shell. The request gets the same checks as the
    new-request form; a request that repeats an open request of the same patron is created
    but marked as a possible duplicate. On any error nothing is created (exit status 1).

    \b
    Examples:
      ill-tui import-openurl --patron P001 \\
        'https://ill.example.edu/new?url_ver=Z39.88-2004&rft.btitle=Cybernetics'
      ill-tui import-openurl --patron P001 \\
        'genre=article&title=Nature&atitle=...&id=doi:10.1038/171737a0'
    """
    from adapters.openurl import OpenURLError, parse_openurl
    from ill_tui.db import session_scope
    from ill_tui.services.intake import form_from_citation, intake_request
    from ill_tui.services.requests import ValidationFailed

    try:
        citation = parse_openurl(url)
    except OpenURLError as exc:
        _fail(f"Nothing created: {exc}")
    settings = _settings(_group_db(ctx, db))
    engine = open_database(settings.database_url)
    source = f" from {citation.source}" if citation.source else ""
    form = form_from_citation(
        citation, patron=patron, note=f"Created from an OpenURL link{source}."
    )
    try:
        with session_scope(engine) as session:
            intake = intake_request(session, form=form, pmid=citation.pmid, actor=settings.actor)
            request = intake.request
    except ValidationFailed as exc:
        click.echo("Nothing created; the citation from the link has errors:", err=True)
        for name, message in exc.errors.items():
            hint = " Give it with --patron BARCODE." if name == "patron" and not patron else ""
            click.echo(f"  {name}: {message}{hint}", err=True)
        sys.exit(1)
    click.echo(
        f"Created borrowing request {request.id} ({request.status}, {request.service_type}) "
        f"for {request.party_name}:"
    )
    for name, value in citation.values().items():
        stored = getattr(request, name, None) or value
        click.echo(f"  {name}: {stored}")
    for duplicate in intake.duplicates:
        click.echo(f"Possible duplicate of {duplicate.describe()}")


@cli.command("import-requests")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--accepted-only",
    is_flag=True,
    help="Import the rows that pass the checks and report the others "
    "(default: all or none, a file with any rejected row imports nothing).",
)
@_db_option
@click.pass_context
def import_requests(ctx: click.Context, file: Path, accepted_only: bool, db: str | None) -> None:
    """Create requests from a CSV batch FILE with a header row.

    Every row gets the same checks as the new-request form. The mode is printed before
    anything runs. ALL OR NONE (default): if any row is rejected, nothing is imported.
    --accepted-only: the accepted rows are imported, the rejected ones reported. Either way
    every rejected row is listed with its line number, column and reason (exit status 1),
    and requests that repeat an open request of the same patron are marked as possible
    duplicates.

    \b
    Columns (only title is required in the header; unknown columns are refused):
      direction (borrowing/lending, default borrowing), service_type (Loan/Copy,
      default Loan), title, author, edition, publisher, place_of_publication, year,
      isbn, issn, oclc_number, lccn, doi, pmid, article_title, article_author, volume,
      issue, pages, patron (barcode; borrowing), partner (agency id or name; lending),
      partner_request_id, needed_by (YYYY-MM-DD), max_cost, max_cost_currency, note

    \b
    Examples:
      ill-tui import-requests requests.csv
      ill-tui import-requests requests.csv --accepted-only --db postgresql://ill@db/ill
    """
    from ill_tui.db import session_scope
    from ill_tui.services.intake import IntakeFileError, IntakeMode
    from ill_tui.services.intake import import_requests as run_import

    mode = IntakeMode.ACCEPTED_ONLY if accepted_only else IntakeMode.ALL_OR_NONE
    click.echo(mode.describe())
    settings = _settings(_group_db(ctx, db))
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as session:
            report = run_import(session, file, mode=mode, actor=settings.actor)
    except IntakeFileError as exc:
        _fail(str(exc))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


# -- simulate-partner: the ISO 18626 partner simulator (adapters/iso18626/simulator.py) ----------


@cli.command("simulate-partner")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8626, show_default=True, help="TCP port."
)
@click.option(
    "--delay",
    "delay_ms",
    metavar="MS",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Pause before each follow-up message, in milliseconds.",
)
@click.option(
    "--peer-url",
    metavar="URL",
    default=None,
    help="Where follow-up messages go when a request names no http(s) address of its own "
    "(requestingAgencyInfo). Default: $ILL_TUI_ENDPOINT_URL, else ill-tui serve's "
    "default, http://127.0.0.1:8627/iso18626.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow an address other than loopback. The simulator posts its answers to any "
    "http(s) address a request names, so keep it off networks you do not control.",
)
@click.option(
    "--scenario",
    "scenarios",
    metavar="AGENCY=SCENARIO",
    multiple=True,
    help="The scenario the partner with this agency id value plays when a request names "
    "none, e.g. US-NYPL=WILLSUPPLY_LOANED; *=SCENARIO for every other partner "
    "(repeatable; an ill-tui extension).",
)
def simulate_partner(
    host: str,
    port: int,
    delay_ms: int,
    peer_url: str | None,
    allow_remote: bool,
    scenarios: tuple[str, ...],
) -> None:
    """Run an ISO 18626 partner that answers as Index Data's illmock does.

    It plays every partner a request is addressed to, with no database: POST messages to
    http://HOST:PORT/iso18626. The scenario comes from MOCK:<supplierId>:<SCENARIO> in the
    request's note, else its supplierUniqueRecordId: LOANED, WILLSUPPLY, WILLSUPPLY_LOANED,
    UNFILLED (also the default), WILLSUPPLY_UNFILLED, COMPLETED, LOANED_OVERDUE,
    LOANED_RECALLED, WILLSUPPLY_LOANED_OVERDUE, WILLSUPPLY_LOANED_RECALLED, RETRY:COST,
    RETRY:ONLOAN, RETRY:COND, RETRY:NOTFOUNDASCITED, RETRY:X_Y, ERROR, HTTP-ERROR-400,
    HTTP-ERROR-500. The demo sandbox's partners point at http://127.0.0.1:8626/iso18626.
    Stop it with Ctrl-C.

    \b
    Examples:
      ill-tui simulate-partner
      ill-tui simulate-partner --port 9000 --delay 500 --peer-url http://127.0.0.1:9627/iso18626
      ill-tui simulate-partner --scenario US-NYPL=WILLSUPPLY_LOANED --scenario GB-BL=RETRY:COST
      ill-tui simulate-partner --scenario '*=WILLSUPPLY_LOANED'   every partner loans
    """
    import os

    from adapters.iso18626.simulator import DEFAULT_PEER_URL
    from adapters.iso18626.simulator import run as run_simulator

    if host not in LOOPBACK_HOSTS and not allow_remote:
        _fail(f"--host {host} is not a loopback address; add --allow-remote to listen there.")
    by_agency: dict[str, str] = {}
    for item in scenarios:
        agency, sep, scenario = item.partition("=")
        if not sep or not agency.strip() or not scenario.strip():
            _fail(f"--scenario {item!r} must look like AGENCY=SCENARIO, e.g. DK-1=LOANED.")
        by_agency[agency.strip()] = scenario.strip()
    url = peer_url or os.environ.get("ILL_TUI_ENDPOINT_URL") or DEFAULT_PEER_URL
    if not url.startswith(("http://", "https://")):
        _fail(f"--peer-url {url!r} must be an http:// or https:// URL.")
    click.echo(
        f"ISO 18626 partner simulator on http://{host}:{port}/iso18626 "
        f"(delay {delay_ms} ms, default peer {url})",
        err=True,
    )
    try:
        run_simulator(host=host, port=port, delay_ms=delay_ms, peer_url=url, scenarios=by_agency)
    except OSError as exc:
        _fail(f"Cannot listen on {host}:{port}: {exc}")


# -- serve: the ISO 18626 endpoint and the outbox sender (adapters/iso18626/) ---------------------

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
SERVE_PORT = 8627  # 8626 is the partner simulator's, so both run side by side


@cli.command(
    epilog="""\b
Examples:
  ill-tui serve                        receive on http://127.0.0.1:8627/iso18626
  ILL_TUI_ENDPOINT_URL=https://ill.example.edu/iso18626 ill-tui serve --port 9000
  ill-tui serve --host 0.0.0.0 --allow-remote   (behind a TLS reverse proxy)"""
)
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=SERVE_PORT,
    show_default=True,
    help="TCP port.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow an address other than loopback. ill-tui speaks plain HTTP: put a TLS "
    "reverse proxy in front of it.",
)
@click.option(
    "--retry-base",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Outbox: wait after a partner's first failed delivery; doubles with each failure.",
)
@click.option(
    "--retry-max",
    type=click.FloatRange(min=0.01),
    default=900.0,
    show_default=True,
    metavar="SECONDS",
    help="Outbox: the longest wait between two attempts.",
)
@click.option(
    "--retry-attempts",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Outbox: failed attempts before a message is marked failed for staff.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Outbox: how often to look for messages staff queued.",
)
@click.option(
    "--no-sender",
    is_flag=True,
    help="Only receive; another process (the app, another serve) delivers the outbox.",
)
@click.option(
    "--rota-check",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How often the sender moves on requests a lender has not answered within "
    "$ILL_TUI_ROTA_TIMEOUT_DAYS (default 7 days).",
)
@click.option(
    "--cpu",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Run on CPU N only (Linux). Python runs one thread at a time, and handing that "
    "turn between threads on different CPUs costs more than it gains: on a machine where "
    "serve can have a CPU to itself, this gives the most messages per second.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    db: str | None,
    host: str,
    port: int,
    allow_remote: bool,
    retry_base: float,
    retry_max: float,
    retry_attempts: int,
    poll: float,
    no_sender: bool,
    rota_check: float,
    cpu: int | None,
) -> None:
    """Receive ISO 18626 messages and deliver the outbox, until Ctrl-C or SIGTERM.

    Partners POST messages to http://HOST:PORT/iso18626 (or /); each is authenticated,
    stored and applied to its request before it is confirmed. In the same process the
    outbox sender posts the messages staff actions queued, oldest first per partner, with
    backoff while a partner is down. One log line per message on stderr. Set
    $ILL_TUI_ENDPOINT_URL to the address partners reach this endpoint at (it goes into
    every request we send), and $ILL_TUI_AGENCY_ID_TYPE / $ILL_TUI_AGENCY_ID to our
    agency id. Only loopback addresses are allowed unless --allow-remote is given.
    """
    import logging
    import signal
    from datetime import datetime, timedelta

    import uvicorn

    from adapters.iso18626.endpoint import make_app
    from adapters.iso18626.port import Iso18626Codec
    from adapters.iso18626.sender import OutboxSender
    from ill_tui import protocol as p
    from ill_tui.services import exchange, outbox, sourcing

    if host not in LOOPBACK_HOSTS and not allow_remote:
        _fail(
            f"--host {host} is not a loopback address. ill-tui serves plain HTTP; add "
            "--allow-remote to listen there anyway (behind a TLS reverse proxy)."
        )
    if retry_max < retry_base:
        _fail("--retry-max must be at least --retry-base.")
    if cpu is not None:
        _pin_to_cpu(cpu)
    settings = _settings(_group_db(ctx, db))
    sqlite = settings.database_url.startswith("sqlite")
    # SQLite: the WAL is checkpointed in a thread of its own, rarely by a commit a partner
    # is waiting for.
    engine = open_database(
        settings.database_url,
        autocheckpoint=SERVE_AUTOCHECKPOINT if sqlite else DEFAULT_AUTOCHECKPOINT,
    )
    checkpointer = WalCheckpointer(engine.url.database or "") if sqlite else None
    codec = Iso18626Codec()

    def receive(message: p.AgencyMessage, raw: bytes, _received: datetime) -> p.Confirmation:
        return exchange.receive(engine, message, raw, codec=codec, settings=settings)

    sender = None
    if not no_sender:
        policy = outbox.RetryPolicy(
            base_delay=timedelta(seconds=retry_base),
            max_delay=timedelta(seconds=retry_max),
            max_attempts=retry_attempts,
        )
        log = logging.getLogger("ill_tui.rota")

        def rota_timeouts(now: datetime) -> None:
            moved = sourcing.advance_stalled(
                engine, codec=codec, settings=settings, clock=lambda: now
            )
            if moved:
                log.info("rota: no answer in time, moved on: requests %s", moved)

        sender = OutboxSender(
            engine,
            policy=policy,
            poll_interval=poll,
            periodic=rota_timeouts,
            periodic_every=rota_check,
        )

    def receive_many(
        inbound: Sequence[exchange.Inbound],
    ) -> list[p.Confirmation | Exception]:
        # group commit: requests that arrive while the writer is busy are stored together
        return exchange.receive_many(engine, inbound, codec=codec, settings=settings)

    app = make_app(
        receive,
        receive_many=receive_many,
        after_receive=sender.wake if sender else None,
        background=sender.run if sender else None,
        # SQLite has one writer at a time: more would only sleep in its busy handler
        concurrency=1 if sqlite else 16,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    # One line per message: skip what the format never shows (the logging HOWTO's
    # "Optimization": caller lookup, thread and process names).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    url = f"http://{host}:{port}/iso18626"
    us = f"{settings.agency_id_type}:{settings.agency_id_value}"
    click.echo(
        f"ill-tui serve: {us} receiving on {url}, database {_safe_url(settings.database_url)}, "
        f"outbox {'delivered here' if sender else 'not delivered here (--no-sender)'}",
        err=True,
    )
    if not settings.endpoint_url:
        click.echo(
            "Note: $ILL_TUI_ENDPOINT_URL is not set, so requests we send do not tell partners "
            "where to answer.",
            err=True,
        )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # nothing here reads the client's address, so X-Forwarded-For is not worth parsing
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM (requests under way finish, the sender
    # stops after its current attempt) and then raises the signal again for the previous
    # handler: these handlers make that a normal exit (status 0) instead of a kill.
    stopped_by: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda sig, _frame: stopped_by.append(sig))
    if checkpointer is not None:
        checkpointer.start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        server.started = False
    finally:
        if checkpointer is not None:
            checkpointer.stop()
    if not server.started:
        _fail(f"Cannot listen on {host}:{port} (in use, or not an address of this machine).")
    why = f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
    click.echo(f"ill-tui serve: stopped{why}", err=True)


def _pin_to_cpu(cpu: int) -> None:
    """Keep this process (every thread it starts from now on) on CPU ``cpu``."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        _fail("--cpu needs Linux (os.sched_setaffinity).")
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        _fail(f"--cpu {cpu}: this process may run on CPUs {sorted(allowed)} only.")
    setaffinity(0, {cpu})


def main() -> None:
    """Entry point of the ``ill-tui`` command."""
    cli(prog_name="ill-tui")


if __name__ == "__main__":  # pragma: no cover
    main()
