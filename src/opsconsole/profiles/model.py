"""The typed profile: frozen dataclasses for environments, hosts and each source's settings."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from opsconsole.errors import UsageError
from opsconsole.record import field, frozen

LOCAL = "local"
PathKey = tuple[str | int, ...]


# --------------------------------------------------------------------------- typed profile


@frozen
class SecretRef:
    """A reference to a secret by name; the value comes from the environment or the keyring."""

    name: str

    def __str__(self) -> str:
        return f"<secret {self.name}>"


@frozen
class HostSpec:
    """`local`, or an SSH target `[user@]host[:port]` (user and port fall back to defaults/ssh_config)."""

    raw: str
    hostname: str
    user: str | None = None
    port: int | None = None

    @property
    def is_local(self) -> bool:
        return self.raw == LOCAL

    @property
    def label(self) -> str:
        return self.raw


@frozen
class Defaults:
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    timeout: float = 5.0
    refresh: float = 5.0
    max_sessions: int = 8  # SSH sessions at once per connection (sshd's MaxSessions is 10 by default)
    concurrency: int = 32  # hosts contacted at once by a refresh or `status` (a fleet of 200 waits its turn)


@frozen
class SupervisorConfig:
    url: str = "unix:///var/run/supervisor.sock"
    username: str | None = None
    password: SecretRef | None = None


@frozen
class DockerConfig:
    url: str = "unix:///var/run/docker.sock"


@frozen
class SentryConfig:
    organization: str
    project: str
    token: SecretRef
    url: str = "https://sentry.io"
    environment: str | None = None
    releases: bool = False  # a successful deploy creates the Sentry release and its deploy
    release_format: str = "{project}@{sha12}"
    release_token: SecretRef | None = None  # e.g. an organization token that may create releases

    def release_name(self, *, project: str, env: str, sha: str, release: str, ref: str) -> str:
        """The Sentry release version for a deploy (Sentry refuses '/', so a ref's '/' becomes '-')."""
        text = self.release_format.format(
            project=project, env=env, sha=sha, sha12=sha[:12], release=release, ref=ref.replace("/", "-")
        )
        return text[:200]


@frozen
class BugsinkConfig:
    """Bugsink, a self-hosted error tracker, in place of Sentry for the Errors pane."""

    url: str
    project: int
    token: SecretRef


@frozen
class PrometheusConfig:
    """Prometheus queries shown in the Metrics pane: label -> PromQL, in the profile's order."""

    url: str
    token: SecretRef | None = None
    queries: tuple[tuple[str, str], ...] = ()


@frozen
class CiConfig:
    """The CI whose checks gate a deploy (GitHub Actions and any GitHub check-run/status integration)."""

    repository: str
    provider: str = "github"
    url: str = "https://api.github.com"
    token: SecretRef | None = None
    checks: tuple[str, ...] = ()  # names that must pass; empty: every check run of the commit


@frozen
class VerifyConfig:
    """After a deploy: for `window` seconds the health URLs keep passing and at most `max_new_issues`
    Sentry issues at level error or above are first seen in the new release."""

    window: float = 300.0
    max_new_issues: int = 0


@frozen
class DeployConfig:
    path: str
    repo: str
    branch: str = "main"
    keep_releases: int = 5
    shared: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    migrations: tuple[str, ...] = ("*/migrations/*", "*.sql")  # paths flagged in pending commits
    strategy: str = "all_at_once"  # or "rolling": switch `batch` hosts at a time, health-gated
    batch: int = 1
    host_health: str | None = None  # checked on each host, through its SSH connection
    host_health_timeout: float = 30.0
    verify: VerifyConfig | None = None


@frozen
class CacheConfig:
    purge: tuple[str, ...] = ()


@frozen
class LogsConfig:
    files: tuple[str, ...] = ()


@frozen
class CustomAction:
    name: str
    command: str
    title: str = ""
    confirm: bool = True

    @property
    def label(self) -> str:
        return self.title or self.name


@frozen
class Environment:
    name: str
    hosts: tuple[HostSpec, ...] = ()
    color: str | None = None
    description: str | None = None
    protected: bool = False
    read_only: bool = False
    health: tuple[str, ...] = ()
    supervisor: SupervisorConfig | None = None
    docker: DockerConfig | None = None
    sentry: SentryConfig | None = None
    bugsink: BugsinkConfig | None = None
    ci: CiConfig | None = None
    prometheus: PrometheusConfig | None = None
    deploy: DeployConfig | None = None
    cache: CacheConfig | None = None
    logs: LogsConfig | None = None
    actions: tuple[CustomAction, ...] = ()

    @property
    def errors(self) -> SentryConfig | BugsinkConfig | None:
        """Where the Errors pane's issues come from: Sentry or Bugsink (never both)."""
        return self.sentry or self.bugsink

    def host(self, raw: str) -> HostSpec:
        for host in self.hosts:
            if raw in (host.raw, host.hostname):
                return host
        known = ", ".join(h.raw for h in self.hosts) or "none"
        raise UsageError(f"environment '{self.name}' has no host '{raw}' (hosts: {known})", "Unknown host")

    def action(self, name: str) -> CustomAction:
        for action in self.actions:
            if action.name == name:
                return action
        known = ", ".join(a.name for a in self.actions) or "none"
        raise UsageError(
            f"environment '{self.name}' has no custom action '{name}' (actions: {known})", "Unknown action"
        )


@frozen
class Profile:
    name: str
    path: Path
    project_name: str
    description: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    environments: Mapping[str, Environment] = field(default_factory=dict)
    keymap: Mapping[str, str] = field(default_factory=dict)

    def env(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            hint = suggest(name, list(self.environments))
            raise UsageError(
                f"profile '{self.name}' has no environment '{name}'{hint} (environments: {known})",
                "Unknown environment",
            ) from None

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret the profile names, with the key path that names it."""
        refs: list[tuple[str, SecretRef]] = []
        for env in self.environments.values():
            if env.supervisor and env.supervisor.password:
                refs.append((f"environments.{env.name}.supervisor.password", env.supervisor.password))
            if env.sentry:
                refs.append((f"environments.{env.name}.sentry.token", env.sentry.token))
                if env.sentry.release_token:
                    refs.append((f"environments.{env.name}.sentry.release_token", env.sentry.release_token))
            if env.bugsink:
                refs.append((f"environments.{env.name}.bugsink.token", env.bugsink.token))
            if env.prometheus and env.prometheus.token:
                refs.append((f"environments.{env.name}.prometheus.token", env.prometheus.token))
            if env.ci and env.ci.token:
                refs.append((f"environments.{env.name}.ci.token", env.ci.token))
        return refs


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
