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
