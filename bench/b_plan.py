"""D → the deploy plan on screen over SSH: what shows first, and when the whole plan is there.

The console on a loopback SSH host with a deploy (and a second commit pending), read through a
pseudo-terminal: D is pressed, the first sign of it (the "preparing" toast or the plan itself) and
the plan with what goes out are timed, then escape cancels. The baseline is the same plan read
fresh, as the CLI (and the console before issue 34) builds it: every host's state and the mirror
fetched over SSH before anything is shown.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import textwrap
import time
from pathlib import Path

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.common import OPSCONSOLE, PYTHON, Config, Result, git
from bench.terminal import Terminal

BARE_NOTIFY = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header

    class Bare(App):
        BINDINGS = [("D", "plan", "Deploy"), ("escape", "gone", "Back")]

        def compose(self):
            yield Header()
            yield DataTable()
            yield Footer()

        def on_mount(self):
            table = self.query_one(DataTable)
            table.add_columns("environment", "hosts", "state")
            table.add_row("staging", "1", "ready")

        def action_plan(self):
            self.notify("reading the hosts", title="Preparing plan")

        def action_gone(self):
            self.clear_notifications()
            self.notify("nothing was changed", timeout=1)

    Bare().run()
    """
)


def _presses(term: Terminal, count: int, first_of: tuple[str, ...], whole: str | None) -> tuple[list[float], list[float]]:
    """Press D `count` times: seconds to the first of `first_of`, and to `whole`; escape between."""
    firsts: list[float] = []
    wholes: list[float] = []
    for _ in range(count):
        since = term.mark()
        sent = time.perf_counter()
        term.send("D")
        firsts.append(_first_of(term, since, first_of) - sent)
        if whole is not None:
            wholes.append(term.wait_for(whole, since=since, timeout=30) - sent)
        since = term.mark()
        term.send("\x1b")
        term.wait_for("nothing was changed", since=since, timeout=10)
        time.sleep(0.5)
    return firsts, wholes


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 4 else max(values)


def bench_plan(cfg: Config, tmp: Path) -> None:
    root = tmp / "plan"
    repo = root / "app-repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("VERSION = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    fleet = harness.make_ssh_fleet(root / "sshd", 1)
    sshd, host = fleet.sshd, fleet.hosts[0]
    profile = root / "plan.toml"
    profile.write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "shop"
            [defaults]
            known_hosts = {json.dumps(str(sshd.known_hosts))}
            identity_file = {json.dumps(str(sshd.client_key))}
            timeout = 10
            refresh = 5
            [environments.staging]
            hosts = [{json.dumps(host)}]
            [environments.staging.deploy]
            path = {json.dumps(str(root / "srv"))}
            repo = {json.dumps(str(repo))}
            branch = "main"
            build = ["true"]
            """
        )
    )
    fleet.start()
    try:
        done = subprocess.run(
            [PYTHON, "-m", "opsconsole", "--profile", str(profile), "deploy", "staging", "--yes"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (repo / "app.py").write_text("VERSION = 2\n")
        git(repo, "commit", "-q", "-am", "v2")
        presses = 5 if cfg.smoke else 20
        fresh: list[float] = []
        for _ in range(3 if cfg.smoke else 7):  # the plan read fresh, in process, as the CLI does
            fresh.append(_fresh_plan_seconds(profile))
        term = Terminal([OPSCONSOLE, "--profile", str(profile)])
        try:
            term.wait_for("deploys ✓", timeout=30)
            time.sleep(3.0)  # the first refresh, and the mirror read behind it
            first, whole = _presses(term, presses, ("Preparing plan", "Deploy main in staging"), "What goes out")
        finally:
            term.close()
        bare_app = root / "bare_notify.py"
        bare_app.write_text(BARE_NOTIFY)
        term = Terminal([PYTHON, str(bare_app)])
        try:
            term.wait_for("staging", timeout=30)
            time.sleep(1.0)
            bare, _ = _presses(term, presses, ("Preparing plan",), None)
        finally:
            term.close()
    finally:
        fleet.stop()
    baseline = statistics.median(fresh)
    cfg.results.append(
        Result(
            "13a. D → first sign on screen, over SSH, vs a bare app's toast",
            _p95(first) * 1000,
            _p95(bare) * 1000,
            "ms",
            "p95 <= 50 ms",
            _p95(first) <= 0.05,
            f"{len(first)} presses read through the terminal (the toast or the plan, whichever first): "
            + ", ".join(f"{x * 1000:.0f}" for x in first)
            + " ms; baseline: a bare Textual app (header, table, footer) showing a toast on the key: "
            + ", ".join(f"{x * 1000:.0f}" for x in bare)
            + " ms",
        )
    )
    cfg.results.append(
        Result(
            "13b. D → the whole plan (what goes out) on screen, over SSH",
            _p95(whole) * 1000,
            baseline * 1000,
            "ms",
            "p95 <= 200 ms",
            _p95(whole) <= 0.2,
            f"p50 {statistics.median(whole) * 1000:.0f} ms; baseline: the same plan read fresh (hosts and "
            f"mirror over SSH, as the CLI does), median of {len(fresh)}: "
            + ", ".join(f"{x * 1000:.0f}" for x in fresh)
            + " ms",
        )
    )


def _first_of(term: Terminal, since: int, texts: tuple[str, ...]) -> float:
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        for text in texts:
            try:
                return term.wait_for(text, since=since, timeout=0.001)
            except TimeoutError:
                continue
    raise TimeoutError(f"none of {texts} appeared")


def _fresh_plan_seconds(profile: Path) -> float:
    """How long the plan takes read fresh (no read model, no mirror read before), in process."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.deploy import DeployAction
    from opsconsole.actions.runner import ActionRun
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import read_profile

    loaded = read_profile(profile)[0]
    backends = Backends(loaded)
    try:
        backends.host(loaded.environments["staging"].hosts[0]).run("true", timeout=10)  # connected, as the console is
        started = time.perf_counter()
        action = DeployAction(ActionContext(loaded, backends), Target(env="staging"))
        plan = ActionRun(action).prepare().plan
        assert plan is not None and any("What goes out" in line for line in plan.summary_lines)
        return time.perf_counter() - started
    finally:
        backends.close()
