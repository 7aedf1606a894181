"""The Processes pane: supervisord's programs on every host."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsconsole.panes.spec import PaneSpec, Results
from opsconsole.widgets.pane import Row, cell, start_time

if TYPE_CHECKING:
    from opsconsole.backends.supervisor import ProcessInfo

STATE_STYLES = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "STOPPED": "dim",
    "STOPPING": "yellow",
    "BACKOFF": "bold red",
    "FATAL": "bold red",
    "EXITED": "red",
    "UNKNOWN": "red",
}


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


SPEC = PaneSpec(
    "processes",
    "Processes",
    ("host", "process", "state", "pid", "started", "description"),
    lambda data: rows_processes(data.results),
    badge="sup",
)
