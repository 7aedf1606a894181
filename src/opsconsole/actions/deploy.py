"""Deploy on the Capistrano/Deployer layout (see backends/releases.py).

Deploy: lock every host, then on every host (in parallel) fetch the repository into a bare mirror,
export the commit into `releases/<UTC timestamp>`, link `shared` items and run the `build` commands;
only when every host has built does any host switch `current` (see commands.switch_command). Then the
restart targets, the journal, pruning, and the lock released. On any failure before the switch,
`current` is untouched everywhere, the failed release is removed, and the journal says what failed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar

from opsconsole.actions.base import (
    Action,
    Emit,
    HostResult,
    Notice,
    Option,
    Outcome,
    Plan,
    PlanStep,
    Scope,
)
from opsconsole.actions.commands import lock_command, release_id, unlock_command, validate_ref
from opsconsole.actions.hostdeploy import (
    HostDeploy,
    describe_release,
    read_states,
    require_deploy,
    restart_steps,
    run_restarts,
)
from opsconsole.actions.locks import Locks
from opsconsole.backends.releases import (
    DeployState,
    read_state,
    rq,
)
from opsconsole.errors import ExitCode, OpsError

# ------------------------------------------------------------------------ deploy


class DeployAction(Action):
    id: ClassVar[str] = "deploy"
    title: ClassVar[str] = "Deploy"
    key: ClassVar[str | None] = "D"
    tooltip: ClassVar[str] = "Deploy the environment (shows the plan first)"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    description: ClassVar[str] = "Release a ref to every host: build everywhere, then switch `current`"
    options: ClassVar[tuple[Option, ...]] = (
        Option("ref", ("--ref",), "git branch, tag or commit to release (default: the profile's branch)"),
        Option("reason", ("--reason",), "why, recorded in the deploy lock"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = require_deploy(self.env)
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

    def summary(self) -> list[str]:
        """What a person decides on: where, from which release to which ref, builds, restarts."""
        hosts = [h.raw for h in self.hosts]
        lines = [f"Deploy {self.ref} to {self.env.name} on {len(hosts)} host(s): {', '.join(hosts)}"]
        for host, state in read_states(self.ctx.backends, self.hosts, self.config).items():
            if isinstance(state, OpsError):
                lines.append(f"  {host}: current release unknown ({state.message})")
            else:
                lines.append(f"  {host}: now on {describe_release(state, state.current)}")
                if state.lock is not None:
                    lines.append(f"  {host}: LOCKED, {state.lock.describe()}")
        lines.append(f"  → new release releases/{self.release} from {self.ref}")
        if self.config.build:
            lines.append("Build in the new release, on every host: " + "; ".join(self.config.build))
        lines.append("Then, once every host has built, switch `current` on every host")
        if self.config.restart:
            lines.append("Restart: " + ", ".join(self.config.restart))
        lines.append(f"Keep the {self.config.keep_releases} newest good releases")
        return lines

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
