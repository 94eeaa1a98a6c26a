"""Verify a request's citation: the citation beside the ranked catalog records found for it.

The left column is the citation, each field marked where the highlighted candidate says
otherwise. The right column lists the candidates (score, catalog, title, year) and, under
them, the highlighted candidate's reasons and its fields beside the citation's. Staff accept
the record with all its differing fields (``a``) or one field (``f``), look at the MARC record
(``m``), edit the search terms and search again (``e``), mark the citation "not found as
cited" (``x``), or cancel a request our own catalog holds (``o``).

Searching runs in an async worker (network); loading and storing run in thread workers
(database): the screen never blocks. ``BatchVerifyModal`` verifies every New request with a
progress bar and ends with a summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Header, Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from ill_tui.catalog import CatalogError
from ill_tui.services.requests import RequestNotFound, ValidationFailed
from ill_tui.services.verification import (
    BatchSummary,
    FieldDifference,
    NoTargets,
    NothingToVerify,
    Outcome,
    SearchTerms,
    StoredCandidate,
    VerificationView,
)
from ill_tui.workflow import IllegalTransition
from screens import SCREENS_DIR
from screens.base import ReportsWorkerErrors
from screens.marc_view import MarcViewScreen
from screens.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from ill_tui.services.desk import Desk

#: How each verification result reads on screen (the queue uses the marks).
STATUS_TEXT = {
    "matched": "matched",
    "ambiguous": "ambiguous: choose a record",
    "not_found": "not found",
    "unreachable": "catalog unreachable",
}
STATUS_MARK = {"matched": "✓", "ambiguous": "?", "not_found": "✗", "unreachable": "!"}


# ---------------------------------------------------------------------------- messages
@dataclass
class ViewLoaded(Message):
    """The request and its stored candidates came back from the database."""

    view: VerificationView


@dataclass
class VerificationFinished(Message):
    """A search of the catalogs finished and its result is stored."""

    outcome: Outcome


@dataclass
class ActionRefused(Message):
    """The desk refused what staff asked (or the catalogs could not be searched)."""

    reason: str


@dataclass
class CitationChanged(Message):
    """A candidate was accepted, or the citation marked not found / the request cancelled."""

    text: str


def candidate_title(candidate: StoredCandidate) -> str:
    """``Title / Author`` of a candidate, for its row."""
    summary = candidate.summary
    return summary.title + (f" / {summary.author}" if summary.author else "")


# ---------------------------------------------------------------------------- modals
class TextPromptModal(ModalScreen[str | None]):
    """One line of text (a note, a message to the patron); Enter saves, Escape cancels."""

    CSS_PATH = SCREENS_DIR / "verify.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel", tooltip="Close without saving"),
    ]

    def __init__(self, title: str, *, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.prompt_title = title
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="verify-dialog"):
            yield Label(self.prompt_title, classes="verify-dialog-title")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label("", id="prompt-error", classes="error")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#prompt-error", Label).update("Type something, or press Escape.")
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)


class FieldPickModal(ModalScreen[str | None]):
    """Choose the one field to take from the record: the fields where it differs."""

    CSS_PATH = SCREENS_DIR / "verify.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pick.cancel", tooltip="Take no field"),
    ]

    def __init__(self, differences: list[FieldDifference]) -> None:
        super().__init__()
        self.differences = differences

    def compose(self) -> ComposeResult:
        with Vertical(classes="verify-dialog"):
            yield Label("Take which field from the record? (Enter)", classes="verify-dialog-title")
            yield OptionList(
                *(
                    Option(f"{d.label}: {d.cited or '—'}  →  {d.record}", id=d.name)
                    for d in self.differences
                ),
                id="pick-list",
            )
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#pick-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Take no field."""
        self.dismiss(None)


