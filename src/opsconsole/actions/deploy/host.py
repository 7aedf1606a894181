"""One host's part of a deploy or rollback (its commands and their execution), and restart targets."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsconsole.actions.base import PlanStep
from opsconsole.actions.deploy.shell import MIRROR, journal_command, state_dir_command, switch_command
from opsconsole.actions.events import Emit, Notice, OutputLine, StepFinished, StepStarted
from opsconsole.backends.clients import Backends
from opsconsole.backends.hosts import Cancelled, CommandFailed, Host
from opsconsole.backends.releases import (
    DeployState,
    read_state,
)
from opsconsole.backends.shell import quote, quote_path
from opsconsole.backends.systemd import change as systemd_change
from opsconsole.backends.systemd import change_command
from opsconsole.errors import OpsError, UsageError
from opsconsole.profiles import DeployConfig, Environment, HostSpec
from opsconsole.profiles.model import SystemdConfig


@dataclass
class HostDeploy:
    """One host's part of a deploy: its commands (for the plan) and their execution."""

    spec: HostSpec
    host: Host
    config: DeployConfig
    release: str
    ref: str
    user: str
    cancel: threading.Event
    emit: Emit = field(default=lambda _e: None)
    sha: str | None = None
    commit_time: str | None = None
    previous: str | None = None
    created: bool = False
    switched: bool = False

    @property
    def name(self) -> str:
        return self.spec.raw

    @property
    def path(self) -> str:
        return self.config.path

    @property
    def release_path(self) -> str:
        return f"{self.path}/releases/{self.release}"

    # --------------------------------------------------------------- commands

    # Userland: every command below uses only what POSIX, GNU, BusyBox and BSD (macOS) share, or
    # picks the variant the host has; each note names what is not plain POSIX.

    def fetch_command(self) -> str:
        mirror = quote_path(f"{self.path}/{MIRROR}")
        return (
            f"mkdir -p {quote_path(self.path + '/releases')} {quote_path(self.path + '/shared')} && {state_dir_command(self.path)} && "
            f"if [ -d {mirror} ]; then git --git-dir={mirror} remote set-url origin {quote(self.config.repo)} && "
            f"git --git-dir={mirror} fetch --prune --quiet origin; "
            f"else git clone --mirror --quiet {quote(self.config.repo)} {mirror}; fi"
        )

    def resolve_command(self) -> str:
        mirror = quote_path(f"{self.path}/{MIRROR}")
        return (
            f"git --git-dir={mirror} rev-parse --verify --quiet {quote(self.ref + '^{commit}')} && "
            f"git --git-dir={mirror} log -1 --format=%cI {quote(self.ref + '^{commit}')}"
        )

    def export_command(self, sha: str) -> str:
        mirror = quote_path(f"{self.path}/{MIRROR}")
        # `tar -x -C`: GNU, BusyBox and bsdtar alike
        return (
            f"mkdir {quote_path(self.release_path)} && git --git-dir={mirror} archive --format=tar {quote(sha)} "
            f"| tar -x -C {quote_path(self.release_path)} && printf '%s\\n' {quote(sha)} > {quote_path(self.release_path + '/REVISION')}"
        )

    def shared_command(self, item: str) -> str:
        """Link shared/ITEM into the release. ITEM is validated: relative, inside the release, no '..'."""
        shared = quote_path(f"{self.path}/shared/{item}")
        inside = quote_path(f"{self.release_path}/{item}")
        return (
            f'mkdir -p "$(dirname {shared})" "$(dirname {inside})" && '
            f"if [ ! -e {shared} ]; then if [ -e {inside} ]; then mv {inside} {shared}; "
            f"else mkdir -p {shared}; fi; fi && rm -rf {inside} && ln -s {shared} {inside}"
        )

    def build_command(self, command: str) -> str:
        return (
            f"cd {quote_path(self.release_path)} && OPSCONSOLE_RELEASE={quote(self.release)} "
            f"OPSCONSOLE_DEPLOY_PATH={quote_path(self.path)} sh -c {quote(command)}"
        )

    def switch_command(self, release: str) -> str:
        return switch_command(self.path, release)

    def journal_command(self, record: dict[str, Any]) -> str:
        return journal_command(self.path, record)

    # --------------------------------------------------------------- execution

    def step(self, label: str, command: str, stream: bool = False, timeout: float | None = None) -> str:
        if self.cancel.is_set():
            raise Cancelled(f"{self.name}: cancelled before {label}")
        self.emit(StepStarted(self.name, label))

        def on_line(_stream: str, line: str) -> None:
            self.emit(OutputLine(self.name, line, _stream))

        try:
            result = self.host.run(
                command, on_line=on_line if stream else None, cancel=self.cancel, timeout=timeout
            )
        except OpsError as exc:
            self.emit(StepFinished(self.name, label, False, exc.message))
            raise
        if not result.ok:
            failure = CommandFailed(self.name, label, result, "Step failed")
            self.emit(StepFinished(self.name, label, False, failure.message.split(": ", 1)[1]))
            raise failure
        self.emit(StepFinished(self.name, label, True))
        return result.stdout

    def fetch_and_resolve(self) -> None:
        """Fetch the mirror and resolve the ref to a commit (nothing in releases/ changes)."""
        self.step("fetch", self.fetch_command(), timeout=max(self.host.timeout, 300.0))
        label = f"resolve {self.ref}"
        if self.cancel.is_set():
            raise Cancelled(f"{self.name}: cancelled before {label}")
        self.emit(StepStarted(self.name, label))
        try:
            self.sha, self.commit_time = resolve_ref(self.host, self.config, self.ref)
        except OpsError as exc:
            self.emit(StepFinished(self.name, label, False, exc.message))
            raise
        self.emit(StepFinished(self.name, label, True, self.sha[:12]))

    def build(self) -> None:
        """Export the resolved commit into the new release, link shared items, run the build."""
        assert self.sha is not None
        self.created = True
        self.step(
            f"export {self.sha[:12]} into releases/{self.release}",
            self.export_command(self.sha),
            timeout=max(self.host.timeout, 300.0),
        )
        for item in self.config.shared:
            self.step(f"link shared/{item}", self.shared_command(item), timeout=self.host.timeout)
        for command in self.config.build:
            self.step(f"build: {command}", self.build_command(command), stream=True)

    def prepare(self) -> None:
        """Fetch, export the release, link shared items, build. Raises on the first failure."""
        self.fetch_and_resolve()
        self.build()

    def health_command(self, url: str, timeout: float) -> str:
        return health_command(url, timeout)

    def remove_release(self) -> None:
        if self.created:
            self.host.run(f"rm -rf -- {quote_path(self.release_path)}", timeout=max(self.host.timeout, 60.0))

    def journal(self, record: dict[str, Any]) -> None:
        result = self.host.run(self.journal_command(record), timeout=self.host.timeout)
        if not result.ok:
            self.emit(Notice(f"{self.name}: could not append to the journal: {result.stderr.strip()[:200]}"))


