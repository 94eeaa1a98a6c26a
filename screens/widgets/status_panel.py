"""The status panel: choose which status a queue shows, beside the table, with counts.

Like the facets of a library catalogue: moving the highlight filters the queue at once, so
staff can arrow through the statuses and watch the queue change. Enter keeps the choice and
returns to the table; Escape puts back the status the panel was opened with.

It is a widget on the queue screen rather than a dialog: closing a dialog makes Textual tear
down a screen and lay out the one below, which alone took longer (~50 ms) than the whole
filter-to-repaint budget.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message

from ill_tui import workflow
from ill_tui.models import Direction
from ill_tui.services.queue import ALL, OPEN
from screens.widgets.queue_table import Column, LineTable


def status_rows(direction: Direction, counts: dict[str, int] | None) -> list[tuple[str, list[str]]]:
    """Open, All, then every status of ``direction``, each with its count when known."""
    known = counts or {}

    def count(value: int) -> str:
        return f"{value:,}" if counts is not None else "…"

    open_total = sum(n for s, n in known.items() if workflow.is_open(direction, s))
    return [
        (OPEN, [OPEN, count(open_total)]),
        (ALL, [ALL, count(sum(known.values()))]),
        *((s.value, [s.value, count(known.get(s.value, 0))]) for s in workflow.STATUSES[direction]),
    ]


class StatusPanel(LineTable):
    """The statuses of one queue with their counts; reports when staff are done with it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "keep", "Keep", id="status_panel.keep",
                tooltip="Keep this status filter and return to the table"),
        Binding("escape", "revert", "Put back", id="status_panel.revert",
                tooltip="Put back the status shown before and return to the table"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    StatusPanel {
        width: 38;
        height: 1fr;
        display: none;
        scrollbar-size-vertical: 1;
        border-right: vkey $panel;
    }
    """

    class Closed(Message):
        """Staff finished with the panel: ``revert`` when they pressed Escape."""

        def __init__(self, revert: bool) -> None:
            super().__init__()
            self.revert = revert

    def show_statuses(
        self, direction: Direction, counts: dict[str, int] | None, *, current: str
    ) -> None:
        """Fill the panel for ``direction`` and put the cursor on ``current`` (no filtering)."""
        self.set_columns(
            [Column("status", "Status", 22), Column("count", "Requests", 9, justify="right")]
        )
        rows = status_rows(direction, counts)
        keys = [key for key, _ in rows]
        self.set_rows(rows, cursor=keys.index(current) if current in keys else 0)

    def update_counts(self, direction: Direction, counts: dict[str, int]) -> None:
        """Put fresh counts in, keeping the cursor where it is."""
        self.set_rows(status_rows(direction, counts), cursor=self.cursor_row)

    def action_keep(self) -> None:
        self.post_message(self.Closed(revert=False))

    def action_revert(self) -> None:
        self.post_message(self.Closed(revert=True))

    def _on_line_table_row_selected(self, event: LineTable.RowSelected) -> None:
        # a click on the highlighted status keeps it, as Enter does
        event.stop()
        self.post_message(self.Closed(revert=False))
