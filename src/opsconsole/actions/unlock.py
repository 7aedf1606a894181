"""Unlock: break a stale deploy lock on every host of an environment (audited)."""

from __future__ import annotations

from typing import Any, ClassVar

from opsconsole.actions.base import Action, Plan, PlanStep, Scope
from opsconsole.actions.deploy.host import require_deploy
from opsconsole.actions.deploy.shell import parse_held, unlock_command
from opsconsole.actions.events import Emit, HostResult, Outcome, StepFinished, StepStarted
from opsconsole.errors import ExitCode


class UnlockAction(Action):
    id: ClassVar[str] = "unlock"
    title: ClassVar[str] = "Break deploy lock"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    destructive: ClassVar[bool] = True
    description: ClassVar[str] = "Remove a stale deploy lock (audited)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = require_deploy(self.env)

    @property
    def target_label(self) -> str:
        return "deploy lock"

    def plan(self) -> Plan:
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
