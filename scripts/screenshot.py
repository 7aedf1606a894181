"""Regenerate docs/screenshot.svg (the Processes pane) and docs/metrics.svg (the Metrics pane): the
console on the demo sandbox, once a deploy ran and Bugsink and Prometheus have data, saved by
Textual's screenshot feature.

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
from opsconsole.demo.sandbox import Sandbox
from opsconsole.profiles import load_profile
from opsconsole.snapshot import Backends

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
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
