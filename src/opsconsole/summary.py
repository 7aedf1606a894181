"""What the environment list shows for each environment, computed from its latest source results."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsconsole.record import frozen
from opsconsole.snapshot import SourceResult

SourceKey = tuple[str, ...]  # (source, host) or (source,)


@frozen
class EnvSummary:
    processes_down: int = 0
    unhealthy_containers: int = 0
    sentry_open: int | None = None
    health_failing: int = 0
    locked_by: str | None = None
    errors: int = 0
    loaded: bool = False
    causes: tuple[tuple[str, int], ...] = ()  # errors by cause class: ("timed out", 2), ...

    @property
    def ok(self) -> bool:
        return not (
            self.processes_down
            or self.unhealthy_containers
            or self.health_failing
            or self.locked_by
            or self.errors
        )

    def badges(self) -> list[str]:
        out = []
        if self.processes_down:
            out.append(f"{self.processes_down} down")
        if self.unhealthy_containers:
            out.append(f"{self.unhealthy_containers} unhealthy")
        if self.sentry_open:
            out.append(f"{self.sentry_open} errors")
        if self.health_failing:
            out.append(f"{self.health_failing} checks failing")
        if self.locked_by:
            out.append(f"locked by {self.locked_by}")
        if self.causes:
            out.extend(f"{n} {cause}" if n > 1 else cause for cause, n in self.causes)
        elif self.errors:
            out.append(f"{self.errors} unreachable")
        return out


# Patterns over the lower-cased message. Status codes count only as status codes ("HTTP 401",
# "(403)"): a port such as 127.0.0.1:40167 must not read as an authentication failure.
CAUSES = (
    ("secret missing", re.compile(r"secret '")),
    ("auth failed", re.compile(r"authentication failed|\bhttp 40[13]\b|\(40[13]\)")),
    ("host key", re.compile(r"host key")),
    ("timed out", re.compile(r"timed out")),
    ("unreachable", re.compile(r"connection refused|cannot resolve|connection lost|unreachable|no route")),
)


def cause_of(error: str) -> str:
    """The class of an error, as the environment list names it."""
    text = error.lower()
    for cause, pattern in CAUSES:
        if pattern.search(text):
            return cause
    return "error"


DOWN_STATES = {"FATAL", "BACKOFF", "EXITED", "UNKNOWN", "STOPPING"}


def summarize(results: Mapping[SourceKey, SourceResult[Any]]) -> EnvSummary:
    down = unhealthy = failing = errors = 0
    sentry_open: int | None = None
    locked_by = None
    causes: dict[str, int] = {}
    for key, result in results.items():
        if result.error:
            errors += 1
            cause = cause_of(result.error)
            causes[cause] = causes.get(cause, 0) + 1
            continue
        data = result.data
        if data is None:
            continue
        source = key[0]
        if source == "supervisor":
            down += sum(1 for p in data if p.state in DOWN_STATES)
        elif source == "docker":
            containers = data[0] if isinstance(data, tuple) else data
            unhealthy += sum(
                1 for c in containers if c.health == "unhealthy" or c.state in ("restarting", "dead")
            )
        elif source == "sentry":
            sentry_open = (sentry_open or 0) + len(data.issues)
        elif source == "health":
            failing += sum(1 for h in data if not h.ok)
        elif source == "deploys" and data.lock is not None:
            locked_by = data.lock.who
    return EnvSummary(
        down,
        unhealthy,
        sentry_open,
        failing,
        locked_by,
        errors,
        loaded=bool(results),
        causes=tuple(causes.items()),
    )


def visible(item: Any) -> Any:
    """The part of a result a person sees change (not clocks: `now`, latency, "Up 3 minutes")."""
    kind = type(item).__name__
    if kind == "ProcessInfo":
        return (
            item.host,
            item.group,
            item.name,
            item.state,
            item.pid,
            item.start,
            item.exitstatus,
            item.spawnerr,
            "" if item.description.startswith("pid ") else item.description,  # shown when not pid/uptime
        )
    if kind == "ContainerInfo":
        return (item.host, item.name, item.state, item.health, item.image, item.started_at)
    if kind == "DeployState":
        return (item.current, tuple(item.releases), item.lock, len(item.journal))
    if kind == "IssuePage":
        return tuple((i.id, i.count, i.users, i.last_seen, i.status) for i in item.issues)
    if kind == "HealthResult":
        return (item.url, item.ok, item.status, item.error)
    if kind == "FileInfo":
        return (item.host, item.path, item.exists)
    if isinstance(item, list | tuple):
        return tuple(visible(x) for x in item)
    return item


def fingerprint(results: Mapping[SourceKey, SourceResult[Any]]) -> Any:
    """Equal fingerprints mean nothing visible changed between two refreshes."""
    return tuple(sorted((key, result.error, visible(result.data)) for key, result in results.items()))
