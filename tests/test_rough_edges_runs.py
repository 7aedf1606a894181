"""Rough edges of runs (issue 33): the action screen after a run ended, step marks, the verification
banner after a rollback, the rollback plan's tense, and a watcher started right after a confirmation."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.backends.releases import LOCK
from opsconsole.profiles import load_profile
from opsconsole.screens.action_screen import ActionScreen
from opsconsole.widgets.log_view import LogView
from test_actions import git
from test_console import confirm_open, panes_built, wait_until
from test_pairing import pairing_profile, start_cli
from test_release import Health, commit, profile

AUDIT = "OPSCONSOLE_AUDIT_LOG"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("V = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def health_url() -> Iterator[tuple[str, type[Health]]]:
    handler: type[Health] = type("RollbackHealth", (Health,), {"healthy": True})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def audit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(AUDIT, str(path))
    return path


def actions_profile(tmp_path: Path) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[environments.staging]
hosts = ["local"]
[[environments.staging.actions]]
name = "slow"
title = "Slow one"
command = "sleep 1.5; echo slow-done"
confirm = false
[[environments.staging.actions]]
name = "broken"
title = "Broken one"
command = "echo about-to-fail; exit 3"
confirm = false
[[environments.staging.actions]]
name = "touch"
title = "Touch it"
command = "touch {tmp_path}/touched"
confirm = false
""",
    )


def footer_text(app: Any) -> str:
    """What the footer shows, as drawn (the SVG's non-breaking spaces made plain)."""
    svg = app.export_screenshot().replace("&#160;", " ")
    return "".join(re.findall(r">([^<]*)</text>", svg))


def step_cell(screen: Any, host: str = "local") -> str:
    table = screen.query_one("#hosts")
    return str(table.get_row(host)[2])


async def test_action_screen_offers_only_close_once_the_run_ended(tmp_path: Path) -> None:
    """Running: `c Cancel action` and `esc Back (keeps running)`; ended: `esc Close` only, and q
    closes too."""
    app = make_app(load_profile(actions_profile(tmp_path)), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        app.request_action("run", "staging", "slow")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await pilot.pause(0.2)
        running = footer_text(app)
        assert "Cancel action" in running and "keeps running" in running
        await wait_until(pilot, lambda: all(r.outcome is not None for r in app.runs), what="the run's end")
        await pilot.pause(0.3)
        ended = footer_text(app)
        assert "keeps running" not in ended and "Cancel" not in ended
        assert "Close" in ended
        active = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "cancel_run" not in active and "close" in active
        await pilot.press("c")  # nothing left to cancel: nothing happens
        assert isinstance(app.screen, ActionScreen)
        await pilot.press("q")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="closed by q")


async def test_q_does_not_close_a_running_action_and_escape_goes_back(tmp_path: Path) -> None:
    app = make_app(load_profile(actions_profile(tmp_path)), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        app.request_action("run", "staging", "slow")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="back")
        assert any(r.outcome is None for r in app.runs)  # it keeps running


async def test_finished_steps_are_ticked_and_failed_ones_crossed(tmp_path: Path) -> None:
    """A step that ended shows ✓ (✗ when it failed) in the host's step column and in the log, as
    the CLI's `watch` prints; only a running step shows ▶."""
    app = make_app(load_profile(actions_profile(tmp_path)), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        app.request_action("run", "staging", "slow")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await wait_until(pilot, lambda: step_cell(screen).startswith("▶"), what="a running step")
        await wait_until(pilot, lambda: all(r.outcome is not None for r in app.runs), what="the run's end")
        await pilot.pause(0.3)
        assert not step_cell(screen).startswith("▶")
        lines = screen.query_one(LogView).plain_lines()
        started = [line for line in lines if line.startswith("▶")]
        assert started and all(any(x.startswith("✓ " + s[2:]) for x in lines) for s in started), lines
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="closed")

        app.request_action("run", "staging", "broken")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="broken's screen")
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await wait_until(pilot, lambda: all(r.outcome is not None for r in app.runs), what="its end")
        await pilot.pause(0.3)
        assert not step_cell(screen).startswith("▶")
        assert any(line.startswith("✗ ") for line in screen.query_one(LogView).plain_lines())


