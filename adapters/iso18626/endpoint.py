"""The inbound ISO 18626 endpoint: a Starlette app that ``ill-tui serve`` runs under uvicorn.

POST ``/iso18626`` (or ``/``) with an ISO 18626 message; the answer is its confirmation,
``application/xml``, with ``X-Request-ID`` set to the message's requestingAgencyRequestId (as
crosslink's illmock does). What is refused before there is a message to confirm gets a plain
HTTP error, as crosslink answers:

* 405 for any method but POST, 415 for a content type other than ``application/xml`` or
  ``text/xml``, 413 for a body over the size limit (counted while reading: a 20 MB body is cut
  off at the limit, never held in memory), 400 ``invalid ISO18626 message`` for bytes that are
  not XML, have a DOCTYPE (XXE, billion laughs), are in another namespace or hold no known
  message, or for a confirmation (confirmations are not answered).
* An ISO 18626 message the protocol cannot act on (unknown action, status or reason, missing
  request id) gets an ERROR confirmation with the XSD's error type, from the codec.
* Everything else goes to the ``Receiver`` (the exchange service, wired in by ``cli.py``),
  which authenticates, stores and applies the message in one transaction and returns the
  confirmation: the message is persisted before it is confirmed. A receiver that fails (the
  database is down) gets a 500, so the partner's outbox tries again later.

The receiver runs in a worker thread, so the event loop keeps accepting connections while
a message is written to the database. With one writer (SQLite), or with a ``receive_many``
(group commit), messages are parsed on the event loop as they arrive (large ones in a
thread), wait in a queue while the writer is busy, and are stored together in the writer's
next turn: one thread hop per batch, and with ``receive_many`` one commit per batch. Each
partner still gets its confirmation only after its message was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from adapters.iso18626 import codec
from ill_tui import protocol as p
from ill_tui.clock import Clock, utcnow

log = logging.getLogger("ill_tui.endpoint")

Receiver = Callable[[p.AgencyMessage, bytes, datetime], p.Confirmation]
"""Applies one inbound message: ``(message, raw bytes, received at) -> confirmation``.

It must store the message and apply it in one transaction before it returns, recognise a
repeated message (same bytes) and confirm it again without applying it twice, and answer
what it refuses with an ERROR confirmation rather than an exception.
"""

BatchReceiver = Callable[
    [Sequence[tuple[p.AgencyMessage, bytes, datetime]]], Sequence[p.Confirmation | Exception]
]
"""Applies several inbound messages at once and returns their confirmations in order.

The same contract as ``Receiver`` for each message; it may store them in one transaction,
but must commit it before it returns, and one refused message must not change another's
confirmation. A message that could not be stored gets its exception in its place (its
partner is answered 500 and sends it again later).
"""

XML_TYPES = ("application/xml", "text/xml")
INVALID = "invalid ISO18626 message"
DEFAULT_MAX_BODY = codec.DEFAULT_MAX_BYTES
PARSE_ON_LOOP = 64 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a thread."""


class _TooLarge(Exception):
    pass


def _content_headers(scope: Scope) -> tuple[str, bytes | None]:
    """The request's media type (lower case, no parameters) and its Content-Length."""
    content_type: bytes | None = None
    declared: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and declared is None:
            declared = value
    media_type = (content_type or b"").decode("latin-1").split(";")[0].strip().lower()
    return media_type, declared


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes (declared or actually sent)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header_value(text: str | None) -> str | None:
    """``text`` if an HTTP header can carry it as it is (printable Latin-1), else None."""
    if not text or not text.isprintable():
        return None
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return text


