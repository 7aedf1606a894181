"""The console driven with Pilot against the real services of the harness."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList
from textual.widgets import TabbedContent

import harness
from conftest import write_profile
from opsconsole.app import OpsConsoleApp, make_app
from opsconsole.profiles import load_profile
from opsconsole.screens.action_screen import ActionScreen
from opsconsole.screens.confirm import ConfirmScreen
from opsconsole.screens.log_screen import LogScreen
from opsconsole.widgets.log_view import LogView
from opsconsole.widgets.pane import Pane
from test_actions import git


async def wait_until(
    pilot: Any, check: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    from textual.css.query import NoMatches

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except NoMatches:  # the panes are built just after the first frame
            pass
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def confirm_open(app: Any) -> bool:
    """A confirmation is on screen with its plan (a pushed screen mounts its children after)."""
    return isinstance(app.screen, ConfirmScreen) and app.screen.query_one_optional("#plan-text") is not None


def panes_built(app: OpsConsoleApp) -> bool:
    """Every pane is mounted (they are built just after the first frame, each in its tab)."""
    from opsconsole.panes import pane_specs

    ids = [spec.id for spec in pane_specs(app.profile)] + ["all"]
    return all(app.screen.query_one_optional(f"#{pane_id}", Pane) is not None for pane_id in ids)


def pane_keys(app: OpsConsoleApp, pane_id: str) -> list[str]:
    """The row keys of a pane ([] until the panes are built, just after the first frame)."""
    pane = app.screen.query_one_optional(f"#{pane_id}", Pane)
    return [] if pane is None else [str(k.value) for k in pane.table.rows]


def pane_texts(app: OpsConsoleApp, pane_id: str) -> list[str]:
    """Each row of a pane as one line of text (its cells joined by spaces)."""
    pane = app.screen.query_one_optional(f"#{pane_id}", Pane)
    if pane is None:
        return []
    table = pane.table
    return [" ".join(str(c) for c in table.get_row_at(n)) for n in range(table.row_count)]


@pytest.fixture
def console_profile(tmp_path: Path, supervisord: harness.Supervisord, sshd: harness.Sshd) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('hi')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    text = f"""
[project]
name = "shop"

