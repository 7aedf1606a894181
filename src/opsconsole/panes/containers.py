"""The Containers pane: Docker's containers on every host, with their CPU and memory when sampled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from opsconsole.panes.spec import PaneSpec, Results
from opsconsole.widgets.pane import Row, cell

if TYPE_CHECKING:
    from opsconsole.backends.docker_engine import ContainerInfo

STATE_STYLES = {
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


SPEC = PaneSpec(
    "containers",
    "Containers",
    ("host", "name", "state", "health", "image", "CPU%", "memory"),
    lambda data: rows_containers(data.results, data.stats),
    badge="dock",
)
