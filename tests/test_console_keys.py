"""The console at 3 a.m.: no false green, readable errors, keyboard-first (Pilot against real
services; the keys a person types are also proven in tmux in test_e2e_tmux.py)."""

from __future__ import annotations

import contextlib
import html
import re
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.profiles import load_profile
from opsconsole.screens.action_screen import ActionScreen
from opsconsole.screens.log_screen import LogScreen
from opsconsole.screens.pick import PickScreen
from opsconsole.widgets.env_list import EnvList
from opsconsole.widgets.log_view import LogView, own_timestamp
from opsconsole.widgets.pane import Pane
from test_console import audit_env, confirm_open, console_profile, pane_keys, wait_until  # noqa: F401 - fixtures


def screen_text(app: Any) -> str:
    """What the terminal shows, as text (the SVG screenshot without its markup)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def header(app: Any) -> str:
    return str(app.screen.query_one("#header").render())


async def test_a_source_waiting_on_a_dead_host_is_never_green(
    tmp_path: Path, supervisord: harness.Supervisord, sshd: harness.Sshd, blackhole: harness.Blackhole
) -> None:
    dead = f"root@127.0.0.1:{blackhole.port}"
    profile = write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 3
[environments.staging]
hosts = ["local", "{dead}"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )
    app = make_app(load_profile(profile))
    seen: list[str] = []
    async with app.run_test(size=(160, 40)) as pilot:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen.append(header(app))
            pane = app.screen.query_one_optional("#processes", Pane)
            status = str(pane.status_text) if pane is not None else ""
            if "✗" in seen[-1]:
                break
            assert "supervisor ✓" not in seen[-1]  # one of two hosts answered: not green
            assert "· live" not in status
            await pilot.pause(0.05)
        assert any("supervisor 1/2…" in h for h in seen), seen[-3:]
        assert "supervisor ✗1" in seen[-1]
        status = str(app.screen.query_one("#processes", Pane).status_text)
        assert "processes · 1 of 2 hosts" in status and "timed out" in status
        label = app.screen.query_one("#envs", EnvList).label_at(0).plain
        assert "timed out" in label and "unreachable" not in label


async def test_an_error_alone_never_says_live_and_long_errors_show_whole(
    tmp_path: Path, sshd: harness.Sshd
) -> None:
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(harness.closed_port()) for _ in range(3)]
        await _errors_alone(tmp_path, sshd, [f"root@127.0.0.1:{p}" for p in ports])


async def _errors_alone(tmp_path: Path, sshd: harness.Sshd, hosts: list[str]) -> None:
    profile = write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 2
[environments.staging]
hosts = {str(hosts).replace("'", '"')}
[environments.staging.supervisor]
url = "unix:///var/run/supervisor-{"x" * 80}.sock"
""",
    )
    app = make_app(load_profile(profile))
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: "✗3" in header(app), what="three errors")
        pane = app.screen.query_one("#processes", Pane)
        status = str(pane.status_text)
        assert "· live" not in status and "0 processes" not in status
        assert status.count("connection refused") == 3
        shown = pane.query_one(".pane-status")
        # one line per error at least: wrapped, not cut at 4 lines (once laid out after the update)
        await wait_until(pilot, lambda: shown.size.height >= 3, timeout=5, what="the errors' lines")
        label = app.screen.query_one("#envs", EnvList).label_at(0).plain
        assert "3 unreachable" in label


def test_the_environment_list_names_the_cause() -> None:
    from opsconsole.sources.fanout import SourceResult
    from opsconsole.sources.summary import summarize

    results: dict[tuple[str, ...], SourceResult[Any]] = {
        ("supervisor", "a"): SourceResult(error="a: ssh: timed out after 5 s"),
        ("supervisor", "b"): SourceResult(error="b: ssh: authentication failed (bad key)"),
        ("docker", "a"): SourceResult(error="a: ssh: unknown host key (not in known_hosts)"),
        ("sentry",): SourceResult(error="secret 'sentry-token' is not set: run ..."),
        ("docker", "b"): SourceResult(error="b: ssh: connection refused"),
    }
    badges = summarize(results).badges()
    assert badges == ["timed out", "auth failed", "host key", "secret missing", "unreachable"]


