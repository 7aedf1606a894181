"""Live state of a profile's environments: every source queried concurrently, each with a deadline.

`Backends` holds the per-profile connections (one per host, reused) and clients. `collect()` runs
every configured source of the chosen environments at once; a source that has not answered by its
deadline reports "timed out", so one dead host never delays the others. Each result carries either
data or an error string naming the host, the source and the cause.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from opsconsole.backends.hosts import Host, HostPool
from opsconsole.errors import OpsError, UsageError
from opsconsole.profiles import Environment, HostSpec, Profile
from opsconsole.secrets import redact, resolve

if TYPE_CHECKING:  # the SDK-backed modules load on first use, not at start-up
    from opsconsole.backends.docker_engine import ContainerInfo, ContainerStats, DockerClient
    from opsconsole.backends.files import FileInfo
    from opsconsole.backends.github import CiReport, GitHubChecks
    from opsconsole.backends.health import HealthResult
    from opsconsole.backends.prometheus import PrometheusClient, PromReport
    from opsconsole.backends.releases import DeployState
    from opsconsole.backends.sentry import IssuePage, SentryClient
    from opsconsole.backends.supervisor import ProcessInfo, SupervisorClient

T = TypeVar("T")
C = TypeVar("C")
DEADLINE_MARGIN = 0.3  # the whole snapshot stays within timeout + 0.5 s


@dataclass
class SourceResult(Generic[T]):
    """Data or an error, never both; `configured` is False when the profile leaves the source out."""

    data: T | None = None
    error: str | None = None
    configured: bool = True
    fetched_at: float = field(default_factory=time.time)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Backends:
    """Connections and clients for one profile, shared by the CLI, the console and actions."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.hosts = HostPool(profile.defaults)
        # the workers of every refresh and snapshot of this profile (`defaults.concurrency` hosts)
        self.pools = SourcePools(profile.defaults.concurrency)
        self._lock = threading.Lock()
        self._supervisors: dict[tuple[str, str], SupervisorClient] = {}
        self._dockers: dict[tuple[str, str], DockerClient] = {}
        self._sentries: dict[str, SentryClient] = {}
        self._ci: dict[str, GitHubChecks] = {}
        self._prometheus: dict[str, PrometheusClient] = {}
        # per environment: the Sentry release whose new issues the Errors pane shows (None: all open)
        self.issues_release: dict[str, str] = {}
        # (environment, host) -> (the journal's last record when read, its records or why not):
        # read in the host's turn over its connection, again only when the journal has grown
        self.journals: dict[tuple[str, str], tuple[str, Any]] = {}

    def host(self, spec: HostSpec) -> Host:
        return self.hosts.get(spec)

    def supervisor(self, env: Environment, spec: HostSpec) -> SupervisorClient:
        if env.supervisor is None:
            raise UsageError(f"environment '{env.name}' has no [supervisor] section", "Not configured")
        from opsconsole.backends.supervisor import SupervisorClient

        key = (env.name, spec.raw)
        with self._lock:
            client = self._supervisors.get(key)
        if client is None:
            password = resolve(env.supervisor.password).reveal() if env.supervisor.password else None
            client = SupervisorClient(self.host(spec), env.supervisor, password)
            with self._lock:
                client = self._supervisors.setdefault(key, client)
        return client

    def docker(self, env: Environment, spec: HostSpec) -> DockerClient:
        if env.docker is None:
            raise UsageError(f"environment '{env.name}' has no [docker] section", "Not configured")
        from opsconsole.backends.docker_engine import DockerClient

        key = (env.name, spec.raw)
        with self._lock:
            return self._dockers.setdefault(key, DockerClient(self.host(spec), env.docker))

    def sentry(self, env: Environment) -> SentryClient:
        """The Errors pane's client: Sentry's, or Bugsink's adapter behind the same interface."""
        if env.bugsink is not None:
            from opsconsole.backends.bugsink import BugsinkClient

            bugsink = env.bugsink
            store = cast("dict[str, Any]", self._sentries)
            client: Any = self._cached(
                store,
                env.name,
                lambda: BugsinkClient(bugsink, resolve(bugsink.token), self.profile.defaults.timeout),
            )
            return cast("SentryClient", client)  # the same interface (issues, latest_event, update)
        if env.sentry is None:
            raise UsageError(
                f"environment '{env.name}' has no [sentry] section: add organization, project and "
                'token = { secret = "sentry-token" } to connect a Sentry project',
                "Not configured",
            )
        from opsconsole.backends.sentry import SentryClient

        config = env.sentry
        return self._cached(
            self._sentries,
            env.name,
            lambda: SentryClient(config, resolve(config.token), self.profile.defaults.timeout),
        )

    def _cached(self, store: dict[str, C], key: str, make: Callable[[], C]) -> C:
        """One client per key, made outside the lock (making one may read the keyring)."""
        with self._lock:
            client = store.get(key)
        if client is None:
            client = make()
            with self._lock:
                client = store.setdefault(key, client)
        return client

    def sentry_releases(self, env: Environment) -> SentryClient:
        """The client that creates releases: `sentry.release_token` when set, else the token."""
        config = env.sentry
        if config is None or config.release_token is None:
            return self.sentry(env)
        from opsconsole.backends.sentry import SentryClient

        return SentryClient(config, resolve(config.release_token), self.profile.defaults.timeout)

    def prometheus(self, env: Environment) -> PrometheusClient:
        if env.prometheus is None:
            raise UsageError(f"environment '{env.name}' has no [prometheus] section", "Not configured")
        from opsconsole.backends.prometheus import PrometheusClient

        config = env.prometheus
        return self._cached(
            self._prometheus,
            env.name,
            lambda: PrometheusClient(
                config, resolve(config.token) if config.token else None, self.profile.defaults.timeout
            ),
        )

    def ci(self, env: Environment) -> GitHubChecks:
        if env.ci is None:
            raise UsageError(
                f"environment '{env.name}' has no [ci] section: add repository = \"owner/repo\" (and "
                'token = { secret = "github-token" }) to gate deploys on GitHub checks',
                "Not configured",
            )
        from opsconsole.backends.github import GitHubChecks

        config = env.ci
        return self._cached(
            self._ci,
            env.name,
            lambda: GitHubChecks(
                config, resolve(config.token) if config.token else None, self.profile.defaults.timeout
            ),
        )

    def close(self) -> None:
        with self._lock:
            clients: list[Any] = [
                *self._supervisors.values(),
                *self._dockers.values(),
                *self._ci.values(),
                *self._prometheus.values(),
            ]
            self._ci.clear()
            self._prometheus.clear()
            self._supervisors.clear()
            self._dockers.clear()
            self._sentries.clear()
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        self.pools.close()
        self.hosts.close()


