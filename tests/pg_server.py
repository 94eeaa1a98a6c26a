"""A throw-away PostgreSQL server for the test session: initdb + pg_ctl on a temp dir.

The server listens on 127.0.0.1 only, on a free random port, with a private socket
directory, and runs with durability switched off (fsync, full_page_writes,
synchronous_commit) because its data dies with the session anyway. PostgreSQL refuses to
run as root, so when the tests run as root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SERVER_USER = "postgres"  # who runs the server when we are root
DB_USER = "ill"  # the superuser initdb creates; trust authentication on loopback


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are not installed."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout.

    Raises:
        PostgresUnavailable: neither place has them.
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        # Debian's /usr/bin/pg_ctl wrappers need a cluster; resolve symlinks to the real bin dir.
        real = Path(initdb).resolve().parent
        if (real / "pg_ctl").exists():
            return real
        return Path(initdb).parent

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL is not installed: no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin "
        "(Debian: apt-get install postgresql)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throw-away server; ``create_database`` hands out fresh, empty databases."""

    bin_dir: Path
    base: Path
    port: int = 0
    started_in: float = 0.0  # seconds for initdb + start, reported by the session fixture
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        as_root = os.geteuid() == 0  # the server must not run as root
        return subprocess.run(
            list(args),
            cwd=self.base,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            user=SERVER_USER if as_root else None,
            group=SERVER_USER if as_root else None,
            extra_groups=[] if as_root else None,
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}"
            )

    def start(self) -> None:
        """initdb, then start on a free port (retrying if another process took the port)."""
        t0 = time.perf_counter()
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.base, SERVER_USER, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER, SERVER_USER)
        self._check(
            self._run(
                str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust",
                "-U", DB_USER, "--encoding", "UTF8", "--locale", "C", "--no-sync",
            ),
            "initdb",
        )  # fmt: skip
        last: RuntimeError | None = None
        for _attempt in range(3):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
                "-c max_connections=200"
            )
            result = self._run(
                str(self.bin_dir / "pg_ctl"), "-w", "-t", "60", "-D", str(self.data_dir),
                "-l", str(self.log_file), "-o", options, "start",
            )  # fmt: skip
            try:
                self._check(result, "pg_ctl start")
            except RuntimeError as exc:
                last = exc
                continue
            self.started_in = time.perf_counter() - t0
            return
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop the server (fast mode) and delete its directory."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                pg_ctl = str(self.bin_dir / "pg_ctl")
                self._run(pg_ctl, "stop", "-m", "fast", "-D", str(self.data_dir))
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname``."""
        return f"host=127.0.0.1 port={self.port} user={DB_USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of ``dbname``."""
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a new empty database (UTF8, C collation) and return its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        sql = f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if conn.info.server_version >= 150000:
                # Copying the few template files is ~5x faster than WAL-logging every block.
                sql += " STRATEGY FILE_COPY"
            conn.execute(sql)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, cutting off any connection a test left open."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server() -> PostgresServer:
    """Find the binaries, make a temp dir and start a server in it.

    Raises:
        PostgresUnavailable: the binaries are missing.
        RuntimeError: they are there but the server would not start (the log is attached).
    """
    bin_dir = find_pg_bin()
    base = Path(tempfile.mkdtemp(prefix="ill-tui-pg-"))
    server = PostgresServer(bin_dir=bin_dir, base=base)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
