"""`opsconsole metrics ENV`: DORA delivery metrics from the deploy journals of every host."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from opsconsole.errors import ExitCode, UsageError
from opsconsole.metrics import per_week_text
from opsconsole.profiles import load
from opsconsole.sanitize import clean


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "metrics",
        help="DORA delivery metrics from the deploy journals",
        description="Deployment frequency, lead time, change failure rate and recovery time, computed "
        "from the journals of every host of the environment (no git, no external service).",
    )
    parser.add_argument("env", metavar="ENV", help="environment")
    parser.add_argument("--since", default="90d", help="window start: 90d, 12w, 36h or a date (default 90d)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from opsconsole.backends.clients import Backends
    from opsconsole.backends.releases import read_journal
    from opsconsole.metrics import compute, parse_since
    from opsconsole.sources.fanout import run_with_deadline

    profile = load(args.profile)
    env = profile.env(args.env)
    if env.deploy is None:
        raise UsageError(
            f"environment '{env.name}' has no [deploy] section: no journal to read", "Not configured"
        )
    now = datetime.now(UTC)
    try:
        since = parse_since(args.since, now)
    except ValueError as exc:
        raise UsageError(str(exc), "Bad --since") from None
    backends = Backends(profile)
    try:
        tasks: dict[Any, Callable[[], Any]] = {
            spec.raw: partial(read_journal, backends.host(spec), env.deploy) for spec in env.hosts
        }
        timeout = max(profile.defaults.timeout, 30.0)
        results = run_with_deadline(tasks, time.monotonic() + timeout + 1, lambda h: f"{h}: timed out")
    finally:
        backends.close()
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    errors: list[str] = []
    for result in results.values():
        if result.error or result.data is None:
            errors.append(str(result.error))
            continue
        records.extend(result.data[0])
        warnings.extend(result.data[1])
    data = compute(env.name, records, since, now)
    data["warnings"] = warnings
    data["errors"] = errors
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print(render(data))
    return ExitCode.UNREACHABLE if errors else ExitCode.OK


def render(data: dict[str, Any]) -> str:
    bands = data["bands"]

    def band(key: str) -> str:
        return f"  [{bands[key]}]" if bands.get(key) else ""

    lead, cfr, rec, freq = (
        data["lead_time_hours"],
        data["change_failure_rate"],
        data["recovery_hours"],
        data["deployment_frequency"],
    )
    lines = [
        f"{data['environment']}: delivery from {data['since'][:10]} to {data['until'][:10]} ({bands['source']} bands)",
        f"  deployments           {data['deployments']} ({per_week_text(freq['per_week'])} a week, {freq['bucket']}){band('deployment_frequency')}",
        "  lead time             "
        + (
            f"median {lead['median']} h, p90 {lead['p90']} h over {lead['changes']} changes"
            if lead["median"] is not None
            else "no changes"
        )
        + band("lead_time"),
        "  change failure rate   "
        + (
            f"{cfr['value'] * 100:.1f} % ({cfr['failed']} of {cfr['total']})"
            if cfr["value"] is not None
            else "no deployments"
        )
        + band("change_failure_rate"),
        "  recovery time         "
        + (
            f"median {rec['median']} h over {rec['incidents']} failures"
            if rec["median"] is not None
            else "no failure recovered"
        )
        + band("recovery"),
    ]
    lines += [f"  warning: {clean(w)}" for w in data["warnings"]]
    lines += [f"  ERROR {clean(e)}" for e in data["errors"]]
    return "\n".join(lines)
