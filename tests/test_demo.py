"""`opsconsole demo` end to end in tmux: real processes on screen, a deploy with the confirmation, quit,
and nothing left running."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_e2e_tmux import Tmux

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "tmux"], capture_output=True).returncode != 0, reason="no tmux"
)


def test_demo_deploys_and_leaves_nothing_running(tmp_path: Path, docker_engine: object) -> None:
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {"TMPDIR": str(tmp_path), "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    session = Tmux([opsconsole, "demo"], env, size=(120, 40))
    try:
        session.wait_for("worker:worker", timeout=90)
        # the console is up before the first deploy: it runs in view, `web` starts with it, and its
        # end is announced (a toast, gone after a few seconds)
        session.wait_for("deployed main", timeout=90)
        deadline = time.monotonic() + 20
        while "deployed main" in session.screen() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert re.search(r"web:web\s+RUNNING", session.screen()), session.screen()
        session.keys("2")
        session.wait_for("demo-ticker")
        session.keys("D")
        session.wait_for("Deploy main in sandbox")
        session.keys("Tab")
        time.sleep(0.3)
        session.keys("Enter")
        session.wait_for("deployed main", timeout=90)
        session.keys("Escape")
        # the banner (the demo verifies every deploy for a minute), not the toast of the first deploy's
        # verification, superseded: the console is back, and a key now is not read as alt+key
        session.wait_for(" s left · health", timeout=15)
        session.keys("6")
        session.wait_for("deploys/week", timeout=20)
        if os.path.exists("/opt/opsconsole-prometheus/usr/bin/prometheus") or shutil.which("prometheus"):
            # the load loop hits the deployed app; Prometheus scrapes it; the pane shows the rate
            deadline = time.monotonic() + 60
            line = ""
            while time.monotonic() < deadline:
                line = next((x for x in session.screen().splitlines() if "requests/s" in x), "")
                if re.search(r"requests/s\s+\d", line):
                    break
                time.sleep(1)
            assert re.search(r"requests/s\s+\d", line), line
        # the app's /boom errors reach the demo's Bugsink through sentry_sdk, and the Errors pane
        session.keys("4")
        session.wait_for("ZeroDivisionError", timeout=90)
        session.keys("q")
        assert session.wait_gone(30), session.screen()
    finally:
        session.kill()
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""
    assert list(tmp_path.glob("opsconsole-demo-*")) == []
    containers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=opsconsole.demo"], capture_output=True, text=True
    ).stdout
    assert containers.strip() == ""
