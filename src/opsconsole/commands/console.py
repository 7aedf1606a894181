"""`opsconsole` with no subcommand (or `opsconsole console`): open the console on a profile."""

from __future__ import annotations

import argparse
import os
from typing import Any

from opsconsole.errors import ExitCode


def register(sub: Any) -> None:
    parser = sub.add_parser("console", help="open the console (the default with no command)")
    parser.add_argument("--theme", help="Textual theme name (e.g. textual-dark, nord, gruvbox)")
    parser.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace) -> int:
    from opsconsole.app import make_app
    from opsconsole.profiles import load

    profile = load(getattr(args, "profile", None))
    read_only = bool(getattr(args, "read_only", False)) or os.environ.get("OPSCONSOLE_READ_ONLY") == "1"
    app = make_app(profile, read_only=read_only)
    theme = getattr(args, "theme", None) or os.environ.get("OPSCONSOLE_THEME")
    if theme:
        app.theme = theme
    try:
        app.run()
    finally:
        app.backends.close()
    return ExitCode.OK
