"""Alerts against a real Alertmanager 0.25 on loopback (tests/alertmanager_harness.py): alerts posted
through its API v2 appear in the Alerts pane and `status --json` filtered by the environment's
matchers; silences from the CLI and from the console mute them with the person as `createdBy`; an
ack expires by itself; unsilence expires a silence; read-only refuses; the audit log has each.

One Alertmanager serves the module; each test fires alerts of its own `alertname` so the tests do
not see each other's silences.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alertmanager_harness
import harness
from conftest import write_profile
from opsconsole.commands.status import cmd_status
from opsconsole.errors import ProfileError
from opsconsole.profiles import load_profile

PERSON = "oncall-ana"


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[alertmanager_harness.Alertmanager]:
    server: alertmanager_harness.Alertmanager | None = None
    try:
        server = alertmanager_harness.make(tmp_path_factory.mktemp("am"))
        server.start()
    except harness.ServiceUnavailable as exc:
        if server is not None:
            server.stop()
        if os.environ.get("CI"):
            pytest.fail(f"service unavailable under CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def profile_text(am: alertmanager_harness.Alertmanager, extra: str = "") -> str:
    return f"""[defaults]
refresh = 1

[environments.prod.alerts]
url = "{am.url}"
matchers = ['env="production"', 'team=~"shop|web"']
silence_default = "1h"
ack = "2s"
{extra}
"""


@pytest.fixture
def profile_path(tmp_path: Path, am: alertmanager_harness.Alertmanager) -> Path:
    return write_profile(tmp_path, profile_text(am))


@pytest.fixture
def env_vars(tmp_path: Path) -> dict[str, str]:
    return {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "OPSCONSOLE_USER": PERSON}


def fire(am: alertmanager_harness.Alertmanager, name: str, team: str = "shop") -> dict[str, str]:
    labels = {"alertname": name, "env": "production", "team": team, "severity": "critical"}
    am.fire(labels, {"summary": f"{name} on web-1", "description": "disk 95% full"})
    harness.wait_for(lambda: any(a["labels"] == labels for a in am.alerts()), 10, f"alert {name}")
    return labels


def state_of(am: alertmanager_harness.Alertmanager, name: str) -> dict[str, Any]:
    return next(a["status"] for a in am.alerts() if a["labels"].get("alertname") == name)


def audit_records(env_vars: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env_vars["OPSCONSOLE_AUDIT_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def status_json(profile: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    cmd_status(argparse.Namespace(profile=str(profile), envs=["prod"], json=True, stats=False))
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out["environments"]["prod"]  # type: ignore[no-any-return]


def test_status_json_has_the_environments_alerts_only(
    am: alertmanager_harness.Alertmanager, profile_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(am, "DiskFull")
    fire(am, "DbLag", team="db")  # another team's: not this environment's
    alerts = status_json(profile_path, capsys)["alerts"]
    names = [a["name"] for a in alerts["alerts"]]
    assert "DiskFull" in names and "DbLag" not in names
    disk = next(a for a in alerts["alerts"] if a["name"] == "DiskFull")
    assert disk["state"] == "active" and disk["annotations"]["summary"] == "DiskFull on web-1"
    assert (
        disk["startsAt"].endswith("Z") and disk["fingerprint"] and disk["group"] == {"alertname": "DiskFull"}
    )
    assert alerts["firing"] >= 1 and alerts["error"] is None


def test_unreachable_and_rejected_matchers_are_errors_with_the_cause(
    tmp_path: Path,
    am: alertmanager_harness.Alertmanager,
    refused_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = write_profile(
        tmp_path,
        f'[environments.prod.alerts]\nurl = "http://127.0.0.1:{refused_port}"\nmatchers = [\'env="x"\']\n',
    )
    error = status_json(down, capsys)["alerts"]["error"]
    assert "cannot connect" in error and "Alertmanager running" in error
    bad = write_profile(
        tmp_path, f'[environments.prod.alerts]\nurl = "{am.url}"\nmatchers = [\'a=~"(?=x)"\']\n', "bad"
    )
    assert "rejected" in status_json(bad, capsys)["alerts"]["error"]  # Alertmanager's regex error


def test_profile_checks_matchers_with_file_and_line(
    tmp_path: Path, am: alertmanager_harness.Alertmanager
) -> None:
    path = write_profile(tmp_path, profile_text(am).replace("'team=~\"shop|web\"'", "'team=shop'"))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert "test.toml:6" in text and "double-quoted" in text and "matchers[1]" in text


def test_silence_from_the_cli_mutes_the_alert_and_unsilence_expires_it(
    am: alertmanager_harness.Alertmanager, profile_path: Path, run_cli: Any, env_vars: dict[str, str]
) -> None:
    fire(am, "HighLatency")
    cli = ("--profile", str(profile_path))
    plan = run_cli(
        *cli, "silence", "prod", "alertname=HighLatency", "--comment", "deploying a fix", "--dry-run"
    )
    assert 'alertname="HighLatency" env="production" team=~"shop|web"' in plan.stdout, (
        plan.stdout + plan.stderr
    )
    assert "until" in plan.stdout and "(60 min)" in plan.stdout
    no_comment = run_cli(*cli, "silence", "prod", "alertname=HighLatency", "--yes", env=env_vars)
    assert no_comment.returncode != 0 and "needs a comment" in no_comment.stderr
    refused = run_cli(
        *cli,
        "silence",
        "prod",
        "alertname=HighLatency",
        "-m",
        "x",
        "--yes",
        env={**env_vars, "OPSCONSOLE_READ_ONLY": "1"},
    )
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert state_of(am, "HighLatency")["state"] == "active"

    made = run_cli(
        *cli,
        "silence",
        "prod",
        "alertname=HighLatency",
        "--for",
        "30m",
        "-m",
        "fixing",
        "--yes",
        env=env_vars,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    silence = next(s for s in am.silences() if s["comment"] == "fixing")
    assert silence["id"] in made.stdout  # the returned id is shown
    assert silence["status"]["state"] == "active" and silence["createdBy"].startswith(f"{PERSON}@")
    assert state_of(am, "HighLatency")["silencedBy"] == [silence["id"]]

    gone = run_cli(*cli, "unsilence", "prod", silence["id"], "--yes", env=env_vars)
    assert gone.returncode == 0 and "expired" in gone.stdout, gone.stdout + gone.stderr
    assert next(s for s in am.silences() if s["id"] == silence["id"])["status"]["state"] == "expired"
    harness.wait_for(lambda: state_of(am, "HighLatency")["state"] == "active", 10, "alert active again")
    records = audit_records(env_vars)
    by_action = {(r["action"], r.get("phase"), r.get("outcome")) for r in records}
    assert any(a == "silence" for a, _p, _o in by_action) and any(a == "unsilence" for a, _p, _o in by_action)
    ends = [r for r in records if r.get("phase") == "end"]
    assert [(r["action"], r["outcome"]) for r in ends] == [("silence", "success"), ("unsilence", "success")]
    assert silence["id"] in ends[0]["message"] and ends[0]["user"].startswith(f"{PERSON}@")


async def test_console_lists_alerts_acks_and_silences_with_a_prompted_comment(
    am: alertmanager_harness.Alertmanager,
    profile_path: Path,
    env_vars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from textual.widgets import TabbedContent

    from opsconsole.app import make_app
    from opsconsole.screens.action_screen import ActionScreen
    from opsconsole.screens.prompt import PromptScreen
    from opsconsole.widgets.pane import Pane
    from test_console import confirm_open, pane_keys, pane_texts, wait_until
    from test_console_keys import header

    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    labels = fire(am, "QueueBacklog")
    fire(am, "ConsoleOtherTeam", team="db")
    ack_labels = fire(am, "CertExpiry")
    app = make_app(load_profile(profile_path))

    async def select(name: str) -> None:
        await wait_until(pilot, lambda: any(name in t for t in pane_texts(app, "alerts")), what=name)
        index = next(n for n, t in enumerate(pane_texts(app, "alerts")) if name in t)
        app.screen.query_one("#alerts", Pane).table.move_cursor(row=index)

    async def confirm() -> None:
        await wait_until(pilot, lambda: confirm_open(app), what="the confirmation")
        await pilot.click("#run")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="the action screen")
        await wait_until(pilot, lambda: all(r.outcome is not None for r in app.runs.values()), what="the run")
        assert all(r.outcome is not None and r.outcome.ok for r in app.runs.values())
        await pilot.press("escape")

    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot, lambda: any("QueueBacklog" in t for t in pane_texts(app, "alerts")), what="alerts"
        )
        await pilot.press("colon", *"alerts", "enter")  # the Alerts tab, as k9s's :pods
        await wait_until(
            pilot, lambda: app.screen.query_one(TabbedContent).active == "tab-alerts", what="tab"
        )
        assert not any("ConsoleOtherTeam" in t for t in pane_texts(app, "alerts"))
        assert any(
            "critical" in t and "QueueBacklog on web-1" in t and "firing" in t
            for t in pane_texts(app, "alerts")
        )
        await wait_until(pilot, lambda: "alerts" in header(app), what="the header's alert count")

        await select("CertExpiry")
        await pilot.press("A")  # ack: no comment asked
        await confirm()
        harness.wait_for(lambda: state_of(am, "CertExpiry")["state"] == "suppressed", 10, "acked")

        await select("QueueBacklog")
        await pilot.press("z")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the comment prompt")
        await pilot.press(*"looking into it", "enter")
        await confirm()
        harness.wait_for(lambda: state_of(am, "QueueBacklog")["state"] == "suppressed", 10, "silenced")
        silenced_key = f"alert|{next(a['fingerprint'] for a in am.alerts() if a['labels'] == labels)}"
        # the acked alert may already be counted as hidden: wait for the next read that hides this one
        await wait_until(
            pilot,
            lambda: silenced_key not in pane_keys(app, "alerts")
            and any("silenced or inhibited hidden" in t for t in pane_texts(app, "alerts")),
            what="the silenced alert hidden",
        )
    silence = next(s for s in am.silences() if s["comment"] == "looking into it")
    assert silence["createdBy"].startswith(f"{PERSON}@") and silence["status"]["state"] == "active"
    assert {m["name"] for m in silence["matchers"]} == {"alertname", "env", "team"}
    # the ack (2 s in this profile) expires by itself and the alert fires again
    harness.wait_for(lambda: state_of(am, "CertExpiry")["state"] == "active", 15, "the ack expired")
    ack = next(s for s in am.silences() if s["comment"].startswith("ACK by"))
    assert ack["status"]["state"] == "expired" and ack["createdBy"].startswith(f"{PERSON}@")
    assert ack_labels["alertname"] == "CertExpiry"
    actions = [r["action"] for r in audit_records(env_vars)]
    assert "ack" in actions and "silence" in actions


async def test_console_read_only_refuses_a_silence(
    am: alertmanager_harness.Alertmanager,
    profile_path: Path,
    env_vars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.app import make_app
    from opsconsole.widgets.pane import Pane
    from test_console import pane_texts, wait_until

    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    fire(am, "ReadOnlyAlert")
    before = len(am.silences())
    app = make_app(load_profile(profile_path), read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot, lambda: any("ReadOnlyAlert" in t for t in pane_texts(app, "alerts")), what="alert"
        )
        index = next(n for n, t in enumerate(pane_texts(app, "alerts")) if "ReadOnlyAlert" in t)
        app.screen.query_one("#alerts", Pane).table.move_cursor(row=index)
        await pilot.press("colon", *"alerts", "enter")
        await pilot.press("A")
        await wait_until(
            pilot, lambda: any("read-only" in n.message for n in app._notifications), what="refusal"
        )
    assert len(am.silences()) == before


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_silence_from_the_console_in_a_real_terminal(
    tmp_path: Path, am: alertmanager_harness.Alertmanager, profile_path: Path, env_vars: dict[str, str]
) -> None:
    from test_e2e_tmux import Tmux

    fire(am, "AaaTmuxPage")  # sorts first: its row is the one selected
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {"NO_COLOR": "1", "PATH": os.environ["PATH"], **env_vars}
    session = Tmux([opsconsole, "--profile", str(profile_path)], env, size=(120, 30))
    try:
        session.wait_for("prod")
        session.keys(":")
        session.wait_for("tab or → completes")
        session.keys("alerts", "Enter")
        session.wait_for("AaaTmuxPage")
        session.keys("g")
        session.keys("z")
        session.wait_for("Why silence it?")
        session.keys("paged at night, on it", "Enter")
        screen = session.wait_for("Silence in prod's Alertmanager")
        assert 'alertname="AaaTmuxPage"' in screen and "(60 min)" in screen, screen
        session.keys("Tab", "Enter")  # from Cancel to Run
        session.wait_for("silenced until")
        session.keys("Escape")
    finally:
        session.kill()
    silence = next(s for s in am.silences() if s["comment"] == "paged at night, on it")
    assert silence["status"]["state"] == "active" and silence["createdBy"].startswith(f"{PERSON}@")
    assert state_of(am, "AaaTmuxPage")["silencedBy"] == [silence["id"]]
    assert ("silence", "success") in [(r["action"], r.get("outcome")) for r in audit_records(env_vars)]
