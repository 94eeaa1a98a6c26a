"""The desk: the one object screens talk to.

Each method is one unit of work with its own short-lived session, so a screen can call it from a
thread worker and get back plain entities (already loaded, safe to read after the session has
closed). Screens never open sessions or see SQL.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from ill_tui.citation import Citation, CitationLinkError, CitationLinkReader
from ill_tui.clock import Clock, utcnow
from ill_tui.db import session_scope
from ill_tui.models import Note, Request, Status
from ill_tui.services import intake, outbox, queue, requests


class Desk:
    """Use cases of the circulation desk, bound to a database and an actor.

    Args:
        engine: the migrated database.
        actor: who is working (written into every Event and Note).
        clock: where "now" comes from; tests fix it.
    """

    def __init__(self, engine: Engine, *, actor: str, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.actor = actor
        self.clock = clock

    def load_page(self, query: queue.QueueQuery) -> queue.QueuePage:
        """One page of a queue."""
        with session_scope(self.engine) as session:
            return queue.load_page(session, query)

    def status_counts(
        self, query: queue.QueueQuery, *, cancelled: Callable[[], bool] | None = None
    ) -> dict[str, int]:
        """Requests per status for the queue's direction and text filter.

        ``cancelled`` lets a worker stop a long count (``queue.QueryCancelled``).
        """
        with session_scope(self.engine) as session:
            return queue.status_counts(session, query, cancelled=cancelled)

    def request_detail(self, request_id: int) -> requests.RequestDetail:
        """A request with its patron, partner, history and allowed transitions."""
        with session_scope(self.engine) as session:
            return requests.request_detail(session, request_id)

    def create_request(self, form: requests.RequestForm) -> Request:
        """Check and store a new request; raises ``ValidationFailed`` with per-field errors."""
        with session_scope(self.engine) as session:
            return requests.create_request(session, form=form, actor=self.actor, clock=self.clock)

    def change_status(
        self,
        request_id: int,
        to_status: Status | str,
        *,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> Request:
        """Apply a workflow transition and write its Event."""
        with session_scope(self.engine) as session:
            return requests.change_status(
                session,
                request_id=request_id,
                to_status=to_status,
                actor=self.actor,
                reason=reason,
                expected_version=expected_version,
                clock=self.clock,
            )

    def add_note(self, request_id: int, text: str) -> Note:
        """Attach a note to a request."""
        with session_scope(self.engine) as session:
            return requests.add_note(
                session, request_id=request_id, author=self.actor, text=text, clock=self.clock
            )

    # -- ISO 18626 messages (the Messages screen; services/outbox.py) --------------------------

    def message_list(self, which: outbox.MessageList | str) -> list[outbox.MessageRow]:
        """The messages of one list of the Messages screen (pending, failed, sent, received)."""
        with session_scope(self.engine) as session:
            return outbox.list_messages(session, which)

    def message_counts(self) -> dict[outbox.MessageList, int]:
        """How many messages each list of the Messages screen holds."""
        with session_scope(self.engine) as session:
            return outbox.message_counts(session)

    def retry_message(self, message_id: int) -> None:
        """Put a failed outbound message back in the outbox (``outbox.OutboxError`` if not)."""
        with session_scope(self.engine) as session:
            outbox.retry_message(session, message_id, now=self.clock(), actor=self.actor)

    def cancel_message(self, message_id: int) -> None:
        """Cancel a pending or failed outbound message (``outbox.OutboxError`` if not)."""
        with session_scope(self.engine) as session:
            outbox.cancel_message(session, message_id, now=self.clock(), actor=self.actor)

    # -- intake: the new-request form and pasted citation links (services/intake.py) -----------

    #: Reads a pasted citation link (an OpenURL) into a Citation; the composition root sets it
    #: to ``adapters.openurl.parse_openurl``. None: pasting links is not available.
    citation_links: CitationLinkReader | None = None

    def read_citation_link(self, link: str) -> Citation:
        """The citation in a pasted link (an OpenURL), for the new-request form to fill in.

        Pure parsing, no I/O: safe to call from the UI thread.

        Raises:
            CitationLinkError: the link cannot be read, or no reader is set up.
        """
        if self.citation_links is None:
            raise CitationLinkError("Pasting OpenURL links is not set up in this installation.")
        return self.citation_links(link)

    def intake_request(self, form: requests.RequestForm, *, pmid: str = "") -> intake.Intake:
        """Check and store a new request; mark it when it repeats an open request.

        Raises:
            ValidationFailed: with per-field errors (``pmid`` included); nothing is stored.
        """
        with session_scope(self.engine) as session:
            return intake.intake_request(
                session, form=form, pmid=pmid, actor=self.actor, clock=self.clock
            )
