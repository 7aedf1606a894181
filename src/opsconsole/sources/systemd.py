"""The systemd source: how it fetches per host, what of it a person sees change, how it counts in
the environment's summary and how `status --json` writes it (`catalog.py` declares it with these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconsole.sources.fetch import Fetch, JsonPlace, Summary

if TYPE_CHECKING:
    from opsconsole.backends.systemd import UnitsReport
    from opsconsole.sources.fanout import SourceResult

NOT_CONFIGURED = (
    "systemd is not configured for this environment: add [environments.ENV.systemd] "
    'units = ["shop-*.service", "redis-server"] (optional: user = true, sudo = true)'
)


def fetch(f: Fetch) -> Any:
    from opsconsole.backends.systemd import read_units

    assert f.env.systemd is not None
    return read_units(f.clients.host(f.spec), f.env.systemd)


def visible(report: UnitsReport) -> Any:
    return (
        tuple(
            (u.unit, u.load, u.active, u.sub, u.pid, u.restarts, u.since, u.description) for u in report.units
        ),
        tuple(report.notes),
    )


FAILED_BADGE = "systemd: {n} unit(s) failed or missing"


def summarise(report: UnitsReport) -> Summary:
    """A failed, crashing or missing unit is a cause the environment list and header name."""
    failed = sum(1 for u in report.units if u.failed)
    return {"badges": {FAILED_BADGE: failed}} if failed else {}


def to_json(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is None:
        return
    if result.data is None:
        place.target["systemd"] = {"units": [], "version": None, "notes": [], "error": result.error}
        return
    place.target["systemd"] = {**result.data.to_json(), "error": result.error}


def status_lines(report: UnitsReport | None) -> list[str]:
    """`status`'s text for one host: a headline (`5/7 active, 2 failed or missing`), then each unit
    that is not active, failed ones first, and the notes (each made inert)."""
    from opsconsole.sanitize import clean

    if report is None:
        return ["no answer"]
    units = report.units
    failed = sum(1 for u in units if u.failed)
    head = f"{sum(u.active == 'active' for u in units)}/{len(units)} active"
    if failed:
        head += f", {failed} failed or missing"
    lines = [head]
    for u in units:
        if u.failed or u.active != "active":
            mark = "✗ " if u.failed else ""
            pid = f" pid {u.pid}" if u.pid else ""
            problem = f" - {u.problem}" if u.problem else ""
            lines.append(f"{mark}{clean(u.unit)}: {u.active}/{u.sub}{pid}{problem}")
    return lines + [f"note: {clean(note, 200)}" for note in report.notes if "no such unit" not in note]
