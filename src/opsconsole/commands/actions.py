"""CLI subcommands generated from the action registry, plus `releases ENV`.

Every changing command takes --dry-run, --yes, --confirm ENV and --host HOST (and the global
--read-only); output streams live as the action runs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from opsconsole.actions.base import Action, ActionContext, Target
from opsconsole.actions.deploy.verify import Verifier
from opsconsole.actions.events import Event, Notice, Outcome, describe
from opsconsole.actions.registry import ACTIONS
from opsconsole.actions.runner import ActionRun, Prepared
from opsconsole.actions.watch import WatchAction
from opsconsole.backends.clients import Backends
from opsconsole.backends.releases import DeployState, read_state
from opsconsole.backends.runlogs import end_exit_code
from opsconsole.errors import ExitCode, UsageError
from opsconsole.profiles import load
from opsconsole.sanitize import clean
from opsconsole.sources.fanout import run_with_deadline


def register(sub: Any) -> None:
    for action_id, cls in ACTIONS.items():
        parser = sub.add_parser(action_id, help=cls.description or cls.title, description=cls.description)
        parser.add_argument("env", metavar="ENV", help="environment")
        if cls.target_arg:
            nargs = getattr(cls, "target_nargs", None)  # "+": several words (silence's matchers)
            parser.add_argument("target", metavar=cls.target_arg, help=cls.target_help, nargs=nargs)
        for option in cls.options:
            if option.kind == "flag":
                parser.add_argument(
                    *option.flags, dest=f"opt_{option.key}", action="store_true", help=option.help
                )
            else:
                parser.add_argument(
                    *option.flags,
                    dest=f"opt_{option.key}",
                    type=int if option.kind == "int" else str,
                    default=option.default,
                    metavar=option.metavar or option.key.upper(),
                    help=option.help,
                )
        parser.add_argument("--host", help="only this host of the environment")
        parser.add_argument(
            "--read-only", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        if cls.changes:
            parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
            parser.add_argument(
                "--yes", "-y", action="store_true", help="don't ask (needed when stdin is not a terminal)"
            )
            parser.add_argument(
                "--confirm", metavar="ENV", help="the environment's name, required for protected environments"
            )
        parser.set_defaults(handler=cmd_action, action_id=action_id)

    parser = sub.add_parser("releases", help="releases per host: current, bad, who deployed what")
    parser.add_argument("env", metavar="ENV", help="environment")
    parser.add_argument("--host", help="only this host")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_releases)


def build_action(args: argparse.Namespace, backends: Backends) -> Action:
    cls = ACTIONS[args.action_id]
    options = {
        key[4:]: value for key, value in vars(args).items() if key.startswith("opt_") and value is not None
    }
    name = getattr(args, "target", None)
    if isinstance(name, list):  # several words: the action reads them from its options
        options["matchers"] = name
        name = " ".join(name)
    target = Target(env=args.env, name=name, host=args.host, options=options)
    ctx = ActionContext(profile=backends.profile, backends=backends, read_only=bool(args.read_only))
    return cls(ctx, target)


class Printer:
    """Streams events to the terminal; lines are neutralised (no escape sequence gets through)."""

    def __init__(self, hosts: int, raw_lines: bool) -> None:
        self.prefix = hosts > 1
        self.raw_lines = raw_lines
        self.gone = False

    def __call__(self, event: Event) -> None:
        if self.gone:
            return
        try:
            self._print(event)
        except OSError:  # the terminal went away (EIO/EPIPE after a hang-up): keep running, quietly
            self.gone = True

    def notice(self, message: str) -> None:
        self(Notice(message))

    def _print(self, event: Event) -> None:
        seen = describe(event)
        if seen is None:
            return
        if seen.lines:
            if self.raw_lines:  # a log tail: the lines themselves, prefixed by host only with several
                lead = f"{seen.host}: " if self.prefix else ""
            else:
                lead = f"  {seen.host} | "
            sys.stdout.write("".join(f"{lead}{clean(line)}\n" for line in seen.lines))
            sys.stdout.flush()
        elif seen.notice:
            print(clean(seen.text), file=sys.stderr, flush=True)
        else:
            print(f"[{seen.host}] {clean(seen.text)}", flush=True)


def _ask(action: Action, prepared: Prepared) -> str | None:
    """In a terminal, once: y/N, or the typed name for a protected environment; the answer for
    `ActionRun.approve` (None: declined). The summary of the prepared plan is shown; `--dry-run`
    prints its exact commands."""
    env = action.env
    assert prepared.plan is not None
    print(prepared.plan.render_summary(), file=sys.stderr)
    print("  (the exact commands: the same command with --dry-run)", file=sys.stderr)
    try:
        if prepared.confirmation == "typed":
            return input(f"{env.name} is protected. Type '{env.name}' to confirm: ").strip()
        answer = input(f"{action.title} in {env.name}? [y/N] ").strip().lower()
        return "yes" if answer in ("y", "yes") else None
    except EOFError:
        return None


def cmd_action(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    backends = Backends(profile)
    try:
        action = build_action(args, backends)
        run = ActionRun(
            action, approved=bool(getattr(args, "yes", False)), confirm=getattr(args, "confirm", None)
        )
        prepared = run.prepare()  # the same core step the console's keys visit
        if isinstance(action, WatchAction) and action.target.options.get("json"):
            return watch_json(action)
        if action.changes and args.dry_run:
            print((prepared.plan or action.plan()).render())  # read-only refuses to run, not to show
            print("(dry run: nothing was changed)")
            return ExitCode.OK
        asked = prepared.refusal is None and prepared.confirmation != "none"
        answer = None
        if asked and not run.approved and run.confirm is None and sys.stdin.isatty():
            answer = _ask(action, prepared)
        run.approve(answer)
        printer = Printer(len(action.hosts), raw_lines=action.viewer == "log")
        with Interrupts(run, printer) as interrupts:
            outcome = _drive(run, printer)
        if outcome.ok:
            if action.viewer != "log":  # a log tail ends with its lines, not a summary
                _say(clean(outcome.message))
        else:
            _say(f"opsconsole: {clean(outcome.message)}", sys.stderr)
        if interrupts.signal is not None:
            return 128 + interrupts.signal
        if isinstance(action, WatchAction) and action.exit_code is not None:
            return action.exit_code  # the watched run's own exit code
        if action.target.options.get("verify"):
            verifier = action.follow_up(outcome)
            if isinstance(verifier, Verifier):
                return verify_deploy(action, verifier, args, printer)
    finally:
        backends.close()
    return ExitCode.OK if outcome.ok else int(outcome.exit_code)


def watch_json(action: WatchAction) -> int:
    """`watch --json`: the run log's records as they come (nothing running: the last run's end)."""
    code = 0
    try:
        if action.run_id is None:
            run_id, newest = action.choose()
            if run_id is None:
                if newest is not None:
                    print(json.dumps(newest.start))
                    if newest.end is not None:
                        print(json.dumps(newest.end))
                return ExitCode.OK
            action.run_id = run_id
        for record in action.records():
            print(json.dumps(record), flush=True)
            if record.get("type") == "end":
                code = end_exit_code(record)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    return code


def verify_deploy(action: Action, verifier: Verifier, args: argparse.Namespace, printer: Printer) -> int:
    """`deploy --verify`: wait for the verification window. Exit 0 verified; 1 failed (naming why);
    3 superseded (another deploy or rollback replaced the release during the window: not judged,
    nothing rolled back); 4 inconclusive (the error tracker did not answer, so it is not verified).
    With --auto-rollback a failed verification rolls back, only from the verified release and only
    while it is still current (an audited rollback run of its own, `--from` that release).
    `verifier` is the deploy's follow-up (`Action.follow_up`)."""
    release = verifier.status.release
    shown: list[Any] = ["", 0.0]  # the facts last printed, and when

    def progress(status: Any) -> None:
        facts = status.facts()
        if status.verdict is None and facts == shown[0] and time.monotonic() - shown[1] < 30:
            return
        shown[:] = [facts, time.monotonic()]
        if status.verdict is None:
            _say(clean(status.line()), sys.stderr)

    try:
        status = verifier.run(progress)
    except KeyboardInterrupt:
        verifier.cancel.set()
        _say("opsconsole: verification interrupted; no verdict recorded", sys.stderr)
        return 128 + signal.SIGINT
    if status.verdict == "pass":
        _say(clean(status.line()))
        return ExitCode.OK
    _say(f"opsconsole: {clean(status.line())}", sys.stderr)
    if status.verdict == "superseded":
        return ExitCode.REFUSED
    if status.verdict == "inconclusive":
        return ExitCode.UNREACHABLE
    if not action.target.options.get("auto_rollback"):
        _say(f"roll back with: opsconsole rollback {action.env.name} --from {release}", sys.stderr)
        return ExitCode.FAILED
    rollback = ACTIONS["rollback"](
        ActionContext(
            profile=action.ctx.profile,
            backends=action.ctx.backends,
            via=action.ctx.via,
            remote=action.ctx.remote,
        ),
        Target(
            env=action.env.name,
            host=action.target.host,
            options={
                "auto_rollback": True,
                "from": release,  # never roll back a release this verification did not judge
                "reason": "verification failed: " + "; ".join(status.reasons),
            },
        ),
    )
    run = ActionRun(rollback, approved=True, confirm=getattr(args, "confirm", None))
    with Interrupts(run, printer):
        outcome = _drive(run, printer)
    if outcome.ok:
        _say(f"auto-rollback: {clean(outcome.message)}", sys.stderr)
    elif getattr(rollback, "superseded", None) is not None:
        _say(f"opsconsole: auto-rollback {clean(outcome.message)}", sys.stderr)
        return ExitCode.REFUSED
    else:
        _say(f"opsconsole: auto-rollback failed: {clean(outcome.message)}", sys.stderr)
    return ExitCode.FAILED


