"""Add a note to a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea
from textual.worker import Worker, WorkerState

from ill_tui.services.requests import RequestNotFound, ValidationFailed
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

EMPTY_NOTE = "The note is empty; type something or press Escape."


@dataclass
class NoteAdded(Message):
    """The desk stored the note."""

    note_id: int


@dataclass
class NoteRefused(Message):
    """The desk refused the note; ``reason`` says why."""

    reason: str


class NoteModal(ReportsWorkerErrors, ModalScreen[int | None]):
    """A TextArea for the note; dismisses with the new note's id, or None when cancelled."""

    CSS_PATH = SCREENS_DIR / "note.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="note.save", tooltip="Save the note"),
        Binding("escape", "cancel", "Cancel", id="note.cancel", tooltip="Close without saving"),
    ]

    def __init__(self, desk: Desk, *, request_id: int) -> None:
        super().__init__()
        self.desk = desk
        self.request_id = request_id
        self._busy = False

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="note-dialog"):
            yield Label(f"Note on request {self.request_id}", id="note-title")
            yield TextArea(id="note-text", soft_wrap=True, tab_behavior="focus")
            yield Label("", id="note-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="note-save", variant="primary")
                yield Button("Cancel (esc)", id="note-cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    @on(Button.Pressed, "#note-save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#note-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(TextArea.Changed)
    def _text_changed(self) -> None:
        self.query_one("#note-error", Label).update("")

    def action_save(self) -> None:
        """Store the note (an empty note is refused here, before any database work)."""
        text = self.query_one(TextArea).text
        if not text.strip():
            self.query_one("#note-error", Label).update(EMPTY_NOTE)
            return
        if self._busy:
            return
        self._busy = True
        self.save_note(text)

    @work(thread=True, exclusive=True, group="note", exit_on_error=False)
    def save_note(self, text: str) -> None:
        """Worker: ask the desk to store the note."""
        try:
            note = self.desk.add_note(self.request_id, text)
        except ValidationFailed as exc:
            self.post_message(NoteRefused(" ".join(exc.errors.values())))
            return
        except RequestNotFound as exc:
            self.post_message(NoteRefused(str(exc)))
            return
        assert note.id is not None
        self.post_message(NoteAdded(note.id))

    def on_note_added(self, message: NoteAdded) -> None:
        self.dismiss(message.note_id)

    def on_note_refused(self, message: NoteRefused) -> None:
        self._busy = False
        self.query_one("#note-error", Label).update(message.reason)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self._busy = False

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