def resolve_ref(host: Host, config: DeployConfig, ref: str) -> tuple[str, str]:
    """(sha, committer time) of `ref` in the host's mirror; OpsError naming the ref when unknown."""
    part = HostDeploy(host.spec, host, config, "", ref, "", threading.Event())
    result = host.run(part.resolve_command(), timeout=host.timeout)
    out = result.stdout.split()
    if not result.ok or len(out) < 2:
        raise OpsError(f"{host.name}: ref '{ref}' not found in {config.repo}", "Unknown ref")
    return out[0], out[1]


# ------------------------------------------------------------------------ host health

# Runs on the host (python3 is already needed by the watchdog): poll URL once a second until it
# answers 2xx or TIMEOUT seconds pass; print the last answer. No proxy from the environment is used.
# Healthy is the rule of backends.health.healthy: 2xx, redirects not followed (a 3xx is its answer).
_HEALTH_SCRIPT = """import sys, time, urllib.error, urllib.request
url, deadline = sys.argv[1], time.time() + float(sys.argv[2])
class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), Stay())
last = "no answer"
while True:
    try:
        with opener.open(url, timeout=5) as r:
            if 200 <= r.status < 300:
                print("HTTP %d" % r.status)
                sys.exit(0)
            last = "HTTP %d" % r.status
    except urllib.error.HTTPError as e:
        last = "HTTP %d" % e.code
    except Exception as e:
        last = str(getattr(e, "reason", e)) or type(e).__name__
    if time.time() > deadline:
        print(last)
        sys.exit(1)
    time.sleep(1)
"""


