"""ISO 18626 inbound benchmark: messages per second into a real ``ill-tui serve`` (SQLite).

Prints, measured in the same run:
- over loopback: N distinct ISO 18626 requests from a known partner POSTed to
  ``ill-tui serve --no-sender`` on a fresh SQLite file by C concurrent keep-alive
  connections (a small asyncio HTTP/1.1 client, one request at a time per connection, as a
  partner's outbox sends); messages per second (OK confirmations only, each answer parsed in
  full after the clock stops), latency percentiles, and the CPU time per message of the
  server and of the load generator (they share the machine). Twice: with ``serve --cpu``
  on one CPU and the load generator on another (a server that gives serve a CPU, the
  partners elsewhere), and with both free to use every CPU;
- in process: the same work the endpoint does per message, without HTTP: parse (the codec's
  safe, lenient reader), the exchange service's ``receive`` (authenticate, dedupe, store and
  apply in one transaction) and building the XSD-validated confirmation; and each part alone,
  plus XSD validation of the inbound bytes for reference, and ``receive_many`` (group commit:
  one transaction per batch, as the endpoint stores messages) in batches as large as the
  number of connections, the largest the server can form;
- the ratios of the rates, and the verdict against the target (1,000 messages/s).

Figures are printed, never asserted. The machine's load matters: run it on a quiet machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_PER_S = 1000.0
RUNS = 3
ROOT = Path(__file__).resolve().parent.parent
US = ("ISIL", "US-BENCH-LEND")
PARTNER = ("ISIL", "US-BENCH-BORROW")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bodies(prefix: str, n: int) -> list[bytes]:
    """n distinct, valid ISO 18626 requests from PARTNER to US."""
    from adapters.iso18626 import codec
    from ill_tui import protocol as p

    now = datetime.now(UTC)
    bodies = []
    for i in range(n):
        message = p.IllRequest(
            header=p.Header(
                supplying_agency_id=p.AgencyId(type=US[0], value=US[1]),
                requesting_agency_id=p.AgencyId(type=PARTNER[0], value=PARTNER[1]),
                timestamp=now,
                requesting_agency_request_id=f"{prefix}-{i}",
            ),
            bibliographic_info=p.BibliographicInfo(
                title=f"Benchmark title {i}",
                author="Melville, Herman",
                bibliographic_item_ids=(p.BibliographicItemId(code="ISBN", value="9780142437247"),),
            ),
            publication_info=p.PublicationInfo(publisher="Penguin", publication_date="2003"),
            service_info=p.ServiceInfo(service_type=p.ServiceType.LOAN),
        )
        bodies.append(codec.build(message))
    return bodies


def _database(path: Path) -> str:
    """A fresh, migrated SQLite file that knows PARTNER; returns its URL."""
    from ill_tui.config import sqlite_url
    from ill_tui.db import open_database, session_scope
    from ill_tui.models import Partner

    url = sqlite_url(path)
    engine = open_database(url)
    with session_scope(engine) as session:
        session.add(
            Partner(
                agency_id_type=PARTNER[0],
                agency_id_value=PARTNER[1],
                name="Benchmark Borrower",
                country="US",
                currency="USD",
            )
        )
    engine.dispose()
    return url


# ---------------------------------------------------------------------------- over HTTP


def _start_serve(url: str, port: int, log: Path, cpu: int | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ILL_TUI_AGENCY_ID_TYPE": US[0],
        "ILL_TUI_AGENCY_ID": US[1],
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ill_tui.cli", "serve", "--db", url, "--port", str(port),
             "--no-sender", *(("--cpu", str(cpu)) if cpu is not None else ())],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ill-tui serve exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("ill-tui serve did not start listening")


async def _post_all(
    port: int, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], list[tuple[int, bytes]]]:
    """POST every body over ``concurrency`` keep-alive connections, one request at a time each.

    A small HTTP/1.1 client on asyncio streams, so that the load generator, which shares the
    machine with the server, spends little of it. Returns (seconds, per-message latencies,
    (status, body) of each answer); the answers are checked after the clock has stopped.
    """
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                writer.write(
                    b"POST /iso18626 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/xml\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                answers.append((status, answer))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, answers


def _confirmed_ok(answers: list[tuple[int, bytes]]) -> int:
    """How many answers are HTTP 200 with an OK RequestConfirmation (parsed in full)."""
    from adapters.iso18626 import codec
    from ill_tui import protocol as p

    ok = 0
    for status, body in answers:
        if status == 200:
            answer = codec.parse(body, require_request_id=False).message
            if isinstance(answer, p.RequestConfirmation) and p.is_ok(answer):
                ok += 1
    return ok


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(
    directory: Path, n: int, concurrency: int, run: int = 0, cpus: tuple[int, int] | None = None
) -> dict[str, float]:
    """Messages/s into a real ill-tui serve, with latencies and CPU time per message."""
    url = _database(directory / f"http-{run}.db")
    port = _free_port()
    proc = _start_serve(url, port, directory / "serve.log", cpu=cpus[0] if cpus else None)
    allowed = os.sched_getaffinity(0)
    if cpus:  # the load generator on the other CPU, as if the partners were elsewhere
        os.sched_setaffinity(0, {cpus[1]})
    try:
        asyncio.run(_post_all(port, _bodies("warm", 50), concurrency))  # connections, caches
        bodies = _bodies("http", n)
        server_cpu, client_cpu = _cpu_seconds(proc.pid), time.process_time()
        seconds, latencies, answers = asyncio.run(_post_all(port, bodies, concurrency))
        server_cpu = _cpu_seconds(proc.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        os.sched_setaffinity(0, allowed)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    ok = _confirmed_ok(answers)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "rate": ok / seconds,
        "ok": ok,
        "p50": statistics.median(ms),
        "p95": ms[int(0.95 * (len(ms) - 1))],
        "max": ms[-1],
        "server_cpu": server_cpu / n,
        "client_cpu": client_cpu / n,
    }


# ---------------------------------------------------------------------------- in process


def in_process(directory: Path, n: int, batch: int) -> dict[str, float]:
    """Per-message seconds of each part of the endpoint's work, sequentially, no HTTP."""
    from adapters.iso18626 import codec
    from adapters.iso18626.port import Iso18626Codec
    from ill_tui import protocol as p
    from ill_tui.config import Settings
    from ill_tui.db import open_database
    from ill_tui.services import exchange

    url = _database(directory / "inproc.db")
    engine = open_database(url)
    settings = Settings(database_url=url, agency_id_type=US[0], agency_id_value=US[1])
    port = Iso18626Codec()
    bodies = _bodies("inproc", n)
    for body in _bodies("warm", 20):  # imports, schema, statement caches
        message = codec.parse(body).message
        assert isinstance(message, p.IllRequest)
        codec.build(exchange.receive(engine, message, body, codec=port, settings=settings))

    started = time.perf_counter()
    parsed = [codec.parse(body).message for body in bodies]
    t_parse = time.perf_counter() - started

    started = time.perf_counter()
    for body in bodies:
        codec.validate(body)
    t_validate = time.perf_counter() - started

    started = time.perf_counter()
    confirmations = []
    for message, body in zip(parsed, bodies, strict=True):
        assert isinstance(message, p.IllRequest)
        confirmations.append(exchange.receive(engine, message, body, codec=port, settings=settings))
    t_receive = time.perf_counter() - started
    assert all(p.is_ok(c) for c in confirmations), "the in-process run was refused"

    started = time.perf_counter()
    for confirmation in confirmations:
        codec.build(confirmation)
    t_build = time.perf_counter() - started

    # the same messages again, new ids, through receive_many: group commit, as the endpoint
    # does it (its batches hold at most one message per connection)
    bodies = _bodies("many", n)
    inbound = [(codec.parse(body).message, body, datetime.now(UTC)) for body in bodies]
    started = time.perf_counter()
    answers = []
    for i in range(0, n, batch):
        answers += exchange.receive_many(
            engine,
            inbound[i : i + batch],  # type: ignore[arg-type]
            codec=port,
            settings=settings,
        )
    t_many = time.perf_counter() - started
    assert all(not isinstance(a, Exception) and p.is_ok(a) for a in answers), "batch refused"
    engine.dispose()
    return {
        "parse": t_parse / n,
        "xsd_validate": t_validate / n,
        "receive": t_receive / n,
        "build_confirmation": t_build / n,
        "receive_many": t_many / n,
    }


