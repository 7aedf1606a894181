"""The command line as a newcomer meets it: every `--help`, global options anywhere, `--stats`."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.cli import build_parser

REPO = Path(__file__).resolve().parent.parent


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found.extend(_commands(child, (*prefix, name)))
    return found


COMMANDS = _commands(build_parser())


def test_every_subcommand_is_listed() -> None:
    names = {c[0] for c in COMMANDS}
    assert {"status", "deploy", "rollback", "logs", "secret", "profile", "releases", "demo"} <= names
    assert ("secret", "check") in COMMANDS and ("profile", "validate") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_of_every_subcommand(run_cli: Any, command: tuple[str, ...]) -> None:
    done = run_cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: opsconsole " + " ".join(command))
    assert "Traceback" not in done.stderr and "{'" not in done.stdout  # no dict where help should be


@pytest.mark.parametrize(
    "args",
    [
        ("--profile", "example", "secret", "check"),
        ("secret", "check", "--profile", "example"),
        ("secret", "check", "-P", "example"),
        ("profile", "show", "--profile", "example"),
    ],
)
def test_global_options_before_or_after_the_subcommand(run_cli: Any, args: tuple[str, ...]) -> None:
    done = run_cli(*args, cwd=REPO)
    assert "unrecognized arguments" not in done.stderr
    assert done.returncode in (0, 2) and "sentry-token" in done.stdout + done.stderr


def test_read_only_after_the_subcommand_refuses(run_cli: Any, tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path,
        '[environments.staging]\nhosts = ["local"]\n[[environments.staging.actions]]\n'
        f'name = "touch"\ncommand = "touch {tmp_path}/ran"\nconfirm = false\n',
    )
    done = run_cli("run", "staging", "touch", "--profile", str(profile), "--read-only", "--yes")
    assert done.returncode == 3 and "read-only" in done.stderr
    assert not (tmp_path / "ran").exists()


def test_status_stats_with_a_running_container(run_cli: Any, tmp_path: Path, docker_engine: Any) -> None:
    container = docker_engine.containers.run(
        harness.IMAGE,
        ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
        detach=True,
        name=f"opsc-stats-{uuid.uuid4().hex[:6]}",
        labels={harness.TEST_LABEL: "1"},
    )
    try:
        profile = write_profile(
            tmp_path,
            '[environments.staging]\nhosts = ["local"]\n[environments.staging.docker]\n'
            'url = "unix:///var/run/docker.sock"\n',
        )
        done = run_cli("--profile", str(profile), "status", "--json", "--stats")
        assert done.returncode == 0, done.stderr
        containers = json.loads(done.stdout)["environments"]["staging"]["hosts"]["local"]["docker"][
            "containers"
        ]
        ours = next(c for c in containers if c["name"] == container.name)
        assert ours["memory_bytes"] > 0 and ours["cpu_percent"] >= 0
    finally:
        container.remove(force=True)


def test_readme_lists_every_key_binding() -> None:
    """README's key tables name every binding id of every screen (they are what `[keymap]` takes)."""
    from opsconsole.screens.keymap import bindings

    readme = (REPO / "README.md").read_text()
    missing = [b.id for b in bindings() if b.screen != "Help" and f"`{b.id}`" not in readme]
    assert missing == []


def test_every_test_module_is_type_checked_as_a_test() -> None:
    """mypy's relaxed settings for tests name each module: a new test file must be listed there."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = {m for o in config["tool"]["mypy"]["overrides"] for m in o["module"]}
    files = {p.stem for p in (REPO / "tests").glob("*.py")}
    assert files <= listed, sorted(files - listed)


def test_every_subcommand_help_describes_it_and_its_arguments() -> None:
    """`opsconsole X --help` says what X does and what each of its arguments is."""
    import argparse

    from opsconsole.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    if not child.description:
                        missing.append(f"{path} {name}: no description")
                    walk(child, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and action.help is None:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}: no help")

    walk(build_parser(), "opsconsole")
    assert missing == []


def test_counts_read_as_words() -> None:
    """One helper makes every count's noun singular for one ("1 host", "1 entry", "1 process")."""
    from opsconsole.human import counted
    from opsconsole.sources.summary import EnvSummary

    assert [counted(n, "hosts") for n in (0, 1, 2)] == ["0 hosts", "1 host", "2 hosts"]
    assert counted(1, "entries") == "1 entry" and counted(1, "processes") == "1 process"
    assert EnvSummary(sentry_open=1, health_failing=1).badges() == ["1 error", "1 check failing"]
    assert EnvSummary(sentry_open=2, health_failing=3).badges() == ["2 errors", "3 checks failing"]


