"""The `opsconsole` command line: subcommands over the core; no subcommand opens the console."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from opsconsole import __version__
from opsconsole.errors import ExitCode, OpsError

if TYPE_CHECKING:  # argparse loads only for subcommands: the console's start-up does without it
    import argparse


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from opsconsole.commands import (
        actions,
        console,
        demo,
        metrics,
        pending,
        profile,
        secret,
        serve,
        status,
        timeline,
    )

    parser = argparse.ArgumentParser(
        prog="opsconsole",
        description="Operations console for apps on plain servers: Supervisor, Docker, deploys, Sentry.",
        epilog="Exit codes: 0 done, 1 action failed, 2 usage or profile error, "
        "3 refused (read-only, lock held, confirmation missing), 4 host or service unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"opsconsole {__version__}")
    parser.add_argument("--profile", "-P", metavar="NAME|PATH", help="profile to use (default: discovery)")
    parser.add_argument("--read-only", action="store_true", help="refuse every action that changes anything")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every project of the config dir (and $OPSCONSOLE_PROFILES_DIR): the console's overview, "
        "or `status --all`",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (profile, secret, status, timeline, actions, pending, metrics, console, serve, demo):
        module.register(sub)
    _accept_global_options(parser)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """A subcommand without a description of its own is described by its one-line help, so that
    `opsconsole X --help` always says what X does."""
    import argparse

    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                text = str(helps[name])
                child.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe(child)


def _accept_global_options(parser: argparse.ArgumentParser) -> None:
    """`--profile` and `--read-only` work after the subcommand too (`opsconsole secret check
    --profile example`), at any depth; given there, they override the value before it."""
    import argparse

    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in dict.fromkeys(action.choices.values()):
            known = child._option_string_actions
            if "--profile" not in known:
                child.add_argument(
                    "--profile", "-P", metavar="NAME|PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                )
            if "--read-only" not in known:
                child.add_argument(
                    "--read-only", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                )
            _accept_global_options(child)


def _console_fast_path(args_list: list[str]) -> SimpleNamespace | None:
    """`opsconsole [--profile P] [--read-only]` opens the console without building every subcommand's
    parser (and importing the modules behind them): start-up is what an on-call engineer waits for."""
    rest = list(args_list)
    values: dict[str, object] = {"profile": None, "read_only": False, "theme": None, "all": False}
    while rest:
        item = rest.pop(0)
        if item == "--read-only":
            values["read_only"] = True
        elif item == "--all":
            values["all"] = True
        elif item in ("--profile", "-P") and rest:
            values["profile"] = rest.pop(0)
        elif item.startswith("--profile="):
            values["profile"] = item.split("=", 1)[1]
        else:
            return None  # anything else: the full parser decides
    return SimpleNamespace(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    fast = _console_fast_path(args_list)
    args: argparse.Namespace | SimpleNamespace
    if fast is not None:
        args = fast
    else:
        parser = build_parser()
        args = parser.parse_args(args_list)
    # read-only is decided here, once, and travels in the action context from here on
    args.read_only = bool(getattr(args, "read_only", False)) or os.environ.get("OPSCONSOLE_READ_ONLY") == "1"
    handler = getattr(args, "handler", None)
    if handler is None:
        from opsconsole.commands.console import run_console

        handler = run_console
    try:
        _check_all(args, handler)
        try:
            return int(handler(args))
        except OpsError as exc:
            if not _trusted_now(exc):
                raise
            return int(handler(args))  # nothing ran before the profile loaded: run it once more
    except OpsError as exc:
        from opsconsole.secrets import redact

        print(f"opsconsole: {exc.title.lower()}: {redact(exc.message)}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("opsconsole: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return int(ExitCode.OK)


def _check_all(args: argparse.Namespace | SimpleNamespace, handler: object) -> None:
    """`--all` opens the overview or prints `status --all`; with anything else it is a usage error."""
    if not getattr(args, "all", False):
        return
    from opsconsole.errors import UsageError

    name = getattr(handler, "__name__", "")
    if name not in ("run_console", "cmd_status"):
        raise UsageError(
            "--all works with the console (`opsconsole --all`) and `opsconsole status --all`; "
            "other commands act on one project: pass --profile NAME",
            "Usage",
        )
    if getattr(args, "profile", None):
        raise UsageError("--all and --profile exclude each other: --all reads every profile", "Usage")


def _trusted_now(exc: OpsError) -> bool:
    """An untrusted profile, in a terminal: show what it would reach and ask. True once trusted."""
    from opsconsole.profiles.trust import UntrustedProfile, reach, record_trust

    if not isinstance(exc, UntrustedProfile) or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    say = sys.stderr.write
    say(f"opsconsole: the profile {exc.profile.path} is not trusted: {exc.why}.\n")
    say("A profile is code. Trusting it lets opsconsole use, for this exact content:\n")
    for line in reach(exc.profile):
        say(f"  {line}\n")
    say(f"Read it first if unsure (opsconsole profile show {exc.profile.path}).\n")
    sys.stderr.flush()
    try:
        answer = input("Trust this profile? Type 'yes' to trust it: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("yes", "y"):
        return False
    record_trust(exc.profile.path, exc.content)
    say(f"opsconsole: trusted {exc.profile.path} (a change to the file makes it untrusted again)\n")
    return True