def test_a_port_with_401_in_it_is_not_an_auth_failure() -> None:
    """A CI run once labelled a refused connection to 127.0.0.1:40167 'auth failed'."""
    from opsconsole.sources.summary import cause_of

    assert cause_of("root@127.0.0.1:40167: ssh: connection refused") == "unreachable"
    assert cause_of("root@10.0.4.3:1403: ssh: timed out after 5 s") == "timed out"
    assert cause_of("sentry: HTTP 401 (the token is invalid or expired)") == "auth failed"
    assert cause_of("github: HTTP 403: Forbidden") == "auth failed"
    assert cause_of("prometheus: HTTP 401 (check prometheus.token)") == "auth failed"
    assert cause_of("supervisor: authentication failed (401); check supervisor.username") == "auth failed"


async def test_toasts_show_brackets_as_written(console_profile: Path) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile), live=False)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        app.notify("environment 'local' has no [deploy] section", severity="error")

        def toasts() -> list[str]:
            return [str(t.render()) for t in app.screen.query("Toast")]

        await wait_until(pilot, lambda: bool(toasts()), what="the toast")
        assert any("has no [deploy] section" in t for t in toasts()), toasts()


async def test_palette_finds_actions_environments_and_panes(console_profile: Path) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="rows")
        for query, expected in (
            ("restart", "Restart selection"),
            ("log", "Logs selection"),
            ("stop", "Start/stop selection"),
            ("env", "Environment: production"),
            ("errors", "Pane: Errors"),
        ):
            await pilot.press("ctrl+p")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette")
            await pilot.press(*query)
            await wait_until(pilot, lambda e=expected: e in screen_text(app), what=expected)  # type: ignore[misc]
            await pilot.press("escape")
            await wait_until(pilot, lambda: type(app.screen).__name__ != "CommandPalette", what="closed")


async def test_all_environments_view_acts_on_the_rows_own_environment(console_profile: Path) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="rows")
        app.refresh_env("production")
        await pilot.press("0")
        await wait_until(
            pilot,
            lambda: (
                any(k.startswith("production|") for k in pane_keys(app, "all"))
                and any(k.startswith("staging|") for k in pane_keys(app, "all"))
            ),
            what="rows of both environments",
        )
        keys = pane_keys(app, "all")
        table = app.screen.query_one("#all", Pane).table
        target = next(k for k in keys if k.startswith("production|") and "sleeper" in k)
        table.move_cursor(row=keys.index(target))
        await pilot.press("r")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        assert app.screen.action_obj.env.name == "production"  # type: ignore[attr-defined]
        await pilot.press("escape")


async def test_sort_copy_and_filter_state(console_profile: Path) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: len(pane_keys(app, "processes")) >= 5, what="rows")
        pane = app.screen.query_one("#processes", Pane)
        await pilot.press("S")  # shift+s: by state
        states = [str(row[2]) for row in (pane.table.get_row_at(i) for i in range(pane.table.row_count))]
        assert states == sorted(states, key=str.lower)
        await pilot.press("S")
        states = [str(row[2]) for row in (pane.table.get_row_at(i) for i in range(pane.table.row_count))]
        assert states == sorted(states, key=str.lower, reverse=True)
        pane.table.move_cursor(row=0)
        await pilot.press("y")
        first = pane_keys(app, "processes")[0].split("|", 1)[1]
        assert app.clipboard == first
        await pilot.press("slash")
        await pilot.press(*"counter")
        await pilot.press("enter")
        await wait_until(pilot, lambda: 'filter "counter"' in str(pane.status_text), what="filter shown")
        assert "1 of " in str(pane.status_text)
        await pilot.press("escape")
        await wait_until(pilot, lambda: "filter" not in str(pane.status_text), what="filter cleared")
        assert len(pane_keys(app, "processes")) >= 5


