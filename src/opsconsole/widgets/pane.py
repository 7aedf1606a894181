"""A pane: a status line (freshness, errors, "not configured") above a filterable DataTable.

Every cell is built as rich Text from neutralised strings: nothing from outside is parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import RowKey

from opsconsole.sanitize import clean

Cell = str | Text


def cell(value: Any, style: str = "", limit: int = 200) -> Text:
    return Text(clean("" if value is None else str(value), limit), style=style)


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


@dataclass
class Row:
    key: str
    cells: Sequence[Cell]
    data: Any


class PaneTable(DataTable[Cell], can_focus=False):
    """Not focusable: the screen routes the cursor keys to the visible pane's table, so switching
    panes moves no focus (which would re-render the footer and restyle the screen on every switch)."""

    _rendered_for: tuple[Any, ...] | None = None

    def _on_resize(self, event: events.Resize) -> None:
        """DataTable forgets every rendered row on each Resize, and a pane's table gets one each
        time its pane is shown again, at the same size: that re-rendered the whole table on every
        pane switch. Only a real change of size does it here."""
        event.prevent_default()  # instead of DataTable's own _on_resize, which does just that
        size = (event.size, event.virtual_size)
        if size != self._rendered_for:
            self._rendered_for = size
            self._update_count += 1

    def _update_dimensions(self, new_rows: Any) -> None:
        """Column widths follow new rows on the table's idle; a frame drawn before it (the screen
        paints on its own loop, which under load comes first) cached every cell cut at the old
        widths under the same update count, and DataTable's only other reset, a Resize, never comes
        while the rows fit the pane (its size and reported virtual size stay the same): the cut cells
        stayed on screen until the rows next changed. A change of width here drops those renders."""
        before = [column.content_width for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        if [column.content_width for column in self.columns.values()] != before:
            self._update_count += 1
            self._line_cache.clear()
            self.refresh()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """A one-line cell that fits its column, built straight from its Text's segments.

        DataTable renders every cell through Rich's Padding and Styled and two passes of
        render_lines (~0.2 ms a cell): the first show of a 30-row pane cost 45–115 ms on the UI
        thread, the slowest key presses. This builds the very same segments (the padding, the
        text's own, the fill, each styled as Styled would) and caches them under DataTable's own
        key; header cells, labels, multi-line rows and anything that would wrap, cut, justify or
        expand tabs take DataTable's path. tests/test_console.py checks both give identical segments."""
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:  # the header (-1), labels (-1), or not there
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached: list[list[Segment]] | None = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        row = self.rows.get(row_key)
        cells = self._get_row_renderables(row_index).cells
        text = cells[column_index] if column_index < len(cells) else None
        padding = self.cell_padding
        inner = width - 2 * padding
        if row is None or row.height != 1 or not isinstance(text, Text) or inner < 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        plain = text.plain
        length = cell_len(plain)
        if length > inner or "\n" in plain or "\t" in plain or text.justify not in (None, "default"):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        blank = Style.null()  # Padding's own style ("none"): what its spaces and the fill carry
        pad = [Segment(" " * padding, blank)] if padding else []
        fill = [Segment(" " * (inner - length), blank)] if length < inner else []
        # Text.__rich_console__ joins the (single) wrapped line into a new Text before rendering
        segments = [*pad, *Text("\n").join([text]).render(self.app.console), *fill, *pad]
        line = [Segment(chars, _styled(pre_style + style, post_style)) for chars, style, _ in segments]
        lines = [line]
        self._cell_render_cache[cache_key] = lines
        return lines

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's line from x1 to x2 (exclusive, in the table's own columns), whose last cell
        is "…", in the style of the character it replaces, while columns go on past x2: a cell cut
        at the pane's right edge reads as cut, not as the whole value (as in k9s and htop). The
        header's line too; scrolled to the end, or with a table that fits, no line has one.

        Cells are rendered as before (`_render_cell` and its cache are unchanged). The finished
        line replaces DataTable's in its line cache, under its key (as Textual 8.2.8 builds it;
        were they to differ, lines would still be right, only not cached). Whether a line is cut
        follows from x2 and the column widths, and a change of width bumps the update count in
        that key or clears the cache (`_update_dimensions`, `_on_resize`, `clear`)."""
        width = self.size.width
        try:
            self._get_offsets(y)
        except LookupError:  # below the last row: DataTable's blank line, never cut
            return super()._render_line(y, x1, x2, base_style)
        cache_key = (
            y,
            x1,
            x2,
            width,
            self.cursor_coordinate,
            self.hover_coordinate,
            base_style,
            self.cursor_type,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached: Strip | None = self._line_cache.get(cache_key)
        if cached is not None:
            return cached
        strip = super()._render_line(y, x1, x2, base_style)
        # the line DataTable crops is the row labels then every column; what is past x2 is unseen
        table_width = self._row_label_column_width + sum(
            column.get_render_width(self) for column in self.ordered_columns
        )
        if x2 < table_width and strip.cell_length > 0:
            strip = _end_in_ellipsis(strip)
            self._line_cache.discard(cache_key)  # LRUCache.set keeps a value already there
            self._line_cache[cache_key] = strip
        return strip

    def update_cells(self, changes: Sequence[tuple[str, int, Cell]]) -> None:
        """Set cells (row key, column index, value), drawing again only the rows they are in.

        DataTable.update_cell keys every render cache by one table-wide update count, so a single
        changed cell re-renders every row (~100 ms for a 30-row pane on the UI thread, the slow
        key presses of a refresh); here only the changed rows' cache entries go. A value wider
        than its column takes DataTable's own path, which widens the column (never cut)."""
        columns = list(self.columns.values())
        rows: set[RowKey] = set()
        for row_key, index, value in changes:
            column = columns[index]
            if cell_len(value.plain if isinstance(value, Text) else value) > column.content_width:
                self.update_cell(row_key, column.key, value, update_width=True)
                continue
            key = RowKey(row_key)
            self._data[key][column.key] = value
            rows.add(key)
        if not rows:
            return
        indexes = {i for i in (self._row_locations.get(key) for key in rows) if i is not None}
        caches: list[Any] = [self._row_render_cache, self._cell_render_cache]
        for cache in caches:
            for cache_key in [k for k in cache.keys() if k[0] in rows]:
                cache.discard(cache_key)
        for renderables_key in [k for k in self._row_renderable_cache.keys() if k[1] in indexes]:
            self._row_renderable_cache.discard(renderables_key)
        self._line_cache.clear()  # lines are joined from the rows' renders: cheap to join again
        for index in indexes:
            self.refresh_row(index)