class SearchTermsModal(ModalScreen[SearchTerms | None]):
    """Edit what is searched for (title, author, year, identifiers); Enter searches."""

    CSS_PATH = SCREENS_DIR / "verify.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="terms.cancel", tooltip="Do not search"),
        Binding("ctrl+s", "search", "Search", id="terms.search", tooltip="Search with these"),
    ]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("title", "Title"),
        ("author", "Author"),
        ("year", "Year"),
        ("isbn", "ISBN"),
        ("issn", "ISSN"),
        ("oclc_number", "OCLC number"),
        ("lccn", "LCCN"),
    )

    def __init__(self, terms: SearchTerms) -> None:
        super().__init__()
        self.terms = terms

    def compose(self) -> ComposeResult:
        with Vertical(classes="verify-dialog", id="terms-dialog"):
            yield Label("Search the catalogs for (Enter searches)", classes="verify-dialog-title")
            for name, label in self.FIELDS:
                with Horizontal(classes="terms-row"):
                    yield Label(label, classes="terms-label")
                    yield Input(value=getattr(self.terms, name), id=f"terms-{name}", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#terms-title", Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_search()

    def action_search(self) -> None:
        """Search with the terms as edited."""
        values = {
            name: self.query_one(f"#terms-{name}", Input).value.strip() for name, _ in self.FIELDS
        }
        self.dismiss(
            SearchTerms(**values, publisher=self.terms.publisher, edition=self.terms.edition)
        )

    def action_cancel(self) -> None:
        """Do not search."""
        self.dismiss(None)


# ---------------------------------------------------------------------------- the screen
class VerifyScreen(ReportsWorkerErrors, Screen[None]):
    """Verify one request's citation against the configured catalogs."""

    CSS_PATH = SCREENS_DIR / "verify.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="verify.back", tooltip="Back to the queue"),
        Binding("a", "accept_all", "Accept all", id="verify.accept_all",
                tooltip="Take the highlighted record and every field where it differs"),
        Binding("f", "accept_field", "Accept field", id="verify.accept_field",
                tooltip="Take one field from the highlighted record"),
        Binding("n", "next_candidate", "Next", id="verify.next",
                tooltip="Highlight the next candidate record"),
        Binding("p", "previous_candidate", "Previous", id="verify.previous",
                tooltip="Highlight the previous candidate record"),
        Binding("m", "marc_view", "MARC", id="verify.marc",
                tooltip="Show the highlighted record in MARC"),
        Binding("e", "edit_terms", "Edit search", id="verify.edit_terms",
                tooltip="Edit the search terms and search again"),
        Binding("s", "search_again", "Search again", id="verify.search", show=False,
                tooltip="Search the catalogs again for the citation"),
        Binding("x", "not_found", "Not found as cited", id="verify.not_found",
                tooltip="Mark the citation not found as cited, with a note"),
        Binding("o", "cancel_owned", "We own it", id="verify.cancel_owned",
                tooltip="Cancel the request: our own catalog holds the item"),
    ]  # fmt: skip

    def __init__(self, desk: Desk, request_id: int) -> None:
        super().__init__()
        self.desk = desk
        self.request_id = request_id
        self.view: VerificationView | None = None
        self.outcome: Outcome | None = None
        self.searching = False
        self._busy = False
        self.help_title = f"Verify request {request_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Verify request {self.request_id} · loading…", id="verify-heading")
        with Horizontal(id="verify-columns"):
            with VerticalScroll(id="verify-left"):
                yield Static("", id="verify-citation")
                yield Static("", id="verify-holdings")
            with Vertical(id="verify-right"):
                yield DataTable(id="candidates", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="verify-detail-scroll"):
                    yield Static("", id="verify-detail")
        yield Label("", id="verify-message")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#candidates", DataTable)
        table.add_column("", key="accepted", width=1)
        table.add_column("Score", key="score", width=5)
        table.add_column("Catalog", key="target", width=14)
        table.add_column("Title / Author", key="title")
        table.add_column("Year", key="year", width=4)
        table.focus()
        self.load_view(verify_when_new=True)

    # -- workers ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="verify-load", exit_on_error=False)
    def load_view(self, verify_when_new: bool = False) -> None:
        """Worker: the request with its stored candidates."""
        try:
            view = self.desk.verification_view(self.request_id)
        except RequestNotFound as exc:
            self.post_message(ActionRefused(str(exc)))
            return
        self.post_message(ViewLoaded(view))
        if verify_when_new and view.request.verification is None:
            self.app.call_from_thread(self.start_search, None)

    def start_search(self, terms: SearchTerms | None) -> None:
        """Search the catalogs (the citation, or ``terms``) in an async worker."""
        self.searching = True
        self._paint_heading()
        self.search_catalogs(terms)

    @work(exclusive=True, group="verify-search", exit_on_error=False)
    async def search_catalogs(self, terms: SearchTerms | None) -> None:
        """Worker: search every target and store the result (database parts in threads)."""
        try:
            outcome = await self.desk.verify_request(self.request_id, terms)
        except (NoTargets, NothingToVerify, RequestNotFound, CatalogError) as exc:
            self.post_message(ActionRefused(str(exc)))
            return
        self.post_message(VerificationFinished(outcome))

    @work(thread=True, exclusive=True, group="verify-act", exit_on_error=False)
    def accept(self, candidate_id: int, fields: list[str] | None) -> None:
        """Worker: take the candidate (and fields) into the citation."""
        try:
            request = self.desk.accept_candidate(self.request_id, candidate_id, fields)
        except (ValidationFailed, RequestNotFound, IllegalTransition) as exc:
            self.post_message(ActionRefused(_reason(exc)))
            return
        self.post_message(CitationChanged(f"Citation updated; request is {request.status}."))

    @work(thread=True, exclusive=True, group="verify-act", exit_on_error=False)
    def not_found(self, note: str) -> None:
        """Worker: mark the citation not found as cited."""
        try:
            self.desk.mark_not_found_as_cited(self.request_id, note)
        except (ValidationFailed, RequestNotFound, IllegalTransition) as exc:
            self.post_message(ActionRefused(_reason(exc)))
            return
        self.post_message(CitationChanged("Marked not found as cited."))

    @work(thread=True, exclusive=True, group="verify-act", exit_on_error=False)
    def cancel_owned(self, message: str) -> None:
        """Worker: cancel the request, as our own catalog holds the item."""
        try:
            self.desk.cancel_owned_locally(self.request_id, message)
        except (ValidationFailed, RequestNotFound, IllegalTransition) as exc:
            self.post_message(ActionRefused(_reason(exc)))
            return
        self.post_message(CitationChanged("Request cancelled: we own the item."))

    # -- results ------------------------------------------------------------------------------

    def on_view_loaded(self, message: ViewLoaded) -> None:
        self.view = message.view
        self._busy = False
        table = self.query_one("#candidates", DataTable)
        previous = self.highlighted()
        table.clear()
        for candidate in self.view.candidates:
            table.add_row(
                "✓" if candidate.accepted else "",
                f"{candidate.score:.0f}",
                candidate.target,
                candidate_title(candidate),
                candidate.summary.year,
                key=str(candidate.id),
            )
        if previous is not None:
            for row, candidate in enumerate(self.view.candidates):
                if candidate.id == previous.id:
                    table.move_cursor(row=row)
        self._paint()
        self.refresh_bindings()

    def on_verification_finished(self, message: VerificationFinished) -> None:
        self.outcome = message.outcome
        self.searching = False
        status = STATUS_TEXT.get(message.outcome.status, message.outcome.status)
        self.notify(f"Verification: {status}.")
        self.load_view()

    def on_action_refused(self, message: ActionRefused) -> None:
        self.searching = False
        self._busy = False
        self.notify(message.reason, severity="error", timeout=10)
        self._paint_heading()
        self.query_one("#verify-message", Label).update(Text(message.reason, style="bold red"))

    def on_citation_changed(self, message: CitationChanged) -> None:
        self.notify(message.text)
        self.load_view()

    @on(DataTable.RowHighlighted, "#candidates")
    def _highlighted(self) -> None:
        self._paint()

    @on(DataTable.RowSelected, "#candidates")
    def _selected(self) -> None:
        self.action_marc_view()

    # -- painting -----------------------------------------------------------------------------

    def highlighted(self) -> StoredCandidate | None:
        """The candidate under the cursor, if any."""
        if self.view is None or not self.view.candidates:
            return None
        row = self.query_one("#candidates", DataTable).cursor_row
        if 0 <= row < len(self.view.candidates):
            return self.view.candidates[row]
        return None

    def _paint_heading(self) -> None:
        heading = Text(f"Verify request {self.request_id} · ", style="bold")
        if self.view is not None:
            request = self.view.request
            heading.append(f"{request.status} · ")
            verification = request.verification
            heading.append(
                STATUS_TEXT.get(verification or "", "not verified yet"), style="bold reverse"
            )
        if self.searching:
            heading.append(" · searching the catalogs…", style="italic")
        self.query_one("#verify-heading", Label).update(heading)

    def _paint(self) -> None:
        self._paint_heading()
        if self.view is None:
            return
        candidate = self.highlighted()
        request = self.view.request
        differences = {d.name: d for d in candidate.differences} if candidate else {}
        grid = Table.grid(padding=(0, 1))
        grid.title = "Citation"
        grid.title_justify = "left"
        grid.title_style = "bold"
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, label in (("title", "Title"), ("author", "Author"), ("edition", "Edition"),
                            ("publisher", "Publisher"), ("place_of_publication", "Place"),
                            ("year", "Year"), ("isbn", "ISBN"), ("issn", "ISSN"),
                            ("oclc_number", "OCLC number"), ("lccn", "LCCN")):  # fmt: skip
            value = str(getattr(request, name) or "")
            difference = differences.get(name)
            text = Text(value or "—")
            if difference is not None and difference.differs:
                text.stylize("bold yellow")
                text.append("  ≠", style="yellow")
            grid.add_row(label, text)
        self.query_one("#verify-citation", Static).update(grid)

        notes = Text()
        if request.local_holding:
            notes.append(request.local_holding, style="bold green")
            notes.append("  (o cancels the request with a message to the patron)\n", style="dim")
        partner = [h for h in self.view.holdings if not h.local]
        if partner:
            notes.append("Held at: ", style="dim")
            notes.append(
                "; ".join(
                    " ".join(p for p in (h.agency or h.target, h.call_number or "") if p)
                    for h in partner
                )
                + "\n"
            )
        if self.view.duplicate_of is not None:
            duplicate = self.view.duplicate_of
            notes.append(
                f"Possible duplicate of request {duplicate.id} ({duplicate.status}, "
                f'"{duplicate.title}")\n',
                style="bold magenta",
            )
        if self.outcome is not None:
            for flag in self.outcome.flags:
                notes.append(flag + "\n", style="yellow")
            for target, error in self.outcome.errors.items():
                notes.append(f"{target}: {error}\n", style="red")
        self.query_one("#verify-holdings", Static).update(notes)

        detail = Text()
        if candidate is None:
            detail.append(
                "No candidate records. Press e to edit the search, or x to mark the citation "
                "not found as cited.",
                style="dim",
            )
        else:
            detail.append(f"{candidate.target} record {candidate.record_id}", style="bold")
            detail.append(f" · score {candidate.score:.0f}\n")
            for reason in candidate.reasons.split("; "):
                detail.append(f"  • {reason}\n")
            detail.append("Record says:\n", style="bold")
            for difference in candidate.differences:
                if not difference.record:
                    continue
                style = "yellow" if difference.differs else "dim"
                mark = "≠" if difference.differs else "="
                detail.append(f"  {mark} {difference.label}: {difference.record}\n", style=style)
        self.query_one("#verify-detail", Static).update(detail)
        self.query_one("#verify-message", Label).update("")

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in {"accept_all", "accept_field", "marc_view", "next_candidate",
                      "previous_candidate"}:  # fmt: skip
            return self.highlighted() is not None or None
        if action == "cancel_owned":
            return bool(self.view and self.view.request.local_holding) or None
        if action in {"not_found", "edit_terms", "search_again"}:
            return self.view is not None or None
        return True

    def action_back(self) -> None:
        """Back to the queue."""
        self.dismiss(None)

    def action_next_candidate(self) -> None:
        """Highlight the next candidate."""
        self.query_one("#candidates", DataTable).action_cursor_down()

    def action_previous_candidate(self) -> None:
        """Highlight the previous candidate."""
        self.query_one("#candidates", DataTable).action_cursor_up()

    def action_accept_all(self) -> None:
        """Take the highlighted record and every field where it differs."""
        candidate = self.highlighted()
        if candidate is None or self._busy:
            return
        self._busy = True
        self.accept(candidate.id, None)

    def action_accept_field(self) -> None:
        """Choose one field of the highlighted record to take into the citation."""
        candidate = self.highlighted()
        if candidate is None:
            return
        differing = [d for d in candidate.differences if d.differs]
        if not differing:
            self.notify("The citation already agrees with this record.")
            return

        def picked(name: str | None) -> None:
            if name is not None and not self._busy:
                self._busy = True
                self.accept(candidate.id, [name])

        self.app.push_screen(FieldPickModal(differing), picked)

    def action_marc_view(self) -> None:
        """Show the highlighted record in MARC."""
        candidate = self.highlighted()
        if candidate is None:
            return
        self.app.push_screen(
            MarcViewScreen(
                candidate.marcxml,
                title=f"{candidate.target} record {candidate.record_id}: "
                f"{candidate_title(candidate)}",
            )
        )

    def action_edit_terms(self) -> None:
        """Edit the search terms, then search again with them."""
        if self.view is None:
            return

        def edited(terms: SearchTerms | None) -> None:
            if terms is not None:
                self.start_search(terms)

        self.app.push_screen(SearchTermsModal(SearchTerms.of(self.view.request)), edited)

    def action_search_again(self) -> None:
        """Search the catalogs again for the citation as it stands."""
        self.start_search(None)

    def action_not_found(self) -> None:
        """Mark the citation not found as cited, with a note of what was checked."""

        def noted(note: str | None) -> None:
            if note is not None:
                self.not_found(note)

        self.app.push_screen(
            TextPromptModal(
                "Not found as cited: what did you check?",
                placeholder="e.g. checked LC and WorldCat by title and author",
            ),
            noted,
        )

    def action_cancel_owned(self) -> None:
        """Cancel the request, as our catalog holds the item, with a message to the patron."""
        if self.view is None or not self.view.request.local_holding:
            return

        def written(message: str | None) -> None:
            if message is not None:
                self.cancel_owned(message)

        self.app.push_screen(
            TextPromptModal(
                "Cancel the request: message to the patron",
                value=f"{self.view.request.local_holding}. You can borrow our copy directly.",
            ),
            written,
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed):
        return " ".join(exc.errors.values())
    return str(exc)


