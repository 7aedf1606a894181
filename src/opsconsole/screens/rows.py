"""Pane rows from source results: pure functions (no screen, no app), one per pane."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from opsconsole.human import parse_time
from opsconsole.snapshot import SourceResult
from opsconsole.widgets.pane import Row, age, cell, start_time

if TYPE_CHECKING:
    from opsconsole.backends.docker_engine import ContainerInfo
    from opsconsole.backends.github import CiReport
    from opsconsole.backends.health import HealthResult
    from opsconsole.backends.releases import DeployState
    from opsconsole.backends.sentry import IssuePage
    from opsconsole.backends.supervisor import ProcessInfo

Results = list[tuple[tuple[str, ...], SourceResult[Any]]]

PANES = (
    ("processes", "Processes", ("host", "process", "state", "pid", "started", "description")),
    ("containers", "Containers", ("host", "name", "state", "health", "image", "CPU%", "memory")),
    ("deploys", "Deploys", ("host", "release", "event", "ref", "who", "outcome", "when")),
    ("errors", "Errors", ("issue", "level", "title", "count", "users", "last seen")),
    ("health", "Health", ("url", "status", "latency", "error")),
    ("metrics", "Metrics", ("metric", "value", "band", "trend", "detail")),
)
ALL_COLUMNS = ("env", "kind", "host", "name", "state", "detail")


def rows_all(
    by_env: Mapping[str, Mapping[tuple[str, ...], SourceResult[Any]]],
    stats: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> list[Row]:
    """`0`: the processes, containers and open errors of every environment in one table. Each row's
    data carries its environment, so the action keys act there; unreachable sources show too."""
    rows: list[Row] = []
    for env, results in by_env.items():
        items = list(results.items())

        def of(source: str, items: list[tuple[tuple[str, ...], SourceResult[Any]]] = items) -> Results:
            return [(k, r) for k, r in items if k[0] == source]

        picks = (
            ("process", rows_processes(of("supervisor")), (0, 1, 2, 5)),
            ("container", rows_containers(of("docker"), stats.get(env, {})), (0, 1, 2, 4)),
            ("issue", rows_errors(of("sentry")), (None, 0, 1, 2)),
        )
        for label, built, columns in picks:
            for row in built:
                kind, host, item = row.data
                shown = [cell("") if c is None else row.cells[c] for c in columns]
                rows.append(
                    Row(f"{env}|{row.key}", [cell(env, "bold"), cell(label), *shown], (kind, host, item, env))
                )
        for key, result in items:
            if result.error:
                host = key[1] if len(key) > 1 else ""
                rows.append(
                    Row(
                        f"{env}|error|{'|'.join(key)}",
                        [
                            cell(env, "bold"),
                            cell(key[0]),
                            cell(host),
                            cell(""),
                            cell("✗", "bold red"),
                            cell(result.error, "red", limit=160),
                        ],
                        ("error", host, result.error, env),
                    )
                )
    return rows


EXTRA_SOURCES = {
    "ci": "deploys",
    "dora": "metrics",
    "prometheus": "metrics",
}  # sources shown inside another source's pane
PANE_SOURCES = {
    "processes": "supervisor",
    "containers": "docker",
    "deploys": "deploys",
    "errors": "sentry",
    "health": "health",
    "metrics": "metrics",
}
NOT_CONFIGURED_HELP = {
    "supervisor": 'Supervisor is not configured for this environment: add [environments.ENV.supervisor] url = "unix:///var/run/supervisor.sock"',
    "docker": 'Docker is not configured for this environment: add [environments.ENV.docker] url = "unix:///var/run/docker.sock"',
    "deploys": "Deploys are not configured: add [environments.ENV.deploy] with path, repo, build and restart",
    "sentry": (
        "Sentry is not connected: add [environments.ENV.sentry] with url, organization, project and "
        'token = { secret = "sentry-token" }, then `opsconsole secret set sentry-token` '
        "(or set OPSCONSOLE_SECRET_SENTRY_TOKEN); or a self-hosted Bugsink: [environments.ENV.bugsink] "
        "with url, project and token"
    ),
    "health": 'No health checks: add health = ["https://.../healthz"] to the environment',
    "metrics": (
        "No metrics: delivery metrics come from [environments.ENV.deploy] journals; service metrics from "
        '[environments.ENV.prometheus] url = "http://prometheus:9090" with [environments.ENV.prometheus.queries]'
    ),
}

STATE_STYLES = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "STOPPED": "dim",
    "STOPPING": "yellow",
    "BACKOFF": "bold red",
    "FATAL": "bold red",
    "EXITED": "red",
    "UNKNOWN": "red",
    "running": "green",
    "exited": "red",
    "restarting": "bold red",
    "dead": "bold red",
    "healthy": "green",
    "unhealthy": "bold red",
    "starting": "yellow",
}


def fmt_bytes(value: int) -> str:
    """Always with a unit: 836 B, 836.0 KiB, 1.1 MiB, 2.0 GiB."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def rows_processes(results: Results) -> list[Row]:
    rows = []
    for key, result in results:
        for proc in cast("list[ProcessInfo]", result.data or []):
            # a start time, not an uptime: it says the same (a restart shows as a later time) and
            # never changes while nothing happens, so an idle console redraws nothing
            started = start_time(proc.start, proc.now) if proc.uptime is not None else ""
            # supervisord's description repeats pid and uptime ("pid 12, uptime 0:05:01"), which
            # would change every refresh: show it only when it says something else
            detail = proc.spawnerr or ("" if proc.description.startswith("pid ") else proc.description)
            rows.append(
                Row(
                    f"{key[1]}|{proc.full_name}",
                    [
                        cell(key[1]),
                        cell(proc.full_name),
                        cell(proc.state, STATE_STYLES.get(proc.state, "")),
                        cell(proc.pid or ""),
                        cell(started),
                        cell(detail, limit=80),
                    ],
                    ("process", key[1], proc),
                )
            )
    return rows


