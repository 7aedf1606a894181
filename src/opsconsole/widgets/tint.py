"""The tint of the screen below a modal, worked out once per style instead of once per segment.

A modal with a translucent background (help, the palette, a confirmation) shows the screen below
it tinted. For every frame of the modal, Textual's `BackgroundScreen` renders that screen again and
works out each of its segments' tinted colours: two colour sums, their conversions and a style sum
per segment, some 2,000 segments on the console's screen at 120x40. The tint of a segment depends
only on its style's colours and attributes, and a screen holds a few dozen of those: `install`
makes Textual's own `process_segments` run once per distinct (tint, colours, attributes) and
reuses its answer. The segments are the same (`tests/test_tint.py` holds both on random styles);
Textual is pinned in pyproject.toml, and `install` leaves Textual alone when the method it wraps
is not the one this was written against.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.renderables.background_screen import BackgroundScreen

CACHE_LIMIT = 4096  # distinct styles kept; past it the cache starts again

_original = BackgroundScreen.process_segments  # bound to the class: (segments, color)
_cache: dict[Hashable, Style] = {}


def _key(style: Style | None, color: Color) -> Hashable:
    if style is None or not style:  # a null style (falsy): Textual tints NULL_STYLE
        return (color, None)
    try:
        # what the tint reads of a style once its meta and link are cleared
        return (color, style._color, style._bgcolor, style._attributes, style._set_attributes)
    except AttributeError:  # another Rich: its cleared copy (slower, as exact)
        return (color, style.clear_meta_and_links())


def process_segments(cls: Any, segments: Iterable[Segment], color: Color) -> Iterable[Segment]:
    """Textual's `BackgroundScreen.process_segments`, its answer per style remembered."""
    cache = _cache
    if len(cache) > CACHE_LIMIT:
        cache.clear()
    for segment in segments:
        text, style, control = segment
        if control:
            yield segment
            continue
        key = _key(style, color)
        tinted = cache.get(key)
        if tinted is None:
            (probe,) = _original([Segment(" ", style)], color)
            tinted = cache[key] = probe.style if probe.style is not None else Style()
        yield Segment(text, tinted, control)


def install() -> None:
    """Once per process; nothing when Textual's method is not the expected one."""
    current = BackgroundScreen.__dict__.get("process_segments")
    if getattr(current, "__func__", None) is process_segments:
        return
    if not isinstance(current, classmethod) or current.__func__.__qualname__ != "BackgroundScreen.process_segments":
        return
    BackgroundScreen.process_segments = classmethod(process_segments)  # type: ignore[method-assign,assignment]
