"""The deploy plan in the console starts from what the console holds (the last refresh's deploy
states, the mirror read in the background) and reads no host; filled in once the mirror is read;
and the run re-checks what it depends on, saying what changed since the plan was shown. Against
the loopback sshd and a real git repository."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import harness
from test_actions import app_repo, audit, deploy_profile, git  # noqa: F401 - fixtures

OPSCONSOLE = [sys.executable, "-m", "opsconsole"]


def _cli(profile: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*OPSCONSOLE, "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


class Counting:
    """Counts the commands run on a host by the thread that builds the plan (the console's worker);
    the mirror's background read runs on a thread of its own."""

    def __init__(self, host: Any) -> None:
        self.calls: list[str] = []
        self._run = host.run

        caller = threading.get_ident()

        def run(command: str, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == caller:
                self.calls.append(command)
            return self._run(command, *args, **kwargs)

        host.run = run


def test_the_plan_shown_fast_is_the_plan_that_runs_and_the_run_says_what_changed(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
    audit: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.deploy import DeployAction
    from opsconsole.actions.events import Notice, Outcome
    from opsconsole.actions.runner import ActionRun
    from opsconsole.backends.clients import Backends
    from opsconsole.backends.releases import read_state
    from opsconsole.profiles import read_profile
    from opsconsole.sources.fanout import SourceResult
    from opsconsole.sources.state import FleetState

    for key, value in audit.items():
        monkeypatch.setenv(key, value)
    path, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    first = _cli(path, audit, "deploy", "staging", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    profile = read_profile(path)[0]
    env = profile.environments["staging"]
    assert env.deploy is not None
    backends = Backends(profile)
    try:
        spec = env.hosts[0]
        held = FleetState(profile)  # the console's read model after a refresh
        state = read_state(backends.host(spec), env.deploy)
        held.put("staging", ("deploys", spec.raw), SourceResult(data=state))
        counting = Counting(backends.host(spec))

        def action() -> DeployAction:
            ctx = ActionContext(profile, backends, known=held)
            made = DeployAction(ctx, Target(env="staging", options={"reason": "fast plan"}))
            assert isinstance(made, DeployAction)
            return made

        # the first D: the plan from the refresh at once, no host read; the mirror read behind it
        deploy = action()
        shown = ActionRun(deploy).prepare().plan
        assert shown is not None
        assert counting.calls == [], counting.calls
        text = "\n".join(shown.summary_lines)
        assert "Pending commits: being read from the mirror" in text, text
        assert f"now on releases/{state.current}" in text and "(as of " in text, text
        assert deploy.filling is not None and deploy.filling.wait(60)
        # filled in (the console replaces the plan on screen with this one): still no host read
        counting.calls.clear()
        head = git(app_repo, "rev-parse", "HEAD")
        filled = deploy.plan()
        assert counting.calls == [], counting.calls
        text = "\n".join(filled.summary_lines)
        assert f"-> main ({head[:12]})" in text and "read from the mirror" in text, text
        assert filled.steps == shown.steps  # the same commands; only the summary is fuller

        # the next D starts from the mirror as read: the commits are there at once
        again = action()
        prepared = ActionRun(again).prepare()
        plan = prepared.plan
        assert plan is not None and again.filling is None
        assert f"-> main ({head[:12]})" in "\n".join(plan.summary_lines)
        assert counting.calls == [], counting.calls

        # meanwhile: a new commit on main, and someone else's deploy of it
        (app_repo / "app.py").write_text("VERSION = 3\n")
        git(app_repo, "commit", "-q", "-am", "v3")
        moved = git(app_repo, "rev-parse", "HEAD")
        other = _cli(path, audit, "deploy", "staging", "--yes")
        assert other.returncode == 0, other.stdout + other.stderr
        now_current = read_state(backends.host(spec), env.deploy).current

        # the run goes by what is true now, and says what changed since the plan
        run = ActionRun(again, approved=True)
        run.prepared = prepared  # the plan shown above: the one run and audited
        notices: list[str] = []
        outcome: Outcome | None = None
        for event in run.events():
            if isinstance(event, Notice):
                notices.append(event.message)
            elif isinstance(event, Outcome):
                outcome = event
        assert outcome is not None and outcome.ok, outcome
        said = "\n".join(notices)
        assert f"now on releases/{now_current}, not releases/{state.current} as the plan showed" in said, said
        assert f"main moved since the plan was shown: it is now {moved[:12]}, the plan showed {head[:12]}" in said
        record = [json.loads(x) for x in (root / ".opsconsole" / "deploys.jsonl").read_text().splitlines()][-1]
        assert record["commit"] == moved and record["outcome"] == "success"
        starts = [
            json.loads(x)
            for x in Path(audit["OPSCONSOLE_AUDIT_LOG"]).read_text().splitlines()
            if json.loads(x)["phase"] == "start"
        ]
        assert starts[-1]["plan"] == plan.render(), "the audited plan is the plan shown"
    finally:
        backends.close()


def test_the_cli_plan_still_reads_every_host_and_the_mirror(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,  # noqa: F811
    audit: dict[str, str],  # noqa: F811
) -> None:
    """Without the console's read model (`opsconsole deploy`), the plan is read whole before it is
    shown: what goes out and CI come with it, never "being read"."""
    path, _root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    assert _cli(path, audit, "deploy", "staging", "--yes").returncode == 0
    (app_repo / "app.py").write_text("VERSION = 3\n")
    git(app_repo, "commit", "-q", "-am", "v3")
    dry = _cli(path, audit, "deploy", "staging", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "being read" not in dry.stdout and "1 pending commit" in dry.stdout, dry.stdout


def test_an_idle_console_does_not_read_the_mirror_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a refresh of the shown environment the mirror is read (at most once a minute), but not
    while its polling is stretched: nothing changed and nobody pressed a key. A key brings it back."""
    from types import SimpleNamespace

    from opsconsole.actions.deploy import pending
    from opsconsole.console_flow import ActionFlow
    from opsconsole.profiles import parse_profile_text
    from opsconsole.sources.schedule import RefreshSchedule

    profile = parse_profile_text(
        '[environments.staging]\nhosts = ["local"]\n[environments.staging.deploy]\npath = "/srv/app"\n'
        'repo = "/tmp/none.git"\n',
        Path("x.toml"),
    )
    schedule = RefreshSchedule(5.0)
    app = SimpleNamespace(
        read_only=False,
        profile=profile,
        current_env="staging",
        backends=None,
        refresher=SimpleNamespace(schedule=schedule),
    )
    reads: list[str] = []
    monkeypatch.setattr(pending.MIRRORS, "get", lambda env, ref: None)
    monkeypatch.setattr(pending.MIRRORS, "fetching", lambda env, ref: None)
    monkeypatch.setattr(pending.MIRRORS, "prefetch", lambda backends, env, ref: reads.append(env.name))
    flow = ActionFlow(app)
    key = ("deploys", "local")

    flow.prefetch_after_refresh("staging", key)
    assert reads == ["staging"]
    schedule.next_delay("staging", {})
    schedule.next_delay("staging", {})  # the same results twice: stretched
    assert schedule.stretched("staging")
    flow.prefetch_after_refresh("staging", key)
    assert reads == ["staging"]
    schedule.touched()  # a key
    flow.prefetch_after_refresh("staging", key)
    assert reads == ["staging", "staging"]
