"""Choose which status a queue shows: Open, All, or one status of that direction, with counts."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList
from textual.widgets.option_list import Option

from ill_tui import workflow
from ill_tui.models import Direction
from ill_tui.services.queue import ALL, OPEN
from screens import SCREENS_DIR


class StatusFilterModal(ModalScreen[str | None]):
    """Dismisses with the chosen filter (``Open``, ``All`` or a status), or None on Escape."""

    CSS_PATH = SCREENS_DIR / "status_filter.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="status_filter.cancel"),
    ]

    def __init__(self, direction: Direction, counts: dict[str, int], *, current: str) -> None:
        super().__init__()
        self.direction = direction
        self.counts = counts
        self.current = current

    def compose(self) -> ComposeResult:
        yield Footer()
        known = bool(self.counts)

        def prompt(label: str, value: int) -> str:
            return f"{label:<24} {value:>7}" if known else label

        statuses = workflow.STATUSES[self.direction]
        open_total = sum(n for s, n in self.counts.items() if workflow.is_open(self.direction, s))
        options = [
            Option(prompt(f"{OPEN} (not final)", open_total), id=OPEN),
            Option(prompt(ALL, sum(self.counts.values())), id=ALL),
            None,
            *(Option(prompt(s.value, self.counts.get(s.value, 0)), id=s.value) for s in statuses),
        ]
        with Vertical(id="status-filter-dialog"):
            yield Label(f"Show {self.direction.value} requests in status", id="status-filter-title")
            yield OptionList(*options, id="status-filter-list")
            yield Label("Enter chooses · Escape cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        option_list.highlighted = option_list.get_option_index(self.current)
        option_list.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
