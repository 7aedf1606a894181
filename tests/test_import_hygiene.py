"""The core never imports Textual (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
