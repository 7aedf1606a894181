"""The Health pane: the environment's HTTP health checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsconsole.panes.spec import PaneSpec, Results
from opsconsole.widgets.pane import Row, cell

if TYPE_CHECKING:
    from opsconsole.backends.health import HealthResult


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


SPEC = PaneSpec(
    "health",
    "Health",
    ("url", "status", "latency", "error"),
    lambda data: rows_health(data.results),
    badge="http",
)
