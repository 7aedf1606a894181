"""Every project at once (`--all`): one read model per profile, polled for a few cheap sources, and
one overview row per project and environment.

The overview reads what says whether an environment needs someone (processes, containers, units,
deploys, errors, health checks, alerts) and nothing else: no log windows, metrics, CI or timeline.
The project a person opens gets its full refresh from the console; the others stay on this poll.
Each project has its own clients and workers, so one unreachable project costs its own timeout and
never delays another; SSH connections to one server are shared between projects by the SSH layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from opsconsole.backends.clients import Backends
from opsconsole.human import parse_stamp
from opsconsole.profiles import Environment, Profile, ProfileEntry
from opsconsole.record import frozen
from opsconsole.sanitize import clean
from opsconsole.sources.catalog import SourceKey, configured_sources
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.model import ReadModel
from opsconsole.sources.schedule import coarse_age
from opsconsole.sources.summary import summarize

# what the overview reads of every environment, in the order its marks are shown
OVERVIEW_SOURCES: tuple[str, ...] = ("supervisor", "docker", "systemd", "deploys", "sentry", "health", "alerts")


MARK_WORDS = {"✓": "ok", "✗": "error", "…": "pending"}


@frozen
class OverviewRow:
    """One project × environment as the overview shows it (and `status --all --json` writes it)."""

    project: str  # the profile's name (what --profile and :project take)
    title: str  # the project's display name
    env: str
    protected: bool = False
    read_only: bool = False
    marks: tuple[tuple[str, str], ...] = ()  # (source, "✓" | "✗" | "…")
    alerts: int | None = None  # firing alerts, where the environment has the alerts source
    running: tuple[str, ...] = ()  # running deploys and other actions: "deploy production by alice"
    release: str | None = None
    released: float | None = None  # when the current release was deployed (epoch seconds)
    errors: int | None = None  # open issues in the error tracker
    problems: tuple[str, ...] = ()  # what the environment list would badge: "1 down", "timed out"
    failure: str | None = None  # the project could not be loaded (invalid, untrusted)
    loaded: bool = False  # every source the overview reads has answered once

    @property
    def needs_me(self) -> bool:
        return bool(
            self.failure or self.problems or self.alerts or any(mark == "✗" for _s, mark in self.marks)
        )

    def release_text(self, now: float) -> str:
        if not self.release:
            return ""
        if self.released is None:
            return self.release
        # an age that changes at most once a minute: an idle overview has nothing to redraw
        return f"{self.release} ({coarse_age(now - self.released)} ago)"

    def to_json(self) -> dict[str, Any]:
        return {
            "needs_attention": self.needs_me,
            "protected": self.protected,
            "sources": {name: MARK_WORDS[mark] for name, mark in self.marks},
            "alerts_firing": self.alerts,
            "running": list(self.running),
            "release": self.release,
            "released_at": (
                datetime.fromtimestamp(self.released, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                if self.released is not None
                else None
            ),
            "open_errors": self.errors,
            "problems": list(self.problems),
            "loaded": self.loaded,
        }


class Project:
    """One profile of `--all`: its clients and read model once loaded, else why it could not be."""

    def __init__(self, entry: ProfileEntry) -> None:
        self.name = entry.name
        self.path = entry.path
        self.profile: Profile | None = entry.profile
        self.failure: str | None = entry.error.message if entry.error is not None else None
        self.backends: Backends | None = None
        self.model: ReadModel | None = None
        self.full = False  # opened in the console: its own refresher reads everything
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        if self.profile is not None:
            self.backends = Backends(self.profile)
            self.model = ReadModel(self.backends)

    @property
    def title(self) -> str:
        return self.profile.project_name if self.profile is not None else self.name

    def poll(self, on_done: Callable[[], None] | None = None) -> int:
        """Refresh the overview's sources of every environment not already being read; returns at
        once (how many refreshes started). `on_done` runs after each environment's refresh."""
        if self.model is None or self.full:
            return 0
        started = 0
        for env_name in self.model.profile.environments:
            with self._lock:
                if env_name in self._busy:
                    continue
                self._busy.add(env_name)
            started += 1
            self.model.refresh(env_name, self._finisher(env_name, on_done), only=OVERVIEW_SOURCES)
        return started

    def _finisher(self, env_name: str, on_done: Callable[[], None] | None) -> Callable[[], None]:
        def finished() -> None:
            with self._lock:
                self._busy.discard(env_name)
            if on_done is not None:
                on_done()

        return finished

    def busy(self) -> bool:
        with self._lock:
            return bool(self._busy)

    def rows(self) -> list[OverviewRow]:
        if self.profile is None or self.model is None:
            return [OverviewRow(self.name, self.title, "", failure=self.failure or "not loaded")]
        return [env_row(self.name, self.title, env, self.model.state.of(env.name)) for env in self.profile.environments.values()]

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
        if self.backends is not None:
            self.backends.close()