def _end_in_ellipsis(strip: Strip) -> Strip:
    """`strip` with "…" for its last character (one cell), in that character's style; the right
    half of a wide character there leaves a space in its place."""
    length = strip.cell_length
    last = [segment for segment in strip.crop(length - 1, length) if segment.text]
    style = last[-1].style if last else None
    return Strip([*strip.crop(0, length - 1), Segment("…", style)], length)


def _styled(style: Style, post_style: Style | None) -> Style:
    """The style Rich's Styled gives a segment whose pre-styled style is `style`."""
    if not post_style:
        return style
    return style + post_style if style else post_style


class Pane(Vertical):
    """One source pane. `set_rows()` replaces the rows; `set_status()` the line above them."""

    DEFAULT_CSS = """
    Pane { height: 1fr; }
    Pane > .pane-status { height: auto; max-height: 12; color: $text-muted; padding: 0 1; }
    Pane > .pane-status.-error { color: $error; }
    Pane > Input { display: none; height: 3; }
    Pane > Input.-visible { display: block; }
    Pane > DataTable { height: 1fr; }
    """

    def __init__(self, pane_id: str, columns: Sequence[str], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id or pane_id)
        self.pane_id = pane_id
        self.columns = list(columns)
        self.rows: list[Row] = []
        self.filter_text = ""
        self.shown_count = 0
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.status_text = Text("loading…")

    def compose(self) -> ComposeResult:
        yield Static(self.status_text, classes="pane-status")
        table = PaneTable(cursor_type="row", zebra_stripes=False, id=f"{self.pane_id}-table")
        table.add_columns(*self.columns)
        yield table

    @dataclass
    class Ready(Message):
        """Posted once mounted: the screen fills it (panes are built just after the first frame)."""

        pane_id: str

    def on_mount(self) -> None:
        self.call_after_refresh(self.post_message, Pane.Ready(self.pane_id))

    @property
    def table(self) -> PaneTable:
        return self.query_one(PaneTable)

    def set_status(self, text: str | Text, error: bool = False) -> None:
        new = text if isinstance(text, Text) else Text(text)
        if new == self.status_text and self.has_class("-error") == error:
            return  # unchanged: nothing is redrawn, nothing is sent to the terminal
        self.status_text = new
        status = self.query_one(".pane-status", Static)
        status.update(self.status_text)
        status.set_class(error, "-error")

    def set_rows(self, rows: list[Row]) -> None:
        self.rows = rows
        self._render_rows()

    def _render_rows(self, force: bool = False) -> None:
        table = self.table
        selected = self.selected_key()
        needle = self.filter_text.lower()
        shown = [r for r in self.rows if not needle or any(needle in str(c).lower() for c in r.cells)]
        if self.sort_column is not None:
            by = self.sort_column
            shown.sort(
                key=lambda r: sort_key(r.cells[by] if by < len(r.cells) else ""),
                reverse=self.sort_reverse,
            )
        self.shown_count = len(shown)
        current = [str(k.value) for k in table.rows]
        wanted = [r.key for r in shown]
        if current == wanted and not force:
            # same rows: only the changed cells, and only their rows are drawn again (no flicker,
            # few bytes, and no re-render of the whole table on the UI thread)
            changes = [
                (row.key, index, value)
                for row in shown
                for index, (column, value) in enumerate(zip(table.columns, row.cells, strict=False))
                if str(table.get_cell(row.key, column)) != str(value)
            ]
            if changes:
                table.update_cells(changes)
        else:
            table.clear()
            for row in shown:
                table.add_row(*row.cells, key=row.key)
            if selected in wanted:
                table.move_cursor(row=wanted.index(selected), animate=False)

    def selected_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - no cursor yet
            return None

    def selected(self) -> Any:
        key = self.selected_key()
        for row in self.rows:
            if row.key == key:
                return row.data
        return None

    def open_filter(self) -> None:
        box = self.query_one_optional(Input)
        if box is None:  # built on first use: five idle filter boxes would slow the first frame
            box = Input(placeholder="filter (esc to close)", id=f"{self.pane_id}-filter")
            self.mount(box, before=self.table)
        box.add_class("-visible")
        box.value = self.filter_text
        box.focus()

    def close_filter(self) -> None:
        self.query_one(Input).remove_class("-visible")
        self.screen.set_focus(None)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value
        self._render_rows()
        self.post_message(Pane.Ready(self.pane_id))  # the screen redraws the status: "1 of 4 shown"

    def sort_by(self, column: int) -> str:
        """Sort by a column, ascending (again: the other way); its header gets ▲ (ascending) or ▼
        and the others lose theirs. Returns what is shown, e.g. "state ▲"."""
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        table = self.table
        for index, (name, shown) in enumerate(zip(self.columns, table.columns.values(), strict=False)):
            label = Text(f"{name} {self.sort_arrow}" if index == column else name)
            shown.label = label
            shown.content_width = max(shown.content_width, label.cell_len)  # the arrow never cuts
        self._render_rows(force=True)  # every row and the header are drawn again
        return f"{self.columns[column]} {self.sort_arrow}"

    @property
    def sort_arrow(self) -> str:
        """What the sorted column's header ends in: ▲ ascending, ▼ descending."""
        return "▼" if self.sort_reverse else "▲"

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.notify(f"sorted by {self.sort_by(event.column_index)}", timeout=2)

    def clear_filter(self) -> bool:
        """Drop the filter (escape on the console); False when there was none."""
        if not self.filter_text:
            return False
        self.filter_text = ""
        box = self.query_one_optional(Input)
        if box is not None:
            box.value = ""
            box.remove_class("-visible")
        self._render_rows()
        self.post_message(Pane.Ready(self.pane_id))
        return True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter()

    def on_key(self, event: Any) -> None:
        box = self.query_one_optional(Input)
        if event.key == "escape" and box is not None and box.has_class("-visible"):
            event.stop()
            if not self.filter_text:
                self.close_filter()
            else:
                self.query_one(Input).value = ""
                self.close_filter()


def sort_key(value: Cell) -> tuple[int, float, str]:
    """Numbers as numbers ("12.5", "4100", "836.0 KiB" by its number), then text."""
    text = str(value).strip()
    head = text.split(" ", 1)[0].rstrip("%")
    try:
        number = float(head)
    except ValueError:
        return (1, 0.0, text.lower())
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}.get(text.split(" ")[-1], 1)
    return (0, number * scale, "")


def start_time(start: float, now: float) -> str:
    """When something started, in local time: `14:05` today (by `now`), `Nov 25 14:05` before.
    Unlike an age it never changes on screen while nothing happens."""
    import time as _time

    when, today = _time.localtime(start), _time.localtime(now)
    if when[:3] == today[:3]:
        return _time.strftime("%H:%M", when)
    if when.tm_year == today.tm_year:
        return _time.strftime("%b %d %H:%M", when)
    return _time.strftime("%Y-%m-%d", when)
