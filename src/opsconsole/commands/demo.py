"""`opsconsole demo`: a real local sandbox, the console on it, and everything torn down on exit."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from opsconsole.errors import ExitCode


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="start a local sandbox (supervisord, a deployable app, a cache) and open the console on it",
    )
    parser.add_argument(
        "--no-console", action="store_true", help="start the sandbox, print its profile, wait for Ctrl+C"
    )
    parser.set_defaults(handler=cmd_demo)


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


FIRST_DEPLOY = "first deploy of demo-shop (builds a venv, migrates, builds CSS)"


def _say_other_terminal() -> None:
    # the sandbox trusted its profile and linked it from the user's data dir
    print(
        "opsconsole demo: from another terminal: opsconsole --profile demo status "
        "(or watch sandbox, or the console itself)",
        file=sys.stderr,
        flush=True,
    )


def _first_deploy_here(profile: Any, backends: Any) -> bool:
    """`--no-console`: the first deploy before the profile is printed, its output on stderr."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.deploy import DeployAction
    from opsconsole.actions.events import Outcome, OutputLine
    from opsconsole.actions.runner import ActionRun

    print(f"opsconsole demo: {FIRST_DEPLOY}…", file=sys.stderr)
    action = DeployAction(ActionContext(profile, backends), Target(env="sandbox", options={"reason": "demo setup"}))
    outcome: Outcome | None = None
    for event in ActionRun(action, approved=True).events():
        if isinstance(event, Outcome):
            outcome = event
        elif isinstance(event, OutputLine):
            print(f"  {event.line}", file=sys.stderr)
    if outcome is None or not outcome.ok:
        print(f"opsconsole demo: the first deploy failed: {outcome.message if outcome else '?'}", file=sys.stderr)
        return False
    return True


def _first_deploy_in_console(app: Any) -> None:
    """The console is on screen: the first deploy starts as a run of its own (in the Deploys pane,
    `w` watches it; a failure is announced like any run's). Approved: the demo asks for it."""
    from opsconsole.actions.runner import ActionRun

    action = app.make_action("deploy", "sandbox", reason="demo setup")
    app.start_run(ActionRun(action, approved=True), show=False)
    app.notify(f"The {FIRST_DEPLOY} is running: w watches it", title="Demo", timeout=10)


def cmd_demo(args: argparse.Namespace) -> int:
    from opsconsole.backends.clients import Backends
    from opsconsole.demo.sandbox import Sandbox
    from opsconsole.profiles import read_profile

    root = Path(tempfile.mkdtemp(prefix="opsconsole-demo-"))
    os.environ.setdefault("OPSCONSOLE_AUDIT_LOG", str(root / "audit.jsonl"))
    sandbox = Sandbox(root, log=lambda m: print(m, file=sys.stderr))
    previous = signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        print(f"opsconsole demo: starting the sandbox in {root}", file=sys.stderr)
        profile_path = sandbox.start()
        if sandbox.docker_note:
            print(f"opsconsole demo: {sandbox.docker_note}", file=sys.stderr)
        profile = read_profile(profile_path)[0]
        backends = Backends(profile)
        if args.no_console:
            if not _first_deploy_here(profile, backends):
                return ExitCode.FAILED
            _say_other_terminal()
            print(str(profile_path), flush=True)
            print("opsconsole demo: sandbox ready; Ctrl+C stops it", file=sys.stderr, flush=True)
            signal.pause()
            return ExitCode.OK
        from opsconsole.app import make_app

        _say_other_terminal()
        # the console comes up at once; the first deploy runs in it, in view (w watches it)
        app = make_app(profile, backends, on_started=_first_deploy_in_console)
        app.run()
        backends.close()
        return ExitCode.OK
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        print("opsconsole demo: stopping the sandbox…", file=sys.stderr)
        sandbox.stop()
