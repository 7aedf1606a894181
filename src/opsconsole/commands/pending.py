"""`opsconsole pending ENV`: what a deploy would release (Capistrano's deploy:pending) and its CI state."""

from __future__ import annotations

import argparse
import json
from typing import Any

from opsconsole.errors import ExitCode
from opsconsole.profiles import load
from opsconsole.sanitize import clean


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "pending",
        help="the commits a deploy would release, migrations touched, and CI",
        description="Fetch the deploy mirror on the environment's first host and list the commits "
        "between the running release and REF (default: the profile's branch), newest first; flag "
        "migrations; show the CI state of REF's commit. Changes nothing on the hosts' releases.",
    )
    parser.add_argument("env", metavar="ENV", help="environment")
    parser.add_argument("--ref", help="git branch, tag or commit (default: the profile's branch)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_pending)


def cmd_pending(args: argparse.Namespace) -> int:
    from opsconsole.actions.deploy.host import require_deploy
    from opsconsole.actions.deploy.pending import JOURNALLED, what_goes_out
    from opsconsole.actions.deploy.plan import ci_line
    from opsconsole.actions.deploy.shell import validate_ref
    from opsconsole.backends.clients import Backends
    from opsconsole.errors import OpsError

    profile = load(args.profile)
    env = profile.env(args.env)
    config = require_deploy(env)
    ref = validate_ref(args.ref or config.branch)
    backends = Backends(profile)
    try:
        found, ci = what_goes_out(backends, env, ref, limit=JOURNALLED if args.json else None)
    finally:
        backends.close()
    if args.json:
        out: dict[str, Any] = {"environment": env.name, **found.to_json()}
        if isinstance(ci, OpsError):
            out["ci"] = {"error": ci.message}
        else:
            out["ci"] = ci.to_json() if ci is not None else None
        print(json.dumps(out, indent=2))
    else:
        for line in found.lines():
            print(clean(line))
        print(clean(ci_line(env.ci is not None, ci, False)))
    if found.error:
        return (
            ExitCode.UNREACHABLE
            if "timed out" in found.error or "connect" in found.error
            else ExitCode.FAILED
        )
    return ExitCode.OK
