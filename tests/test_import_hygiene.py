"""The core never imports Textual, and the console's first frame is drawn without the modules it does
not show (both checked in a fresh interpreter)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import opsconsole

UI_MODULES = {
    "opsconsole.app",
    "opsconsole.console_flow",
    "opsconsole.commands.console",
    "opsconsole.palette",
    "opsconsole.messages",
}
UI_PACKAGES = ("opsconsole.screens", "opsconsole.panes", "opsconsole.widgets")


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(opsconsole.__path__, "opsconsole."):
        if info.name in UI_MODULES or info.name.startswith(UI_PACKAGES) or info.name == "opsconsole.__main__":
            continue
        names.append(info.name)
    return names


def test_core_modules_do_not_import_textual() -> None:
    modules = core_modules()
    assert "opsconsole.profiles" in modules and "opsconsole.secrets" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"core imported textual: {done.stdout}"


# What the console's first frame (the environments) is drawn without: the SDKs and clients of every
# source, the action layer and the panes' tab widgets load just after it (bench/RESULTS.md, issue 34).
NOT_BEFORE_FIRST_FRAME = (
    "httpx",
    "asyncssh",
    "docker",
    "paramiko",
    "fabric",
    "invoke",
    "keyring",
    "cryptography",
    "statistics",
    "opsconsole.actions.registry",
    "opsconsole.backends.ssh",
    "opsconsole.backends.sentry",
    "opsconsole.backends.docker_engine",
    "opsconsole.backends.supervisor",
    "opsconsole.palette",
    "opsconsole.screens.main_tabs",
    "textual.widgets._tabbed_content",
)


def test_the_first_frame_loads_no_client_sdk_action_layer_or_tabs(tmp_path: Path) -> None:
    """The console opened as `opsconsole --profile P` on a profile with a local host, an SSH host
    with deploys, Docker and Sentry: the modules loaded when its first frame is up."""
    profile = tmp_path / "realistic.toml"
    profile.write_text(
        "\n".join(
            [
                "[environments.dev]",
                'hosts = ["local"]',
                "[environments.dev.supervisor]",
                'url = "unix:///nonexistent/supervisor.sock"',
                "[environments.dev.docker]",
                'url = "unix:///nonexistent/docker.sock"',
                "[environments.staging]",
                'hosts = ["deploy@127.0.0.1:9"]',
                "[environments.staging.supervisor]",
                'url = "unix:///var/run/supervisor.sock"',
                "[environments.staging.deploy]",
                'path = "/srv/shop"',
                'repo = "https://example.invalid/shop.git"',
                "[environments.staging.sentry]",
                'url = "http://127.0.0.1:9"',
                'organization = "acme"',
                'project = "shop"',
                'token = { secret = "hygiene-sentry" }',
            ]
        )
        + "\n"
    )
    code = (
        "import sys\n"
        "from opsconsole.app import OpsConsoleApp\n"
        "seen = []\n"
        "def first_frame(self):\n"
        "    seen.extend(sys.modules)\n"
        "    self.exit()\n"
        "OpsConsoleApp._after_first_frame = first_frame\n"
        "from opsconsole.cli import main\n"
        f"code = main(['--profile', {str(profile)!r}])\n"
        "print('modules:' + ','.join(seen))\n"
        "sys.exit(code)\n"
    )
    env = {
        **os.environ,
        "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver",
        "OPSCONSOLE_SECRET_HYGIENE_SENTRY": "not-a-real-token",
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("modules:"))
    loaded = set(line.removeprefix("modules:").split(","))
    assert "opsconsole.screens.main" in loaded  # the first frame was drawn by the real start path
    early = sorted(
        m for m in loaded if any(m == name or m.startswith(name + ".") for name in NOT_BEFORE_FIRST_FRAME)
    )
    assert early == [], f"loaded before the first frame: {early}"
