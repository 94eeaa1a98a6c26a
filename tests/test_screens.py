"""Pilot tests of the screens: press the keys staff press, check the screen and the database."""

from __future__ import annotations

from pathlib import Path

from screens_helpers import SIZE, make_app, plain, rendered, settle, table_column
from sqlmodel import func, select
from textual.widgets import DataTable, Input, Label, OptionList, Static

from ill_tui.db import session_scope
from ill_tui.models import Event, Note, Request
from screens.help import HelpModal
from screens.new_request import NewRequestModal
from screens.note import EMPTY_NOTE, NoteModal
from screens.queue import PageLoaded, QueueScreen, QueueTable
from screens.request_detail import RequestDetailScreen
from screens.status_change import CLOSED_MESSAGE, StatusChangeModal
from screens.widgets.status_panel import StatusPanel


def titles(app: object) -> list[str]:
    table = app.screen.query_one("#queue-table", QueueTable)  # type: ignore[attr-defined]
    return table_column(table, "title")


def ids(app: object) -> list[int]:
    table = app.screen.query_one("#queue-table", QueueTable)  # type: ignore[attr-defined]
    return [int(v) for v in table_column(table, "id")]


def counts_bar(app: object) -> str:
    return plain(app.screen.query_one("#counts-bar", Static).content)  # type: ignore[attr-defined]


def request_count(engine: object) -> int:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        return session.exec(select(func.count()).select_from(Request)).one()


