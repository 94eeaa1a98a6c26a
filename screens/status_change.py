"""Change a request's status: only the transitions the workflow allows are offered.

Transitions that ISO 18626 carries to the partner ask for what the message needs beyond the
status: the due date when a lender ships a loan, ``reasonUnfilled`` for Unfilled, and
``reasonRetry`` with the offered cost (and an optional retry-after date) for RetryPossible.
The desk's ``change_status`` (``services.exchange``) queues the message with the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from ill_tui import workflow
from ill_tui.models import Direction, Status
from ill_tui.money import InvalidMoney, Money
from ill_tui.services.exchange import ExchangeError, StatusDetails
from ill_tui.services.requests import RequestNotFound, StaleRequest
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

CLOSED_MESSAGE = "This request is closed; no status change is possible."

# Common ISO 18626 reasonUnfilled / reasonRetry values, offered as completions; partners may
# use others, so any text is accepted.
REASONS_UNFILLED = (
    "NotHeld", "NotOnShelf", "NotAvailableForILL", "OnLoan", "Lacking", "PoorCondition",
    "PolicyProblem", "NotFoundAsCited",
)  # fmt: skip
REASONS_RETRY = ("CostExceedsMaxCost", "OnLoan", "LoanCondition", "NotFoundAsCited")

# Which protocol fields a lending transition asks for (by target status).
FIELDS_FOR: dict[Status, tuple[str, ...]] = {
    Status.SHIPPED: ("due-date",),
    Status.UNFILLED: ("reason-unfilled",),
    Status.RETRY_POSSIBLE: ("reason-retry", "offered-amount", "offered-currency", "retry-after"),
}
ALL_FIELDS = ("due-date", "reason-unfilled", "reason-retry", "offered-amount",
              "offered-currency", "retry-after")  # fmt: skip


class DetailsInvalid(ValueError):
    """A protocol field staff typed cannot be used; the text says which and why."""


def _date(text: str, label: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DetailsInvalid(f"{label} must be a date like 2026-12-31, not {text!r}.") from None


def read_details(target: Status, values: dict[str, str]) -> StatusDetails | None:
    """The protocol details for a lending transition to ``target`` from the typed ``values``.

    Returns ``None`` when the transition carries no details.

    Raises:
        DetailsInvalid: a date that is not a date, an offered cost without a currency or that
            is not a positive amount in a known currency.
    """
    if target not in FIELDS_FOR:
        return None
    if target is Status.SHIPPED:
        return StatusDetails(due_date=_date(values.get("due-date", ""), "The due date"))
    if target is Status.UNFILLED:
        return StatusDetails(reason_unfilled=values.get("reason-unfilled") or None)
    amount_text = values.get("offered-amount", "")
    currency = values.get("offered-currency", "").upper()
    offered: Money | None = None
    if amount_text:
        try:
            amount = Decimal(amount_text.replace(",", ""))
        except InvalidOperation:
            raise DetailsInvalid(f"The offered cost {amount_text!r} is not an amount.") from None
        if not amount.is_finite() or amount <= 0:
            raise DetailsInvalid("The offered cost must be more than zero.")
        if not currency:
            raise DetailsInvalid("Give the currency of the offered cost, e.g. USD.")
        try:
            offered = Money(amount, currency)
        except InvalidMoney as exc:
            raise DetailsInvalid(str(exc)) from None
    return StatusDetails(
        reason_retry=values.get("reason-retry") or None,
        offered_costs=offered,
        retry_after=_date(values.get("retry-after", ""), "Retry after"),
    )


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
        home_currency: str | None = None,
    ) -> None:
        super().__init__()
        # the offered cost's currency defaults to our own (the desk's settings know it)
        settings = getattr(desk, "settings", None)
        self.home_currency = home_currency or (settings.home_currency if settings else "USD")
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
            with Vertical(id="protocol-fields"):
                yield Label("", id="protocol-title")
                yield Input(
                    placeholder="Due date YYYY-MM-DD (empty: today + the partner's loan period)",
                    id="due-date",
                )
                yield Input(
                    placeholder="reasonUnfilled, e.g. NotHeld (empty: the reason above)",
                    id="reason-unfilled",
                    suggester=SuggestFromList(REASONS_UNFILLED, case_sensitive=False),
                )
                yield Input(
                    placeholder="reasonRetry, e.g. CostExceedsMaxCost (empty: the reason above)",
                    id="reason-retry",
                    suggester=SuggestFromList(REASONS_RETRY, case_sensitive=False),
                )
                with Horizontal(id="offered-row"):
                    yield Input(placeholder="Offered cost, e.g. 35.00", id="offered-amount")
                    yield Input(
                        value=self.home_currency,
                        placeholder="Currency",
                        id="offered-currency",
                        max_length=3,
                    )
                yield Input(placeholder="Retry after YYYY-MM-DD (optional)", id="retry-after")
            yield Label("", id="status-change-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply (ctrl+s)", id="status-change-apply", variant="primary")
                yield Button("Cancel (esc)", id="status-change-cancel")

    def on_mount(self) -> None:
        if self.transitions:
            option_list = self.query_one(OptionList)
            option_list.highlighted = 0
            option_list.focus()
            self._show_fields()
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
        self._show_fields()

    def protocol_fields(self) -> tuple[str, ...]:
        """The ids of the protocol fields the highlighted transition asks for."""
        transition = self.selected()
        if transition is None or self.direction is not Direction.LENDING:
            return ()
        return FIELDS_FOR.get(transition.target, ())

    def _show_fields(self) -> None:
        wanted = self.protocol_fields()
        self.query_one("#protocol-fields").display = bool(wanted)
        for field_id in ALL_FIELDS:
            widget = self.query_one(f"#{field_id}", Input)
            widget.display = field_id in wanted
        self.query_one("#offered-row").display = "offered-amount" in wanted
        transition = self.selected()
        if wanted and transition is not None:
            self.query_one("#protocol-title", Label).update(
                f"Sent to the partner with {transition.target.value}:"
            )

    @on(OptionList.OptionSelected)
    def _option_selected(self) -> None:
        self.query_one("#reason-input", Input).focus()

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
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
        values = {
            field_id: self.query_one(f"#{field_id}", Input).value.strip()
            for field_id in self.protocol_fields()
        }
        # The ISO reason code staff picked is reason enough for the history.
        reason = reason or values.get("reason-unfilled") or values.get("reason-retry") or ""
        if transition.reason_required and not reason:
            self._show_error(f"A reason is required to change the status to {transition.target}.")
            self.query_one("#reason-input", Input).focus()
            return
        details = None
        if values:
            try:
                details = read_details(transition.target, values)
            except DetailsInvalid as exc:
                self._show_error(str(exc))
                return
        self._busy = True
        self.apply_status_change(transition.target.value, reason or None, details)

    @work(thread=True, exclusive=True, group="status-change", exit_on_error=False)
    def apply_status_change(
        self, target: str, reason: str | None, details: StatusDetails | None = None
    ) -> None:
        """Worker: ask the desk to apply the transition (and queue its ISO 18626 message)."""
        try:
            request = self.desk.change_status(
                self.request_id,
                target,
                reason=reason,
                expected_version=self.version,
                details=details,
            )
        except (
            workflow.IllegalTransition,
            workflow.ReasonRequired,
            StaleRequest,
            RequestNotFound,
            ExchangeError,
            ValueError,
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