class Projects:
    """Every project of `--all`, in the order their profiles were found."""

    def __init__(self, entries: Iterable[ProfileEntry]) -> None:
        self.projects = [Project(entry) for entry in entries]

    def get(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)

    def names(self) -> list[str]:
        return [p.name for p in self.projects]

    def poll(self, on_done: Callable[[], None] | None = None) -> None:
        for project in self.projects:
            project.poll(on_done)

    def collect(self, timeout: float | None = None) -> float:
        """Poll every project once and wait until each has answered (each within its own profile's
        timeout); returns the seconds it took."""
        started = time.monotonic()
        self.poll()
        budget = timeout if timeout is not None else self._longest_budget()
        deadline = started + budget
        while any(p.busy() for p in self.projects) and time.monotonic() < deadline:
            time.sleep(0.02)
        return time.monotonic() - started

    def _longest_budget(self) -> float:
        from opsconsole.sources.fanout import DEADLINE_MARGIN

        timeouts = [p.profile.defaults.timeout for p in self.projects if p.profile is not None]
        return (max(timeouts) if timeouts else 0.0) * 2 + DEADLINE_MARGIN + 5

    def rows(self) -> list[OverviewRow]:
        return [row for project in self.projects for row in project.rows()]

    def close(self) -> None:
        for project in self.projects:
            project.close()


def sorted_rows(rows: Iterable[OverviewRow]) -> list[OverviewRow]:
    """Rows that need someone first, each group in project then profile order."""
    return [row for _n, row in sorted(enumerate(rows), key=lambda pair: (not pair[1].needs_me, pair[0]))]


def env_row(name: str, title: str, env: Environment, results: dict[SourceKey, SourceResult[Any]]) -> OverviewRow:
    """The overview row of one environment from the results its overview sources left."""
    shown = {key: r for key, r in results.items() if key[0] in OVERVIEW_SOURCES}
    # a service still starting is pending (…), not a failure
    marks: list[tuple[str, str]] = []
    loaded = True
    for src in configured_sources(env):
        if src.name not in OVERVIEW_SOURCES:
            continue
        mine = [r for key, r in shown.items() if key[0] == src.name]
        expected = len(env.hosts) if src.per_host else 1
        if any(r.error and not r.starting for r in mine):
            marks.append((src.name, "✗"))
        elif len(mine) < expected or any(r.starting for r in mine):
            marks.append((src.name, "…"))
            loaded = False
        else:
            marks.append((src.name, "✓"))
    marks.sort(key=lambda m: OVERVIEW_SOURCES.index(m[0]))
    summary = summarize(shown)
    alerts = _alerts(shown) if any(name == "alerts" for name, _mark in marks) else None
    release, released, running = _deploys(env, shown)
    problems = [b for b in summary.badges() if not b.endswith(("error", "errors"))]
    return OverviewRow(
        project=name,
        title=title,
        env=env.name,
        protected=env.protected,
        read_only=env.read_only,
        marks=tuple(marks),
        alerts=alerts,
        running=tuple(running),
        release=release,
        released=released,
        errors=summary.sentry_open,
        problems=tuple(problems),
        loaded=loaded and bool(marks),
    )


def _alerts(results: dict[SourceKey, SourceResult[Any]]) -> int | None:
    result = results.get(("alerts",))
    if result is None or result.data is None:
        return None
    return sum(1 for alert in result.data if alert.firing)


def _deploys(env: Environment, results: dict[SourceKey, SourceResult[Any]]) -> tuple[str | None, float | None, list[str]]:
    """The current release (of the first host that answered), when it was deployed, and what runs."""
    release: str | None = None
    released: float | None = None
    running: list[str] = []
    for spec in env.hosts:
        result = results.get(("deploys", spec.raw))
        state = result.data if result is not None else None
        if state is None:
            continue
        for run in state.runs:
            if run.running:
                running.append(clean(f"{run.what} by {run.who}", 80))
        if state.lock is not None and not running:
            running.append(clean(f"locked: {state.lock.describe()}", 80))
        if release is None and state.current:
            release = str(state.current)
            record = state.record_for(release)
            stamp = record.get("finished") or record.get("started")
            try:
                released = parse_stamp(str(stamp)).timestamp() if stamp else _from_name(release)
            except ValueError:
                released = _from_name(release)
    return release, released, list(dict.fromkeys(running))


def _from_name(release: str) -> float | None:
    """A release named by its UTC time (20261203T154850Z, as deploys name them)."""
    try:
        return datetime.strptime(release[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