def run_with_deadline(
    tasks: dict[Any, Callable[[], Any]],
    deadline: float,
    describe_timeout: Callable[[Any], str],
    on_result: Callable[[Any, SourceResult[Any]], None] | None = None,
    start: Callable[[Callable[[], None]], None] | None = None,
) -> dict[Any, SourceResult[Any]]:
    """Run each task in its own daemon thread (or on `start`'s workers); whatever has not finished by
    `deadline` times out.

    `on_result(key, result)` is called as each result arrives (timeouts included), so a caller can
    show fast sources at once while slow ones are still waiting.
    """
    results: dict[Any, SourceResult[Any]] = {}
    lock = threading.Lock()
    done = threading.Event()
    remaining = [len(tasks)]

    def runner(key: Any, task: Callable[[], Any]) -> None:
        result = _attempt(task)
        with lock:
            fresh = key not in results
            results.setdefault(key, result)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        if fresh and on_result is not None:
            on_result(key, result)

    if not tasks:
        return results
    for key, task in tasks.items():
        if start is not None:
            start(partial(runner, key, task))
        else:
            threading.Thread(target=runner, args=(key, task), daemon=True, name=f"source-{key}").start()
    done.wait(max(0.0, deadline - time.monotonic()))
    late: list[tuple[Any, SourceResult[Any]]] = []
    with lock:
        for key in tasks:
            if key not in results:
                results[key] = SourceResult(error=describe_timeout(key))
                late.append((key, results[key]))
        out = dict(results)
    if on_result is not None:
        for key, result in late:
            on_result(key, result)
    return out


