"""Many projects at once (`--all`): every profile of the config dir in one overview, against real
services: a local supervisord, the loopback sshd, and a host that never answers."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import harness

DEAD_TIMEOUT = 2


def write_projects(config: Path, supervisord: harness.Supervisord, sshd: harness.Sshd, dead_port: int) -> None:
    """shop (local supervisord, a protected read-only production, its own keymap), blog (over SSH),
    dead (a host that accepts and never answers) and broken (an invalid profile)."""
    config.mkdir(parents=True, exist_ok=True)
    releases = config.parent / "releases"
    (config / "shop.toml").write_text(
        f"""
[project]
name = "Shop"
[defaults]
refresh = 2
[keymap]
pane_2 = "f2"
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
[environments.production]
hosts = ["local"]
protected = true
read_only = true
[environments.production.supervisor]
url = "{supervisord.unix_url}"
[environments.production.deploy]
path = "{releases}/shop"
repo = "{releases}/repo"
"""
    )
    (config / "blog.toml").write_text(
        f"""
[project]
name = "Blog"
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 5
[environments.production]
hosts = ["{sshd.host}"]
[environments.production.deploy]
path = "{releases}/blog"
repo = "{releases}/repo"
"""
    )
    (config / "dead.toml").write_text(
        f"""
[project]
name = "Dead"
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = {DEAD_TIMEOUT}
[environments.production]
hosts = ["root@127.0.0.1:{dead_port}"]
[environments.production.deploy]
path = "/srv/dead"
repo = "{releases}/repo"
"""
    )
    (config / "broken.toml").write_text('[project]\nname = "Broken"\n[environments.production]\nhostz = []\n')


@pytest.fixture
def config(
    isolated_dirs: Path, supervisord: harness.Supervisord, sshd: harness.Sshd, blackhole: harness.Blackhole
) -> Path:
    folder = Path(os.environ["OPSCONSOLE_CONFIG_DIR"])
    write_projects(folder, supervisord, sshd, blackhole.port)
    return folder


def test_status_all_json_has_every_project_and_the_dead_one_fails_on_time(config: Path, run_cli: Any) -> None:
    started = time.monotonic()
    done = run_cli("status", "--all", "--json")
    took = time.monotonic() - started
    assert done.returncode == 4, done.stderr  # one source unreachable, one project not loaded
    data = json.loads(done.stdout)
    projects = data["projects"]
    assert set(projects) == {"shop", "blog", "dead", "broken"}
    assert set(projects["shop"]["environments"]) == {"staging", "production"}
    staging = projects["shop"]["environments"]["staging"]
    names = {p["name"] for p in staging["hosts"]["local"]["supervisor"]["processes"]}
    assert "counter:counter" in names or "counter" in {n.split(":")[-1] for n in names}
    assert staging["overview"]["sources"] == {"supervisor": "ok"}
    assert projects["shop"]["environments"]["production"]["overview"]["protected"] is True
    blog = projects["blog"]["environments"]["production"]
    assert blog["hosts"][next(iter(blog["hosts"]))]["deploys"]["error"] is None
    assert blog["overview"]["needs_attention"] is False
    dead = projects["dead"]["environments"]["production"]
    error = dead["hosts"][next(iter(dead["hosts"]))]["deploys"]["error"]
    assert error and "timed out" in error
    assert dead["overview"]["needs_attention"] is True and dead["overview"]["sources"] == {"deploys": "error"}
    assert projects["broken"]["error"] and "broken.toml:" in projects["broken"]["error"]
    # the dead host cost its own timeout, not the others' (and not a sum of them)
    assert data["elapsed_seconds"] < DEAD_TIMEOUT + 3, data["elapsed_seconds"]
    assert took < 30

    # the same with --all before the command, as text: what needs someone first
    text = run_cli("--all", "status")
    assert text.returncode == 4
    lines = [line for line in text.stdout.splitlines() if line and not line.startswith(" ")]
    assert lines[0].startswith("PROJECT")
    assert [line.split()[0] for line in lines[1:3]] == ["broken", "dead"]
    assert any(line.startswith("blog") and " ok " in line for line in lines)


def test_all_refuses_what_it_cannot_mean(config: Path, run_cli: Any) -> None:
    both = run_cli("--all", "--profile", "shop", "status")
    assert both.returncode == 2 and "--all and --profile" in both.stderr
    other = run_cli("--all", "deploy", "production")
    assert other.returncode == 2 and "--all works with the console" in other.stderr


def test_status_all_reads_an_extra_profiles_dir_and_says_when_there_is_none(
    tmp_path: Path, run_cli: Any, supervisord: harness.Supervisord
) -> None:
    empty = run_cli("status", "--all")
    assert empty.returncode == 2 and "--all found no profile" in empty.stderr
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "solo.toml").write_text(
        f'[environments.dev]\nhosts = ["local"]\n[environments.dev.supervisor]\nurl = "{supervisord.unix_url}"\n'
    )
    done = run_cli("status", "--all", "--json", env={"OPSCONSOLE_PROFILES_DIR": str(extra)})
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["projects"]) == ["solo"]


async def test_console_overview_opens_a_project_comes_back_and_jumps(config: Path) -> None:
    from textual.widgets import DataTable, TabbedContent

    from opsconsole.app import ProjectsApp
    from opsconsole.profiles import load_all
    from opsconsole.screens.main import MainScreen
    from opsconsole.screens.overview import OverviewScreen
    from opsconsole.sources.overview import Projects
    from test_console import pane_texts, wait_until

    app = ProjectsApp(Projects(load_all()))

    def table_rows() -> list[list[str]]:
        table = app.screen.query_one(DataTable)
        return [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]

    async with app.run_test(size=(160, 40)) as pilot:
        assert isinstance(app.screen, OverviewScreen)
        await wait_until(
            pilot,
            lambda: any(r[0] == "dead" and "✗ deploys" in r[2] for r in table_rows())
            and any(r[0] == "shop" and r[2].startswith("✓") for r in table_rows()),
            what="every project answered",
        )
        rows = table_rows()
        assert [r[0] for r in rows[:2]] == ["broken", "dead"]  # what needs someone first
        assert {(r[0], r[1].split()[0]) for r in rows} >= {
            ("shop", "staging"),
            ("shop", "production"),
            ("blog", "production"),
        }
        assert any(r[0] == "shop" and "⚑" in r[1] for r in rows)  # protected marked
        assert "broken.toml:" in next(r[7] for r in rows if r[0] == "broken")
        await pilot.press("n")  # only what needs me
        await wait_until(pilot, lambda: {r[0] for r in table_rows()} == {"broken", "dead"}, what="needs me")
        await pilot.press("n", "slash", *"blog")
        await wait_until(pilot, lambda: [r[0] for r in table_rows()] == ["blog"], what="the filter")
        await pilot.press("enter", "escape")
        await wait_until(pilot, lambda: len(table_rows()) == len(rows), what="the filter cleared")

        index = next(n for n, r in enumerate(table_rows()) if r[0] == "shop" and r[1] == "staging")
        app.screen.query_one(DataTable).move_cursor(row=index)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="the console")
        assert app.profile.name == "shop" and app.current_env == "staging"
        await wait_until(
            pilot, lambda: any("counter" in t for t in pane_texts(app, "processes")), what="shop's processes"
        )
        await pilot.press("f2")  # shop's own keymap: pane 2
        await wait_until(
            pilot, lambda: app.screen.query_one(TabbedContent).active == "tab-containers", what="keymap"
        )
        # its protections: production is read-only in this profile
        from opsconsole.actions.runner import prepare

        action = app.make_action("restart", "production", "supervisor:counter:counter", host="local")
        refusal = prepare(action).refusal
        assert refusal is not None and "read_only = true" in refusal.message
        assert action.ctx.profile.name == "shop" and action.ctx.backends is app.projects.get("shop").backends  # type: ignore[union-attr]

        await pilot.press("backspace")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen), what="the overview again")
        assert app.projects.get("shop") is not None and not app.projects.get("shop").full  # type: ignore[union-attr]

        await pilot.press("colon", *"project blog", "enter")
        await wait_until(
            pilot, lambda: isinstance(app.screen, MainScreen) and app.profile.name == "blog", what="blog"
        )
        assert app.current_env == "production"
        await pilot.press("f2")  # no keymap in blog: f2 is nothing here
        await pilot.pause(0.3)
        assert app.screen.query_one(TabbedContent).active != "tab-containers"
        await pilot.press("colon", *"project shop", "enter")  # from one project straight to another
        await wait_until(
            pilot, lambda: isinstance(app.screen, MainScreen) and app.profile.name == "shop", what="shop again"
        )
        await wait_until(
            pilot, lambda: any("counter" in t for t in pane_texts(app, "processes")), what="shop's panes again"
        )
        assert not app.projects.get("blog").full  # type: ignore[union-attr]
        await pilot.press("colon", *"projects", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen), what="back by :projects")
        await pilot.press("colon", *"project nope", "enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, OverviewScreen)
    app.projects.close()


def test_overview_in_tmux(config: Path, tmp_path: Path) -> None:
    from test_e2e_tmux import Tmux

    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {
        "NO_COLOR": "1",
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k.startswith("OPSCONSOLE_")},
    }
    session = Tmux([opsconsole, "--all"], env, size=(80, 24))
    try:
        screen = session.wait_for("need attention")
        assert "projects" in screen
        session.wait_for("✗ deploys")
        session.keys(":")
        session.wait_for("tab or")
        session.keys("project shop", "Enter")
        session.wait_for("counter:counter")
        session.keys("BSpace")
        session.wait_for("enter opens")
        session.keys("q")
        assert session.wait_gone()
    finally:
        session.kill()
