"""One request: its citation, who it is for or from, its terms, and its history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Static

from ill_tui import workflow
from ill_tui.clock import Clock, utcnow
from ill_tui.identifiers import format_isbn, format_issn
from ill_tui.models import Direction, Request, Status
from ill_tui.services.desk import ExchangeView
from ill_tui.services.exchange import ExchangeError
from ill_tui.services.requests import (
    RequestDetail,
    RequestNotFound,
    StaleRequest,
    ValidationFailed,
    money_or_none,
)
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.confirm import ConfirmModal
from screens.note import NoteModal
from screens.protocol_actions import (
    CancelAnswer,
    CancelAnswerModal,
    LenderPickerModal,
    ReasonModal,
    RenewAnswer,
    RenewAnswerModal,
    RetryOfferModal,
    offer_lines,
)
from screens.status_change import StatusChangeModal
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

# Citation fields in the order a librarian reads them.
CITATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("article_title", "Article title"),
    ("article_author", "Article author"),
    ("title", "Title"),
    ("author", "Author"),
    ("edition", "Edition"),
    ("publisher", "Publisher"),
    ("place_of_publication", "Place"),
    ("year", "Year"),
    ("volume", "Volume"),
    ("issue", "Issue"),
    ("pages", "Pages"),
    ("isbn", "ISBN"),
    ("issn", "ISSN"),
    ("oclc_number", "OCLC number"),
    ("lccn", "LCCN"),
    ("doi", "DOI"),
)


@dataclass
class RequestLoaded(Message):
    """The request and its history came back from the database."""

    detail: RequestDetail
    exchange: ExchangeView | None = None


@dataclass
class ActionDone(Message):
    """A protocol action went through; ``report`` says what was done, in staff's words."""

    report: str


@dataclass
class ActionRefused(Message):
    """A protocol action was refused; ``reason`` says why, in staff's words."""

    reason: str


# Errors an action reports in words (anything else is a bug: logged and shown by the mixin).
ACTION_ERRORS = (
    StaleRequest,
    RequestNotFound,
    workflow.IllegalTransition,
    workflow.ReasonRequired,
    ValidationFailed,
    ExchangeError,
    ValueError,
)

# Borrowing statuses in which a loan is out (a renewal can be asked), in which the lender can
# still cancel, and lending statuses in which a renewal can be answered.
ON_LOAN = frozenset({Status.LOANED, Status.RECEIVED, Status.CHECKED_OUT, Status.OVERDUE,
                     Status.RECALLED})  # fmt: skip
AT_LENDER = frozenset({Status.REQUEST_RECEIVED, Status.EXPECT_TO_SUPPLY, Status.WILL_SUPPLY})
LENT_OUT = frozenset({Status.SHIPPED, Status.LOANED, Status.OVERDUE, Status.RECALLED})

# The protocol actions of this screen (check_action decides which apply to the request).
PROTOCOL_ACTIONS = frozenset({
    "send_next", "choose_lender", "retry_offer", "ask_renew", "ask_cancel", "ask_status",
    "answer_renew", "answer_cancel",
})  # fmt: skip


@dataclass
class RequestMissing(Message):
    """No request has that id (any more)."""

    reason: str


def citation_lines(request: Request) -> list[tuple[str, str]]:
    """The filled citation fields as (label, value), identifiers formatted for reading."""
    lines: list[tuple[str, str]] = []
    for name, label in CITATION_FIELDS:
        value = getattr(request, name)
        if not value:
            continue
        if name == "isbn":
            value = format_isbn(value)
        elif name == "issn":
            value = format_issn(value)
        lines.append((label, str(value)))
    return lines