async def test_a_running_action_is_counted_reopened_and_guards_quit(
    tmp_path: Path,
    console_profile: Path,  # noqa: F811
) -> None:
    text = console_profile.read_text() + (
        '\n[[environments.staging.actions]]\nname = "slow"\ncommand = "sleep 30"\nconfirm = false\n'
    )
    app = make_app(load_profile(write_profile(tmp_path, text, name="slow")))
    async with app.run_test(size=(120, 40)) as pilot:
        app.request_action("run", "staging", "slow")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: "1 running" in header(app), what="header count")
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="reopened")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="back")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, PickScreen), what="quit question")
        assert "quitting cancels it" in screen_text(app)
        await pilot.press("escape")  # stay
        await wait_until(pilot, lambda: not isinstance(app.screen, PickScreen), what="stayed")
        assert app.is_running and app.runs.running()
        (state,) = app.runs.running()
        state.run.cancel()
        await wait_until(pilot, lambda: not app.runs.running(), what="cancelled")
        await wait_until(pilot, lambda: "running" not in header(app), what="count gone")


def test_details_show_times_as_times() -> None:
    from opsconsole.screens.details import show_time

    now = 1_800_000_000.0
    shown = show_time(int(now) - 2700, now=now)
    assert shown.endswith(", 45 min ago") and ":" in shown.split(",")[0]
    assert show_time("2027-01-15T08:00:00Z", now=now).endswith(" ago")
    assert show_time("not a time") == "not a time"


def test_docker_inspect_is_pretty_printed_and_inert() -> None:
    from rich.console import Console
    from rich.json import JSON

    from opsconsole.screens.details import inert

    data = {"Name": "/web", "Config": {"Env": ["A=1", "EVIL=\x1b]0;pwned\x07x"]}, "State": {"Pid": 12}}
    console = Console(width=80, record=True, color_system=None)
    console.print(JSON.from_data(inert(data), indent=2))
    text = console.export_text()
    assert '"Config": {' in text and '"Pid": 12' in text and len(text.splitlines()) > 8
    assert "\x1b" not in text and "␊" not in text


async def test_log_viewer_match_counter_and_own_timestamps(console_profile: Path) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        from opsconsole.actions.runner import ActionRun

        action = app.make_action("logs", "staging", f"file:{app.profile.env('staging').logs.files[0]}")  # type: ignore[union-attr]
        from opsconsole.actions.runs import RunState

        app.push_screen(LogScreen(RunState(99, action, ActionRun(action))))
        await pilot.pause()
        view = app.screen.query_one(LogView)
        view.append_many([(f"2026-11-26T14:02:{n:02d} request {n} ok", "") for n in range(41)])
        view.append_many([("no time here", "")])
        await pilot.press("slash")
        await pilot.press(*"request", "enter")
        await pilot.press("n", "n")
        status = str(app.screen.query_one("#log-status").render())
        assert "search 'request' 3/41" in status
        assert own_timestamp("2026-11-26T14:02:11 x") and own_timestamp("Nov 26 14:02:11 host x")
        assert own_timestamp("no time here") is None
        view.timestamps = True
        assert view._prefix(view.lines[0]) == ""  # its own time is there already  # noqa: SLF001
        assert view._prefix(view.lines[-1]).endswith("↓ ")  # arrival time, marked  # noqa: SLF001


@pytest.mark.parametrize("width", [80, 160])
async def test_header_and_footer_fit(console_profile: Path, width: int) -> None:  # noqa: F811
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(width, 24)) as pilot:
        await wait_until(pilot, lambda: "✓" in header(app), what="sources")
        # the footer is mounted after the first frame; once drawn, its last item is not cut
        await wait_until(pilot, lambda: "Quit" in screen_text(app), timeout=10, what="the footer's last item")
        if width == 80:
            assert "1 other:" in header(app)
