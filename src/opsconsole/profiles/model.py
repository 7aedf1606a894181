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


class HealthUrl(str):
    """A health URL and the statuses that count as healthy for it (empty: any 2xx). It is the URL
    string itself, so whatever lists, prints or compares health URLs is unchanged."""

    expect: tuple[int, ...]

    def __new__(cls, url: str, expect: tuple[int, ...] = ()) -> HealthUrl:
        self = super().__new__(cls, url)
        self.expect = expect
        return self


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
    # label filters ("KEY=VALUE" or "KEY") a container must all match to be this environment's:
    # on a shared engine the others are neither listed nor controlled
    labels: tuple[str, ...] = ()


def format_release(fmt: str, *, project: str, env: str, sha: str, release: str, ref: str) -> str:
    """A deploy's release name for an error tracker: `fmt` filled in, at most 200 characters, a
    ref's '/' as '-' (Sentry refuses '/', Bugsink drops it)."""
    text = fmt.format(project=project, env=env, sha=sha, sha12=sha[:12], release=release, ref=ref.replace("/", "-"))
    return text[:200]


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
        return format_release(self.release_format, project=project, env=env, sha=sha, release=release, ref=ref)


@frozen
class BugsinkConfig:
    """Bugsink, a self-hosted error tracker, in place of Sentry for the Errors pane. An issue's first
    release is the first of the releases its events came with (Bugsink's `events_at`), each named as
    the app's SDK reported it: `release_format` must name a deploy the same way."""

    url: str
    project: int
    token: SecretRef
    release_format: str = "{project}@{sha12}"

    def release_name(self, *, project: str, env: str, sha: str, release: str, ref: str) -> str:
        """The release name the app reports for a deploy, as Bugsink keeps it: at most 200 characters
        (Bugsink cuts longer ones) and no '/' (Bugsink drops it), so a ref's '/' becomes '-', as for
        Sentry; an app that puts its ref in the release replaces '/' the same way."""
        return format_release(self.release_format, project=project, env=env, sha=sha, release=release, ref=ref)


@frozen
class PrometheusConfig:
    """Prometheus queries shown in the Metrics pane: label -> PromQL, in the profile's order."""

    url: str
    token: SecretRef | None = None
    queries: tuple[tuple[str, str], ...] = ()


@frozen
class AlertsConfig:
    """The Alertmanager (API v2) whose alerts belong to this environment: the ones its matchers
    (Alertmanager syntax, values quoted) select; a bearer token or, through `basic`, a secret
    holding `user:password`; the default length of a silence and of an ack, in seconds."""

    url: str
    matchers: tuple[str, ...] = ()
    token: SecretRef | None = None
    basic: SecretRef | None = None
    silence_default: float = 3600.0
    ack: float = 900.0


@frozen
class CiConfig:
    """The CI whose checks gate a deploy: GitHub (check runs and commit statuses of `repository`)
    or GitLab (the commit statuses, i.e. jobs, of `project`). The loader fills `url` with the
    provider's public API when the profile leaves it out, and holds exactly one of repository
    (github) or project (gitlab) set."""

    repository: str = ""
    provider: str = "github"
    url: str = "https://api.github.com"
    token: SecretRef | None = None
    checks: tuple[str, ...] = ()  # names that must pass; empty: every check run of the commit
    project: str = ""  # gitlab: `group/app` (any depth) or a numeric project id

    @property
    def name(self) -> str:
        """What the CI calls the code: `owner/repo` (GitHub) or the GitLab project."""
        return self.project if self.provider == "gitlab" else self.repository

    @property
    def title(self) -> str:
        return {"github": "GitHub", "gitlab": "GitLab"}.get(self.provider, self.provider)


@frozen
class VerifyConfig:
    """After a deploy: for `window` seconds the health URLs keep passing and at most `max_new_issues`
    Sentry issues at level error or above are first seen in the new release."""

    window: float = 300.0
    max_new_issues: int = 0


@frozen
class FabricConfig:
    """The team's fabfile (relative to the profile's folder, or absolute), the `fab` that runs it
    (None: the Fabric installed with opsconsole), whether the environment's hosts go to `fab` as `-H`,
    and the seconds one `fab` run may take."""

    fabfile: str = "fabfile.py"
    fab: str | None = None
    hosts_flag: bool = True
    timeout: float = 1800.0
    expose_tasks: bool = False  # every task the fabfile lists runs as the action `fab:TASK`


@frozen
class DeployConfig:
    path: str
    repo: str = ""  # required unless strategy = "fabric" (schema.py checks)
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
    # strategy = "fabric": the fabfile's tasks one deploy (and one rollback) runs, in order, and
    # this environment's overrides of the profile's [fabric] section
    tasks: tuple[str, ...] = ()
    rollback_tasks: tuple[str, ...] = ()
    fabfile: str | None = None
    fab: str | None = None
    hosts_flag: bool | None = None


@frozen
class CacheConfig:
    purge: tuple[str, ...] = ()


@frozen
class LogsConfig:
    files: tuple[str, ...] = ()


@frozen
class NginxConfig:
    """Nginx on every host of the environment: its binary, config and prefix (None: the binary's
    compiled-in ones), its logs (Debian's paths by default), a `stub_status` URL as the host sees
    it, the minutes of log read, the access log's format (a regex with named groups; None: Nginx's
    `combined`), what serves each upstream ("127.0.0.1:8000" -> "supervisor:shop-web") and the
    reload command (None: `nginx -s reload` with the same -p/-c)."""

    binary: str = "nginx"
    config: str | None = None
    prefix: str | None = None
    access_log: str = "/var/log/nginx/access.log"
    error_log: str = "/var/log/nginx/error.log"
    status_url: str | None = None
    window: float = 5.0  # minutes
    log_format: str | None = None
    upstreams: tuple[tuple[str, str], ...] = ()
    reload: str | None = None


@frozen
class SystemdConfig:
    """systemd units on every host of the environment: names or globs (`shop-*.service`), the
    user's manager (`systemctl --user`) or the system's, and whether changes run as `sudo -n`."""

    units: tuple[str, ...] = ()
    user: bool = False
    sudo: bool = False


@frozen
class CustomAction:
    name: str
    command: str = ""  # a shell command, or (with `fab`) empty: exactly one of the two (schema.py)
    title: str = ""
    confirm: bool = True
    fab: str | None = None  # a task of the fabfile, run like a fabric deploy's tasks

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
    nginx: NginxConfig | None = None
    systemd: SystemdConfig | None = None
    alerts: AlertsConfig | None = None
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
    fabric: FabricConfig | None = None

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
