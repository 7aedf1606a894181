"""Deploy, rollback and unlock on the Capistrano/Deployer layout (see backends/releases.py).

Deploy: lock every host, then on every host (in parallel) fetch the repository into a bare mirror,
export the commit into `releases/<UTC timestamp>`, link `shared` items and run the `build` commands;
only when every host has built does any host switch `current` (new symlink, then `mv -T`). Then the
restart targets, pruning to `keep_releases`, the journal, and the lock released. On any failure before
the switch, `current` is untouched everywhere, the failed release is removed, and the journal says
what failed.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from opsconsole.actions.base import (
    Action,
    Emit,
    HostResult,
    Notice,
    Option,
    Outcome,
    OutputLine,
    Plan,
    PlanStep,
    Scope,
    StepFinished,
    StepStarted,
)
from opsconsole.backends.hosts import Cancelled, Host
from opsconsole.backends.releases import JOURNAL, LOCK, STATE_DIR, DeployState, parse_lock, read_state
from opsconsole.errors import ExitCode, OpsError, RefusedError, UsageError
from opsconsole.profiles import DeployConfig, Environment, HostSpec
from opsconsole.snapshot import Backends

MIRROR = f"{STATE_DIR}/repo.git"
_REF_RE = re.compile(r"^[A-Za-z0-9._/@{}^~+-]+$")


def validate_ref(ref: str) -> str:
    """A git ref, branch, tag or sha; never an option, never shell syntax."""
    if not ref or ref.startswith("-") or not _REF_RE.match(ref) or ".." in ref:
        raise UsageError(
            f"'{ref}' is not a valid git ref (letters, digits and . _ / @ ^ ~ + - only, not starting with '-')",
            "Bad ref",
        )
    return ref


def q(text: str) -> str:
    return shlex.quote(text)


def release_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


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

    def fetch_command(self) -> str:
        mirror = f"{self.path}/{MIRROR}"
        return (
            f"mkdir -p {q(self.path + '/releases')} {q(self.path + '/shared')} {q(self.path + '/' + STATE_DIR)} && "
            f"if [ -d {q(mirror)} ]; then git --git-dir={q(mirror)} remote set-url origin {q(self.config.repo)} && "
            f"git --git-dir={q(mirror)} fetch --prune --quiet origin; "
            f"else git clone --mirror --quiet {q(self.config.repo)} {q(mirror)}; fi"
        )

    def resolve_command(self) -> str:
        mirror = f"{self.path}/{MIRROR}"
        return (
            f"git --git-dir={q(mirror)} rev-parse --verify --quiet {q(self.ref + '^{commit}')} && "
            f"git --git-dir={q(mirror)} log -1 --format=%cI {q(self.ref + '^{commit}')}"
        )

    def export_command(self, sha: str) -> str:
        mirror = f"{self.path}/{MIRROR}"
        return (
            f"mkdir {q(self.release_path)} && git --git-dir={q(mirror)} archive --format=tar {q(sha)} "
            f"| tar -x -C {q(self.release_path)} && printf '%s\\n' {q(sha)} > {q(self.release_path + '/REVISION')}"
        )

    def shared_command(self, item: str) -> str:
        shared = f"{self.path}/shared/{item}"
        inside = f"{self.release_path}/{item}"
        return (
            f'mkdir -p "$(dirname {q(shared)})" "$(dirname {q(inside)})" && '
            f"if [ ! -e {q(shared)} ]; then if [ -e {q(inside)} ]; then mv {q(inside)} {q(shared)}; "
            f"else mkdir -p {q(shared)}; fi; fi && rm -rf {q(inside)} && ln -s {q(shared)} {q(inside)}"
        )

    def build_command(self, command: str) -> str:
        return (
            f"cd {q(self.release_path)} && OPSCONSOLE_RELEASE={q(self.release)} "
            f"OPSCONSOLE_DEPLOY_PATH={q(self.path)} sh -c {q(command)}"
        )

    def switch_command(self, release: str) -> str:
        tmp = f".current.tmp-{release}"
        return f"cd {q(self.path)} && ln -sfn {q('releases/' + release)} {q(tmp)} && mv -T {q(tmp)} current"

    def journal_command(self, record: dict[str, Any]) -> str:
        line = json.dumps(record, sort_keys=True)
        return f"mkdir -p {q(self.path + '/' + STATE_DIR)} && printf '%s\\n' {q(line)} >> {q(self.path + '/' + JOURNAL)}"

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
            tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
            detail = f"{label} failed (exit {result.exit_code})" + (": " + " | ".join(tail) if tail else "")
            self.emit(StepFinished(self.name, label, False, detail))
            raise OpsError(f"{self.name}: {detail}", "Step failed")
        self.emit(StepFinished(self.name, label, True))
        return result.stdout

    def prepare(self) -> None:
        """Fetch, export the release, link shared items, build. Raises on the first failure."""
        timeout = max(self.host.timeout, 300.0)
        self.step("fetch", self.fetch_command(), timeout=timeout)
        out = self.step(f"resolve {self.ref}", self.resolve_command(), timeout=self.host.timeout).split()
        if len(out) < 2:
            raise OpsError(f"{self.name}: ref '{self.ref}' not found in {self.config.repo}", "Unknown ref")
        self.sha, self.commit_time = out[0], out[1]
        self.created = True
        self.step(
            f"export {self.sha[:12]} into releases/{self.release}",
            self.export_command(self.sha),
            timeout=timeout,
        )
        for item in self.config.shared:
            self.step(f"link shared/{item}", self.shared_command(item), timeout=self.host.timeout)
        for command in self.config.build:
            self.step(f"build: {command}", self.build_command(command), stream=True)

    def remove_release(self) -> None:
        if self.created:
            self.host.run(f"rm -rf {q(self.release_path)}", timeout=max(self.host.timeout, 60.0))

    def journal(self, record: dict[str, Any]) -> None:
        result = self.host.run(self.journal_command(record), timeout=self.host.timeout)
        if not result.ok:
            self.emit(Notice(f"{self.name}: could not append to the journal: {result.stderr.strip()[:200]}"))


# ------------------------------------------------------------------------ locks


def lock_record(user: str, why: str) -> str:
    return json.dumps({"who": user, "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "why": why})


def lock_command(path: str, record: str) -> str:
    lock = f"{path}/{LOCK}"
    return (
        f"mkdir -p {q(path + '/' + STATE_DIR)} && "
        f"if ( set -C; printf '%s\\n' {q(record)} > {q(lock)} ) 2>/dev/null; then echo @acquired; "
        f"else printf '@held\\t'; tr -d '\\n' < {q(lock)}; echo; fi"
    )


def unlock_command(path: str, record: str | None = None) -> str:
    """Remove the lock; with `record`, only if it is still ours."""
    lock = f"{path}/{LOCK}"
    if record is None:
        return f"if [ -f {q(lock)} ]; then printf '@was\\t'; tr -d '\\n' < {q(lock)}; echo; rm -f {q(lock)}; else echo @none; fi"
    return f'if [ "$(cat {q(lock)} 2>/dev/null)" = {q(record)} ]; then rm -f {q(lock)}; fi'


class Locks:
    """The deploy lock on every host: all or nothing."""

    def __init__(
        self, hosts: list[tuple[HostSpec, Host]], path: str, user: str, why: str, emit: Emit
    ) -> None:
        self.hosts = hosts
        self.path = path
        self.record = lock_record(user, why)
        self.emit = emit
        self.taken: list[tuple[HostSpec, Host]] = []

    def acquire(self) -> None:
        for spec, host in self.hosts:
            self.emit(StepStarted(spec.raw, "lock"))
            try:
                result = host.run(lock_command(self.path, self.record), timeout=host.timeout)
            except OpsError:
                self.release()
                raise
            first = result.stdout.splitlines()[0] if result.stdout else ""
            if first == "@acquired":
                self.taken.append((spec, host))
                self.emit(StepFinished(spec.raw, "lock", True))
                continue
            self.release()
            if first.startswith("@held"):
                holder = parse_lock(first.partition("\t")[2])
                self.emit(StepFinished(spec.raw, "lock", False, holder.describe()))
                raise RefusedError(
                    f"refused: {spec.raw}: the deploy lock is {holder.describe()}. If that deploy is dead, "
                    "break the lock with `opsconsole unlock ENV`",
                    "Deploy locked",
                )
            raise OpsError(
                f"{spec.raw}: could not take the deploy lock: {result.stderr.strip()[:200]}", "Lock failed"
            )

    def release(self) -> None:
        for spec, host in self.taken:
            try:
                host.run(unlock_command(self.path, self.record), timeout=host.timeout)
            except OpsError as exc:
                self.emit(
                    Notice(
                        f"{spec.raw}: could not release the deploy lock ({exc.message}); clear it with `opsconsole unlock`"
                    )
                )
        self.taken = []


# ------------------------------------------------------------------------ restart targets


def restart_steps(env: Environment, spec: HostSpec, config: DeployConfig) -> list[PlanStep]:
    steps = []
    for target in config.restart:
        kind, sep, name = target.partition(":")
        if sep and kind == "supervisor":
            steps.append(
                PlanStep(
                    spec.raw, "rpc", f"supervisor.stopProcess({name}) then supervisor.startProcess({name})"
                )
            )
        elif sep and kind == "docker":
            steps.append(PlanStep(spec.raw, "api", f"POST /containers/{name}/restart"))
        else:
            steps.append(
                PlanStep(spec.raw, "command", f"cd {q(config.path + '/current')} && sh -c {q(target)}")
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
        kind, sep, name = target.partition(":")
        try:
            if sep and kind == "supervisor":
                detail = "; ".join(backends.supervisor(env, spec).restart(name))
            elif sep and kind == "docker":
                detail = backends.docker(env, spec).restart(name)
            else:
                result = host.run(
                    f"cd {q(config.path + '/current')} && sh -c {q(target)}",
                    on_line=lambda s, line: emit(OutputLine(spec.raw, line, s)),
                    cancel=cancel,
                    timeout=max(host.timeout, 120.0),
                )
                if not result.ok:
                    raise OpsError(f"{spec.raw}: `{target}` exited with {result.exit_code}", "Restart failed")
                detail = "ok"
        except OpsError as exc:
            emit(StepFinished(spec.raw, label, False, exc.message))
            failures.append(exc.message)
            continue
        emit(StepFinished(spec.raw, label, True, detail))
    return failures


def _require_deploy(env: Environment) -> DeployConfig:
    if env.deploy is None:
        raise UsageError(f"environment '{env.name}' has no [deploy] section", "Not configured")
    if not env.hosts:
        raise UsageError(f"environment '{env.name}' has no hosts", "Not configured")
    return env.deploy


# ------------------------------------------------------------------------ deploy


class DeployAction(Action):
    id: ClassVar[str] = "deploy"
    title: ClassVar[str] = "Deploy"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    description: ClassVar[str] = "Release a ref to every host: build everywhere, then switch `current`"
    options: ClassVar[tuple[Option, ...]] = (
        Option("ref", ("--ref",), "git branch, tag or commit to release (default: the profile's branch)"),
        Option("reason", ("--reason",), "why, recorded in the deploy lock"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = _require_deploy(self.env)
        self.ref = validate_ref(str(self.target.options.get("ref") or self.config.branch))
        self.release = str(self.target.options.get("release") or release_id())
        self.reason = str(self.target.options.get("reason") or f"deploy {self.ref}")

    @property
    def target_label(self) -> str:
        return self.ref

    def _parts(self, emit: Emit) -> list[HostDeploy]:
        return [
            HostDeploy(
                spec=spec,
                host=self.ctx.backends.host(spec),
                config=self.config,
                release=self.release,
                ref=self.ref,
                user=self.ctx.user,
                cancel=self.ctx.cancel,
                emit=emit,
            )
            for spec in self.hosts
        ]

    def plan(self) -> Plan:
        steps: list[PlanStep] = []
        for part in self._parts(lambda _e: None):
            host = part.name
            steps.append(PlanStep(host, "command", lock_command(self.config.path, "<lock: who, when, why>")))
            steps.append(PlanStep(host, "command", part.fetch_command()))
            steps.append(PlanStep(host, "command", part.resolve_command()))
            steps.append(PlanStep(host, "command", part.export_command("<sha of " + self.ref + ">")))
            steps += [PlanStep(host, "command", part.shared_command(item)) for item in self.config.shared]
            steps += [PlanStep(host, "command", part.build_command(cmd)) for cmd in self.config.build]
            steps.append(PlanStep(host, "note", "after every host has built:"))
            steps.append(PlanStep(host, "command", part.switch_command(self.release)))
            steps += restart_steps(self.env, part.spec, self.config)
            steps.append(PlanStep(host, "note", f"prune releases/ to the newest {self.config.keep_releases}"))
            steps.append(
                PlanStep(
                    host,
                    "command",
                    part.journal_command({"event": "deploy", "release": self.release, "...": "..."}),
                )
            )
            steps.append(PlanStep(host, "command", unlock_command(self.config.path, "<our lock>")))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        parts = self._parts(emit)
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        locks = Locks([(p.spec, p.host) for p in parts], self.config.path, self.ctx.user, self.reason, emit)
        locks.acquire()
        try:
            return self._deploy(parts, started, emit)
        finally:
            locks.release()

    def _record(self, part: HostDeploy, started: str, outcome: str, **extra: Any) -> dict[str, Any]:
        return {
            "event": "deploy",
            "release": self.release,
            "ref": self.ref,
            "commit": part.sha,
            "commit_time": part.commit_time,
            "who": self.ctx.user,
            "started": started,
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "outcome": outcome,
            **extra,
        }

    def _deploy(self, parts: list[HostDeploy], started: str, emit: Emit) -> Outcome:
        existing: set[str] = set()
        for part in parts:
            state = read_state(part.host, self.config)
            part.previous = state.current
            existing.update(state.releases)
        if self.release in existing:  # two deploys within one second: still a fresh, sortable id
            base, n = self.release, 2
            while f"{base}-{n}" in existing:
                n += 1
            self.release = f"{base}-{n}"
            for part in parts:
                part.release = self.release
        errors: dict[str, str] = {}

        def prepare(part: HostDeploy) -> None:
            try:
                part.prepare()
            except OpsError as exc:
                errors[part.name] = exc.message

        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(prepare, parts))
        shas = {p.sha for p in parts if p.sha}
        if not errors and len(shas) > 1:
            errors.update(
                {p.name: f"{p.name}: {self.ref} resolved to {p.sha}, other hosts differ" for p in parts}
            )
        if errors:
            return self._fail_before_switch(parts, started, errors, emit)
        switched: list[HostDeploy] = []
        for part in parts:
            try:
                part.step(
                    f"switch current -> releases/{self.release}",
                    part.switch_command(self.release),
                    timeout=part.host.timeout,
                )
            except OpsError as exc:
                return self._fail_during_switch(parts, switched, part, exc, started, emit)
            part.switched = True
            switched.append(part)
        results: dict[str, str] = {}
        restart_failures: dict[str, list[str]] = {}
        for part in parts:
            failures = run_restarts(
                self.ctx.backends, self.env, part.spec, self.config, emit, self.ctx.cancel
            )
            if failures:
                restart_failures[part.name] = failures
            self._prune(part, emit)
            extra = {"restart_errors": failures} if failures else {}
            part.journal(self._record(part, started, "success", **extra))
            results[part.name] = f"releases/{self.release} ({(part.sha or '')[:12]})"
            ok = not failures
            emit(
                HostResult(
                    part.name, ok, f"current -> releases/{self.release}" + ("" if ok else "; restart failed")
                )
            )
        if restart_failures:
            detail = "; ".join(f for fs in restart_failures.values() for f in fs)
            return Outcome(
                False,
                f"deployed {self.ref} as {self.release}, but restarting failed: {detail}",
                ExitCode.FAILED,
                results,
            )
        sha = next(iter(shas))[:12] if shas else "?"
        return Outcome(
            True,
            f"deployed {self.ref} ({sha}) as {self.release} to {len(parts)} host(s)",
            ExitCode.OK,
            results,
        )

    def _fail_before_switch(
        self, parts: list[HostDeploy], started: str, errors: dict[str, str], emit: Emit
    ) -> Outcome:
        cancelled = self.ctx.cancel.is_set()
        for part in parts:
            message = errors.get(part.name) or (
                "cancelled" if cancelled else "not switched: another host failed"
            )
            try:
                part.remove_release()
                part.journal(
                    self._record(part, started, "cancelled" if cancelled else "failed", error=message)
                )
            except OpsError as exc:
                emit(Notice(f"{part.name}: cleaning up after the failure failed too: {exc.message}"))
            emit(HostResult(part.name, False, message))
        first = next(iter(errors.values()))
        verb = "cancelled" if cancelled else "failed"
        return Outcome(
            False,
            f"deploy {verb}: {first}. No host switched; current is untouched and releases/{self.release} was removed",
            ExitCode.FAILED,
            {p.name: f"still on {p.previous or 'no release'}" for p in parts},
        )

    def _fail_during_switch(
        self,
        parts: list[HostDeploy],
        switched: list[HostDeploy],
        failed: HostDeploy,
        exc: OpsError,
        started: str,
        emit: Emit,
    ) -> Outcome:
        """Switch failed on one host: put the switched hosts back, so every host runs one release."""
        hosts: dict[str, str] = {}
        for part in switched:
            if part.previous:
                try:
                    part.step(
                        f"switch back to releases/{part.previous}",
                        part.switch_command(part.previous),
                        timeout=part.host.timeout,
                    )
                    part.switched = False
                except OpsError as back:
                    emit(Notice(f"{part.name}: could not switch back: {back.message}"))
        for part in parts:
            if part.switched:
                hosts[part.name] = f"runs releases/{self.release} (could not switch back)"
            else:
                hosts[part.name] = f"runs {('releases/' + part.previous) if part.previous else 'no release'}"
            try:
                part.journal(
                    self._record(
                        part, started, "failed", error=f"switch failed on {failed.name}: {exc.message}"
                    )
                )
            except OpsError:
                pass
        state = "; ".join(f"{h}: {s}" for h, s in hosts.items())
        return Outcome(
            False,
            f"deploy failed while switching: {exc.message}. Now: {state}. Retry the deploy, or roll back with `opsconsole rollback {self.env.name}`",
            ExitCode.FAILED,
            hosts,
        )

    def _prune(self, part: HostDeploy, emit: Emit) -> None:
        try:
            state = read_state(part.host, self.config)
        except OpsError as exc:
            emit(Notice(f"{part.name}: could not list releases to prune: {exc.message}"))
            return
        keep = set(state.releases[-self.config.keep_releases :]) | {self.release}
        if part.previous:
            keep.add(part.previous)
        old = [r for r in state.releases if r not in keep]
        if not old:
            return
        targets = " ".join(q(f"{self.config.path}/releases/{r}") for r in old)
        try:
            part.step(
                f"prune {len(old)} old release(s)",
                f"rm -rf -- {targets}",
                timeout=max(part.host.timeout, 120.0),
            )
        except OpsError as exc:
            emit(Notice(f"{part.name}: pruning failed: {exc.message}"))


# ------------------------------------------------------------------------ rollback


def rollback_target(state: DeployState, to: str | None) -> str:
    if to:
        if to not in state.releases:
            raise RefusedError(
                f"refused: {state.host}: releases/{to} does not exist (have: {', '.join(state.releases) or 'none'})",
                "Nothing to roll back to",
            )
        if to == state.current:
            raise RefusedError(
                f"refused: {state.host}: releases/{to} is already current", "Nothing to roll back to"
            )
        return to
    good = [r for r in state.successful_releases if r != state.current]
    if state.current in state.releases:
        good = [r for r in good if r < state.current]
    if not good:
        raise RefusedError(
            f"refused: {state.host}: nothing to roll back to (current: {state.current or 'none'}; "
            "no earlier successful release is still on disk)",
            "Nothing to roll back to",
        )
    return good[-1]


class RollbackAction(Action):
    id: ClassVar[str] = "rollback"
    title: ClassVar[str] = "Rollback"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    destructive: ClassVar[bool] = True
    description: ClassVar[str] = "Switch `current` back to the previous good release and restart"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "to", ("--to",), "release id to roll back to (default: the previous good one)", metavar="RELEASE"
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = _require_deploy(self.env)
        to = self.target.options.get("to")
        self.to = str(to) if to else None
        if self.to and not re.fullmatch(r"[A-Za-z0-9TZ.-]+", self.to):
            raise UsageError(f"'{self.to}' is not a release id", "Bad release")

    @property
    def target_label(self) -> str:
        return self.to or "previous release"

    def plan(self) -> Any:
        steps: list[PlanStep] = []
        for spec in self.hosts:
            host = spec.raw
            part = HostDeploy(
                spec,
                self.ctx.backends.host(spec),
                self.config,
                "<target>",
                "-",
                self.ctx.user,
                self.ctx.cancel,
            )
            steps.append(PlanStep(host, "command", lock_command(self.config.path, "<lock: who, when, why>")))
            steps.append(
                PlanStep(
                    host, "note", f"target: {self.to or 'the previous successful release before current'}"
                )
            )
            steps.append(PlanStep(host, "command", part.switch_command(self.to or "<target>")))
            steps.append(
                PlanStep(host, "command", part.journal_command({"event": "mark_bad", "release": "<current>"}))
            )
            steps.append(
                PlanStep(
                    host,
                    "command",
                    part.journal_command({"event": "rollback", "from": "<current>", "to": "<target>"}),
                )
            )
            steps += restart_steps(self.env, spec, self.config)
            steps.append(PlanStep(host, "command", unlock_command(self.config.path, "<our lock>")))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        pairs = [(spec, self.ctx.backends.host(spec)) for spec in self.hosts]
        locks = Locks(pairs, self.config.path, self.ctx.user, f"rollback to {self.to or 'previous'}", emit)
        locks.acquire()
        try:
            return self._rollback(pairs, emit)
        finally:
            locks.release()

    def _rollback(self, pairs: list[tuple[HostSpec, Host]], emit: Emit) -> Outcome:
        plans: list[tuple[HostSpec, Host, DeployState, str]] = []
        for spec, host in pairs:
            state = read_state(host, self.config)
            plans.append((spec, host, state, rollback_target(state, self.to)))
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        results: dict[str, str] = {}
        failures: list[str] = []
        for spec, host, state, target in plans:
            part = HostDeploy(spec, host, self.config, target, "-", self.ctx.user, self.ctx.cancel, emit)
            part.step(
                f"switch current -> releases/{target}", part.switch_command(target), timeout=host.timeout
            )
            if state.current:
                part.journal(
                    {
                        "event": "mark_bad",
                        "release": state.current,
                        "who": self.ctx.user,
                        "time": when,
                        "reason": "rolled back",
                    }
                )
            part.journal(
                {
                    "event": "rollback",
                    "from": state.current,
                    "to": target,
                    "release": target,
                    "who": self.ctx.user,
                    "started": when,
                    "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "outcome": "success",
                }
            )
            failures += run_restarts(self.ctx.backends, self.env, spec, self.config, emit, self.ctx.cancel)
            results[spec.raw] = f"releases/{target}"
            emit(HostResult(spec.raw, True, f"current -> releases/{target} (was {state.current})"))
        if failures:
            return Outcome(
                False, "rolled back, but restarting failed: " + "; ".join(failures), ExitCode.FAILED, results
            )
        targets = sorted(set(results.values()))
        return Outcome(True, f"rolled back to {', '.join(targets)}", ExitCode.OK, results)


# ------------------------------------------------------------------------ unlock


class UnlockAction(Action):
    id: ClassVar[str] = "unlock"
    title: ClassVar[str] = "Break deploy lock"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    destructive: ClassVar[bool] = True
    description: ClassVar[str] = "Remove a stale deploy lock (audited)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = _require_deploy(self.env)

    @property
    def target_label(self) -> str:
        return "deploy lock"

    def plan(self) -> Any:
        return self.make_plan(
            [PlanStep(spec.raw, "command", unlock_command(self.config.path)) for spec in self.hosts]
        )

    def execute(self, emit: Emit) -> Outcome:
        results = {}
        broken = []
        for spec in self.hosts:
            host = self.ctx.backends.host(spec)
            emit(StepStarted(spec.raw, "unlock"))
            result = host.run(unlock_command(self.config.path), timeout=host.timeout, check=True)
            line = result.stdout.strip()
            if line.startswith("@was"):
                holder = parse_lock(line.partition("\t")[2])
                results[spec.raw] = f"broke the lock {holder.describe()}"
                broken.append(spec.raw)
            else:
                results[spec.raw] = "was not locked"
            emit(StepFinished(spec.raw, "unlock", True, results[spec.raw]))
            emit(HostResult(spec.raw, True, results[spec.raw]))
        message = "; ".join(f"{h}: {m}" for h, m in results.items())
        return Outcome(True, message, ExitCode.OK, results)
