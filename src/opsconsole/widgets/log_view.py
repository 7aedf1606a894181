"""A log view over a ring buffer: follow mode, search, filter, wrap, timestamps; never parses markup.

Lines are neutralised when they arrive (escape sequences removed, control characters made visible);
SGR colours are kept by rebuilding the line from validated SGR parameters only. Only visible rows are
rendered, and a very long line is cut for display (the full line stays in the buffer and in saves).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from opsconsole.sanitize import display_line

# A line that starts with its own time: ISO 8601 / RFC 3339, syslog ("Nov 26 14:02:11"), or a
# bracketed one ("[2026-11-26 14:02:11,123]"), as most loggers and Docker's timestamps write them.
_OWN_TIME = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}|[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}|\d{2}:\d{2}:\d{2})"
)


def own_timestamp(text: str) -> str | None:
    match = _OWN_TIME.match(text)
    return match.group(1) if match else None


DISPLAY_LIMIT = 4000  # characters of one line rendered; the rest shows as "… (N more)"


@dataclass
class LogLine:
    text: str  # plain, inert
    sgr: str | None  # the line rebuilt with validated SGR sequences only, when it had colours
    host: str
    received: datetime


class LogView(ScrollView, can_focus=True):
    """Virtual-scrolling log lines with follow, filter, search highlights, wrap and timestamps."""

    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    timestamps: reactive[bool] = reactive(False)

    @dataclass
    class FollowChanged(Message):
        follow: bool

    def __init__(
        self,
        max_lines: int = 10_000,
        *,
        show_host: bool = False,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's parameter name
    ) -> None:
        super().__init__(name=name, id=id)
        self.lines: deque[LogLine] = deque(maxlen=max_lines)
        self.max_lines = max_lines
        self.show_host = show_host
        self.filter_text = ""
        self.search_text = ""
        self.search_index: int | None = None  # index into visible lines of the current match
        self._visible: list[int] | range | None = None  # indices into self.lines (a range unfiltered)
        self._row_starts: list[int] | None = None  # wrap mode: first row of each visible line
        self._dropped = 0
        self._decoder = AnsiDecoder()
        self.total_received = 0

    # ----------------------------------------------------------------- data

    def append(self, line: str, host: str = "", received: datetime | None = None) -> None:
        self.append_many([(line, host)], received)

    def append_many(
        self, items: Sequence[tuple[str | tuple[str, str | None], str]], received: datetime | None = None
    ) -> None:
        """Lines as they came (made safe here), or as `display_line` already made them."""
        when = received or datetime.now(UTC)
        evicted = max(0, len(self.lines) + len(items) - self.max_lines)
        for raw, host in items:
            text, sgr = display_line(raw) if isinstance(raw, str) else raw
            self.lines.append(LogLine(text, sgr, host, when))
        self.total_received += len(items)
        if evicted:
            self._dropped += evicted
            if self.search_index is not None:
                self.search_index = max(0, self.search_index - evicted)
        self._invalidate()
        if self.follow:
            self.call_after_refresh(self._end_if_following)

    def clear(self) -> None:
        self.lines.clear()
        self._invalidate()

    def _invalidate(self) -> None:
        self._visible = None
        self._row_starts = None
        self._update_virtual_size()
        self.refresh()

    def visible_indices(self) -> list[int] | range:
        if self._visible is None:
            if self.filter_text:
                needle = self.filter_text.lower()
                self._visible = [i for i, line in enumerate(self.lines) if needle in line.text.lower()]
            else:
                self._visible = range(len(self.lines))
        return self._visible

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.search_index = None
        self._invalidate()

    # ----------------------------------------------------------------- layout

    def _prefix(self, line: LogLine) -> str:
        out = ""
        if self.timestamps and not own_timestamp(line.text):
            # the line's own time, when it starts with one, is already there; else when it arrived
            out += line.received.strftime("%H:%M:%S ") + "↓ "
        if self.show_host and line.host:
            out += f"{line.host} "
        return out

    def _line_width(self, line: LogLine) -> int:
        return len(self._prefix(line)) + min(len(line.text), DISPLAY_LIMIT + 20)

    def _rows_for(self, line: LogLine, width: int) -> int:
        return max(1, -(-self._line_width(line) // max(1, width)))

    def _ensure_rows(self) -> list[int]:
        if self._row_starts is None:
            width = max(1, self.scrollable_content_region.width)
            starts = []
            total = 0
            for index in self.visible_indices():
                starts.append(total)
                total += self._rows_for(self.lines[index], width)
            starts.append(total)
            self._row_starts = starts
        return self._row_starts

    def _update_virtual_size(self) -> None:
        visible = self.visible_indices()
        if self.wrap:
            height = self._ensure_rows()[-1]
            width = self.scrollable_content_region.width
        else:
            height = len(visible)
            width = max((self._line_width(self.lines[i]) for i in visible[-2000:]), default=0) + 1
        self.virtual_size = Size(width, height)

    def on_resize(self) -> None:
        self._row_starts = None
        self._update_virtual_size()

    def watch_wrap(self) -> None:
        self._row_starts = None
        self._update_virtual_size()
        self.refresh()

    def watch_timestamps(self) -> None:
        self._row_starts = None
        self._update_virtual_size()
        self.refresh()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.call_after_refresh(self._end_if_following)
        self.post_message(self.FollowChanged(follow))

    def _end_if_following(self) -> None:
        """The scroll a batch asked for, done after the refresh only if still following: a Home
        pressed in between must not be undone by it (reaching the end would follow again)."""
        if self.follow:
            self.scroll_end(animate=False, immediate=True)

    # ----------------------------------------------------------------- follow / scrolling

    def _on_scroll_position(self) -> None:
        at_end = self.scroll_y >= self.max_scroll_y - 0.5
        if not at_end and self.follow:
            self.follow = False

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old:
            self._on_scroll_position()
        elif not self.follow and new >= self.max_scroll_y and new > old:
            self.follow = True  # scrolled back to the end: follow again

    def action_scroll_end(self) -> None:
        self.resume_follow()

    # the reader scrolling up pauses following at once, before any new line can scroll it back
    def _pause(self) -> None:
        if self.follow:
            self.follow = False

    def action_scroll_up(self) -> None:
        self._pause()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._pause()
        super()._on_mouse_scroll_up(event)

    def resume_follow(self) -> None:
        self.follow = True
        self.scroll_end(animate=False)

    # ----------------------------------------------------------------- search

    def match_position(self) -> tuple[int, int] | None:
        """(n, total): the current match is the n-th of `total` lines that match the search."""
        if not self.search_text:
            return None
        needle = self.search_text.lower()
        visible = self.visible_indices()
        matches = [pos for pos, index in enumerate(visible) if needle in self.lines[index].text.lower()]
        if self.search_index is None or self.search_index not in matches:
            return (0, len(matches))
        return (matches.index(self.search_index) + 1, len(matches))

    def search(self, text: str, forward: bool = True) -> bool:
        """Move to the next (or previous) line containing `text`; True when one was found."""
        self.search_text = text
        if not text:
            self.search_index = None
            self.refresh()
            return False
        needle = text.lower()
        visible = self.visible_indices()
        if not visible:
            return False
        start = self.search_index if self.search_index is not None else (len(visible) - 1 if forward else 0)
        count = len(visible)
        for step in range(1, count + 1):
            pos = (start + step) % count if forward else (start - step) % count
            if needle in self.lines[visible[pos]].text.lower():
                self.search_index = pos
                self.follow = False
                self._scroll_to_match()
                # again once laid out: a search right after lines arrive (or before the first frame)
                # would otherwise be clamped to the old size and leave the match off screen
                self.call_after_refresh(self._scroll_to_match)
                self.refresh()
                return True
        return False

    def _scroll_to_match(self) -> None:
        pos = self.search_index
        if pos is None or pos >= len(self.visible_indices()):
            return
        row = self._ensure_rows()[pos] if self.wrap else pos
        self.scroll_to(
            y=max(0, row - self.scrollable_content_region.height // 2), animate=False, immediate=True
        )

    # ----------------------------------------------------------------- rendering

    def _styled(self, line: LogLine) -> Text:
        text = line.text
        if line.sgr is not None and len(text) <= DISPLAY_LIMIT:
            rendered = Text()
            for part in self._decoder.decode(line.sgr):
                rendered.append_text(part)
        else:
            rendered = Text(text[:DISPLAY_LIMIT])
        if len(text) > DISPLAY_LIMIT:
            rendered.append(f" … ({len(text) - DISPLAY_LIMIT} more characters)", style="dim italic")
        prefix = self._prefix(line)
        if prefix:
            rendered = Text(prefix, style="dim") + rendered
        if self.search_text:
            rendered.highlight_words([self.search_text], style="reverse", case_sensitive=False)
        return rendered

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        visible = self.visible_indices()
        if self.wrap:
            starts = self._ensure_rows()
            pos = bisect_right(starts, row) - 1
            if pos < 0 or pos >= len(visible):
                return Strip.blank(width, self.rich_style)
            text = self._styled(self.lines[visible[pos]])
            offset = row - starts[pos]
            chunk = text[offset * width : (offset + 1) * width]
            strip = Strip(list(chunk.render(self.app.console)), chunk.cell_len)
        else:
            if row >= len(visible):
                return Strip.blank(width, self.rich_style)
            pos = row
            text = self._styled(self.lines[visible[pos]])
            text.truncate(scroll_x + width + 1)
            strip = Strip(list(text.render(self.app.console)), text.cell_len).crop(scroll_x, scroll_x + width)
        if self.search_index == pos:
            strip = strip.apply_style(Style(bgcolor="grey23"))
        return strip.extend_cell_length(width, self.rich_style).apply_style(self.rich_style)

    def plain_lines(self) -> list[str]:
        return [self._prefix(self.lines[i]) + self.lines[i].text for i in self.visible_indices()]
