"""Every behaviour README.md promises that had no test of its own, against real services."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.backends.clients import Backends
from opsconsole.profiles import load_profile, parse_host, resolve_profile_path
from opsconsole.screens.action_screen import ActionScreen
from opsconsole.widgets.log_view import LogView
from test_actions import app_repo, audit, audit_lines, deploy_profile  # noqa: F401 - fixtures
from test_console import console_profile, pane_keys, wait_until  # noqa: F401 - fixtures
from test_faults import second_host  # noqa: F401 - fixture


def _profile_text(profile: Path) -> str:
    return profile.read_text()


# ------------------------------------------------------------------------ --host


def test_host_option_acts_on_that_host_only(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    second_host: harness.Sshd,  # noqa: F811
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
    audit: dict[str, str],  # noqa: F811
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    text = profile.read_text().replace(
        f'hosts = ["{sshd.host}"]', f'hosts = ["{sshd.host}", "{second_host.host}"]'
    )
    text = text.replace(f'known_hosts = "{sshd.known_hosts}"', f'known_hosts = "{tmp_path / "known_hosts"}"')
    profile.write_text(text)
    done = run_cli(
        "--profile", str(profile), "deploy", "staging", "--yes", "--host", second_host.host, env=audit
    )
    assert done.returncode == 0, done.stderr
    assert not (root / "current").exists()  # the first host (this filesystem) was not touched
    backends = Backends(load_profile(profile))
    try:
        host2 = backends.host(parse_host(second_host.host))
        assert host2.run(f"readlink {root}/current").stdout.strip().startswith("releases/")
    finally:
        backends.close()
    assert audit_lines(audit)[-1]["hosts"] == [second_host.host]


# ------------------------------------------------------------------------ read_only = true


def test_read_only_environment_refuses_every_change(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local", redis_port=1)
    profile.write_text(
        profile.read_text().replace("protected = false", "protected = false\nread_only = true")
    )
    audit_log = tmp_path / "audit.jsonl"
    env = {"OPSCONSOLE_AUDIT_LOG": str(audit_log)}
    before = supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"]
    for args in (
        ["deploy", "staging", "--yes"],
        ["rollback", "staging", "--yes"],
        ["unlock", "staging", "--yes"],
        ["restart", "staging", "supervisor:sleeper", "--yes"],
        ["stop", "staging", "supervisor:sleeper", "--yes"],
        ["purge", "staging", "--yes"],
        ["run", "staging", "touch", "--yes"],
    ):
        done = run_cli("--profile", str(profile), *args, env=env)
        assert done.returncode == 3 and "read_only = true" in done.stderr, (args, done.stderr)
    assert not root.exists() and not (tmp_path / "touched").exists() and not audit_log.exists()
    assert supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"] == before
    # reading is allowed
    assert run_cli("--profile", str(profile), "status", env=env).returncode in (0, 4)


async def test_read_only_environment_in_the_console(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local", redis_port=1)
    profile.write_text(
        profile.read_text().replace("protected = false", "protected = false\nread_only = true")
    )
    app = make_app(load_profile(profile))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: "local|sleeper:sleeper" in pane_keys(app, "processes"), what="rows")
        assert "READ-ONLY" in str(app.screen.query_one("#header").render())
        for key in ("D", "R", "p"):
            await pilot.press(key)

        def refusals() -> int:
            return sum("read_only = true" in n.message for n in app._notifications)  # noqa: SLF001

        await wait_until(pilot, lambda: refusals() >= 3, what="three refusals")
        assert type(app.screen).__name__ == "MainScreen" and not list(app.runs)
    assert not root.exists()


# ------------------------------------------------------------------------ the console: cancel, escape, two runs


async def test_console_cancel_escape_and_two_runs(tmp_path: Path, console_profile: Path) -> None:  # noqa: F811
    text = console_profile.read_text() + "".join(
        f'\n[[environments.staging.actions]]\nname = "{name}"\ncommand = "{cmd}"\nconfirm = false\n'
        for name, cmd in (
            ("slow", f"sleep 30; touch {tmp_path}/slow-ended"),
            ("quick", "sleep 1; echo quick done"),
        )
    )
    app = make_app(load_profile(write_profile(tmp_path, text, name="runs")))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.request_action("run", "staging", "slow")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="slow's screen")
        await pilot.press("escape")  # back: it keeps running
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="back")
        app.request_action("run", "staging", "quick")
        await wait_until(pilot, lambda: len(list(app.runs)) == 2, what="two runs")
        await pilot.press("escape")
        quick = next(s for s in app.runs if "quick" in s.title)
        slow = next(s for s in app.runs if "slow" in s.title)
        await wait_until(pilot, lambda: quick.outcome is not None, what="quick to end")
        assert quick.outcome is not None and quick.outcome.ok
        assert slow.outcome is None  # two at once: the slow one is still going
        await wait_until(
            pilot,
            lambda: any("quick" in n.title and "done" in n.title for n in app._notifications),  # noqa: SLF001
            what="a notification that the run ended",
        )
        app.show_run(slow)
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="slow again")
        await pilot.press("c")
        await wait_until(pilot, lambda: slow.outcome is not None, what="cancelled")
        assert slow.outcome is not None and not slow.outcome.ok and "cancelled" in slow.outcome.message
    assert not (tmp_path / "slow-ended").exists()  # the command was killed, not left to finish


# ------------------------------------------------------------------------ restart targets and operations


def test_deploy_restarts_containers_and_commands_and_operations_on_groups(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
    docker_engine: Any,
    audit: dict[str, str],  # noqa: F811
) -> None:
    name = f"opsc-restart-{uuid.uuid4().hex[:6]}"
    container = docker_engine.containers.run(
        harness.IMAGE,
        ["sh", "-c", "trap 'exit 0' TERM; echo started; while true; do sleep 0.2; done"],
        detach=True,
        name=name,
        labels={harness.TEST_LABEL: "1"},
    )
    try:
        profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local")
        text = profile.read_text().replace(
            'restart = ["supervisor:sleeper"]',
            f'restart = ["docker:{name}", "echo restarted-by-command > {tmp_path}/restarted"]',
        )
        text += '\n[environments.staging.docker]\nurl = "unix:///var/run/docker.sock"\n'
        profile.write_text(text)
        container.reload()
        started = container.attrs["State"]["StartedAt"]
        done = run_cli("--profile", str(profile), "deploy", "staging", "--yes", env=audit)
        assert done.returncode == 0, done.stderr
        container.reload()
        assert container.attrs["State"]["StartedAt"] != started  # restarted
        assert (tmp_path / "restarted").read_text().strip() == "restarted-by-command"
        logs = run_cli("--profile", str(profile), "logs", "staging", f"docker:{name}", "-n", "5", env=audit)
        assert logs.returncode == 0 and "started" in logs.stdout

        proxy = supervisord.proxy().supervisor

        def states() -> dict[str, str]:
            return {f"{p['group']}:{p['name']}": p["statename"] for p in proxy.getAllProcessInfo()}

        pids = {f"{p['group']}:{p['name']}": p["pid"] for p in proxy.getAllProcessInfo()}
        stop = run_cli("--profile", str(profile), "stop", "staging", "supervisor:web:*", "--yes", env=audit)
        assert stop.returncode == 0, stop.stderr
        assert states()["web:web_0"] == states()["web:web_1"] == "STOPPED"
        start = run_cli("--profile", str(profile), "start", "staging", "supervisor:web:*", "--yes", env=audit)
        assert start.returncode == 0, start.stderr
        assert states()["web:web_0"] == states()["web:web_1"] == "RUNNING"
        everything = run_cli(
            "--profile", str(profile), "restart", "staging", "supervisor:all", "--yes", env=audit
        )
        assert everything.returncode == 0, everything.stderr
        after = {f"{p['group']}:{p['name']}": p["pid"] for p in proxy.getAllProcessInfo()}
        assert all(after[n] != pid for n, pid in pids.items() if pid)  # every running one restarted
    finally:
        container.remove(force=True)


# ------------------------------------------------------------------------ prompts in a real terminal


def _pty_run(args: list[str], answers: list[tuple[str, str]], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal; answer each prompt when it shows."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env},
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if pending and pending[0][0].encode() in seen:
                os.write(leader, (pending.pop(0)[1] + "\n").encode())
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(leader)
    return proc.returncode, seen.decode(errors="replace")


def test_prompts_in_a_real_terminal(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local")
    env = {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    code, out = _pty_run(["--profile", str(profile), "deploy", "staging"], [("[y/N]", "n")], env)
    assert code == 3 and "Deploy main to staging" in out and not root.exists()
    code, out = _pty_run(["--profile", str(profile), "deploy", "staging"], [("[y/N]", "y")], env)
    assert code == 0 and (root / "current").is_symlink(), out[-2000:]
    (tmp_path / "p").mkdir()
    protected, proot = deploy_profile(tmp_path / "p", sshd, supervisord, app_repo, "local", protected=True)
    code, out = _pty_run(
        ["--profile", str(protected), "deploy", "staging"], [("Type 'staging'", "stagin")], env
    )
    assert code == 3 and "protected" in out and not proot.exists()
    code, out = _pty_run(
        ["--profile", str(protected), "deploy", "staging"], [("Type 'staging'", "staging")], env
    )
    assert code == 0 and (proot / "current").is_symlink(), out[-2000:]


# ------------------------------------------------------------------------ the audit record


def test_audit_records_carry_their_documented_fields_and_failures_too(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
) -> None:
    profile, _root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local", build=["exit 7"])
    log = tmp_path / "audit.jsonl"
    done = run_cli(
        "--profile", str(profile), "deploy", "staging", "--yes", env={"OPSCONSOLE_AUDIT_LOG": str(log)}
    )
    assert done.returncode == 1
    start, end = (json.loads(line) for line in log.read_text().splitlines())
    assert start["phase"] == "start" and end["phase"] == "end" and start["run"] == end["run"]
    for field in ("time", "user", "profile", "environment", "action", "target", "hosts", "plan"):
        assert start[field] == end[field] and field in end
    for field in ("finished", "outcome", "message", "duration_seconds"):
        assert field in end
    assert end["outcome"] == "failed" and "exited with 7" in end["message"]
    assert end["hosts"] == ["local"] and end["duration_seconds"] > 0 and "Exact steps:" in end["plan"]


# ------------------------------------------------------------------------ discovery


def test_default_toml_is_chosen_among_several(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    for name in ("a", "default", "b"):
        (tmp_path / "profiles" / f"{name}.toml").write_text("")
    assert resolve_profile_path(None).name == "default.toml"


# ------------------------------------------------------------------------ the log viewer


async def test_log_viewer_search_times_and_cap(console_profile: Path) -> None:  # noqa: F811
    from opsconsole.actions.runner import ActionRun
    from opsconsole.actions.runs import RunState
    from opsconsole.screens.log_screen import LogScreen

    app = make_app(load_profile(console_profile), live=False, log_lines=10_000)
    async with app.run_test(size=(120, 30)) as pilot:
        files = app.profile.env("staging").logs.files  # type: ignore[union-attr]
        action = app.make_action("logs", "staging", f"file:{files[0]}")
        app.push_screen(LogScreen(RunState(7, action, ActionRun(action))))
        await pilot.pause()
        view = app.screen.query_one(LogView)
        view.append_many([(f"entry {n:05d}", "") for n in range(12_000)])
        assert len(view.lines) == 10_000  # the cap: the oldest 2,000 left...
        numbers = [int(line.text.split()[1]) for line in view.lines]
        assert numbers == list(range(2_000, 12_000))  # ...and the order is kept
        await pilot.press("slash")
        await pilot.press(*"entry 0300", "enter")
        first = view.search_index
        await pilot.press("n")
        assert view.search_index != first  # next match
        await pilot.press("N")
        assert view.search_index == first  # back
        await pilot.press("t")
        assert view.timestamps and view._prefix(view.lines[0]).endswith("↓ ")  # noqa: SLF001


# ------------------------------------------------------------------------ idle behaviour


async def test_idle_polling_stretches_and_snaps_back(
    tmp_path: Path, supervisord: harness.Supervisord
) -> None:
    profile = write_profile(
        tmp_path,
        f'[defaults]\nrefresh = 1\n[environments.staging]\nhosts = ["local"]\n'
        f'[environments.staging.supervisor]\nurl = "{supervisord.unix_url}"\n',
    )
    app = make_app(load_profile(profile))
    delays: list[float] = []
    real = app.schedule.next_delay

    def record(env: str, results: Any) -> float:
        delay = real(env, results)
        delays.append(delay)
        return delay

    app.schedule.next_delay = record  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: 4.0 in delays, timeout=40, what="the interval to reach 4x refresh")
        assert delays[:1] == [1.0] and max(delays) == 4.0  # stretched, never beyond 4x
        header = app.screen.query_one("#header", Static)
        renders = {"n": 0}
        real_update = header.update

        def counting(*args: Any, **kwargs: Any) -> Any:
            renders["n"] += 1
            return real_update(*args, **kwargs)

        header.update = counting  # type: ignore[method-assign]
        count = len(delays)
        await wait_until(pilot, lambda: len(delays) >= count + 1, timeout=10, what="an idle refresh")
        assert renders["n"] == 0  # nothing changed, nothing redrawn
        count = len(delays)
        pressed = time.monotonic()
        await pilot.press("2")  # someone looks: a refresh now, then the normal pace
        await wait_until(pilot, lambda: len(delays) >= count + 1, timeout=10, what="a refresh after the key")
        assert delays[count] == 1.0
        assert time.monotonic() - pressed < 3.0  # not after the stretched 4 s
