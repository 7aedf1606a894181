"""Rollback: all or nothing across hosts, only to a release that deployed."""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from opsconsole.actions.base import Action, ActionContext, Option, PlanStep, Scope, Target
from opsconsole.actions.deploy.host import (
    HostDeploy,
    describe_release,
    read_states,
    require_deploy,
    restart_steps,
    run_restarts,
)
from opsconsole.actions.deploy.locks import Locks
from opsconsole.actions.deploy.shell import (
    journal_command,
    lock_command,
    switch_command,
    unlock_command,
)
from opsconsole.actions.deploy.verify import rolled_back
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome
from opsconsole.backends.hosts import Host
from opsconsole.backends.releases import (
    DeployState,
    read_state,
)
from opsconsole.errors import ExitCode, OpsError, RefusedError, UsageError
from opsconsole.human import counted, utc_stamp
from opsconsole.profiles import HostSpec

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


class SupersededError(RefusedError):
    """A conditional rollback (`--from RELEASE`) found another release current: nothing changed."""

    def __init__(self, message: str, replaced_by: dict[str, str]) -> None:
        super().__init__(message, "Superseded")
        self.replaced_by = replaced_by


def check_still_current(states: list[DeployState], expected: str) -> None:
    """Raise SupersededError unless `expected` is `current` on every host."""
    replaced = {s.host: s.current or "" for s in states if s.current != expected}
    if not replaced:
        return
    now = "; ".join(
        f"{host} on {'releases/' + current if current else 'no release'}"
        for host, current in replaced.items()
    )
    raise SupersededError(
        f"superseded: releases/{expected} is no longer current ({now}): another deploy or rollback "
        "replaced it, so nothing was rolled back or marked bad. Look at `opsconsole releases` and "
        "roll back by hand if the new release needs it",
        replaced,
    )


class RollbackAction(Action):
    id: ClassVar[str] = "rollback"
    title: ClassVar[str] = "Rollback"
    key: ClassVar[str | None] = "R"
    tooltip: ClassVar[str] = "Roll back to the previous good release"
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
        Option(
            "from",
            ("--from",),
            "only if RELEASE is still current on every host, checked under the deploy lock (else "
            "nothing changes, exit 3); auto-rollback uses it",
            metavar="RELEASE",
        ),
    )

    def __new__(cls, ctx: ActionContext, target: Target, *args: Any, **kwargs: Any) -> RollbackAction:
        """A strategy registered in ROLLBACK_STRATEGIES rolls back with its own action instead."""
        if cls is RollbackAction:
            env = ctx.profile.environments.get(target.env)
            other = (
                ROLLBACK_STRATEGIES.get(env.deploy.strategy)
                if env is not None and env.deploy is not None
                else None
            )
            if other is not None:
                return super().__new__(other)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = require_deploy(self.env)
        to = self.target.options.get("to")
        self.to = str(to) if to else None
        self.force = bool(self.target.options.get("force", False))
        expected = self.target.options.get("from")
        self.expected = str(expected) if expected else None  # roll back only from this release
        self.superseded: SupersededError | None = None  # set when `expected` was no longer current
        self.planned: str | None = None  # the target the plan named (set by summary())
        for value in (self.to, self.expected):
            if value and not re.fullmatch(r"[A-Za-z0-9TZ.-]+", value):
                raise UsageError(f"'{value}' is not a release id", "Bad release")

    def _check_expected(self, states: list[DeployState]) -> None:
        if self.expected is None:
            return
        try:
            check_still_current(states, self.expected)
        except SupersededError as exc:
            self.superseded = exc
            raise

    @property
    def target_label(self) -> str:
        return (self.to or "previous release") + (" (--force)" if self.force else "")

    def summary(self) -> list[str]:
        """Names the target (release, ref, commit) and what it skips; fixes it for the run."""
        states = read_states(self.ctx.backends, self.hosts, self.config)
        failed = [s for s in states.values() if isinstance(s, OpsError)]
        if failed:
            raise failed[0]
        good = [s for s in states.values() if isinstance(s, DeployState)]
        self._check_expected(good)
        self.planned = rollback_target(good, self.to, self.force)
        first = good[0]
        lines = [
            f"Roll back {self.env.name} on {counted(len(good), 'hosts')} to {describe_release(first, self.planned)}"
        ]
        if self.expected:
            lines.append(f"Only from releases/{self.expected}: checked again under the deploy lock")
        for state in good:
            # a plan says what the run will do: the run marks the release it leaves bad
            leaves = bool(state.current) and state.current != self.planned
            lines.append(
                f"  {state.host}: now on {describe_release(state, state.current)}"
                + (", which will be marked bad" if leaves else "")
            )
        skipped = sorted({r for s in good for r in s.releases if r in s.bad_releases and r != s.current})
        if skipped:
            lines.append("Skips releases marked bad: " + ", ".join(skipped))
        lines.append("All or nothing: if a host fails to switch, the others are switched back")
        if self.config.restart:
            lines.append("Restart: " + ", ".join(self.config.restart))
        return lines

    def plan(self) -> Any:
        steps: list[PlanStep] = []
        summary = self.summary()
        target = self.planned or "<target>"
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
            steps.append(PlanStep(host, "command", switch_command(self.config.path, target)))
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
        return self.make_plan(steps, summary)

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
        # under the lock, right before switching: nobody can make another release current until we
        # release it, so a rollback `--from` never switches away from someone else's release
        self._check_expected(states)
        # exactly the release the plan named (still checked: it must still be a good one)
        target = rollback_target(
            states, self.planned or self.to, self.force or bool(self.planned and self.force)
        )
        when = utc_stamp()
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
            part.journal(self._record(state, target, when, "success", forced=self.force))
            failures += run_restarts(self.ctx.backends, self.env, part.spec, self.config, emit, hold)
            results[part.name] = f"releases/{target}"
            emit(HostResult(part.name, True, f"current -> releases/{target} (was {state.current})"))
        # the switch is done (restarts or not): a verification of a release it left is no longer
        # one of the current release (the console's banner says it was rolled back)
        rolled_back(
            self.config.path,
            {
                part.name: str(state.current)
                for part, state in zip(parts, states, strict=True)
                if state.current
            },
            target,
        )
        if failures:
            return Outcome(
                False, "rolled back, but restarting failed: " + "; ".join(failures), ExitCode.FAILED, results
            )
        return Outcome(
            True, f"rolled back to releases/{target} on {counted(len(parts), 'hosts')}", ExitCode.OK, results
        )

    def _record(
        self, state: DeployState, target: str, when: str, outcome: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "event": "rollback",
            "from": state.current,
            "to": target,
            "release": target,
            "who": self.ctx.user,
            "run": self.ctx.run_id,
            "started": when,
            "finished": utc_stamp(),
            "outcome": outcome,
            **extra,
        }

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
                    self._record(
                        state, target, when, "failed", error=f"switch failed on {failed.name}: {exc.message}"
                    )
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


# The rollback action of a deploy strategy other than the release layout's, by strategy name;
# "fabric": actions/fabric_deploy.py registers it (the registry imports that module).
ROLLBACK_STRATEGIES: dict[str, type[RollbackAction]] = {}
