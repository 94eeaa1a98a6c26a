"""A throw-away Index Data Zebra SRU server for the test session, built from tests/data/sru.

It does what ``../shared/sru/start-zebra.sh`` does, from files inside the repository so a fresh
clone passes without ``../shared``: convert the MARC records to UTF-8 MARCXML with
``yaz-marcdump``, index them with ``zebraidx`` into a temporary work directory, and serve them
with ``zebrasrv`` on 127.0.0.1 at a free port (SRU and Z39.50 share the port).

Two databases (the SRU path is the database name):

- ``biblio``: every record in ``tests/data/sru/records`` (3,689), a union catalog.
- ``local``: the British Library records only (99, with real 852 holdings), our own catalog.

Indexing takes 7-40 s on two busy cores, so the built register is kept in a cache directory
(``default_cache_dir()``; ``ILL_TUI_ZEBRA_CACHE=off`` switches it off) keyed by a hash of the
configuration, the records and the Zebra version, and copied into the work directory next time.

``zebrasrv`` runs in the foreground in threaded mode (``-T``), so one process is the whole server
and stopping it leaves nothing behind; on Linux it also gets SIGTERM if the test process dies.
``ZebraServer.start_replica()`` starts a second ``zebrasrv`` over the same register on another
port, which a test may stop to see a catalog go away while the main one keeps answering.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import platformdirs

DATA = Path(__file__).parent / "data" / "sru"
CONF = DATA / "conf"
RECORDS = DATA / "records"

#: database name -> record files (relative to tests/data/sru/records) it is built from
DEFAULT_DATABASES: Mapping[str, Sequence[str]] = {
    "biblio": (
        "lc-booksall-2016-part01-sample.mrc",
        "marc2bibframe2-dataset/british_library.xml",
        "marc2bibframe2-dataset/dnb.xml",
        "marc2bibframe2-dataset/gwu.xml",
        "marc2bibframe2-dataset/loc_general.xml",
        "marc2bibframe2-dataset/nlm.xml",
        "marc2bibframe2-dataset/oclc.xml",
        "marc2bibframe2-dataset/princeton.xml",
    ),
    "local": ("marc2bibframe2-dataset/british_library.xml",),
}

BINARIES = ("zebraidx", "zebrasrv", "yaz-marcdump")
PACKAGES = "idzebra-2.0-utils idzebra-2.0-common libidzebra-2.0-mod-dom yaz"


class ZebraUnavailable(RuntimeError):
    """Zebra (or YAZ, or Zebra's DOM filter module) is not installed."""


def find_module_dir() -> Path:
    """The directory holding Zebra's ``mod-dom.so`` (Debian: libidzebra-2.0-mod-dom).

    Raises:
        ZebraUnavailable: a binary, the Bib-1 tables or the DOM module is missing.
    """
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        raise ZebraUnavailable(
            f"Zebra is not installed: {', '.join(missing)} not on PATH "
            f"(Debian: apt-get install {PACKAGES})"
        )
    if not Path("/usr/share/idzebra-2.0/tab/bib1.att").exists():
        raise ZebraUnavailable(
            "Zebra's tables are missing: no /usr/share/idzebra-2.0/tab/bib1.att "
            "(Debian: apt-get install idzebra-2.0-common)"
        )
    for pattern in (
        "usr/lib/*/idzebra-2.0/modules/mod-dom.so",
        "usr/lib/idzebra-2.0/modules/mod-dom.so",
    ):
        for hit in sorted(Path("/").glob(pattern)):
            return hit.parent
    raise ZebraUnavailable(
        "Zebra's DOM filter is missing: no idzebra-2.0/modules/mod-dom.so "
        "(Debian: apt-get install libidzebra-2.0-mod-dom)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: a pytest killed with SIGKILL must not leave zebrasrv running.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ZebraProcess:
    """One running ``zebrasrv`` (threaded mode) listening on ``127.0.0.1:port``."""

    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def url(self, database: str = "biblio") -> str:
        """The SRU base URL of ``database`` on this server."""
        return f"http://127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class ZebraServer:
    """The session's Zebra: a work directory with the register and the main server in it."""

    base: Path
    module_dir: Path
    databases: dict[str, int] = field(default_factory=dict)  # name -> records indexed
    main: ZebraProcess | None = None
    replicas: list[ZebraProcess] = field(default_factory=list)
    converted_in: float = 0.0
    indexed_in: float = 0.0
    started_in: float = 0.0  # whole start: conversion + indexing + server answering
    from_cache: bool = False  # the register was copied from the cache, not indexed now

    @property
    def port(self) -> int:
        assert self.main is not None, "the server is not running"
        return self.main.port

    def url(self, database: str = "biblio") -> str:
        """The SRU base URL of ``database`` on the main server."""
        assert self.main is not None, "the server is not running"
        return self.main.url(database)

    # ------------------------------------------------------------------ building
    def _subst(self, template: Path, target: Path, port: int) -> None:
        text = template.read_text(encoding="utf-8")
        for key, value in {
            "@CONFDIR@": str(CONF),
            "@WORKDIR@": str(self.base),
            "@MODDIR@": str(self.module_dir),
            "@HOST@": "127.0.0.1",
            "@PORT@": str(port),
            "@DB@": "biblio",
        }.items():
            text = text.replace(key, value)
        target.write_text(text, encoding="utf-8")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=self.base, capture_output=True, text=True, check=False, timeout=600
        )
        if result.returncode != 0:
            log = self.base / "zebraidx.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{tail}"
            )
        return result

    def _to_marcxml(self, source: Path, out: Path) -> int:
        """Convert one ISO 2709 or MARCXML file to UTF-8 MARCXML; return its record count."""
        if source.suffix.lower() == ".xml":
            args = ["yaz-marcdump", "-i", "marcxml", "-o", "marcxml", str(source)]
        else:
            # The LC sample is UTF-8 (leader/09 'a'); MARC-8 files would need -f marc-8 -l 9=97.
            charset = "utf-8" if source.read_bytes()[9:10] == b"a" else "marc-8"
            args = ["yaz-marcdump", "-i", "marc", "-o", "marcxml", "-f", charset, "-t", "utf-8"]
            if charset != "utf-8":
                args += ["-l", "9=97"]
            args.append(str(source))
        with out.open("wb") as sink:
            result = subprocess.run(args, stdout=sink, stderr=subprocess.PIPE, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"yaz-marcdump failed on {source}: {result.stderr[:500]!r}")
        return out.read_bytes().count(b"<record")

    def build(self, databases: Mapping[str, Sequence[str]]) -> None:
        """Convert and index every database's records into a fresh register."""
        for sub in ("register", "lock", "tmp"):
            (self.base / sub).mkdir()
        self._subst(CONF / "zebra.cfg.in", self.base / "zebra.cfg", 0)
        t0 = time.perf_counter()
        converted: dict[str, Path] = {}
        for name, files in databases.items():
            folder = self.base / "records" / name
            folder.mkdir(parents=True)
            total = 0
            for i, rel in enumerate(files):
                out = folder / f"{i:03d}-{Path(rel).stem}.xml"
                total += self._to_marcxml(RECORDS / rel, out)
            converted[name] = folder
            self.databases[name] = total
        t1 = time.perf_counter()
        self._run("zebraidx", "-c", "zebra.cfg", "-l", "zebraidx.log", "init")
        for name, folder in converted.items():
            self._run(
                "zebraidx", "-c", "zebra.cfg", "-l", "zebraidx.log", "-d", name, "update",
                str(folder),
            )  # fmt: skip
        self.converted_in = t1 - t0
        self.indexed_in = time.perf_counter() - t1

    # ------------------------------------------------------------------ serving
    def _serve(self, label: str) -> ZebraProcess:
        last: Exception | None = None
        for _attempt in range(3):
            port = free_port()
            config = self.base / f"yazgfs-{label}.xml"
            self._subst(CONF / "yazgfs.xml.in", config, port)
            # Each zebrasrv keeps its pid in its lock directory and refuses to start when one
            # is there, so every server gets its own; they share the (read-only) register.
            lock_dir = self.base / f"lock-{label}"
            lock_dir.mkdir(exist_ok=True)
            zebra_cfg = self.base / f"zebra-{label}.cfg"
            zebra_cfg.write_text(
                (self.base / "zebra.cfg")
                .read_text(encoding="utf-8")
                .replace(f"lockDir: {self.base}/lock", f"lockDir: {lock_dir}"),
                encoding="utf-8",
            )
            config.write_text(
                config.read_text(encoding="utf-8").replace(
                    f"<config>{self.base}/zebra.cfg</config>", f"<config>{zebra_cfg}</config>"
                ),
                encoding="utf-8",
            )
            log = self.base / f"zebrasrv-{label}.log"
            process = subprocess.Popen(
                ["zebrasrv", "-T", "-f", str(config), "-l", str(log)],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            server = ZebraProcess(process=process, port=port, log_file=log)
            try:
                self._wait_until_answering(server)
            except RuntimeError as exc:
                server.stop()
                last = exc
                continue
            return server
        assert last is not None
        raise last

    def _wait_until_answering(self, server: ZebraProcess, wait: float = 30.0) -> None:
        probe = {
            "version": "1.2",
            "operation": "searchRetrieve",
            "query": "cql.allRecords=1",
            "maximumRecords": "0",
        }
        deadline = time.monotonic() + wait
        with httpx.Client(timeout=2.0, verify=False) as client:  # plain HTTP on loopback
            while True:
                if not server.running:
                    log = server.log_file.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"zebrasrv exited ({server.process.returncode}):\n{log}")
                try:
                    answer = client.get(server.url("biblio"), params=probe)
                    if b"numberOfRecords>" in answer.content:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"zebrasrv did not answer on port {server.port} in {wait}s")
                time.sleep(0.05)

    # ------------------------------------------------------------------ register cache
    def _cache_key(self, databases: Mapping[str, Sequence[str]]) -> str:
        digest = hashlib.sha256()
        version = subprocess.run(["zebraidx", "-V"], capture_output=True, check=False)
        digest.update(version.stdout + version.stderr)
        for path in sorted(CONF.iterdir()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        for name, files in databases.items():
            digest.update(b"\0db:" + name.encode())
            for rel in files:
                digest.update(b"\0" + rel.encode() + b"\0" + (RECORDS / rel).read_bytes())
        return digest.hexdigest()[:24]

    def _restore(self, cached: Path) -> bool:
        meta = cached / "databases.json"
        if not (cached / "register").is_dir() or not meta.is_file():
            return False
        for sub in ("lock", "tmp"):
            (self.base / sub).mkdir()
        self._subst(CONF / "zebra.cfg.in", self.base / "zebra.cfg", 0)
        shutil.copytree(cached / "register", self.base / "register")
        self.databases = {str(k): int(v) for k, v in json.loads(meta.read_text()).items()}
        return True

    def _save(self, cached: Path) -> None:
        # Write next to the final place, then rename: a half-written cache is never used.
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=cached.parent))
        try:
            shutil.copytree(self.base / "register", staging / "register")
            (staging / "databases.json").write_text(json.dumps(self.databases))
            staging.rename(cached)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another session won the race

    def _count(self, database: str) -> int:
        assert self.main is not None
        probe = {"version": "1.2", "operation": "searchRetrieve", "query": "cql.allRecords=1",
                 "maximumRecords": "0"}  # fmt: skip
        # verify=False: plain HTTP on loopback, and it spares loading the CA store (~0.3 s)
        with httpx.Client(timeout=10, verify=False) as client:
            answer = client.get(self.main.url(database), params=probe).text
        found = re.search(r"numberOfRecords>(\d+)<", answer)
        return int(found.group(1)) if found else -1

    def start(
        self, databases: Mapping[str, Sequence[str]] = DEFAULT_DATABASES, cache: Path | None = None
    ) -> None:
        """Build (or restore from ``cache``) the register and start the main server.

        A register restored from the cache is checked by counting each database's records
        over SRU; if a count is off, the cache entry is deleted and the register rebuilt.
        """
        t0 = time.perf_counter()
        cached = cache / self._cache_key(databases) if cache is not None else None
        if cached is not None and self._restore(cached):
            self.from_cache = True
            self.main = self._serve("main")
            if all(self._count(db) == n for db, n in self.databases.items()):
                self.started_in = time.perf_counter() - t0
                return
            self.main.stop()  # a damaged cache: forget it and build from scratch
            shutil.rmtree(cached, ignore_errors=True)
            for sub in ("register", "lock", "tmp", "lock-main"):
                shutil.rmtree(self.base / sub, ignore_errors=True)
            self.from_cache, self.databases = False, {}
        self.build(databases)
        if cached is not None:
            self._save(cached)
        self.main = self._serve("main")
        self.started_in = time.perf_counter() - t0

    def start_replica(self) -> ZebraProcess:
        """Start another ``zebrasrv`` over the same register on another port.

        The caller may stop it (``ZebraProcess.stop``); ``stop`` stops it in any case.
        """
        replica = self._serve(f"replica{len(self.replicas) + 1}")
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        """Stop every server started here and delete the work directory; safe to call twice."""
        try:
            for process in [*self.replicas, *([self.main] if self.main else [])]:
                process.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def default_cache_dir() -> Path | None:
    """Where built registers are kept between sessions, or ``None`` when switched off.

    ``ILL_TUI_ZEBRA_CACHE`` names the directory; ``0``/``off`` switches the cache off. The
    default is ``<user cache dir>/ill-tui/test-zebra``. An entry is keyed by a hash of the
    configuration, the record files and the Zebra version, so any change rebuilds.
    """
    setting = os.environ.get("ILL_TUI_ZEBRA_CACHE", "").strip()
    if setting.lower() in ("0", "off", "no", "false"):
        return None
    if setting:
        return Path(setting).expanduser()
    return Path(platformdirs.user_cache_dir("ill-tui", appauthor=False)) / "test-zebra"