def terms_lines(detail: RequestDetail, *, locale: str) -> list[tuple[str, str]]:
    """Who, service type, status and the terms of the request, as (label, value)."""
    request = detail.request
    lines: list[tuple[str, str]] = []
    if detail.patron is not None:
        lines.append(("Patron", f"{detail.patron.name} ({detail.patron.barcode})"))
    elif detail.partner is not None:
        lines.append(("Library", f"{detail.partner.name} ({detail.partner.agency_id})"))
    elif request.party_name:
        lines.append(("Patron" if request.direction == Direction.BORROWING else "Library",
                      request.party_name))  # fmt: skip
    if request.partner_request_id:
        lines.append(("Their request id", request.partner_request_id))
    lines.append(("Service type", request.service_type))
    lines.append(("Status", request.status))
    lines.append(("Needed by", request.needed_by.isoformat() if request.needed_by else "—"))
    cost = money_or_none(request.max_cost, request.max_cost_currency)
    lines.append(("Max cost", cost.format(locale) if cost else "—"))
    lines.append(("Due date", request.due_date.isoformat() if request.due_date else "—"))
    lines.append(("Received (UTC)", request.created_at.strftime("%Y-%m-%d %H:%M")))
    return lines


def exchange_lines(
    detail: RequestDetail, view: ExchangeView, *, locale: str
) -> list[tuple[str, str]]:
    """The ISO 18626 side of a request as (label, value): partner, ids, rota, retry offer."""
    request = detail.request
    lines: list[tuple[str, str]] = []
    borrowing = request.direction == Direction.BORROWING.value
    if borrowing:
        if detail.partner is not None and request.sent_at is not None:
            lines.append(("Lender now", f"{detail.partner.name} ({detail.partner.agency_id})"))
        if request.exchange_id:
            lines.append(("Our request id", request.exchange_id))
        if request.sent_at is not None:
            lines.append(("Sent (UTC)", request.sent_at.strftime("%Y-%m-%d %H:%M")))
        for line in view.rota:
            outcome = line.outcome or "not asked"
            mark = "  ◀ now" if line.current else ""
            lines.append((f"Rota {line.position}", f"{line.partner_name} — {outcome}{mark}"))
        if not view.rota:
            lines.append(("Rota", "no lenders chosen"))
        if view.next_lender:
            lines.append(("Next lender", view.next_lender))
    if view.retry_offer is not None:
        # "Lender now" already names the lender the offer came from.
        lines += [(f"Offer · {label}", value)
                  for label, value in offer_lines(view.retry_offer, locale=locale)
                  if label != "Lender"]  # fmt: skip
    if not view.messaging and (request.exchange_id or request.partner_request_id or borrowing):
        lines.append(("Messages", "ISO 18626 messaging is not set up in this program"))
    return lines


