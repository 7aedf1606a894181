"""The read model (sources/): one refresh reads each host's deploy state once (CI reuses the first
host's, in its turn), readers of the state never see a mapping change under them, and what breaks
in the console's workers is shown, never swallowed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from github_server import GitHubServer, Run
from opsconsole.backends.clients import Backends
from opsconsole.profiles import load_profile
from opsconsole.sources import catalog
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.model import ReadModel
from opsconsole.sources.state import FleetState
from test_actions import git
from test_release import ci_section, env, profile, repo  # noqa: F401 - fixtures


def test_ci_reuses_the_first_hosts_deploy_state_in_its_turn(
    run_cli: Any,
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    github_server: GitHubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import opsconsole.backends.releases as releases

    path = profile(tmp_path, repo, ci_section(github_server))
    github_server.set_runs(git(repo, "rev-parse", "HEAD"), Run("test"))
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env).returncode == 0
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reads: list[str] = []
    real = releases.read_state

    def counted(host: Any, config: Any) -> Any:
        reads.append(threading.current_thread().name)
        return real(host, config)

    monkeypatch.setattr(releases, "read_state", counted)
    loaded = load_profile(path)
    staging = loaded.env("staging")
    assert catalog.host_of(staging, ("ci",)) == "local"  # fetched in the first host's turn
    backends = Backends(loaded)
    model = ReadModel(backends)
    try:
        results = model.collect(["staging"]).of("staging")
    finally:
        model.close()
        backends.close()
    assert results[("deploys", "local")].ok and results[("ci",)].ok, results
    report = results[("ci",)].data
    assert report is not None and report.current.state == "success"
    assert len(reads) == 1, reads  # one read of the deploy state, shared by deploys and CI


def test_a_reader_of_the_state_never_sees_its_mapping_change() -> None:
    from opsconsole.profiles import parse_profile_text

    loaded = parse_profile_text('[environments.staging]\nhosts = ["local"]\n', Path("p.toml"), "p")
    state = FleetState(loaded)
    heard: list[tuple[str, tuple[str, ...]]] = []
    state.subscribe(lambda where, key: heard.append((where, key)))
    state.put("staging", ("health",), SourceResult(data=[]))
    taken = state.of("staging")
    for n in range(50):  # a worker storing results while the UI iterates what it took
        state.put("staging", ("supervisor", f"h{n}"), SourceResult(error="x"))
        assert list(taken) == [("health",)]
    assert len(state.of("staging")) == 51 and len(heard) == 51


def test_an_unchanged_process_list_only_freshens_the_stored_result() -> None:
    from opsconsole.backends.supervisor import ProcessInfo
    from opsconsole.profiles import parse_profile_text

    loaded = parse_profile_text('[environments.staging]\nhosts = ["local"]\n', Path("p.toml"), "p")
    state = FleetState(loaded)
    heard: list[Any] = []
    state.subscribe(lambda _where, key: heard.append(key))

    def procs(uptime_text: str) -> list[ProcessInfo]:
        return [ProcessInfo("local", "web", "web", "RUNNING", 12, 100, 200, 0, uptime_text, "", "", "")]

    assert state.put("staging", ("supervisor", "local"), SourceResult(data=procs("pid 12, uptime 0:01:40"), fetched_at=1))
    assert not state.put(
        "staging", ("supervisor", "local"), SourceResult(data=procs("pid 12, uptime 0:01:45"), fetched_at=2)
    )
    assert state.of("staging")[("supervisor", "local")].fetched_at == 2 and len(heard) == 1


async def test_a_bug_in_a_plan_is_shown_and_d_says_it_is_preparing(
    tmp_path: Path,
    repo: Path,  # noqa: F811
    env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.actions.registry import ACTIONS
    from opsconsole.app import make_app
    from test_console import panes_built, wait_until

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    started = threading.Event()
    release = threading.Event()

    def broken_plan(self: Any) -> Any:
        started.set()
        release.wait(10)
        raise RuntimeError("a bug in plan()")

    monkeypatch.setattr(ACTIONS["deploy"], "plan", broken_plan)
    app = make_app(load_profile(profile(tmp_path, repo)), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("D")
        await wait_until(pilot, started.is_set, what="the plan to start")
        await wait_until(
            pilot, lambda: any(n.title == "Preparing plan…" for n in app._notifications), what="preparing"
        )
        release.set()
        await wait_until(
            pilot,
            lambda: any("Internal error" in n.title and "a bug in plan()" in n.message for n in app._notifications),
            what="the worker's error",
        )
        assert not any(n.title == "Preparing plan…" for n in app._notifications)
