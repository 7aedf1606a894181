"""The Deploys pane: CI of what runs and of the branch head, actions someone else is running, then
each host's current release, journal warnings and recent journal records."""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING, Any, cast

from opsconsole.human import parse_time
from opsconsole.panes.spec import PaneData, PaneSpec, Results
from opsconsole.widgets.pane import Row, age, cell

if TYPE_CHECKING:
    from opsconsole.backends.github import CiReport
    from opsconsole.backends.releases import DeployState


def foreign_runs(results: Results, own: Set[str]) -> list[Any]:
    """Actions running on the environment that this console did not start (from the run logs)."""
    out = []
    for _key, result in results:
        state = cast("DeployState | None", result.data)
        if state is not None:
            out += [r for r in state.runs if r.run not in own]
    return out


def run_text(info: Any, now: float, hint: str = "") -> str:
    """`deploy main by ann@laptop · 1 min 12 s · HINT · build: sh build.sh (web-1)`: the step last,
    where a cut costs least."""
    started = parse_time(info.start.get("started"))
    elapsed = f" · {age(now - started.timestamp())}" if started else ""
    step = f" · {info.step}" + (f" ({info.step_host})" if info.step_host else "") if info.step else ""
    return f"{info.what} by {info.who}{elapsed}{f' · {hint}' if hint else ''}{step}"


def rows_deploys(results: Results, own: Set[str] = frozenset(), now: float = 0.0) -> list[Row]:
    rows = []
    for info in foreign_runs(results, own):
        rows.append(
            Row(
                f"run|{info.run}",
                [
                    cell("RUNNING", "bold yellow"),
                    cell(info.run),
                    cell(str(info.start.get("action") or "")),
                    cell(str(info.start.get("target") or "")),
                    cell(info.who),
                    # short: a long cell widens its column and pushes `when` off the pane (details
                    # and the watch screen say the rest)
                    cell(run_text(info, now, "enter or w: watch"), "bold yellow", limit=72),
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
                        cell(report.title, "bold"),
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


def rows(data: PaneData) -> list[Row]:
    """The CI rows first, then the deploy rows."""
    return rows_ci(data.of("ci")) + rows_deploys(data.of("deploys"), data.own_runs, data.now)


SPEC = PaneSpec(
    "deploys",
    "Deploys",
    ("host", "release", "event", "ref", "who", "outcome", "when"),
    rows,
    counted=("deploys",),  # the CI rows carry their own errors
    badge="dep",
    noun="journal records",
    count=lambda rows: sum(1 for r in rows if r.data[0] == "journal"),
)
