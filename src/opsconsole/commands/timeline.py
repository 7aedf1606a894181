"""`opsconsole timeline ENV [--since 6h] [--json]`: what changed and what broke, newest first.

One collect of the environment's sources (as `status` does), merged by `sources/timeline.py`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from opsconsole.backends.clients import Backends
from opsconsole.errors import ExitCode, UsageError
from opsconsole.profiles import load
from opsconsole.sources import timeline
from opsconsole.sources.model import ReadModel

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """`90s`, `30m`, `6h`, `2d` (a bare number: hours) to seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise UsageError(f"--since {text!r}: say how far back as 30m, 6h or 2d", "Usage")
    return float(match.group(1)) * UNITS[match.group(2) or "h"]


def register(sub: Any) -> None:
    parser = sub.add_parser("timeline", help="deploys, actions, restarts, errors and alerts, newest first")
    parser.add_argument("env", metavar="ENV", help="environment")
    parser.add_argument("--since", default="6h", help="how far back (30m, 6h, 2d; default 6h)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_timeline)


def render(line: timeline.Timeline, now: float) -> str:
    out = []
    for e in line.entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        who = f"  by {e.who}" if e.who else ""
        host = f"  [{e.host}]" if e.host else ""
        out.append(f"{when}  {e.kind:<8} {e.summary}{who}{host}")
    if not line.entries:
        out.append("nothing on the timeline in this window")
    for note in line.missing:
        out.append(f"missing: {note}")
    return "\n".join(out)


def cmd_timeline(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    env = profile.env(args.env)  # an unknown name is a usage error (exit 2)
    window = parse_since(args.since)
    backends = Backends(profile)
    model = ReadModel(backends)
    try:
        state = model.collect([env.name])
    finally:
        model.close()
        backends.close()
    now = time.time()
    line = timeline.build(state.of(env.name), now, since=now - window)
    if args.json:
        data = {"environment": env.name, "since": timeline.stamp(now - window), **line.to_json()}
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(line, now))
    return ExitCode.UNREACHABLE if line.missing else ExitCode.OK
