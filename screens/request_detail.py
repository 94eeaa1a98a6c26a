"""One request: its citation, who it is for or from, its terms, and its history."""

from __future__ import annotations

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

from ill_tui.clock import Clock, utcnow
from ill_tui.identifiers import format_isbn, format_issn
from ill_tui.models import Direction, Request
from ill_tui.services.requests import RequestDetail, RequestNotFound, money_or_none
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.note import NoteModal
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
        self.help_title = f"Request {request_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Request {self.request_id} · loading…", id="detail-heading")
        with VerticalScroll(id="detail-summary"), Horizontal(id="detail-columns"):
            yield Static("", id="citation")
            yield Static("", id="terms")
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
        except RequestNotFound as exc:
            self.post_message(RequestMissing(str(exc)))
            return
        self.post_message(RequestLoaded(detail))

    def on_request_loaded(self, message: RequestLoaded) -> None:
        self.detail = detail = message.detail
        request = detail.request
        heading = Text(f"Request {request.id} · ", style="bold")
        heading.append(f"{request.direction} · {request.service_type} · ")
        heading.append(request.status, style="bold reverse")
        self.query_one("#detail-heading", Label).update(heading)
        self.query_one("#citation", Static).update(_grid("Citation", citation_lines(request)))
        self.query_one("#terms", Static).update(
            _grid("Request", terms_lines(detail, locale=self.locale))
        )
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
        return True

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
