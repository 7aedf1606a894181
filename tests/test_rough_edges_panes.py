"""Rough edges of the panes (issue 33): every column can be sorted from the keyboard and shows which
way it is sorted, the active tab is underlined from the first frame, and a cut cell ends in "…"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.binding import Binding

import harness
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


# ------------------------------------------------------------------ a cell cut at the pane's edge


def _chars(table: Any, y: int) -> list[tuple[str, Any]]:
    """Line `y` of a table as drawn: each character with its style."""
    return [(char, segment.style) for segment in table.render_line(y) for char in segment.text]


async def test_a_table_wider_than_its_pane_ends_every_line_in_an_ellipsis_until_scrolled_to_the_end() -> None:
    """A pane 30 columns wide whose table is wider: the header and every row end in "…" at the
    right edge, in the style of the cell cut there (the cursor's on the cursor row), also after a
    cell changes; scrolled right to the end every value is whole and no line has one; scrolled
    back, they come back."""
    from textual.app import App, ComposeResult

    from opsconsole.widgets.pane import Pane, Row, cell

    columns = ["host", "release", "outcome", "CPU"]

    def row(key: str, host: str, outcome: str, style: str, cpu: str) -> Row:
        return Row(key, [cell(host), cell("20251126T090000Z"), cell(outcome, style), cell(cpu)], None)

    rows = [
        row("a", "web-1", "success, marked bad", "green", "3.5"),
        row("b", "web-2", "failed", "red", "12.0"),
    ]

    class Narrow(App[None]):
        CSS = "Pane { width: 30; }"

        def compose(self) -> ComposeResult:
            yield Pane("deploys", columns)

    app = Narrow()
    async with app.run_test(size=(40, 10)) as pilot:
        pane = app.query_one(Pane)
        pane.set_rows(rows)
        await pilot.pause()
        table = pane.table
        assert table.size.width < table.virtual_size.width  # wider than its pane: cut at the edge

        def lines() -> list[str]:
            return [table.render_line(y).text for y in range(3)]

        shown = lines()
        assert all(line.endswith("…") and len(line) == table.size.width for line in shown), shown
        assert shown[1].startswith(" web-1  20251126T090000Z  suc"), shown  # cut inside "success"
        for y in range(3):  # each "…" in the style of the character it replaced ("c", "c", "l")
            chars = _chars(table, y)
            assert chars[-1] == ("…", chars[-2][1]), (y, chars[-2:])
        cursor, other = ([s for _, s in chars] for chars in (_chars(table, 1), _chars(table, 2)))
        assert cursor[-1] is not None and other[-1] is not None
        assert cursor[-1].bgcolor == cursor[1].bgcolor != other[-1].bgcolor  # the cursor row's "…"
        assert other[-1].color is not None and other[-1].color.name == "red"  # "failed"'s red

        pane.set_rows([rows[0], row("b", "web-2", "rolled back", "red", "12.0")])  # one cell changes
        await pilot.pause()
        assert all(line.endswith("…") for line in lines()), lines()

        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert table.scroll_x == table.max_scroll_x > 0
        at_end = lines()
        assert not any("…" in line for line in at_end), at_end
        assert "CPU" in at_end[0] and "success, marked bad" in at_end[1], at_end
        assert "rolled back" in at_end[2], at_end

        table.scroll_to(x=0, animate=False)
        await pilot.pause()
        assert all(line.endswith("…") for line in lines()), lines()


def _table_lines(screen: str) -> list[str]:
    """The Processes pane's header and rows, as the terminal shows them."""
    return [
        line
        for line in screen.splitlines()
        if ("process" in line and "state" in line) or any(f" {state} " in line for state in STATES)
    ]


def _wait_screen(session: Tmux, check: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = session.screen()
    while not check(screen) and time.monotonic() < deadline:
        time.sleep(0.2)
        screen = session.screen()
    assert check(screen), f"{what} not on screen after {timeout} s:\n{screen}"
    return screen


def test_a_cut_column_ends_in_an_ellipsis_in_a_terminal_until_scrolled_right(
    tmp_path: Path, supervisord: harness.Supervisord
) -> None:
    """In a 56-column terminal the Processes table (62 wide) is cut at the right edge: its header
    and every row end in "…" there; shift+wheel scrolls it right to the end, where "description"
    is whole and no line has one."""
    profile = write_profile(
        tmp_path,
        f"""
[project]
name = "e2e"
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {
        "NO_COLOR": "1",
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "PATH": os.environ["PATH"],
        "COLUMNS": "56",  # a detached tmux session reports 80x24 to the program otherwise
        "LINES": "20",
    }
    session = Tmux([opsconsole, "--profile", str(profile)], env, size=(56, 20))
    try:
        session.wait_for("counter:counter")

        def cut(screen: str) -> bool:
            lines = _table_lines(screen)
            return len(lines) >= 4 and all(len(line) == 56 and line.endswith("…") for line in lines)

        screen = _wait_screen(session, cut, "every line of the table ending in …")
        assert "description" not in screen, screen
        for _ in range(10):  # shift+wheel down over a row (SGR mouse: button 65, +4 for shift)
            subprocess.run(session.tmux("send-keys", "-t", session.name, "-l", "\x1b[<69;20;8M"), check=True)

        def scrolled(screen: str) -> bool:
            return any(line.rstrip().endswith("description") for line in screen.splitlines())

        screen = _wait_screen(session, scrolled, "the table scrolled to the end")
        # (what a stopped process's description says depends on the shared supervisord's past)
        assert not any("…" in line for line in _table_lines(screen)), screen
    finally:
        session.kill()


async def test_the_verification_banner_ends_in_an_ellipsis_at_80_columns_with_R_in_sight() -> None:
    """At 80 columns the one-line banner wrapped: its first line ended mid-word ("· new") and a
    failed verification's "R: roll back", appended after the reasons, was never on screen. It is
    now cut at the edge with "…", and on a failure the key comes first."""
    from opsconsole.actions.deploy.verify import VerifyStatus
    from snapshot_app import build

    app = build()
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.render_all()  # type: ignore[attr-defined]
        await pilot.pause()
        banner = app.screen.query_one("#verify")
        status = VerifyStatus("staging", "20251126T090000Z", "shop@2.3.0", window=300.0)
        status.health_total, status.health_ok = 2, 1
        app.state.verifications["staging"] = status

        async def shown() -> str:
            app.screen.render_verify()  # type: ignore[attr-defined]
            await pilot.pause()
            return "".join(strip.text for strip in banner.render_lines(banner.region.reset_offset))

        line = await shown()
        assert len(line) == 80 and line.startswith("Verifying releases/20251126T090000Z on staging: "), line
        assert line.endswith("…") and "health 1/2 ok" in line, line
        status.verdict = "fail"
        status.reasons = ["health https://staging.example.com/healthz: HTTP 503 (twice in a row)"]
        line = await shown()
        assert line.startswith(" R: roll back  Verifying releases/") and line.endswith("…"), line
        assert "R: roll back" in str(banner.render()) and "(twice in a row)" in str(banner.render())


async def test_enter_on_a_metrics_row_shows_the_detail_the_pane_cuts() -> None:
    """At 80 columns the Metrics pane cuts its detail column (ending in "…"); enter on a row showed
    only "metric". It shows the row's name, value, band and the whole detail."""
    from opsconsole.screens.details import DetailsScreen
    from opsconsole.widgets.pane import Pane
    from snapshot_app import build

    app = build()
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.render_all()  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("6")
        await pilot.pause()
        table = app.screen.query_one("#metrics", Pane).table
        row = table.get_row_index("dora|change failure")
        line = table.render_line(1 + row).text
        assert line.startswith(" change failure") and line.endswith("…"), line
        assert "failed verification" not in line
        table.move_cursor(row=row, animate=False)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        body = " ".join(str(app.screen.query_one("#details-body").render()).split())
        assert body.startswith("metric change failure"), body
        assert "value 9 %" in body and "band medium" in body, body
        assert "2 of 23 deploys rolled back, marked bad or failed verification" in body, body


async def test_the_underline_spans_the_shown_tab_after_the_titles_shorten(tmp_path: Path) -> None:
    """Below 110 columns only the shown tab keeps its title; the tabs move when they are relabelled,
    and the underline (placed by Textual only on a tab change or a resize) is placed again under
    the shown tab's new span, not left where the long titles had it."""
    from textual.widgets import Tabs
    from textual.widgets._tabs import Underline

    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from test_console import panes_built, wait_until

    profile = write_profile(tmp_path, '[environments.staging]\nhosts = ["local"]\n')
    app = make_app(load_profile(profile), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.pause()
        tabs = app.screen.query_one("#panes Tabs", Tabs)
        active = tabs.active_tab
        assert active is not None and active.label.plain == "1 Processes"
        start, end = active.virtual_region.shrink(active.styles.gutter).column_span
        underline = tabs.query_one(Underline)
        assert (underline.highlight_start, underline.highlight_end) == (start, end)
