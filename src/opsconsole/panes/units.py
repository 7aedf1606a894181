"""The Units pane: the profile's systemd units on every host, failed ones first and marked.

A pane of its own rather than rows in Processes: a unit has what a supervisord program has not
(active *and* sub state, NRestarts, memory from cgroup accounting, a load state that says a unit
does not exist), and Processes' columns and `processes_down` count are supervisord's. Its rows
select a `unit`: restart, start/stop and logs act on `systemd:UNIT` as on `supervisor:NAME`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsconsole.panes.spec import PaneData, PaneSpec
from opsconsole.widgets.pane import Row, cell, start_time

if TYPE_CHECKING:
    from opsconsole.backends.systemd import UnitInfo, UnitsReport

ACTIVE_STYLES = {
    "active": "green",
    "reloading": "yellow",
    "activating": "yellow",
    "deactivating": "yellow",
    "inactive": "dim",
    "failed": "bold red",
}


def memory(size: int | None) -> str:
    if size is None:
        return ""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}{unit}"
    return f"{size}B"


def unit_row(host: str, unit: UnitInfo, now: float) -> Row:
    state = f"{unit.active}/{unit.sub}"
    style = "bold red" if unit.failed else ACTIVE_STYLES.get(unit.active, "")
    mark = "✗ " if unit.failed else ""
    detail = f"{unit.problem}: {unit.description}" if unit.problem else unit.description
    return Row(
        f"{host}|{unit.unit}",
        [
            cell(mark + unit.unit, "bold red" if unit.failed else ""),
            cell(host),
            cell(state, style),
            cell(unit.pid or ""),
            cell("" if unit.restarts is None else unit.restarts, "yellow" if unit.restarts else ""),
            cell(start_time(unit.since, now) if unit.since else ""),
            cell(memory(unit.memory)),
            cell(detail, limit=80),
        ],
        ("unit", host, unit),
    )


def rows_units(data: PaneData) -> list[Row]:
    failed: list[Row] = []
    rest: list[Row] = []
    for key, result in data.of("systemd"):
        report = cast("UnitsReport | None", result.data)
        for unit in report.units if report is not None else []:
            (failed if unit.failed else rest).append(unit_row(key[1], unit, data.now))
    return failed + rest


def note(data: PaneData) -> str:
    """What a host said besides its units ("no unit matches 'shop-*'")."""
    notes = []
    for key, result in data.of("systemd"):
        report = cast("UnitsReport | None", result.data)
        if report is not None:
            notes += [f"{key[1]}: {n}" for n in report.notes if "no such unit" not in n]
    return "; ".join(notes)


SPEC = PaneSpec(
    "units",
    "Units",
    ("unit", "host", "active/sub", "pid", "restarts", "since", "memory", "description"),
    rows_units,
    noun="units",
    badge="sd",
    note=note,
)
