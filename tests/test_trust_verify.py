"""Fault suite, verification and auto-rollback (issue 26): a verification judges only its own release
and only while it is current (another deploy during the window: `superseded`, nothing rolled back or
marked bad); an auto-rollback switches only from the release it verified, checked under the deploy
lock; an error tracker that did not answer makes the verdict `inconclusive` (exit 4), never `pass`;
a verification with nothing to check is refused at validation. Real hosts (local and sshd on
loopback), the Sentry-shaped server, a real health endpoint."""

from __future__ import annotations

import asyncio
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
from opsconsole.actions.base import ActionContext, Target
from opsconsole.actions.rollback import RollbackAction
from opsconsole.actions.runner import ActionRun
from opsconsole.backends.clients import Backends
from opsconsole.metrics import compute
from opsconsole.profiles import load_profile
from test_faults import deploy_profile
from test_metrics import SINCE, UNTIL, deploy
from test_release import (  # noqa: F401 - fixtures
    SENTRY_TOKEN,
    audit,
    commit,
    env,
    health_url,
    journal,
    profile,
    repo,
)

pytestmark = pytest.mark.faults


def sentry(url: str) -> str:
    return f"""
[environments.staging.sentry]
url = "{url}"
organization = "acme"
project = "shop"
token = {{ secret = "sentry-token" }}
"""


def verify_profile(
    tmp_path: Path, app_repo: Path, health: str | None, sentry_url: str | None, window: float
) -> Path:
    text = profile(tmp_path, app_repo).read_text()
    if health:
        text = text.replace("[environments.staging]\n", f'[environments.staging]\nhealth = ["{health}"]\n', 1)
    if sentry_url:
        text += sentry(sentry_url)
    return write_profile(tmp_path, text + f"\n[environments.staging.deploy.verify]\nwindow = {window}\n")


def current(tmp_path: Path) -> str:
    return os.readlink(tmp_path / "srv" / "shop" / "current").rsplit("/", 1)[-1]


def deployed(tmp_path: Path) -> list[str]:
    path = tmp_path / "srv" / "shop" / ".opsconsole" / "deploys.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["release"] for r in records if r["event"] == "deploy" and r["outcome"] == "success"]


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:  # noqa: F811
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
    )