[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 5
refresh = 30

[environments.staging]
hosts = ["local"]
color = "yellow"

[environments.staging.supervisor]
url = "{supervisord.unix_url}"

[environments.staging.logs]
files = ["{supervisord.root}/counter.out.log"]

[[environments.staging.actions]]
name = "touch"
title = "Touch the canary"
command = "touch {tmp_path}/custom-ran"
confirm = false

[environments.production]
hosts = ["{sshd.host}"]
protected = true
color = "red"

[environments.production.supervisor]
url = "{supervisord.unix_url}"

[environments.production.deploy]
path = "{tmp_path}/srv"
repo = "{repo}"
build = ["echo building"]
restart = []
"""
    return write_profile(tmp_path, text)


@pytest.fixture(autouse=True)
def audit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(path))
    return path


async def test_panes_fill_from_real_supervisord_and_restart_changes_pid(
    console_profile: Path, supervisord: harness.Supervisord, audit_env: Path
) -> None:
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: "local|sleeper:sleeper" in pane_keys(app, "processes"), what="processes"
        )
        assert "local|counter:counter" in pane_keys(app, "processes")
        before = supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"]
        table = app.screen.query_one("#processes", Pane).table
        table.move_cursor(row=pane_keys(app, "processes").index("local|sleeper:sleeper"))
        await pilot.press("r")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        shown = app.screen.query_one("#plan-text")
        # the summary a person decides on comes first; the exact calls are one key away
        summary = str(shown.render())
        assert "Restart supervisor:sleeper:sleeper in staging: a change" in summary
        assert f"local: now RUNNING, pid {before}, up " in summary  # decided on the current state
        assert "supervisor.stopProcess" not in str(shown.render())
        await pilot.press("v")
        assert "supervisor.stopProcess(sleeper:sleeper)" in str(shown.render())
        approved = app.screen.plan.render()  # type: ignore[attr-defined]
        await pilot.click("#run")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await wait_until(
            pilot, lambda: any(r.outcome is not None for r in app.runs.values()), what="restart to finish"
        )
        (run,) = app.runs.values()
        assert run.outcome is not None and run.outcome.ok, run.outcome
        assert supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"] != before
        records = [json.loads(line) for line in audit_env.read_text().splitlines()]
        assert [(r["action"], r["phase"]) for r in records] == [("restart", "start"), ("restart", "end")]
        assert records[0]["plan"] == records[1]["plan"] == approved  # audited = approved, built once
        await pilot.press("escape")
        await pilot.press("q")


async def test_filter_and_pane_keys(console_profile: Path) -> None:
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(pane_keys(app, "processes")) >= 5, what="processes")
        await pilot.press("slash")
        await pilot.press(*"web")
        await pilot.pause(0.2)
        assert pane_keys(app, "processes") == ["local|web:web_0", "local|web:web_1"]
        await pilot.press("enter")
        await pilot.press("2")
        assert app.screen.query_one(TabbedContent).active == "tab-containers"
        await pilot.press("tab")
        assert app.screen.query_one(TabbedContent).active == "tab-deploys"
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")


async def test_log_viewer_follows_a_real_process(console_profile: Path, tmp_path: Path) -> None:
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="processes"
        )
        table = app.screen.query_one("#processes", Pane).table
        table.move_cursor(row=pane_keys(app, "processes").index("local|counter:counter"))
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), what="log screen")
        view = app.screen.query_one(LogView)
        await wait_until(pilot, lambda: len(view.lines) > 120, what="log lines")
        numbers = [int(line.text.split()[1]) for line in view.lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert view.follow
        await pilot.press("home")
        await wait_until(pilot, lambda: not view.follow, what="following to pause")
        count = len(view.lines)
        await wait_until(pilot, lambda: len(view.lines) > count, what="lines to keep coming")
        assert not view.follow  # scrolling up pauses following, while lines keep coming
        assert view.scroll_y == 0
        await pilot.press("end")
        assert view.follow
        target = f"{numbers[3]:08d}"
        await pilot.press("slash", *target, "enter")
        assert (
            view.search_index is not None
            and target in view.lines[view.visible_indices()[view.search_index]].text
        )
        await pilot.press("f", *"0000", "enter")
        assert all("0000" in view.lines[i].text for i in view.visible_indices())
        await pilot.press("w")
        assert view.wrap
        save = tmp_path / "saved.log"
        await pilot.press("ctrl+s")
        box = app.screen.query_one("#log-input")
        # proposed in the data dir, never the current folder (a checkout's untracked file)
        assert str(box.value).startswith(os.environ["OPSCONSOLE_DATA_DIR"])  # type: ignore[attr-defined]
        box.value = str(save)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(pilot, save.exists, what="saved file")
        assert "héllo" in save.read_text()
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: all(r.outcome is not None for r in app.runs.values()), what="follow to stop"
        )


async def test_protected_deploy_needs_the_typed_name(
    console_profile: Path, tmp_path: Path, audit_env: Path
) -> None:
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        app.screen.select_env("production")  # type: ignore[attr-defined]
        await pilot.press("D")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        await wait_until(
            pilot,
            lambda: (box := app.screen.query_one_optional("#typed")) is not None and box.has_focus,
            what="the name field to take the keys",
        )
        run_button = app.screen.query_one("#run")
        assert run_button.disabled  # type: ignore[attr-defined]
        await pilot.press(*"prod")
        assert run_button.disabled  # type: ignore[attr-defined]
        await pilot.press(*"uction")
        await wait_until(pilot, lambda: not run_button.disabled, what="Run enabled")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: any(r.outcome is not None for r in app.runs.values()), timeout=60, what="deploy"
        )
        (run,) = app.runs.values()
        assert run.outcome is not None and run.outcome.ok, run.outcome
        assert (tmp_path / "srv" / "current").is_symlink()
        events = [type(e).__name__ for e in run.events]
        assert "OutputLine" in events and "HostResult" in events
        assert json.loads(audit_env.read_text().splitlines()[-1])["environment"] == "production"


async def test_palette_runs_a_custom_action(console_profile: Path, tmp_path: Path) -> None:
    app = make_app(load_profile(console_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette")
        await pilot.press(*"Touch the canary")
        await wait_until(
            pilot,
            lambda: any(
                "Touch the canary" in str(o.prompt) for o in app.screen.query_one(CommandList).options
            ),
            what="the palette's hit",
        )
        await pilot.press("enter")
        await wait_until(pilot, lambda: (tmp_path / "custom-ran").exists(), what="custom action")


async def test_read_only_refuses_with_a_message(
    console_profile: Path, tmp_path: Path, audit_env: Path
) -> None:
    app = make_app(load_profile(console_profile), read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: "local|sleeper:sleeper" in pane_keys(app, "processes"), what="processes"
        )
        assert "READ-ONLY" in str(app.screen.query_one("#header").render())
        await pilot.press("r")
        await pilot.press("p")
        app.screen.select_env("production")  # type: ignore[attr-defined]
        await pilot.press("D")
        await wait_until(
            pilot,
            lambda: sum("read-only" in n.message for n in app._notifications) >= 2,  # r and D
            what="the refusals",
        )
        assert not isinstance(app.screen, ConfirmScreen)
        assert not (tmp_path / "srv").exists() and not audit_env.exists()


async def test_keys_answer_while_a_host_never_answers(
    tmp_path: Path, supervisord: harness.Supervisord, sshd: harness.Sshd, blackhole: harness.Blackhole
) -> None:
    text = f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
timeout = 8
[environments.staging]
hosts = ["local", "root@127.0.0.1:{blackhole.port}"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
"""
    app = make_app(load_profile(write_profile(tmp_path, text)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="local processes"
        )
        dead = f"root@127.0.0.1:{blackhole.port}"
        assert ("supervisor", dead) not in app.results["staging"]  # still waiting on the dead host
        for key, tab in (
            ("2", "containers"),
            ("3", "deploys"),
            ("4", "errors"),
            ("5", "health"),
            ("1", "processes"),
        ):
            await pilot.press(key)
            assert app.screen.query_one(TabbedContent).active == f"tab-{tab}"
        assert ("supervisor", dead) not in app.results["staging"]  # keys were handled during the wait
        await wait_until(
            pilot, lambda: ("supervisor", dead) in app.results["staging"], timeout=15, what="timeout"
        )
        pane = app.screen.query_one("#processes", Pane)
        await wait_until(
            pilot, lambda: f"{dead}: ssh: timed out" in str(pane.status_text), what="error in the pane"
        )


def test_unknown_theme_is_refused_by_name(console_profile: Path, run_cli: Any) -> None:
    done = run_cli("--profile", str(console_profile), "console", "--theme", "nosuch")
    assert done.returncode == 2
    assert (
        "unknown theme 'nosuch'" in done.stderr and "nord" in done.stderr and "Traceback" not in done.stderr
    )
    done = run_cli("--profile", str(console_profile), env={"OPSCONSOLE_THEME": "nosuch"})
    assert done.returncode == 2 and "unknown theme 'nosuch'" in done.stderr


async def test_profile_keymap_remaps_a_binding(tmp_path: Path, console_profile: Path) -> None:
    text = console_profile.read_text() + '\n[keymap]\ndeploy = "ctrl+e"\nhelp = "f1"\n'
    profile = write_profile(tmp_path, text, name="remapped")
    app = make_app(load_profile(profile), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        app.screen.select_env("production")  # type: ignore[attr-defined]
        await pilot.press("D")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)  # the old key no longer deploys
        await pilot.press("ctrl+e")
        await wait_until(
            pilot, lambda: confirm_open(app), what="confirmation on the new key"
        )
        await pilot.press("escape")
        await pilot.press("f1")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help on f1")
        shown = app.export_screenshot()
        assert "ctrl+e" in shown and "[keymap]" in shown  # the keys in force; the title not eaten


async def test_details_show_the_latest_sentry_event(
    tmp_path: Path, sentry_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentry_server import make_event

    monkeypatch.setenv("OPSCONSOLE_SECRET_SENTRY_TOKEN", sentry_server.token)
    issue = sentry_server.add_issue("ValueError: bad cart")
    sentry_server.events[issue["id"]] = make_event(
        issue, "ValueError", "bad cart", [("shop/cart.py", "checkout", 42)]
    )
    text = f"""
[environments.staging]
hosts = []
[environments.staging.sentry]
url = "{sentry_server.url}"
organization = "acme"
project = "shop"
token = {{ secret = "sentry-token" }}
"""
    app = make_app(load_profile(write_profile(tmp_path, text)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("4")
        await wait_until(pilot, lambda: pane_keys(app, "errors") == [issue["id"]], what="issue row")
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DetailsScreen", what="details")
        body = app.screen.query_one("#details-body")
        await wait_until(
            pilot, lambda: "shop/cart.py:42 in checkout" in str(body.render()), what="stack trace"
        )


async def test_every_screen_honours_a_remapped_binding(tmp_path: Path, console_profile: Path) -> None:
    """One binding of each screen, remapped in `[keymap]`, works on its new key (and not on its old)."""
    from opsconsole.screens.details import DetailsScreen
    from opsconsole.screens.help import HelpScreen
    from opsconsole.screens.pick import PickScreen

    remap = {
        "cursor_down": "f5",
        "palette": "f6",
        "log_wrap": "f7",
        "log_close": "f8",
        "action_close": "f9",
        "confirm_cancel": "f10",
        "details_close": "f11",
        "pick_cancel": "f12",
        "help_close": "ctrl+f",
        "switch_env": "ctrl+o",
        "help": "ctrl+g",
        "command_cancel": "f4",
    }
    text = console_profile.read_text() + "\n[keymap]\n" + "".join(f'{k} = "{v}"\n' for k, v in remap.items())
    app = make_app(load_profile(write_profile(tmp_path, text, name="remapped")))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(pane_keys(app, "processes")) >= 3, what="processes")
        table = app.screen.query_one("#processes", Pane).table
        table.move_cursor(row=0)
        await pilot.press("j")  # the old key no longer moves...
        assert table.cursor_row == 0
        await pilot.press("f5")  # ...the new one does
        assert table.cursor_row == 1
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, PickScreen), what="environment picker")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PickScreen)  # escape was remapped away
        await pilot.press("f12")
        await wait_until(pilot, lambda: not isinstance(app.screen, PickScreen), what="picker closed")
        await pilot.press("colon")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandLine", what="command line")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "CommandLine"  # escape was remapped away
        await pilot.press("f4")
        await wait_until(
            pilot, lambda: type(app.screen).__name__ != "CommandLine", what="command line closed"
        )
        await pilot.press("f6")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette")
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ != "CommandPalette", what="palette closed")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")
        await pilot.press("f11")
        await wait_until(pilot, lambda: not isinstance(app.screen, DetailsScreen), what="details closed")
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), what="log viewer")
        view = app.screen.query_one(LogView)
        wrapped = view.wrap
        await pilot.press("f7")
        assert view.wrap != wrapped
        await pilot.press("f8")
        await wait_until(pilot, lambda: not isinstance(app.screen, LogScreen), what="log closed")
        app.screen.select_env("production")  # type: ignore[attr-defined]
        await pilot.press("D")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        await pilot.press("f10")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancelled")
        app.screen.select_env("staging")  # type: ignore[attr-defined]
        await pilot.press("ctrl+p")  # the app's default palette key was remapped away
        await pilot.pause(0.2)
        assert type(app.screen).__name__ != "CommandPalette"
        await pilot.press("f6")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette")
        await pilot.press(*"Touch the canary")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await pilot.press("f9")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="action closed")


