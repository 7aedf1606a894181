"""Two demos on one Docker Engine: each keeps its own containers, a second terminal reaches the newest
with `--profile demo` (its Bugsink token included), and a demo killed with SIGKILL is torn down by
its watchdog (containers and folder) within 10 s. One start of each demo serves every assertion."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
OPSCONSOLE = str(Path(sys.executable).parent / "opsconsole")
SANDBOX_LABEL = "opsconsole.demo.sandbox"


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [OPSCONSOLE, "demo", "--no-console"],
        env=env,
        cwd=CHECKOUT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - closed with the process
    )


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in the demo's output after {timeout} s:\n{log.read_text()}")


def _containers(client: Any, sandbox: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}={sandbox}"}))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_two_demos_keep_their_containers_and_a_killed_one_is_torn_down(
    tmp_path: Path, docker_engine: Any
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    data = tmp_path / "data"
    env = {
        "TMPDIR": str(temp),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "OPSCONSOLE_DATA_DIR": str(data),
        "OPSCONSOLE_CONFIG_DIR": str(tmp_path / "config"),
    }
    first = _start({**env, "OPSCONSOLE_DEMO_BUGSINK": "0"}, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        root_a = Path(_wait_for(tmp_path / "first.log", r"starting the sandbox in (\S+)", first, 30)[1])
        id_a = root_a.name.removeprefix("opsconsole-demo-")
        deadline = time.monotonic() + 60
        while len(_containers(docker_engine, id_a)) < 2 and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.3)
        assert len(_containers(docker_engine, id_a)) == 2
        # the second demo starts while the first one's containers run: it must leave them be
        second = _start(env, tmp_path / "second.log")
        for log, proc in ((tmp_path / "first.log", first), (tmp_path / "second.log", second)):
            _wait_for(log, "sandbox ready", proc, 180)
        root_b = Path(_wait_for(tmp_path / "second.log", r"starting the sandbox in (\S+)", second, 1)[1])
        id_b = root_b.name.removeprefix("opsconsole-demo-")
        assert [c.status for c in _containers(docker_engine, id_a)] == ["running", "running"]
        assert [c.status for c in _containers(docker_engine, id_b)] == ["running", "running"]

        # the second's Bugsink token: a secret file of this user only, never in the profile
        token_file = data / "secrets" / f"demo-{id_b}-bugsink-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text()
        profile_text = (root_b / "demo.toml").read_text()
        assert token not in profile_text and f'secret = "demo-{id_b}-bugsink-token"' in profile_text

        # another terminal (from the checkout, whose ./profiles/demo.toml is only the template):
        # `--profile demo` is the newest live demo, trusted, every source answering (Bugsink too,
        # once it is up: it starts in the background)
        deadline = time.monotonic() + 150
        while True:
            status = subprocess.run(
                [OPSCONSOLE, "--profile", "demo", "status", "--json"],
                env=env, cwd=CHECKOUT, capture_output=True, text=True, timeout=60,
            )
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert status.returncode == 0, status.stdout + status.stderr
        assert str(root_b) in status.stdout and str(root_a) not in status.stdout
        assert "2 demos are running" in status.stderr and str(root_b) in status.stderr.split("(")[0]
        assert token not in status.stdout + status.stderr
        snapshot = json.loads(status.stdout)
        # its Containers pane and status list its own two containers, not the other demo's
        listed = [
            c["name"]
            for host in snapshot["environments"]["sandbox"]["hosts"].values()
            for c in host["docker"]["containers"]
        ]
        assert sorted(listed) == sorted(c.name for c in _containers(docker_engine, id_b)), listed

        # kill -9 of the first demo: its watchdog removes its containers and its folder within 10 s
        first.kill()
        first.wait(5)
        killed = time.monotonic()
        while time.monotonic() - killed < 10 and (_containers(docker_engine, id_a) or root_a.exists()):
            time.sleep(0.2)
        assert _containers(docker_engine, id_a) == [], "the killed demo's containers are still there"
        assert not root_a.exists(), "the killed demo's folder is still there"
        assert not (data / "demos" / f"{id_a}.toml").exists()
        assert len(_containers(docker_engine, id_b)) == 2

        one = subprocess.run(
            [OPSCONSOLE, "--profile", "demo", "status", "--json"],
            env=env, cwd=CHECKOUT, capture_output=True, text=True, timeout=60,
        )
        assert one.returncode == 0, one.stdout + one.stderr
        assert "demos are running" not in one.stderr
    finally:
        _stop(first)
        if second is not None:
            _stop(second)
    assert second is not None and second.returncode == 0
    # a demo that stops tears everything of its own down, the token and the registry link included
    assert not root_b.exists()
    assert _containers(docker_engine, id_b) == []
    assert not token_file.exists()
    assert list((data / "demos").glob("*.toml")) == []
    no_demo = subprocess.run(
        [OPSCONSOLE, "--profile", "demo", "status"], env=env, cwd=CHECKOUT, capture_output=True, text=True
    )
    assert no_demo.returncode != 0 and "no demo is running" in no_demo.stderr


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the demo runs on Linux and macOS")
