"""`opsconsole` with no subcommand (or `opsconsole console`): open the console on a profile."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from types import SimpleNamespace


def register(sub: Any) -> None:
    import argparse

    parser = sub.add_parser("console", help="open the console (the default with no command)")
    parser.add_argument(
        "--all", action="store_true", default=argparse.SUPPRESS, help="the overview of every project first"
    )
    parser.add_argument("--theme", help="Textual theme name (e.g. textual-dark, nord, gruvbox)")
    parser.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace | SimpleNamespace) -> int:
    from opsconsole.app import CLEANUP_SECONDS, OpsConsoleApp, make_app

    read_only = bool(getattr(args, "read_only", False))
    # `opsconsole serve` starts each browser's console with these (see serve.py)
    via = os.environ.get("OPSCONSOLE_VIA") or None
    remote = os.environ.get("OPSCONSOLE_REMOTE") or None
    app: OpsConsoleApp
    if getattr(args, "all", False):
        from opsconsole.app import ProjectsApp
        from opsconsole.profiles import load_all
        from opsconsole.sources.overview import Projects

        projects = Projects(load_all())
        try:
            app = ProjectsApp(projects, read_only=read_only, via=via, remote=remote)
        except BaseException:
            projects.close()
            raise
    else:
        from opsconsole.profiles import load

        profile = load(getattr(args, "profile", None))
        if profile.keymap:
            from opsconsole.profiles import check_keymap
            from opsconsole.screens.keymap import binding_ids

            check_keymap(profile, binding_ids())
        app = make_app(profile, read_only=read_only, via=via, remote=remote)
    theme = getattr(args, "theme", None) or os.environ.get("OPSCONSOLE_THEME")
    if theme:
        if theme not in app.available_themes:
            known = ", ".join(sorted(app.available_themes))
            raise UsageError(f"unknown theme '{theme}'; the themes are: {known}", "Unknown theme")
        app.theme = theme
    try:
        try:
            app.run()
        except OSError:  # the terminal went away (SIGHUP): the runs' clean-up still happens below
            app.exit_signal = app.exit_signal or signal.SIGHUP
            app.runs.cancel_all()
        pending = [s for s in app.runs.values() if not s.run.done.is_set()]
        if pending:
            _say(f"opsconsole: waiting for {len(pending)} running action(s) to stop and clean up …")
            left = app.runs.wait(CLEANUP_SECONDS)
            for state in left:
                _say(f"opsconsole: {state.title} did not finish cleaning up within {CLEANUP_SECONDS} s")
    finally:
        app.backends.close()
        projects_of = getattr(app, "projects", None)
        if projects_of is not None:
            projects_of.close()
    if app.exit_signal is not None:
        return 128 + app.exit_signal
    if app.return_code:  # Textual sets 1 when the app died of an unhandled exception (it printed it)
        _say("opsconsole: the console stopped on an unexpected error (its traceback is above): exit 1")
        return int(app.return_code)
    return ExitCode.OK


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass
