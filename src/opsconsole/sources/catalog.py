"""The source catalog: one declaration per source of an environment.

A `Source` says when the profile gives an environment the source, how one result is fetched (per host
in the host's turn, or once for the environment), which pane shows it, what of it a person sees
change, how it counts in the environment's summary, and how `status --json` reports it. The refresh,
the CLI's snapshot, the summaries and the panes all read this one table: a new source is one backend
module and one `register(Source(...))`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.sources import alerts, builtin, nginx, systemd, timeline
from opsconsole.sources.fetch import Fetch, JsonPlace, Summary

if TYPE_CHECKING:
    from opsconsole.profiles import Environment, HostSpec
    from opsconsole.sources.fanout import SourceResult

__all__ = ["Fetch", "JsonPlace", "Source", "SourceKey", "Summary"]

SourceKey = tuple[str, ...]  # (source, host) for a source per host, (source,) for one per environment


def _nothing(_data: Any) -> Summary:
    return {}


def _same(data: Any) -> Any:
    return data


@dataclass(frozen=True)
class Source:
    """One source. `per_host`: a result per host of the environment, fetched in the host's turn;
    otherwise one result, fetched in the turn of `runs_on(env)` when given (it shares that host's
    connection and reads), else on its own. `derived` sources are computed once every host has had
    its turn, from what the others left in the refresh's context."""

    name: str
    title: str
    pane: str
    configured: Callable[[Environment], bool]
    fetch: Callable[[Fetch], Any]
    per_host: bool = True
    runs_on: Callable[[Environment], HostSpec | None] | None = None
    derived: bool = False
    needs_hosts: bool = False  # configured only where the environment has hosts (always when per host)
    # a result that shows nothing new only freshens the stored one (no listener is told)
    quiet_when_unchanged: bool = False
    visible: Callable[[Any], Any] = _same
    summarise: Callable[[Any], Summary] = _nothing
    to_json: Callable[[SourceResult[Any] | None, JsonPlace], None] | None = None
    not_configured: str = ""
    columns: tuple[str, ...] = ()
    rows: Callable[[Any], list[tuple[str, list[str]]]] | None = None  # plain rows, for a pane of its own


CATALOG: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add a source (or replace one of the same name); returns it, for use as a decorator's value."""
    CATALOG[source.name] = source
    return source


def unregister(name: str) -> None:
    CATALOG.pop(name, None)


def sources() -> list[Source]:
    return list(CATALOG.values())


def source(name: str) -> Source | None:
    return CATALOG.get(name)


def of_pane(pane: str) -> list[Source]:
    """The sources a pane shows, in catalog order."""
    return [s for s in sources() if s.pane == pane]


def is_on(env: Environment, src: Source) -> bool:
    """Whether the environment has the source: the profile configures it (and the hosts it needs)."""
    return src.configured(env) and (bool(env.hosts) or not (src.per_host or src.needs_hosts))


def configured_sources(env: Environment) -> list[Source]:
    return [s for s in sources() if is_on(env, s)]


def has_sources(env: Environment) -> bool:
    """Whether the environment has any source at all (a refresh would read something)."""
    return bool(configured_sources(env))


def pane_configured(env: Environment, pane: str) -> bool:
    return any(is_on(env, s) for s in of_pane(pane))


def keys_of(env: Environment, src: Source) -> list[SourceKey]:
    """The results a source owes once everyone has answered: one per host, or one for the environment."""
    if src.per_host:
        return [(src.name, h.raw) for h in env.hosts]
    return [(src.name,)]


def expected_keys(env: Environment, pane: str) -> list[SourceKey]:
    """The results a pane waits for (its "2 of 3 hosts"): those of its per-host sources, or of all
    its sources when none is per host."""
    shown = [s for s in of_pane(pane) if is_on(env, s)]
    hosted = [s for s in shown if s.per_host]
    return [key for s in (hosted or shown) for key in keys_of(env, s)]


def owed_keys(env: Environment) -> list[SourceKey]:
    """Every result a refresh of the environment owes."""
    return [key for s in configured_sources(env) for key in keys_of(env, s)]


def host_of(env: Environment, key: SourceKey) -> str | None:
    """The host in whose turn the source key is fetched; None for environment-wide sources."""
    src = CATALOG.get(key[0])
    if src is None:
        return None
    if src.per_host:
        return key[1] if len(key) > 1 else None
    if src.runs_on is not None:
        spec = src.runs_on(env)
        return spec.raw if spec is not None else None
    return None


def visible(key: SourceKey, data: Any) -> Any:
    """The part of a result a person sees change (not clocks: `now`, latency, "Up 3 minutes")."""
    src = CATALOG.get(key[0])
    return src.visible(data) if src is not None and data is not None else data


def describe_timeout(env: Environment, timeout: float) -> Callable[[SourceKey], str]:
    def describe(key: SourceKey) -> str:
        if len(key) == 2:
            return f"{key[1]}: {key[0]}: timed out after {timeout:g} s"
        return f"{env.name}: {key[0]}: timed out after {timeout:g} s"

    return describe


# ------------------------------------------------------------------ the built-in sources


def _builtins() -> Iterable[Source]:
    yield Source(
        "supervisor",
        "Supervisor",
        "processes",
        lambda env: env.supervisor is not None,
        builtin.processes,
        visible=builtin.visible_list(builtin.visible_process),
        quiet_when_unchanged=True,
        summarise=builtin.count("processes_down", lambda p: p.state in builtin.DOWN_STATES),
        to_json=builtin.json_processes,
        not_configured=(
            "Supervisor is not configured for this environment: add [environments.ENV.supervisor] "
            'url = "unix:///var/run/supervisor.sock"'
        ),
    )
    yield Source(
        "docker",
        "Docker",
        "containers",
        lambda env: env.docker is not None,
        builtin.containers,
        visible=builtin.visible_list(lambda c: (c.host, c.name, c.state, c.health, c.image, c.started_at)),
        summarise=builtin.count(
            "unhealthy_containers", lambda c: c.health == "unhealthy" or c.state in ("restarting", "dead")
        ),
        to_json=builtin.json_containers,
        not_configured=(
            "Docker is not configured for this environment: add [environments.ENV.docker] "
            'url = "unix:///var/run/docker.sock"'
        ),
    )
    yield Source(
        "deploys",
        "Deploys",
        "deploys",
        lambda env: env.deploy is not None,
        builtin.deploys,
        visible=lambda s: (s.current, tuple(s.releases), s.lock, len(s.journal)),
        summarise=lambda s: {"locked_by": s.lock.who} if s.lock is not None else {},
        to_json=builtin.json_deploys,
        not_configured="Deploys are not configured: add [environments.ENV.deploy] with path, repo, build and restart",
    )
    yield Source(
        "files",
        "Log files",
        "",  # in no pane: the log viewer's picker lists them
        lambda env: env.logs is not None and bool(env.logs.files),
        builtin.files,
        visible=builtin.visible_list(lambda f: (f.host, f.path, f.exists)),
        to_json=builtin.json_files,
    )
    yield Source(
        "ci",
        "CI",
        "deploys",
        lambda env: env.ci is not None and env.deploy is not None,
        builtin.ci,
        per_host=False,
        runs_on=builtin.first_host,
        needs_hosts=True,
        to_json=builtin.json_ci,
    )
    yield Source(
        "dora",
        "Delivery",
        "metrics",
        lambda env: env.deploy is not None,
        builtin.dora,
        per_host=False,
        needs_hosts=True,
        derived=True,
        visible=builtin.visible_dora,
    )
    yield Source(
        "prometheus",
        "Prometheus",
        "metrics",
        lambda env: env.prometheus is not None,
        builtin.prometheus,
        per_host=False,
        to_json=builtin.json_prometheus,
    )
    yield Source(
        "sentry",
        "Errors",
        "errors",
        lambda env: env.errors is not None,
        builtin.issues,
        per_host=False,
        visible=lambda page: tuple((i.id, i.count, i.users, i.last_seen, i.status) for i in page.issues),
        summarise=lambda page: {"sentry_open": len(page.issues)},
        to_json=builtin.json_issues,
        not_configured=(
            "Sentry is not connected: add [environments.ENV.sentry] with url, organization, project and "
            'token = { secret = "sentry-token" }, then `opsconsole secret set sentry-token` '
            "(or set OPSCONSOLE_SECRET_SENTRY_TOKEN); or a self-hosted Bugsink: [environments.ENV.bugsink] "
            "with url, project and token"
        ),
    )
    yield Source(
        "health",
        "Health",
        "health",
        lambda env: bool(env.health),
        builtin.health,
        per_host=False,
        visible=builtin.visible_list(lambda h: (h.url, h.ok, h.status, h.error)),
        summarise=builtin.count("health_failing", lambda h: not h.ok),
        to_json=builtin.json_health,
        not_configured='No health checks: add health = ["https://.../healthz"] to the environment',
    )
    yield Source(
        "nginx",
        "Nginx",
        "nginx",
        lambda env: env.nginx is not None,
        nginx.fetch,
        visible=nginx.visible,
        quiet_when_unchanged=True,
        summarise=nginx.summarise,
        to_json=nginx.to_json,
        not_configured=nginx.NOT_CONFIGURED,
    )
    yield Source(
        "systemd",
        "systemd",
        "units",
        lambda env: env.systemd is not None,
        systemd.fetch,
        visible=systemd.visible,
        quiet_when_unchanged=True,
        summarise=systemd.summarise,
        to_json=systemd.to_json,
        not_configured=systemd.NOT_CONFIGURED,
    )

    yield Source(
        "alerts",
        "Alerts",
        "alerts",
        lambda env: env.alerts is not None,
        alerts.fetch,
        per_host=False,
        visible=alerts.visible,
        summarise=alerts.summarise,
        to_json=alerts.to_json,
        not_configured=alerts.NOT_CONFIGURED,
    )

    yield Source(
        "timeline",
        "Timeline",
        "timeline",
        # an environment has a timeline when it has any of the sources the timeline reads
        lambda env: any(is_on(env, s) for s in (CATALOG.get(n) for n in timeline.INPUTS) if s is not None),
        timeline.fetch,
        per_host=False,
        derived=True,  # merged from the other sources' results once every host has had its turn
        quiet_when_unchanged=True,
        visible=timeline.visible,
        not_configured="The timeline merges deploys, Supervisor, Docker, systemd, errors, alerts and Nginx: "
        "configure any of them for this environment",
    )


for _builtin in _builtins():
    register(_builtin)
