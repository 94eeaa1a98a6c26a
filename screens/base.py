"""What every screen of ill-tui shares: worker failures are logged and shown, never swallowed."""

from __future__ import annotations

import logging

from textual.worker import Worker, WorkerState

_log = logging.getLogger("ill_tui.screens")


def explain(error: BaseException | None) -> str:
    """One or two sentences staff can read, for an error that escaped a worker."""
    if error is None:
        return "An unknown error occurred."
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    name = type(error).__name__
    if name in {"OperationalError", "DatabaseError", "InterfaceError"}:
        return f"The database cannot be reached or is busy. ({first_line})"
    return f"{name}: {first_line}" if first_line else name


class ReportsWorkerErrors:
    """Mixin for screens: a worker that fails is logged and reported with ``notify``.

    Expected refusals (a form with errors, an illegal transition) are caught inside the workers
    and posted as messages; only the unexpected ends up here.
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        _log.error("worker %s failed", event.worker.name, exc_info=error)
        self.log.error(f"worker {event.worker.name} failed: {error!r}")  # type: ignore[attr-defined]
        self.notify(  # type: ignore[attr-defined]
            explain(error), title="Something went wrong", severity="error", timeout=15
        )
