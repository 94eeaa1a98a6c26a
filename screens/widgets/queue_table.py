"""Fast, read-only tables: the queue itself and the status panel beside it.

Textual's DataTable does per-row bookkeeping on every ``add_row`` (about 0.3 ms a row here),
which made replacing a 100-row page cost ~40 ms, most of the budget between a keystroke in the
filter and the repainted table. A queue page is read-only and replaced whole, so this widget
keeps the rows as plain values and renders only the lines on screen (Textual's Line API):
replacing a page is O(1) and a frame costs the visible lines only.

Keys: up/down, page up/down, home/end move the cursor; Enter opens the highlighted row; page
down on the last row (page up on the first) asks for the next (previous) page. Clicking a row
highlights it, clicking the highlighted row opens it; clicking a header sorts by that column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text

PADDING = 1  # spaces either side of every cell


@dataclass
class Column:
    """A column: its key (what the screen sorts by), header label, width and alignment."""

    key: str
    label: str
    width: int
    justify: str = "left"
    flex: bool = False  # takes whatever width the other columns leave (at least ``width``)

    def __post_init__(self) -> None:
        self.min_width = self.width

    def get_render_width(self) -> int:
        """Width on screen, padding included (for a flex column: its last drawn width)."""
        return self.width + 2 * PADDING


def _fit(text: str, width: int, justify: str) -> str:
    """Pad or cut ``text`` to exactly ``width`` cells (an ellipsis marks a cut)."""
    if width <= 0:
        return ""
    size = cell_len(text)
    if size > width:
        return set_cell_size(text, width - 1) + "…"
    if justify == "right":
        return " " * (width - size) + text
    return text + " " * (width - size)


class TableMessage(Message):
    """A message about a LineTable; ``control`` lets ``@on(..., "#id")`` pick the table."""

    def __init__(self, table: LineTable) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> LineTable:
        return self.table


class LineTable(ScrollView, can_focus=True):
    """Rows of plain cells under a fixed header line; only visible lines are rendered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", id="queue.open",
                tooltip="Open the highlighted request"),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
    ]  # fmt: skip

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "line-table--header",
        "line-table--cursor",
        "line-table--even-row",
    }

    DEFAULT_CSS = """
    LineTable {
        height: 1fr;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        background: $surface;
    }
    LineTable > .line-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    LineTable > .line-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    LineTable:focus > .line-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    LineTable > .line-table--even-row {
        background: $surface-lighten-1 10%;
    }
    """

    # repaint=False: the watcher repaints just the lines the cursor left and reached
    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class RowSelected(TableMessage):
        """Enter on a row, or a click on the highlighted row."""

        def __init__(self, table: LineTable, row_key: str) -> None:
            super().__init__(table)
            self.row_key = row_key

    class RowHighlighted(TableMessage):
        """The cursor moved to another row (not posted when rows are replaced)."""

        def __init__(self, table: LineTable, row_key: str) -> None:
            super().__init__(table)
            self.row_key = row_key

    class HeaderSelected(TableMessage):
        """A click on a column header."""

        def __init__(self, table: LineTable, column_key: str) -> None:
            super().__init__(table)
            self.column_key = column_key

    class EdgePaged(TableMessage):
        """Page down on the last row (forward) or page up on the first row (backward)."""

        def __init__(self, table: LineTable, forward: bool) -> None:
            super().__init__(table)
            self.forward = forward

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.ordered_columns: list[Column] = []
        self._keys: list[str] = []
        self._cells: list[Sequence[Cell]] = []
        self._index: dict[str, int] = {}
        self._highlighted: str | None = None
        self._repaint_all = True
        self._pass_styles: tuple[Style, Style, Style, Style] | None = None
        self._pass_width = 0
        self._pass_top = 0

    # -- data ---------------------------------------------------------------------------------

    @property
    def columns(self) -> dict[str, Column]:
        """Columns by key."""
        return {c.key: c for c in self.ordered_columns}

    @property
    def row_count(self) -> int:
        return len(self._keys)

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Replace the columns (labels, widths)."""
        self._repaint_all = True
        self.ordered_columns = list(columns)
        self._update_virtual_size()
        self.refresh()

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]], *, cursor: int = 0) -> None:
        """Replace every row at once: ``(key, cells)`` pairs, cells in column order."""
        self._keys = [key for key, _ in rows]
        self._cells = [cells for _, cells in rows]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._update_virtual_size()
        row = self._clamp(cursor)
        self._highlighted = self._keys[row] if self._keys else None
        self._repaint_all = True  # new rows: the whole table changes
        self.cursor_row = row
        self.refresh()

    def get_column(self, key: str) -> list[Cell]:
        """The cells of one column, top to bottom."""
        position = next(i for i, c in enumerate(self.ordered_columns) if c.key == key)
        return [cells[position] for cells in self._cells]

    @property
    def highlighted_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._keys:
            return None
        return self._keys[self._clamp(self.cursor_row)]

    def move_cursor(self, *, row: int) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view."""
        self.cursor_row = self._clamp(row)

    def _clamp(self, row: int) -> int:
        return max(0, min(row, len(self._keys) - 1)) if self._keys else 0

    def _update_virtual_size(self) -> None:
        width = sum(c.get_render_width() for c in self.ordered_columns)
        self.virtual_size = Size(width, len(self._keys) + 1)  # +1: the header line

    # -- cursor -------------------------------------------------------------------------------

    @property
    def _data_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def watch_cursor_row(self, old_row: int, row: int) -> None:
        key = self._keys[row] if 0 <= row < len(self._keys) else None
        if key is not None and key != self._highlighted:
            self._highlighted = key
            self.post_message(self.RowHighlighted(self, key))
        top = round(self.scroll_offset.y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + self._data_height:
            self.scroll_to(y=row - self._data_height + 1, animate=False, immediate=True)
        elif self._repaint_all:
            self._repaint_all = False
            self.refresh()
        else:
            # Only the line the cursor left and the line it reached change: a frame then costs
            # two lines instead of the whole table.
            width = self.scrollable_content_region.width
            self.refresh(Region(0, old_row - top + 1, width, 1), Region(0, row - top + 1, width, 1))

    def action_cursor_up(self) -> None:
        self.cursor_row = self._clamp(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.cursor_row = self._clamp(self.cursor_row + 1)

    def action_page_down(self) -> None:
        if self._keys and self.cursor_row >= len(self._keys) - 1:
            self.post_message(self.EdgePaged(self, forward=True))
            return
        self.cursor_row = self._clamp(self.cursor_row + self._data_height)

    def action_page_up(self) -> None:
        if self._keys and self.cursor_row <= 0:
            self.post_message(self.EdgePaged(self, forward=False))
            return
        self.cursor_row = self._clamp(self.cursor_row - self._data_height)

    def action_first_row(self) -> None:
        self.cursor_row = 0

    def action_last_row(self) -> None:
        self.cursor_row = self._clamp(len(self._keys) - 1)

    def action_select_cursor(self) -> None:
        key = self.highlighted_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    # -- mouse --------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + round(self.scroll_offset.x)
            for column in self.ordered_columns:
                x -= column.get_render_width()
                if x < 0:
                    self.post_message(self.HeaderSelected(self, column.key))
                    return
            return
        row = round(self.scroll_offset.y) + offset.y - 1
        if 0 <= row < len(self._keys):
            if row == self.cursor_row or event.chain > 1:
                self.cursor_row = row
                self.post_message(self.RowSelected(self, self._keys[row]))
            else:
                self.cursor_row = row

    # -- rendering ----------------------------------------------------------------------------

    def _line(self, cells: Sequence[Cell], style: Style) -> list[Segment]:
        segments: list[Segment] = []
        pad = " " * PADDING
        for column, cell in zip(self.ordered_columns, cells, strict=False):
            if isinstance(cell, Text):
                text, justify = cell.plain, (cell.justify or column.justify)
            else:
                text, justify = cell, column.justify
            segments.append(Segment(pad + _fit(text, column.width, justify) + pad, style))
        return segments

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles are the same for every line of one pass; working them out per line (they
        # walk the ancestors' backgrounds) cost more than drawing the cells.
        base = self.rich_style
        self._pass_styles = (
            base,
            base + self.get_component_rich_style("line-table--header"),
            base + self.get_component_rich_style("line-table--cursor"),
            base + self.get_component_rich_style("line-table--even-row"),
        )
        self._pass_width = self.scrollable_content_region.width
        self._pass_top = round(self.scroll_offset.y)
        self._fit_flex_columns(self._pass_width)
        return super().render_lines(crop)

    def _fit_flex_columns(self, width: int) -> None:
        flex = [c for c in self.ordered_columns if c.flex]
        if not flex:
            return
        fixed = sum(c.get_render_width() for c in self.ordered_columns if not c.flex)
        share = (width - fixed) // len(flex) - 2 * PADDING
        for column in flex:
            column.width = max(column.min_width, share)

    def render_line(self, y: int) -> Strip:
        if self._pass_styles is None:  # called outside render_lines
            return Strip.blank(self.size.width)
        base, header, cursor, even = self._pass_styles
        width = self._pass_width
        if y == 0:
            labels = [c.label for c in self.ordered_columns]
            return Strip(self._line(labels, header)).adjust_cell_length(width, header)
        row = self._pass_top + y - 1
        if row >= len(self._keys):
            return Strip.blank(width, base)
        if row == self.cursor_row:
            style = cursor
        elif row % 2:
            style = even
        else:
            style = base
        return Strip(self._line(self._cells[row], style)).adjust_cell_length(width, style)


class QueueTable(LineTable):
    """The table of a queue: one page of requests."""
