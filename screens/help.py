"""The key list (``?``) and the command palette entries, both built from the active bindings.

Each action is declared once, as a ``Binding`` with an ``id`` and a description on its screen;
the footer, this help and the command palette all read those bindings, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Label

from screens import SCREENS_DIR
from screens.widgets.key_bar import KeyBar


@dataclass(frozen=True)
class KeyEntry:
    """One line of the key list."""

    key: str
    description: str
    where: str
    own: bool = False


def _where(node: object, screen: Screen[object]) -> str:
    if isinstance(node, App):
        return "everywhere"
    if node is screen:
        return "this screen"
    return f"{type(node).__name__}".removesuffix("Table").lower() or "widget"


def key_entries(screen: Screen[object]) -> list[KeyEntry]:
    """Every active key of ``screen`` (its widgets, itself and the app) that has a description."""
    app = screen.app
    entries: list[KeyEntry] = []
    seen: set[tuple[str, str]] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description:
            continue
        key = app.get_key_display(binding)
        if (key, binding.description) in seen:
            continue
        seen.add((key, binding.description))
        entries.append(
            KeyEntry(key, binding.description, _where(active.node, screen), bool(binding.id))
        )
    # Our own actions first (they carry an id), then widget and system keys; app-wide last.
    return sorted(entries, key=lambda e: (e.where == "everywhere", not e.own))


def palette_commands(screen: Screen[object]) -> Iterator[SystemCommand]:
    """Command palette entries for the enabled bindings of ``screen`` that carry an ``id``."""
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.id or binding.id in seen or not active.enabled:
            continue
        seen.add(binding.id)
        yield SystemCommand(
            binding.description,
            binding.tooltip or binding.description,
            partial(screen.app.run_action, binding.action, active.node),
        )


class HelpModal(ModalScreen[None]):
    """Lists the keys of the screen it was opened from."""

    CSS_PATH = SCREENS_DIR / "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, entries: list[KeyEntry], *, screen_title: str) -> None:
        super().__init__()
        self._entries = entries
        self._screen_title = screen_title

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="help-dialog"):
            yield Label(f"Keys: {self._screen_title}", id="help-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            yield Label("Escape closes this list.  Ctrl+P searches commands.", id="help-hint")

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.add_columns("Key", "Action", "Where")
        for entry in self._entries:
            table.add_row(entry.key, entry.description, entry.where)
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
