"""The Textual application: the composition root of the user interface.

``IllApp`` receives a ready ``Desk`` (database and actor already wired by ``cli.py`` or a test)
and shows the queue screen. It owns only what is app-wide: the title (and the DEMO marking),
the key list, and the command palette entries built from the current screen's bindings.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from ill_tui.clock import Clock, utcnow
from ill_tui.config import Settings
from ill_tui.services.desk import Desk
from ill_tui.services.queue import QueuePage, QueueQuery
from screens import SCREENS_DIR
from screens.help import HelpModal, key_entries, palette_commands
from screens.queue import QueueScreen

if TYPE_CHECKING:
    from adapters.iso18626.sender import OutboxSender

DEMO_TITLE = "ill-tui — DEMO sandbox"

log = logging.getLogger(__name__)


def prefetch_first_page(desk: Desk) -> QueuePage | None:
    """Read the default queue's first page before the app starts.

    Called by the CLI before ``App.run()``, when there is no event loop to block and no
    screen to wait on: the query gets the machine to itself (inside a worker during start-up
    it competes with Textual for the GIL and takes many times longer), and the queue shows
    its rows in its very first frame. Any database error is left for the screen to load and
    report the normal way.
    """
    try:
        return desk.load_page(QueueQuery())
    except Exception:  # the screen's own load reports it, with its message
        log.debug("first page prefetch failed; the queue screen will load it", exc_info=True)
        return None


class IllApp(App[None]):
    """ill-tui: borrowing and lending queues for interlibrary-loan staff.

    Args:
        desk: the use cases, bound to a database and the member of staff working.
        settings: who we are (library name, locale, home currency); optional in tests.
        demo: mark every screen as the DEMO sandbox so nobody mistakes it for live data.
        clock: where "now" comes from (ages of requests); tests fix it.
    """

    # The queue's styles load with the app's: the queue is the default screen, which Textual
    # styles from the app's sheet (a pushed screen's CSS_PATH costs a second parse of every
    # source, Textual's own included, and a restyle of the whole DOM before the first frame).
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        SCREENS_DIR / "app.tcss",
        SCREENS_DIR / "queue.tcss",
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "question_mark",
            "show_keys",
            "Keys",
            id="app.keys",
            tooltip="List every key of this screen and the app",
        ),
    ]

    def __init__(
        self,
        desk: Desk,
        *,
        settings: Settings | None = None,
        demo: bool = False,
        clock: Clock = utcnow,
        first_page: QueuePage | None = None,
        sender: OutboxSender | None = None,
    ) -> None:
        super().__init__()
        self.desk = desk
        # delivers the ISO 18626 outbox while the app runs (cli.py wires it; tests leave it out)
        self.sender = sender
        self._outbox_stop = asyncio.Event()
        self._gc_paused = False
        self.first_page = first_page
        self.settings = settings
        self.demo = demo
        self.clock = clock
        self.locale_name = settings.locale if settings else "en_US"
        self.home_currency = settings.home_currency if settings else "USD"
        if demo:
            # set before the first styling (no restyle of every widget once they are up)
            self.add_class("-demo", update=False)
            self.title = DEMO_TITLE
            self.sub_title = "training data, not live"
        else:
            self.title = "ill-tui"
            self.sub_title = settings.library_name if settings else ""

    def on_load(self) -> None:
        # Building the first screen allocates tens of thousands of objects that live as long
        # as the app (widgets, styles, rules); the cyclic collector ran ~40 times over them
        # before the first frame (2-4 ms less to that frame without it, and no chance of a
        # full collection in between). It pauses until that frame is up.
        self._gc_paused = gc.isenabled()
        gc.disable()

    def _resume_gc(self) -> None:
        # Everything built so far (Textual, SQLAlchemy, the screens) lives as long as the app:
        # move it out of the collector's way so full collections stop pausing the UI (~25 ms).
        gc.freeze()
        if self._gc_paused:
            self._gc_paused = False
            gc.enable()

    def on_mount(self) -> None:
        # Database work runs in thread workers. CPython hands the GIL between threads every
        # 5 ms by default, so a 1 ms query could wait 20-100 ms while the UI thread lays out a
        # screen; 1 ms hand-overs keep the workers' answers prompt.
        sys.setswitchinterval(0.001)
        self.call_after_refresh(self._resume_gc)
        if self.sender is not None:
            self.run_worker(
                self.sender.run(self._outbox_stop),
                name="deliver_outbox",
                group="outbox",
                exclusive=True,
                exit_on_error=False,
            )

    def get_default_screen(self) -> Screen[None]:
        """The queue screen, the app's base: built with the app, in its first frame."""
        first, self.first_page = self.first_page, None
        return QueueScreen(
            self.desk,
            clock=self.clock,
            home_currency=self.home_currency,
            locale=self.locale_name,
            first_page=first,
        )

    def on_unmount(self) -> None:
        if self._gc_paused:  # stopped before its first frame
            self._gc_paused = False
            gc.enable()
        # The sender finishes the attempt under way and stops; a message it could not record
        # is sent again (the same bytes) once its claim expires, by the next sender to run.
        self._outbox_stop.set()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and isinstance(self.screen, QueueScreen):
            self.screen.key_arriving()
        await super().on_event(event)

    def action_show_keys(self) -> None:
        """Open the key list of the current screen (built from its active bindings)."""
        if isinstance(self.screen, HelpModal):
            return
        title = getattr(self.screen, "help_title", "") or type(self.screen).__name__
        self.push_screen(HelpModal(key_entries(self.screen), screen_title=str(title)))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(screen)