class Workers:
    """A pool of reusable daemon threads (a stuck source never holds up the process's exit, unlike
    ThreadPoolExecutor's): a thread is started only when none is idle, up to `size`."""

    def __init__(self, size: int, name: str) -> None:
        import queue

        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0 and self._threads < self.size
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # an idle worker takes it (or it waits for the first free one)
        self._queue.put(job)
        if start:
            threading.Thread(target=self._work, daemon=True, name=f"{self.name}-{self._threads}").start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - jobs report their own errors; a worker never dies of one
                pass
            # an idle worker must not keep its last job alive (and with it that refresh's results)
            job = None
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)


class SourcePools:
    """Long-lived workers for the sources: `concurrency` host workers (a host's turn: its sources
    start together over its one connection) and the workers its sources run on. Threads are reused,
    not made per source and refresh: with 200 hosts, thread churn alone cost ~200 KiB of RSS a host."""

    SOURCES_PER_HOST = 4  # supervisor, docker, deploys, files

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self.hosts = Workers(self.concurrency, "host")
        # room for sources still waiting on a host that did not answer in its turn
        self.sources = Workers(self.concurrency * self.SOURCES_PER_HOST * 2, "source")

    def close(self) -> None:
        self.hosts.close()
        self.sources.close()


def fan_out(
    tasks: dict[Any, Callable[[], Any]],
    budget: float,
    describe_timeout: Callable[[Any], str],
    on_result: Callable[[Any, SourceResult[Any]], None] | None = None,
    *,
    host_of: Callable[[Any], str | None] = lambda _key: None,
    pools: SourcePools,
    on_done: Callable[[dict[Any, SourceResult[Any]]], None] | None = None,
) -> dict[Any, SourceResult[Any]] | None:
    """Every task with `budget` seconds, at most `pools.concurrency` hosts at once.

    The sources of one host (`host_of(key)`) start together when the host's turn comes (hosts wait
    in order), share its one connection, and have `budget` seconds from then: a host that does not
    answer holds its turn for at most that long. Sources of no host (Sentry, health URLs...) start
    at once. Blocks and returns the results; with `on_done`, returns at once and hands the results
    to `on_done` (on a worker thread) when every host has had its turn.
    """
    groups: dict[str | None, dict[Any, Callable[[], Any]]] = {}
    for key, task in tasks.items():
        groups.setdefault(host_of(key), {})[key] = task
    results: dict[Any, SourceResult[Any]] = {}
    lock = threading.Lock()
    ungrouped = groups.pop(None, None)
    pending = [len(groups) + (1 if ungrouped else 0)]
    finished = threading.Event()

    def merge(out: dict[Any, SourceResult[Any]]) -> None:
        with lock:
            results.update(out)
            pending[0] -= 1
            last = pending[0] == 0
        if last:
            finished.set()
            if on_done is not None:
                on_done(dict(results))

    if pending[0] == 0:
        if on_done is None:
            return {}
        on_done({})
        return None
    if ungrouped:
        batch = ungrouped
        threading.Thread(
            target=lambda: merge(
                run_with_deadline(batch, time.monotonic() + budget, describe_timeout, on_result)
            ),
            daemon=True,
            name="env-sources",
        ).start()
    for batch in groups.values():

        def turn(batch: dict[Any, Callable[[], Any]] = batch) -> None:
            out: dict[Any, SourceResult[Any]] = {}
            try:
                out = run_with_deadline(
                    batch, time.monotonic() + budget, describe_timeout, on_result, start=pools.sources.submit
                )
            finally:
                merge(out)

        pools.hosts.submit(turn)
    if on_done is not None:
        return None
    finished.wait()
    return results


def _attempt(task: Callable[[], Any]) -> SourceResult[Any]:
    started = time.monotonic()
    try:
        result: SourceResult[Any] = SourceResult(data=task())
    except OpsError as exc:
        result = SourceResult(error=redact(exc.message))
    except Exception as exc:  # noqa: BLE001 - a bug in one source must not hide the others
        result = SourceResult(error=redact(f"{type(exc).__name__}: {exc}"))
    result.elapsed = time.monotonic() - started
    return result


@dataclass
class HostSnapshot:
    supervisor: SourceResult[list[ProcessInfo]]
    docker: SourceResult[list[ContainerInfo]]
    deploys: SourceResult[DeployState]
    files: SourceResult[list[FileInfo]]
    stats: SourceResult[dict[str, ContainerStats | str]] | None = None


