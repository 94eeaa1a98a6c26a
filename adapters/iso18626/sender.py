"""The outbox sender: posts pending ISO 18626 messages to partners over httpx.

``OutboxSender.run`` is a loop for an asyncio task (``ill-tui serve`` starts one beside the
endpoint; the app starts one as a worker). Each pass asks ``services.outbox`` which messages
are due (the oldest pending one per partner), claims each, posts its stored bytes, reads the
confirmation with the codec and records the outcome; partners are served concurrently, each
partner's messages strictly one after another. Database work runs in threads, so the event
loop keeps serving HTTP while SQLite or PostgreSQL is busy.

What the partner gets is always the stored body, byte for byte: a retry is the same message
again, which the partner recognises as a repeat, never a second, different message.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.iso18626 import codec
from ill_tui import protocol as p
from ill_tui.clock import Clock, utcnow
from ill_tui.db import session_scope
from ill_tui.services import outbox

log = logging.getLogger("ill_tui.outbox")

CONTENT_TYPE = "application/xml; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the partner said to one post: a confirmation, or why there was none.

    Attributes:
        confirmation: the parsed confirmation, or ``None`` when the attempt failed.
        raw: the confirmation's XML as received (stored with the message).
        failure: in words staff understand, why there is no confirmation.
    """

    confirmation: p.Confirmation | None = None
    raw: str = ""
    failure: str = ""


_CONFIRMATIONS = (
    p.RequestConfirmation,
    p.SupplyingAgencyMessageConfirmation,
    p.RequestingAgencyMessageConfirmation,
)


async def post_message(
    client: httpx.AsyncClient, url: str, body: bytes, *, connect_timeout: float, read_timeout: float
) -> Answer:
    """Post one message and read the partner's confirmation.

    Every way the post can fail comes back as ``Answer.failure`` (never an exception): the
    connection refused or timed out, no answer in time, an HTTP error status, or an answer that
    is not an ISO 18626 confirmation.
    """
    try:
        response = await client.post(url, content=body, headers={"Content-Type": CONTENT_TYPE})
    except httpx.ConnectTimeout:
        return Answer(failure=f"no connection to {url} within {connect_timeout:g} s")
    except httpx.ConnectError as exc:
        return Answer(failure=f"cannot connect to {url} ({_first_line(exc) or 'refused'})")
    except httpx.ReadTimeout:
        return Answer(failure=f"no answer from {url} within {read_timeout:g} s")
    except httpx.TimeoutException:
        return Answer(failure=f"{url} timed out")
    except httpx.HTTPError as exc:
        return Answer(failure=f"{type(exc).__name__} talking to {url}: {_first_line(exc)}")
    text = response.content
    if response.status_code != 200:
        snippet = _first_line(text.decode("utf-8", "replace"))[:200]
        return Answer(failure=f"HTTP {response.status_code} from {url}: {snippet}".rstrip(": "))
    try:
        parsed = codec.parse(text, require_request_id=False)
    except codec.Iso18626Error as exc:
        return Answer(failure=f"the answer from {url} is not an ISO 18626 confirmation: {exc}")
    if not isinstance(parsed.message, _CONFIRMATIONS):
        kind = parsed.message.kind
        return Answer(failure=f"{url} answered with a {kind}, not a confirmation")
    return Answer(confirmation=parsed.message, raw=text.decode("utf-8", "replace"))


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else ""


