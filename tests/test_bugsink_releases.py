"""`n` in the Errors pane with Bugsink: only the issues first seen in the running release. Two real
deploys (local host) of the demo's own web app, which reports its /boom errors through `sentry_sdk`
to a real Bugsink under the release it names itself; the console names the running release from
the deploy state (`bugsink.release_format`) and shows only that release's new issue."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.profiles import load_profile
from test_actions import git
from test_bugsink import bugsink, client  # noqa: F401 - the fixture: this module's own Bugsink
from test_console import pane_keys, panes_built, wait_until

DEMO_APP = Path(__file__).resolve().parents[1] / "src" / "opsconsole" / "demo" / "files" / "app"
BOOM = "division by zero (the demo's /boom route)"


def demo_repo(tmp_path: Path) -> Path:
    """A git repository of the demo's web app, as the demo makes it (VERSION beside web.py)."""
    repo = tmp_path / "shop-src"
    shutil.copytree(DEMO_APP, repo, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q", "-b", "main")
    (repo / "VERSION").write_text("1.0.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "First shop")
    return repo


def deploy(run_cli: Any, path: Path, env: dict[str, str]) -> None:
    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def open_titles(server: Any) -> dict[str, str]:
    return {i.title: i.id for i in asyncio.run(client(server).issues()).issues}


def boom_in_current(tmp_path: Path, server: Any, title: str) -> None:
    """Run the deployed app from `current` as the demo's supervisord does, GET /boom, and wait until
    Bugsink holds the issue its sentry_sdk sent."""
    dsn = tmp_path / "bugsink.dsn"
    dsn.write_text(server.dsn)
    current = tmp_path / "srv" / "shop" / "current"
    port = harness.free_port()
    app = subprocess.Popen(
        [sys.executable, str(current / "web.py"), str(port)],
        cwd=current,
        env={**os.environ, "BUGSINK_DSN_FILE": str(dsn)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/boom", timeout=5)  # noqa: S310
            except urllib.error.HTTPError as exc:
                assert exc.code == 500
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo app did not answer"
                time.sleep(0.2)
        while title not in open_titles(server):
            assert time.monotonic() < deadline, f"Bugsink never got {title!r}"
            time.sleep(0.3)
    finally:
        app.terminate()
        app.wait(10)


@pytest.fixture
def two_deploys(tmp_path: Path, run_cli: Any, bugsink: Any) -> Iterator[tuple[Path, str, str, str]]:  # noqa: F811
    """Deploy 1, its /boom; deploy 2 (whose /boom says something new), its /boom. Yields the
    profile, the old issue's id, the new issue's id and the second deploy's commit."""
    repo = demo_repo(tmp_path)
    path = write_profile(
        tmp_path,
        f"""
[project]
name = "demo-shop"
[defaults]
timeout = 10
refresh = 30
[environments.staging]
hosts = ["local"]
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
build = ["true"]
[environments.staging.bugsink]
url = "{bugsink.url}"
project = {bugsink.project}
token = {{ secret = "bugsink-token" }}
""",
    )
    env = {"OPSCONSOLE_SECRET_BUGSINK_TOKEN": bugsink.token}
    deploy(run_cli, path, env)
    boom_in_current(tmp_path, bugsink, f"ZeroDivisionError: {BOOM}")

    web = repo / "web.py"
    web.write_text(web.read_text().replace(BOOM, "division by zero (1.1.0's new /boom)"))
    (repo / "VERSION").write_text("1.1.0\n")
    git(repo, "commit", "-q", "-am", "A new bug")
    sha = git(repo, "rev-parse", "HEAD")
    deploy(run_cli, path, env)
    boom_in_current(tmp_path, bugsink, "ZeroDivisionError: division by zero (1.1.0's new /boom)")
    titles = open_titles(bugsink)
    yield (
        path,
        titles[f"ZeroDivisionError: {BOOM}"],
        titles["ZeroDivisionError: division by zero (1.1.0's new /boom)"],
        sha,
    )


async def test_n_shows_only_the_issues_new_in_the_running_release_with_bugsink(
    two_deploys: tuple[Path, str, str, str],
    bugsink: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, old, new, sha = two_deploys
    monkeypatch.setenv("OPSCONSOLE_SECRET_BUGSINK_TOKEN", bugsink.token)
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(path.parent / "audit.jsonl"))
    app = make_app(load_profile(path))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await wait_until(pilot, lambda: set(pane_keys(app, "errors")) == {old, new}, what="both issues")
        await wait_until(pilot, lambda: bool(pane_keys(app, "deploys")), what="the Deploys pane's releases")
        await pilot.press("n")
        messages = [n.message for n in app._notifications]  # noqa: SLF001
        assert f"Errors: only issues new in demo-shop@{sha[:12]}" in messages, messages
        assert not any("No running release" in m for m in messages), messages
        await wait_until(pilot, lambda: pane_keys(app, "errors") == [new], what="only the new issue")
        await pilot.press("n")
        await wait_until(pilot, lambda: set(pane_keys(app, "errors")) == {old, new}, what="all again")


def test_bugsink_release_format_names_the_running_release_and_is_validated(
    tmp_path: Path, run_cli: Any
) -> None:
    from opsconsole.actions.deploy.verify import running_version
    from opsconsole.backends.releases import DeployState

    base = """
[environments.staging]
hosts = ["local"]
[environments.staging.bugsink]
url = "http://127.0.0.1:1"
project = 1
token = { secret = "bugsink-token" }
"""
    good = write_profile(tmp_path, base + 'release_format = "{project}-{env}-{ref}-{sha12}"\n', name="good")
    state = DeployState(
        host="local",
        path="/srv/shop",
        exists=True,
        current="20260101T000000Z",
        journal=[
            {
                "event": "deploy",
                "release": "20260101T000000Z",
                "commit": "0123456789abcdef0123",
                "ref": "feature/cart",
            }
        ],
    )
    staging = load_profile(good).env("staging")
    assert running_version(staging, "shop", state) == "shop-staging-feature-cart-0123456789ab"

    bad = write_profile(tmp_path, base + 'release_format = "shop {sha}"\n', name="bad")
    refused = run_cli("--profile", str(bad), "profile", "validate", str(bad))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "environments.staging.bugsink.release_format" in refused.stderr
