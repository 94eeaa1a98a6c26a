"""The Messages screen: the ISO 18626 outbox and message log, for staff to watch and act on.

Four lists: **pending** (waiting to go out, in sending order, with attempts and the last
transport error), **failed** (refused by the partner or given up after retries: staff retry or
cancel them), **sent** and **received**. The lists reload every few seconds while the screen is
shown, so staff see messages leave. Every action is a binding with an id, so the key bar, the
``?`` key list and the command palette all offer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Header, Static

from ill_tui.clock import Clock, utcnow
from ill_tui.services.outbox import MessageList, MessageNotFound, MessageRow, OutboxError
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.confirm import ConfirmModal
from screens.request_detail import RequestDetailScreen
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

LIST_LABELS: dict[MessageList, str] = {
    MessageList.PENDING: "Pending",
    MessageList.FAILED: "Failed",
    MessageList.SENT: "Sent",
    MessageList.RECEIVED: "Received",
}
KIND_LABELS = {
    "request": "Request",
    "supplyingAgencyMessage": "Supplier msg",
    "requestingAgencyMessage": "Requester msg",
}
REFRESH_EVERY = 3.0  # seconds between reloads while the screen is shown
EMPTY = {
    MessageList.PENDING: "Nothing is waiting to be sent.",
    MessageList.FAILED: "No failed messages.",
    MessageList.SENT: "No messages sent yet.",
    MessageList.RECEIVED: "No messages received yet.",
}


@dataclass
class MessagesLoaded(Message):
    """One list and the counts of all lists came back."""

    which: MessageList
    rows: list[MessageRow]
    counts: dict[MessageList, int]


@dataclass
class MessageActionDone(Message):
    """A retry or cancel was applied (``ok``) or refused; ``text`` says what happened."""

    text: str
    ok: bool


def kind_label(kind: str) -> str:
    """A short name for a message kind."""
    return KIND_LABELS.get(kind, kind)


def error_cell(row: MessageRow) -> Text:
    """The last error, and for a pending message that failed before, when it is tried next."""
    cell = Text(row.last_error, style="red")
    if row.state == "pending" and row.attempts and row.next_attempt_at is not None:
        cell.append(f" · next try {row.next_attempt_at:%H:%M:%S}", style="dim")
    return cell


class MessagesScreen(ReportsWorkerErrors, Screen[None]):
    """Pending, failed, sent and received ISO 18626 messages; retry or cancel by key."""

    CSS_PATH = SCREENS_DIR / "messages.tcss"
    help_title: ClassVar[str] = "Messages"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="messages.back", tooltip="Back to the queue"),
        Binding("p", "show_list('pending')", "Pending", id="messages.pending",
                tooltip="Show the messages waiting to be sent"),
        Binding("f", "show_list('failed')", "Failed", id="messages.failed",
                tooltip="Show the messages refused by a partner or given up after retries"),
        Binding("s", "show_list('sent')", "Sent", id="messages.sent",
                tooltip="Show the messages partners confirmed"),
        Binding("i", "show_list('received')", "Received", id="messages.received",
                tooltip="Show the messages partners sent us"),
        Binding("r", "retry_message", "Retry", id="messages.retry",
                tooltip="Send the highlighted failed message again"),
        Binding("x", "cancel_message", "Cancel msg", id="messages.cancel",
                tooltip="Cancel the highlighted pending or failed message (asks first)"),
        Binding("o", "open_request", "Open request", id="messages.open_request",
                tooltip="Open the request of the highlighted message (or Enter)"),
        Binding("ctrl+r,f5", "refresh", "Refresh", id="messages.refresh", show=False,
                tooltip="Load the messages again"),
    ]  # fmt: skip

    def __init__(
        self,
        desk: Desk,
        *,
        which: MessageList | str = MessageList.PENDING,
        clock: Clock = utcnow,
        locale: str = "en_US",
    ) -> None:
        super().__init__()
        self.desk = desk
        self.which = MessageList(which)
        self.clock = clock
        self.locale = locale
        self.rows: list[MessageRow] = []
        self.counts: dict[MessageList, int] = {}
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="messages-tabs")
        yield DataTable(id="messages-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="messages-empty")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#messages-table", DataTable)
        table.add_column("Time (UTC)", key="at", width=16)
        table.add_column("Partner", key="partner", width=22)
        table.add_column("Request", key="request", width=7)
        table.add_column("Kind", key="kind", width=13)
        table.add_column("Summary", key="summary", width=30)
        table.add_column("Tries", key="attempts", width=5)
        table.add_column("Last error", key="error")
        table.focus()
        self._paint_tabs()
        self.load_messages()
        self._timer = self.set_interval(REFRESH_EVERY, self.load_messages)

    # -- loading ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="messages", exit_on_error=False)
    def load_messages(self) -> None:
        """Worker: the shown list and the counts of all lists."""
        which = self.which
        rows = self.desk.message_list(which)
        counts = self.desk.message_counts()
        self.post_message(MessagesLoaded(which, rows, counts))

    def on_messages_loaded(self, message: MessagesLoaded) -> None:
        if message.which is not self.which:
            return  # the list was switched while this one loaded
        self.counts = message.counts
        table = self.query_one("#messages-table", DataTable)
        highlighted = self.current()
        self.rows = message.rows
        table.clear()
        for row in message.rows:
            table.add_row(
                row.at.strftime("%Y-%m-%d %H:%M"),
                row.partner,
                str(row.request_id) if row.request_id is not None else "—",
                kind_label(row.kind),
                row.summary,
                str(row.attempts),
                error_cell(row),
                key=str(row.id),
            )
        if highlighted is not None:
            for index, row in enumerate(self.rows):
                if row.id == highlighted.id:
                    table.move_cursor(row=index)
                    break
        empty = self.query_one("#messages-empty", Static)
        empty.update("" if self.rows else EMPTY[self.which])
        empty.display = not self.rows
        self._paint_tabs()
        self.refresh_bindings()

    def _paint_tabs(self) -> None:
        line = Text()
        for which, label in LIST_LABELS.items():
            count = self.counts.get(which)
            text = f" {label}" + (f" {count}" if count is not None else "") + " "
            if which is self.which:
                line.append(text, style="bold reverse")
            elif which is MessageList.FAILED and count:
                line.append(text, style="bold red")
            else:
                line.append(text)
            line.append(" ")
        self.query_one("#messages-tabs", Static).update(line)

    def current(self) -> MessageRow | None:
        """The message under the cursor."""
        if not self.rows:
            return None
        index = self.query_one("#messages-table", DataTable).cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.current() if self.is_mounted else None
        if action == "retry_message":
            return row is not None and row.state == "failed" or None
        if action == "cancel_message":
            return row is not None and row.state in ("pending", "failed") or None
        if action == "open_request":
            return row is not None and row.request_id is not None or None
        return True

    def on_data_table_row_highlighted(self) -> None:
        self.refresh_bindings()

    def on_data_table_row_selected(self) -> None:
        # Enter on the table (the table's own binding, which shadows the screen's keys)
        self.action_open_request()

    def action_show_list(self, which: str) -> None:
        """Show one of the lists: pending, failed, sent, received."""
        self.which = MessageList(which)
        self.rows = []
        self.query_one("#messages-table", DataTable).clear()
        self._paint_tabs()
        self.load_messages()

    def action_refresh(self) -> None:
        """Load the messages again."""
        self.load_messages()

    def action_back(self) -> None:
        """Back to the queue."""
        self.dismiss(None)

    def action_retry_message(self) -> None:
        """Put the highlighted failed message back in the outbox."""
        row = self.current()
        if row is not None and row.state == "failed":
            self.change_message(row.id, "retry")

    def action_cancel_message(self) -> None:
        """Cancel the highlighted pending or failed message, after asking."""
        row = self.current()
        if row is None or row.state not in ("pending", "failed"):
            return
        question = (
            f"Cancel message {row.id} ({kind_label(row.kind)}: {row.summary}) to {row.partner}? "
            "It will never be sent; the request's status stays as it is."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.change_message(row.id, "cancel")

        self.app.push_screen(ConfirmModal(question, yes="Cancel message", no="Keep it"), answered)

    def action_open_request(self) -> None:
        """Open the request of the highlighted message."""
        row = self.current()
        if row is None or row.request_id is None:
            return

        def back(_result: None) -> None:
            self.load_messages()

        self.app.push_screen(
            RequestDetailScreen(self.desk, row.request_id, locale=self.locale, clock=self.clock),
            back,
        )

    @work(thread=True, exclusive=True, group="message-action", exit_on_error=False)
    def change_message(self, message_id: int, what: str) -> None:
        """Worker: retry or cancel one message through the desk."""
        try:
            if what == "retry":
                self.desk.retry_message(message_id)
                text = f"Message {message_id} is back in the outbox."
            else:
                self.desk.cancel_message(message_id)
                text = f"Message {message_id} cancelled; it will not be sent."
        except (OutboxError, MessageNotFound) as exc:
            self.post_message(MessageActionDone(str(exc), ok=False))
            return
        self.post_message(MessageActionDone(text, ok=True))

    def on_message_action_done(self, message: MessageActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        self.load_messages()