@dataclass
class EnvSnapshot:
    name: str
    hosts: dict[str, HostSnapshot]
    sentry: SourceResult[IssuePage]
    health: SourceResult[list[HealthResult]]
    ci: SourceResult[CiReport] = field(default_factory=lambda: SourceResult(configured=False))
    prometheus: SourceResult[PromReport] = field(default_factory=lambda: SourceResult(configured=False))
    errors_from: str = "sentry"  # or "bugsink": where the issues come from

    def errors(self) -> list[str]:
        out = []
        for snap in self.hosts.values():
            for source in (snap.supervisor, snap.docker, snap.deploys, snap.files, snap.stats):
                if source is not None and source.error:
                    out.append(source.error)
        for env_source in (self.sentry, self.health, self.ci, self.prometheus):
            if env_source.error:
                out.append(env_source.error)
        return out


SOURCES = ("supervisor", "docker", "deploys", "files")


def _not_configured() -> SourceResult[Any]:
    return SourceResult(configured=False)


def has_sources(env: Environment) -> bool:
    """Whether the environment configures any source at all (what env_tasks would find)."""
    hosted = env.hosts and (env.supervisor or env.docker or env.deploy or (env.logs and env.logs.files))
    return bool(hosted or env.errors or env.health or env.prometheus)


SOURCE_NAMES = ("supervisor", "docker", "deploys", "sentry", "health", "metrics")
METRIC_SOURCES = ("dora", "prometheus")  # the Metrics pane's two sources


def configured(env: Environment, source: str) -> bool:
    """Whether the profile gives the environment this source (one rule for the panes and the app)."""
    return {
        "supervisor": env.supervisor is not None,
        "docker": env.docker is not None,
        "deploys": env.deploy is not None,
        "sentry": env.errors is not None,
        "health": bool(env.health),
        "metrics": (env.deploy is not None and bool(env.hosts)) or env.prometheus is not None,
    }[source]


def owed_keys(env: Environment) -> list[tuple[str, ...]]:
    """Every result a refresh of the environment owes: per configured source, per host where hosted."""
    return [key for source in SOURCE_NAMES if configured(env, source) for key in expected_keys(env, source)]


def expected_keys(env: Environment, source: str) -> list[tuple[str, ...]]:
    """The results a source owes once everyone has answered: one per host, or one for the environment."""
    if source in ("sentry", "health"):
        return [(source,)]
    if source == "metrics":
        return [
            (s,)
            for s, on in (("dora", env.deploy is not None and env.hosts), ("prometheus", env.prometheus))
            if on
        ]
    return [(source, h.raw) for h in env.hosts]


def env_tasks(
    backends: Backends, env: Environment, stats: bool = False
) -> dict[tuple[str, ...], Callable[[], Any]]:
    """Every configured source of one environment as a task keyed (source, host) or (source,)."""
    tasks: dict[tuple[str, ...], Callable[[], Any]] = {}
    timeout = backends.profile.defaults.timeout

    def processes(spec: HostSpec) -> list[ProcessInfo]:
        return backends.supervisor(env, spec).processes()

    def containers(spec: HostSpec) -> Any:
        client = backends.docker(env, spec)
        found = client.containers()
        if not stats:
            return found
        return found, client.stats([c.name for c in found if c.state == "running"])

    def deploys(spec: HostSpec) -> DeployState:
        from opsconsole.backends.releases import read_state

        assert env.deploy is not None
        state = read_state(backends.host(spec), env.deploy)
        if spec == env.hosts[0]:  # the run logs live on the first host: who is running what now
            from opsconsole.runlog import latest_runs

            try:
                state.runs = [r for r in latest_runs(backends.host(spec), env, 3) if r.running]
            except OpsError as exc:
                state.warnings.append(f"run logs: {exc.message}")
        read_journal_if_grown(backends, env, spec, state)
        return state

    def files(spec: HostSpec) -> list[FileInfo]:
        from opsconsole.backends.files import list_files

        assert env.logs is not None
        return list_files(backends.host(spec), env.logs.files)

    def issues() -> IssuePage:
        release = backends.issues_release.get(env.name)
        query = f"is:unresolved firstRelease:{release}" if release else "is:unresolved"
        return asyncio.run(backends.sentry(env).issues(query=query))

    def ci(spec: HostSpec) -> CiReport:
        """CI of what runs (the first host's current release) and of the branch head."""
        from opsconsole.actions.pending import current_commit
        from opsconsole.backends.github import ci_report
        from opsconsole.backends.releases import read_state

        assert env.deploy is not None
        state = read_state(backends.host(spec), env.deploy)
        return ci_report(backends.ci(env), env.deploy.branch, state.current, current_commit(state))

    def health() -> list[HealthResult]:
        from opsconsole.backends.health import check_all

        return asyncio.run(check_all(env.health, timeout))

    for spec in env.hosts:
        if env.supervisor is not None:
            tasks[("supervisor", spec.raw)] = partial(processes, spec)
        if env.docker is not None:
            tasks[("docker", spec.raw)] = partial(containers, spec)
        if env.deploy is not None:
            tasks[("deploys", spec.raw)] = partial(deploys, spec)
        if env.logs is not None and env.logs.files:
            tasks[("files", spec.raw)] = partial(files, spec)
    if env.ci is not None and env.deploy is not None and env.hosts:
        tasks[("ci",)] = partial(ci, env.hosts[0])
    if env.prometheus is not None:
        tasks[("prometheus",)] = lambda: backends.prometheus(env).series(time.time())
    if env.errors is not None:
        tasks[("sentry",)] = issues
    if env.health:
        tasks[("health",)] = health
    return tasks