async def test_queue_opens_on_open_borrowing_requests(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert titles(app) == ["Being and Time", "Cybernetics", "Algebraic Topology"]
        assert "Open 3" in counts_bar(app)
        assert "Cancelled 1" in counts_bar(app)
        info = plain(app.screen.query_one("#page-info", Static).content)
        assert "page 1" in info
        assert "rows 1–3" in info


async def test_switch_to_lending_shows_lending_rows_and_library_column(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(QueueTable)
        assert plain(table.columns["party"].label) == "Patron"  # type: ignore[index]

        await pilot.press("l")
        await settle(pilot)
        assert titles(app) == ["Moby-Dick", "On the Origin of Species"]
        assert table_column(table, "party") == ["Royal Danish Library", "Zeta University Library"]
        assert plain(table.columns["party"].label) == "Library"  # type: ignore[index]
        assert "RequestReceived 2" in counts_bar(app)

        await pilot.press("b")
        await settle(pilot)
        assert "Cybernetics" in titles(app)
        assert plain(table.columns["party"].label) == "Patron"  # type: ignore[index]


async def test_sort_cycles_columns_and_reverses(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert titles(app) == ["Being and Time", "Cybernetics", "Algebraic Topology"]
        # age (default) -> needed-by -> id -> status -> title
        await pilot.press("o", "o", "o", "o")
        await settle(pilot)
        assert app.screen.query_state.sort == "title"  # type: ignore[attr-defined]
        assert titles(app) == ["Algebraic Topology", "Being and Time", "Cybernetics"]
        assert "▲" in plain(app.screen.query_one(QueueTable).columns["title"].label)  # type: ignore[index]

        await pilot.press("r")
        await settle(pilot)
        assert titles(app) == ["Cybernetics", "Being and Time", "Algebraic Topology"]
        assert "▼" in plain(app.screen.query_one(QueueTable).columns["title"].label)  # type: ignore[index]


async def test_clicking_a_header_sorts_by_that_column(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(QueueTable)
        # The Patron header: x is past the id, status and title columns.
        x = sum(c.get_render_width() for c in table.ordered_columns[:3]) + 2
        await pilot.click(QueueTable, offset=(x, 0))
        await settle(pilot)
        assert app.screen.query_state.sort == "party"  # type: ignore[attr-defined]
        assert table_column(table, "party") == ["Ada Lovelace", "Ada Lovelace", "Grace Hopper"]


async def test_status_filter_lists_statuses_with_counts_and_filters(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        panel = app.screen.query_one("#status-panel", StatusPanel)
        assert panel.display
        assert app.focused is panel
        counts = dict(zip(table_column(panel, "status"), table_column(panel, "count"), strict=True))
        assert counts["Open"] == "3"
        assert counts["All"] == "4"
        assert counts["Cancelled"] == "1"
        assert counts["Loaned"] == "0"
        assert "Shipped" not in counts  # a lending status

        # moving the highlight filters at once; Enter keeps it and returns to the table
        await pilot.press("end")  # the last status: Cancelled
        await settle(pilot)
        assert titles(app) == ["Zen and the Art of Motorcycle Maintenance"]
        assert "Cancelled 1" in counts_bar(app)
        await pilot.press("enter")
        await settle(pilot)
        assert not panel.display
        assert app.focused is app.screen.query_one(QueueTable)
        assert table_column(app.screen.query_one(QueueTable), "status") == ["Cancelled"]

        await pilot.press("s", "home", "down", "enter")  # All
        await settle(pilot)
        assert len(titles(app)) == 4

        # Escape puts back the status the panel was opened with
        await pilot.press("s", "home")  # highlight Open: the queue shows open requests...
        await settle(pilot)
        assert len(titles(app)) == 3
        await pilot.press("escape")  # ...until Escape puts All back
        await settle(pilot)
        assert not panel.display
        assert len(titles(app)) == 4


async def test_free_text_filter_matches_rows_and_counts(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        assert app.focused is app.screen.query_one("#filter-input", Input)
        await pilot.press(*"cyber")
        await settle(pilot)
        assert titles(app) == ["Cybernetics"]
        assert counts_bar(app).startswith("Open 1 · All 1 · New 1")

        # a patron's name matches too; one-letter words are ignored and said so
        await pilot.press(*["backspace"] * 5, *"x lovelace")
        await settle(pilot)
        assert titles(app) == ["Being and Time", "Algebraic Topology"]
        hint = plain(app.screen.query_one("#filter-hint", Label).content)
        assert "ignored: x" in hint

        await pilot.press(*"zzzz")
        await settle(pilot)
        empty = app.screen.query_one("#empty-state", Static)
        assert empty.display
        assert "No open borrowing requests match “x lovelacezzzz”" in plain(empty.content)

        await pilot.press("escape")
        assert app.focused is app.screen.query_one(QueueTable)


async def test_stale_page_results_are_dropped(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        before = titles(app)
        old = screen.page
        assert old is not None
        stale = type(old)(query=old.query, rows=[], has_more=False)
        screen.post_message(PageLoaded(screen._generation - 1, stale))
        await settle(pilot)
        assert titles(app) == before


async def test_paging_with_brackets_and_pagedown_at_the_edge(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    from screens_helpers import ACTOR, fixed_clock

    from ill_tui.services.requests import RequestForm, create_request

    with session_scope(engine) as session:
        for n in range(100):
            create_request(
                session,
                form=RequestForm(title=f"Volume {n:03}", patron="P001"),
                actor=ACTOR,
                clock=fixed_clock(),
            )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert len(titles(app)) == 100
        assert "rows 1–100" in plain(app.screen.query_one("#page-info", Static).content)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert len(titles(app)) == 3
        assert "page 2" in plain(app.screen.query_one("#page-info", Static).content)
        assert "rows 101–103" in plain(app.screen.query_one("#page-info", Static).content)

        await pilot.press("pageup")  # on the first row: previous page
        await settle(pilot)
        assert len(titles(app)) == 100
        await pilot.press("ctrl+end", "pagedown")  # on the last row: next page
        await settle(pilot)
        assert len(titles(app)) == 3


async def test_open_request_shows_citation_and_history(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # first row: Being and Time
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        citation = rendered(app.screen.query_one("#citation", Static).content)
        assert "Being and Time" in citation
        assert "Heidegger, Martin" in citation
        assert "978-0-06-063850-4" in citation  # hyphenated for reading
        terms = rendered(app.screen.query_one("#terms", Static).content)
        assert "Ada Lovelace (P001)" in terms
        assert "2026-04-01" in terms
        assert "Loan" in terms
        history = app.screen.query_one("#history-table", DataTable)
        assert [plain(c) for c in history.get_column("what")] == ["— → New: Request created"]

        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)


async def fill(pilot: object, field: str, text: str) -> None:
    """Put the cursor in one form field and type ``text``."""
    app = pilot.app  # type: ignore[attr-defined]
    app.screen.query_one(f"#field-{field}", Input).focus()
    await pilot.press(*text)  # type: ignore[attr-defined]


async def test_create_request_refuses_bad_isbn_then_creates(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = request_count(engine)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, NewRequestModal)
        assert app.focused is app.screen.query_one("#field-title", Input)
        await pilot.press(*"Probability Theory")
        await fill(pilot, "patron", "P002")
        await fill(pilot, "isbn", "0-306-40615-3")
        app.screen.query_one("#field-title", Input).focus()

        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, NewRequestModal)
        error = app.screen.query_one("#error-isbn", Label)
        assert error.display
        assert "wrong check digit" in plain(error.content)
        # beside its field: in the same row as the ISBN input
        assert error.parent is app.screen.query_one("#field-isbn", Input).parent
        assert app.focused is app.screen.query_one("#field-isbn", Input)
        assert not app.screen.query_one("#error-title", Label).display
        assert request_count(engine) == before

        await pilot.press("backspace", "2")  # fix the check digit
        assert not error.display  # editing the field clears its message
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert request_count(engine) == before + 1
        with session_scope(engine) as session:
            new = session.exec(select(Request).where(Request.title == "Probability Theory")).one()
        assert new.isbn == "9780306406157"
        assert new.party_name == "Grace Hopper"
        assert "Probability Theory" in titles(app)
        table = app.screen.query_one(QueueTable)
        assert ids(app)[table.cursor_row] == new.id  # the queue jumps to it
        messages = [n.message for n in app._notifications]
        assert f"Request {new.id} created." in messages


async def test_new_lending_request_switches_queue(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert not app.screen.query_one("#row-partner").display
        app.screen.query_one("#direction").focus()
        await pilot.press("right", "enter")  # Lending
        assert app.screen.query_one("#row-partner").display
        assert not app.screen.query_one("#row-patron").display
        await fill(pilot, "title", "Leviathan")
        await fill(pilot, "partner", "ISIL:DK-820010")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert app.screen.query_state.direction == "lending"
        assert "Leviathan" in titles(app)


async def test_change_status_offers_only_allowed_transitions(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert titles(app)[0] == "Being and Time"  # New
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, StatusChangeModal)
        options = app.screen.query_one("#transition-list", OptionList)
        offered = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert offered == ["Verifying", "Sourcing", "Cancelled"]
        assert "Loaned" not in offered

        # Cancelled needs a reason: refused on screen, nothing written
        await pilot.press("end", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, StatusChangeModal)
        error = plain(app.screen.query_one("#status-change-error", Label).content)
        assert "reason is required" in error

        assert app.focused is app.screen.query_one("#reason-input", Input)
        await pilot.press("shift+tab", "home", "enter")  # Verifying; then on to the reason
        assert app.focused is app.screen.query_one("#reason-input", Input)
        await pilot.press("enter")  # reason is optional here
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert table_column(app.screen.query_one(QueueTable), "status")[0] == "Verifying"
        with session_scope(engine) as session:
            first = session.get(Request, ids(app)[0])
            assert first is not None
            assert first.status == "Verifying"
            assert first.version == 2


async def test_closed_request_offers_no_status_change(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "end", "enter")  # Cancelled
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, StatusChangeModal)
        assert plain(app.screen.query_one("#status-change-closed", Label).content) == (
            CLOSED_MESSAGE
        )
        assert not app.screen.query("#transition-list")
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen)


async def test_stale_status_change_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        # someone else moves the request meanwhile
        app.desk.change_status(ids_first := app.screen.request_id, "Sourcing")  # type: ignore[attr-defined]
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, StatusChangeModal)
        error = plain(app.screen.query_one("#status-change-error", Label).content)
        assert "changed by someone else" in error
        with session_scope(engine) as session:
            request = session.get(Request, ids_first)
            assert request is not None
            assert request.status == "Sourcing"


async def test_status_change_and_note_appear_in_history_and_database(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        request_id = ids(app)[0]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)

        await pilot.press("c")
        await settle(pilot)
        await pilot.press("enter", *"checking WorldCat", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)

        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, NoteModal)
        await pilot.press("ctrl+s")  # empty: refused
        await settle(pilot)
        assert isinstance(app.screen, NoteModal)
        assert plain(app.screen.query_one("#note-error", Label).content) == EMPTY_NOTE
        await pilot.press(*"Patron phoned to ask")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)

        history = app.screen.query_one("#history-table", DataTable)
        what = [plain(c) for c in history.get_column("what")]
        assert what == [
            "— → New: Request created",
            "New → Verifying: checking WorldCat",
            "Note: Patron phoned to ask",
        ]
        heading = plain(app.screen.query_one("#detail-heading", Label).content)
        assert "Verifying" in heading

    with session_scope(engine) as session:
        events = session.exec(select(Event).where(Event.request_id == request_id)).all()
        notes = session.exec(select(Note).where(Note.request_id == request_id)).all()
    assert [(e.to_status, e.reason) for e in events][-1] == ("Verifying", "checking WorldCat")
    assert [n.text for n in notes] == ["Patron phoned to ask"]


async def test_help_lists_the_keys_of_the_current_screen(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpModal)
        table = app.screen.query_one("#help-table", DataTable)
        rows = {
            (plain(r[0]), plain(r[1]))
            for r in (table.get_row_at(i) for i in range(table.row_count))
        }
        for key, description in [
            ("b", "Borrowing"),
            ("l", "Lending"),
            ("n", "New"),
            ("c", "Status"),
            ("s", "Filter"),
            ("o", "Sort"),
            ("r", "Reverse"),
            ("?", "Keys"),
        ]:
            assert (key, description) in rows, (key, description)
        await pilot.press("escape")
        assert isinstance(app.screen, QueueScreen)

        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        table = app.screen.query_one("#help-table", DataTable)
        descriptions = {plain(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert {"Back", "Add note", "Status"} <= descriptions
        assert "Borrowing" not in descriptions


async def test_escape_leaves_every_modal(tmp_path: Path) -> None:
    app, engine = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = request_count(engine)
        await pilot.press("s")  # the status panel is no dialog, but Escape leaves it too
        await settle(pilot)
        assert app.screen.query_one("#status-panel", StatusPanel).display
        await pilot.press("escape")
        await settle(pilot)
        assert not app.screen.query_one("#status-panel", StatusPanel).display
        for key, modal in [
            ("c", StatusChangeModal),
            ("n", NewRequestModal),
            ("question_mark", HelpModal),
        ]:
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, modal)
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, QueueScreen), modal

        # a form with something typed asks first; Escape on the question keeps the form
        await pilot.press("n", *"Half typed")
        await pilot.press("escape")
        await settle(pilot)
        assert "Discard" in plain(app.screen.query_one("#confirm-question", Label).content)
        await pilot.press("escape")
        assert isinstance(app.screen, NewRequestModal)
        assert app.screen.query_one("#field-title", Input).value == "Half typed"
        await pilot.press("escape", "y")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert request_count(engine) == before

        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("a")
        assert isinstance(app.screen, NoteModal)
        await pilot.press("escape")
        assert isinstance(app.screen, RequestDetailScreen)


async def test_command_palette_offers_the_screen_actions(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Borrowing", "Lending", "New", "Filter", "Sort", "Keys"} <= set(commands)
        await commands["Lending"].callback()
        await settle(pilot)
        assert titles(app) == ["Moby-Dick", "On the Origin of Species"]


async def test_demo_mode_is_marked(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "DEMO" in app.title
        assert app.has_class("-demo")
        live, _ = make_app(tmp_path / "live")
    assert "DEMO" not in live.title


async def test_worker_errors_are_reported_not_swallowed(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    def broken(query: object) -> object:
        raise RuntimeError("database unreachable")

    app.desk.load_page = broken  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors
        assert "database unreachable" in errors[0].message


async def test_queue_fills_the_terminal(tmp_path: Path) -> None:
    """At 120x40 the header lines are one line each and the table gets the rest."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.query_one("#queue-top").region.height == 1
        assert screen.query_one("#filter-row").region.height == 1
        assert screen.query_one("#counts-bar").region.height == 2
        assert screen.query_one(QueueTable).region.height >= SIZE[1] - 8


async def test_search_keys_never_leave_the_screen_frozen(tmp_path: Path) -> None:
    """Frames held for a search key's page are let go: for a key that starts no query
    (a cursor move in the box), for a page that arrives, and when the screen goes away."""
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", "left")  # no query
        await pilot.pause(0.1)
        assert app._batch_count == 0  # Textual's repaint hold counter: nothing held
        await pilot.press(*"cyber")
        await settle(pilot)
        await pilot.pause(0.15)
        assert app._batch_count == 0
        assert titles(app) == ["Cybernetics"]


# -- H3: an OpenURL pasted into the new-request form ------------------------------------------


async def test_openurl_pasted_into_the_form_fills_it_and_saves(tmp_path: Path) -> None:
    from textual import events

    from adapters.openurl import parse_openurl

    app, engine = make_app(tmp_path)
    app.desk.citation_links = parse_openurl  # what the composition root wires in
    article = (
        "https://resolver.example.edu/ill?url_ver=Z39.88-2004"
        "&rft_val_fmt=info%3Aofi%2Ffmt%3Akev%3Amtx%3Ajournal&rft.genre=article"
        "&rft.atitle=Molecular+structure+of+nucleic+acids&rft.jtitle=Nature&rft.aulast=Watson"
        "&rft.aufirst=J+D&rft.date=1953&rft.volume=171&rft.spage=737&rft.epage=738"
        "&rft.issn=0028-0836&rft_id=info%3Adoi%2F10.1038%2F171737a0&rft_id=info%3Apmid%2F13054692"
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = request_count(engine)
        await pilot.press("n")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, NewRequestModal)
        link = modal.query_one("#field-openurl", Input)
        await pilot.press("ctrl+o")
        assert app.focused is link

        # a link with nothing to request: the reason beside the field, nothing filled
        link.post_message(events.Paste("https://resolver.example.edu/ill?url_ver=Z39.88-2004"))
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        error = modal.query_one("#error-openurl", Label)
        assert error.display
        assert "no title, ISBN, ISSN or DOI" in plain(error.content)
        assert error.parent is link.parent
        assert modal.query_one("#field-title", Input).value == ""

        # the real link: staff clear the field, paste it and press Enter
        link.value = ""
        link.post_message(events.Paste(article))
        await pilot.pause()
        assert not error.display  # editing the link clears its message
        await pilot.press("enter")
        await pilot.pause()
        value = {name: modal.query_one(f"#field-{name}", Input).value for name in
                 ("title", "article-title", "article-author", "year", "volume", "pages", "issn",
                  "doi", "pmid", "isbn")}  # fmt: skip
        assert value == {
            "title": "Nature",
            "article-title": "Molecular structure of nucleic acids",
            "article-author": "Watson, J D",
            "year": "1953",
            "volume": "171",
            "pages": "737-738",
            "issn": "00280836",
            "doi": "10.1038/171737a0",
            "pmid": "13054692",
            "isbn": "",
        }
        assert modal.chosen_service_type().value == "Copy"
        assert app.focused is modal.query_one("#field-patron", Input)  # what is still missing
        assert request_count(engine) == before  # nothing stored until staff save

        await pilot.press(*"P002", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert request_count(engine) == before + 1
        with session_scope(engine) as session:
            new = session.exec(select(Request).where(Request.title == "Nature")).one()
        assert (new.service_type, new.article_title, new.issn, new.doi, new.pmid) == (
            "Copy",
            "Molecular structure of nucleic acids",
            "00280836",
            "10.1038/171737a0",
            "13054692",
        )
        assert (new.party_name, new.status, new.duplicate_of_id) == ("Grace Hopper", "New", None)
        assert "Molecular structure of nucleic acids (Nature)" in titles(app)


async def test_form_flags_a_duplicate_of_an_open_request(tmp_path: Path) -> None:
    from textual import events

    from adapters.openurl import parse_openurl

    app, engine = make_app(tmp_path)
    app.desk.citation_links = parse_openurl
    # "Being and Time" (P001, ISBN 9780060638504) is open; the same book as an ISBN-10 link
    book = "genre=book&title=Sein+und+Zeit&aulast=Heidegger&isbn=0-06-063850-8"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, NewRequestModal)
        await pilot.press("ctrl+o")
        modal.query_one("#field-openurl", Input).post_message(events.Paste(book))
        await pilot.pause()
        await pilot.press("enter", *"P001", "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        with session_scope(engine) as session:
            original = session.exec(select(Request).where(Request.title == "Being and Time")).one()
            new = session.exec(select(Request).where(Request.title == "Sein und Zeit")).one()
            notes = list(session.exec(select(Note).where(Note.request_id == new.id)))
        assert new.duplicate_of_id == original.id
        assert [n.text for n in notes] == [
            f'Possible duplicate of request {original.id} (New, "Being and Time"): '
            "same ISBN 9780060638504."
        ]
        messages = [n.message for n in app._notifications]
        assert (
            f'Request {new.id} may duplicate request {original.id} (New, "Being and Time"): '
            "same ISBN 9780060638504" in messages
        )
        assert f"Request {new.id} created." in messages


async def test_no_openurl_field_when_links_cannot_be_read(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)  # a desk without a citation link reader
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, NewRequestModal)
        assert not modal.query_one("#row-openurl").display
        await pilot.press("ctrl+o")
        assert app.focused is modal.query_one("#field-title", Input)
        enabled = {b.binding.action for b in modal.active_bindings.values() if b.enabled}
        assert "save" in enabled
        assert "paste_link" not in enabled


# -- Messages screen (ISO 18626 outbox and log) ------------------------------------------------


def _seed_messages(engine: object) -> dict[str, int]:
    """A pending, a failed (ERROR confirmation) and a sent message to the Royal Danish Library."""
    from datetime import UTC, datetime

    from ill_tui.models import IsoMessage, Partner

    ids: dict[str, int] = {}
    with session_scope(engine) as session:  # type: ignore[arg-type]
        partner = session.exec(select(Partner).where(Partner.agency_id_value == "DK-820010")).one()
        request = session.exec(select(Request).where(Request.title == "Being and Time")).one()
        rows = {
            "failed": IsoMessage(
                direction="out", kind="requestingAgencyMessage", request_id=request.id,
                partner_id=partner.id, peer=partner.agency_id, summary="Received",
                body="<x/>", state="failed", attempts=1, confirmation_status="ERROR",
                error_type="UnrecognisedDataValue", error_value="no such request",
                created_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
            ),
            "pending": IsoMessage(
                direction="out", kind="request", request_id=request.id, partner_id=partner.id,
                peer=partner.agency_id, summary="Request: Being and Time", body="<x/>",
                state="pending", attempts=3, last_error="cannot connect to http://dk (refused)",
                created_at=datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
                next_attempt_at=datetime(2026, 3, 1, 11, 5, tzinfo=UTC),
            ),
            "sent": IsoMessage(
                direction="out", kind="request", request_id=request.id, partner_id=partner.id,
                peer=partner.agency_id, summary="Request: sent one", body="<x/>", state="sent",
                attempts=1, created_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
                sent_at=datetime(2026, 3, 1, 9, 1, tzinfo=UTC),
            ),
        }  # fmt: skip
        for key, row in rows.items():
            session.add(row)
            session.flush()
            assert row.id is not None
            ids[key] = row.id
    return ids


def _message_state(engine: object, message_id: int) -> str:
    from ill_tui.models import IsoMessage

    with session_scope(engine) as session:  # type: ignore[arg-type]
        message = session.get(IsoMessage, message_id)
        assert message is not None
        return message.state


async def test_messages_screen_lists_pending_failed_and_sent(tmp_path: Path) -> None:
    from screens.messages import MessagesScreen

    app, engine = make_app(tmp_path)
    _seed_messages(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessagesScreen)
        tabs = plain(screen.query_one("#messages-tabs", Static).content)
        for part in ("Pending 1", "Failed 1", "Sent 1"):
            assert part in tabs
        table = screen.query_one("#messages-table", DataTable)
        assert table_column(table, "summary") == ["Request: Being and Time"]
        assert table_column(table, "partner") == ["Royal Danish Library"]
        assert table_column(table, "attempts") == ["3"]
        assert table_column(table, "error") == [
            "cannot connect to http://dk (refused) · next try 11:05:00"
        ]

        await pilot.press("f")
        await settle(pilot)
        assert table_column(table, "summary") == ["Received"]
        assert table_column(table, "kind") == ["Requester msg"]
        assert table_column(table, "error") == ["UnrecognisedDataValue: no such request"]

        await pilot.press("s")
        await settle(pilot)
        assert table_column(table, "summary") == ["Request: sent one"]
        assert table_column(table, "at") == ["2026-03-01 09:01"]

        await pilot.press("i")
        await settle(pilot)
        assert table.row_count == 0
        assert "No messages received yet." in plain(
            screen.query_one("#messages-empty", Static).content
        )
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)


async def test_messages_screen_retries_a_failed_message(tmp_path: Path) -> None:
    from screens.messages import MessagesScreen

    app, engine = make_app(tmp_path)
    ids = _seed_messages(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(MessagesScreen(app.desk, which="failed"))
        await settle(pilot)
        screen = app.screen
        enabled = {b.binding.action for b in screen.active_bindings.values() if b.enabled}
        assert {"retry_message", "cancel_message", "open_request"} <= enabled
        await pilot.press("r")
        await settle(pilot)
        assert _message_state(engine, ids["failed"]) == "pending"
        assert screen.query_one("#messages-table", DataTable).row_count == 0
        assert f"Message {ids['failed']} is back in the outbox." in [
            n.message for n in app._notifications
        ]
        # a pending message cannot be retried: the key is disabled there
        await pilot.press("p")
        await settle(pilot)
        enabled = {b.binding.action for b in screen.active_bindings.values() if b.enabled}
        assert "retry_message" not in enabled
        assert "cancel_message" in enabled


async def test_messages_screen_cancel_asks_first(tmp_path: Path) -> None:
    from screens.confirm import ConfirmModal
    from screens.messages import MessagesScreen

    app, engine = make_app(tmp_path)
    ids = _seed_messages(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(MessagesScreen(app.desk))
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        assert "never be sent" in plain(app.screen.query_one("#confirm-question", Label).content)
        await pilot.press("escape")  # keep it
        await settle(pilot)
        assert _message_state(engine, ids["pending"]) == "pending"

        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, MessagesScreen)
        assert _message_state(engine, ids["pending"]) == "cancelled"
        with session_scope(engine) as session:
            texts = [n.text for n in session.exec(select(Note))]
        assert any("cancelled by tester" in t for t in texts)


async def test_messages_screen_opens_the_request_and_lists_its_keys(tmp_path: Path) -> None:
    from screens.help import palette_commands
    from screens.messages import MessagesScreen

    app, engine = make_app(tmp_path)
    _seed_messages(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(MessagesScreen(app.desk, which="failed"))
        await settle(pilot)
        commands = {c.title for c in palette_commands(app.screen)}
        assert {"Retry", "Cancel msg", "Open request", "Pending", "Failed", "Sent"} <= commands
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpModal)
        help_table = app.screen.query_one("#help-table", DataTable)
        keys = [plain(help_table.get_row_at(i)[1]) for i in range(help_table.row_count)]
        assert {"Retry", "Cancel msg", "Open request", "Received"} <= set(keys)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        assert "Being and Time" in rendered(app.screen.query_one("#citation", Static).content)


# ---------------------------------------------------------------------------- Verify (H4)
async def test_verify_a_new_request_and_take_one_field_from_a_candidate(
    tmp_path: Path, zebra: object
) -> None:
    """Open a New request's Verify screen, verify it against the real Zebra, accept one field
    from a candidate: the citation changes and the history has the Event."""
    import httpx
    from screens_helpers import fixed_clock

    from adapters.sru import SruClient
    from ill_tui.app import IllApp
    from ill_tui.catalog import DEFAULT_INDEXES, Target
    from ill_tui.db import open_database
    from ill_tui.models import Patron
    from ill_tui.services.desk import Desk
    from ill_tui.services.requests import RequestForm, create_request
    from ill_tui.services.verification import Verifier
    from screens.marc_view import MarcViewScreen
    from screens.verify import FieldPickModal, VerifyScreen

    engine = open_database(f"sqlite:///{tmp_path}/verify.db")
    with session_scope(engine) as session:
        session.add(Patron(barcode="P9", name="Ada Reader"))
        session.flush()
        request = create_request(
            session,
            form=RequestForm(patron="P9", title="The loom of destiny", author="Henry James",
                             year="1898"),
            actor="tester",
            clock=fixed_clock(),
        )  # fmt: skip
        request_id = request.id
    union = Target(
        name="Union catalog",
        base_url=zebra.url("biblio"),  # type: ignore[attr-defined]
        indexes={**DEFAULT_INDEXES, "oclc": "local.oclc"},
    )
    async with httpx.AsyncClient() as http:
        verifier = Verifier(SruClient(http), [union])
        desk = Desk(engine, actor="tester", clock=fixed_clock(), verifier=verifier)
        app = IllApp(desk, clock=fixed_clock())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, VerifyScreen)
            heading = plain(screen.query_one("#verify-heading", Label).content)
            # the author does not fit: offered, never taken automatically
            assert "ambiguous" in heading
            candidates = screen.query_one("#candidates", DataTable)
            assert table_column(candidates, "title")[0] == "The loom of destiny / Stringer, Arthur"
            detail = plain(screen.query_one("#verify-detail", Static).content)
            assert "≠ Year: 1899" in detail

            await pilot.press("m")  # the candidate in MARC
            await settle(pilot)
            assert isinstance(app.screen, MarcViewScreen)
            marc = plain(app.screen.query_one("#marc-record", Static).content).splitlines()
            assert "020 __ $a 0836932722" in marc
            assert "245 14 $a The loom of destiny $c [by] Arthur J. Stringer ..." in marc
            await pilot.press("escape")
            await settle(pilot)

            await pilot.press("f")
            await settle(pilot)
            picker = app.screen
            assert isinstance(picker, FieldPickModal)
            options = picker.query_one(OptionList)
            while options.get_option_at_index(options.highlighted or 0).id != "year":
                await pilot.press("down")
            await pilot.press("enter")
            await settle(pilot)

            assert app.screen is screen
            citation = rendered(screen.query_one("#verify-citation", Static).content)
            assert "1899" in citation
            assert "1898" not in citation
            assert "Henry James" in citation  # only the year was taken
            assert "Verifying" in plain(screen.query_one("#verify-heading", Label).content)

            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("enter")  # open the request: its history
            await settle(pilot)
            assert isinstance(app.screen, RequestDetailScreen)
            history = table_column(app.screen.query_one("#history-table", DataTable), "what")
            assert history[-1] == (
                "New → Verifying: Citation checked against Union catalog record 00000074: "
                "took year from it."
            )
    with session_scope(engine) as session:
        stored = session.get(Request, request_id)
        assert stored is not None
        assert (stored.year, stored.author, stored.verification) == ("1899", "Henry James",
                                                                     "matched")  # fmt: skip
        events = session.exec(select(Event).where(Event.request_id == request_id)).all()
        assert [e.to_status for e in events] == ["New", "Verifying"]
    engine.dispose()


async def test_verify_all_new_requests_in_a_batch_with_progress_and_summary(
    tmp_path: Path, zebra: object
) -> None:
    """Shift+V verifies every New request with a progress bar, ends with a summary, and the
    queue then marks each request with its result."""
    import httpx
    from screens_helpers import fixed_clock
    from textual.widgets import ProgressBar

    from adapters.sru import SruClient
    from ill_tui.app import IllApp
    from ill_tui.catalog import DEFAULT_INDEXES, Target
    from ill_tui.db import open_database
    from ill_tui.models import Patron
    from ill_tui.services.desk import Desk
    from ill_tui.services.requests import RequestForm, create_request
    from ill_tui.services.verification import Verifier
    from screens.verify import BatchVerifyModal

    engine = open_database(f"sqlite:///{tmp_path}/batch.db")
    with session_scope(engine) as session:
        session.add(Patron(barcode="P9", name="Ada Reader"))
        session.flush()
        for title, author, isbn in (
            ("Loom of destiny", "Arthur Stringer", "0-8369-3272-2"),
            ("Quantum gravity for house cats", "", ""),
        ):
            create_request(
                session,
                form=RequestForm(patron="P9", title=title, author=author, isbn=isbn),
                actor="tester",
                clock=fixed_clock(),
            )
    union = Target(
        name="Union catalog",
        base_url=zebra.url("biblio"),  # type: ignore[attr-defined]
        indexes={**DEFAULT_INDEXES, "oclc": "local.oclc"},
    )
    async with httpx.AsyncClient() as http:
        desk = Desk(
            engine, actor="tester", clock=fixed_clock(), verifier=Verifier(SruClient(http), [union])
        )
        app = IllApp(desk, clock=fixed_clock())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("V")
            await settle(pilot)
            modal = app.screen
            assert isinstance(modal, BatchVerifyModal)
            bar = modal.query_one(ProgressBar)
            assert (bar.total, bar.progress) == (2, 2)
            status = plain(modal.query_one("#batch-status", Label).content)
            assert status.startswith("Verified 2 of 2: 1 matched, 1 not found.")
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, QueueScreen)
            table = app.screen.query_one("#queue-table", QueueTable)
            assert table_column(table, "status") == ["New ✓", "New ✗"]
    engine.dispose()


# -- Status change: ISO 18626 details (due date, reasonUnfilled, reasonRetry + offered cost) ---


def _protocol_app(tmp_path: Path) -> tuple[object, object, int]:
    """An app whose desk sends ISO 18626 messages, and a lending request in WillSupply that
    came from the Royal Danish Library over ISO 18626."""
    from screens_helpers import ACTOR, fixed_clock, seed

    from adapters.iso18626.port import Iso18626Codec
    from ill_tui.app import IllApp
    from ill_tui.config import Settings
    from ill_tui.db import open_database
    from ill_tui.services.desk import Desk

    url = f"sqlite:///{tmp_path}/protocol.db"
    engine = open_database(url)
    ids = seed(engine)
    lending_id = ids["moby-dick"]
    with session_scope(engine) as session:
        request = session.get(Request, lending_id)
        assert request is not None
        request.partner_request_id = "DK-77-1"
        request.exchange_id = f"L{lending_id}"
        session.add(request)
    settings = Settings(database_url=url, agency_id_type="ISIL", agency_id_value="US-XLOCAL")
    desk = Desk(engine, actor=ACTOR, clock=fixed_clock(), codec=Iso18626Codec(), settings=settings)
    desk.change_status(lending_id, "WillSupply")
    return IllApp(desk, clock=fixed_clock()), engine, lending_id


async def _open_status_modal(app: object, pilot: object, request_id: int, target: str) -> object:
    desk = app.desk  # type: ignore[attr-defined]
    request = desk.request_detail(request_id).request
    modal = StatusChangeModal(
        desk, request_id=request_id, direction=request.direction, status=request.status,
        version=request.version, home_currency="EUR",
    )  # fmt: skip
    app.push_screen(modal)  # type: ignore[attr-defined]
    await settle(pilot)
    targets = [t.target.value for t in modal.transitions]
    modal.query_one(OptionList).highlighted = targets.index(target)
    await settle(pilot)
    return modal


def _outbox(engine: object) -> list[object]:
    from ill_tui.models import IsoMessage

    with session_scope(engine) as session:  # type: ignore[arg-type]
        return list(session.exec(select(IsoMessage).where(IsoMessage.direction == "out")))


async def test_shipping_a_loan_asks_for_the_due_date_and_sends_it(tmp_path: Path) -> None:
    from adapters.iso18626 import codec
    from ill_tui import protocol as p

    app, engine, lending_id = _protocol_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:  # type: ignore[attr-defined]
        await settle(pilot)
        modal = await _open_status_modal(app, pilot, lending_id, "Shipped")
        fields = modal.query_one("#protocol-fields")  # type: ignore[attr-defined]
        assert fields.display
        assert modal.query_one("#due-date", Input).display  # type: ignore[attr-defined]
        assert not modal.query_one("#reason-unfilled", Input).display  # type: ignore[attr-defined]
        modal.query_one("#due-date", Input).focus()  # type: ignore[attr-defined]
        await pilot.press(*"2026-04-1", "ctrl+s")
        await settle(pilot)
        error = modal.query_one("#status-change-error", Label)  # type: ignore[attr-defined]
        assert "must be a date like 2026-12-31" in plain(error.content)
        assert app.desk.request_detail(lending_id).request.status == "WillSupply"  # type: ignore[attr-defined]

        await pilot.press("5", "ctrl+s")
        await settle(pilot)
        assert app.desk.request_detail(lending_id).request.status == "Shipped"  # type: ignore[attr-defined]
    loaned = _outbox(engine)[-1]
    assert loaned.summary == "Loaned, due 2026-04-15"  # type: ignore[attr-defined]
    message = codec.parse(loaned.body.encode()).message  # type: ignore[attr-defined]
    assert isinstance(message, p.SupplyingAgencyMessage)
    assert message.status_info.status is p.Status.LOANED
    assert message.status_info.due_date is not None
    assert message.status_info.due_date.date().isoformat() == "2026-04-15"


async def test_unfilled_and_retry_possible_ask_for_their_reasons(tmp_path: Path) -> None:
    from decimal import Decimal

    from adapters.iso18626 import codec
    from ill_tui import protocol as p

    app, engine, lending_id = _protocol_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:  # type: ignore[attr-defined]
        await settle(pilot)
        modal = await _open_status_modal(app, pilot, lending_id, "Unfilled")
        assert modal.query_one("#reason-unfilled", Input).display  # type: ignore[attr-defined]
        assert not modal.query_one("#due-date", Input).display  # type: ignore[attr-defined]
        modal.query_one("#reason-unfilled", Input).focus()  # type: ignore[attr-defined]
        await pilot.press(*"NotOnShelf", "ctrl+s")
        await settle(pilot)
    unfilled = codec.parse(_outbox(engine)[-1].body.encode()).message  # type: ignore[attr-defined]
    assert isinstance(unfilled, p.SupplyingAgencyMessage)
    assert unfilled.status_info.status is p.Status.UNFILLED
    assert unfilled.message_info.reason_unfilled == "NotOnShelf"

    app, engine, lending_id = _protocol_app(tmp_path / "retry")
    async with app.run_test(size=SIZE) as pilot:  # type: ignore[attr-defined]
        await settle(pilot)
        # WillSupply has no RetryPossible; a fresh request from RequestReceived has
        modal = None
        desk = app.desk  # type: ignore[attr-defined]
        with session_scope(engine) as session:  # type: ignore[arg-type]
            other = session.exec(select(Request).where(Request.title.startswith("On the"))).one()  # type: ignore[attr-defined]
            other.partner_request_id, other.exchange_id = "ZZU-9", f"L{other.id}"
            session.add(other)
            other_id = other.id
        assert desk.request_detail(other_id).request.status == "RequestReceived"
        modal = await _open_status_modal(app, pilot, other_id, "RetryPossible")
        for field_id in ("reason-retry", "offered-amount", "offered-currency", "retry-after"):
            assert modal.query_one(f"#{field_id}", Input).display  # type: ignore[attr-defined]
        assert modal.query_one("#offered-currency", Input).value == "EUR"  # type: ignore[attr-defined]
        modal.query_one("#reason-retry", Input).focus()  # type: ignore[attr-defined]
        await pilot.press(*"CostExceedsMaxCost")
        modal.query_one("#offered-amount", Input).focus()  # type: ignore[attr-defined]
        await pilot.press(*"-3", "ctrl+s")
        await settle(pilot)
        error = modal.query_one("#status-change-error", Label)  # type: ignore[attr-defined]
        assert "must be more than zero" in plain(error.content)
        await pilot.press("backspace", "backspace", *"35", "ctrl+s")
        await settle(pilot)
        assert desk.request_detail(other_id).request.status == "RetryPossible"
    retry = codec.parse(_outbox(engine)[-1].body.encode()).message  # type: ignore[attr-defined]
    assert isinstance(retry, p.SupplyingAgencyMessage)
    assert retry.message_info.reason_retry == "CostExceedsMaxCost"
    assert retry.message_info.offered_costs == p.Costs(amount=Decimal("35.00"), currency="EUR")


async def test_borrowing_transitions_ask_for_no_protocol_details(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, StatusChangeModal)
        assert not modal.query_one("#protocol-fields").display


async def test_verify_without_catalogs_says_so(tmp_path: Path) -> None:
    """With no catalog targets configured, the Verify screen says what to do, and stays."""
    from screens.verify import VerifyScreen

    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, VerifyScreen)
        message = plain(app.screen.query_one("#verify-message", Label).content)
        assert message.startswith("No catalogs are configured to verify against")
        assert "not verified yet" in plain(app.screen.query_one("#verify-heading", Label).content)
        await pilot.press("escape")
        await pilot.press("V")  # the batch says the same, and Escape closes it at once
        await settle(pilot)
        status = plain(app.screen.query_one("#batch-status", Label).content)
        assert status.startswith("No catalogs are configured to verify against")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)


async def test_edit_the_search_terms_and_search_again(tmp_path: Path, zebra: object) -> None:
    """A garbled citation finds nothing; staff edit the search terms (e) and search again."""
    import httpx
    from screens_helpers import fixed_clock

    from adapters.sru import SruClient
    from ill_tui.app import IllApp
    from ill_tui.catalog import DEFAULT_INDEXES, Target
    from ill_tui.db import open_database
    from ill_tui.models import Patron
    from ill_tui.services.desk import Desk
    from ill_tui.services.requests import RequestForm, create_request
    from ill_tui.services.verification import Verifier
    from screens.verify import SearchTermsModal, VerifyScreen

    engine = open_database(f"sqlite:///{tmp_path}/terms.db")
    with session_scope(engine) as session:
        session.add(Patron(barcode="P9", name="Ada Reader"))
        session.flush()
        create_request(
            session,
            form=RequestForm(patron="P9", title="Lomo of destny and other tales"),
            actor="tester",
            clock=fixed_clock(),
        )
    union = Target(
        name="Union catalog",
        base_url=zebra.url("biblio"),  # type: ignore[attr-defined]
        indexes={**DEFAULT_INDEXES, "oclc": "local.oclc"},
    )
    async with httpx.AsyncClient() as http:
        desk = Desk(
            engine, actor="tester", clock=fixed_clock(), verifier=Verifier(SruClient(http), [union])
        )
        app = IllApp(desk, clock=fixed_clock())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("v")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, VerifyScreen)
            assert "not found" in plain(screen.query_one("#verify-heading", Label).content)
            assert screen.query_one("#candidates", DataTable).row_count == 0

            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, SearchTermsModal)
            title = app.screen.query_one("#terms-title", Input)
            title.value = "loom of destiny"
            app.screen.query_one("#terms-author", Input).value = "Stringer"
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is screen
            assert "matched" in plain(screen.query_one("#verify-heading", Label).content)
            candidates = screen.query_one("#candidates", DataTable)
            assert table_column(candidates, "title")[0] == "The loom of destiny / Stringer, Arthur"
            assert table_column(candidates, "accepted")[0] == "✓"
    engine.dispose()
