"""The desk: the one object screens talk to.

Each method is one unit of work with its own short-lived session, so a screen can call it from a
thread worker and get back plain entities (already loaded, safe to read after the session has
closed). Screens never open sessions or see SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from ill_tui.citation import Citation, CitationLinkError, CitationLinkReader
from ill_tui.clock import Clock, utcnow
from ill_tui.config import Settings
from ill_tui.db import session_scope
from ill_tui.models import Direction, Note, Partner, Request, RotaEntry, Status
from ill_tui.ports import MessageCodec
from ill_tui.services import exchange, intake, outbox, queue, requests, sourcing, verification


class Desk:
    """Use cases of the circulation desk, bound to a database and an actor.

    Args:
        engine: the migrated database.
        actor: who is working (written into every Event and Note).
        clock: where "now" comes from; tests fix it.
        verifier: searches the catalog targets for citations (``None``: none configured).
        codec: builds ISO 18626 messages (``None``: messaging not set up; a status change that
            must send a message then raises ``exchange.CodecMissing``).
        settings: our agency id, name and endpoint, sent in every ISO 18626 message.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        actor: str,
        clock: Clock = utcnow,
        verifier: verification.Verifier | None = None,
        codec: MessageCodec | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.engine = engine
        self.actor = actor
        self.clock = clock
        self.verifier = verifier
        self.codec = codec
        self.settings = settings

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
        details: exchange.StatusDetails | None = None,
    ) -> Request:
        """Apply a workflow transition, write its Event and queue its ISO 18626 message.

        ``details`` carries what the message needs beyond the status (due date, reasons,
        offered costs); see ``exchange.change_status`` for which transitions send what.
        """
        with session_scope(self.engine) as session:
            return exchange.change_status(
                session,
                request_id=request_id,
                to_status=to_status,
                actor=self.actor,
                reason=reason,
                expected_version=expected_version,
                details=details,
                codec=self.codec,
                settings=self.settings,
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

    # -- citation verification (services.verification) ---------------------------------------
    # The async methods run their database work in threads (asyncio.to_thread) and their
    # catalog searches on the event loop, so a screen calls them from an async worker.

    def verification_view(self, request_id: int) -> verification.VerificationView:
        """A request with its stored candidates, holdings and duplicate."""
        with session_scope(self.engine) as session:
            return verification.verification_view(session, request_id)

    def _store_outcome(self, request_id: int, outcome: verification.Outcome) -> Request:
        with session_scope(self.engine) as session:
            return verification.record_outcome(
                session, request_id=request_id, outcome=outcome, clock=self.clock
            )

    def _search_terms(self, request_id: int) -> verification.SearchTerms:
        with session_scope(self.engine) as session:
            return verification.SearchTerms.of(requests.get_request(session, request_id))

    async def verify_request(
        self, request_id: int, terms: verification.SearchTerms | None = None
    ) -> verification.Outcome:
        """Search the catalogs for a request's citation (or staff's edited ``terms``) and
        store what was found.

        Raises:
            verification.NoTargets: no catalog targets are configured.
            verification.NothingToVerify: nothing to search for.
            RequestNotFound: no such request.
        """
        if self.verifier is None:
            raise verification.NoTargets()
        if terms is None:
            terms = await asyncio.to_thread(self._search_terms, request_id)
        outcome = await self.verifier.search(terms)
        await asyncio.to_thread(self._store_outcome, request_id, outcome)
        return outcome

    async def verify_new_requests(
        self,
        *,
        progress: verification.ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        limit: int | None = None,
    ) -> verification.BatchSummary:
        """Verify every borrowing request in New, eight at a time, reporting progress."""
        if self.verifier is None:
            raise verification.NoTargets()

        def ids() -> list[int]:
            with session_scope(self.engine) as session:
                return verification.new_request_ids(session, limit=limit)

        async def one(request_id: int) -> str:
            return (await self.verify_request(request_id)).status

        return await verification.verify_batch(
            await asyncio.to_thread(ids), one, progress=progress, should_stop=should_stop
        )

    def accept_candidate(
        self, request_id: int, candidate_id: int, fields: Sequence[str] | None = None
    ) -> Request:
        """Take a candidate as the request's record and (some of) its fields into the
        citation; ``fields=None`` takes every field that differs."""
        targets = self.verifier.targets if self.verifier else ()
        with session_scope(self.engine) as session:
            return verification.accept_candidate(
                session,
                request_id=request_id,
                candidate_id=candidate_id,
                fields=fields,
                actor=self.actor,
                clock=self.clock,
                targets=targets,
            )

    def mark_not_found_as_cited(self, request_id: int, note: str) -> Request:
        """Record that the item cannot be found as cited, with staff's note."""
        with session_scope(self.engine) as session:
            return verification.mark_not_found_as_cited(
                session, request_id=request_id, note=note, actor=self.actor, clock=self.clock
            )

    def cancel_owned_locally(self, request_id: int, message: str) -> Request:
        """Cancel a request for an item we own, with the message to the patron."""
        with session_scope(self.engine) as session:
            return verification.cancel_owned_locally(
                session, request_id=request_id, message=message, actor=self.actor, clock=self.clock
            )

    # -- ISO 18626 staff actions (services.exchange, services.sourcing) ---------------------------

    def _messaging(self) -> tuple[MessageCodec, Settings]:
        if self.codec is None or self.settings is None:
            raise exchange.ExchangeError("ISO 18626 messaging is not set up in this program.")
        return self.codec, self.settings

    def set_rota(self, request_id: int, partner_ids: list[int]) -> list[RotaEntry]:
        """Choose the lenders (in order) a borrowing request goes to after the current one."""
        with session_scope(self.engine) as session:
            return sourcing.set_rota(session, request_id=request_id, partner_ids=partner_ids)

    def send_request(
        self, request_id: int, *, partner_id: int | None = None, note: str | None = None
    ) -> Request:
        """Send a borrowing request in Sourcing to the next lender in its rota, or to
        ``partner_id`` (``sourcing.RotaExhausted`` when no lender is left)."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return sourcing.send_request(
                session, request_id=request_id, actor=self.actor, codec=codec,
                settings=settings, clock=self.clock, partner_id=partner_id, note=note,
            )  # fmt: skip

    def retry_offer(self, request_id: int) -> sourcing.RetryOffer | None:
        """The lender's RetryPossible conditions and offered costs, for the screen to show."""
        codec, _ = self._messaging()
        with session_scope(self.engine) as session:
            return sourcing.retry_offer(session, request_id, codec=codec)

    def accept_retry(self, request_id: int, *, note: str | None = None) -> Request:
        """Accept the lender's conditions: a Retry request to the same lender."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return sourcing.accept_retry(
                session, request_id=request_id, actor=self.actor, codec=codec,
                settings=settings, clock=self.clock, note=note,
            )  # fmt: skip

    def decline_retry(self, request_id: int) -> Request:
        """Decline the lender's conditions and move on to the next lender."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return sourcing.decline_retry(
                session, request_id=request_id, actor=self.actor, codec=codec,
                settings=settings, clock=self.clock,
            )  # fmt: skip

    def advance_rota(self, request_id: int, *, partner_id: int | None = None) -> Request:
        """Move an Unfilled request on to the next lender in its rota, or to ``partner_id``
        (back to Sourcing and sent, in one transaction)."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return sourcing.advance(
                session, request_id=request_id, actor=self.actor, codec=codec,
                settings=settings, clock=self.clock, partner_id=partner_id,
            )  # fmt: skip

    def request_renew(self, request_id: int, *, note: str | None = None) -> Request:
        """Ask the lender to renew a loan (action Renew)."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return exchange.request_renew(
                session, request_id=request_id, actor=self.actor, note=note, codec=codec,
                settings=settings, clock=self.clock,
            )  # fmt: skip

    def request_cancel(self, request_id: int, reason: str) -> Request:
        """Ask the lender to cancel (action Cancel); the status follows its answer."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return exchange.request_cancel(
                session, request_id=request_id, actor=self.actor, reason=reason, codec=codec,
                settings=settings, clock=self.clock,
            )  # fmt: skip

    def request_status(self, request_id: int) -> Request:
        """Ask the lender for the request's status (action StatusRequest)."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return exchange.request_status(
                session, request_id=request_id, actor=self.actor, codec=codec,
                settings=settings, clock=self.clock,
            )  # fmt: skip

    def answer_renew(
        self, request_id: int, *, yes: bool, due_date: date | None = None, note: str | None = None
    ) -> Request:
        """Answer a borrower's Renew: yes with the new due date, or no."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return exchange.answer_renew(
                session, request_id=request_id, actor=self.actor, yes=yes, due_date=due_date,
                note=note, codec=codec, settings=settings, clock=self.clock,
            )  # fmt: skip

    def answer_cancel(self, request_id: int, *, yes: bool, reason: str | None = None) -> Request:
        """Answer a borrower's Cancel: yes cancels the lending request, no keeps it."""
        codec, settings = self._messaging()
        with session_scope(self.engine) as session:
            return exchange.answer_cancel(
                session, request_id=request_id, actor=self.actor, yes=yes, reason=reason,
                codec=codec, settings=settings, clock=self.clock,
            )  # fmt: skip

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

    # -- what the request detail screen shows of the exchange (H9: protocol actions) ------------

    def exchange_view(self, request_id: int) -> ExchangeView:
        """The ISO 18626 side of one request: its rota with outcomes, the lender that has it
        now, the next lender, the active partners staff can choose from, and a RetryPossible
        offer (read only when the request is in RetryPossible and messaging is set up).

        Raises:
            RequestNotFound: no such request.
        """
        with session_scope(self.engine) as session:
            request = requests.get_request(session, request_id)
            names = {
                partner.id: partner
                for partner in session.exec(select(Partner).order_by(col(Partner.name)))
            }
            lines = [
                RotaLine(
                    position=entry.position,
                    partner_id=entry.partner_id,
                    partner_name=names[entry.partner_id].name,
                    outcome=entry.outcome,
                    current=entry.position == request.rota_position and request.sent_at is not None,
                )
                for entry in sourcing.rota(session, request_id)
            ]
            upcoming = (
                sourcing.next_lender(session, request)
                if request.direction == Direction.BORROWING.value
                else None
            )
            offer = None
            messaging = self.codec is not None and self.settings is not None
            if messaging and request.status == Status.RETRY_POSSIBLE.value:
                assert self.codec is not None
                offer = sourcing.retry_offer(session, request_id, codec=self.codec)
            return ExchangeView(
                messaging=messaging,
                rota=lines,
                next_lender=names[upcoming.partner_id].name if upcoming else None,
                partners=[
                    PartnerChoice(
                        partner_id=partner.id,
                        name=partner.name,
                        agency=partner.agency_id,
                        country=partner.country,
                    )
                    for partner in names.values()
                    if partner.active and partner.id is not None
                ],
                retry_offer=offer,
            )


@dataclass(frozen=True)
class RotaLine:
    """One lender of a borrowing request's rota, as the detail screen lists it.

    Attributes:
        position: 1 for the first lender asked.
        partner_id, partner_name: the lender.
        outcome: the last ISO 18626 status seen from it (``None``: not asked yet).
        current: this lender has the request now.
    """

    position: int
    partner_id: int
    partner_name: str
    outcome: str | None
    current: bool


@dataclass(frozen=True)
class PartnerChoice:
    """An active partner library staff can send a request to."""

    partner_id: int
    name: str
    agency: str
    country: str


@dataclass(frozen=True)
class ExchangeView:
    """What the request detail screen shows of a request's ISO 18626 exchange.

    Attributes:
        messaging: this program can send ISO 18626 messages (codec and settings wired in).
        rota: the lenders in order, with outcomes (empty for lending requests).
        next_lender: the name of the next active lender in the rota, if any.
        partners: the active partners, by name.
        retry_offer: the lender's RetryPossible conditions and offered costs, if any.
    """

    messaging: bool
    rota: list[RotaLine]
    next_lender: str | None
    partners: list[PartnerChoice]
    retry_offer: sourcing.RetryOffer | None
