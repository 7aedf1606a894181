"""Rough edges of the panes (issue 33): every column can be sorted from the keyboard and shows which
way it is sorted, the active tab is underlined from the first frame, and a cut cell ends in "…"."""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding

from conftest import write_profile
from test_e2e_tmux import Tmux, tmux_console  # noqa: F401 - fixture

STATES = ("RUNNING", "STOPPED", "EXITED", "FATAL", "BACKOFF", "STARTING")


def _header(screen: str) -> str:
    """The Processes pane's column headers."""
    return next(line for line in screen.splitlines() if "host" in line and "process" in line)


def _pids(screen: str) -> list[int]:
    """The pids shown in the Processes pane, top to bottom (a stopped process has none)."""
    pids = []
    for line in screen.splitlines():
        words = line.split()
        at = next((n for n, w in enumerate(words) if w in STATES), None)
        if at is not None and at + 1 < len(words) and words[at + 1].isdigit():
            pids.append(int(words[at + 1]))
    return pids


def _underline_row(screen: str) -> str:
    return next(line for line in screen.splitlines() if "━" in line)


def test_the_active_tab_is_underlined_from_the_first_frame(tmux_console: Tmux) -> None:  # noqa: F811
    """The bar under the tabs marks the active one (`╸` before its span, `╺` after) as soon as the
    rows are there, before any tab change."""
    screen = tmux_console.wait_for("counter:counter")
    bar = _underline_row(screen)
    assert "╺" in bar, screen


def test_shift_keys_sort_every_column_both_ways_with_an_arrow_on_its_header(tmux_console: Tmux) -> None:  # noqa: F811
    """Shift+P sorts by pid (not by process: shift+N does), again the other way; the header says
    which column and which way (▲/▼), and shift+S then moves the arrow to state."""
    tmux_console.wait_for("web:web_1")
    tmux_console.keys("P")
    screen = tmux_console.wait_for("sorted by pid ▲")
    assert "pid ▲" in _header(screen) and "process ▲" not in _header(screen), screen
    assert len(_pids(screen)) >= 3 and _pids(screen) == sorted(_pids(screen)), screen
    tmux_console.keys("P")
    screen = tmux_console.wait_for("sorted by pid ▼")
    assert "pid ▼" in _header(screen), screen
    assert _pids(screen) == sorted(_pids(screen), reverse=True), screen
    tmux_console.keys("N")
    screen = tmux_console.wait_for("sorted by process ▲")
    assert "process ▲" in _header(screen) and "pid ▼" not in _header(screen), screen


def test_every_column_of_every_pane_has_one_sort_key_of_its_own() -> None:
    """No two columns of a pane share a sort key, none is left without one, and no sort key is a key
    the console screen already uses (D, R, A, G...): shift+P could only sort by process before."""
    from opsconsole.panes import all as all_pane
    from opsconsole.panes import pane_specs
    from opsconsole.screens.bindings import SCREEN_BINDINGS, SORT_BINDINGS, main_bindings, sort_column

    sort_ids = [b.id for b in SORT_BINDINGS if isinstance(b, Binding) and b.id]
    for columns in [spec.columns for spec in pane_specs()] + [all_pane.COLUMNS]:
        owners = {
            index: [i for i in sort_ids if sort_column(i, columns) == index] for index in range(len(columns))
        }
        assert all(len(ids) == 1 for ids in owners.values()), (columns, owners)
    others = [b for b in main_bindings() if isinstance(b, Binding) and b not in SORT_BINDINGS]
    taken = {k.strip() for b in others for k in b.key.split(",")}
    for binding in SORT_BINDINGS:
        assert isinstance(binding, Binding) and binding.id and binding.tooltip
        assert binding.key not in taken, binding.key
        assert binding in SCREEN_BINDINGS


async def test_help_lists_the_sort_keys(tmp_path: Path) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.bindings import SORT_BINDINGS

    profile = write_profile(tmp_path, '[project]\nname = "x"\n[environments.staging]\nhosts = ["local"]\n')
    app = make_app(load_profile(profile))
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        from opsconsole.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        listed = {b.id: b.tooltip for _title, items in app.screen.sections for b in items}
        for binding in SORT_BINDINGS:
            assert isinstance(binding, Binding)
            assert listed.get(binding.id) == binding.tooltip, binding.id
        assert "Sort the visible pane by pid" in listed["sort_pid"]
