"""Change a request's status: only the transitions the workflow allows are offered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from ill_tui import workflow
from ill_tui.models import Direction
from ill_tui.services.requests import RequestNotFound, StaleRequest
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

CLOSED_MESSAGE = "This request is closed; no status change is possible."


@dataclass
class StatusChanged(Message):
    """The desk applied the transition."""

    status: str


@dataclass
class StatusChangeRefused(Message):
    """The desk refused the transition; ``reason`` says why, in words for staff."""

    reason: str


class StatusChangeModal(ReportsWorkerErrors, ModalScreen[str | None]):
    """Offers ``workflow.transitions_from`` the request's status; dismisses with the new status."""

    CSS_PATH = SCREENS_DIR / "status_change.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", id="status_change.apply",
                tooltip="Apply the chosen status change"),
        Binding("escape", "cancel", "Cancel", id="status_change.cancel",
                tooltip="Close without changing anything"),
    ]  # fmt: skip

    def __init__(
        self,
        desk: Desk,
        *,
        request_id: int,
        direction: Direction | str,
        status: str,
        version: int,
        title: str = "",
    ) -> None:
        super().__init__()
        self.desk = desk
        self.request_id = request_id
        self.direction = Direction(direction)
        self.status = status
        self.version = version
        self.request_title = title
        self.transitions = workflow.transitions_from(self.direction, status)
        self._busy = False

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="status-change-dialog"):
            yield Label(
                f"Request {self.request_id} · {self.direction.value} · now {self.status}",
                id="status-change-title",
            )
            if self.request_title:
                yield Label(self.request_title, id="status-change-subtitle")
            if not self.transitions:
                yield Label(CLOSED_MESSAGE, id="status-change-closed")
                with Horizontal(classes="dialog-buttons"):
                    yield Button("Close", id="status-change-close")
                return
            yield OptionList(
                *(
                    Option(
                        f"{t.target.value} — {t.label}"
                        + ("  (reason required)" if t.reason_required else ""),
                        id=t.target.value,
                    )
                    for t in self.transitions
                ),
                id="transition-list",
            )
            yield Input(placeholder="Reason (optional)", id="reason-input")
            yield Label("", id="status-change-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply (ctrl+s)", id="status-change-apply", variant="primary")
                yield Button("Cancel (esc)", id="status-change-cancel")

    def on_mount(self) -> None:
        if self.transitions:
            option_list = self.query_one(OptionList)
            option_list.highlighted = 0
            option_list.focus()
        else:
            self.query_one("#status-change-close", Button).focus()

    def selected(self) -> workflow.Transition | None:
        """The transition under the cursor of the list."""
        if not self.transitions:
            return None
        index = self.query_one(OptionList).highlighted
        return None if index is None else self.transitions[index]

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        transition = self.selected()
        reason = self.query_one("#reason-input", Input)
        if transition is not None and transition.reason_required:
            reason.placeholder = f"Reason (required for {transition.target.value})"
        else:
            reason.placeholder = "Reason (optional)"
        self._show_error("")

    @on(OptionList.OptionSelected)
    def _option_selected(self) -> None:
        self.query_one("#reason-input", Input).focus()

    @on(Input.Submitted, "#reason-input")
    def _reason_submitted(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#status-change-apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#status-change-cancel, #status-change-close")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_apply(self) -> None:
        """Apply the highlighted transition with the reason typed."""
        transition = self.selected()
        if transition is None or self._busy:
            return
        reason = self.query_one("#reason-input", Input).value.strip()
        if transition.reason_required and not reason:
            self._show_error(f"A reason is required to change the status to {transition.target}.")
            self.query_one("#reason-input", Input).focus()
            return
        self._busy = True
        self.apply_status_change(transition.target.value, reason or None)

    @work(thread=True, exclusive=True, group="status-change", exit_on_error=False)
    def apply_status_change(self, target: str, reason: str | None) -> None:
        """Worker: ask the desk to apply the transition."""
        try:
            request = self.desk.change_status(
                self.request_id, target, reason=reason, expected_version=self.version
            )
        except (
            workflow.IllegalTransition,
            workflow.ReasonRequired,
            StaleRequest,
            RequestNotFound,
        ) as exc:
            self.post_message(StatusChangeRefused(str(exc)))
            return
        self.post_message(StatusChanged(request.status))

    def on_status_changed(self, message: StatusChanged) -> None:
        self.dismiss(message.status)

    def on_status_change_refused(self, message: StatusChangeRefused) -> None:
        self._busy = False
        self._show_error(message.reason)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # ReportsWorkerErrors (further up the MRO) reports the error; here we allow a retry.
        if event.state is WorkerState.ERROR:
            self._busy = False

    def _show_error(self, text: str) -> None:
        if self.transitions:
            self.query_one("#status-change-error", Label).update(text)

    def action_cancel(self) -> None:
        """Close without changing anything."""
        self.dismiss(None)