def test_rollback_plan_says_the_current_release_will_be_marked_bad(
    run_cli: Any, tmp_path: Path, repo: Path
) -> None:
    path = profile(tmp_path, repo)
    for n in (1, 2):
        if n == 2:
            commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
        done = run_cli("--profile", str(path), "deploy", "staging", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
    plan = run_cli("--profile", str(path), "rollback", "staging", "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "which will be marked bad" in plan.stdout, plan.stdout
    assert "which is marked bad" not in plan.stdout


async def test_banner_of_a_verified_release_says_it_was_rolled_back(
    tmp_path: Path,
    repo: Path,
    health_url: Any,
    run_cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deploy (verified), roll back from it in the console: the banner no longer says VERIFIED."""
    from opsconsole.screens.confirm import ConfirmScreen

    url, _health = health_url
    text = (
        profile(tmp_path, repo)
        .read_text()
        .replace("[environments.staging]\n", f'[environments.staging]\nhealth = ["{url}"]\n', 1)
    )
    path = write_profile(tmp_path, text + "\n[environments.staging.deploy.verify]\nwindow = 2\n")
    first = run_cli("--profile", str(path), "deploy", "staging", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    app = make_app(load_profile(path))

    def banner() -> str:
        widget = app.screen.query_one_optional("#verify")
        return str(widget.render()) if widget is not None and widget.display else ""

    async def run_key(key: str, runs: int) -> None:
        await pilot.press(key)
        await wait_until(pilot, lambda: confirm_open(app), timeout=30, what="confirm")
        await pilot.press("tab", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="run to start")
        await wait_until(
            pilot,
            lambda: sum(r.outcome is not None for r in app.runs.values()) == runs,
            timeout=60,
            what=f"{key}'s end",
        )
        await pilot.press("escape")

    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await run_key("D", 1)
        await wait_until(pilot, lambda: "VERIFIED" in banner(), timeout=30, what="VERIFIED")
        release = app.verifications["staging"].release
        await run_key("R", 2)
        await wait_until(pilot, lambda: "ROLLED BACK" in banner(), timeout=15, what="rolled back")
        assert "VERIFIED" not in banner() and f"releases/{release}" in banner()
        assert "R: roll back" not in banner()


def test_a_verification_still_running_stops_when_its_release_is_rolled_back(
    tmp_path: Path,
    repo: Path,
    health_url: Any,
    run_cli: Any,
) -> None:
    """A release rolled back during its verification window is not judged; its line says so."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.deploy.verify import Verifier
    from opsconsole.actions.registry import ACTIONS
    from opsconsole.actions.runner import ActionRun
    from opsconsole.backends.clients import Backends
    from opsconsole.backends.releases import read_state

    url, _health = health_url
    text = (
        profile(tmp_path, repo)
        .read_text()
        .replace("[environments.staging]\n", f'[environments.staging]\nhealth = ["{url}"]\n', 1)
    )
    path = write_profile(tmp_path, text)
    for n in (1, 2):
        if n == 2:
            commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
        done = run_cli("--profile", str(path), "deploy", "staging", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
    loaded = load_profile(path)
    backends = Backends(loaded)
    env = loaded.env("staging")
    assert env.deploy is not None
    current = read_state(backends.host(env.hosts[0]), env.deploy).current
    assert current is not None
    from opsconsole.profiles import VerifyConfig

    verifier = Verifier(backends, env, current, None, VerifyConfig(window=30), interval=0.2)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(verifier.run()), daemon=True)
    thread.start()
    time.sleep(0.5)
    ctx = ActionContext(profile=loaded, backends=backends)
    outcome = ActionRun(ACTIONS["rollback"](ctx, Target(env="staging")), approved=True).run_to_end()
    assert outcome.ok, outcome.message
    thread.join(10)
    assert not thread.is_alive() and result
    line = result[0].line()
    assert "ROLLED BACK" in line and "VERIFIED" not in line
    assert result[0].verdict == "superseded"  # no `R: roll back` offer for it any more
    deploys = tmp_path / "srv" / "shop" / ".opsconsole" / "deploys.jsonl"
    records = [json.loads(x) for x in deploys.read_text().splitlines()]
    # stopped (no verdict), or it saw the switch first: superseded, never pass or fail
    assert {r["outcome"] for r in records if r["event"] == "verify"} <= {"superseded"}


def test_the_run_log_is_there_before_the_lock_is_taken(
    tmp_path: Path, sshd: harness.Sshd, run_cli: Any, repo: Path
) -> None:
    """A watcher started the moment a rollback took the lock finds the run: its start record is
    written before the lock step."""
    path = pairing_profile(tmp_path, sshd, repo, build="echo built")
    env = {AUDIT: str(tmp_path / "audit.jsonl")}
    for n in (1, 2):
        if n == 2:
            commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
        done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    shop = tmp_path / "srv" / "shop"
    runs = shop / ".opsconsole" / "runs"
    before = set(runs.glob("*.jsonl"))
    lock = shop / LOCK
    rollback = start_cli(tmp_path, "--profile", str(path), "rollback", "staging", "--yes")
    seen: list[Path] | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and rollback.poll() is None:
        if lock.exists():
            seen = sorted(set(runs.glob("*.jsonl")) - before)
            break
        time.sleep(0.002)
    out, err = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, out + err
    assert seen is not None, "the rollback's lock was never seen"
    assert len(seen) == 1, "no run log yet when the lock was taken"
    first = json.loads(seen[0].read_text().splitlines()[0])
    assert first["type"] == "start" and first["action"] == "rollback"


def test_watch_right_after_a_confirmed_run_follows_it(tmp_path: Path, sshd: harness.Sshd, repo: Path) -> None:
    """`watch` started the moment a run was confirmed follows it (not "nothing is running")."""
    path = pairing_profile(tmp_path, sshd, repo, build="sleep 2; echo built")
    deploy = start_cli(tmp_path, "--profile", str(path), "deploy", "staging", "--yes")
    audit = tmp_path / "audit.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (audit.exists() and '"phase": "start"' in audit.read_text()):
        time.sleep(0.01)  # the run was confirmed (its audit start record): watch now
    watcher = start_cli(tmp_path, "--profile", str(path), "--read-only", "watch", "staging", user="bob")
    try:
        out, err = watcher.communicate(timeout=60)
    finally:
        deploy.communicate(timeout=60)
    assert watcher.returncode == 0, out + err
    assert "nothing is running" not in out + err
    assert "watching deploy main by ann@" in err and "watched run" in out