async def _send_xml(send: Send, body: bytes, request_id: str | None) -> None:
    """Answer 200 with the confirmation ``body``."""
    headers = [(b"content-type", b"application/xml"), (b"content-length", b"%d" % len(body))]
    # The partner's request id is echoed as crosslink does, when a header can hold it: an id
    # in another script or with a line break would make the answer fail after the message
    # was stored, and the partner would send it again and again.
    echoed = header_value(request_id)
    if echoed:
        headers.append((b"x-request-id", echoed.encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request_id(message: p.AgencyMessage | None, header: p.Header | None = None) -> str | None:
    header = header or (message.header if message is not None else None)
    return header.requesting_agency_request_id if header else None


def _peer(header: p.Header | None, kind: p.MessageKind) -> str:
    if header is None:
        return "?"
    sender = (
        header.supplying_agency_id
        if kind is p.MessageKind.SUPPLYING_AGENCY_MESSAGE
        else header.requesting_agency_id
    )
    return str(sender)


def _outcome(confirmation: p.Confirmation) -> str:
    if p.is_ok(confirmation):
        return "OK"
    error = confirmation.error_data
    return f"ERROR {error.error_type}: {error.error_value}" if error else "ERROR"


_Answer = tuple[bytes, str | None, str]  # confirmation bytes, X-Request-ID, log line
_Inbound = tuple[p.AgencyMessage, bytes, datetime]


@dataclass(frozen=True)
class _Answered:
    """A body answered without a receiver (the codec's ERROR confirmation)."""

    answer: _Answer


def make_app(
    receive: Receiver,
    *,
    receive_many: BatchReceiver | None = None,
    clock: Clock = utcnow,
    max_body: int = DEFAULT_MAX_BODY,
    after_receive: Callable[[], None] | None = None,
    background: Callable[[asyncio.Event], Any] | None = None,
    concurrency: int = 16,
    max_batch: int = 64,
    gather: float = 0.001,
) -> Starlette:
    """Build the endpoint.

    Args:
        receive: applies a parsed message and returns its confirmation (runs in a thread).
        receive_many: applies a batch of parsed messages (group commit); when given, every
            message goes through it, in batches of the messages waiting for the writer.
        clock: the confirmation time stamps.
        max_body: the largest body read, in bytes; longer ones get 413.
        after_receive: called on the event loop after each applied message (the outbox
            sender's ``wake``: an answer the message caused goes out at once).
        background: a coroutine function started with the app and given an event that is set
            at shutdown (the outbox sender's ``run``); the app waits for it to finish.
        concurrency: how many messages are parsed and stored at the same time. SQLite takes
            one writer at a time and makes the others sleep and retry, so 1 is fastest there;
            PostgreSQL gains from more. With 1, or with ``receive_many``, one writer handles
            the waiting messages in batches.
        max_batch: the most messages one writer turn takes.
        gather: group commit: after answering a batch, the writer waits up to this many
            seconds for as many more messages as it just answered (partners whose answer
            just went out usually send their next message at once), so that one commit
            serves them all; it starts as soon as that many are waiting, so a partner on its
            own is not held up. Each commit costs about a millisecond and a
            half whatever the batch holds, so fewer, fuller batches cost less per message.
            0 turns it off.
    """
    limiter: anyio.CapacityLimiter | None = None  # made on the loop, at the first message

    def parse(data: bytes, received: datetime) -> _Answered | _Inbound:
        """The parsed message to receive, or the answer when there is nothing to receive."""
        try:
            parsed = codec.parse(data, max_bytes=max_body)
        except codec.InvalidMessage as exc:
            if exc.kind.confirmation is exc.kind:
                raise codec.NotIso18626("a confirmation is not answered") from exc
            confirmation = exc.confirmation(now=clock(), received=received)
            line = f"{exc.kind} from {_peer(exc.header, exc.kind)}: {_outcome(confirmation)}"
            return _Answered((codec.build(confirmation), _request_id(None, exc.header), line))
        message = parsed.message
        if not isinstance(
            message, p.IllRequest | p.SupplyingAgencyMessage | p.RequestingAgencyMessage
        ):
            raise codec.NotIso18626("a confirmation is not answered")
        for warning in parsed.warnings:
            log.debug("%s: %s", message.kind, warning)
        return message, data, received

    def answer(message: p.AgencyMessage, confirmation: p.Confirmation) -> _Answer:
        line = (
            f"{message.kind} from {_peer(message.header, message.kind)} "
            f"{message.header.requesting_agency_request_id}: {_outcome(confirmation)}"
        )
        return codec.build(confirmation), _request_id(message), line

    def handle(data: bytes, received: datetime) -> _Answer:
        """Parse, receive, build the confirmation: everything but HTTP, in a thread."""
        parsed = parse(data, received)
        if isinstance(parsed, _Answered):
            return parsed.answer
        message, _, _ = parsed
        return answer(message, receive(message, data, received))

    def store_batch(items: list[_Inbound]) -> list[p.Confirmation | BaseException]:
        """Receive parsed messages: one ``receive_many``, or ``receive`` for each."""
        if receive_many is not None:
            try:
                return list(receive_many(items))
            except Exception as exc:  # the database is down: every one of them gets a 500
                return [exc] * len(items)
        outcomes: list[p.Confirmation | BaseException] = []
        for message, data, received in items:
            try:
                outcomes.append(receive(message, data, received))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    # The single writer: messages wait here while it is busy, and its next turn takes them
    # all. It runs only while there is work, so nothing is left running at shutdown.
    waiting: list[tuple[_Inbound, asyncio.Future[p.Confirmation]]] = []
    writer: asyncio.Task[None] | None = None

    arrived: asyncio.Event | None = None  # set whenever a message joins ``waiting``

    async def gather_more(wanted: int) -> None:
        """Wait until ``wanted`` messages are waiting, or ``gather`` seconds have passed."""
        assert arrived is not None
        deadline = time.perf_counter() + gather
        while len(waiting) < wanted:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), left)
            except TimeoutError:
                return

    async def write_waiting() -> None:
        nonlocal writer
        answered = 0
        try:
            while True:
                if gather > 0 and answered:
                    await gather_more(min(max_batch, len(waiting) + answered))
                if not waiting:
                    break
                batch = waiting[:max_batch]
                del waiting[:max_batch]
                answered = len(batch)
                try:
                    outcomes = await anyio.to_thread.run_sync(
                        store_batch, [item for item, _ in batch]
                    )
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            writer = None

    async def through_writer(data: bytes, received: datetime) -> _Answer:
        nonlocal writer, arrived
        # A message of usual size is parsed here on the event loop (a fraction of a
        # millisecond), while the writer thread is busy in the database; a large one in a
        # thread of its own, so it does not hold the loop up.
        if len(data) <= PARSE_ON_LOOP:
            parsed = parse(data, received)
        else:
            parsed = await anyio.to_thread.run_sync(parse, data, received)
        if isinstance(parsed, _Answered):
            return parsed.answer
        future: asyncio.Future[p.Confirmation] = asyncio.get_running_loop().create_future()
        waiting.append((parsed, future))
        if arrived is None:  # made on the loop that serves
            arrived = asyncio.Event()
        arrived.set()
        if writer is None:
            writer = asyncio.create_task(write_waiting())
        # shield: a client that goes away must not cancel the others' batch
        confirmation = await asyncio.shield(future)
        return answer(parsed[0], confirmation)

    batched = receive_many is not None or concurrency == 1

    async def answer_http(scope: Scope, receive: Receive) -> Response | _Answer:
        """The confirmation to send, or the HTTP error that refuses the request."""
        content_type, declared = _content_headers(scope)
        if content_type not in XML_TYPES:
            return PlainTextResponse(
                "Content-Type must be application/xml or text/xml", status_code=415
            )
        try:
            data = await _read_body(receive, declared, max_body)
        except _TooLarge:
            log.info("in: refused a body over %d bytes (413)", max_body)
            return PlainTextResponse(
                f"message larger than {max_body} bytes",
                status_code=413,
                headers={"Connection": "close"},
            )
        except ClientDisconnect:
            return PlainTextResponse("client disconnected", status_code=400)
        received = clock()
        started = time.perf_counter()
        nonlocal limiter
        try:
            if batched:
                body, request_id, line = await through_writer(data, received)
            else:
                if limiter is None:
                    limiter = anyio.CapacityLimiter(concurrency)
                body, request_id, line = await anyio.to_thread.run_sync(
                    handle, data, received, limiter=limiter
                )
        except codec.MessageTooLarge:
            return PlainTextResponse(f"message larger than {max_body} bytes", status_code=413)
        except (codec.NotXml, codec.NotIso18626) as exc:
            log.info("in: %s (400): %s", INVALID, exc)
            return PlainTextResponse(INVALID, status_code=400)
        except Exception:
            log.exception("in: the message could not be stored; answered 500")
            return PlainTextResponse(
                "the message could not be stored; send it again later", status_code=500
            )
        log.info("in: %s (%.1f ms)", line, (time.perf_counter() - started) * 1000)
        if after_receive is not None:
            after_receive()
        return body, request_id, line

    class Iso18626Route:
        """POST /iso18626 as a plain ASGI app inside Starlette's routing (which answers 405
        for other methods): the body is read and the answer sent with ASGI messages, without
        a Request and a Response object for every message."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            outcome = await answer_http(scope, receive)
            if isinstance(outcome, Response):
                await outcome(scope, receive, send)
                return
            body, request_id, _line = outcome
            await _send_xml(send, body, request_id)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if background is None:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(background(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    methods = ["POST"]
    endpoint = Iso18626Route()
    routes = [
        Route("/iso18626", endpoint, methods=methods),
        Route("/", endpoint, methods=methods),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