def wait_for(condition: Any, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")


# ------------------------------------------------------------------------ superseded


def test_auto_rollback_never_rolls_back_a_release_it_did_not_verify(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    sentry_server: Any,
    health_url: Any,  # noqa: F811
) -> None:
    """Ann deploys v2 with --verify --auto-rollback; during her window Bob deploys v3; then health
    fails. Ann's verification is superseded: v3 stays current, nothing is marked bad, no rollback."""
    url, health = health_url
    path = verify_profile(tmp_path, repo, url, sentry_server.url, window=20)
    first = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    v1 = current(tmp_path)

    commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    ann = cli(
        "--profile", str(path), "deploy", "staging", "--yes", "--verify", "--auto-rollback",
        env={**env, "OPSCONSOLE_USER": "ann"}, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: len(deployed(tmp_path)) == 2, "Ann's deploy")
        v2 = current(tmp_path)
        assert v2 != v1
        commit(repo, "third", {"app.py": "V = 3\n"}, "2026-11-24T10:00:00+00:00")
        bob = run_cli(
            "--profile", str(path), "deploy", "staging", "--yes", env={**env, "OPSCONSOLE_USER": "bob"}
        )
        assert bob.returncode == 0, bob.stdout + bob.stderr
        v3 = current(tmp_path)
        health.healthy = False  # Bob's release is the one answering now; its health is not Ann's verdict
        out, err = ann.communicate(timeout=60)
    finally:
        if ann.poll() is None:
            ann.kill()
            ann.wait()
    assert ann.returncode == 3, out + err
    assert f"Verifying releases/{v2} on staging: SUPERSEDED" in err
    assert f"current is now releases/{v3}" in err and "nothing rolled back or marked bad" in err
    assert "auto-rollback" not in err
    assert current(tmp_path) == v3
    records = journal(tmp_path)
    assert not [r for r in records if r["event"] in ("mark_bad", "rollback")]
    verdict = [r for r in records if r["event"] == "verify"]
    assert len(verdict) == 1 and verdict[0]["release"] == v2 and verdict[0]["outcome"] == "superseded"
    assert verdict[0]["replaced_by"] == {"local": v3}
    assert [a["action"] for a in audit(tmp_path)] == ["deploy", "deploy", "deploy"]

    releases = json.loads(run_cli("--profile", str(path), "releases", "staging", "--json").stdout)
    assert not any(row["bad"] for row in releases["hosts"]["local"]["releases"])
    metrics = json.loads(
        run_cli("--profile", str(path), "metrics", "staging", "--json", "--since", "3650d").stdout
    )
    assert metrics["change_failure_rate"]["failed"] == 0


def test_a_conditional_rollback_checks_current_again_under_the_deploy_lock(
    tmp_path: Path,
    sshd: harness.Sshd,
    repo: Path,  # noqa: F811
    run_cli,
    env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rollback --from R` (what auto-rollback runs): R is current when the plan is made, then another
    deploy replaces it before the run takes the lock: nothing is switched or marked bad (exit 3)."""
    path = deploy_profile(tmp_path, sshd, [f"127.0.0.1:{sshd.port}"], repo, ["echo built"])
    for n in (1, 2):
        commit(repo, f"change {n}", {"app.py": f"V = {n + 10}\n"}, f"2026-11-2{n}T10:00:00+00:00")
        done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    verified = current(tmp_path)

    refused = run_cli(
        "--profile", str(path), "rollback", "staging", "--yes", "--from", "20200101T000000Z", env=env
    )
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "superseded: releases/20200101T000000Z is no longer current" in refused.stderr
    assert current(tmp_path) == verified

    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", env["OPSCONSOLE_AUDIT_LOG"])
    loaded = load_profile(path)
    backends = Backends(loaded)
    try:
        action = RollbackAction(
            ActionContext(loaded, backends),
            Target(env="staging", options={"from": verified, "auto_rollback": True}),
        )
        run = ActionRun(action, approved=True)
        prepared = run.prepare()  # the plan sees `verified` current
        assert prepared.plan is not None and prepared.refusal is None
        commit(repo, "bob", {"app.py": "V = 99\n"}, "2026-11-25T10:00:00+00:00")
        bob = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
        assert bob.returncode == 0, bob.stdout + bob.stderr
        bobs = current(tmp_path)
        for _event in run.events():
            pass
        outcome = run.outcome
    finally:
        backends.close()
    assert outcome is not None and not outcome.ok and outcome.exit_code == 3, outcome
    assert action.superseded is not None and action.superseded.replaced_by == {f"127.0.0.1:{sshd.port}": bobs}
    assert current(tmp_path) == bobs
    assert not [r for r in journal(tmp_path) if r["event"] in ("mark_bad", "rollback")]


# ------------------------------------------------------------------------ inconclusive


def test_an_error_tracker_that_never_answers_is_inconclusive_not_verified(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    health_url: Any,  # noqa: F811
    refused_port: int,
) -> None:
    url, _health = health_url
    path = verify_profile(tmp_path, repo, url, f"http://127.0.0.1:{refused_port}", window=2)
    first = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    done = run_cli(
        "--profile", str(path), "deploy", "staging", "--yes", "--verify", "--auto-rollback", env=env
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "VERIFIED" not in done.stdout + done.stderr
    assert "INCONCLUSIVE, not verified: the error tracker never answered during the window" in done.stderr
    assert "auto-rollback" not in done.stderr
    records = journal(tmp_path)
    assert records[-1]["event"] == "verify" and records[-1]["outcome"] == "inconclusive"
    assert not [r for r in records if r["event"] in ("mark_bad", "rollback")]
    metrics = json.loads(
        run_cli("--profile", str(path), "metrics", "staging", "--json", "--since", "3650d").stdout
    )
    assert metrics["change_failure_rate"]["failed"] == 0


def test_an_answer_at_the_start_of_the_window_does_not_verify_its_end(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    health_url: Any,  # noqa: F811
    sentry_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tracker answers the first check, then is down until the window ends: inconclusive. An
    issue first seen in another release never counts against this one."""
    from opsconsole.actions.deploy.verify import Verifier, sentry_version
    from sentry_server import Forced

    url, _health = health_url
    path = verify_profile(tmp_path, repo, url, sentry_server.url, window=30)
    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    record = journal(tmp_path)[-1]
    other = sentry_server.add_issue("KeyError: not ours", level="error")
    sentry_server.first_release[other["id"]] = "shop@000000000000"  # another release's issue

    monkeypatch.setenv("OPSCONSOLE_SECRET_SENTRY_TOKEN", SENTRY_TOKEN)
    loaded = load_profile(path)
    backends = Backends(loaded)
    try:
        staging = loaded.env("staging")
        version = sentry_version(staging, "shop", record["release"], record["commit"], record["ref"])
        verifier = Verifier(backends, staging, record["release"], version)
        verifier.check_once()
        assert verifier.status.verdict is None and verifier.status.sentry_answers == 1
        assert verifier.status.new_issues == []
        sentry_server.force(*[Forced(503, b'{"detail": "down"}') for _ in range(50)])
        verifier.check_once()
        verifier.conclude()
    finally:
        backends.close()
    status = verifier.status
    assert status.verdict == "inconclusive", status
    assert "did not answer the final check" in "; ".join(status.reasons)
    assert "INCONCLUSIVE" in status.line() and "VERIFIED" not in status.line()


def test_a_verification_with_nothing_to_check_is_refused_at_validation(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
) -> None:
    path = verify_profile(tmp_path, repo, None, None, window=2)
    line = path.read_text().splitlines().index("[environments.staging.deploy.verify]") + 1
    shown = run_cli("--profile", str(path), "profile", "validate")
    assert shown.returncode == 2, shown.stdout + shown.stderr
    assert f"{path.name}:{line}: [environments.staging.deploy.verify] has nothing to check" in shown.stderr
    deployed_anyway = run_cli("--profile", str(path), "deploy", "staging", "--yes", "--verify", env=env)
    assert deployed_anyway.returncode == 2 and not (tmp_path / "srv").exists()


def test_superseded_and_inconclusive_verdicts_are_not_change_failures() -> None:
    records = [
        deploy("r1", "2026-09-10T00:00:00Z"),
        {"event": "verify", "release": "r1", "outcome": "superseded"},
        deploy("r2", "2026-09-11T00:00:00Z"),
        {"event": "verify", "release": "r2", "outcome": "inconclusive"},
    ]
    assert compute("prod", records, SINCE, UNTIL)["change_failure_rate"] == {
        "value": 0.0,
        "failed": 0,
        "total": 2,
    }


# ------------------------------------------------------------------------ the console's banner


async def test_the_console_banner_says_inconclusive_and_superseded_and_offers_R_only_on_fail(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    health_url: Any,  # noqa: F811
    refused_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.app import make_app
    from opsconsole.screens.confirm import ConfirmScreen
    from test_console import confirm_open, panes_built, wait_until

    url, _health = health_url
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = verify_profile(tmp_path, repo, url, f"http://127.0.0.1:{refused_port}", window=12)
    app = make_app(load_profile(path))

    def banner() -> str:
        widget = app.screen.query_one_optional("#verify")
        return str(widget.render()) if widget is not None and widget.display else ""

    def toast(title: str) -> bool:
        return any(n.title == title for n in app._notifications)

    async with app.run_test(size=(160, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        for n, word in ((1, "INCONCLUSIVE"), (2, "SUPERSEDED")):

            def finished(k: int = n) -> bool:
                return sum(r.outcome is not None for r in app.runs.values()) == k

            def shown(w: str = word) -> bool:
                return w in banner()

            if n == 2:
                commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
            await pilot.press("D")
            await wait_until(
                pilot, lambda: confirm_open(app), timeout=30, what="confirmation"
            )
            await pilot.press("tab", "enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="run to start")
            await wait_until(
                pilot,
                finished,
                timeout=60,
                what="deploy",
            )
            await pilot.press("escape")
            if n == 2:  # Bob deploys from his terminal while the console's window runs
                commit(repo, "bob", {"app.py": "V = 3\n"}, "2026-11-24T10:00:00+00:00")
                bob = await asyncio.to_thread(
                    run_cli, "--profile", str(path), "deploy", "staging", "--yes", env=env
                )
                assert bob.returncode == 0, bob.stdout + bob.stderr
            await wait_until(pilot, shown, timeout=30, what=word)
            assert "R: roll back" not in banner() and "VERIFIED" not in banner()
        await wait_until(pilot, lambda: toast("Verification INCONCLUSIVE"), what="inconclusive toast")
        await wait_until(pilot, lambda: toast("Verification superseded"), what="superseded toast")
        assert not toast("Verification FAILED") and not toast("Verified")
        assert not any("Press R" in str(n.message) for n in app._notifications)
    outcomes = [r["outcome"] for r in journal(tmp_path) if r["event"] == "verify"]
    assert outcomes == ["inconclusive", "superseded"]


async def test_R_after_a_failed_verification_rolls_back_only_from_the_failed_release(
    run_cli,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    sentry_server: Any,
    health_url: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The FAILED banner offers R: its plan rolls back only from the release that failed; once Bob
    has deployed another release meanwhile, R refuses instead of rolling Bob's release back."""
    from opsconsole.app import make_app
    from opsconsole.screens.confirm import ConfirmScreen
    from test_console import confirm_open, panes_built, wait_until

    url, health = health_url
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = verify_profile(tmp_path, repo, url, sentry_server.url, window=30)
    first = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    v1 = current(tmp_path)
    commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    app = make_app(load_profile(path))

    def banner() -> str:
        widget = app.screen.query_one_optional("#verify")
        return str(widget.render()) if widget is not None and widget.display else ""

    try:
        async with app.run_test(size=(160, 30), notifications=True) as pilot:
            await wait_until(pilot, lambda: panes_built(app), what="panes")
            await pilot.press("D")
            await wait_until(pilot, lambda: confirm_open(app), timeout=30, what="plan")
            await pilot.press("tab", "enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="run to start")
            await wait_until(pilot, lambda: any(r.outcome is not None for r in app.runs.values()), timeout=60)
            await pilot.press("escape")
            v2 = current(tmp_path)
            assert v2 != v1
            health.healthy = False
            await wait_until(pilot, lambda: "FAILED" in banner(), timeout=40, what="FAILED banner")
            await pilot.press("R")
            await wait_until(pilot, lambda: confirm_open(app), timeout=30, what="R plan")
            plan = "\n".join(str(w.render()) for w in app.screen.query("Static"))
            assert f"Only from releases/{v2}" in plan, plan
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="plan closed")

            commit(repo, "bob", {"app.py": "V = 3\n"}, "2026-11-24T10:00:00+00:00")
            bob = await asyncio.to_thread(run_cli, "--profile", str(path), "deploy", "staging", "--yes", env=env)
            assert bob.returncode == 0, bob.stdout + bob.stderr
            v3 = current(tmp_path)
            await pilot.press("R")
            await wait_until(
                pilot,
                lambda: any("no longer current" in str(n.message) for n in app._notifications),
                timeout=30,
                what="R refused",
            )
            assert not isinstance(app.screen, ConfirmScreen)
            assert current(tmp_path) == v3
    finally:
        health.healthy = True
