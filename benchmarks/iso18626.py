"""ISO 18626 inbound benchmark: messages per second into a real ``ill-tui serve`` (SQLite).

Prints, measured in the same run:
- over loopback: N distinct ISO 18626 requests from a known partner POSTed to
  ``ill-tui serve --no-sender`` on a fresh SQLite file by C concurrent keep-alive
  connections; messages per second (OK confirmations only) and latency percentiles;
- in process: the same work the endpoint does per message, without HTTP: parse (the codec's
  safe, lenient reader), the exchange service's ``receive`` (authenticate, dedupe, store and
  apply in one transaction) and building the XSD-validated confirmation; and each part alone,
  plus XSD validation of the inbound bytes for reference;
- the ratio of the two rates, and the verdict against the target (1,000 messages/s).

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


def _start_serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ILL_TUI_AGENCY_ID_TYPE": US[0],
        "ILL_TUI_AGENCY_ID": US[1],
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ill_tui.cli", "serve", "--db", url, "--port", str(port),
             "--no-sender"],
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
    url: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], int]:
    """POST every body; return (seconds, per-message latencies, OK count)."""
    import httpx

    from adapters.iso18626 import codec
    from ill_tui import protocol as p

    transport = httpx.AsyncHTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    ok = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Content-Type": "application/xml"}

    async with httpx.AsyncClient(transport=transport, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal ok
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code == 200:
                    answer = codec.parse(response.content, require_request_id=False).message
                    if isinstance(answer, p.RequestConfirmation) and p.is_ok(answer):
                        ok += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, ok


def over_http(directory: Path, n: int, concurrency: int) -> tuple[float, list[float], int]:
    """Messages/s into a real ill-tui serve; returns (rate, latencies, OK count)."""
    url = _database(directory / "http.db")
    port = _free_port()
    proc = _start_serve(url, port, directory / "serve.log")
    endpoint = f"http://127.0.0.1:{port}/iso18626"
    try:
        asyncio.run(_post_all(endpoint, _bodies("warm", 50), concurrency))  # connections, caches
        bodies = _bodies("http", n)
        seconds, latencies, ok = asyncio.run(_post_all(endpoint, bodies, concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return ok / seconds, latencies, ok


# ---------------------------------------------------------------------------- in process


def in_process(directory: Path, n: int) -> dict[str, float]:
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
    engine.dispose()
    return {
        "parse": t_parse / n,
        "xsd_validate": t_validate / n,
        "receive": t_receive / n,
        "build_confirmation": t_build / n,
    }


def run(n: int = 2000, concurrency: int = 8) -> int:
    """Run both measurements and print the figures; exit status 0 unless something broke."""
    print(f"ISO 18626 inbound benchmark: {n} requests, {concurrency} connections, SQLite")
    print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="ill-bench-iso-") as tmp:
        directory = Path(tmp)
        rate, latencies, ok = over_http(directory, n, concurrency)
        parts = in_process(directory, n)
    ms = sorted(x * 1000 for x in latencies)
    endpoint_work = parts["parse"] + parts["receive"] + parts["build_confirmation"]
    inproc_rate = 1 / endpoint_work
    print("over loopback into `ill-tui serve` (HTTP/1.1, keep-alive):")
    print(f"  {ok} of {n} confirmed OK")
    print(f"  {rate:,.0f} messages/s")
    print(
        f"  latency ms: p50 {statistics.median(ms):.1f}  p95 {ms[int(0.95 * (len(ms) - 1))]:.1f}"
        f"  max {ms[-1]:.1f}"
    )
    print("in process, per message (the endpoint's work without HTTP):")
    for name, seconds in parts.items():
        print(f"  {name:<20} {seconds * 1000:7.2f} ms")
    print(
        f"  parse + receive (validate, store, apply) + confirmation: {inproc_rate:,.0f} messages/s"
    )
    print(f"ratio HTTP / in process: {rate / inproc_rate:.2f}")
    verdict = "meets" if rate >= TARGET_PER_S else "MISSES"
    print(f"target >= {TARGET_PER_S:,.0f} messages/s over loopback: {verdict} ({rate:,.0f}/s)")
    share = parts["receive"] / endpoint_work
    print(f"  (the exchange service's receive is {share:.0%} of the in-process time)")
    return 0 if ok == n else 1
