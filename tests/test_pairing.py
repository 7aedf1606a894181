"""Pairing: watching a run someone else started (run logs on the host, `opsconsole watch`, the
console's watch mode), through the loopback sshd, from a second process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.widgets.env_list import EnvList
from test_actions import git

SLOW_BUILD = "for i in $(seq 1 25); do echo line-$i; sleep 0.15; done"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("V = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def pairing_profile(tmp_path: Path, sshd: harness.Sshd, repo: Path, build: str = SLOW_BUILD) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 10
refresh = 1
[environments.staging]
hosts = ["{sshd.host}"]
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
build = {json.dumps([build])}
""",
    )


def start_cli(tmp_path: Path, *args: str, user: str = "ann") -> subprocess.Popen[str]:
    env = {**os.environ, "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "OPSCONSOLE_USER": user}
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def wait_for_run_log(tmp_path: Path, timeout: float = 20) -> Path:
    runs = tmp_path / "srv" / "shop" / ".opsconsole" / "runs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(runs.glob("*.jsonl")) if runs.is_dir() else []
        if found and "line-3" in found[-1].read_text():
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("no run log with build output appeared")


def test_watch_follows_a_deploy_started_elsewhere_from_its_start(
    run_cli: Any, tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    path = pairing_profile(tmp_path, sshd, repo)
    nothing = run_cli("--profile", str(path), "watch", "staging")
    assert nothing.returncode == 0 and "nothing is running on staging" in nothing.stdout

    deploy = start_cli(tmp_path, "--profile", str(path), "deploy", "staging", "--yes")
    log = wait_for_run_log(tmp_path)  # the watcher starts mid-run, and still sees it from its start
    watcher = start_cli(tmp_path, "--profile", str(path), "--read-only", "watch", "staging", user="bob")
    out, err = watcher.communicate(timeout=60)
    deploy_out, deploy_err = deploy.communicate(timeout=60)
    assert deploy.returncode == 0, deploy_out + deploy_err
    assert watcher.returncode == 0, out + err
    lines = [line.split("| ", 1)[1] for line in out.splitlines() if "| line-" in line]
    assert lines == [f"line-{i}" for i in range(1, 26)]  # every line once, in order
    assert "watching deploy main by ann@" in err
    assert "watched run" in out and "deployed main" in out
    assert "✓ switch current" in out

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["type"] == "start" and records[0]["action"] == "deploy"
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 0
    lock_run = records[0]["run"]
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert all(a["action"] != "watch" for a in audit)  # watching changes nothing: no audit record
    assert {a["run"] for a in audit} == {lock_run}

    again = run_cli("--profile", str(path), "watch", "staging", "--json")
    assert again.returncode == 0, again.stderr  # nothing running: the last run's start and end records
    assert [json.loads(line)["type"] for line in again.stdout.splitlines()] == ["start", "end"]

    listing = run_cli("--profile", str(path), "watch", "staging", "--run", lock_run, "--json")
    assert listing.returncode == 0, listing.stderr
    kinds = [json.loads(line)["type"] for line in listing.stdout.splitlines()]
    assert kinds[0] == "start" and kinds[-1] == "end"


def test_watch_exits_with_the_runs_exit_code(
    run_cli: Any, tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    path = pairing_profile(
        tmp_path, sshd, repo, build="echo line-1; echo line-2; echo line-3; sleep 1; exit 7"
    )
    deploy = start_cli(tmp_path, "--profile", str(path), "deploy", "staging", "--yes")
    wait_for_run_log(tmp_path)
    watched = run_cli("--profile", str(path), "watch", "staging")
    deploy.communicate(timeout=60)
    assert deploy.returncode == 1
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "deploy failed" in watched.stderr
    last = run_cli("--profile", str(path), "watch", "staging")
    assert last.returncode == 0 and "FAILED (exit 1)" in last.stdout


def test_run_logs_are_pruned_to_the_newest_50(tmp_path: Path) -> None:
    from opsconsole.actions.events import Outcome
    from opsconsole.actions.runlog import RunLogWriter
    from opsconsole.backends.hosts import LocalHost
    from opsconsole.backends.runlogs import latest_runs
    from opsconsole.errors import ExitCode
    from opsconsole.profiles import parse_host, parse_profile_text

    profile = parse_profile_text(
        f'[environments.e]\nhosts = ["local"]\n[environments.e.deploy]\npath = "{tmp_path}/srv"\nrepo = "x"\n',
        tmp_path / "p.toml",
    )
    env = profile.env("e")
    runs = tmp_path / "srv" / ".opsconsole" / "runs"
    runs.mkdir(parents=True)
    for n in range(60):
        (runs / f"20260101T0000{n:02d}Z-aaaaaa.jsonl").write_text('{"type": "start"}\n')
    host = LocalHost(parse_host("local"), 5.0)
    writer = RunLogWriter(host, env, {"run": "20270101T000000Z-bbbbbb", "action": "restart"}, print)
    writer.finish(Outcome(True, "ok", ExitCode.OK), 0)
    names = sorted(p.name for p in runs.iterdir())
    assert len(names) == 50 and names[-1] == "20270101T000000Z-bbbbbb.jsonl"
    newest = latest_runs(host, env)[0]
    assert newest.run == "20270101T000000Z-bbbbbb" and newest.end is not None and not newest.running


async def test_console_shows_and_watches_a_deploy_started_elsewhere(
    tmp_path: Path, sshd: harness.Sshd, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.actions.events import OutputLine
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.action_screen import ActionScreen
    from test_console import pane_texts, panes_built, wait_until

    path = pairing_profile(tmp_path, sshd, repo, build=SLOW_BUILD.replace("0.15", "0.3"))
    monkeypatch.setenv("OPSCONSOLE_USER", "bob")
    app = make_app(load_profile(path), read_only=True)  # the watcher needs no rights at all
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("3")
        await pilot.press("w")  # nothing runs yet: a toast says so, no empty action screen
        await wait_until(
            pilot,
            lambda: any("nothing is running on staging" in str(n.message) for n in app._notifications),
            what="the nothing-running toast",
        )
        assert not isinstance(app.screen, ActionScreen) and not app.runs.values()
        deploy = start_cli(tmp_path, "--profile", str(path), "deploy", "staging", "--yes")

        def rows() -> list[str]:
            return pane_texts(app, "deploys")

        await wait_until(
            pilot, lambda: any("RUNNING" in r and "by ann@" in r for r in rows()), timeout=15, what="row"
        )
        running = next(r for r in rows() if "RUNNING" in r)
        assert "deploy main by ann@" in running and "enter or w: watch" in running
        envs = app.screen.query_one("#envs", EnvList)
        # the label is redrawn with the next coalesced burst (0.2 s), not always in the same frame as the pane
        await wait_until(
            pilot, lambda: "⟳ deploy main by ann@" in envs.label_at(0).plain, timeout=5, what="env label"
        )
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="watch screen")
        screen = app.screen
        await wait_until(
            pilot, lambda: "by ann@" in str(screen.query_one("#run-title").render()), what="title"
        )
        await wait_until(
            pilot, lambda: all(r.outcome is not None for r in app.runs.values()), timeout=60, what="the end"
        )
        (state,) = app.runs.values()
        assert state.outcome is not None and state.outcome.ok and "deployed main" in state.outcome.message
        lines = [e.line for e in state.events if isinstance(e, OutputLine)]
        assert lines == [f"line-{i}" for i in range(1, 26)]  # every line once, in order
        await wait_until(pilot, lambda: any("Watch" in n.title for n in app._notifications), what="toast")
        deploy.communicate(timeout=30)
        assert deploy.returncode == 0
