"""Real ISO 18626 servers on loopback for the transport tests.

* ``ServeProcess``: a real ``ill-tui serve`` subprocess (its own database, a free loopback
  port), started and stopped by the test (SIGTERM, then SIGKILL if it hangs), or killed with
  ``kill()`` (SIGKILL) to test a crash.
* ``ThreadServer``: the endpoint app (``adapters.iso18626.endpoint.make_app``) under uvicorn
  in a thread of the test process, for sender tests that need a partner that is down, comes
  up, or answers in a chosen way. It is a real HTTP server on a real socket.
* ``free_port``: a port nobody listens on right now.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(
    port: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class ServeProcess:
    """``ill-tui serve`` in a subprocess.

    Args:
        db_url: the database it serves (migrated on start).
        agency: our agency id as ``TYPE:VALUE`` (sets ``ILL_TUI_AGENCY_ID_TYPE`` and
            ``ILL_TUI_AGENCY_ID``).
        log_path: where its stdout and stderr go (one line per message).
        port: the port to listen on; a free one when not given.
        env: more environment variables (e.g. the outbox's backoff for a test).
    """

    def __init__(
        self,
        db_url: str,
        *,
        agency: str,
        log_path: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.db_url = db_url
        self.agency = agency
        self.log_path = log_path
        self.port = port or free_port()
        self.env = dict(env or {})
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL partners post to."""
        return f"http://127.0.0.1:{self.port}/iso18626"

    def start(self) -> ServeProcess:
        """Start the server and wait until it accepts connections."""
        agency_type, _, agency_value = self.agency.partition(":")
        env = {
            **os.environ,
            "ILL_TUI_AGENCY_ID_TYPE": agency_type,
            "ILL_TUI_AGENCY_ID": agency_value,
            "ILL_TUI_ENDPOINT_URL": self.url,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **self.env,
        }
        env.pop("ILL_TUI_DATABASE_URL", None)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ill_tui.cli", "serve", "--db", self.db_url,
                 "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()
        try:
            wait_listening(self.port, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for a clean exit (SIGKILL after ``timeout``); return the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def log_text(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ThreadServer:
    """An ASGI app under uvicorn in a background thread, on 127.0.0.1:``port``."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.port}/iso18626"

    def start(self) -> ThreadServer:
        """Start listening (returns once connections are accepted)."""
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            lifespan="on",
        )  # fmt: skip
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only in the main thread; this is not it.
        self._server = server
        self._thread = threading.Thread(target=server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"test server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting, finish what is under way, and join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ThreadServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(server: ServeProcess | ThreadServer) -> Iterator[Any]:
    """Start ``server`` and stop it afterwards, whatever happens."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def post_xml(
    url: str, body: bytes, *, content_type: str = "application/xml", timeout: float = 10.0
) -> httpx.Response:
    """POST ``body`` to ``url`` and return the response."""
    return httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=timeout)
