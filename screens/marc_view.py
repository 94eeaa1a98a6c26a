"""A MARC record as cataloguers read it: tag, indicators, then ``$a`` subfields, one field a line.

The record is parsed by the service (``verification.marc_lines``) in a thread worker; the
screen only lays the lines out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Label, Static

from ill_tui.services.verification import MarcLine, marc_lines
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.widgets.key_bar import KeyBar


@dataclass
class MarcParsed(Message):
    """The record's lines are ready (or why there are none)."""

    lines: list[MarcLine]
    error: str = ""


def render_line(line: MarcLine) -> Text:
    """``245 10 $a The loom of destiny $c by Arthur Stringer`` with tag, indicators and subfield
    codes styled apart."""
    text = Text()
    text.append(f"{line.tag:<3}", style="bold cyan")
    if line.data or not line.subfields:
        text.append("    ")
        text.append(line.data)
        return text
    text.append(f" {line.indicators} ", style="magenta")
    for number, (code, value) in enumerate(line.subfields):
        if number:
            text.append(" ")
        text.append(f"${code}", style="bold yellow")
        text.append(f" {value}")
    return text


class MarcViewScreen(ReportsWorkerErrors, Screen[None]):
    """One MARC record, field by field; Escape goes back."""

    CSS_PATH = SCREENS_DIR / "marc_view.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="marc.back", tooltip="Back to the candidates"),
    ]

    def __init__(self, marcxml: str, *, title: str) -> None:
        super().__init__()
        self.marcxml = marcxml
        self.record_title = title
        self.help_title = "MARC record"
        self.lines: list[MarcLine] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(Text(self.record_title, style="bold"), id="marc-heading")
        with VerticalScroll(id="marc-scroll"):
            yield Static("Reading the record…", id="marc-record")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#marc-scroll", VerticalScroll).focus()
        self.parse_record()

    @work(thread=True, exclusive=True, group="marc-view", exit_on_error=False)
    def parse_record(self) -> None:
        """Worker: parse the stored MARCXML into lines."""
        try:
            lines = marc_lines(self.marcxml)
        except ValueError as exc:
            self.post_message(MarcParsed([], str(exc)))
            return
        self.post_message(MarcParsed(lines))

    def on_marc_parsed(self, message: MarcParsed) -> None:
        self.lines = message.lines
        record = self.query_one("#marc-record", Static)
        if message.error:
            record.update(Text(f"This record cannot be shown: {message.error}", style="red"))
            return
        record.update(Text("\n").join(render_line(line) for line in message.lines))

    def action_back(self) -> None:
        """Back to the candidates."""
        self.dismiss(None)
