"""Restart, start and stop a supervisor process (or group, or all), a container or a systemd unit;
and cache purge."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from opsconsole.actions.base import Action, ActionContext, Plan, PlanStep, Scope, Target
from opsconsole.actions.events import Emit, HostResult, Outcome, OutputLine, StepFinished, StepStarted
from opsconsole.actions.targets import parse_target
from opsconsole.backends.hosts import CommandFailed
from opsconsole.errors import ExitCode, OpsError, UnreachableError, UsageError
from opsconsole.human import counted, duration
from opsconsole.profiles import HostSpec

RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF", "running", "restarting"})


def is_running(item: Any) -> bool:
    """A process or container that is up (or trying to be): `s` stops it; otherwise `s` starts it."""
    return str(getattr(item, "state", "")) in RUNNING_STATES


def per_host(hosts: list[HostSpec], work: Callable[[HostSpec], str], emit: Emit, label: str) -> Outcome:
    """Run `work` on every host concurrently; a HostResult per host; the outcome sums them up."""
    results: dict[str, str] = {}
    failed: dict[str, OpsError] = {}
    lock = threading.Lock()

    def one(spec: HostSpec) -> None:
        emit(StepStarted(spec.raw, label))
        try:
            message = work(spec)
        except OpsError as exc:
            with lock:
                failed[spec.raw] = exc
                results[spec.raw] = exc.message
            emit(StepFinished(spec.raw, label, False, exc.message))
            emit(HostResult(spec.raw, False, exc.message))
            return
        with lock:
            results[spec.raw] = message
        emit(StepFinished(spec.raw, label, True, message))
        emit(HostResult(spec.raw, True, message))

    if not hosts:
        raise UsageError("the environment has no hosts", "No hosts")
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(one, hosts))
    if not failed:
        return Outcome(True, f"{label}: done on {counted(len(hosts), 'hosts')}", ExitCode.OK, results)
    code = (
        ExitCode.UNREACHABLE
        if all(isinstance(e, UnreachableError) for e in failed.values())
        else ExitCode.FAILED
    )
    detail = "; ".join(e.message for e in failed.values())
    return Outcome(
        False, f"{label}: failed on {len(failed)} of {counted(len(hosts), 'hosts')}: {detail}", code, results
    )


class _Operate(Action):
    verb: ClassVar[str]
    scope: ClassVar[Scope] = "process"
    changes: ClassVar[bool] = True
    target_arg: ClassVar[str | None] = "TARGET"
    target_help: ClassVar[str] = (
        "supervisor:NAME (process, group:name, group:* or all), docker:NAME or systemd:UNIT"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind, self.name = parse_target(self.target.name, ("supervisor", "docker", "systemd"))
        if self.kind == "systemd" and self.env.systemd is None:
            raise UsageError(f"environment '{self.env.name}' has no [systemd] section", "Not configured")
        if self.kind == "supervisor" and self.env.supervisor is None:
            raise UsageError(f"environment '{self.env.name}' has no [supervisor] section", "Not configured")
        if self.kind == "docker" and self.env.docker is None:
            raise UsageError(f"environment '{self.env.name}' has no [docker] section", "Not configured")

    def summary(self) -> list[str]:
        """What is being changed and its state now, so the person decides on facts: `supervisor:web
        on web-1 (now RUNNING, pid 4100, up 1 h 5 min)`."""
        lines = [
            f"{self.title} {self.target.name} in {self.env.name}: a change, on {counted(len(self.hosts), 'hosts')}"
        ]
        for spec in self.hosts:
            lines.append(f"  {spec.raw}: now {self._state_now(spec)}")
        return lines

    def _state_now(self, spec: HostSpec) -> str:
        try:
            if self.kind == "systemd":
                return self._unit_now(spec)
            if self.kind == "supervisor":
                if self.name in ("all",) or self.name.endswith(":*"):
                    procs = self.ctx.backends.supervisor(self.env, spec).processes()
                    up = sum(1 for p in procs if p.running)
                    return f"{up} of {len(procs)} processes running"
                proc = self.ctx.backends.supervisor(self.env, spec).process(self.name)
                parts = [proc.state] + ([f"pid {proc.pid}"] if proc.pid else [])
                if proc.uptime:
                    parts.append(f"up {duration(proc.uptime)}")
                return ", ".join(parts)
            found = [c for c in self.ctx.backends.docker(self.env, spec).containers() if c.name == self.name]
            if not found:
                return f"no container named {self.name}"
            return f"{found[0].state}" + (
                f", {found[0].health}" if found[0].health not in ("", "none") else ""
            )
        except OpsError as exc:
            return f"unknown ({exc.message})"

    def _unit_now(self, spec: HostSpec) -> str:
        from opsconsole.backends.systemd import read_units
        from opsconsole.profiles.model import SystemdConfig

        config = self.env.systemd
        assert config is not None
        one = SystemdConfig(units=(self.name,), user=config.user, sudo=config.sudo)
        report = read_units(self.ctx.backends.host(spec), one)
        if not report.units:
            return "unknown"
        unit = report.units[0]
        parts = [f"{unit.active}/{unit.sub}"] + ([f"pid {unit.pid}"] if unit.pid else [])
        return ", ".join(parts + ([unit.problem] if unit.problem else []))

    def plan(self) -> Plan:
        steps = []
        for spec in self.hosts:
            if self.kind == "systemd":
                from opsconsole.backends.systemd import change_command

                assert self.env.systemd is not None
                steps.append(
                    PlanStep(spec.raw, "command", change_command(self.env.systemd, self.verb, self.name))
                )
            elif self.kind == "supervisor":
                calls = {
                    "restart": f"supervisor.stopProcess({self.name}) then supervisor.startProcess({self.name})",
                    "start": f"supervisor.startProcess({self.name})",
                    "stop": f"supervisor.stopProcess({self.name})",
                }[self.verb]
                steps.append(PlanStep(spec.raw, "rpc", calls))
            else:
                steps.append(PlanStep(spec.raw, "api", f"POST /containers/{self.name}/{self.verb}"))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        def work(spec: HostSpec) -> str:
            if self.kind == "systemd":
                from opsconsole.backends.systemd import change

                assert self.env.systemd is not None
                return change(self.ctx.backends.host(spec), self.env.systemd, self.verb, self.name)
            if self.kind == "supervisor":
                client = self.ctx.backends.supervisor(self.env, spec)
                return "; ".join(getattr(client, self.verb)(self.name))
            docker = self.ctx.backends.docker(self.env, spec)
            result: str = getattr(docker, self.verb)(self.name)
            return result

        return per_host(self.hosts, work, emit, f"{self.verb} {self.target.name}")


class RestartAction(_Operate):
    id: ClassVar[str] = "restart"
    title: ClassVar[str] = "Restart"
    key: ClassVar[str | None] = "r"
    tooltip: ClassVar[str] = "Restart the selected process or container"
    selection: ClassVar[tuple[str, ...]] = ("process", "container", "unit")
    verb: ClassVar[str] = "restart"
    description: ClassVar[str] = "Restart a supervisor process/group/all, a container or a systemd unit"


class _StartStop(_Operate):
    """`s` starts what is down and stops what is up: two actions, one key."""

    key: ClassVar[str | None] = "s"
    key_id: ClassVar[str | None] = "start_stop"
    key_label: ClassVar[str] = "Start/stop"
    tooltip: ClassVar[str] = "Start or stop the selected process or container"
    selection: ClassVar[tuple[str, ...]] = ("process", "container", "unit")
    starts: ClassVar[bool]

    @classmethod
    def applies_to(cls, item: Any) -> bool:
        return is_running(item) != cls.starts


class StartAction(_StartStop):
    id: ClassVar[str] = "start"
    title: ClassVar[str] = "Start"
    verb: ClassVar[str] = "start"
    starts: ClassVar[bool] = True
    description: ClassVar[str] = "Start a supervisor process/group/all, a container or a systemd unit"


class StopAction(_StartStop):
    id: ClassVar[str] = "stop"
    title: ClassVar[str] = "Stop"
    verb: ClassVar[str] = "stop"
    starts: ClassVar[bool] = False
    destructive: ClassVar[bool] = True
    description: ClassVar[str] = "Stop a supervisor process/group/all, a container or a systemd unit"


class _ShellOnHosts(Action):
    """Run profile-defined shell commands on every host (or --host); output streamed per host."""

    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True

    def commands(self) -> tuple[str, ...]:
        raise NotImplementedError

    def plan(self) -> Plan:
        return self.make_plan(
            [PlanStep(spec.raw, "command", cmd) for spec in self.hosts for cmd in self.commands()]
        )

    def execute(self, emit: Emit) -> Outcome:
        def work(spec: HostSpec) -> str:
            host = self.ctx.backends.host(spec)
            for command in self.commands():
                result = host.run(
                    command,
                    on_line=lambda stream, line: emit(OutputLine(spec.raw, line, stream)),
                    cancel=self.ctx.cancel,
                    timeout=max(host.timeout, 300.0),
                )
                if not result.ok:
                    raise CommandFailed(spec.raw, f"`{command}`", result)
            return f"{counted(len(self.commands()), 'commands')} ok"

        return per_host(self.hosts, work, emit, self.title.lower())


class PurgeAction(_ShellOnHosts):
    id: ClassVar[str] = "purge"
    title: ClassVar[str] = "Purge cache"
    key_label: ClassVar[str] = "Purge"
    key: ClassVar[str | None] = "p"
    tooltip: ClassVar[str] = "Run the environment's cache purge commands"
    destructive: ClassVar[bool] = True
    description: ClassVar[str] = "Run the environment's cache.purge commands on its hosts"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.env.cache is None or not self.env.cache.purge:
            raise UsageError(f"environment '{self.env.name}' has no [cache] purge commands", "Not configured")

    @property
    def target_label(self) -> str:
        return "cache"

    def commands(self) -> tuple[str, ...]:
        assert self.env.cache is not None
        return self.env.cache.purge


class CustomAction(_ShellOnHosts):
    id: ClassVar[str] = "run"
    title: ClassVar[str] = "Run custom action"
    target_arg: ClassVar[str | None] = "ACTION"
    target_help: ClassVar[str] = "name of a custom action of the environment"
    description: ClassVar[str] = "Run a custom action from the profile's [[environments.ENV.actions]]"

    def __new__(cls, ctx: ActionContext, target: Target, *args: Any, **kwargs: Any) -> CustomAction:
        """An action naming a fabfile task (`fab = "TASK"`), and `fab:TASK`, run with FAB_TASK_ACTION
        (registered by actions/fabric_deploy.py, which the registry imports)."""
        if cls is CustomAction and target.name and FAB_TASK_ACTION:
            env = ctx.profile.environments.get(target.env)
            found = [a for a in env.actions if a.name == target.name] if env is not None else []
            if (found and found[0].fab) or target.name.startswith("fab:"):
                return super().__new__(FAB_TASK_ACTION[0])
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.target.name:
            raise UsageError("which custom action? (opsconsole run ENV ACTION)", "Missing action")
        self.custom = self.env.action(self.target.name)

    @property
    def needs_confirmation(self) -> bool:
        return self.custom.confirm

    @property
    def target_label(self) -> str:
        return self.custom.name

    def commands(self) -> tuple[str, ...]:
        return (self.custom.command,)


# The action that runs a custom action naming a fabfile task (set by actions/fabric_deploy.py).
FAB_TASK_ACTION: list[type[CustomAction]] = []
