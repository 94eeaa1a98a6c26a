"""The new-request form: a borrowing request for a patron or a lending request from a library.

The form only collects text; ``Desk.intake_request`` checks it and either stores the request or
raises ``ValidationFailed`` with one message per field, which the form shows beside each field.
Nothing is written when any field is wrong. A request that repeats an open request of the same
patron is stored but marked, and staff are told which request it repeats.

An OpenURL pasted into the field at the top (Enter) fills the citation fields and the service
type; staff check them and save as usual. A link that cannot be read is explained beside the
paste field and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet
from textual.worker import Worker, WorkerState

from ill_tui.citation import CITATION_FIELDS, Citation, CitationLinkError
from ill_tui.models import Direction, ServiceType
from ill_tui.services.requests import RequestForm, ValidationFailed
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.confirm import ConfirmModal
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

# (RequestForm field, label, placeholder). Fields shown for one direction only are listed in
# BORROWING_ONLY / LENDING_ONLY.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("title", "Title *", "book or journal title"),
    ("author", "Author", ""),
    ("article_title", "Article title", "copies: article or chapter"),
    ("article_author", "Article author", ""),
    ("edition", "Edition", ""),
    ("publisher", "Publisher", ""),
    ("place_of_publication", "Place", ""),
    ("year", "Year", "e.g. 1998"),
    ("volume", "Volume", ""),
    ("issue", "Issue", ""),
    ("pages", "Pages", "e.g. 12-34"),
    ("isbn", "ISBN", "10 or 13 digits"),
    ("issn", "ISSN", "e.g. 0028-0836"),
    ("oclc_number", "OCLC number", ""),
    ("lccn", "LCCN", ""),
    ("doi", "DOI", "10.…"),
    ("pmid", "PMID", "PubMed id"),
    ("patron", "Patron barcode *", ""),
    ("partner", "Library *", "agency id (ISIL:DK-820010) or name"),
    ("partner_request_id", "Their request id", ""),
    ("needed_by", "Needed by", "YYYY-MM-DD"),
    ("max_cost", "Max cost", "e.g. 25.00"),
    ("max_cost_currency", "Currency", ""),
    ("note", "First note", "optional"),
)
BORROWING_ONLY = frozenset({"patron"})
LENDING_ONLY = frozenset({"partner", "partner_request_id"})
# Shown in the form but passed beside the RequestForm (see Desk.intake_request).
BESIDE_FORM = frozenset({"pmid"})
FIELD_NAMES = tuple(name for name, _, _ in FIELDS)


def kebab(name: str) -> str:
    """``max_cost_currency`` -> ``max-cost-currency`` (widget ids are kebab-case)."""
    return name.replace("_", "-")


@dataclass(frozen=True)
class Created:
    """What the form dismisses with after the desk stored the request."""

    request_id: int
    direction: Direction


@dataclass
class RequestCreated(Message):
    """The desk stored the new request; ``duplicates`` describes open requests it repeats."""

    request_id: int
    direction: Direction
    duplicates: tuple[str, ...] = ()


@dataclass
class FormRejected(Message):
    """The desk refused the form; ``errors`` maps field names to messages."""

    errors: dict[str, str]


class NewRequestModal(ReportsWorkerErrors, ModalScreen[Created | None]):
    """Enter a new request. Ctrl+S saves; Escape cancels (asking first if anything was typed)."""

    CSS_PATH = SCREENS_DIR / "new_request.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="new_request.save", tooltip="Save the new request"),
        Binding("escape", "cancel", "Cancel", id="new_request.cancel",
                tooltip="Close the form (asks before discarding what was typed)"),
        Binding("ctrl+o", "paste_link", "OpenURL", id="new_request.openurl",
                tooltip="Go to the OpenURL field: paste a link, Enter fills the form"),
    ]  # fmt: skip

    def __init__(
        self,
        desk: Desk,
        *,
        direction: Direction = Direction.BORROWING,
        home_currency: str = "USD",
    ) -> None:
        super().__init__()
        self.desk = desk
        self.direction = direction
        self.home_currency = home_currency
        self._busy = False

    def compose(self) -> ComposeResult:
        yield KeyBar()
        with Vertical(id="new-request-dialog"):
            yield Label("New request", id="new-request-title")
            with VerticalScroll(id="new-request-fields"):
                with Horizontal(classes="form-row", id="row-openurl"):
                    yield Label("OpenURL", classes="field-label")
                    with Vertical(classes="field-box"):
                        yield Input(
                            placeholder="paste a link, then Enter fills the form",
                            id="field-openurl",
                            compact=True,
                            select_on_focus=False,
                        )
                        yield Label("", id="error-openurl", classes="field-error error")
                with Horizontal(classes="form-row", id="row-direction"):
                    yield Label("Direction", classes="field-label")
                    with RadioSet(id="direction"):
                        for direction in Direction:
                            yield RadioButton(
                                direction.value.title(),
                                value=direction is self.direction,
                                id=f"direction-{direction.value}",
                            )
                with Horizontal(classes="form-row", id="row-service-type"):
                    yield Label("Service type", classes="field-label")
                    with RadioSet(id="service-type"):
                        for service_type in ServiceType:
                            yield RadioButton(
                                service_type.value,
                                value=service_type is ServiceType.LOAN,
                                id=f"service-type-{service_type.value.lower()}",
                            )
                yield Label("", id="error-general", classes="field-error error")
                for name, label, placeholder in FIELDS:
                    if name == "max_cost_currency":
                        placeholder = f"{self.home_currency} if blank"
                    with Horizontal(classes="form-row", id=f"row-{kebab(name)}"):
                        yield Label(label, classes="field-label")
                        with Vertical(classes="field-box"):
                            yield Input(
                                placeholder=placeholder,
                                id=f"field-{kebab(name)}",
                                compact=True,
                                # staff fix a typo where it is; selecting all would erase it
                                select_on_focus=False,
                            )
                            yield Label("", id=f"error-{kebab(name)}", classes="field-error error")
            with Horizontal(classes="dialog-buttons"):
                yield Label("* required", id="required-hint")
                yield Button("Save (ctrl+s)", id="new-request-save", variant="primary")
                yield Button("Cancel (esc)", id="new-request-cancel")

    def on_mount(self) -> None:
        self.query_one("#row-openurl").display = self.desk.citation_links is not None
        self._show_direction_fields()
        for label in self.query(".field-error"):
            label.display = False
        self.query_one("#field-title", Input).focus()

    # -- the form -----------------------------------------------------------------------------

    def chosen_direction(self) -> Direction:
        """The direction selected in the form."""
        pressed = self.query_one("#direction", RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return self.direction
        return Direction(pressed.id.removeprefix("direction-"))

    def chosen_service_type(self) -> ServiceType:
        """The service type selected in the form."""
        pressed = self.query_one("#service-type", RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return ServiceType.LOAN
        return ServiceType(pressed.id.removeprefix("service-type-").title())

    def field(self, name: str) -> Input:
        """The Input of one form field."""
        return self.query_one(f"#field-{kebab(name)}", Input)

    def form(self) -> RequestForm:
        """What was typed, as a ``RequestForm`` (fields of the other direction left blank)."""
        direction = self.chosen_direction()
        values = {name: self.field(name).value for name in FIELD_NAMES if name not in BESIDE_FORM}
        hidden = LENDING_ONLY if direction is Direction.BORROWING else BORROWING_ONLY
        for name in hidden:
            values[name] = ""
        if values["max_cost"].strip() and not values["max_cost_currency"].strip():
            values["max_cost_currency"] = self.home_currency
        return RequestForm(
            direction=direction.value,
            service_type=self.chosen_service_type().value,
            **values,
        )

    def has_input(self) -> bool:
        """True when anything was typed (or pasted) into the form."""
        return any(self.field(name).value.strip() for name in (*FIELD_NAMES, "openurl"))

    def fill_from_citation(self, citation: Citation) -> int:
        """Put a citation into the citation fields (clearing those it leaves empty) and choose
        its service type; the patron, library, dates, cost and note are kept. Returns how many
        fields were filled."""
        values = citation.values()
        for name in CITATION_FIELDS:
            if name in FIELD_NAMES:
                self.field(name).value = values.get(name, "")
        service_type = ServiceType(citation.service_type)
        self.query_one(f"#service-type-{service_type.value.lower()}", RadioButton).value = True
        return len(values)

    def _fill_from_link(self, link: str) -> None:
        if not link.strip():
            return
        try:
            citation = self.desk.read_citation_link(link)
        except CitationLinkError as exc:
            self._set_error("openurl", str(exc))
            return
        filled = self.fill_from_citation(citation)
        self._set_error("openurl", "")
        party = "patron" if self.chosen_direction() is Direction.BORROWING else "partner"
        first = next(
            (name for name in ("title", party) if not self.field(name).value.strip()), "title"
        )
        self.field(first).focus()
        self.notify(
            f"Filled {filled} field{'s' if filled != 1 else ''} from the link; "
            "check them, then save (ctrl+s)."
        )

    def _show_direction_fields(self) -> None:
        borrowing = self.chosen_direction() is Direction.BORROWING
        for name in BORROWING_ONLY:
            self.query_one(f"#row-{kebab(name)}").display = borrowing
        for name in LENDING_ONLY:
            self.query_one(f"#row-{kebab(name)}").display = not borrowing

    @on(RadioSet.Changed, "#direction")
    def _direction_changed(self) -> None:
        self._show_direction_fields()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("field-"):
            self._set_error(event.input.id.removeprefix("field-"), "")

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "field-openurl":
            self._fill_from_link(event.value)
            return
        self.focus_next()

    def _set_error(self, kebab_name: str, text: str) -> None:
        matches = self.query(f"#error-{kebab_name}")
        if matches:
            label = matches.first(Label)
            label.update(text)
            label.display = bool(text)

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show each message beside its field and focus the first field that is wrong."""
        for name in FIELD_NAMES:
            self._set_error(kebab(name), errors.get(name, ""))
        general = [msg for name, msg in errors.items() if name not in FIELD_NAMES]
        self._set_error("general", " ".join(general))
        first = next((name for name in FIELD_NAMES if name in errors), None)
        if first is not None:
            self.field(first).focus()
            self.query_one(f"#row-{kebab(first)}").scroll_visible()
        count = len(errors)
        self.notify(
            f"{count} field{'s' if count != 1 else ''} to correct; nothing was saved.",
            severity="warning",
        )

    # -- actions ------------------------------------------------------------------------------

    @on(Button.Pressed, "#new-request-save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#new-request-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_save(self) -> None:
        """Send the form to the desk."""
        if self._busy:
            return
        self._busy = True
        self.create_request(self.form(), self.field("pmid").value)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the OpenURL key is offered only when the app can read links
        if action == "paste_link":
            return self.desk.citation_links is not None
        return True

    def action_paste_link(self) -> None:
        """Go to the OpenURL field."""
        self.field("openurl").focus()
        self.query_one("#row-openurl").scroll_visible()

    @work(thread=True, exclusive=True, group="new-request", exit_on_error=False)
    def create_request(self, form: RequestForm, pmid: str = "") -> None:
        """Worker: check and store the request, and look for open requests it repeats."""
        try:
            intake = self.desk.intake_request(form, pmid=pmid)
        except ValidationFailed as exc:
            self.post_message(FormRejected(dict(exc.errors)))
            return
        request = intake.request
        assert request.id is not None
        self.post_message(
            RequestCreated(
                request.id,
                Direction(request.direction),
                duplicates=tuple(d.describe() for d in intake.duplicates),
            )
        )

    def on_request_created(self, message: RequestCreated) -> None:
        if message.duplicates:
            # an app-wide notification: it stays on screen after the form closes
            self.app.notify(
                f"Request {message.request_id} may duplicate {message.duplicates[0]}"
                + (
                    f" (and {len(message.duplicates) - 1} more)"
                    if len(message.duplicates) > 1
                    else ""
                ),
                title="Possible duplicate",
                severity="warning",
                timeout=20,
            )
        self.dismiss(Created(message.request_id, message.direction))

    def on_form_rejected(self, message: FormRejected) -> None:
        self._busy = False
        self.show_errors(message.errors)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self._busy = False

    def action_cancel(self) -> None:
        """Close the form; ask first when something was typed."""
        if not self.has_input():
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmModal("Discard this new request?", yes="Discard", no="Keep editing"),
            answered,
        )