def health_command(url: str, timeout: float) -> str:
    return f"python3 -c {quote(_HEALTH_SCRIPT)} {quote(url)} {quote(f'{timeout:g}')}"


# ------------------------------------------------------------------------ restart targets


def restart_kind(target: str) -> tuple[str, str]:
    """A restart target: ("supervisor", NAME), ("docker", NAME), ("systemd", UNIT), or ("command",
    the shell command)."""
    kind, sep, name = target.partition(":")
    return (kind, name) if sep and kind in ("supervisor", "docker", "systemd") else ("command", target)


def _systemd_of(env: Environment) -> SystemdConfig:
    """The environment's [systemd] section; a `systemd:` restart target without one runs plain
    `systemctl` (the system manager, no sudo)."""
    return env.systemd if env.systemd is not None else SystemdConfig(units=())


def restart_steps(env: Environment, spec: HostSpec, config: DeployConfig) -> list[PlanStep]:
    steps = []
    for target in config.restart:
        kind, name = restart_kind(target)
        if kind == "supervisor":
            steps.append(
                PlanStep(
                    spec.raw, "rpc", f"supervisor.stopProcess({name}) then supervisor.startProcess({name})"
                )
            )
        elif kind == "docker":
            steps.append(PlanStep(spec.raw, "api", f"POST /containers/{name}/restart"))
        elif kind == "systemd":
            steps.append(PlanStep(spec.raw, "command", change_command(_systemd_of(env), "restart", name)))
        else:
            steps.append(
                PlanStep(spec.raw, "command", f"cd {quote_path(config.path + '/current')} && sh -c {quote(target)}")
            )
    return steps


def run_restarts(
    backends: Backends,
    env: Environment,
    spec: HostSpec,
    config: DeployConfig,
    emit: Emit,
    cancel: threading.Event,
) -> list[str]:
    """Run the restart targets on one host; returns the failures (empty when all went well)."""
    failures = []
    host = backends.host(spec)
    for target in config.restart:
        label = f"restart {target}"
        emit(StepStarted(spec.raw, label))
        kind, name = restart_kind(target)
        try:
            if kind == "supervisor":
                detail = "; ".join(backends.supervisor(env, spec).restart(name))
            elif kind == "docker":
                detail = backends.docker(env, spec).restart(name)
            elif kind == "systemd":
                detail = systemd_change(host, _systemd_of(env), "restart", name)
            else:
                result = host.run(
                    f"cd {quote_path(config.path + '/current')} && sh -c {quote(target)}",
                    on_line=lambda s, line: emit(OutputLine(spec.raw, line, s)),
                    cancel=cancel,
                    timeout=max(host.timeout, 120.0),
                )
                if not result.ok:
                    raise CommandFailed(spec.raw, f"`{target}`", result, "Restart failed")
                detail = "ok"
        except OpsError as exc:
            emit(StepFinished(spec.raw, label, False, exc.message))
            failures.append(exc.message)
            continue
        emit(StepFinished(spec.raw, label, True, detail))
    return failures


def read_states(
    backends: Backends, hosts: list[HostSpec], config: DeployConfig
) -> dict[str, DeployState | OpsError]:
    """Every host's deploy state at once (each call has the host's timeout); errors as values."""

    def one(spec: HostSpec) -> DeployState | OpsError:
        try:
            return read_state(backends.host(spec), config)
        except OpsError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return dict(zip([h.raw for h in hosts], pool.map(one, hosts), strict=True))


def describe_release(state: DeployState, release: str | None) -> str:
    """`releases/ID (ref main, 1a2b3c4d5e6f)`, from the journal's record of that release."""
    if not release:
        return "no release yet"
    record = state.record_for(release)
    detail = ", ".join(
        x
        for x in (f"ref {record['ref']}" if record.get("ref") else "", str(record.get("commit") or "")[:12])
        if x
    )
    return f"releases/{release}" + (f" ({detail})" if detail else "")


def require_deploy(env: Environment) -> DeployConfig:
    if env.deploy is None:
        raise UsageError(f"environment '{env.name}' has no [deploy] section", "Not configured")
    if not env.hosts:
        raise UsageError(f"environment '{env.name}' has no hosts", "Not configured")
    return env.deploy
