"""The borrowing and lending queues: the screen staff work from all day.

Every change of what the queue shows (direction, status filter, text, sort, page) re-queries
through the ``Desk`` in an exclusive thread worker. Each query carries a generation number and
results from an older generation are dropped, so fast typing in the filter never paints stale
rows. The counts per status load in their own worker and never hold the table back.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Input, Label, Static
from textual.worker import get_current_worker

from ill_tui import workflow
from ill_tui.clock import Clock, utcnow
from ill_tui.models import Direction
from ill_tui.services.queue import (
    ALL,
    OPEN,
    QueryCancelled,
    QueuePage,
    QueueQuery,
    QueueRow,
    SortKey,
)
from screens.base import ReportsWorkerErrors
from screens.messages import MessagesScreen
from screens.new_request import Created, NewRequestModal
from screens.request_detail import RequestDetailScreen
from screens.status_change import StatusChangeModal
from screens.verify import STATUS_MARK, BatchVerifyModal, VerifyScreen
from screens.widgets.key_bar import KeyBar
from screens.widgets.queue_table import Column, QueueTable
from screens.widgets.status_panel import StatusPanel

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

# `o` walks the sort columns in the order they appear in the table.
SORT_CYCLE: tuple[SortKey, ...] = (
    SortKey.ID,
    SortKey.STATUS,
    SortKey.TITLE,
    SortKey.PARTY,
    SortKey.AGE,
    SortKey.NEEDED_BY,
)
PARTY_LABEL = {Direction.BORROWING: "Patron", Direction.LENDING: "Library"}
# Column widths for a narrow (80-column SSH) terminal and a wide one; the title takes the rest.
_NARROW_WIDTHS = {"id": 5, "status": 15, "party": 16, "age": 5, "needed_by": 11}
_WIDE_WIDTHS = {"id": 7, "status": 22, "party": 26, "age": 5, "needed_by": 11}
_WIDE_FROM = 100
# Seconds of quiet typing before the counts per status are recounted.
COUNTS_DELAY = 0.25
# Seconds before the header says a page is still loading.
LOADING_AFTER = 0.15
# Seconds the frames of a filter key are held waiting for the key's query (none started)
# or for its page (see QueueScreen.key_arriving).
HOLD_NO_QUERY = 0.03
HOLD_MAX = 0.1


@dataclass
class PageLoaded(Message):
    """A page of the queue came back from the database."""

    generation: int
    page: QueuePage


@dataclass
class CountsLoaded(Message):
    """The counts per status of the queue came back."""

    query: QueueQuery
    counts: dict[str, int]


def open_count(direction: Direction, counts: dict[str, int]) -> int:
    """How many of ``counts`` are in a status that is not final."""
    return sum(n for status, n in counts.items() if workflow.is_open(direction, status))


def status_phrase(query: QueueQuery) -> str:
    """``open borrowing requests``, ``borrowing requests in Loaned`` ..."""
    if query.status == OPEN:
        return f"open {query.direction.value} requests"
    if query.status == ALL:
        return f"{query.direction.value} requests"
    return f"{query.direction.value} requests in status {query.status}"


class QueueScreen(ReportsWorkerErrors, Screen[None]):
    """Borrowing and lending queues: table, counts per status, filters, sort and paging."""

    # (queue.tcss is loaded by the app with its own sheet: the queue is its default screen.)
    # The table has the focus from the start. (None would mean the app's "*": Textual would
    # focus the search box, the first focusable widget, as the screen composes, and on_mount
    # would move the focus on: two focus changes, each restyling, before the first frame.)
    AUTO_FOCUS = "#queue-table"
    help_title: ClassVar[str] = "Queues"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "show_direction('borrowing')", "Borrowing", id="queue.borrowing",
                show=False, tooltip="Show the borrowing queue"),
        Binding("l", "show_direction('lending')", "Lending", id="queue.lending",
                show=False, tooltip="Show the lending queue"),
        Binding("n", "new_request", "New", id="queue.new",
                tooltip="Enter a new request"),
        Binding("c", "change_status", "Status", id="queue.change_status",
                tooltip="Change the status of the highlighted request"),
        Binding("v", "verify", "Verify", id="queue.verify",
                tooltip="Verify the highlighted request's citation against the catalogs"),
        Binding("V", "verify_all_new", "Verify all New", id="queue.verify_all_new", show=False,
                tooltip="Verify every New borrowing request (progress bar, summary at the end)"),
        Binding("s", "filter_status", "Filter", id="queue.filter_status",
                tooltip="Choose the status shown (Open, All or one), with counts"),
        Binding("slash", "focus_filter", "Search", id="queue.search",
                tooltip="Filter by words: title, author, ISBN, patron or library"),
        Binding("o", "cycle_sort", "Sort", id="queue.sort",
                tooltip="Sort by the next column"),
        Binding("r", "reverse_sort", "Reverse", id="queue.reverse", show=False,
                tooltip="Reverse the sort order"),
        Binding("right_square_bracket", "next_page", "Next page", id="queue.next_page",
                show=False, tooltip="Show the next page of the queue"),
        Binding("left_square_bracket", "previous_page", "Previous page",
                id="queue.previous_page", show=False,
                tooltip="Show the previous page of the queue"),
        Binding("ctrl+r,f5", "refresh", "Refresh", id="queue.refresh", show=False,
                tooltip="Load the queue again from the database"),
        Binding("escape", "leave_filter", "Back to table", id="queue.leave_filter",
                tooltip="Leave the search box and return to the table"),
        Binding("m", "open_messages", "Messages", id="queue.messages",
                tooltip="ISO 18626 messages: pending, failed (retry or cancel), sent, received"),
    ]  # fmt: skip

    def __init__(
        self,
        desk: Desk,
        *,
        clock: Clock = utcnow,
        home_currency: str = "USD",
        locale: str = "en_US",
        first_page: QueuePage | None = None,
    ) -> None:
        super().__init__()
        self.desk = desk
        # the default queue's first page, read before the app started (see IllApp)
        self._first_page = first_page
        self.clock = clock
        self.home_currency = home_currency
        self.locale = locale
        self.query_state = QueueQuery()
        self.page: QueuePage | None = None
        self.counts: dict[str, int] = {}
        self._counts_query: QueueQuery | None = None
        self._generation = 0
        self._select_after_load: int | None = None
        self._counts_timer: Timer | None = None
        # True from the moment a recount is due until the counts of the current query are
        # shown (tests and the benchmark wait on it).
        self.counts_pending = False
        self._hint_text = ""
        self._reload_on_resume = False
        self._resumed = False
        self._status_before_panel = OPEN
        self._held: AbstractContextManager[None] | None = None
        self._hold_timer: Timer | None = None
        self._show_loading = False
        self._loading_timer: Timer | None = None

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="queue-top"):
            yield Static(id="queue-tabs")
            yield Static(id="page-info")
        yield Static(id="counts-bar")
        with Horizontal(id="filter-row"):
            yield Input(
                placeholder="/ to search: title, author, ISBN, patron, library…",
                id="filter-input",
                compact=True,
            )
            yield Label("", id="filter-hint")
        with Horizontal(id="queue-body"):
            yield StatusPanel(id="status-panel")
            # one of these two shows at a time
            yield QueueTable(id="queue-table")
            yield Static("", id="empty-state")
        yield KeyBar()

    def on_mount(self) -> None:
        self._paint_header()
        self.query_one(QueueTable).focus()
        first, self._first_page = self._first_page, None
        if first is not None and first.query == self.query_state:
            # Read before Textual started: the rows go in now, before the screen's first
            # layout, so that one layout and one frame show them (as a message they came a
            # layout pass later).
            self._generation += 1
            self.on_page_loaded(PageLoaded(self._generation, first))
            self._schedule_counts()
        else:
            # Ask for the first page now, while Textual is still laying the screen out.
            self.reload()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._resumed:
            # The first resume is the app starting: every widget was styled as it mounted a
            # moment ago. Textual's handler (it runs after this one) would restyle them all
            # again before the first frame; later resumes (back from a dialog) still do.
            self._resumed = True
            event.refresh_styles = False
            return
        # Back from a screen that may have changed requests (detail, status change).
        # Dialogs that change nothing (status panel, keys, palette) do not cost a reload;
        # the new-request form reloads through its own callback.
        if self._reload_on_resume:
            self._reload_on_resume = False
            self.reload()

    # -- loading ------------------------------------------------------------------------------

    def reload(self, *, counts: bool = True) -> None:
        """Query the current page (and, unless told otherwise, the counts) again."""
        self._generation += 1
        # The header changes with the rows (one frame). Most pages arrive within a frame or
        # two; say "loading…" only when one does not, so the header does not flicker (nor
        # spend the frame the rows need) on every keystroke.
        self._show_loading = False
        if self._loading_timer is not None:
            self._loading_timer.stop()
        self._loading_timer = self.set_timer(LOADING_AFTER, self._loading_is_slow)
        if self._held is not None:  # a held key did start a query: wait for its page
            self._hold_frames(HOLD_MAX)
        self.load_queue_page(self._generation, self.query_state)
        if counts:
            self._schedule_counts()

    def _schedule_counts(self) -> None:
        # The page goes first; the counts follow once typing pauses, so a burst of
        # keystrokes costs one count, not one per key.
        if self._counts_timer is not None:
            self._counts_timer.stop()
        self.counts_pending = True
        query = self.query_state
        self._counts_timer = self.set_timer(COUNTS_DELAY, lambda: self.load_status_counts(query))

    def key_arriving(self) -> None:
        """A key is about to reach a filter (search box or status panel): hold the screen's
        frames until the page it asks for.

        A key changes the filter (the typed letter, the panel's cursor and counts) and then,
        a query later, the rows. Painted apart, the rows wait for Textual's second next frame
        slot; held together they show in the first. A key that starts no query is let go
        after ``HOLD_NO_QUERY``; a page that is slow, after ``HOLD_MAX`` (the filter then
        shows its change and the rows follow).
        """
        if self.focused in (
            self.query_one("#filter-input", Input),
            self.query_one(StatusPanel),
        ):
            self._hold_frames(HOLD_NO_QUERY)

    def _hold_frames(self, seconds: float) -> None:
        if self._held is None:
            self._held = self.app.batch_update()
            self._held.__enter__()
        if self._hold_timer is not None:
            self._hold_timer.stop()
        self._hold_timer = self.set_timer(seconds, self._release_frames)

    def _release_frames(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)
            # A timer calls us outside the screen's message loop, and the screen repaints
            # only when that loop goes idle: prompt it, or what changed while held (the key
            # bar after Escape, say) would wait for the next event to show.
            self.check_idle()

    def on_unmount(self) -> None:
        self._release_frames()

    def _loading_is_slow(self) -> None:
        if self.page is None or self.page.query != self.query_state:
            self._show_loading = True
            self._paint_header()

    def set_query(self, *, counts: bool = True, **changes: object) -> None:
        """Change what the queue shows and reload it."""
        self.query_state = dataclasses.replace(self.query_state, **changes)  # type: ignore[arg-type]
        self.reload(counts=counts)

    @work(thread=True, exclusive=True, group="queue-page", exit_on_error=False)
    def load_queue_page(self, generation: int, query: QueueQuery) -> None:
        """Worker: one page of the queue."""
        page = self.desk.load_page(query)
        if not get_current_worker().is_cancelled:
            self.post_message(PageLoaded(generation, page))

    @work(thread=True, exclusive=True, group="queue-counts", exit_on_error=False)
    def load_status_counts(self, query: QueueQuery) -> None:
        """Worker: the counts per status for the counts bar and the status filter."""
        worker = get_current_worker()
        try:
            counts = self.desk.status_counts(query, cancelled=lambda: worker.is_cancelled)
        except QueryCancelled:
            return  # a newer count replaced this one
        if not worker.is_cancelled:
            self.post_message(CountsLoaded(query, counts))

    def on_page_loaded(self, message: PageLoaded) -> None:
        if message.generation != self._generation:
            return  # a newer query is on its way; this one is stale
        self.page = message.page
        self._paint_table(message.page)
        self._paint_header()
        self._release_frames()

    def on_counts_loaded(self, message: CountsLoaded) -> None:
        current = self.query_state
        if (message.query.direction, message.query.text) != (current.direction, current.text):
            return  # counts of another queue or search: stale
        self.counts = message.counts
        self._counts_query = message.query
        self.counts_pending = False
        self._paint_counts()
        panel = self.query_one(StatusPanel)
        if panel.display:
            panel.update_counts(current.direction, message.counts)

    # -- painting -----------------------------------------------------------------------------

    def _column_widths(self) -> dict[str, int]:
        # the table's own width: narrower while the status panel is open beside it
        width = self.query_one(QueueTable).size.width or self.size.width or self.app.size.width
        widths = dict(_WIDE_WIDTHS if width >= _WIDE_FROM else _NARROW_WIDTHS)
        widths["title"] = 14  # the least it gets; it stretches to the table's width
        return widths

    def _paint_table(self, page: QueuePage) -> None:
        table = self.query_one(QueueTable)
        previous_key = table.highlighted_key
        previous_row = table.cursor_row
        query = page.query
        labels = {
            "id": "ID",
            "status": "Status",
            "title": "Title",
            "party": PARTY_LABEL[query.direction],
            "age": "Age",
            "needed_by": "Needed by",
        }
        widths = self._column_widths()
        columns = []
        for key, label in labels.items():
            if key == query.sort.value:
                label = f"{label} {self._sort_arrow(query)}"
            justify = "right" if key in ("id", "age") else "left"
            columns.append(Column(key, label, widths[key], justify, flex=key == "title"))
        table.set_columns(columns)
        now = self.clock()
        rows = [(str(row.id), self._cells(row, now)) for row in page.rows]
        keys = {key: i for i, (key, _) in enumerate(rows)}
        target = self._select_after_load
        if target is not None and str(target) in keys:
            cursor = keys[str(target)]
            self._select_after_load = None
        elif previous_key is not None and previous_key in keys:
            cursor = keys[previous_key]
        else:
            cursor = min(previous_row, max(0, len(rows) - 1))
        table.set_rows(rows, cursor=cursor)
        empty = self.query_one("#empty-state", Static)
        if page.rows:
            empty.display = False
            table.display = True
        else:
            table.display = False
            empty.display = True
            empty.update(self._empty_message(page))

    @staticmethod
    def _cells(row: QueueRow, now: datetime) -> list[str]:
        # the verification result rides in the status cell: "New ✓", "New ?", "New ✗"
        mark = STATUS_MARK.get(row.verification or "", "")
        return [
            str(row.id),
            f"{row.status} {mark}" if mark else row.status,
            row.title,
            row.party,
            str(row.age_days(now)),
            row.needed_by.isoformat() if row.needed_by else "",
        ]

    @staticmethod
    def _sort_arrow(query: QueueQuery) -> str:
        # Age ascending means oldest first, i.e. the shown numbers go down.
        ascending = query.descending if query.sort is SortKey.AGE else not query.descending
        return "▲" if ascending else "▼"

    def _empty_message(self, page: QueuePage) -> Text:
        query = page.query
        text = Text(f"No {status_phrase(query)}")
        if query.text.strip():
            text.append(" match “")
            text.append(query.text.strip(), style="bold")
            text.append("”")
        text.append(".")
        if query.page:
            text.append(f" (page {query.page + 1}; press [ for the previous page)")
        hints = []
        if query.status != ALL:
            hints.append("s: show another status")
        if query.text.strip():
            hints.append("/: change the search")
        hints.append("n: new request")
        text.append("\n" + "   ".join(hints), style="dim")
        return text

    def _paint_header(self) -> None:
        query = self.query_state
        tabs = Text()
        for direction in Direction:
            label = f" {direction.value.title()} ({direction.value[0]}) "
            tabs.append(label, style="bold reverse" if direction is query.direction else "dim")
            tabs.append(" ")
        # Fixed-size widgets: repaint without a layout pass of the whole screen, which costs
        # more than everything else between a keystroke and its frame.
        self.query_one("#queue-tabs", Static).update(tabs, layout=False)

        info = Text(f"{query.status} · by {query.sort.value.replace('_', '-')} ")
        info.append(self._sort_arrow(query))
        info.append(f" · page {query.page + 1}")
        page = self.page
        if page is not None and page.query == query:
            if page.rows:
                first = query.page * query.page_size + 1
                info.append(f" · rows {first}–{first + len(page.rows) - 1}")
            else:
                info.append(" · no rows")
            if page.has_more:
                info.append(" · more ]")
        elif self._show_loading:
            info.append(" · loading…", style="italic")
        self.query_one("#page-info", Static).update(info, layout=False)

        hint = self.query_one("#filter-hint", Label)
        ignored = page.ignored_terms if page is not None and page.query == query else ()
        text = "Too short, ignored: " + ", ".join(ignored) if ignored else ""
        if text != self._hint_text:  # its width follows its text: lay out only on change
            self._hint_text = text
            hint.update(text)

    def _paint_counts(self) -> None:
        direction = self.query_state.direction
        counts = self.counts
        bar = Text()

        def part(label: str, value: int, active: bool) -> None:
            if bar:
                bar.append(" · ", style="dim")
            style = "bold reverse" if active else ("" if value else "dim")
            bar.append(f"{label} {value}", style=style)

        current = self.query_state.status
        part(OPEN, open_count(direction, counts), current == OPEN)
        part(ALL, sum(counts.values()), current == ALL)
        for status in workflow.STATUSES[direction]:
            value = counts.get(status.value, 0)
            if value or current == status.value:
                part(status.value, value, current == status.value)
        self.query_one("#counts-bar", Static).update(bar, layout=False)  # fixed height

    def on_resize(self) -> None:
        if self.page is not None:
            self._paint_table(self.page)

    # -- events -------------------------------------------------------------------------------

    @on(Input.Changed, "#filter-input")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.query_state.text:
            self.set_query(text=event.value, page=0)

    @on(Input.Submitted, "#filter-input")
    def _filter_submitted(self) -> None:
        self.query_one(QueueTable).focus()

    @on(QueueTable.RowSelected, "#queue-table")
    def _row_selected(self, event: QueueTable.RowSelected) -> None:
        self._open(int(event.row_key))

    @on(QueueTable.HeaderSelected, "#queue-table")
    def _header_selected(self, event: QueueTable.HeaderSelected) -> None:
        key = SortKey(event.column_key)
        if key is self.query_state.sort:
            self.set_query(descending=not self.query_state.descending, page=0, counts=False)
        else:
            self.set_query(sort=key, descending=False, page=0, counts=False)

    @on(QueueTable.EdgePaged, "#queue-table")
    def _edge_paged(self, event: QueueTable.EdgePaged) -> None:
        if event.forward:
            self.action_next_page()
        else:
            self.action_previous_page()

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_filter":
            return self.focused is self.query_one("#filter-input", Input)
        if action in ("change_status", "verify"):
            return self.highlighted_row() is not None or None
        if action == "next_page":
            return bool(self.page and self.page.has_more) or None
        if action == "previous_page":
            return self.query_state.page > 0 or None
        return True

    def highlighted_row(self) -> QueueRow | None:
        """The row under the cursor, if the table shows any."""
        table = self.query_one(QueueTable)
        if self.page is None or not table.row_count or not table.display:
            return None
        row_key = table.highlighted_key
        return next((r for r in self.page.rows if str(r.id) == row_key), None)

    def action_show_direction(self, direction: str) -> None:
        """Switch between the borrowing and the lending queue."""
        if Direction(direction) is not self.query_state.direction:
            panel = self.query_one(StatusPanel)
            if panel.display:  # its statuses belong to the other queue
                panel.display = False
                self.query_one(QueueTable).focus()
                self.call_after_refresh(self._refit_table)
            self.page = None
            self.set_query(direction=Direction(direction), status=OPEN, page=0)

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        index = SORT_CYCLE.index(self.query_state.sort)
        self.set_query(
            sort=SORT_CYCLE[(index + 1) % len(SORT_CYCLE)], descending=False, page=0, counts=False
        )

    def action_reverse_sort(self) -> None:
        """Reverse the sort order."""
        self.set_query(descending=not self.query_state.descending, page=0, counts=False)

    def action_next_page(self) -> None:
        """Show the next page, if there is one."""
        if self.page is not None and self.page.has_more:
            self.set_query(page=self.query_state.page + 1, counts=False)
            self.query_one(QueueTable).move_cursor(row=0)

    def action_previous_page(self) -> None:
        """Show the previous page, if there is one."""
        if self.query_state.page > 0:
            self.set_query(page=self.query_state.page - 1, counts=False)

    def action_refresh(self) -> None:
        """Load the queue and the counts again."""
        self.reload()
        self.notify("Queue refreshed.", timeout=2)

    def action_focus_filter(self) -> None:
        """Put the cursor in the search box."""
        self.query_one("#filter-input", Input).focus()

    def action_leave_filter(self) -> None:
        """Return from the search box to the table."""
        self.query_one(QueueTable).focus()

    def action_filter_status(self) -> None:
        """Open the status panel: arrow through the statuses, the queue follows."""
        panel = self.query_one(StatusPanel)
        counts = (
            self.counts
            if self._counts_query is not None
            and self._counts_query.direction == self.query_state.direction
            else None
        )
        self._status_before_panel = self.query_state.status
        panel.show_statuses(self.query_state.direction, counts, current=self.query_state.status)
        panel.display = True
        panel.focus()
        self.call_after_refresh(self._refit_table)

    def _refit_table(self) -> None:
        """Lay the columns out again for the table's new width (the panel opened or shut)."""
        if self.page is not None:
            self._paint_table(self.page)

    @on(StatusPanel.RowHighlighted, "#status-panel")
    def _status_highlighted(self, event: StatusPanel.RowHighlighted) -> None:
        if event.row_key != self.query_state.status:
            self.set_query(status=event.row_key, page=0, counts=False)
            self._paint_counts()

    @on(StatusPanel.Closed)
    def _status_panel_closed(self, event: StatusPanel.Closed) -> None:
        if event.revert and self._status_before_panel != self.query_state.status:
            self.set_query(status=self._status_before_panel, page=0, counts=False)
            self._paint_counts()
        self.query_one(StatusPanel).display = False
        self.query_one(QueueTable).focus()
        self.call_after_refresh(self._refit_table)

    def action_new_request(self) -> None:
        """Open the new-request form."""

        def created(result: Created | None) -> None:
            if result is None:
                return
            self.notify(f"Request {result.request_id} created.")
            self._select_after_load = result.request_id
            if result.direction is not self.query_state.direction:
                self.page = None
                self.query_state = dataclasses.replace(
                    self.query_state, direction=result.direction, status=OPEN, page=0
                )
            self.reload()

        self.app.push_screen(
            NewRequestModal(
                self.desk, direction=self.query_state.direction, home_currency=self.home_currency
            ),
            created,
        )

    def action_open_messages(self) -> None:
        """Open the Messages screen (the ISO 18626 outbox and message log)."""
        self.app.push_screen(MessagesScreen(self.desk, clock=self.clock, locale=self.locale))

    def action_change_status(self) -> None:
        """Change the status of the highlighted request."""
        row = self.highlighted_row()
        if row is None:
            self.notify("No request is highlighted.", severity="warning")
            return

        def changed(status: str | None) -> None:
            if status is not None:
                self.notify(f"Request {row.id} is now {status}.")

        self._reload_on_resume = True
        self.app.push_screen(
            StatusChangeModal(
                self.desk,
                request_id=row.id,
                direction=self.query_state.direction,
                status=row.status,
                version=row.version,
                title=row.title,
            ),
            changed,
        )

    def action_verify(self) -> None:
        """Open the Verify screen for the highlighted request."""
        row = self.highlighted_row()
        if row is None:
            return
        self._reload_on_resume = True
        self.app.push_screen(VerifyScreen(self.desk, row.id))

    def action_verify_all_new(self) -> None:
        """Verify every New borrowing request in a batch with a progress bar."""

        def finished(summary: object) -> None:
            self.reload()

        self.app.push_screen(BatchVerifyModal(self.desk), finished)

    def _open(self, request_id: int) -> None:
        self._reload_on_resume = True
        self.app.push_screen(
            RequestDetailScreen(self.desk, request_id, locale=self.locale, clock=self.clock)
        )