def _say(text: str, stream: Any = None) -> None:
    """Print, unless the terminal is gone (SIGHUP from a dropped SSH session): the run's cleanup and
    its journal and audit records matter more than its output."""
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP cancel the run exactly as Ctrl+C does: the running step's processes
    are killed, an unfinished release is removed, the journal and audit log record the interruption,
    the lock is released; then the command exits 128+signal."""

    def __init__(self, run: ActionRun, printer: Printer) -> None:
        self.run = run
        self.printer = printer
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C abandons the run
        if self.signal is None:
            self.signal = signum
            name = signal.Signals(signum).name
            hint = " (Ctrl+C again to abandon)" if signum == signal.SIGINT else ""
            self.printer.notice(f"{name}: cancelling, cleaning up{hint}")
        self.run.cancel()

    def __enter__(self) -> Interrupts:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _drive(run: ActionRun, printer: Printer) -> Outcome:
    for event in run.events():
        if isinstance(event, Outcome):
            return event
        printer(event)
    assert run.outcome is not None
    return run.outcome


def cmd_releases(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    env = profile.env(args.env)
    if env.deploy is None:
        raise UsageError(f"environment '{env.name}' has no [deploy] section", "Not configured")
    deploy = env.deploy
    hosts = [env.host(args.host)] if args.host else list(env.hosts)
    backends = Backends(profile)
    try:
        tasks: dict[Any, Callable[[], Any]] = {
            spec.raw: partial(read_state, backends.host(spec), deploy) for spec in hosts
        }
        results = run_with_deadline(
            tasks,
            time.monotonic() + profile.defaults.timeout * 2 + 0.5,
            lambda h: f"{h}: timed out after {profile.defaults.timeout:g} s",
        )
    finally:
        backends.close()
    data: dict[str, Any] = {}
    state_by_host: dict[str, DeployState] = {}
    errors = False
    for spec in hosts:
        result = results[spec.raw]
        if result.error or result.data is None:
            errors = True
            data[spec.raw] = {"error": result.error}
            continue
        state = result.data
        state_by_host[spec.raw] = state
        bad = state.bad_releases
        rows = []
        for release in state.releases:
            record = state.record_for(release)
            rows.append(
                {
                    "release": release,
                    "current": release == state.current,
                    "bad": release in bad,
                    "ref": record.get("ref"),
                    "commit": record.get("commit"),
                    "who": record.get("who"),
                    "outcome": record.get("outcome"),
                    "finished": record.get("finished"),
                }
            )
        data[spec.raw] = {
            "current": state.current,
            "releases": rows,
            "lock": state.to_json()["lock"],
            "history": state.recent(20),
            "warnings": state.warnings,
            "error": None,
        }
    if args.json:
        json.dump({"environment": env.name, "hosts": data}, sys.stdout, indent=2)
        print()
    else:
        for host, info in data.items():
            print(f"== {host}")
            if info.get("error"):
                print(f"  ERROR {clean(info['error'])}")
                continue
            lock = state_by_host[host].lock
            if lock is not None:
                advice = f"; break it with `opsconsole unlock {env.name}`" if lock.stale else ""
                print(f"  LOCKED {clean(lock.describe())}{advice}")
            for warning in info["warnings"]:
                print(f"  warning: {clean(warning)}")
            if not info["releases"]:
                print("  no releases")
            for row in info["releases"]:
                flags = ("current " if row["current"] else "") + ("BAD " if row["bad"] else "")
                if row["outcome"] is None:
                    flags += "unfinished "
                commit = (row["commit"] or "")[:12]
                print(
                    f"  {row['release']:<22} {flags:<12} {clean(str(row['ref'] or '')):<16} {commit:<13} {clean(str(row['who'] or ''))}"
                )
    return ExitCode.UNREACHABLE if errors else ExitCode.OK
