"""Textual screens of ill-tui: one module per screen, its ``.tcss`` beside it.

Screens compose widgets, start thread workers that call the ``Desk`` facade, and show what came
back. They never open a database session themselves.
"""

from __future__ import annotations

from pathlib import Path

SCREENS_DIR = Path(__file__).parent