def test_action_titles_do_not_repeat_themselves(tmp_path: Path) -> None:
    """Not "Purge cache cache in sandbox" nor "Watch sandbox (sandbox)"."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.registry import ACTIONS
    from opsconsole.actions.runner import ActionRun
    from opsconsole.actions.runs import RunState
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import parse_profile_text

    text = (
        '[environments.sandbox]\nhosts = ["local"]\n[environments.sandbox.cache]\npurge = ["true"]\n'
        f'[environments.sandbox.deploy]\npath = "{tmp_path}/app"\nrepo = "{tmp_path}/repo"\n'
        '[environments.sandbox.supervisor]\nurl = "unix:///nowhere.sock"\n'
    )
    profile = parse_profile_text(text, tmp_path / "t.toml")
    ctx = ActionContext(profile, Backends(profile))
    purge = ACTIONS["purge"](ctx, Target(env="sandbox"))
    watch = ACTIONS["watch"](ctx, Target(env="sandbox"))
    restart = ACTIONS["restart"](ctx, Target(env="sandbox", name="supervisor:web"))
    assert purge.summary()[0] == "Purge cache in sandbox on local"
    assert RunState(1, purge, ActionRun(purge)).title == "Purge cache (sandbox)"
    assert RunState(2, watch, ActionRun(watch)).title == "Watch (sandbox)"
    assert restart.headline == "Restart supervisor:web"


def test_status_names_bugsink_and_a_missing_secret_as_such(tmp_path: Path, run_cli: Any) -> None:
    profile = tmp_path / "bs.toml"
    profile.write_text(
        '[environments.staging]\nhosts = []\n[environments.staging.bugsink]\nurl = "http://127.0.0.1:9"\n'
        'project = 1\ntoken = { secret = "not-set-anywhere" }\n'
    )
    done = run_cli("--profile", str(profile), "status")
    assert done.returncode == 4
    assert "  bugsink:      ERROR" in done.stdout and "sentry:" not in done.stdout, done.stdout
    assert "1 source failed: 1 secret missing" in done.stderr, done.stderr


def test_details_leave_out_unknown_fields_and_label_the_stack() -> None:
    from opsconsole.backends.sentry import ExceptionValue, Frame, SentryEvent
    from opsconsole.screens.details import event_text, fields_text

    text = fields_text("issue", [("status", "unresolved"), ("substatus", None)]).plain
    assert "unresolved" in text and "substatus" not in text and "None" not in text
    frames = (Frame("app.py", "outer", 3, True, None), Frame("app.py", "crash", 9, True, None))
    event = SentryEvent("e1", "ZeroDivisionError", "2026-12-03T07:40:44Z", (ExceptionValue("ZeroDivisionError", "x", frames),))
    shown = event_text(event).plain
    assert "most recent call first" in shown and shown.index("crash") < shown.index("outer")
    assert "2026-12-03T07:40:44Z" not in shown and " ago" in shown  # one time format: local time, and how long ago


def test_deploys_a_week_read_the_same_in_the_pane_and_the_cli() -> None:
    """The Metrics pane said 0.2/week where `opsconsole metrics` said 0.16: one formatter now."""
    import inspect

    import opsconsole.commands.metrics as cli_metrics
    import opsconsole.panes.metrics as pane_metrics
    from opsconsole.metrics import per_week_text

    assert [per_week_text(v) for v in (0.16, 2.5, 12.0, 0.0)] == ["0.16", "2.5", "12", "0"]
    assert "per_week_text(" in inspect.getsource(cli_metrics) and "per_week_text(" in inspect.getsource(pane_metrics)


def test_the_deploys_pane_counts_journal_records_not_its_current_rows() -> None:
    """"2 deploys" counted each host's `current` row; a RUNNING row no longer pushes `when` off."""
    from opsconsole.backends.releases import DeployState
    from opsconsole.backends.runlogs import RunInfo
    from opsconsole.panes.deploys import SPEC, rows_deploys
    from opsconsole.sources.fanout import SourceResult

    journal = [
        {"event": "deploy", "release": f"r{n}", "outcome": "success", "who": "ann", "started": "2026-12-03T07:00:00Z"}
        for n in (1, 2)
    ]
    running = RunInfo("run-1", {"action": "deploy", "target": "main", "who": "bob", "started": "2026-12-03T07:05:00Z"}, None, 1.0, "build: " + "x" * 300, "web-1")
    state = DeployState("web-1", "/srv/app", True, "r2", ["r1", "r2"], journal=journal, runs=[running])
    rows = rows_deploys([(("deploys", "web-1"), SourceResult(data=state))])
    assert len(rows) == 4 and SPEC.count(rows) == 2 and SPEC.noun == "journal records"
    assert len(str(rows[0].cells[5])) <= 72 and "by bob · " in str(rows[0].cells[5])
    assert "enter or w: watch" in str(rows[0].cells[5])