def rows_containers(results: Results, stats_by_host: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    rows = []
    for key, result in results:
        stats = stats_by_host.get(key[1], {})
        for container in cast("list[ContainerInfo]", result.data or []):
            sample = stats.get(container.name)
            measured = None if isinstance(sample, str) else sample  # a str says why there is none
            cpu = (
                f"{measured.cpu_percent:.1f}"
                if measured is not None
                else ("…" if container.state == "running" else "")
            )
            mem = fmt_bytes(measured.memory_bytes) if measured is not None else ""
            rows.append(
                Row(
                    f"{key[1]}|{container.name}",
                    [
                        cell(key[1]),
                        cell(container.name),
                        cell(container.state, STATE_STYLES.get(container.state, "")),
                        cell(container.health, STATE_STYLES.get(container.health, "")),
                        cell(container.image, limit=40),
                        cell(cpu),
                        cell(mem),
                    ],
                    ("container", key[1], container),
                )
            )
    return rows


def foreign_runs(results: Results, own: set[str]) -> list[Any]:
    """Actions running on the environment that this console did not start (from the run logs)."""
    out = []
    for _key, result in results:
        state = cast("DeployState | None", result.data)
        if state is not None:
            out += [r for r in state.runs if r.run not in own]
    return out


def run_text(info: Any, now: float) -> str:
    """`deploy main by ann@laptop · 1 min 12 s · build: sh build.sh (web-1)`."""
    started = parse_time(info.start.get("started"))
    elapsed = f" · {age(now - started.timestamp())}" if started else ""
    step = f" · {info.step}" + (f" ({info.step_host})" if info.step_host else "") if info.step else ""
    return f"{info.what} by {info.who}{elapsed}{step}"


def rows_deploys(results: Results, own: set[str] | None = None, now: float = 0.0) -> list[Row]:
    rows = []
    for info in foreign_runs(results, own or set()):
        rows.append(
            Row(
                f"run|{info.run}",
                [
                    cell("RUNNING", "bold yellow"),
                    cell(info.run),
                    cell(str(info.start.get("action") or "")),
                    cell(str(info.start.get("target") or "")),
                    cell(info.who),
                    cell(run_text(info, now) + " · enter or w: watch", "bold yellow", limit=160),
                    cell(""),
                ],
                ("run", "", info),
            )
        )
    for key, result in results:
        state = cast("DeployState | None", result.data)
        if state is None:
            continue
        lock = ""
        if state.lock:
            lock = f"LOCKED by {state.lock.who} ({state.lock.why})"
            if state.lock.stale and state.lock.heartbeat_age is not None:
                lock = f"STALE lock ({age(state.lock.heartbeat_age)} silent): {state.lock.who}; unlock it from the palette"
        rows.append(
            Row(
                f"{key[1]}|current",
                [
                    cell(key[1], "bold"),
                    cell(state.current or ("no deploys yet" if not state.exists else "none")),
                    cell("current", "bold"),
                    cell(""),
                    cell(""),
                    cell(lock, "bold red" if lock else ""),
                    cell(""),
                ],
                ("deploy", key[1], state),
            )
        )
        for n, warning in enumerate(state.warnings):
            rows.append(
                Row(
                    f"{key[1]}|warning|{n}",
                    [
                        cell(key[1], "dim"),
                        cell("⚠ journal", "yellow"),
                        cell(""),
                        cell(""),
                        cell(""),
                        cell(warning.split(": skipped ", 1)[-1], "yellow"),
                        cell(""),
                    ],
                    ("warning", key[1], warning),
                )
            )
        bad = state.bad_releases
        for n, record in enumerate(state.recent(10)):
            when = str(record.get("finished") or record.get("started") or "")
            start, end = parse_time(record.get("started")), parse_time(record.get("finished"))
            duration = f" ({age((end - start).total_seconds())})" if start and end else ""
            outcome = str(record.get("outcome", ""))
            if record.get("event") == "deploy" and outcome == "success" and record.get("release") in bad:
                outcome = "success, marked bad"
            rows.append(
                Row(
                    f"{key[1]}|{n}|{record.get('release')}|{record.get('event')}",
                    [
                        cell(key[1], "dim"),
                        cell(record.get("release")),
                        cell(record.get("event")),
                        cell(record.get("ref") or record.get("to") or ""),
                        cell(record.get("who")),
                        cell(outcome, "green" if outcome == "success" else "red"),
                        cell(when.replace("T", " ")[:19] + duration),
                    ],
                    ("journal", key[1], record),
                )
            )
    return rows


def rows_ci(results: Results) -> list[Row]:
    """The Deploys pane's CI rows: what runs now, and the branch head (green, red, pending)."""
    rows = []
    for _key, result in results:
        if result.error:
            rows.append(
                Row(
                    "ci|error",
                    [
                        cell("CI", "bold"),
                        cell(""),
                        cell("ci"),
                        cell(""),
                        cell(""),
                        cell("✗ " + result.error, "red", limit=160),
                        cell(""),
                    ],
                    ("ci", "", result.error),
                )
            )
            continue
        report = cast("CiReport | None", result.data)
        if report is None:
            continue
        parts = [("current", report.release or "no release", (report.commit or "")[:12], report.current)]
        parts.append(("head", "branch head", report.branch, report.head))
        for name, label, ref, state in parts:
            if state is None:
                text, style = "unknown (no journal record names its commit)", "dim"
            elif isinstance(state, str):
                text, style = "✗ " + state, "red"
            else:
                text = state.summary()
                style = {"success": "green", "failure": "bold red", "pending": "yellow"}[state.state]
            rows.append(
                Row(
                    f"ci|{name}",
                    [
                        cell("CI", "bold"),
                        cell(label),
                        cell("ci"),
                        cell(ref),
                        cell(""),
                        cell(text, style, limit=160),
                        cell(""),
                    ],
                    ("ci", "", report),
                )
            )
    return rows


BAND_STYLES = {"elite": "bold green", "high": "green", "medium": "yellow", "low": "red"}


def rows_metrics(results: Results) -> list[Row]:
    """DORA's four keys (with their DORA 2024 bands and deploys per week), then each Prometheus
    query's current value and last hour."""
    from opsconsole.backends.prometheus import human, sparkline

    rows: list[Row] = []
    for key, result in sorted(results, key=lambda kr: kr[0][0] != "dora"):  # delivery first
        if result.error:
            rows.append(
                Row(
                    f"{key[0]}|error",
                    [
                        cell(key[0], "bold"),
                        cell(""),
                        cell(""),
                        cell(""),
                        cell("✗ " + result.error, "red", limit=160),
                    ],
                    ("metric", "", result.error),
                )
            )
            continue
        if key[0] == "dora" and result.data is not None:
            d = result.data
            bands = d["bands"]
            lead, fail, rec, freq = (
                d["lead_time_hours"],
                d["change_failure_rate"],
                d["recovery_hours"],
                d["deployment_frequency"],
            )

            def hours(value: float | None) -> str:
                if value is None:
                    return "–"
                return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"

            figures = [
                (
                    "deploys/week",
                    f"{freq['per_week']:.1f}",
                    bands["deployment_frequency"],
                    sparkline([float(c) for c in d["weekly"]]),
                    f"{d['deployments']} deploys in 90 days ({freq['bucket']}); the trend: 12 weeks",
                ),
                (
                    "lead time",
                    hours(lead["median"]),
                    bands["lead_time"],
                    "",
                    f"median over {lead['changes']} changes, p90 {hours(lead['p90'])}",
                ),
                (
                    "change failure",
                    "–" if fail["value"] is None else f"{fail['value'] * 100:.0f} %",
                    bands["change_failure_rate"],
                    "",
                    f"{fail['failed']} of {fail['total']} deploys rolled back, marked bad or failed verification",
                ),
                (
                    "recovery",
                    hours(rec["median"]),
                    bands["recovery"],
                    "",
                    f"median over {rec['incidents']} incidents",
                ),
            ]
            for name, value, band, trend, detail in figures:
                rows.append(
                    Row(
                        f"dora|{name}",
                        [
                            cell(name, "bold"),
                            cell(value),
                            cell(band or "–", BAND_STYLES.get(band or "", "dim")),
                            cell(trend, "cyan"),
                            cell(detail),
                        ],
                        ("metric", "", name),
                    )
                )
            for error in d.get("errors") or []:
                rows.append(
                    Row(
                        f"dora|err|{error}",
                        [
                            cell("journal", "bold"),
                            cell(""),
                            cell(""),
                            cell(""),
                            cell("✗ " + error, "red", limit=160),
                        ],
                        ("metric", "", error),
                    )
                )
        elif key[0] == "prometheus" and result.data is not None:
            for label, series in result.data.series.items():
                rows.append(
                    Row(
                        f"prom|{label}",
                        [
                            cell(label, "bold"),
                            cell(human(series.value)),
                            cell(""),
                            cell(sparkline([v for _t, v in series.points]), "cyan"),
                            cell(series.note or series.query, "red" if series.error else "dim", limit=160),
                        ],
                        ("metric", "", series),
                    )
                )
    return rows


def rows_errors(results: Results) -> list[Row]:
    rows = []
    for _key, result in results:
        page = cast("IssuePage | None", result.data)
        for issue in page.issues if page else []:
            level_style = {"fatal": "bold red", "error": "red", "warning": "yellow"}.get(issue.level, "")
            rows.append(
                Row(
                    issue.id,
                    [
                        cell(issue.short_id),
                        cell(issue.level, level_style),
                        cell(("↺ regressed · " if issue.regressed else "") + issue.title, limit=90),
                        cell(issue.count),
                        cell(issue.users),
                        cell((issue.last_seen or "").replace("T", " ")[:19]),
                    ],
                    ("issue", "sentry", issue),
                )
            )
    return rows


def rows_health(results: Results) -> list[Row]:
    rows = []
    for _key, result in results:
        for check in cast("list[HealthResult]", result.data or []):
            latency = f"{check.latency_ms:.0f} ms" if check.latency_ms is not None else ""
            rows.append(
                Row(
                    check.url,
                    [
                        cell(check.url, limit=80),
                        cell(check.status or "", "green" if check.ok else "red"),
                        cell(latency),
                        cell(check.error or "", "red"),
                    ],
                    ("health", "", check),
                )
            )
    return rows
