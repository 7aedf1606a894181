"""`opsconsole serve`: the console in a browser (textual-serve), one read-only console per browser."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from opsconsole.errors import ExitCode, UsageError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve the console to browsers (read-only unless --allow-changes)",
        description="Serve the console over HTTP with textual-serve: each browser gets its own console "
        "on this profile. The URL carries a random token; requests without it, and WebSockets from "
        "another origin, are refused. Bind to loopback and reach it through an SSH tunnel, or put a "
        "reverse proxy with TLS in front and pass its URL with --public-url. With --allow-changes each "
        "browser states a name first, which the audit log records.",
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL browsers open (a reverse proxy's, e.g. https://ops.example.com): the only origin "
        "allowed to open a console, and the page's WebSocket URL; needed with --bind 0.0.0.0",
    )
    parser.add_argument(
        "--allow-changes",
        action="store_true",
        help="let browsers deploy, restart... (default: every browser's console is read-only)",
    )
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from opsconsole.profiles import load

    try:
        import textual_serve  # noqa: F401
    except ImportError:
        raise UsageError(
            "opsconsole serve needs textual-serve: pip install 'opsconsole[serve]'", "Not installed"
        ) from None
    from opsconsole.serve import is_loopback, make_server

    profile = load(args.profile)  # refuse a broken profile here, not in every browser
    if getattr(args, "read_only", False) and args.allow_changes:
        raise UsageError("--read-only and --allow-changes contradict each other", "Usage")
    server = make_server(
        str(profile.path), args.bind, args.port, args.allow_changes, public_url=args.public_url
    )
    if not is_loopback(args.bind):
        print(
            f"opsconsole serve: WARNING: listening on {args.bind}, not loopback: the page and the token "
            "travel unencrypted. Prefer --bind 127.0.0.1 and an SSH tunnel (ssh -L 8700:127.0.0.1:8700 "
            "bastion), or a reverse proxy with TLS in front.",
            file=sys.stderr,
        )
    mode = "changes allowed (--allow-changes)" if args.allow_changes else "read-only"
    print(f"opsconsole serve: profile {profile.name}, {mode}", flush=True)
    print(f"Open: {server.url}", flush=True)  # the one place the token is shown
    if args.allow_changes:
        print("Each browser states a name first; the audit log records it.", flush=True)
    print("Ctrl+C stops serving (the browsers' consoles end with it).", flush=True)
    server.serve()
    return ExitCode.OK