def host_of(key: tuple[str, ...]) -> str | None:
    """The host a source key (…, source, host) talks to; None for environment-wide sources."""
    return key[-1] if len(key) >= 2 and key[-2] in SOURCES else None


def read_journal_if_grown(backends: Backends, env: Environment, spec: HostSpec, state: DeployState) -> None:
    """Keep the host's whole journal for the delivery metrics: read again only when its last record
    (which `read_state` just saw) differs from the one at the last reading."""
    import json

    from opsconsole.backends.releases import read_journal

    assert env.deploy is not None
    key = (env.name, spec.raw)
    last = json.dumps(state.journal[-1:], sort_keys=True) if state.exists else "missing"
    cached = backends.journals.get(key)
    if cached is not None and cached[0] == last and not isinstance(cached[1], Exception):
        return
    value: Any
    if not state.exists:
        value = ([], [])
    else:
        try:
            value = read_journal(backends.host(spec), env.deploy)
        except OpsError as exc:
            value = exc
    backends.journals[key] = (last, value)


def dora_result(backends: Backends, env: Environment) -> SourceResult[Any]:
    """DORA keys over 90 days from the journals the hosts' deploys sources keep (the Metrics pane)."""
    from datetime import UTC, datetime

    from opsconsole.metrics import collect_dora

    journals: dict[str, Any] = {}
    for spec in env.hosts:
        cached = backends.journals.get((env.name, spec.raw))
        journals[spec.raw] = cached[1] if cached else OpsError("its journal could not be read yet")
    try:
        return SourceResult(data=collect_dora(journals, env.name, datetime.now(UTC)))
    except OpsError as exc:
        return SourceResult(error=exc.message)


def describe_timeout(env: Environment, timeout: float) -> Callable[[tuple[str, ...]], str]:
    def describe(key: tuple[str, ...]) -> str:
        if len(key) == 2:
            return f"{key[1]}: {key[0]}: timed out after {timeout:g} s"
        return f"{env.name}: {key[0]}: timed out after {timeout:g} s"

    return describe


def assemble(env: Environment, results: dict[tuple[str, ...], SourceResult[Any]]) -> EnvSnapshot:
    hosts: dict[str, HostSnapshot] = {}
    for spec in env.hosts:
        docker = results.get(("docker", spec.raw), _not_configured())
        stats: SourceResult[Any] | None = None
        if docker.data is not None and isinstance(docker.data, tuple):
            containers, sample = docker.data
            stats = SourceResult(data=sample, fetched_at=docker.fetched_at, elapsed=docker.elapsed)
            docker = SourceResult(data=containers, fetched_at=docker.fetched_at, elapsed=docker.elapsed)
        hosts[spec.raw] = HostSnapshot(
            supervisor=results.get(("supervisor", spec.raw), _not_configured()),
            docker=docker,
            deploys=results.get(("deploys", spec.raw), _not_configured()),
            files=results.get(("files", spec.raw), _not_configured()),
            stats=stats,
        )
    return EnvSnapshot(
        name=env.name,
        hosts=hosts,
        sentry=results.get(("sentry",), _not_configured()),
        health=results.get(("health",), _not_configured()),
        ci=results.get(("ci",), _not_configured()),
        prometheus=results.get(("prometheus",), _not_configured()),
        errors_from="bugsink" if env.bugsink is not None else "sentry",
    )


