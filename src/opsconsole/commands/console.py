"""`opsconsole` with no subcommand (or `opsconsole console`): open the console on a profile."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode, UsageError

if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace


def register(sub: Any) -> None:
    parser = sub.add_parser("console", help="open the console (the default with no command)")
    parser.add_argument("--theme", help="Textual theme name (e.g. textual-dark, nord, gruvbox)")
    parser.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace | SimpleNamespace) -> int:
    from opsconsole.app import CLEANUP_SECONDS, make_app
    from opsconsole.profiles import load

    profile = load(getattr(args, "profile", None))
    if profile.keymap:
        from opsconsole.profiles import check_keymap
        from opsconsole.screens.keymap import binding_ids

        check_keymap(profile, binding_ids())
    read_only = bool(getattr(args, "read_only", False))
    # `opsconsole serve` starts each browser's console with these (see serve.py)
    via = os.environ.get("OPSCONSOLE_VIA") or None
    remote = os.environ.get("OPSCONSOLE_REMOTE") or None
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
