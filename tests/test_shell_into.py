"""`x` on a process, container or unit opens a shell (issue 33): `docker exec -it NAME sh` in a
container, a login shell over SSH on a process's host; the console suspends while it runs and comes
back as it was. Typed in a real terminal (tmux) against real dockerd, sshd and supervisord."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.actions.base import ActionContext, Target
from opsconsole.actions.registry import ACTIONS
from opsconsole.app import make_app
from opsconsole.backends.clients import Backends
from opsconsole.profiles import load_profile
from test_console import confirm_open, pane_keys, wait_until
from test_e2e_tmux import Tmux

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
OPSCONSOLE = str(Path(sys.executable).parent / "opsconsole")


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def terminal_env(tmp_path: Path) -> dict[str, str]:
    return {
        "NO_COLOR": "1",
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "PATH": os.environ["PATH"],
        "OPSCONSOLE_TRUSTED_PATHS": os.environ["OPSCONSOLE_TRUSTED_PATHS"],
        "OPSCONSOLE_CONFIG_DIR": os.environ["OPSCONSOLE_CONFIG_DIR"],
        "OPSCONSOLE_DATA_DIR": os.environ["OPSCONSOLE_DATA_DIR"],
        "HOME": str(tmp_path),
        "SHELL": "/bin/sh",
    }


@pytest.fixture
def busybox(docker_engine: Any) -> Iterator[str]:
    import docker

    # not under harness.TEST_LABEL: another session's docker_engine teardown would remove it mid-test
    name = f"opsc-shell-{uuid.uuid4().hex[:8]}"
    container = docker_engine.containers.run(harness.IMAGE, ["sleep", "3600"], detach=True, name=name)
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


@needs_tmux
def test_x_on_a_container_opens_sh_in_it_and_the_console_comes_back(tmp_path: Path, busybox: str) -> None:
    profile = write_profile(
        tmp_path,
        """
[project]
name = "shell"
[defaults]
refresh = 2
[environments.staging]
hosts = ["local"]
[environments.staging.docker]
url = "unix:///var/run/docker.sock"
""",
    )
    session = Tmux([OPSCONSOLE, "--profile", str(profile)], terminal_env(tmp_path), size=(120, 30))
    try:
        session.wait_for("Supervisor is not configured")  # the panes are built: keys reach them
        session.keys("2")
        session.wait_for(busybox)
        session.keys("/")  # this daemon may run other containers: only ours is shown, on the first row
        session.wait_for("filter (esc to close)")
        session.keys(busybox, "Enter")
        session.wait_for(f'filter "{busybox}"')
        session.keys("x")
        session.wait_for(f"Shell in container {busybox} on local")  # what opsconsole says first
        time.sleep(0.5)
        session.keys("echo typed-$((6*7))", "Enter")
        screen = session.wait_for("typed-42")
        assert "Containers" not in screen  # the console is suspended: the shell has the terminal
        session.keys("exit", "Enter")
        screen = session.wait_for("Shell: closed")
        # as it was: the Containers pane, filtered, its row selected, the shell gone
        assert f'filter "{busybox}"' in screen and busybox in screen and "typed-42" not in screen, screen
        session.keys("q")
        assert session.wait_gone()
    finally:
        session.kill()
    start, end = audit_records(tmp_path / "audit.jsonl")
    assert (start["action"], start["phase"], end["phase"]) == ("shell", "start", "end")
    assert start["target"] == f"docker:{busybox}" and start["hosts"] == ["local"]
    assert f"docker exec -it {busybox} sh" in start["plan"]
    assert end["outcome"] == "success" and end["run"] == start["run"]


@pytest.fixture
def ssh_profile(tmp_path: Path, sshd: harness.Sshd, supervisord: harness.Supervisord) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shell"
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 5
[environments.staging]
hosts = ["{sshd.host}"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )


def test_a_process_on_an_ssh_host_gets_a_login_shell_in_its_directory(
    tmp_path: Path, ssh_profile: Path, sshd: harness.Sshd, supervisord: harness.Supervisord
) -> None:
    profile = load_profile(ssh_profile)
    backends = Backends(profile)
    try:
        action = ACTIONS["shell"](ActionContext(profile, backends), Target("staging", "supervisor:web:web_0"))
        plan = action.plan()  # reads the process's directory from supervisord, over the SSH connection
    finally:
        backends.close()
    argv, cwd = action.command  # type: ignore[attr-defined]
    assert cwd is None
    assert argv == [
        "ssh",
        "-t",
        "-p",
        str(sshd.port),
        "-l",
        "root",
        "-i",
        str(sshd.client_key),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={sshd.known_hosts}",
        "-o",
        "ConnectTimeout=5",
        "--",
        "127.0.0.1",
        f'cd {shlex.quote(str(supervisord.root))} && exec "$SHELL" -l',
    ]
    assert plan.changes and shlex.join(argv) in plan.render()


def test_the_remote_command_keeps_an_awkward_directory_one_word(tmp_path: Path, sshd: harness.Sshd) -> None:
    """A deploy path with a space, a quote and `$(...)` reaches `cd` whole, and nothing in it runs."""
    root = tmp_path / "it's $(touch pwned) here"
    (root / "current").mkdir(parents=True)
    text = f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
[environments.staging]
hosts = ["{sshd.host}"]
[environments.staging.deploy]
path = "{root}"
repo = "x"
"""
    profile = load_profile(write_profile(tmp_path, text, name="awkward"))
    backends = Backends(profile)
    try:  # no [supervisor]: the deploy path's current release, checked on the host over SSH
        action = ACTIONS["shell"](ActionContext(profile, backends), Target("staging", "supervisor:web"))
        action.plan()
    finally:
        backends.close()
    remote = action.command[0][-1]  # type: ignore[attr-defined]
    assert remote == f'cd {shlex.quote(str(root / "current"))} && exec "$SHELL" -l'
    show = tmp_path / "show-pwd"
    show.write_text("#!/bin/sh\npwd\n")
    show.chmod(0o755)
    done = subprocess.run(
        ["sh", "-c", remote],
        cwd=tmp_path,
        env={**os.environ, "SHELL": str(show)},
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == str(root / "current"), done.stderr
    assert not (tmp_path / "pwned").exists()


@needs_tmux
def test_opsconsole_shell_runs_the_login_shell_over_ssh_in_a_terminal(
    tmp_path: Path, ssh_profile: Path, supervisord: harness.Supervisord
) -> None:
    session = Tmux(
        [OPSCONSOLE, "--profile", str(ssh_profile), "shell", "staging", "supervisor:web:web_0"],
        terminal_env(tmp_path),
        size=(120, 30),
    )
    try:
        time.sleep(0.5)
        session.keys("echo typed-$((6*7)) in $(pwd)", "Enter")
        screen = session.wait_for(f"typed-42 in {supervisord.root}")
        session.keys("exit", "Enter")
        assert session.wait_gone(), screen
    finally:
        session.kill()
    start, end = audit_records(tmp_path / "audit.jsonl")
    assert (start["action"], start["target"], end["outcome"]) == ("shell", "supervisor:web:web_0", "success")
    assert "StrictHostKeyChecking=yes" in start["plan"] and "s3cret" not in json.dumps([start, end])


@pytest.fixture
def local_profile(tmp_path: Path, supervisord: harness.Supervisord) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shell"
[defaults]
refresh = 30
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
[environments.production]
hosts = ["local"]
protected = true
[environments.production.supervisor]
url = "{supervisord.unix_url}"
""",
    )


def notes(app: Any) -> list[str]:
    return [n.message for n in app._notifications]  # noqa: SLF001


async def test_read_only_refuses_x_with_a_message(local_profile: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    app = make_app(load_profile(local_profile), read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="rows")
        await pilot.press("x")
        await wait_until(
            pilot, lambda: any("refused: shell" in n and "read-only" in n for n in notes(app)), what="refusal"
        )
        assert type(app.screen).__name__ == "MainScreen"
    assert not audit.exists()


async def test_x_means_shell_on_process_rows_and_resolve_on_issue_rows(local_profile: Path) -> None:
    """One key, two bindings: `?` lists both, each pane enables the one for its rows, and a console
    that cannot hand its terminal over (headless here) says so and changes nothing."""
    from opsconsole.screens.keymap import bindings

    on_x = {b.id for b in bindings() if b.screen == "Console" and b.keys == "x"}
    assert on_x == {"shell", "resolve"}
    app = make_app(load_profile(local_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="rows")
        screen: Any = app.screen

        def enabled() -> set[str]:
            return {k for k in ("shell", "resolve") if screen.check_action("act", (k,))}

        assert enabled() == {"shell"}
        await pilot.press("4")  # Errors
        await wait_until(pilot, lambda: enabled() == {"resolve"}, what="resolve on the Errors pane")
        await pilot.press("0")  # every environment: the selected row's kind decides
        await wait_until(pilot, lambda: bool(pane_keys(app, "all")), what="the all pane's rows")
        await wait_until(pilot, lambda: enabled() == {"shell"}, what="shell on a process row")
        await pilot.press("1")
        await pilot.press("x")
        await wait_until(
            pilot, lambda: any("cannot hand its terminal over" in n for n in notes(app)), what="note"
        )
        assert any("opsconsole shell staging supervisor:" in n for n in notes(app))
        assert not list(app.runs)


async def test_a_protected_environment_asks_for_its_name_first(local_profile: Path, tmp_path: Path) -> None:
    app = make_app(load_profile(local_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.select_env("production")  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="rows")
        await pilot.press("x")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        assert app.screen.query_one_optional("#typed") is not None
        await pilot.press("escape")
        await wait_until(pilot, lambda: any("nothing was changed" in n for n in notes(app)), what="cancel")
    assert not (tmp_path / "audit.jsonl").exists()