def start_server(
    databases: Mapping[str, Sequence[str]] = DEFAULT_DATABASES, cache: Path | None | bool = True
) -> ZebraServer:
    """Find Zebra, make a temp work directory, index ``databases`` and serve them.

    Indexing the 3,689 records takes 7-40 s on two busy cores, so the built register is
    kept in ``default_cache_dir()`` and copied into the work directory next time
    (``cache=False`` or ``ILL_TUI_ZEBRA_CACHE=off`` always indexes).

    Raises:
        ZebraUnavailable: Zebra, YAZ or the DOM module is not installed.
        RuntimeError: they are installed but indexing or starting failed (log attached).
    """
    module_dir = find_module_dir()
    base = Path(tempfile.mkdtemp(prefix="ill-tui-zebra-"))
    server = ZebraServer(base=base, module_dir=module_dir)
    cache_dir = default_cache_dir() if cache is True else (cache or None)
    try:
        server.start(databases, cache_dir)
    except BaseException:
        server.stop()
        raise
    return server


if __name__ == "__main__":  # manual use: python tests/zebra_server.py  (Ctrl-C stops it)

    def _interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    # SIGTERM (kill PID) stops the servers and removes the work directory, like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    zebra = start_server()
    print(
        f"Zebra on {zebra.url('biblio')} and {zebra.url('local')}: {zebra.databases}; "
        f"{'register from cache' if zebra.from_cache else f'indexed in {zebra.indexed_in:.2f}s'}, "
        f"answering after {zebra.started_in:.2f}s",
        flush=True,
    )
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        zebra.stop()