def _grid(title: str, lines: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.title = title
    grid.title_justify = "left"
    grid.title_style = "bold"
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in lines:
        grid.add_row(label, value)
    return grid


class RequestDetailScreen(ReportsWorkerErrors, Screen[None]):
    """Shows one request; ``c`` changes its status, ``a`` adds a note, Escape goes back."""

    CSS_PATH = SCREENS_DIR / "request_detail.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="detail.back", tooltip="Back to the queue"),
        Binding("c", "change_status", "Status", id="detail.change_status",
                tooltip="Change the status of this request"),
        Binding("a", "add_note", "Add note", id="detail.add_note",
                tooltip="Add a note to this request"),
        # ISO 18626 actions; check_action shows only those that fit this request.
        Binding("s", "send_next", "Send to next lender", id="detail.send_next",
                tooltip="Send the request to the next lender in its rota"),
        Binding("l", "choose_lender", "Choose lender", id="detail.choose_lender",
                tooltip="Choose a partner library and send the request to it"),
        Binding("o", "retry_offer", "Retry offer", id="detail.retry_offer",
                tooltip="See the lender's conditions and costs; accept (Retry) or decline"),
        Binding("r", "ask_renew", "Ask to renew", id="detail.ask_renew",
                tooltip="Ask the lender to renew the loan (ISO 18626 Renew)"),
        Binding("x", "ask_cancel", "Ask to cancel", id="detail.ask_cancel",
                tooltip="Ask the lender to cancel the request, with a reason"),
        Binding("t", "ask_status", "Ask status", id="detail.ask_status",
                tooltip="Ask the lender for the request's status (StatusRequest)"),
        Binding("R", "answer_renew", "Answer renewal", id="detail.answer_renew",
                tooltip="Grant the borrower's renewal with a new due date, or refuse it"),
        Binding("X", "answer_cancel", "Answer cancellation", id="detail.answer_cancel",
                tooltip="Agree to the borrower's cancellation, or refuse it with a reason"),
        Binding("ctrl+r,f5", "refresh", "Refresh", id="detail.refresh", show=False,
                tooltip="Load this request again"),
    ]  # fmt: skip

    def __init__(
        self, desk: Desk, request_id: int, *, locale: str = "en_US", clock: Clock = utcnow
    ) -> None:
        super().__init__()
        self.desk = desk
        self.request_id = request_id
        self.locale = locale
        self.clock = clock
        self.detail: RequestDetail | None = None
        self.exchange: ExchangeView | None = None
        self.help_title = f"Request {request_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Request {self.request_id} · loading…", id="detail-heading")
        with VerticalScroll(id="detail-summary"):
            with Horizontal(id="detail-columns"):
                yield Static("", id="citation")
                yield Static("", id="terms")
            yield Static("", id="exchange")
        yield Label("History (oldest first)", id="history-title")
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#history-table", DataTable)
        table.add_column("When", key="at", width=16)
        table.add_column("Who", key="actor", width=20)
        table.add_column("What", key="what")
        table.focus()
        self.load_request()

    @work(thread=True, exclusive=True, group="request-detail", exit_on_error=False)
    def load_request(self) -> None:
        """Worker: the request with its patron or partner and its history."""
        try:
            detail = self.desk.request_detail(self.request_id)
            exchange = self.desk.exchange_view(self.request_id)
        except RequestNotFound as exc:
            self.post_message(RequestMissing(str(exc)))
            return
        self.post_message(RequestLoaded(detail, exchange))

    def on_request_loaded(self, message: RequestLoaded) -> None:
        self.detail = detail = message.detail
        self.exchange = message.exchange
        request = detail.request
        heading = Text(f"Request {request.id} · ", style="bold")
        heading.append(f"{request.direction} · {request.service_type} · ")
        heading.append(request.status, style="bold reverse")
        self.query_one("#detail-heading", Label).update(heading)
        self.query_one("#citation", Static).update(_grid("Citation", citation_lines(request)))
        self.query_one("#terms", Static).update(
            _grid("Request", terms_lines(detail, locale=self.locale))
        )
        panel = self.query_one("#exchange", Static)
        lines = (
            exchange_lines(detail, message.exchange, locale=self.locale)
            if message.exchange is not None
            else []
        )
        panel.display = bool(lines)
        panel.update(_grid("ISO 18626 exchange", lines) if lines else "")
        table = self.query_one("#history-table", DataTable)
        table.clear()
        for entry in detail.history:
            what = Text(entry.text, style="bold" if entry.kind == "status" else "")
            if entry.kind == "note":
                what = Text("Note: ", style="italic").append(entry.text)
            table.add_row(entry.at.strftime("%Y-%m-%d %H:%M"), entry.actor, what)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)
        self.refresh_bindings()

    def on_request_missing(self, message: RequestMissing) -> None:
        self.notify(message.reason, severity="error")
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in {"change_status", "add_note"}:
            return self.detail is not None or None
        if action in PROTOCOL_ACTIONS:
            # Hidden (not merely dimmed) when it does not fit: the key list stays short.
            return self.applies(action)
        return True

    def applies(self, action: str) -> bool:
        """Whether a protocol action fits this request's direction, status and exchange."""
        if self.detail is None or self.exchange is None or not self.exchange.messaging:
            return False
        request, view = self.detail.request, self.exchange
        status = Status(request.status)
        exchanged = bool(request.exchange_id) and request.partner_id is not None
        if request.direction == Direction.BORROWING.value:
            sourcing = status in (Status.SOURCING, Status.UNFILLED)
            checks = {
                "send_next": sourcing and view.next_lender is not None,
                "choose_lender": sourcing and bool(view.partners),
                "retry_offer": status is Status.RETRY_POSSIBLE,
                "ask_renew": exchanged and status in ON_LOAN,
                "ask_cancel": exchanged and status in AT_LENDER,
                "ask_status": exchanged and request.is_open,
            }  # fmt: skip
        else:
            from_partner = bool(request.partner_request_id) and request.partner_id is not None
            checks = {
                "answer_renew": from_partner and status in LENT_OUT,
                "answer_cancel": from_partner and request.is_open,
            }
        return checks.get(action, False)

    def action_back(self) -> None:
        """Back to the queue."""
        self.dismiss(None)

    def action_refresh(self) -> None:
        """Load this request again."""
        self.load_request()

    def action_change_status(self) -> None:
        """Open the status change dialog for this request."""
        if self.detail is None:
            return
        request = self.detail.request

        def changed(status: str | None) -> None:
            if status is not None:
                self.notify(f"Request {self.request_id} is now {status}.")
            self.load_request()

        self.app.push_screen(
            StatusChangeModal(
                self.desk,
                request_id=self.request_id,
                direction=request.direction,
                status=request.status,
                version=request.version,
                title=request.display_title,
            ),
            changed,
        )

    def action_add_note(self) -> None:
        """Open the note dialog for this request."""

        def added(note_id: int | None) -> None:
            if note_id is not None:
                self.notify("Note added.")
                self.load_request()

        self.app.push_screen(NoteModal(self.desk, request_id=self.request_id), added)

    # -- ISO 18626 actions: dialogs gather the decision, a worker makes the desk call ----------

    @work(thread=True, exclusive=True, group="request-action", exit_on_error=False)
    def send_action(self, call: Callable[[], object], report: str) -> None:
        """Worker: one desk call (which queues its ISO 18626 message); says how it went."""
        try:
            call()
        except ACTION_ERRORS as exc:
            self.post_message(ActionRefused(str(exc)))
            return
        self.post_message(ActionDone(report))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.report)
        self.load_request()

    def on_action_refused(self, message: ActionRefused) -> None:
        self.notify(message.reason, title="Not done", severity="error", timeout=12)
        self.load_request()

    def _partner_name(self) -> str:
        partner = self.detail.partner if self.detail else None
        return partner.name if partner is not None else "the partner"

    def action_send_next(self) -> None:
        """Send the request to the next lender in its rota (Unfilled: move on to it)."""
        if not self.applies("send_next") or self.detail is None or self.exchange is None:
            return
        desk, request_id = self.desk, self.request_id
        lender = self.exchange.next_lender
        if self.detail.request.status == Status.UNFILLED.value:
            self.send_action(lambda: desk.advance_rota(request_id), f"Request sent to {lender}.")
        else:
            self.send_action(lambda: desk.send_request(request_id), f"Request sent to {lender}.")

    def action_choose_lender(self) -> None:
        """Pick an active partner and send the request to it."""
        if not self.applies("choose_lender") or self.detail is None or self.exchange is None:
            return
        desk, request_id = self.desk, self.request_id
        names = {p.partner_id: p.name for p in self.exchange.partners}
        unfilled = self.detail.request.status == Status.UNFILLED.value

        def send(partner_id: int) -> None:
            if unfilled:  # back to Sourcing and sent, in one transaction
                desk.advance_rota(request_id, partner_id=partner_id)
            else:
                desk.send_request(request_id, partner_id=partner_id)

        def chosen(partner_id: int | None) -> None:
            if partner_id is not None:
                self.send_action(lambda: send(partner_id), f"Request sent to {names[partner_id]}.")

        asked = frozenset(line.partner_id for line in self.exchange.rota if line.outcome)
        self.app.push_screen(LenderPickerModal(self.exchange.partners, asked=asked), chosen)

    def action_retry_offer(self) -> None:
        """Show the lender's RetryPossible offer; accept it (Retry) or decline (move on)."""
        if not self.applies("retry_offer") or self.exchange is None:
            return
        offer = self.exchange.retry_offer
        if offer is None:
            self.notify(
                "The lender's offer cannot be found among the messages received.",
                severity="error",
            )
            return
        desk, request_id = self.desk, self.request_id
        next_lender = self.exchange.next_lender

        def answered(accept: bool | None) -> None:
            if accept is True:
                self.send_action(
                    lambda: desk.accept_retry(request_id),
                    f"Conditions accepted: Retry request sent to {offer.partner_name}.",
                )
            elif accept is False:
                report = (
                    f"Offer declined: request sent to {next_lender}."
                    if next_lender
                    else "Offer declined. No lender is left in the rota: choose another."
                )
                self.send_action(lambda: desk.decline_retry(request_id), report)

        self.app.push_screen(
            RetryOfferModal(offer, next_lender=next_lender, locale=self.locale), answered
        )

    def action_ask_renew(self) -> None:
        """Ask the lender to renew the loan, with an optional note."""
        if not self.applies("ask_renew"):
            return
        desk, request_id, lender = self.desk, self.request_id, self._partner_name()

        def typed(note: str | None) -> None:
            if note is not None:
                self.send_action(
                    lambda: desk.request_renew(request_id, note=note or None),
                    f"Renewal asked of {lender}.",
                )

        self.app.push_screen(
            ReasonModal(
                f"Ask {lender} to renew the loan",
                placeholder="Note to the lender (optional)",
                required=False,
                send_label="Ask to renew",
            ),
            typed,
        )

    def action_ask_cancel(self) -> None:
        """Ask the lender to cancel, with a reason; confirmed before it is sent."""
        if not self.applies("ask_cancel"):
            return
        desk, request_id, lender = self.desk, self.request_id, self._partner_name()

        def confirmed(reason: str, yes: bool | None) -> None:
            if yes:
                self.send_action(
                    lambda: desk.request_cancel(request_id, reason),
                    f"Cancellation asked of {lender}; the status follows its answer.",
                )

        def typed(reason: str | None) -> None:
            if reason:
                self.app.push_screen(
                    ConfirmModal(
                        f"Ask {lender} to cancel request {request_id}? ({reason})",
                        yes="Ask to cancel",
                        no="Keep it",
                    ),
                    lambda yes: confirmed(reason, yes),
                )

        self.app.push_screen(
            ReasonModal(
                f"Ask {lender} to cancel request {request_id}",
                placeholder="Reason (required), e.g. the patron no longer needs it",
                required=True,
                send_label="Ask to cancel",
            ),
            typed,
        )

    def action_ask_status(self) -> None:
        """Ask the lender for the request's status (its answer arrives as a message)."""
        if not self.applies("ask_status"):
            return
        desk, request_id, lender = self.desk, self.request_id, self._partner_name()
        self.send_action(lambda: desk.request_status(request_id), f"Status asked of {lender}.")

    def action_answer_renew(self) -> None:
        """Answer the borrower's renewal: grant with a new due date, or refuse."""
        if not self.applies("answer_renew") or self.detail is None:
            return
        desk, request_id, borrower = self.desk, self.request_id, self._partner_name()

        def answered(answer: RenewAnswer | None) -> None:
            if answer is None:
                return
            report = (
                f"Renewal granted until {answer.due_date.isoformat()}; {borrower} is told."
                if answer.yes and answer.due_date
                else f"Renewal refused; {borrower} is told."
            )
            self.send_action(
                lambda: desk.answer_renew(
                    request_id, yes=answer.yes, due_date=answer.due_date, note=answer.note
                ),
                report,
            )

        self.app.push_screen(
            RenewAnswerModal(borrower=borrower, current_due=self.detail.request.due_date),
            answered,
        )

    def action_answer_cancel(self) -> None:
        """Answer the borrower's cancellation: agree (confirmed first) or refuse with a reason."""
        if not self.applies("answer_cancel") or self.detail is None:
            return
        desk, request_id, borrower = self.desk, self.request_id, self._partner_name()

        def agree(reason: str | None, yes: bool | None) -> None:
            if yes:
                self.send_action(
                    lambda: desk.answer_cancel(request_id, yes=True, reason=reason),
                    f"Request {request_id} cancelled; {borrower} is told.",
                )

        def answered(answer: CancelAnswer | None) -> None:
            if answer is None:
                return
            if not answer.yes:
                self.send_action(
                    lambda: desk.answer_cancel(request_id, yes=False, reason=answer.reason),
                    f"Cancellation refused; {borrower} is told.",
                )
                return
            self.app.push_screen(
                ConfirmModal(
                    f"Cancel lending request {request_id} for {borrower}?",
                    yes="Cancel it",
                    no="Keep it",
                ),
                lambda yes: agree(answer.reason, yes),
            )

        self.app.push_screen(
            CancelAnswerModal(borrower=borrower, status=self.detail.request.status), answered
        )