def test_memory_always_carries_a_unit() -> None:
    from opsconsole.panes.containers import fmt_bytes

    assert [fmt_bytes(v) for v in (836, 856_064, 1_153_434, 3 * 1024**3)] == [
        "836 B",
        "836.0 KiB",
        "1.1 MiB",
        "3.0 GiB",
    ]


async def test_cells_that_outgrow_their_column_widen_it(tmp_path: Path, console_profile: Path) -> None:
    """A value that grows on refresh ("…" then "836.0 KiB") is shown whole, never cut to its old width."""
    from opsconsole.widgets.pane import Row, cell

    app = make_app(load_profile(console_profile), live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot, lambda: app.screen.query_one_optional("#containers", Pane) is not None, what="panes"
        )
        pane = app.screen.query_one("#containers", Pane)
        cells = ["local", "web", "running", "healthy", "busybox", "…", "…"]
        pane.set_rows([Row("local|web", [cell(c) for c in cells], None)])
        await pilot.pause()
        pane.set_rows([Row("local|web", [cell(c) for c in [*cells[:5], "12.5", "836.0 KiB"]], None)])
        await pilot.pause()
        memory = list(pane.table.columns.values())[6]
        assert memory.content_width >= len("836.0 KiB")


async def test_changed_cells_redraw_only_their_rows(tmp_path: Path, console_profile: Path) -> None:
    """A refresh that changes a cell draws its row again, and only that row (the others keep what
    they rendered); the new value is what shows, also after the pane was hidden and shown again
    (which no longer re-renders the table) and after the terminal was resized."""
    from opsconsole.widgets.pane import Row, cell

    app = make_app(load_profile(console_profile), live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot, lambda: app.screen.query_one_optional("#containers", Pane) is not None, what="panes"
        )
        await pilot.press("2")
        pane = app.screen.query_one("#containers", Pane)

        def rows(cpu: str) -> list[Row]:
            def cells(n: int) -> list[str]:
                return ["local", f"c{n}", "running", "none", "busybox", cpu if n == 2 else "1.0", "1 MiB"]

            return [Row(f"local|c{n}", [cell(c) for c in cells(n)], None) for n in range(5)]

        def shown() -> list[str]:
            return [pane.table.render_line(y).text for y in range(1, 6)]

        pane.set_rows(rows("1.0"))
        await pilot.pause()
        assert all("1.0" in line for line in shown())
        table = pane.table
        updates = table._update_count
        pane.set_rows(rows("7.5"))
        await pilot.pause()
        assert "7.5" in shown()[2] and all("7.5" not in line for i, line in enumerate(shown()) if i != 2)
        assert table._update_count == updates  # no table-wide invalidation
        kept = {key[0].value for key in table._row_render_cache.keys()}
        assert {"local|c0", "local|c4"} <= kept  # the other rows' renders were kept

        await pilot.press("1")
        await pilot.press("2")
        await pilot.pause()
        assert table._update_count == updates and "7.5" in shown()[2]
        await pilot.resize_terminal(130, 40)
        await pilot.pause()
        assert table._update_count > updates and "7.5" in shown()[2]


