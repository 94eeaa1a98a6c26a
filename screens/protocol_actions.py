"""Small dialogs for the ISO 18626 staff actions of the request detail screen.

Each dialog only gathers what staff decide (a lender, a reason, a due date, yes or no) and
dismisses with it; the detail screen runs the desk call in a worker and reports the outcome.
What can be checked without the database (a date's format, a reason that is required) is
checked here and shown beside the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ill_tui.services.desk import PartnerChoice
from ill_tui.services.sourcing import RetryOffer
from screens import SCREENS_DIR
from screens.widgets.key_bar import KeyBar

CSS = SCREENS_DIR / "protocol_actions.tcss"


def offer_lines(offer: RetryOffer, *, locale: str = "en_US") -> list[tuple[str, str]]:
    """A RetryPossible offer as (label, value) lines: lender, reason, costs, dates, note."""
    lines = [("Lender", offer.partner_name), ("Reason", offer.reason_retry or "—")]
    money = offer.money
    if money is not None:
        lines.append(("Offered cost", money.format(locale)))
    elif offer.offered_costs is not None:
        costs = offer.offered_costs
        lines.append(("Offered cost", f"{costs.amount} {costs.currency}"))
    else:
        lines.append(("Offered cost", "none offered"))
    if offer.loan_condition:
        lines.append(("Condition", offer.loan_condition))
    if offer.retry_after:
        lines.append(("Retry after", offer.retry_after.date().isoformat()))
    if offer.retry_before:
        lines.append(("Retry before", offer.retry_before.date().isoformat()))
    if offer.note:
        lines.append(("Their note", offer.note))
    lines.append(("Offered (UTC)", offer.at.strftime("%Y-%m-%d %H:%M")))
    return lines


class LenderPickerModal(ModalScreen[int | None]):
    """Choose an active partner to send a borrowing request to; dismisses with its id."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel", id="lender_picker.cancel",
                tooltip="Close without sending"),
    ]  # fmt: skip

    def __init__(self, partners: list[PartnerChoice], *, asked: frozenset[int]) -> None:
        super().__init__()
        self.partners = partners
        self.asked = asked

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="lender-dialog", classes="action-dialog"):
            yield Label("Send this request to which lender?", classes="dialog-title")
            yield OptionList(
                *(
                    Option(
                        f"{choice.name} ({choice.agency}, {choice.country})"
                        + ("  — asked before" if choice.partner_id in self.asked else ""),
                        id=str(choice.partner_id),
                    )
                    for choice in self.partners
                ),
                id="lender-list",
            )
            yield Label("Enter sends the request to the lender under the cursor.", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0 if self.partners else None
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        assert event.option.id is not None
        self.dismiss(int(event.option.id))

    def action_close(self) -> None:
        """Close without choosing."""
        self.dismiss(None)


class RetryOfferModal(ModalScreen[bool | None]):
    """Shows a lender's RetryPossible offer; True accepts it, False declines (move on)."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Accept", id="retry_offer.accept",
                tooltip="Accept the conditions: send a Retry request to the same lender"),
        Binding("d", "answer(False)", "Decline", id="retry_offer.decline",
                tooltip="Decline and move on to the next lender in the rota"),
        Binding("escape", "close", "Close", id="retry_offer.close",
                tooltip="Decide later"),
    ]  # fmt: skip

    def __init__(
        self, offer: RetryOffer, *, next_lender: str | None, locale: str = "en_US"
    ) -> None:
        super().__init__()
        self.offer = offer
        self.next_lender = next_lender
        self.locale = locale

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="retry-dialog", classes="action-dialog"):
            yield Label(
                f"{self.offer.partner_name} could supply on conditions", classes="dialog-title"
            )
            yield Static(
                "\n".join(
                    f"{label}: {value}"
                    for label, value in offer_lines(self.offer, locale=self.locale)
                ),
                id="retry-offer-text",
            )
            then = (
                f"Declining sends the request to {self.next_lender}."
                if self.next_lender
                else "Declining leaves the request in Sourcing: no lender is left in the rota."
            )
            yield Label(then, id="retry-decline-hint", classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept (y)", id="retry-accept", variant="primary")
                yield Button("Decline (d)", id="retry-decline")
                yield Button("Close (esc)", id="retry-close")

    def on_mount(self) -> None:
        self.query_one("#retry-close", Button).focus()

    @on(Button.Pressed, "#retry-accept")
    def _accept(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#retry-decline")
    def _decline(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#retry-close")
    def _close(self) -> None:
        self.dismiss(None)

    def action_answer(self, accept: bool) -> None:
        """Accept (True) or decline (False) the offer."""
        self.dismiss(accept)

    def action_close(self) -> None:
        """Decide later."""
        self.dismiss(None)


class ReasonModal(ModalScreen[str | None]):
    """Asks for a line of text (a reason or a note); dismisses with it, or None on Escape."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Send", id="reason.submit", tooltip="Send with this text"),
        Binding("escape", "close", "Cancel", id="reason.cancel", tooltip="Close, send nothing"),
    ]  # fmt: skip

    def __init__(
        self, title: str, *, placeholder: str, required: bool, send_label: str = "Send"
    ) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.required = required
        self.send_label = send_label

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="reason-dialog", classes="action-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder=self.placeholder, id="reason-text", max_length=2000)
            yield Label("", id="reason-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.send_label} (ctrl+s)", id="reason-send", variant="primary")
                yield Button("Cancel (esc)", id="reason-cancel")

    def on_mount(self) -> None:
        self.query_one("#reason-text", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#reason-send")
    def _send(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#reason-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        """Dismiss with the text typed (refused beside the field when required and empty)."""
        text = self.query_one("#reason-text", Input).value.strip()
        if self.required and not text:
            self.query_one("#reason-error", Label).update("A reason is required.")
            return
        self.dismiss(text)

    def action_close(self) -> None:
        """Close and send nothing."""
        self.dismiss(None)


@dataclass(frozen=True)
class RenewAnswer:
    """Staff's answer to a borrower's Renew: yes with the new due date, or no."""

    yes: bool
    due_date: date | None
    note: str | None


class RenewAnswerModal(ModalScreen[RenewAnswer | None]):
    """Answer a borrower's request to renew: grant with a new due date, or refuse."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "grant", "Grant", id="renew_answer.grant",
                tooltip="Grant the renewal until the new due date"),
        Binding("ctrl+n", "refuse", "Refuse", id="renew_answer.refuse",
                tooltip="Refuse the renewal"),
        Binding("escape", "close", "Cancel", id="renew_answer.cancel",
                tooltip="Close without answering"),
    ]  # fmt: skip

    def __init__(self, *, borrower: str, current_due: date | None) -> None:
        super().__init__()
        self.borrower = borrower
        self.current_due = current_due

    def compose(self) -> ComposeResult:
        yield KeyBar()
        due = self.current_due.isoformat() if self.current_due else "not set"
        with Vertical(id="renew-dialog", classes="action-dialog"):
            yield Label(f"{self.borrower} asks to renew the loan", classes="dialog-title")
            yield Label(f"Due now: {due}", id="renew-current")
            yield Input(placeholder="New due date YYYY-MM-DD (to grant)", id="renew-due")
            yield Input(placeholder="Note to the borrower (optional)", id="renew-note")
            yield Label("", id="renew-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Grant (ctrl+s)", id="renew-grant", variant="primary")
                yield Button("Refuse (ctrl+n)", id="renew-refuse")
                yield Button("Cancel (esc)", id="renew-cancel")

    def on_mount(self) -> None:
        self.query_one("#renew-due", Input).focus()

    def _note(self) -> str | None:
        return self.query_one("#renew-note", Input).value.strip() or None

    @on(Input.Submitted)
    @on(Button.Pressed, "#renew-grant")
    def _grant(self) -> None:
        self.action_grant()

    @on(Button.Pressed, "#renew-refuse")
    def _refuse(self) -> None:
        self.action_refuse()

    @on(Button.Pressed, "#renew-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_grant(self) -> None:
        """Grant until the date typed (checked here: a date, after the current due date)."""
        text = self.query_one("#renew-due", Input).value.strip()
        error = self.query_one("#renew-error", Label)
        if not text:
            error.update("Give the new due date to grant the renewal.")
            return
        try:
            due = date.fromisoformat(text)
        except ValueError:
            error.update(f"The new due date must be a date like 2026-12-31, not {text!r}.")
            return
        if self.current_due is not None and due <= self.current_due:
            error.update(
                f"The new due date must be after the current one, {self.current_due.isoformat()}."
            )
            return
        self.dismiss(RenewAnswer(yes=True, due_date=due, note=self._note()))

    def action_refuse(self) -> None:
        """Refuse the renewal."""
        self.dismiss(RenewAnswer(yes=False, due_date=None, note=self._note()))

    def action_close(self) -> None:
        """Close without answering."""
        self.dismiss(None)


@dataclass(frozen=True)
class CancelAnswer:
    """Staff's answer to a borrower's Cancel: yes (cancel our lending request) or no, why."""

    yes: bool
    reason: str | None


class CancelAnswerModal(ModalScreen[CancelAnswer | None]):
    """Answer a borrower's request to cancel: agree (cancels the request) or refuse."""

    CSS_PATH = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "agree", "Agree", id="cancel_answer.agree",
                tooltip="Agree: cancel this lending request"),
        Binding("ctrl+n", "refuse", "Refuse", id="cancel_answer.refuse",
                tooltip="Refuse to cancel, with the reason typed"),
        Binding("escape", "close", "Close", id="cancel_answer.close",
                tooltip="Close without answering"),
    ]  # fmt: skip

    def __init__(self, *, borrower: str, status: str) -> None:
        super().__init__()
        self.borrower = borrower
        self.status = status

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="cancel-dialog", classes="action-dialog"):
            yield Label(f"{self.borrower} asks to cancel the request", classes="dialog-title")
            yield Label(f"The request is {self.status} here.", id="cancel-status")
            yield Input(placeholder="Reason (required to refuse), e.g. already shipped",
                        id="cancel-reason")  # fmt: skip
            yield Label("", id="cancel-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Agree and cancel (y)", id="cancel-agree", variant="error")
                yield Button("Refuse (ctrl+n)", id="cancel-refuse")
                yield Button("Close (esc)", id="cancel-close")

    def on_mount(self) -> None:
        self.query_one("#cancel-close", Button).focus()

    def _reason(self) -> str | None:
        return self.query_one("#cancel-reason", Input).value.strip() or None

    @on(Button.Pressed, "#cancel-agree")
    def _agree(self) -> None:
        self.action_agree()

    @on(Input.Submitted)
    @on(Button.Pressed, "#cancel-refuse")
    def _refuse(self) -> None:
        self.action_refuse()

    @on(Button.Pressed, "#cancel-close")
    def _close(self) -> None:
        self.dismiss(None)

    def action_agree(self) -> None:
        """Agree: the detail screen asks once more, then cancels the lending request."""
        self.dismiss(CancelAnswer(yes=True, reason=self._reason()))

    def action_refuse(self) -> None:
        """Refuse, with the reason typed (required)."""
        reason = self._reason()
        if reason is None:
            self.query_one("#cancel-error", Label).update(
                "Say why the request cannot be cancelled."
            )
            self.query_one("#cancel-reason", Input).focus()
            return
        self.dismiss(CancelAnswer(yes=False, reason=reason))

    def action_close(self) -> None:
        """Close without answering."""
        self.dismiss(None)
