"""The outbox: delivering stored outbound ISO 18626 messages, in order, with backoff.

Staff actions that the protocol carries write their message as an ``IsoMessage`` (direction
``out``, state ``pending``, the exact XML in ``body``) in the same transaction as the change
of status (``services.exchange``). This module holds the rules for getting those messages to
the partner; ``adapters.iso18626.sender`` does the HTTP and calls these functions, each in its
own short unit of work.

Rules:

* **Order per partner.** Only the oldest pending message (lowest id) of each partner is due; a
  partner's later message waits for its earlier one. A message of a request that has an earlier
  *failed* message waits too (staff decide about the failed one first), but it does not hold
  back the partner's messages about other requests.
* **Claim before sending.** ``claim`` moves ``next_attempt_at`` forward by a lease in one
  conditional UPDATE, so two senders on one database (``ill-tui serve`` and the app) never
  post the same message at the same time. A sender that dies mid-send leaves a claim that
  simply expires; the message is then sent again with the same bytes, which the partner
  recognises as a repeat (never two different messages).
* **Backoff.** After a transport failure (refused, timed out, HTTP error, an answer that is not
  a confirmation) the next attempt is ``base * factor ** (attempts - 1)`` later, capped at
  ``max_delay``: a deterministic schedule, written to ``next_attempt_at``. After
  ``max_attempts`` failed attempts the message is ``failed``.
* **Confirmation.** An OK confirmation makes the message ``sent``; an ERROR one makes it
  ``failed`` at once (sending the same bytes again would get the same answer) and puts a note
  on the request naming the error.
* **Staff.** ``retry_message`` puts a failed message back in the queue (a fresh round of
  attempts, due now); ``cancel_message`` takes a pending or failed one out for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ill_tui.clock import as_utc
from ill_tui.models import IsoMessage, MessageDirection, MessageState, Note, Partner

_OUT = MessageDirection.OUTBOUND.value
_PENDING = MessageState.PENDING.value
_FAILED = MessageState.FAILED.value
_SENT = MessageState.SENT.value
_CANCELLED = MessageState.CANCELLED.value

NOTE_AUTHOR = "outbox"
"""The author of the notes the outbox writes on requests."""


class OutboxError(ValueError):
    """A staff action on a message that its state does not allow; the text says why."""


class MessageNotFound(LookupError):
    """No outbound message has that id."""

    def __init__(self, message_id: int) -> None:
        super().__init__(f"Message {message_id} does not exist.")
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long the sender tries a message the partner did not take.

    Attributes:
        base_delay: wait after the first failed attempt.
        factor: each further failed attempt multiplies the wait by this.
        max_delay: the wait never grows beyond this.
        max_attempts: after this many failed attempts the message is ``failed``.
        lease: how long a claimed message is left alone by other senders; longer than one
            attempt can take (connect + read timeouts).
    """

    base_delay: timedelta = timedelta(seconds=2)
    factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=15)
    max_attempts: int = 100  # with the defaults: about a day of a partner being down
    lease: timedelta = timedelta(seconds=90)

    def __post_init__(self) -> None:
        if self.base_delay <= timedelta(0) or self.max_delay < self.base_delay:
            raise ValueError("RetryPolicy needs 0 < base_delay <= max_delay")
        if self.factor < 1 or self.max_attempts < 1 or self.lease <= timedelta(0):
            raise ValueError("RetryPolicy needs factor >= 1, max_attempts >= 1 and a lease")

    def delay(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts (1 -> ``base_delay``), capped."""
        if attempts < 1:
            return timedelta(0)
        seconds = self.base_delay.total_seconds()
        cap = self.max_delay.total_seconds()
        for _ in range(attempts - 1):
            seconds *= self.factor
            if seconds >= cap:
                return self.max_delay
        return timedelta(seconds=min(seconds, cap))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed message, with everything needed to post it (read once, sent as stored).

    Attributes:
        id: the message's id.
        request_id: the request it belongs to (for log lines and notes).
        partner_id: who it goes to.
        peer: the partner's agency id, ``TYPE:VALUE``.
        url: the partner's ISO 18626 endpoint, or ``None`` when none is configured.
        kind: ``request``, ``supplyingAgencyMessage`` or ``requestingAgencyMessage``.
        summary: a few words for log lines.
        body: the exact bytes to post.
        attempts: attempts made before this one.
    """

    id: int
    request_id: int | None
    partner_id: int | None
    peer: str
    url: str | None
    kind: str
    summary: str
    body: bytes
    attempts: int


class Outcome(StrEnum):
    """What became of one delivery attempt, as ``record_*`` left the message."""

    SENT = "sent"
    REFUSED = "refused"  # ERROR confirmation: failed
    RETRY = "retry"  # transport failure, another attempt is scheduled
    GAVE_UP = "gave_up"  # transport failure, attempts exhausted: failed
    GONE = "gone"  # cancelled by staff (or otherwise taken out) while it was being sent


@dataclass(frozen=True, slots=True)
class Recorded:
    """The result of recording an attempt; ``next_attempt_at`` is set for ``RETRY``."""

    outcome: Outcome
    next_attempt_at: datetime | None = None


# ---------------------------------------------------------------------------- choosing


def due_messages(
    session: Session, *, now: datetime, limit: int = 100, partner_id: int | None = None
) -> list[int]:
    """The ids of the messages to send now: at most one per partner (or of ``partner_id``).

    A partner's head is its lowest-id pending message that is not held back by an earlier
    failed message of the same request; it is due when its ``next_attempt_at`` is empty or
    not after ``now`` (otherwise the partner waits: nothing later of it overtakes the head).
    """
    now = as_utc(now)
    failed_first: dict[int, int] = {
        request_id: first_id
        for request_id, first_id in session.exec(
            select(IsoMessage.request_id, sa.func.min(IsoMessage.id))
            .where(IsoMessage.direction == _OUT, IsoMessage.state == _FAILED)
            .where(col(IsoMessage.request_id).is_not(None))
            .group_by(col(IsoMessage.request_id))
        ).all()
        if request_id is not None and first_id is not None
    }
    pending = (IsoMessage.direction == _OUT, IsoMessage.state == _PENDING)
    # The oldest pending message per partner comes straight from the outbox index.
    heads_query = select(IsoMessage.partner_id, sa.func.min(IsoMessage.id)).where(*pending)
    if partner_id is not None:
        heads_query = heads_query.where(col(IsoMessage.partner_id) == partner_id)
    heads = session.exec(heads_query.group_by(col(IsoMessage.partner_id))).all()
    due: list[int] = []
    for head_partner, head_id in sorted(heads, key=lambda row: row[1] or 0):
        rows = session.exec(
            select(IsoMessage.id, IsoMessage.request_id, IsoMessage.next_attempt_at)
            .where(*pending, col(IsoMessage.id) >= head_id)
            .where(
                col(IsoMessage.partner_id).is_(None)
                if head_partner is None
                else col(IsoMessage.partner_id) == head_partner
            )
            .order_by(col(IsoMessage.id))
            .limit(1 if not failed_first else None)
        )
        for message_id, request_id, next_attempt_at in rows:
            if message_id is None:
                continue
            if request_id is not None and failed_first.get(request_id, message_id) < message_id:
                continue  # waits for staff; the partner's other requests go on
            if next_attempt_at is None or as_utc(next_attempt_at) <= now:
                due.append(message_id)
            break
        if len(due) >= limit:
            break
    return due


def next_wake(session: Session) -> datetime | None:
    """The earliest ``next_attempt_at`` of any pending message (when to look again)."""
    value = session.exec(
        select(sa.func.min(IsoMessage.next_attempt_at)).where(
            IsoMessage.direction == _OUT, IsoMessage.state == _PENDING
        )
    ).one()
    return None if value is None else as_utc(value)


def claim(
    session: Session, message_id: int, *, now: datetime, policy: RetryPolicy
) -> Outgoing | None:
    """Take ``message_id`` for one attempt, or ``None`` if it is not due or someone else has it.

    The claim is one conditional UPDATE (state still pending, not claimed or scheduled later):
    of two senders racing for the same message, exactly one gets it.
    """
    now = as_utc(now)
    taken = session.execute(
        sa.update(IsoMessage)
        .where(
            col(IsoMessage.id) == message_id,
            col(IsoMessage.state) == _PENDING,
            sa.or_(
                col(IsoMessage.next_attempt_at).is_(None), col(IsoMessage.next_attempt_at) <= now
            ),
        )
        .values(next_attempt_at=now + policy.lease)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = session.get(IsoMessage, message_id)
    assert message is not None
    assert message.id is not None
    partner = session.get(Partner, message.partner_id) if message.partner_id else None
    return Outgoing(
        id=message.id,
        request_id=message.request_id,
        partner_id=message.partner_id,
        peer=message.peer or (partner.agency_id if partner else ""),
        url=(partner.endpoint_url or None) if partner else None,
        kind=message.kind,
        summary=message.summary,
        body=message.body.encode("utf-8"),
        attempts=message.attempts,
    )


# ---------------------------------------------------------------------------- recording


def _claimed(session: Session, message_id: int) -> IsoMessage | None:
    message = session.get(IsoMessage, message_id, with_for_update=True)
    if message is None or message.state != _PENDING:
        return None  # cancelled by staff while it was on the wire
    return message


def _note(session: Session, message: IsoMessage, text: str, *, now: datetime) -> None:
    if message.request_id is not None:
        session.add(Note(request_id=message.request_id, author=NOTE_AUTHOR, at=now, text=text))


def _describe(message: IsoMessage) -> str:
    what = message.summary or message.kind
    return f"Message {message.id} to {message.peer or 'the partner'} ({what})"


def record_confirmation(
    session: Session,
    message_id: int,
    *,
    now: datetime,
    ok: bool,
    confirmation: str,
    error_type: str | None = None,
    error_value: str | None = None,
) -> Recorded:
    """Record the partner's confirmation of a claimed message.

    OK: the message is ``sent``. ERROR: it is ``failed`` and a note on its request names the
    error, so staff see it in the request's history as well as on the Messages screen.
    """
    now = as_utc(now)
    message = _claimed(session, message_id)
    if message is None:
        return Recorded(Outcome.GONE)
    message.attempts += 1
    message.confirmation = confirmation
    message.confirmation_status = "OK" if ok else "ERROR"
    message.next_attempt_at = None
    if ok:
        message.state = _SENT
        message.sent_at = now
        message.error_type = message.error_value = None
        session.add(message)
        return Recorded(Outcome.SENT)
    message.state = _FAILED
    message.error_type = (error_type or "")[:48] or None
    message.error_value = (error_value or "")[:500] or None
    words = ": ".join(part for part in (error_type, error_value) if part) or "no reason given"
    message.last_error = f"ERROR confirmation: {words}"[:2000]
    session.add(message)
    _note(
        session,
        message,
        f"{_describe(message)} was refused by the partner: {words}. "
        "Retry or cancel it on the Messages screen.",
        now=now,
    )
    return Recorded(Outcome.REFUSED)


def record_failure(
    session: Session,
    message_id: int,
    *,
    now: datetime,
    error: str,
    policy: RetryPolicy,
    final: bool = False,
) -> Recorded:
    """Record an attempt that got no confirmation; schedule the next one or give up.

    Args:
        session: the unit of work.
        message_id: the claimed message.
        now: when the attempt ended.
        error: what went wrong, in words staff understand ("connection refused").
        policy: the backoff schedule and the attempt limit.
        final: give up now (e.g. the partner has no endpoint URL: retrying cannot help).
    """
    now = as_utc(now)
    message = _claimed(session, message_id)
    if message is None:
        return Recorded(Outcome.GONE)
    message.attempts += 1
    message.last_error = error[:2000]
    if final or message.attempts >= policy.max_attempts:
        message.state = _FAILED
        message.next_attempt_at = None
        session.add(message)
        tries = f"after {message.attempts} attempt{'s' if message.attempts != 1 else ''}"
        _note(
            session,
            message,
            f"{_describe(message)} could not be delivered {tries}: {error}. "
            "Retry or cancel it on the Messages screen.",
            now=now,
        )
        return Recorded(Outcome.GAVE_UP)
    message.next_attempt_at = now + policy.delay(message.attempts)
    session.add(message)
    return Recorded(Outcome.RETRY, message.next_attempt_at)


# ---------------------------------------------------------------------------- staff


def _outbound(session: Session, message_id: int) -> IsoMessage:
    message = session.get(IsoMessage, message_id, with_for_update=True)
    if message is None or message.direction != _OUT:
        raise MessageNotFound(message_id)
    return message


def retry_message(session: Session, message_id: int, *, now: datetime, actor: str) -> IsoMessage:
    """Put a failed message back in the outbox: a fresh round of attempts, due now.

    Raises:
        MessageNotFound: no outbound message has that id.
        OutboxError: the message is not failed (pending ones are already being tried).
    """
    now = as_utc(now)
    message = _outbound(session, message_id)
    if message.state != _FAILED:
        raise OutboxError(
            f"Message {message_id} is {message.state}; only a failed message can be retried."
        )
    message.state = _PENDING
    message.attempts = 0
    message.next_attempt_at = now
    session.add(message)
    _note(session, message, f"{_describe(message)} put back in the outbox by {actor}.", now=now)
    return message


def cancel_message(session: Session, message_id: int, *, now: datetime, actor: str) -> IsoMessage:
    """Take a pending or failed message out of the outbox for good; it is never sent.

    The request's status is left as it is: staff cancel a message when they settle the matter
    with the partner another way.

    Raises:
        MessageNotFound: no outbound message has that id.
        OutboxError: the message was already sent or cancelled.
    """
    now = as_utc(now)
    message = _outbound(session, message_id)
    if message.state not in (_PENDING, _FAILED):
        raise OutboxError(
            f"Message {message_id} is {message.state}; only a pending or failed message "
            "can be cancelled."
        )
    message.state = _CANCELLED
    message.next_attempt_at = None
    session.add(message)
    _note(
        session,
        message,
        f"{_describe(message)} cancelled by {actor}; it will not be sent.",
        now=now,
    )
    return message


# ---------------------------------------------------------------------------- reading


class MessageList(StrEnum):
    """The lists of the Messages screen."""

    PENDING = "pending"
    FAILED = "failed"
    SENT = "sent"
    RECEIVED = "received"  # inbound, applied or refused


_LIST_FILTERS: dict[MessageList, tuple[str, tuple[str, ...]]] = {
    MessageList.PENDING: (_OUT, (_PENDING,)),
    MessageList.FAILED: (_OUT, (_FAILED,)),
    MessageList.SENT: (_OUT, (_SENT,)),
    MessageList.RECEIVED: (
        MessageDirection.INBOUND.value,
        (MessageState.APPLIED.value, MessageState.REFUSED.value),
    ),
}


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One line of the Messages screen."""

    id: int
    direction: str
    state: str
    at: datetime  # created (pending/failed/received) or sent
    partner: str  # the partner's name, else its agency id
    request_id: int | None
    kind: str
    summary: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str  # transport failure, or the ERROR confirmation's type and value


def list_messages(
    session: Session, which: MessageList | str, *, limit: int = 500
) -> list[MessageRow]:
    """The messages of one list, newest first (pending: oldest first, the sending order)."""
    which = MessageList(which)
    direction, states = _LIST_FILTERS[which]
    order = col(IsoMessage.id).asc() if which is MessageList.PENDING else col(IsoMessage.id).desc()
    rows = session.exec(
        select(IsoMessage, Partner.name)
        .join(Partner, col(Partner.id) == col(IsoMessage.partner_id), isouter=True)
        .where(IsoMessage.direction == direction, col(IsoMessage.state).in_(states))
        .order_by(order)
        .limit(limit)
    ).all()
    result: list[MessageRow] = []
    for message, partner_name in rows:
        assert message.id is not None
        error = message.last_error or ""
        if message.error_type:
            error = ": ".join(p for p in (message.error_type, message.error_value) if p)
        result.append(
            MessageRow(
                id=message.id,
                direction=message.direction,
                state=message.state,
                at=message.sent_at
                if which is MessageList.SENT and message.sent_at
                else message.created_at,
                partner=partner_name or message.peer,
                request_id=message.request_id,
                kind=message.kind,
                summary=message.summary,
                attempts=message.attempts,
                next_attempt_at=message.next_attempt_at,
                last_error=error,
            )
        )
    return result


def message_counts(session: Session) -> dict[MessageList, int]:
    """How many messages each list holds."""
    counts = dict.fromkeys(MessageList, 0)
    rows = session.exec(
        select(IsoMessage.direction, IsoMessage.state, sa.func.count()).group_by(
            col(IsoMessage.direction), col(IsoMessage.state)
        )
    ).all()
    for direction, state, n in rows:
        for which, (want_direction, states) in _LIST_FILTERS.items():
            if direction == want_direction and state in states:
                counts[which] += n
    return counts
