"""`opsconsole status [--env ENV] [--json] [--stats]`: one snapshot of every configured source."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from opsconsole.errors import ExitCode
from opsconsole.profiles import load
from opsconsole.sanitize import clean
from opsconsole.snapshot import Backends, EnvSnapshot, SourceResult, collect, snapshot_json


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="one snapshot of every source (exit 4 if any was unreachable)")
    parser.add_argument(
        "--env", "-e", action="append", dest="envs", help="environment (repeatable; default all)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema in README)")
    parser.add_argument("--stats", action="store_true", help="also sample container CPU%% and memory (~1 s)")
    parser.set_defaults(handler=cmd_status)


def _line(source: SourceResult[Any], ok_text: str) -> str:
    if not source.configured:
        return "not configured"
    if source.error:
        return f"ERROR {clean(source.error)}"
    return ok_text


def render(snapshots: dict[str, EnvSnapshot]) -> str:
    out: list[str] = []
    for name, snap in snapshots.items():
        out.append(f"== {name}")
        for host, hs in snap.hosts.items():
            out.append(f"  {host}")
            procs = hs.supervisor.data or []
            bad = [p for p in procs if p.state != "RUNNING" and p.state != "STOPPED"]
            out.append(
                "    supervisor: "
                + _line(
                    hs.supervisor,
                    f"{sum(p.running for p in procs)}/{len(procs)} running"
                    + (f", {len(bad)} in trouble" if bad else ""),
                )
            )
            for proc in procs:
                if proc.state != "RUNNING":
                    out.append(f"      {clean(proc.full_name):<32} {proc.state:<9} {clean(proc.description)}")
            containers = hs.docker.data or []
            unhealthy = [c for c in containers if c.health == "unhealthy"]
            out.append(
                "    docker:     "
                + _line(
                    hs.docker,
                    f"{sum(c.state == 'running' for c in containers)}/{len(containers)} running"
                    + (f", {len(unhealthy)} unhealthy" if unhealthy else ""),
                )
            )
            state = hs.deploys.data
            deploy_text = (
                "no deploys yet"
                if state is None or not state.exists
                else f"current {state.current or 'none'}, {len(state.releases)} releases"
            )
            if state is not None and state.lock:
                deploy_text += f", LOCKED {state.lock.describe()}"
            out.append("    deploys:    " + _line(hs.deploys, deploy_text))
            for warning in state.warnings if state is not None else []:
                out.append(f"      warning: {clean(warning)}")
            if hs.files.configured:
                files = hs.files.data or []
                missing = [f.path for f in files if not f.exists]
                out.append(
                    "    log files:  " + _line(hs.files, f"{len(files) - len(missing)}/{len(files)} present")
                )
        page = snap.sentry.data
        out.append(
            "  sentry:       " + _line(snap.sentry, f"{len(page.issues) if page else 0} unresolved issues")
        )
        if page:
            for issue in page.issues[:5]:
                out.append(
                    f"      {clean(issue.short_id):<14} {issue.level:<7} {issue.count:>6}x  {clean(issue.title, 60)}"
                )
            for note in page.notes:
                out.append(f"      note: {clean(note)}")
        if snap.health.configured:
            results = snap.health.data or []
            failing = [h for h in results if not h.ok]
            out.append(
                "  health:       " + _line(snap.health, f"{len(results) - len(failing)}/{len(results)} ok")
            )
            for check in results:
                mark = "ok  " if check.ok else "FAIL"
                detail = (
                    f"{check.status} in {check.latency_ms:.0f} ms"
                    if check.status is not None and check.latency_ms is not None
                    else str(check.error)
                )
                out.append(f"      {mark} {clean(check.url)}  {clean(detail)}")
        else:
            out.append("  health:       not configured")
        if snap.prometheus.configured:
            from opsconsole.backends.prometheus import human

            prom = snap.prometheus.data
            out.append(
                "  prometheus:   " + _line(snap.prometheus, f"{len(prom.series) if prom else 0} queries")
            )
            for label, series in (prom.series if prom else {}).items():
                note = f"  ({clean(series.note, 200)})" if series.note else ""
                out.append(f"      {clean(label, 22):<22} {human(series.value)}{note}")
        if snap.ci.configured:
            report = snap.ci.data
            out.append("  ci:           " + _line(snap.ci, "checks of what runs and of the branch head"))
            if report is not None:
                for label, value in (
                    (f"running {(report.commit or '?')[:12]}", report.current),
                    (f"head of {report.branch}", report.head),
                ):
                    text = value.summary() if value is not None and not isinstance(value, str) else str(value)
                    out.append(f"      {clean(label):<22} {clean(text, 200)}")
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    names = args.envs or list(profile.environments)
    for name in names:
        profile.env(name)  # unknown names are a usage error (exit 2)
    backends = Backends(profile)
    started = time.monotonic()
    try:
        snapshots = collect(backends, names, stats=args.stats)
        elapsed = time.monotonic() - started
    finally:
        backends.close()
    errors = [e for snap in snapshots.values() for e in snap.errors()]
    if args.json:
        data = snapshot_json(snapshots)
        data["profile"] = profile.name
        data["elapsed_seconds"] = round(elapsed, 3)
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(snapshots))
        if errors:
            print(f"\n{len(errors)} source(s) unreachable; everything else above is live.", file=sys.stderr)
    return ExitCode.UNREACHABLE if errors else ExitCode.OK
