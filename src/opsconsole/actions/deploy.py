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
from opsconsole.backends.releases import (
    BEAT,
    HEARTBEAT_SECONDS,
    JOURNAL,
    LOCK,
    STATE_DIR,
    DeployState,
    parse_lock,
    read_state,
    rq,
)
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

    # Userland: every command below uses only what POSIX, GNU, BusyBox and BSD (macOS) share, or
    # picks the variant the host has; each note names what is not plain POSIX.

    def fetch_command(self) -> str:
        mirror = rq(f"{self.path}/{MIRROR}")
        return (
            f"mkdir -p {rq(self.path + '/releases')} {rq(self.path + '/shared')} {rq(self.path + '/' + STATE_DIR)} && "
            f"if [ -d {mirror} ]; then git --git-dir={mirror} remote set-url origin {q(self.config.repo)} && "
            f"git --git-dir={mirror} fetch --prune --quiet origin; "
            f"else git clone --mirror --quiet {q(self.config.repo)} {mirror}; fi"
        )

    def resolve_command(self) -> str:
        mirror = rq(f"{self.path}/{MIRROR}")
        return (
            f"git --git-dir={mirror} rev-parse --verify --quiet {q(self.ref + '^{commit}')} && "
            f"git --git-dir={mirror} log -1 --format=%cI {q(self.ref + '^{commit}')}"
        )

    def export_command(self, sha: str) -> str:
        mirror = rq(f"{self.path}/{MIRROR}")
        # `tar -x -C`: GNU, BusyBox and bsdtar alike
        return (
            f"mkdir {rq(self.release_path)} && git --git-dir={mirror} archive --format=tar {q(sha)} "
            f"| tar -x -C {rq(self.release_path)} && printf '%s\\n' {q(sha)} > {rq(self.release_path + '/REVISION')}"
        )

    def shared_command(self, item: str) -> str:
        """Link shared/ITEM into the release. ITEM is validated: relative, inside the release, no '..'."""
        shared = rq(f"{self.path}/shared/{item}")
        inside = rq(f"{self.release_path}/{item}")
        return (
            f'mkdir -p "$(dirname {shared})" "$(dirname {inside})" && '
            f"if [ ! -e {shared} ]; then if [ -e {inside} ]; then mv {inside} {shared}; "
            f"else mkdir -p {shared}; fi; fi && rm -rf {inside} && ln -s {shared} {inside}"
        )

    def build_command(self, command: str) -> str:
        return (
            f"cd {rq(self.release_path)} && OPSCONSOLE_RELEASE={q(self.release)} "
            f"OPSCONSOLE_DEPLOY_PATH={rq(self.path)} sh -c {q(command)}"
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
            self.host.run(f"rm -rf -- {rq(self.release_path)}", timeout=max(self.host.timeout, 60.0))

    def journal(self, record: dict[str, Any]) -> None:
        result = self.host.run(self.journal_command(record), timeout=self.host.timeout)
        if not result.ok:
            self.emit(Notice(f"{self.name}: could not append to the journal: {result.stderr.strip()[:200]}"))


def switch_command(path: str, release: str) -> str:
    """Point `current` at releases/RELEASE atomically: a new symlink renamed over the old one.

    rename(2) of a symlink is atomic everywhere; the flag that makes `mv` rename the link itself
    rather than move into the folder it points at differs: GNU and BusyBox `mv -T`, BSD/macOS
    `mv -h`; python3's os.replace is the fallback. `ln -sfn`: GNU, BusyBox and BSD."""
    tmp = q(f".current.tmp-{release}")
    return (
        f"cd {rq(path)} && ln -sfn {q('releases/' + release)} {tmp} && "
        f"{{ mv -T {tmp} current 2>/dev/null || mv -h {tmp} current 2>/dev/null || "
        f"python3 -c 'import os,sys; os.replace(sys.argv[1], sys.argv[2])' {tmp} current; }}"
    )


def journal_command(path: str, record: dict[str, Any]) -> str:
    """Append one record; it always starts on a fresh line, even after a truncated last line."""
    line = json.dumps(record, sort_keys=True)
    journal = rq(f"{path}/{JOURNAL}")
    # `tail -c`: POSIX
    return (
        f"mkdir -p {rq(path + '/' + STATE_DIR)} && "
        f'{{ if [ -s {journal} ] && [ -n "$(tail -c 1 {journal})" ]; then echo; fi; '
        f"printf '%s\\n' {q(line)}; }} >> {journal}"
    )


# ------------------------------------------------------------------------ locks


def lock_record(user: str, why: str, run: str | None = None) -> str:
    record = {"who": user, "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "why": why}
    if run:
        record["run"] = run
    return json.dumps(record)


def lock_command(path: str, record: str) -> str:
    """Take the lock atomically (`set -C`: POSIX noclobber) and start its heartbeat; or say who holds it
    with the host's clock and the holder's last heartbeat (`date +%s`: GNU, BusyBox, BSD)."""
    lock, beat = rq(f"{path}/{LOCK}"), rq(f"{path}/{BEAT}")
    return (
        f"mkdir -p {rq(path + '/' + STATE_DIR)} && "
        f"if ( set -C; printf '%s\\n' {q(record)} > {lock} ) 2>/dev/null; then date +%s > {beat}; echo @acquired; "
        f"else printf '@held\\t'; tr -d '\\n' < {lock}; "
        f'printf \'\\t%s\\t%s\\n\' "$(date +%s)" "$(tr -dc 0-9 < {beat} 2>/dev/null)"; fi'
    )


def heartbeat_command(path: str, record: str) -> str:
    """Renew the heartbeat while the lock is still ours; `@lost` when someone broke it."""
    lock, beat = rq(f"{path}/{LOCK}"), rq(f"{path}/{BEAT}")
    return f'if [ "$(cat {lock} 2>/dev/null)" = {q(record)} ]; then date +%s > {beat}; else echo @lost; fi'


def unlock_command(path: str, record: str | None = None) -> str:
    """Remove the lock; with `record`, only if it is still ours."""
    lock, beat = rq(f"{path}/{LOCK}"), rq(f"{path}/{BEAT}")
    if record is None:
        return (
            f"if [ -f {lock} ]; then printf '@was\\t'; tr -d '\\n' < {lock}; "
            f'printf \'\\t%s\\t%s\\n\' "$(date +%s)" "$(tr -dc 0-9 < {beat} 2>/dev/null)"; '
            f"rm -f {lock} {beat}; else echo @none; fi"
        )
    return f'if [ "$(cat {lock} 2>/dev/null)" = {q(record)} ]; then rm -f {lock} {beat}; fi'


def parse_held(line: str) -> Any:
    """The LockInfo from `@held\tLOCK\tNOW\tBEAT` (or `@was…`)."""
    fields = line.split("\t")
    text = fields[1] if len(fields) > 1 else ""
    now = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    beat = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None
    return parse_lock(text, now, beat)


class Locks:
    """The deploy lock on every host: all or nothing."""

    def __init__(
        self,
        hosts: list[tuple[HostSpec, Host]],
        path: str,
        user: str,
        why: str,
        emit: Emit,
        run: str | None = None,
        env: str = "ENV",
    ) -> None:
        self.hosts = hosts
        self.path = path
        self.record = lock_record(user, why, run)
        self.emit = emit
        self.env = env
        self.taken: list[tuple[HostSpec, Host]] = []
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def _heartbeat(self) -> None:
        """Renew the heartbeat on every held lock, so a SIGKILLed deploy's lock shows as stale."""
        lost: set[str] = set()
        while not self._stop.wait(HEARTBEAT_SECONDS):
            for spec, host in list(self.taken):
                try:
                    result = host.run(heartbeat_command(self.path, self.record), timeout=host.timeout)
                except OpsError:
                    continue  # the next beat tries again; staleness needs 60 s of silence
                if "@lost" in result.stdout and spec.raw not in lost:
                    lost.add(spec.raw)
                    self.emit(
                        Notice(f"{spec.raw}: the deploy lock was broken by someone else while this ran")
                    )

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
                holder = parse_held(first)
                self.emit(StepFinished(spec.raw, "lock", False, holder.describe()))
                advice = (
                    f"it is stale: break it with `opsconsole unlock {self.env}`"
                    if holder.stale
                    else f"if that deploy is dead, break the lock with `opsconsole unlock {self.env}`"
                )
                raise RefusedError(
                    f"refused: {spec.raw}: the deploy lock is {holder.describe()}; {advice}",
                    "Deploy locked",
                )
            raise OpsError(
                f"{spec.raw}: could not take the deploy lock: {result.stderr.strip()[:200]}", "Lock failed"
            )
        self._beats = threading.Thread(target=self._heartbeat, daemon=True, name="lock-heartbeat")
        self._beats.start()

    def release(self) -> None:
        self._stop.set()
        if self._beats is not None and self._beats is not threading.current_thread():
            self._beats.join(max((h.timeout for _s, h in self.taken), default=5.0) + 1)
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
                PlanStep(spec.raw, "command", f"cd {rq(config.path + '/current')} && sh -c {q(target)}")
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
                    f"cd {rq(config.path + '/current')} && sh -c {q(target)}",
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
        locks = Locks(
            [(p.spec, p.host) for p in parts],
            self.config.path,
            self.ctx.user,
            self.reason,
            emit,
            run=self.ctx.run_id,
            env=self.env.name,
        )
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
            "run": self.ctx.run_id,
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
        if errors or self.ctx.cancel.is_set():
            if not errors:
                errors = {p.name: f"{p.name}: interrupted before the switch" for p in parts}
            return self._fail_before_switch(parts, started, errors, emit)
        # The commit point. From here on an interrupt no longer undoes the deploy: the switch, the
        # restarts and the journal are finished (quickly) so no host is left half-switched.
        interrupted_after_switch = threading.Event()
        for part in parts:
            part.cancel = interrupted_after_switch
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
                self.ctx.backends, self.env, part.spec, self.config, emit, interrupted_after_switch
            )
            if failures:
                restart_failures[part.name] = failures
            extra: dict[str, Any] = {"restart_errors": failures} if failures else {}
            if self.ctx.cancel.is_set():
                extra["note"] = "interrupted after the switch; the deploy was completed"
            part.journal(self._record(part, started, "success", **extra))
            self._prune(part, emit)
            results[part.name] = f"releases/{self.release} ({(part.sha or '')[:12]})"
            ok = not failures
            emit(
                HostResult(
                    part.name, ok, f"current -> releases/{self.release}" + ("" if ok else "; restart failed")
                )
            )
        late = (
            " (the interrupt came after the switch, so the deploy was completed)"
            if self.ctx.cancel.is_set()
            else ""
        )
        if restart_failures:
            detail = "; ".join(f for fs in restart_failures.values() for f in fs)
            return Outcome(
                False,
                f"deployed {self.ref} as {self.release}, but restarting failed: {detail}{late}",
                ExitCode.FAILED,
                results,
            )
        sha = next(iter(shas))[:12] if shas else "?"
        return Outcome(
            True,
            f"deployed {self.ref} ({sha}) as {self.release} to {len(parts)} host(s){late}",
            ExitCode.OK,
            results,
        )

    def _fail_before_switch(
        self, parts: list[HostDeploy], started: str, errors: dict[str, str], emit: Emit
    ) -> Outcome:
        interrupted = self.ctx.cancel.is_set()
        created = any(p.created for p in parts)
        for part in parts:
            message = errors.get(part.name) or (
                "interrupted" if interrupted else "not switched: another host failed"
            )
            try:
                part.remove_release()
                part.journal(
                    self._record(part, started, "interrupted" if interrupted else "failed", error=message)
                )
            except OpsError as exc:
                emit(
                    Notice(
                        f"{part.name}: cleaning up after the failure failed too: {exc.message}; "
                        f"remove releases/{self.release} by hand (it is not current and never was)"
                    )
                )
            emit(HostResult(part.name, False, message))
        first = next(iter(errors.values()))
        verb = "interrupted" if interrupted else "failed"
        removed = f" and releases/{self.release} was removed" if created else ""
        return Outcome(
            False,
            f"deploy {verb}: {first}. No host switched; current is untouched{removed}",
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
        old = prune_candidates(state, self.config.keep_releases, self.release)
        if not old:
            return
        targets = " ".join(rq(f"{self.config.path}/releases/{r}") for r in old)
        try:
            part.step(
                f"prune {len(old)} old release(s)",
                f"rm -rf -- {targets}",
                timeout=max(part.host.timeout, 120.0),
            )
        except OpsError as exc:
            emit(Notice(f"{part.name}: pruning failed: {exc.message}"))


def prune_candidates(state: DeployState, keep: int, ours: str | None = None) -> list[str]:
    """Release folders to remove: all but the `keep` newest good ones, `current`, the previous good one
    and `ours`. Good = a successful deploy record and not marked bad; failed, interrupted and
    unjournalled leftovers and bad releases beyond that set go."""
    good = state.successful_releases
    kept = set(good[-keep:])
    if state.current:
        kept.add(state.current)
        earlier = [r for r in good if r < state.current]
        if earlier:
            kept.add(earlier[-1])
    if ours:
        kept.add(ours)
    return [r for r in state.releases if r not in kept]


# ------------------------------------------------------------------------ rollback


def rollback_target(states: list[DeployState], to: str | None, force: bool = False) -> str:
    """The one release every host rolls back to, or RefusedError saying why there is none."""
    if to:
        for state in states:
            if to not in state.releases:
                raise RefusedError(
                    f"refused: {state.host}: releases/{to} does not exist (have: {', '.join(state.releases) or 'none'})",
                    "Nothing to roll back to",
                )
            if to not in state.deployed_releases:
                raise RefusedError(
                    f"refused: {state.host}: releases/{to} never finished deploying (no successful deploy "
                    "record in the journal): it may be half-built. Roll back to a release `opsconsole "
                    "releases` lists as deployed",
                    "Not a deployed release",
                )
            if to in state.bad_releases and not force:
                raise RefusedError(
                    f"refused: {state.host}: releases/{to} is marked bad (it was rolled back from); "
                    "pass --force to go back to it anyway (audited)",
                    "Release marked bad",
                )
        if all(state.current == to for state in states):
            raise RefusedError(f"refused: releases/{to} is already current", "Nothing to roll back to")
        return to
    common: set[str] | None = None
    skipped: set[str] = set()
    for state in states:
        good = [r for r in state.successful_releases if r != state.current]
        if state.current in state.releases:
            good = [r for r in good if r < str(state.current)]
        skipped |= {r for r in state.releases if r in state.bad_releases and r != state.current}
        common = set(good) if common is None else common & set(good)
    if not common:
        hosts = "; ".join(f"{s.host}: current {s.current or 'none'}" for s in states)
        bad = f"; skipped bad releases: {', '.join(sorted(skipped))}" if skipped else ""
        raise RefusedError(
            f"refused: nothing to roll back to ({hosts}); no earlier successfully deployed release that is "
            f"not marked bad is on every host{bad}",
            "Nothing to roll back to",
        )
    return max(common)


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
        Option(
            "force", ("--force",), "allow --to a release marked bad (audited)", kind="flag", default=False
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = _require_deploy(self.env)
        to = self.target.options.get("to")
        self.to = str(to) if to else None
        self.force = bool(self.target.options.get("force", False))
        if self.to and not re.fullmatch(r"[A-Za-z0-9TZ.-]+", self.to):
            raise UsageError(f"'{self.to}' is not a release id", "Bad release")

    @property
    def target_label(self) -> str:
        return (self.to or "previous release") + (" (--force)" if self.force else "")

    def plan(self) -> Any:
        steps: list[PlanStep] = []
        for spec in self.hosts:
            host = spec.raw
            steps.append(PlanStep(host, "command", lock_command(self.config.path, "<lock: who, when, why>")))
            steps.append(
                PlanStep(
                    host,
                    "note",
                    f"target: {self.to or 'the newest earlier release that deployed successfully and is not marked bad, on every host'}",
                )
            )
            steps.append(PlanStep(host, "command", switch_command(self.config.path, self.to or "<target>")))
            steps.append(
                PlanStep(host, "note", "if any host fails to switch, the switched ones are switched back")
            )
            steps.append(
                PlanStep(
                    host,
                    "command",
                    journal_command(self.config.path, {"event": "mark_bad", "release": "<current>"}),
                )
            )
            steps.append(
                PlanStep(
                    host,
                    "command",
                    journal_command(
                        self.config.path, {"event": "rollback", "from": "<current>", "to": "<target>"}
                    ),
                )
            )
            steps += restart_steps(self.env, spec, self.config)
            steps.append(PlanStep(host, "command", unlock_command(self.config.path, "<our lock>")))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        pairs = [(spec, self.ctx.backends.host(spec)) for spec in self.hosts]
        locks = Locks(
            pairs,
            self.config.path,
            self.ctx.user,
            f"rollback to {self.to or 'previous'}",
            emit,
            run=self.ctx.run_id,
            env=self.env.name,
        )
        locks.acquire()
        try:
            return self._rollback(pairs, emit)
        finally:
            locks.release()

    def _rollback(self, pairs: list[tuple[HostSpec, Host]], emit: Emit) -> Outcome:
        states = [read_state(host, self.config) for _spec, host in pairs]
        target = rollback_target(states, self.to, self.force)
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        hold = threading.Event()  # a switch is never interrupted half-way across hosts
        parts = [
            HostDeploy(spec, host, self.config, target, "-", self.ctx.user, hold, emit)
            for spec, host in pairs
        ]
        switched: list[tuple[HostDeploy, DeployState]] = []
        for part, state in zip(parts, states, strict=True):
            if state.current == target:
                continue
            try:
                part.step(
                    f"switch current -> releases/{target}",
                    part.switch_command(target),
                    timeout=part.host.timeout,
                )
            except OpsError as exc:
                return self._undo(parts, states, switched, part, exc, when, target, emit)
            switched.append((part, state))
        results: dict[str, str] = {}
        failures: list[str] = []
        for part, state in zip(parts, states, strict=True):
            if state.current and state.current != target:
                part.journal(
                    {
                        "event": "mark_bad",
                        "release": state.current,
                        "who": self.ctx.user,
                        "time": when,
                        "reason": "rolled back",
                        "run": self.ctx.run_id,
                    }
                )
            part.journal(
                {
                    "event": "rollback",
                    "from": state.current,
                    "to": target,
                    "release": target,
                    "who": self.ctx.user,
                    "run": self.ctx.run_id,
                    "forced": self.force,
                    "started": when,
                    "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "outcome": "success",
                }
            )
            failures += run_restarts(self.ctx.backends, self.env, part.spec, self.config, emit, hold)
            results[part.name] = f"releases/{target}"
            emit(HostResult(part.name, True, f"current -> releases/{target} (was {state.current})"))
        if failures:
            return Outcome(
                False, "rolled back, but restarting failed: " + "; ".join(failures), ExitCode.FAILED, results
            )
        return Outcome(
            True, f"rolled back to releases/{target} on {len(parts)} host(s)", ExitCode.OK, results
        )

    def _undo(
        self,
        parts: list[HostDeploy],
        states: list[DeployState],
        switched: list[tuple[HostDeploy, DeployState]],
        failed: HostDeploy,
        exc: OpsError,
        when: str,
        target: str,
        emit: Emit,
    ) -> Outcome:
        """All or nothing: switch the already-switched hosts back, then say where every host is."""
        stuck: set[str] = set()
        for part, state in switched:
            if not state.current:
                continue
            try:
                part.step(
                    f"switch back to releases/{state.current}",
                    part.switch_command(state.current),
                    timeout=part.host.timeout,
                )
            except OpsError as back:
                stuck.add(part.name)
                emit(Notice(f"{part.name}: could not switch back: {back.message}"))
        final: dict[str, str] = {}
        for part, state in zip(parts, states, strict=True):
            final[part.name] = (
                f"releases/{target}"
                if part.name in stuck
                else f"releases/{state.current}"
                if state.current
                else "no release"
            )
            try:
                part.journal(
                    {
                        "event": "rollback",
                        "from": state.current,
                        "to": target,
                        "release": target,
                        "who": self.ctx.user,
                        "run": self.ctx.run_id,
                        "started": when,
                        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "outcome": "failed",
                        "error": f"switch failed on {failed.name}: {exc.message}",
                    }
                )
            except OpsError:
                pass
            emit(HostResult(part.name, False, f"on {final[part.name]}"))
        now = "; ".join(f"{h} on {r}" for h, r in final.items())
        return Outcome(
            False,
            f"rollback failed: switching {failed.name} failed ({exc.message}); "
            + ("the other hosts were switched back. " if not stuck else "")
            + f"Now: {now}",
            ExitCode.FAILED,
            final,
        )


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
                holder = parse_held(line)
                results[spec.raw] = f"broke the lock {holder.describe()}"
                broken.append(spec.raw)
            else:
                results[spec.raw] = "was not locked"
            emit(StepFinished(spec.raw, "unlock", True, results[spec.raw]))
            emit(HostResult(spec.raw, True, results[spec.raw]))
        message = "; ".join(f"{h}: {m}" for h, m in results.items())
        return Outcome(True, message, ExitCode.OK, results)
