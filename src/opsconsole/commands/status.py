"""`opsconsole status [--env ENV] [--json] [--stats]`: one snapshot of every configured source."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from opsconsole.backends.clients import Backends
from opsconsole.errors import ExitCode
from opsconsole.human import counted
from opsconsole.profiles import Profile, load
from opsconsole.sanitize import clean
from opsconsole.sources.catalog import is_on, source, sources
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.model import ReadModel
from opsconsole.sources.overview import OverviewRow, Projects, sorted_rows
from opsconsole.sources.report import snapshot_json
from opsconsole.sources.state import FleetState

KNOWN = (
    "supervisor",
    "docker",
    "deploys",
    "files",
    "sentry",
    "health",
    "prometheus",
    "ci",
    "dora",
    "nginx",
    "systemd",
    "alerts",
)


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="one snapshot of every source (exit 4 if any was unreachable)")
    parser.add_argument(
        "--env", "-e", action="append", dest="envs", help="environment (repeatable; default all)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema in README)")
    parser.add_argument("--stats", action="store_true", help="also sample container CPU%% and memory (~1 s)")
    parser.add_argument(
        "--all",
        action="store_true",
        default=argparse.SUPPRESS,
        help="every project of the config dir (and $OPSCONSOLE_PROFILES_DIR): one overview",
    )
    parser.set_defaults(handler=cmd_status)


def _line(source: SourceResult[Any], ok_text: str) -> str:
    if not source.configured:
        return "not configured"
    if source.error:
        return f"ERROR {clean(source.error)}"
    return ok_text


def _of(state: FleetState, profile: Profile, env_name: str) -> Any:
    """`get(source, host=None)`: its result, or a not-configured one where the profile leaves it out."""
    env = profile.env(env_name)
    results = state.of(env_name)

    def get(name: str, host: str | None = None) -> SourceResult[Any]:
        src = source(name)
        if src is None or not is_on(env, src):
            return SourceResult(configured=False)
        return results.get((name, host) if host is not None else (name,), SourceResult(configured=False))

    return get


def render(state: FleetState, profile: Profile, env_names: list[str]) -> str:
    out: list[str] = []
    for name in env_names:
        get = _of(state, profile, name)
        out.append(f"== {name}")
        for spec in profile.env(name).hosts:
            host = spec.raw
            out.append(f"  {host}")
            supervisor = get("supervisor", host)
            procs = supervisor.data or []
            bad = [p for p in procs if p.state != "RUNNING" and p.state != "STOPPED"]
            out.append(
                "    supervisor: "
                + _line(
                    supervisor,
                    f"{sum(p.running for p in procs)}/{len(procs)} running"
                    + (f", {len(bad)} in trouble" if bad else ""),
                )
            )
            for proc in procs:
                if proc.state != "RUNNING":
                    out.append(f"      {clean(proc.full_name):<32} {proc.state:<9} {clean(proc.description)}")
            docker = get("docker", host)
            containers = docker.data or []
            unhealthy = [c for c in containers if c.health == "unhealthy"]
            out.append(
                "    docker:     "
                + _line(
                    docker,
                    f"{sum(c.state == 'running' for c in containers)}/{len(containers)} running"
                    + (f", {len(unhealthy)} unhealthy" if unhealthy else ""),
                )
            )
            deploys = get("deploys", host)
            deploy_state = deploys.data
            deploy_text = (
                "no deploys yet"
                if deploy_state is None or not deploy_state.exists
                else f"current {deploy_state.current or 'none'}, {len(deploy_state.releases)} releases"
            )
            if deploy_state is not None and deploy_state.lock:
                deploy_text += f", LOCKED {deploy_state.lock.describe()}"
            out.append("    deploys:    " + _line(deploys, deploy_text))
            for warning in deploy_state.warnings if deploy_state is not None else []:
                out.append(f"      warning: {clean(warning)}")
            files_result = get("files", host)
            if files_result.configured:
                files = files_result.data or []
                missing = [f.path for f in files if not f.exists]
                out.append(
                    "    log files:  " + _line(files_result, f"{len(files) - len(missing)}/{len(files)} present")
                )
            nginx_result = get("nginx", host)
            if nginx_result.configured:
                from opsconsole.sources.nginx import status_lines

                lines = [""] if nginx_result.error else status_lines(nginx_result.data)
                out.append("    nginx:      " + _line(nginx_result, lines[0]))
                out.extend(lines[1:])
            units_result = get("systemd", host)
            if units_result.configured:
                from opsconsole.sources.systemd import status_lines as unit_lines

                units = [] if units_result.error else unit_lines(units_result.data)
                out.append("    systemd:    " + _line(units_result, units[0] if units else ""))
                out.extend(f"      {line}" for line in units[1:])
        sentry = get("sentry")
        page = sentry.data
        tracker = "bugsink:" if profile.env(name).bugsink is not None else "sentry:"
        issues = counted(len(page.issues) if page else 0, "unresolved issues")
        out.append(f"  {tracker:<14}" + _line(sentry, issues))
        if page:
            for issue in page.issues[:5]:
                out.append(
                    f"      {clean(issue.short_id):<14} {issue.level:<7} {issue.count:>6}x  {clean(issue.title, 60)}"
                )
            for note in page.notes:
                out.append(f"      note: {clean(note)}")
        health = get("health")
        if health.configured:
            results = health.data or []
            failing = [h for h in results if not h.ok]
            out.append("  health:       " + _line(health, f"{len(results) - len(failing)}/{len(results)} ok"))
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
        prometheus = get("prometheus")
        if prometheus.configured:
            from opsconsole.backends.prometheus import human

            prom = prometheus.data
            out.append("  prometheus:   " + _line(prometheus, f"{len(prom.series) if prom else 0} queries"))
            for label, series in (prom.series if prom else {}).items():
                note = f"  ({clean(series.note, 200)})" if series.note else ""
                out.append(f"      {clean(label, 22):<22} {human(series.value)}{note}")
        ci = get("ci")
        if ci.configured:
            report = ci.data
            named = f"{report.title}: " if report is not None else ""
            out.append("  ci:           " + _line(ci, named + "checks of what runs and of the branch head"))
            if report is not None:
                for label, value in (
                    (f"running {(report.commit or '?')[:12]}", report.current),
                    (f"head of {report.branch}", report.head),
                ):
                    text = value.summary() if value is not None and not isinstance(value, str) else str(value)
                    out.append(f"      {clean(label):<22} {clean(text, 200)}")
        alerts = get("alerts")
        if alerts.configured:
            from opsconsole.sources.alerts import status_line

            out.append("  alerts:       " + _line(alerts, status_line(alerts.data)))
            for alert in alerts.data or []:
                muted = f" ({alert.shown_state})" if not alert.firing else ""
                name, severity = clean(alert.name, 30), clean(alert.severity, 9)
                out.append(f"      {name:<30} {severity:<9} {clean(alert.summary, 80)}{muted}")
        for src in sources():  # sources this text knows nothing particular of: one line each
            if src.name in KNOWN:
                continue
            for spec_key in ([spec.raw for spec in profile.env(name).hosts] if src.per_host else [None]):
                result = get(src.name, spec_key)
                if result.configured:
                    where = f"{src.title} ({spec_key})" if spec_key else src.title
                    out.append(f"  {clean(where, 40) + ':':<14}" + _line(result, "ok"))
    return "\n".join(out)


def cmd_status(args: argparse.Namespace) -> int:
    if getattr(args, "all", False):
        return status_all(args)
    profile = load(args.profile)
    names = args.envs or list(profile.environments)
    for name in names:
        profile.env(name)  # unknown names are a usage error (exit 2)
    backends = Backends(profile)
    model = ReadModel(backends)
    started = time.monotonic()
    try:
        state = model.collect(names, with_stats=args.stats)
        elapsed = time.monotonic() - started
    finally:
        model.close()
        backends.close()
    derived = {s.name for s in sources() if s.derived}
    errors = [
        r.error for name in names for key, r in state.of(name).items() if r.error and key[0] not in derived
    ]
    if args.json:
        data = snapshot_json(state, profile, names)
        data["profile"] = profile.name
        data["elapsed_seconds"] = round(elapsed, 3)
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(state, profile, names))
        if errors:
            print(f"\n{failed_line(errors)}; everything else above is live.", file=sys.stderr)
    return ExitCode.UNREACHABLE if errors else ExitCode.OK


def failed_line(errors: list[str]) -> str:
    """"3 sources failed: 2 unreachable, 1 secret missing": by cause, as the environment list says."""
    from opsconsole.sources.summary import cause_of

    causes: dict[str, int] = {}
    for error in errors:
        cause = cause_of(error)
        causes[cause] = causes.get(cause, 0) + 1
    return f"{counted(len(errors), 'sources')} failed: " + ", ".join(f"{n} {c}" for c, n in causes.items())


def render_all(rows: list[OverviewRow], now: float) -> str:
    """The overview as text: one line per project and environment, those that need someone first."""
    out = [f"{'PROJECT':<18} {'ENV':<12} {'STATE':<10} {'ALERTS':>6} {'ERRORS':>6}  RELEASE / RUNNING / WHY"]
    for row in sorted_rows(rows):
        if row.failure:
            out.append(f"{clean(row.project, 18):<18} {'-':<12} {'FAILED':<10} {'':>6} {'':>6}  {clean(row.failure, 200)}")
            continue
        state = "ATTENTION" if row.needs_me else ("ok" if row.loaded else "pending")
        marks = " ".join(f"{name} {mark}" for name, mark in row.marks)
        notes = [row.release_text(now)] if row.release else []
        notes += list(row.running) + list(row.problems)
        flags = " PROTECTED" if row.protected else ""
        alerts = "" if row.alerts is None else str(row.alerts)
        errors = "" if row.errors is None else str(row.errors)
        out.append(
            f"{clean(row.project, 18):<18} {clean(row.env, 12):<12} {state:<10} {alerts:>6} {errors:>6}  "
            + clean("; ".join(n for n in notes if n), 200)
            + flags
        )
        out.append(f"{'':<18} {'':<12} {'':<10} {'':>6} {'':>6}  {marks}")
    return "\n".join(out)


def status_all(args: argparse.Namespace) -> int:
    """`status --all`: the overview of every project, each read as its own profile would be."""
    from opsconsole.profiles import load_all

    if getattr(args, "envs", None):
        from opsconsole.errors import UsageError

        raise UsageError("--all shows every environment of every project: leave out --env", "Usage")
    projects = Projects(load_all())
    try:
        elapsed = projects.collect()
        rows = projects.rows()
        failed = [p for p in projects.projects if p.profile is None]
        errors = [
            r.error
            for p in projects.projects
            if p.model is not None
            for env in p.model.profile.environments
            for r in p.model.state.of(env).values()
            if r.error
        ]
        if args.json:
            data: dict[str, Any] = {"projects": {}, "elapsed_seconds": round(elapsed, 3)}
            for project in projects.projects:
                entry: dict[str, Any] = {"project": project.title, "path": str(project.path)}
                if project.profile is None or project.model is None:
                    entry["error"] = project.failure
                else:
                    names = list(project.profile.environments)
                    entry.update(snapshot_json(project.model.state, project.profile, names))
                    entry["error"] = None
                    for row in project.rows():
                        entry["environments"][row.env]["overview"] = row.to_json()
                data["projects"][project.name] = entry
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render_all(rows, time.time()))
            if errors or failed:
                print(
                    f"\n{counted(len(failed), 'projects')} not loaded, {failed_line(errors) if errors else 'no source failed'}; "
                    "everything else above is live.",
                    file=sys.stderr,
                )
    finally:
        projects.close()
    if failed:
        return ExitCode.USAGE if len(failed) == len(projects.projects) else ExitCode.UNREACHABLE
    return ExitCode.UNREACHABLE if errors else ExitCode.OK
