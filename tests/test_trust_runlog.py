"""Fault suite, run logs (issue 26): a run log on a host is outside input. Reading one is bounded and
skips anything but regular files; a malformed record is dropped, never a crash; `watch --run` takes
run ids only; the console's files on hosts are private to their owner; a console that dies of an
unexpected error exits non-zero. Real shells (local and sshd on loopback), the installed CLI, tmux."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from test_pairing import pairing_profile, repo  # noqa: F401 - fixture

pytestmark = pytest.mark.faults

RUN = "20261202T100000Z-abcdef"


def local_profile(tmp_path: Path) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
timeout = 3
[environments.staging]
hosts = ["local"]
[environments.staging.deploy]
path = "{tmp_path}/srv"
repo = "{tmp_path}/nowhere"
""",
    )


def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "srv" / ".opsconsole" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return runs


def write_log(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


START = {"type": "start", "run": RUN, "action": "deploy", "target": "main", "who": "ann@laptop", "started": "x"}


def test_a_run_log_that_is_a_symlink_or_fifo_is_skipped_and_reads_are_bounded(tmp_path: Path) -> None:
    from opsconsole.backends.hosts import LocalHost
    from opsconsole.backends.runlogs import latest_runs
    from opsconsole.profiles import load_profile, parse_host

    env = load_profile(local_profile(tmp_path)).env("staging")
    runs = runs_dir(tmp_path)
    write_log(runs / f"{RUN}.jsonl", [START, {"type": "end", "ok": True, "exit_code": 0, "message": "done"}])
    (runs / "20261202T110000Z-zzzzzz.jsonl").symlink_to("/dev/zero")
    os.mkfifo(runs / "20261202T120000Z-ffffff.jsonl")
    # one huge record with no newline: only a capped part of it is read
    (runs / "20261202T090000Z-hhhhhh.jsonl").write_bytes(b'{"type": "start", "x": "' + b"a" * 5_000_000)
    host = LocalHost(parse_host("local"), 3.0)
    started = time.monotonic()
    found = latest_runs(host, env)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"listing the run logs took {elapsed:.1f} s"
    names = [r.run for r in found]
    assert RUN in names
    assert "20261202T110000Z-zzzzzz" not in names and "20261202T120000Z-ffffff" not in names


def test_listing_the_run_logs_again_reads_only_the_ones_that_changed(tmp_path: Path) -> None:
    """Every refresh lists the newest runs: a log unchanged since (same mtime and size) is not read
    again (an idle console re-read ten, each with a dozen processes), one written to is, and each
    run's age is as of now."""
    from opsconsole.backends.hosts import LocalHost
    from opsconsole.backends.runlogs import latest_runs
    from opsconsole.profiles import load_profile, parse_host

    env = load_profile(local_profile(tmp_path)).env("staging")
    runs = runs_dir(tmp_path)
    ended = "20261202T090000Z-eeeeee"
    write_log(runs / f"{ended}.jsonl", [START, {"type": "end", "ok": True, "exit_code": 0, "message": "done"}])
    write_log(runs / f"{RUN}.jsonl", [START])
    host = LocalHost(parse_host("local"), 3.0)
    commands: list[str] = []
    run = host.run

    def counted(command: str, *args: Any, **kwargs: Any) -> Any:
        result = run(command, *args, **kwargs)
        commands.append(result.stdout)
        return result

    host.run = counted  # type: ignore[method-assign]
    first = {r.run: r for r in latest_runs(host, env)}
    assert first[RUN].end is None and first[ended].end is not None
    assert commands[-1].count("@run\t") == 2
    second = {r.run: r for r in latest_runs(host, env)}
    assert commands[-1].count("@run\t") == 0 and commands[-1].count("@same\t") == 2
    assert second[ended].end == first[ended].end and second[RUN].start == first[RUN].start
    with (runs / f"{RUN}.jsonl").open("a") as log:  # the running one ends
        log.write(json.dumps({"type": "end", "ok": False, "exit_code": 1, "message": "failed"}) + "\n")
    third = {r.run: r for r in latest_runs(host, env)}
    assert commands[-1].count("@run\t") == 1 and commands[-1].count("@same\t") == 1
    end = third[RUN].end
    assert end is not None and end["message"] == "failed"


def test_watching_a_run_log_that_is_not_a_regular_file_fails_at_once(run_cli: Any, tmp_path: Path) -> None:
    path = local_profile(tmp_path)
    (runs_dir(tmp_path) / f"{RUN}.jsonl").symlink_to("/dev/zero")
    started = time.monotonic()
    done = run_cli("--profile", str(path), "watch", "staging", "--run", RUN, timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode != 0
    assert "not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_run_log_records_are_dropped_never_a_crash(run_cli: Any, tmp_path: Path) -> None:
    from opsconsole.actions.runlog import decode
    from opsconsole.backends.runlogs import end_exit_code

    assert decode({"type": "OutputLine", "host": ["x"], "line": "hi"}) is None
    assert decode({"type": "StepStarted", "host": "web-1"}) is None  # a required field missing
    assert decode({"type": "Outcome", "ok": "yes", "message": "m"}) is None
    assert decode({"type": "Outcome", "ok": True, "message": "m", "hosts": {"a": ["b"]}}) is None
    assert decode({"type": "OutputLines", "host": "h", "lines": ["a", 3]}) is None
    kept = decode({"type": "OutputLine", "host": "web-1", "line": "hi", "shown": [["x", None]]})
    assert kept is not None and getattr(kept, "line", None) == "hi"
    assert end_exit_code({"exit_code": "1; rm -rf /"}) == 1 and end_exit_code({"exit_code": True}) == 1
    assert end_exit_code({"exit_code": 130}) == 130 and end_exit_code({"exit_code": 10**6}) == 1

    path = local_profile(tmp_path)
    write_log(
        runs_dir(tmp_path) / f"{RUN}.jsonl",
        [
            {**START, "who": ["not", "text"]},
            {"type": "StepStarted", "host": ["x"], "step": "build"},
            {"type": "OutputLine", "host": "local", "line": "kept line"},
            {"type": "OutputLine", "host": {"a": 1}, "line": "dropped"},
            {"type": "Outcome", "ok": False, "message": "deploy failed", "exit_code": "x", "hosts": {}},
            {"type": "end", "ok": False, "exit_code": "not a number", "message": ["x"]},
        ],
    )
    done = run_cli("--profile", str(path), "watch", "staging", "--run", RUN, timeout=30)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert "kept line" in done.stdout + done.stderr and "dropped" not in done.stdout + done.stderr
    last = run_cli("--profile", str(path), "watch", "staging", timeout=30)
    assert last.returncode == 0 and "FAILED (exit 1)" in last.stdout, last.stdout + last.stderr


async def test_w_on_a_malformed_running_log_keeps_the_console_alive(tmp_path: Path) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.action_screen import ActionScreen
    from test_console import panes_built, wait_until

    write_log(
        runs_dir(tmp_path) / f"{RUN}.jsonl",
        [
            START,
            {"type": "StepStarted", "host": ["x"], "step": "build"},
            {"type": "HostResult", "host": ["x"], "ok": "no", "message": 3},
            {"type": "OutputLine", "host": "local", "line": "still shown"},
        ],
    )
    app = make_app(load_profile(local_profile(tmp_path)), read_only=True)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="watch screen")
        await wait_until(
            pilot,
            lambda: any("still shown" in str(e) for s in app.runs.values() for e in s.events),
            timeout=20,
            what="the good line",
        )
        await pilot.pause(0.5)
        assert app.is_running and isinstance(app.screen, ActionScreen)
        await pilot.press("escape")


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "a/b", ".hidden", "-rf", "x" * 200, "run id"])
def test_watch_run_takes_run_ids_only(run_cli: Any, tmp_path: Path, bad: str) -> None:
    done = run_cli("--profile", str(local_profile(tmp_path)), "watch", "staging", f"--run={bad}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a run id" in done.stderr and "Traceback" not in done.stderr


def test_the_consoles_files_on_a_host_are_private(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    repo: Path,  # noqa: F811
) -> None:
    path = pairing_profile(tmp_path, sshd, repo, build="echo secret-build-output")
    state = tmp_path / "srv" / "shop" / ".opsconsole"
    state.mkdir(parents=True)
    state.chmod(0o755)  # as an earlier version left it
    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "runs").stat().st_mode) == 0o700
    files = [p for p in state.rglob("*") if p.is_file() and "repo.git" not in p.parts]
    assert any(p.name == "deploys.jsonl" for p in files) and any(p.suffix == ".jsonl" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p} is {oct(p.stat().st_mode)}"
    # the release itself stays readable by others (a web server serves its static files)
    releases = tmp_path / "srv" / "shop" / "releases"
    assert stat.S_IMODE(releases.stat().st_mode) & 0o005 == 0o005


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_console_that_dies_of_an_unexpected_error_exits_non_zero(tmp_path: Path) -> None:
    from test_e2e_tmux import Tmux

    profile = local_profile(tmp_path)
    script = tmp_path / "crash.py"
    # a bug in a screen's handler, as a user would meet one: the console must not exit 0
    script.write_text(
        "import sys\n"
        "from opsconsole.screens import main\n"
        "def boom(self, *a, **k):\n"
        "    raise RuntimeError('a bug in a key handler')\n"
        "main.MainScreen.action_help = boom\n"
        "from opsconsole.cli import main as cli_main\n"
        f"sys.exit(cli_main(['--profile', {str(profile)!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPSCONSOLE_", "PATH", "HOME"))}
    term = Tmux(["sh", "-c", f"{sys.executable} {script}; echo EXITED=$?; sleep 30"], env, size=(120, 40))
    try:
        term.wait_for("staging", timeout=30)
        term.keys("?")
        screen = term.wait_for("EXITED=", timeout=30)
        assert "EXITED=1" in screen, screen
    finally:
        term.kill()
