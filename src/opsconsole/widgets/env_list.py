"""The environment list: one label per environment, drawn only where it is visible.

It looks and behaves like the OptionList it replaces (same layout, wrapping, highlight, hover and
click), but keeps only each environment's label and its height: an OptionList keeps a prompt
visual, a line table and rendered strips for every option, ~7 KiB an environment, which a fleet of
200 single-host environments pays 200 times. Here only the visible labels' lines are cached.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import ClassVar, cast

from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.css.styles import RulesMap
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.visual import visualize


class EnvList(ScrollView, can_focus=False):
    """Environments: click one, or press `e` (no focus, so arrow keys always move the pane's rows)."""

    DEFAULT_CSS = """
    EnvList {
        height: auto;
        max-height: 100%;
        color: $foreground;
        overflow-x: hidden;
        padding: 0 1;
        background: $surface;
        & > .env-list--option-highlighted {
            color: $foreground;
            background: $block-cursor-blurred-background;
        }
        & > .env-list--option-hover {
            background: $block-hover-background;
        }
        &:nocolor > .env-list--option-highlighted { text-style: bold reverse; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "env-list--option",
        "env-list--option-highlighted",
        "env-list--option-hover",
    }

    class Selected(Message):
        """An environment was clicked."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's own name
        super().__init__(id=id)
        self._names: list[str] = []
        self._labels: list[Text] = []
        self._heights: list[int] = []
        self._starts: list[int] = []  # the first line of each label
        self._width = -1  # the width the heights were measured at
        self._highlighted: int | None = None
        self._hover: int | None = None
        self._strips: LRUCache[tuple[int, int, str], list[Strip]] = LRUCache(64)

    # ------------------------------------------------------------------ contents

    def set_envs(self, names: list[str], labels: list[Text], highlighted: int | None) -> None:
        self._names = list(names)
        self._labels = list(labels)
        self._highlighted = highlighted if highlighted is not None and 0 <= highlighted < len(names) else None
        self._measure()
        self.refresh()
        self.scroll_to_highlight()

    def set_label(self, index: int, label: Text) -> None:
        if self._labels[index] == label:
            return  # unchanged: nothing is redrawn
        self._labels[index] = label
        self._strips.clear()
        if self._width != self._content_width or index >= len(self._heights):
            self.refresh()  # measured again when drawn
            return
        old = self._heights[index]
        self._heights[index] = self._height_of(label, self._width)
        if self._heights[index] != old:
            self._restart()
            self.refresh()
        else:
            self.refresh_lines(self._starts[index], old)  # only its own lines are drawn again

    def label_at(self, index: int) -> Text:
        return self._labels[index]

    @property
    def highlighted(self) -> int | None:
        return self._highlighted

    @highlighted.setter
    def highlighted(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self._names):
            index = None
        if index != self._highlighted:
            self._highlighted = index
            self._strips.clear()
            self.refresh()
            self.scroll_to_highlight()

    # ------------------------------------------------------------------ layout

    @property
    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _height_of(self, label: Text, width: int) -> int:
        """The label's height wrapped at `width`, as OptionList wraps it (the visual is not kept)."""
        return max(1, visualize(self, label, markup=False).get_height(cast(RulesMap, self.styles), width))

    def _measure(self) -> None:
        """Every label's height at the current width, then the line each starts on."""
        width = self._content_width
        if width <= 0:
            return
        self._width = width
        self._strips.clear()
        self._heights = [self._height_of(label, width) for label in self._labels]
        self._restart()

    def _restart(self) -> None:
        line = 0
        self._starts = []
        for height in self._heights:
            self._starts.append(line)
            line += height
        size = Size(self._content_width, line)
        if size != self.virtual_size:
            self.virtual_size = size

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return sum(self._height_of(label, width) for label in self._labels)

    def on_resize(self, _event: events.Resize) -> None:
        if self._content_width != self._width:
            self._measure()
        self.scroll_to_highlight()

    def scroll_to_highlight(self) -> None:
        index = self._highlighted
        if index is None or not self.is_mounted or index >= len(self._starts):
            return
        region = Region(0, self._starts[index], self._content_width, self._heights[index])
        self.scroll_to_region(region, force=True, animate=False, immediate=True)

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        if self._content_width != self._width:
            self._measure()
        width = self._content_width
        line = self.scroll_offset.y + y
        index = bisect_right(self._starts, line) - 1
        if index < 0 or index >= len(self._labels) or line - self._starts[index] >= self._heights[index]:
            return Strip.blank(width, self.get_visual_style("env-list--option").rich_style)
        if index == self._highlighted:
            part = "env-list--option-highlighted"
        elif index == self._hover:
            part = "env-list--option-hover"
        else:
            part = ""
        style = (
            self.get_visual_style("env-list--option", part)
            if part
            else self.get_visual_style("env-list--option")
        )
        key = (index, width, part)
        strips = self._strips.get(key)
        if strips is None:
            visual = visualize(self, self._labels[index], markup=False)
            strips = [
                strip.extend_cell_length(width, style.rich_style).apply_meta({"env": index})
                for strip in visual.to_strips(self, visual, width, None, style)
            ]
            self._strips[key] = strips
        offset = line - self._starts[index]
        return strips[offset] if offset < len(strips) else Strip.blank(width, style.rich_style)

    # ------------------------------------------------------------------ mouse

    def _on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(event.style.meta.get("env"))

    def _on_leave(self, _event: events.Leave) -> None:
        self._set_hover(None)

    def _set_hover(self, index: int | None) -> None:
        if index != self._hover:
            self._hover = index
            self.refresh()

    async def _on_click(self, event: events.Click) -> None:
        index = event.style.meta.get("env")
        if index is not None and 0 <= index < len(self._names):
            self.highlighted = index
            self.post_message(self.Selected(self._names[index]))
