"""The clients of one profile: a host per spec (connections reused) and one client per system.

Shared by the CLI, the console, the read model and the actions; it holds connections, and no
state of what they returned but where each followed log was read to (`nginx_logs`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opsconsole.backends.hosts import Host, LocalHost
from opsconsole.errors import UsageError
from opsconsole.profiles import Defaults, Environment, HostSpec, Profile
from opsconsole.secrets import resolve

if TYPE_CHECKING:  # the SDK-backed modules load on first use, not at start-up
    from opsconsole.backends.alertmanager import AlertmanagerClient
    from opsconsole.backends.docker_engine import DockerClient
    from opsconsole.backends.github import CiClient
    from opsconsole.backends.log_window import Windows
    from opsconsole.backends.prometheus import PrometheusClient
    from opsconsole.backends.sentry import IssuePage, SentryClient, SentryEvent, SentryIssue
    from opsconsole.backends.supervisor import SupervisorClient

C = TypeVar("C")
K = TypeVar("K", bound=Hashable)


class IssueTracker(Protocol):
    """What the Errors pane, the issue actions and verification use of Sentry or Bugsink."""

    async def issues(self, limit: int = 100, query: str = "is:unresolved") -> IssuePage: ...

    async def latest_event(self, issue: str) -> SentryEvent: ...

    async def update(self, issue: str, body: dict[str, Any]) -> SentryIssue: ...


def make_host(spec: HostSpec, defaults: Defaults, timeout: float | None = None) -> Host:
    seconds = timeout if timeout is not None else defaults.timeout
    if spec.is_local:
        return LocalHost(spec, seconds)
    from opsconsole.backends.ssh import SshHost

    return SshHost(spec, defaults, seconds)


class HostPool:
    """One Host per spec, shared by every source so SSH connections are reused."""

    def __init__(self, defaults: Defaults) -> None:
        self.defaults = defaults
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def get(self, spec: HostSpec) -> Host:
        with self._lock:
            host = self._hosts.get(spec.raw)
            if host is None:
                host = make_host(spec, self.defaults)
                self._hosts[spec.raw] = host
            return host

    def close(self) -> None:
        with self._lock:
            hosts = list(self._hosts.values())
            self._hosts.clear()
        for host in hosts:
            try:
                host.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class Backends:
    """Connections and clients for one profile, shared by the CLI, the console and actions."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.hosts = HostPool(profile.defaults)
        self._lock = threading.Lock()
        self._supervisors: dict[tuple[str, str], SupervisorClient] = {}
        self._dockers: dict[tuple[str, str], DockerClient] = {}
        self._sentries: dict[str, SentryClient] = {}
        self._trackers: dict[str, IssueTracker] = {}
        self._ci: dict[str, CiClient] = {}
        self._prometheus: dict[str, PrometheusClient] = {}
        self._alertmanagers: dict[str, AlertmanagerClient] = {}
        self._nginx_logs: dict[tuple[str, str], Windows] = {}

    def host(self, spec: HostSpec) -> Host:
        return self.hosts.get(spec)

    def supervisor(self, env: Environment, spec: HostSpec) -> SupervisorClient:
        if env.supervisor is None:
            raise UsageError(f"environment '{env.name}' has no [supervisor] section", "Not configured")
        from opsconsole.backends.supervisor import SupervisorClient

        config = env.supervisor

        def make() -> SupervisorClient:
            password = resolve(config.password).reveal() if config.password else None
            return SupervisorClient(self.host(spec), config, password)

        return self._cached(self._supervisors, (env.name, spec.raw), make)

    def docker(self, env: Environment, spec: HostSpec) -> DockerClient:
        if env.docker is None:
            raise UsageError(f"environment '{env.name}' has no [docker] section", "Not configured")
        from opsconsole.backends.docker_engine import DockerClient

        key = (env.name, spec.raw)
        with self._lock:
            return self._dockers.setdefault(key, DockerClient(self.host(spec), env.docker))

    def issues(self, env: Environment) -> IssueTracker:
        """The environment's issue tracker: its Bugsink project, or its Sentry project."""
        if env.bugsink is not None:
            from opsconsole.backends.bugsink import BugsinkClient

            bugsink = env.bugsink
            return self._cached(
                self._trackers,
                env.name,
                lambda: BugsinkClient(bugsink, resolve(bugsink.token), self.profile.defaults.timeout),
            )
        return self.sentry(env)

    def sentry(self, env: Environment) -> SentryClient:
        """The environment's Sentry project (releases and deploys are Sentry's alone)."""
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

    def _cached(self, store: dict[K, C], key: K, make: Callable[[], C]) -> C:
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

    def alertmanager(self, env: Environment) -> AlertmanagerClient:
        """The environment's Alertmanager, one client kept for every refresh (a new one each time
        loaded the TLS context again, a fifth of an idle console's CPU)."""
        if env.alerts is None:
            raise UsageError(f"environment '{env.name}' has no [alerts] section", "Not configured")
        from opsconsole.backends.alertmanager import make_client

        config = env.alerts
        return self._cached(
            self._alertmanagers, env.name, lambda: make_client(config, self.profile.defaults.timeout)
        )

    def nginx_logs(self, env: Environment, spec: HostSpec) -> Windows:
        """Where the last read of this host's Nginx logs ended, and what of them it kept."""
        from opsconsole.backends.log_window import Windows

        return self._cached(self._nginx_logs, (env.name, spec.raw), Windows)

    def ci(self, env: Environment) -> CiClient:
        if env.ci is None:
            raise UsageError(
                f"environment '{env.name}' has no [ci] section: add repository = \"owner/repo\" (and "
                'token = { secret = "github-token" }) to gate deploys on GitHub checks, or provider = '
                '"gitlab" and project = "group/app" for GitLab CI',
                "Not configured",
            )
        from opsconsole.backends.ci import make_client

        config = env.ci
        return self._cached(
            self._ci,
            env.name,
            lambda: make_client(
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
                *self._alertmanagers.values(),
            ]
            self._alertmanagers.clear()
            self._ci.clear()
            self._prometheus.clear()
            self._supervisors.clear()
            self._dockers.clear()
            self._sentries.clear()
            self._trackers.clear()
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        self.hosts.close()
