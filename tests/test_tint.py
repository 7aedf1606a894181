"""The tint under a modal, remembered per style (`widgets/tint.py`), gives Textual's own segments."""

from __future__ import annotations

import random

from rich.color import Color as RichColor
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.color import Color
from textual.renderables.background_screen import BackgroundScreen

from opsconsole.widgets import tint


def random_style(rng: random.Random) -> Style | None:
    if rng.random() < 0.05:
        return None
    if rng.random() < 0.05:
        return Style()
    def colour() -> RichColor | None:
        choice = rng.random()
        if choice < 0.3:
            return None
        if choice < 0.5:
            return RichColor.parse(rng.choice(["red", "green", "bright_blue", "default", "color(200)"]))
        return RichColor.from_rgb(rng.randrange(256), rng.randrange(256), rng.randrange(256))
    flags = {name: rng.choice([None, True, False]) for name in ("bold", "dim", "italic", "underline", "reverse", "strike")}
    meta = {"@click": f"app.x({rng.randrange(5)})", "offset": (rng.randrange(80), rng.randrange(24))} if rng.random() < 0.3 else None
    link = "https://example.invalid/" + str(rng.randrange(3)) if rng.random() < 0.1 else None
    return Style(color=colour(), bgcolor=colour(), link=link, meta=meta, **flags)


def test_remembered_tints_are_textuals_segments() -> None:
    rng = random.Random(34)
    styles = [random_style(rng) for _ in range(300)]
    for alpha in (0.0, 0.3, 0.6, 1.0):
        tint_colour = Color(rng.randrange(256), rng.randrange(256), rng.randrange(256), alpha)
        segments = [Segment(rng.choice(["x", "ab", " ", "─"]), rng.choice(styles)) for _ in range(3000)]
        segments.insert(10, Segment("", None, [(ControlType.HOME,)]))  # a control segment passes untouched
        expected = list(tint._original(segments, tint_colour))
        for _ in range(2):  # cold, then from what was remembered
            got = list(tint.process_segments(BackgroundScreen, segments, tint_colour))
            assert got == expected
            assert [s.style._link_id if s.style else None for s in got] == [
                s.style._link_id if s.style else None for s in expected
            ]


def test_install_wraps_textual_once() -> None:
    tint.install()
    tint.install()
    assert BackgroundScreen.__dict__["process_segments"].__func__ is tint.process_segments