async def test_action_screen_shows_whole_steps_and_no_cancel_after_the_end(
    tmp_path: Path, console_profile: Path
) -> None:
    app = make_app(load_profile(console_profile), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.request_action("run", "staging", "touch")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await wait_until(pilot, lambda: all(r.outcome is not None for r in app.runs), what="the run's end")
        await pilot.pause(0.3)
        screen = app.screen
        assert not screen.query_one("#cancel-run").display
        footer = app.export_screenshot()
        assert "Cancel action" not in footer
        table = screen.query_one("#hosts")
        step = str(table.get_row("local")[2])  # type: ignore[attr-defined]
        assert len(step) > 4 and list(table.columns.values())[2].content_width >= len(step)  # type: ignore[attr-defined]


async def test_a_refresh_that_raises_shows_why_and_comes_back(
    console_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in a refresh is shown in the panes, and the next refresh still comes."""
    import opsconsole.sources.model as app_module

    real = app_module.env_tasks
    calls = {"n": 0}

    def flaky(backends: Any, env: Any, only: Any = None) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:  # the first refresh of each environment blows up
            raise RuntimeError("boom in a source")
        return real(backends, env, only)

    monkeypatch.setattr(app_module, "env_tasks", flaky)
    profile = load_profile(console_profile)
    app = make_app(profile)
    app.schedule.refresh = 0.5  # re-armed quickly, so the test sees the next refresh
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                "refresh of staging failed: RuntimeError: boom in a source"
                in str(app.screen.query_one("#processes", Pane).status_text)
            ),
            what="the error in the pane",
        )
        await wait_until(
            pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="recovery"
        )


async def test_pane_table_cells_render_exactly_as_datatable_renders_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PaneTable builds one-line cells itself (DataTable's Rich path cost ~0.2 ms a cell, the slow
    first show of a pane): for random styled text (wide characters, spans, brackets, empty cells,
    cut, justified, multi-line and tab cells that take DataTable's own path), with and without the cursor and
    the hover, it gives the very segments DataTable gives, and the very lines on screen."""
    import random

    from rich.style import Style
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from opsconsole.widgets.pane import PaneTable

    rng = random.Random(18)
    alphabet = "ab Z09[]/:=é漢字😀-"
    styles = ["", "bold", "green", "red on white", "dim italic", "reverse", "underline blue"]

    def random_cell() -> Text:
        plain = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        if rng.random() < 0.05:
            plain += rng.choice(["\n", "\t"]) + "x"
        text = Text(plain, style=rng.choice(styles), justify=rng.choice([None, None, None, "right", "left"]))
        for _ in range(rng.randrange(0, 3)):
            if plain:
                start = rng.randrange(len(plain))
                text.stylize(rng.choice(styles[1:]), start, rng.randrange(start, len(plain) + 1))
        return text

    data = [[random_cell() for _ in range(5)] for _ in range(40)]

    class Plain(DataTable[Any], can_focus=False):  # DataTable's own rendering; unfocused like a pane's
        pass

    class Tables(App[None]):
        def compose(self) -> ComposeResult:
            for table in (PaneTable(cursor_type="row"), Plain(cursor_type="row")):
                table.add_columns("a", "b", "c", "d")
                table.add_column("cut", width=6)  # a fixed width: longer cells are cut
                for row in data:
                    table.add_row(*row)
                table.styles.height = 20
                yield table

    slow_path: list[tuple[int, int]] = []
    datatable_render_cell = DataTable._render_cell

    def counted(table: Any, row: int, column: int, *args: Any, **kwargs: Any) -> Any:
        if isinstance(table, PaneTable) and row >= 0:
            slow_path.append((row, column))
        return datatable_render_cell(table, row, column, *args, **kwargs)

    app = Tables()
    async with app.run_test(size=(160, 44)) as pilot:
        await pilot.pause()
        ours, theirs = app.query_one(PaneTable), app.query_one(Plain)
        assert "_render_cell" not in vars(Plain)
        monkeypatch.setattr(DataTable, "_render_cell", counted)
        widths = [column.get_render_width(ours) for column in ours.ordered_columns]
        assert widths == [column.get_render_width(theirs) for column in theirs.ordered_columns]
        for base in (Style(), Style(bgcolor="grey11"), Style(color="white", bold=True)):
            for row in range(len(data)):
                for column, width in enumerate(widths):
                    for cursor, hover in ((False, False), (True, False), (False, True)):
                        mine = ours._render_cell(row, column, base, width, cursor, hover)
                        expected = theirs._render_cell(row, column, base, width, cursor, hover)
                        assert mine == expected, (row, column, data[row][column], cursor, hover)
        for cursor_row in (0, 7, 19):
            ours.move_cursor(row=cursor_row)
            theirs.move_cursor(row=cursor_row)
            await pilot.pause()
            for y in range(20):
                assert list(ours.render_line(y)) == list(theirs.render_line(y)), (cursor_row, y)
    # the fast path did the work: only cut, justified, multi-line and tab cells took DataTable's
    fits = {
        (r, c)
        for r, row in enumerate(data)
        for c, text in enumerate(row)
        if c < 4 and "\n" not in text.plain and "\t" not in text.plain and text.justify is None
    }
    assert len(fits) > 80 and not fits & set(slow_path)
    assert slow_path  # and the others did take it


async def test_the_all_pane_holds_no_rows_until_it_is_opened() -> None:
    """All (every environment's rows: 4,000 at 200 hosts) is drawn only while shown, also when the
    results are in before its tab has mounted; opening it shows them, and leaving it keeps them."""
    from snapshot_app import build

    app = build()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await wait_until(pilot, lambda: len(pane_keys(app, "processes")) == 3, what="processes")
        await pilot.pause(0.3)
        assert pane_keys(app, "all") == []
        app.screen.render_all()  # type: ignore[attr-defined]  # the stale check, every 3 refreshes
        assert pane_keys(app, "all") == []
        await pilot.press("0")
        await wait_until(pilot, lambda: len(pane_keys(app, "all")) >= 5, what="all rows")
        assert any("web_0" in line for line in pane_texts(app, "all"))
        assert any("shop-redis-1" in line for line in pane_texts(app, "all"))


async def test_the_environment_list_selects_by_click_and_keeps_only_what_it_shows(tmp_path: Path) -> None:
    """The environment list (drawn line by line, like k9s's) selects the environment clicked, keeps
    the highlighted one in view among 60, draws again only a label that changed, and keeps rendered
    lines only for the labels on screen."""
    from opsconsole.widgets.env_list import EnvList
    from snapshot_app import build

    app = build()
    async with app.run_test(size=(160, 40)) as pilot:
        envs = app.screen.query_one("#envs", EnvList)
        assert [envs.label_at(n).plain.split("\n")[0] for n in range(2)] == [
            "● staging",
            "● production [protected]",
        ]
        assert envs.highlighted == 0
        start = envs._starts[1]
        await pilot.click("#envs", offset=(3, start))
        await wait_until(pilot, lambda: app.current_env == "production", what="production selected")
        assert envs.highlighted == 1
        assert "production" in envs.render_line(start).text

    text = "\n".join(f'[environments.e{n:02d}]\nhosts = ["127.0.0.1"]' for n in range(60))
    app = make_app(load_profile(write_profile(tmp_path, text)), live=False)
    async with app.run_test(size=(160, 24)) as pilot:
        envs = app.screen.query_one("#envs", EnvList)
        await pilot.pause()
        shown = envs.size.height
        assert envs.virtual_size.height > shown  # 60 labels do not fit: the list scrolls
        app.screen.select_env("e59")  # type: ignore[attr-defined]
        await pilot.pause()
        assert envs.highlighted == 59
        lines = [envs.render_line(y).text for y in range(shown)]
        assert any("e59" in line for line in lines) and not any("e00" in line for line in lines)
        assert len(envs._strips) <= shown  # only labels on screen were rendered
        before = envs.label_at(3)
        envs.set_label(3, before)
        assert envs.label_at(3) is before  # an equal label changes nothing


async def test_pane_table_draws_cells_at_their_new_width_after_a_frame_came_first() -> None:
    """A frame drawn between add_row and the table's idle (the screen paints on its own loop) renders
    the cells at the label widths; once the widths follow the rows, the cells are drawn again whole,
    not left cut ("counter:counter" showed as "counter" in CI until the rows next changed)."""
    from textual.app import App, ComposeResult

    from opsconsole.widgets.pane import PaneTable, cell

    class One(App[None]):
        def compose(self) -> ComposeResult:
            table = PaneTable(cursor_type="row")
            table.add_columns("host", "process")
            table.styles.height = 8  # as in a pane (1fr): a new row that fits resizes nothing
            yield table

    app = One()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one(PaneTable)
        await pilot.pause()
        table.add_row(cell("local"), cell("counter:counter"), key="a")
        # the frame that came first: every line rendered (and cached) at the label widths
        early = "".join(segment.text for segment in table.render_line(1))
        assert "counter:counter" not in early
        table._update_dimensions(table._new_rows.copy())
        table._new_rows.clear()
        await pilot.pause()
        line = "".join(segment.text for segment in table.render_line(1))
        assert "local" in line and "counter:counter" in line, line