def _report_http(title: str, runs: list[dict[str, float]], n: int) -> dict[str, float]:
    http = runs[len(runs) // 2]
    print(title)
    print(f"  {min(r['ok'] for r in runs):.0f} of {n} confirmed OK (the fewest of any run)")
    print(
        f"  {http['rate']:,.0f} messages/s (median of {len(runs)} runs: "
        + ", ".join(f"{r['rate']:,.0f}" for r in runs)
        + ")"
    )
    print(f"  latency ms: p50 {http['p50']:.1f}  p95 {http['p95']:.1f}  max {http['max']:.1f}")
    print(
        f"  CPU per message: server {http['server_cpu'] * 1000:.2f} ms, "
        f"load generator {http['client_cpu'] * 1000:.2f} ms"
    )
    return http


def run(n: int = 2000, concurrency: int = 8) -> int:
    """Run both measurements and print the figures; exit status 0 unless something broke."""
    print(f"ISO 18626 inbound benchmark: {n} requests, {concurrency} connections, SQLite")
    print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    allowed = sorted(os.sched_getaffinity(0))
    cpus = (allowed[-1], allowed[0]) if len(allowed) > 1 else None
    with tempfile.TemporaryDirectory(prefix="ill-bench-iso-") as tmp:
        directory = Path(tmp)
        # Three runs of each, every one on a fresh database and a fresh server, alternating
        # between the two set-ups; the medians are reported.
        pinned: list[dict[str, float]] = []
        free: list[dict[str, float]] = []
        for i in range(RUNS):
            if cpus:
                pinned.append(over_http(directory, n, concurrency, 2 * i, cpus))
            free.append(over_http(directory, n, concurrency, 2 * i + 1))
        parts = in_process(directory, n, concurrency)
    pinned.sort(key=lambda r: r["rate"])
    free.sort(key=lambda r: r["rate"])
    endpoint_work = parts["parse"] + parts["receive"] + parts["build_confirmation"]
    inproc_rate = 1 / endpoint_work
    batched_work = parts["parse"] + parts["receive_many"] + parts["build_confirmation"]
    batched_rate = 1 / batched_work
    print(
        "over loopback into `ill-tui serve` (HTTP/1.1, keep-alive; the load generator: "
        f"{concurrency} asyncio connections, one request at a time on each)"
    )
    rates = {}
    if cpus:
        rates["on a CPU of its own"] = _report_http(
            f"- serve --cpu {cpus[0]}, the load generator on CPU {cpus[1]} (as on a server "
            "that gives serve a CPU, with the partners elsewhere):",
            pinned,
            n,
        )["rate"]
    rates["sharing every CPU"] = _report_http(
        "- serve and the load generator both free to use every CPU:", free, n
    )["rate"]
    print("in process, per message (the endpoint's work without HTTP), one thread:")
    names = {"receive_many": f"receive_many ({concurrency})"}
    for name, seconds in parts.items():
        print(f"  {names.get(name, name):<20} {seconds * 1000:7.2f} ms")
    print(
        f"  parse + receive_many in batches of {concurrency} (one commit per batch, as the "
        f"endpoint stores them) + confirmation: {batched_rate:,.0f} messages/s"
    )
    print(f"  the same with receive, one message per transaction: {inproc_rate:,.0f} messages/s")
    for setup, rate in rates.items():
        print(
            f"ratio HTTP ({setup}) / in process: {rate / batched_rate:.2f} (against batches "
            f"of {concurrency}), {rate / inproc_rate:.2f} (against one per transaction)"
        )
    for setup, rate in rates.items():
        verdict = "meets" if rate >= TARGET_PER_S else "MISSES"
        print(
            f"target >= {TARGET_PER_S:,.0f} messages/s over loopback, serve {setup}: "
            f"{verdict} ({rate:,.0f}/s)"
        )
    return 0 if all(r["ok"] == n for r in pinned + free) else 1
