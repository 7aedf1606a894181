"""What the environment list shows for each environment, computed from its latest source results."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from opsconsole.record import frozen
from opsconsole.sources.catalog import CATALOG, SourceKey, visible
from opsconsole.sources.fanout import SourceResult


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
    notes: tuple[str, ...] = ()  # causes sources name themselves ("nginx: 37 5xx in 5 min")

    @property
    def ok(self) -> bool:
        return not (
            self.processes_down
            or self.unhealthy_containers
            or self.health_failing
            or self.locked_by
            or self.errors
            or self.notes
        )

    def badges(self) -> list[str]:
        out = []
        if self.processes_down:
            out.append(f"{self.processes_down} down")
        if self.unhealthy_containers:
            out.append(f"{self.unhealthy_containers} unhealthy")
        if self.sentry_open:
            out.append(f"{self.sentry_open} error{'s' if self.sentry_open > 1 else ''}")
        if self.health_failing:
            out.append(f"{self.health_failing} check{'s' if self.health_failing > 1 else ''} failing")
        if self.locked_by:
            out.append(f"locked by {self.locked_by}")
        out.extend(self.notes)
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


def source_badges(results: Iterable[tuple[SourceKey, SourceResult[Any]]]) -> list[str]:
    """The causes sources name in their summary's `badges` (a text with `{n}` -> a count), each
    text's counts summed over the results: "nginx: 37 5xx in 5 min"."""
    totals: dict[str, int] = {}
    for key, result in results:
        src = CATALOG.get(key[0])
        if result.error or result.data is None or src is None:
            continue
        for text, n in src.summarise(result.data).get("badges", {}).items():
            totals[text] = totals.get(text, 0) + n
    # "(s)" in a badge's text is the plural's: "on 1 host", "on 2 hosts"
    return [text.format(n=n).replace("(s)", "" if n == 1 else "s") for text, n in totals.items()]


def summarize(results: Mapping[SourceKey, SourceResult[Any]]) -> EnvSummary:
    """What the environment list shows of an environment: each source's result adds its counts
    (the catalog's `summarise`), errors count by cause."""
    totals: dict[str, Any] = {"processes_down": 0, "unhealthy_containers": 0, "health_failing": 0}
    errors = 0
    causes: dict[str, int] = {}
    for key, result in results.items():
        if result.starting:  # still starting: pending, neither a failure nor data
            continue
        if result.error:
            errors += 1
            cause = cause_of(result.error)
            causes[cause] = causes.get(cause, 0) + 1
            continue
        src = CATALOG.get(key[0])
        if result.data is None or src is None:
            continue
        for name, value in src.summarise(result.data).items():
            if name == "badges":  # summed by source_badges
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = (totals.get(name) or 0) + value
            else:
                totals[name] = value
    return EnvSummary(
        processes_down=totals["processes_down"],
        unhealthy_containers=totals["unhealthy_containers"],
        sentry_open=totals.get("sentry_open"),
        health_failing=totals["health_failing"],
        locked_by=totals.get("locked_by"),
        errors=errors,
        loaded=bool(results),
        causes=tuple(causes.items()),
        notes=tuple(source_badges(results.items())),
    )


def fingerprint(results: Mapping[SourceKey, SourceResult[Any]]) -> Any:
    """Equal fingerprints mean nothing visible changed between two refreshes."""
    return tuple(sorted((key, result.error, visible(key, result.data)) for key, result in results.items()))