def collect(backends: Backends, env_names: list[str], stats: bool = False) -> dict[str, EnvSnapshot]:
    """One snapshot of every configured source of the named environments, all concurrently."""
    profile = backends.profile
    timeout = profile.defaults.timeout
    tasks: dict[Any, Callable[[], Any]] = {}
    for name in env_names:
        env = profile.env(name)
        for key, task in env_tasks(backends, env, stats).items():
            tasks[(name, *key)] = task
    # stats take one ~1 s sample after the list: allow for it
    budget = timeout + DEADLINE_MARGIN + (timeout if stats else 0.0)

    def describe(key: tuple[str, ...]) -> str:
        return describe_timeout(profile.env(key[0]), timeout)(key[1:])

    results = fan_out(tasks, budget, describe, host_of=host_of, pools=backends.pools)
    assert results is not None
    out: dict[str, EnvSnapshot] = {}
    for name in env_names:
        env = profile.env(name)
        if env.deploy is not None and env.hosts:
            results[(name, "dora")] = dora_result(backends, env)
        mine = {key[1:]: value for key, value in results.items() if key[0] == name}
        out[name] = assemble(env, mine)
    return out


# ------------------------------------------------------------------------ JSON


def _source_json(source: SourceResult[Any], key: str, items: Callable[[Any], Any]) -> dict[str, Any]:
    data = items(source.data) if source.data is not None else ([] if key != "state" else None)
    out: dict[str, Any] = {key: data, "error": source.error}
    if not source.configured:
        out["configured"] = False
    return out


def snapshot_json(snapshots: dict[str, EnvSnapshot]) -> dict[str, Any]:
    envs: dict[str, Any] = {}
    for name, snap in snapshots.items():
        hosts: dict[str, Any] = {}
        for host, hs in snap.hosts.items():
            docker = _source_json(hs.docker, "containers", lambda cs: [c.to_json() for c in cs])
            if hs.stats is not None and hs.stats.data is not None:
                for container in docker["containers"]:
                    sample = hs.stats.data.get(container["name"])
                    if sample is not None and not isinstance(sample, str):  # a str is its error
                        container["cpu_percent"] = sample.cpu_percent
                        container["memory_bytes"] = sample.memory_bytes
                        container["memory_percent"] = sample.memory_percent

            deploys: dict[str, Any]
            if hs.deploys.data is not None:
                state = hs.deploys.data
                deploys = {
                    "current": state.current,
                    "releases": state.releases,
                    "lock": state.to_json()["lock"],
                    "recent": state.recent(10),
                    "path_exists": state.exists,
                    "warnings": state.warnings,
                    "error": None,
                }
            else:
                deploys = {
                    "current": None,
                    "releases": [],
                    "lock": None,
                    "recent": [],
                    "warnings": [],
                    "error": hs.deploys.error,
                }
                if not hs.deploys.configured:
                    deploys["configured"] = False
            hosts[host] = {
                "supervisor": _source_json(hs.supervisor, "processes", lambda ps: [p.to_json() for p in ps]),
                "docker": docker,
                "deploys": deploys,
                "logs": _source_json(hs.files, "files", lambda fs: [f.to_json() for f in fs]),
            }
        sentry = _source_json(snap.sentry, "issues", lambda page: [i.to_json() for i in page.issues])
        if snap.sentry.data is not None:
            sentry["notes"] = snap.sentry.data.notes
        health: list[dict[str, Any]] = [h.to_json() for h in snap.health.data] if snap.health.data else []
        # a Bugsink-backed environment reports its issues under `bugsink`, in the same shape
        envs[name] = {"hosts": hosts, snap.errors_from: sentry, "health": health}
        if snap.prometheus.configured:
            envs[name]["prometheus"] = {
                "series": snap.prometheus.data.to_json()["series"]
                if snap.prometheus.data is not None
                else {},
                "error": snap.prometheus.error,
            }
        if snap.ci.configured:
            envs[name]["ci"] = {
                **(snap.ci.data.to_json() if snap.ci.data is not None else {}),
                "error": snap.ci.error,
            }
        if snap.health.error:
            envs[name]["health_error"] = snap.health.error
    return {"environments": envs}
