"""The read model of one profile: its sources fetched into one `FleetState`.

`refresh(env)` reads every source of an environment on the profile's shared workers and returns at
once (the console); `collect(envs)` does the same for several environments and waits (the CLI's
`status`). Both fill the same state through the catalog, so the console and `status --json` see one
shape. Results go into the state as each arrives.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.sources.catalog import (
    Fetch,
    SourceKey,
    configured_sources,
    describe_timeout,
    host_of,
    owed_keys,
)
from opsconsole.sources.fanout import DEADLINE_MARGIN, SourcePools, SourceResult, Workers, fan_out
from opsconsole.sources.state import FleetState

if TYPE_CHECKING:
    from opsconsole.backends.clients import Backends
    from opsconsole.backends.releases import DeployState
    from opsconsole.profiles import Environment, HostSpec


class RefreshContext:
    """What the sources of one refresh of one environment share: the deploy state each host's
    `deploys` read (so `ci` reuses the first host's, in its turn), the journals cache, the issue
    filter, and whether container stats are sampled with the containers."""

    def __init__(self, model: ReadModel, env: Environment, with_stats: bool = False) -> None:
        self.model = model
        self.env = env
        self.with_stats = with_stats
        self.issues_release = model.state.issues_release
        self._states: dict[str, DeployState | BaseException] = {}
        self._read = threading.Condition()

    def deploy_state_read(self, host: str, state: DeployState) -> None:
        with self._read:
            self._states[host] = state
            self._read.notify_all()

    def deploy_state_failed(self, host: str, error: BaseException) -> None:
        with self._read:
            self._states[host] = error
            self._read.notify_all()

    def deploy_state(self, host: str) -> DeployState:
        """The state the host's `deploys` source read in this refresh (waits for it, within the
        refresh's deadline: both run in the host's turn)."""
        budget = self.model.profile.defaults.timeout + DEADLINE_MARGIN
        with self._read:
            if not self._read.wait_for(lambda: host in self._states, budget):
                raise OpsError(f"{host}: its deploy state was not read in time")
            found = self._states[host]
        if isinstance(found, BaseException):
            message = found.message if isinstance(found, OpsError) else f"{type(found).__name__}: {found}"
            raise OpsError(f"{host}: its deploy state could not be read: {message}")
        return found

    def put_stats(self, host: str, sample: dict[str, Any]) -> None:
        self.model.state.put_stats(self.env.name, host, sample)

    def read_journal_if_grown(self, spec: HostSpec, state: DeployState) -> None:
        self.model.read_journal_if_grown(self.env, spec, state)

    def dora(self, env: Environment) -> Any:
        return self.model.dora(env)


def env_tasks(
    context: RefreshContext, env: Environment, only: Collection[str] | None = None
) -> dict[SourceKey, Callable[[], Any]]:
    """Every configured, fetched (not derived) source of one environment as a task by its key
    (of the sources named in `only`, when given)."""
    clients = context.model.clients
    tasks: dict[SourceKey, Callable[[], Any]] = {}
    for src in configured_sources(env):
        if src.derived or (only is not None and src.name not in only):
            continue
        if src.per_host:
            for spec in env.hosts:
                tasks[(src.name, spec.raw)] = partial(src.fetch, Fetch(clients, env, spec, context))
        else:
            runs_on = src.runs_on(env) if src.runs_on is not None else None
            tasks[(src.name,)] = partial(src.fetch, Fetch(clients, env, runs_on, context))
    return tasks


class ReadModel:
    """The sources of one profile, its workers and its state (shared by every refresh)."""

    def __init__(self, clients: Backends, state: FleetState | None = None) -> None:
        self.clients = clients
        self.profile = clients.profile
        self.state = state if state is not None else FleetState(clients.profile)
        concurrency = self.profile.defaults.concurrency
        self.pools = SourcePools(concurrency)
        self.stats_workers = Workers(max(1, concurrency), "stats")  # never holds a host's turn
        # (environment, host) -> (the journal's last record when read, its records or why not):
        # read in the host's turn over its connection, again only when the journal has grown
        self.journals: dict[tuple[str, str], tuple[str, Any]] = {}

    def refresh(
        self,
        env_name: str,
        on_done: Callable[[], None] | None = None,
        *,
        with_stats: bool = False,
        budget: float | None = None,
        only: Collection[str] | None = None,
    ) -> None:
        """Fetch every source of the environment (those in `only`, when given: the overview of
        `--all` reads a few) into the state; returns at once. `on_done` runs
        (on a worker thread) once every host has had its turn and the derived sources are in.
        Whatever fails, every result it owes says why, and `on_done` still runs."""
        env = self.profile.env(env_name)
        timeout = self.profile.defaults.timeout
        context = RefreshContext(self, env, with_stats)

        def put(key: SourceKey, result: SourceResult[Any]) -> None:
            self.state.put(env_name, key, result)

        def failed(exc: BaseException) -> None:
            error = f"refresh of {env_name} failed: {type(exc).__name__}: {exc}"
            for key in owed_keys(env):
                if only is None or key[0] in only:
                    put(key, SourceResult(error=error))

        def done(_results: Any) -> None:
            try:
                for src in configured_sources(env):
                    if src.derived and (only is None or src.name in only):
                        put((src.name,), _derive(src, Fetch(self.clients, env, None, context)))
            except Exception as exc:  # noqa: BLE001 - shown in the panes, and the refresh goes on
                failed(exc)
            finally:
                if on_done is not None:
                    on_done()

        try:
            tasks = env_tasks(context, env, only)
        except Exception as exc:  # noqa: BLE001
            failed(exc)
            tasks = {}
        if not tasks:
            done({})
            return
        fan_out(
            tasks,
            budget if budget is not None else timeout + DEADLINE_MARGIN,
            describe_timeout(env, timeout),
            on_result=put,
            host_of=lambda key: host_of(env, key),
            pools=self.pools,
            on_done=done,
        )

    def collect(self, env_names: list[str], with_stats: bool = False) -> FleetState:
        """Every source of the named environments at once; waits for all of them (the CLI)."""
        timeout = self.profile.defaults.timeout
        # stats take one ~1 s sample after the list: allow for it
        budget = timeout + DEADLINE_MARGIN + (timeout if with_stats else 0.0)
        left = [len(env_names)]
        lock = threading.Lock()
        all_done = threading.Event()

        def one_done() -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                all_done.set()

        if not env_names:
            return self.state
        for name in env_names:
            self.refresh(name, one_done, with_stats=with_stats, budget=budget)
        all_done.wait()
        return self.state

    def sample_stats(self, env_name: str) -> None:
        """Container stats of every host whose containers are known, each on a stats worker (about
        a second a host, all at once)."""
        env = self.profile.env(env_name)
        for key, result in list(self.state.of(env_name).items()):
            if key[0] != "docker" or not result.data:
                continue
            spec = env.host(key[1])
            running = [c.name for c in result.data if c.state == "running"]
            self.stats_workers.submit(partial(self._sample, env, spec, running))

    def _sample(self, env: Environment, spec: HostSpec, running: list[str]) -> None:
        try:
            sample = self.clients.docker(env, spec).stats(running)
        except OpsError:
            return
        self.state.put_stats(env.name, spec.raw, sample)

    def read_journal_if_grown(self, env: Environment, spec: HostSpec, state: DeployState) -> None:
        """Keep the host's whole journal for the delivery metrics: read again only when its last
        record (which `read_state` just saw) differs from the one at the last reading."""
        from opsconsole.backends.releases import read_journal

        assert env.deploy is not None
        key = (env.name, spec.raw)
        last = json.dumps(state.journal[-1:], sort_keys=True) if state.exists else "missing"
        cached = self.journals.get(key)
        if cached is not None and cached[0] == last and not isinstance(cached[1], Exception):
            return
        value: Any
        if not state.exists:
            value = ([], [])
        else:
            try:
                value = read_journal(self.clients.host(spec), env.deploy)
            except OpsError as exc:
                value = exc
        self.journals[key] = (last, value)

    def dora(self, env: Environment) -> Any:
        """DORA keys over 90 days from the journals the hosts' `deploys` keep (the Metrics pane)."""
        from datetime import UTC, datetime

        from opsconsole.metrics import collect_dora

        journals: dict[str, Any] = {}
        for spec in env.hosts:
            cached = self.journals.get((env.name, spec.raw))
            journals[spec.raw] = cached[1] if cached else OpsError("its journal could not be read yet")
        return collect_dora(journals, env.name, datetime.now(UTC))

    def close(self) -> None:
        self.pools.close()
        self.stats_workers.close()


def _derive(src: Any, fetch: Fetch) -> SourceResult[Any]:
    started = time.monotonic()
    try:
        result: SourceResult[Any] = SourceResult(data=src.fetch(fetch))
    except OpsError as exc:
        result = SourceResult(error=exc.message)
    result.elapsed = time.monotonic() - started
    return result