class OutboxSender:
    """Delivers the outbox of one database until told to stop.

    Args:
        engine: the database whose outbox to deliver.
        policy: backoff schedule, attempt limit and claim lease.
        clock: where "now" comes from (``next_attempt_at`` is computed from it).
        connect_timeout: seconds to wait for a partner's TCP connection.
        read_timeout: seconds to wait for a partner's confirmation.
        poll_interval: seconds between looks at an idle outbox (new messages written by staff
            are picked up within this time).
        periodic: called with "now", in a thread, every ``periodic_every`` seconds; the rota
            timeout check goes here.
        periodic_every: see ``periodic``.
        max_partners: how many partners are posted to at the same time.
        transport: an httpx transport (tests); the default opens real connections.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        policy: outbox.RetryPolicy | None = None,
        clock: Clock = utcnow,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        poll_interval: float = 1.0,
        periodic: Callable[[datetime], object] | None = None,
        periodic_every: float = 300.0,
        max_partners: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy or outbox.RetryPolicy()
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.poll_interval = poll_interval
        self.periodic = periodic
        self.periodic_every = periodic_every
        self.transport = transport
        self._slots = asyncio.Semaphore(max_partners)
        self._wake = asyncio.Event()
        self._last_periodic: datetime | None = None

    def _client(self) -> httpx.AsyncClient:
        timeout = httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )
        # httpx writes the headers and the body of a POST in two sends; without TCP_NODELAY,
        # Nagle's algorithm holds the body until the partner's delayed ACK (~40 ms a message).
        transport = self.transport or httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        return httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    def wake(self) -> None:
        """Look at the outbox now rather than after the poll interval (call on the loop)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an attempt under way is finished first."""
        log.info("outbox sender started")
        async with self._client() as client:
            while not stop.is_set():
                try:
                    await self._maybe_periodic()
                    attempted = await self.deliver_due(client)
                except Exception:  # keep delivering: a database hiccup must not end the loop
                    log.exception("outbox pass failed; trying again in %.1f s", self.poll_interval)
                    attempted = 0
                if attempted:
                    continue  # the next messages of those partners may be due now
                await self._sleep(stop)
        log.info("outbox sender stopped")

    async def _sleep(self, stop: asyncio.Event) -> None:
        delay = self.poll_interval
        wake_at = await anyio.to_thread.run_sync(self._next_wake)
        if wake_at is not None:
            delay = max(0.0, min(delay, (wake_at - self.clock()).total_seconds()))
        self._wake.clear()
        stopping = asyncio.ensure_future(stop.wait())
        waking = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopping, waking}, timeout=delay or 0.01)
        finally:
            stopping.cancel()
            waking.cancel()

    def _next_wake(self) -> datetime | None:
        with session_scope(self.engine) as session:
            return outbox.next_wake(session)

    async def _maybe_periodic(self) -> None:
        if self.periodic is None:
            return
        now = self.clock()
        every = timedelta(seconds=self.periodic_every)
        if self._last_periodic is not None and now - self._last_periodic < every:
            return
        self._last_periodic = now
        periodic = self.periodic
        try:
            await anyio.to_thread.run_sync(lambda: periodic(now))
        except Exception:
            log.exception("periodic outbox task failed")

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """One pass: post the due head of every partner; return how many were attempted."""
        now = self.clock()
        due = await anyio.to_thread.run_sync(self._due, now)
        if not due:
            return 0
        results = await asyncio.gather(*(self._deliver_one(client, mid) for mid in due))
        return sum(results)

    def _due(self, now: datetime) -> list[int]:
        with session_scope(self.engine) as session:
            return outbox.due_messages(session, now=now)

    def _claim(self, message_id: int) -> outbox.Outgoing | None:
        with session_scope(self.engine) as session:
            return outbox.claim(session, message_id, now=self.clock(), policy=self.policy)

    async def _deliver_one(self, client: httpx.AsyncClient, message_id: int) -> int:
        """Deliver ``message_id`` and then the partner's next messages while they are due."""
        async with self._slots:
            outgoing = await anyio.to_thread.run_sync(self._claim, message_id)
            attempted = 0
            while outgoing is not None:  # None: another sender has it, or it is not due
                if not outgoing.url:
                    answer = Answer(
                        failure=f"partner {outgoing.peer} has no ISO 18626 endpoint URL"
                    )
                    final = True
                else:
                    answer = await post_message(
                        client,
                        outgoing.url,
                        outgoing.body,
                        connect_timeout=self.connect_timeout,
                        read_timeout=self.read_timeout,
                    )
                    final = False
                # Recording this attempt and claiming the partner's next message share one
                # transaction: one commit per message while a partner's backlog drains.
                recorded, following = await anyio.to_thread.run_sync(
                    self._record_and_claim_next, outgoing, answer, final
                )
                _log_attempt(outgoing, answer, recorded, self.clock())
                attempted += 1
                outgoing = following
            return attempted

    def _record_and_claim_next(
        self, outgoing: outbox.Outgoing, answer: Answer, final: bool
    ) -> tuple[outbox.Recorded, outbox.Outgoing | None]:
        now = self.clock()
        with session_scope(self.engine) as session:
            recorded = self._record(session, outgoing, answer, final, now)
            if recorded.outcome is not outbox.Outcome.SENT or outgoing.partner_id is None:
                return recorded, None
            due = outbox.due_messages(session, now=now, partner_id=outgoing.partner_id)
            following = outbox.claim(session, due[0], now=now, policy=self.policy) if due else None
            return recorded, following

    def _record(
        self,
        session: Session,
        outgoing: outbox.Outgoing,
        answer: Answer,
        final: bool,
        now: datetime,
    ) -> outbox.Recorded:
        confirmation = answer.confirmation
        if confirmation is None:
            return outbox.record_failure(
                session, outgoing.id, now=now, error=answer.failure, policy=self.policy, final=final
            )
        error = confirmation.error_data
        return outbox.record_confirmation(
            session,
            outgoing.id,
            now=now,
            ok=p.is_ok(confirmation),
            confirmation=answer.raw,
            error_type=error.error_type.value if error else None,
            error_value=error.error_value if error else None,
        )


def _log_attempt(
    outgoing: outbox.Outgoing, answer: Answer, recorded: outbox.Recorded, now: datetime
) -> None:
    what = f"out #{outgoing.id} {outgoing.kind} to {outgoing.peer}"
    if outgoing.request_id is not None:
        what += f" (request {outgoing.request_id})"
    outcome = recorded.outcome
    if outcome is outbox.Outcome.SENT:
        log.info("%s: sent, confirmed OK", what)
    elif outcome is outbox.Outcome.REFUSED:
        error = answer.confirmation.error_data if answer.confirmation else None
        words = f"{error.error_type}: {error.error_value}" if error else "no reason"
        log.warning("%s: refused by the partner (%s); failed", what, words)
    elif outcome is outbox.Outcome.RETRY:
        wait = (recorded.next_attempt_at - now).total_seconds() if recorded.next_attempt_at else 0
        log.info(
            "%s: %s; attempt %d, next in %.0f s", what, answer.failure, outgoing.attempts + 1, wait
        )
    elif outcome is outbox.Outcome.GAVE_UP:
        log.warning(
            "%s: %s; gave up after %d attempts", what, answer.failure, outgoing.attempts + 1
        )
    else:
        log.info("%s: cancelled while it was being sent", what)
