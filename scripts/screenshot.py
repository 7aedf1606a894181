"""Regenerate docs/screenshot.svg (the Processes pane), docs/metrics.svg (the Metrics pane) and, for
the README's "On call", docs/timeline.svg (the Timeline pane) and docs/alerts.svg (the Alerts pane,
when Alertmanager is installed): the console on the demo sandbox, once a deploy ran and Bugsink and
Prometheus have data, saved by Textual's screenshot feature. Then docs/projects.svg: the overview of
`--all` over the demo's profile and two more projects (one healthy, one whose host never answers).

.venv/bin/python scripts/screenshot.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from opsconsole.actions.base import ActionContext, Target
from opsconsole.actions.deploy import DeployAction
from opsconsole.actions.runner import ActionRun
from opsconsole.app import make_app
from opsconsole.backends.clients import Backends
from opsconsole.demo.sandbox import Sandbox
from opsconsole.panes import pane_specs
from opsconsole.profiles import load_profile

DOCS = Path(__file__).resolve().parent.parent / "docs"


async def shoot(profile_path: Path) -> None:
    profile = load_profile(profile_path)
    app = make_app(profile)
    async with app.run_test(size=(130, 34)) as pilot:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(app.results["sandbox"]) < 5:
            await pilot.pause(0.2)
        await pilot.pause(2.5)  # container stats
        app.save_screenshot("screenshot.svg", str(DOCS))
        await pilot.press("6")
        await pilot.pause(1.0)
        app.save_screenshot("metrics.svg", str(DOCS))
        # the optional panes' number keys follow the profile's panes, as the tabs show them
        numbers = {spec.id: str(n) for n, spec in enumerate(pane_specs(profile), start=1) if n <= 9}
        for pane, name in (("timeline", "timeline.svg"), ("alerts", "alerts.svg")):
            if pane in numbers:
                await pilot.press(numbers[pane])
                await pilot.pause(1.5)
                app.save_screenshot(name, str(DOCS))


def projects_config(profile_path: Path, web_port: int) -> Path:
    """A config dir of three projects: the demo's, a healthy one, and one with a dead host."""
    config = Path(tempfile.mkdtemp(prefix="opsconsole-shot-projects-"))
    (config / "demo-shop.toml").write_text(profile_path.read_text())
    (config / "blog.toml").write_text(
        '[project]\nname = "blog"\n'
        f'[environments.production]\nhosts = ["local"]\nprotected = true\nhealth = ["http://127.0.0.1:{web_port}/"]\n'
        f'[environments.staging]\nhosts = ["local"]\nhealth = ["http://127.0.0.1:{web_port}/"]\n'
    )
    (config / "legacy-crm.toml").write_text(
        '[project]\nname = "legacy CRM"\n[defaults]\ntimeout = 2\n'
        '[environments.production]\nhosts = ["deploy@10.255.255.1"]\n'
        '[environments.production.deploy]\npath = "/srv/crm"\nrepo = "git@example.com:crm.git"\n'
    )
    return config


async def shoot_projects(config: Path) -> None:
    """The `--all` overview of the projects in `config`."""
    import os

    from opsconsole.app import ProjectsApp
    from opsconsole.profiles import load_all
    from opsconsole.sources.overview import Projects

    os.environ["OPSCONSOLE_CONFIG_DIR"] = str(config)
    app = ProjectsApp(Projects(load_all()))
    async with app.run_test(size=(130, 12)) as pilot:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(r.loaded or r.needs_me for r in app.projects.rows()):
            await pilot.pause(0.2)
        await pilot.pause(1.0)
        app.save_screenshot("projects.svg", str(DOCS))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="opsconsole-shot-"))
    sandbox = Sandbox(root)
    try:
        profile_path = sandbox.start()
        profile = load_profile(profile_path)
        backends = Backends(profile)
        ActionRun(
            DeployAction(ActionContext(profile, backends), Target(env="sandbox")), approved=True
        ).run_to_end()
        backends.close()
        deadline = time.monotonic() + 120  # Bugsink up, /boom errors reported, Prometheus scraped
        while time.monotonic() < deadline and not (root / "bugsink.dsn").exists():
            time.sleep(1)
        time.sleep(30)
        asyncio.run(shoot(profile_path))
        asyncio.run(shoot_projects(projects_config(profile_path, sandbox.web_port)))
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