# ---------------------------------------------------------------------------- batch
@dataclass
class BatchProgressed(Message):
    """One more request of the batch is verified."""

    done: int
    total: int
    request_id: int
    status: str


@dataclass
class BatchFinished(Message):
    """The batch ended (all done, or stopped)."""

    summary: BatchSummary


class BatchVerifyModal(ReportsWorkerErrors, ModalScreen[BatchSummary | None]):
    """Verify every New borrowing request, with a progress bar and a summary at the end."""

    CSS_PATH = SCREENS_DIR / "verify.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Stop / close", id="batch.close",
                tooltip="Stop the batch (requests under way finish), or close when done"),
    ]  # fmt: skip

    def __init__(self, desk: Desk) -> None:
        super().__init__()
        self.desk = desk
        self.summary: BatchSummary | None = None
        self.stop_requested = False
        self.failed = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="verify-dialog", id="batch-dialog"):
            yield Label("Verifying all New requests", classes="verify-dialog-title")
            yield ProgressBar(id="batch-progress", show_eta=False)
            yield Label("Finding the New requests…", id="batch-status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.run_batch()

    @work(exclusive=True, group="verify-batch", exit_on_error=False)
    async def run_batch(self) -> None:
        """Worker: verify the New requests, eight at a time (searches async, DB in threads)."""

        def progressed(done: int, total: int, request_id: int, status: str) -> None:
            self.post_message(BatchProgressed(done, total, request_id, status))

        try:
            summary = await self.desk.verify_new_requests(
                progress=progressed, should_stop=lambda: self.stop_requested
            )
        except NoTargets as exc:
            self.failed = True  # nothing runs: Escape closes at once
            self.query_one("#batch-status", Label).update(Text(str(exc), style="bold red"))
            return
        self.post_message(BatchFinished(summary))

    def on_batch_progressed(self, message: BatchProgressed) -> None:
        bar = self.query_one("#batch-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        status = STATUS_TEXT.get(message.status, message.status)
        self.query_one("#batch-status", Label).update(
            f"{message.done} of {message.total}: request {message.request_id} {status}"
        )

    def on_batch_finished(self, message: BatchFinished) -> None:
        self.summary = message.summary
        bar = self.query_one("#batch-progress", ProgressBar)
        bar.update(total=max(message.summary.total, 1), progress=message.summary.done or 1)
        self.query_one("#batch-status", Label).update(
            Text(message.summary.describe() + "  (Escape closes)", style="bold")
        )

    def action_close(self) -> None:
        """Stop the batch, or close it when it is done."""
        if self.summary is not None or self.stop_requested or self.failed:
            self.dismiss(self.summary)
            return
        self.stop_requested = True
        self.query_one("#batch-status", Label).update("Stopping after the requests under way…")
