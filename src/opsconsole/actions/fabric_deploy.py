"""The `fabric` deploy strategy: the team's fabfile tasks run by `fab` (backends/fabric_cli.py)
inside the console's guarantees: the deploy lock on every host (holder, heartbeat), the CI gate, the
plan with the exact `fab` command line, the journal record on every host, and (through ActionRun)
the confirmation, the audit records and the run log others watch. A fabfile task can also be a
custom action (`fab = "TASK"` in [[environments.E.actions]]).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsconsole.actions.base import Action, Plan, PlanStep, Target
from opsconsole.actions.deploy import plan as deploy_plan
from opsconsole.actions.deploy.host import HostDeploy, read_states, require_deploy
from opsconsole.actions.deploy.locks import Locks
from opsconsole.actions.deploy.saga import STRATEGIES, DeployAction
from opsconsole.actions.deploy.shell import (
    journal_command,
    lock_command,
    release_id,
    unlock_command,
    validate_ref,
)
from opsconsole.actions.deploy.verify import Verifier, rolled_back, sentry_version
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome, OutputLine, StepFinished, StepStarted
from opsconsole.actions.operate import FAB_TASK_ACTION, CustomAction
from opsconsole.actions.rollback import ROLLBACK_STRATEGIES, RollbackAction
from opsconsole.backends import fabric_cli
from opsconsole.backends.hosts import Cancelled, Host
from opsconsole.backends.shell import quote
from opsconsole.backends.ssh.config import default_known_hosts
from opsconsole.errors import ExitCode, OpsError, RefusedError, UsageError
from opsconsole.human import counted, utc_stamp
from opsconsole.profiles import DeployConfig, Environment, HostSpec, Profile
from opsconsole.profiles.fabric_keys import is_task_name
from opsconsole.profiles.model import CustomAction as CustomProfileAction
from opsconsole.profiles.model import FabricConfig

OUTPUT_HOST = "fab"  # the label of `fab`'s own lines (not from one host) when there are several hosts


@dataclass(frozen=True)
class FabricSetup:
    """The profile's [fabric] with the environment's overrides, resolved: which fabfile, which
    Python runs `fab` (and whose `fab` it is), Fabric 1 or 2+, hosts as `-H` or not."""

    fabfile: Path
    python: str
    fab: str | None  # the team's `fab`; None: opsconsole's own Fabric
    fabric1: bool
    hosts_flag: bool
    timeout: float


def fabric_setup(profile: Profile, env: Environment) -> FabricSetup:
    project = profile.fabric or FabricConfig()
    deploy = env.deploy
    name = (deploy.fabfile if deploy else None) or project.fabfile
    fabfile = Path(name).expanduser()
    if not fabfile.is_absolute():
        fabfile = profile.path.parent / fabfile
    if fabfile.is_dir():
        fabfile = fabfile / "__init__.py" if (fabfile / "__init__.py").is_file() else fabfile / "fabfile.py"
    if not fabfile.is_file():
        raise UsageError(
            f"the fabfile {fabfile} does not exist: set [fabric] fabfile (relative to the profile's "
            "folder, or absolute)",
            "No fabfile",
        )
    fab = (deploy.fab if deploy else None) or project.fab
    python = fabric_cli.python_of(fab) if fab else fabric_cli.own_python()
    hosts_flag = (
        deploy.hosts_flag if deploy is not None and deploy.hosts_flag is not None else project.hosts_flag
    )
    return FabricSetup(fabfile, python, fab, fabric_cli.is_fabric1(fabfile), hosts_flag, project.timeout)


def host_string(spec: HostSpec, default_user: str | None) -> str:
    """The host as `fab -H` takes it (the profile's default user added when it names none)."""
    if spec.user is None and default_user and not spec.is_local:
        return f"{default_user}@{spec.raw}"
    return spec.raw


class FabricRun:
    """`fab TASKS` for an action: its command line and its run, with output lines mapped to hosts."""

    def __init__(self, action: Action, tasks: tuple[str, ...], ref: str = "") -> None:
        self.action = action
        self.setup = fabric_setup(action.ctx.profile, action.env)
        defaults = action.ctx.profile.defaults
        self.labels: dict[str, str] = {}
        for spec in action.hosts:
            for label in (host_string(spec, defaults.user), spec.raw, spec.hostname):
                self.labels.setdefault(label, spec.raw)
        hosts = [host_string(spec, defaults.user) for spec in action.hosts] if self.setup.hosts_flag else None
        known = defaults.known_hosts or str(default_known_hosts())
        self.command = fabric_cli.FabCommand(
            self.setup.python,
            fabric_cli.build_args(
                self.setup.fabfile, self.setup.fabric1, tasks, hosts, defaults.identity_file, defaults.timeout
            ),
            self.setup.fabfile.parent,
            str(Path(known).expanduser()),
            prefix=len(action.hosts) > 1 or not self.setup.hosts_flag,
            # what the fabfile may read: the environment, the run (as in the lock and journal), the ref
            extra_env={
                "OPSCONSOLE_ENVIRONMENT": action.env.name,
                "OPSCONSOLE_RUN": action.ctx.run_id,
                **({"OPSCONSOLE_REF": ref} if ref else {}),
            },
        )

    def plan_lines(self) -> list[str]:
        who = f"the team's fab {self.setup.fab}" if self.setup.fab else "opsconsole's own Fabric"
        flavour = "Fabric 1" if self.setup.fabric1 else "Fabric 2+"
        lines = [
            f"Fabfile {self.setup.fabfile} ({flavour}), run by {who} in {self.setup.python}",
            f"Command: {self.command.line()}",
        ]
        if self.setup.hosts_flag:
            lines.append("Hosts: " + ", ".join(h.raw for h in self.action.hosts) + " (given to fab as -H)")
        else:
            lines.append(
                "Hosts: the fabfile chooses its own (hosts_flag = false); the lock and journal are on "
                + ", ".join(h.raw for h in self.action.hosts)
            )
        lines.append(
            f"Host keys: only those in {self.command.known_hosts}; an unknown key is refused before any task runs"
        )
        return lines

    def run(self, emit: Emit, cancel: threading.Event) -> fabric_cli.FabResult:
        single = self.action.hosts[0].raw if len(self.action.hosts) == 1 and self.setup.hosts_flag else None

        def on_line(line: str) -> None:
            host, text = fabric_cli.host_of(line, self.labels)
            emit(OutputLine(host or single or OUTPUT_HOST, text if host else line))

        return fabric_cli.run(self.command, on_line, cancel, self.setup.timeout)


class _FabricTasksUnderLock:
    """What a fabric deploy and a fabric rollback share: the lock, `fab`, the journal on every host."""

    env: Environment
    config: DeployConfig
    ctx: Any
    hosts: list[HostSpec]

    def _hosts(self) -> list[tuple[HostSpec, Host]]:
        return [(spec, self.ctx.backends.host(spec)) for spec in self.hosts]

    def _plan_steps(self, fab: FabricRun, record: dict[str, Any]) -> list[PlanStep]:
        steps: list[PlanStep] = []
        for spec in self.hosts:
            steps.append(
                PlanStep(spec.raw, "command", lock_command(self.config.path, "<lock: who, when, why>"))
            )
        first = self.hosts[0].raw
        steps.append(PlanStep(first, "note", "once every host is locked, on this machine:"))
        steps.append(PlanStep(first, "command", fab.command.line()))
        for spec in self.hosts:
            steps.append(PlanStep(spec.raw, "command", journal_command(self.config.path, record)))
            steps.append(PlanStep(spec.raw, "command", unlock_command(self.config.path, "<our lock>")))
        return steps

    def _run_tasks(
        self, fab: FabricRun, label: str, why: str, emit: Emit, record: dict[str, Any]
    ) -> tuple[str, fabric_cli.FabResult | None, str]:
        """Lock, run `fab`, journal on every host, unlock: (outcome, result, detail)."""
        hosts = self._hosts()
        locks = Locks(
            hosts, self.config.path, self.ctx.user, why, emit, run=self.ctx.run_id, env=self.env.name
        )
        locks.acquire()
        try:
            for spec, _host in hosts:
                emit(StepStarted(spec.raw, label))
            result: fabric_cli.FabResult | None = None
            try:
                result = fab.run(emit, self.ctx.cancel)
                outcome = "success" if result.ok else "failed"
                detail = "" if result.ok else f"fab exited {result.exit_code}"
            except Cancelled:
                outcome, detail = "interrupted", "interrupted: fab and its remote commands were stopped"
            except OpsError as exc:
                outcome, detail = "failed", exc.message
            for spec, _host in hosts:
                emit(StepFinished(spec.raw, label, outcome == "success", detail))
            full = {
                **record,
                "finished": utc_stamp(),
                "outcome": outcome,
                "exit_code": result.exit_code if result is not None else None,
            }
            if detail:
                full["error"] = detail
            for spec, host in hosts:
                try:
                    host.run(journal_command(self.config.path, full), timeout=host.timeout)
                except OpsError as exc:
                    emit(Notice(f"{spec.raw}: the journal record could not be written: {exc.message}"))
            return outcome, result, detail
        finally:
            locks.release()


class FabricDeployAction(_FabricTasksUnderLock, DeployAction):
    """`deploy` for an environment with strategy = "fabric" (DeployAction picks it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Action.__init__(self, *args, **kwargs)
        self.config = require_deploy(self.env)
        ref = self.target.options.get("ref")
        self.ref = validate_ref(str(ref)) if ref else (self.config.branch if self.config.repo else "")
        self.release = str(self.target.options.get("release") or release_id())
        self.reason = str(self.target.options.get("reason") or f"deploy {' '.join(self.config.tasks)}")
        self.sha: str | None = None
        self.fab = FabricRun(self, self.config.tasks, self.ref)

    @property
    def target_label(self) -> str:
        return self.ref or "fab " + " ".join(self.config.tasks)

    def summary(self) -> list[str]:
        names = ", ".join(h.raw for h in self.hosts)
        lines = [f"Deploy {self.env.name} with its fabfile: {' '.join(self.config.tasks)} ({names})"]
        lines += self.fab.plan_lines()
        if self.config.repo and self.ref:
            lines.append(
                f"Ref {self.ref} of {self.config.repo} (recorded; the fabfile decides what it pulls)"
            )
        lines.append(
            deploy_plan.ci_line(self.env.ci is not None, None, self.skip_ci)
            if self.env.ci is None or not self.config.repo
            else f"CI: the commit of {self.ref} must be green before fab runs"
            + (" (--skip-ci: deploying anyway)" if self.skip_ci else "")
        )
        if self.config.rollback_tasks:
            lines.append("Rollback runs: fab " + " ".join(self.config.rollback_tasks))
        if self.config.verify is not None:
            lines.append(f"Then verify: {deploy_plan.verify_terms(self.env, self.config)}")
        return lines

    def plan(self) -> Plan:
        return self.make_plan(self._plan_steps(self.fab, self._record_head()))

    def _record_head(self) -> dict[str, Any]:
        return {
            "event": "deploy",
            "strategy": "fabric",
            "release": self.release,
            "ref": self.ref or None,
            "commit": self.sha,
            "tasks": list(self.config.tasks),
            "who": self.ctx.user,
            "run": self.ctx.run_id,
        }

    def follow_up(self, outcome: Outcome) -> Verifier | None:
        if not outcome.ok or (self.config.verify is None and not self.target.options.get("verify")):
            return None
        version = (
            sentry_version(self.env, self.ctx.profile.project_name, self.release, self.sha, self.ref)
            if self.sha
            else None
        )
        return Verifier(self.ctx.backends, self.env, self.release, version, hosts=self.hosts)

    def _resolve_commit(self, emit: Emit) -> None:
        """The commit `ref` names in `repo`, as the first host sees it (for the CI gate and journal)."""
        spec = self.hosts[0]
        label = f"resolve {self.ref}"
        emit(StepStarted(spec.raw, label))
        host = self.ctx.backends.host(spec)
        result = host.run(
            f"git ls-remote {quote(self.config.repo)} {quote(self.ref)}", timeout=max(host.timeout, 60)
        )
        words = result.stdout.split()
        if not result.ok or not words:
            emit(StepFinished(spec.raw, label, False, (result.stderr.strip() or "not found")[:200]))
            return
        self.sha = words[0]
        emit(StepFinished(spec.raw, label, True, self.sha[:12]))

    def execute(self, emit: Emit) -> Outcome:
        started = utc_stamp()
        if self.config.repo and self.ref:
            self._resolve_commit(emit)
        if self.env.ci is not None and not self.skip_ci:
            if self.sha is None:
                return Outcome(
                    False,
                    "deploy refused: CI gates this environment but the commit to check is unknown "
                    "(set deploy.repo and a ref that resolves). Nothing changed; deploy anyway with --skip-ci",
                    ExitCode.REFUSED,
                )
            first = HostDeploy(
                self.hosts[0],
                self.ctx.backends.host(self.hosts[0]),
                self.config,
                self.release,
                self.ref,
                self.ctx.user,
                self.ctx.cancel,
                emit,
                sha=self.sha,
            )
            refused = self._ci_gate(first, emit)
            if refused is not None:
                return refused
        record = {**self._record_head(), "started": started}
        if self.skip_ci:
            record["ci_skipped"] = True
        outcome, result, detail = self._run_tasks(
            self.fab, "fab " + " ".join(self.config.tasks), self.reason, emit, record
        )
        for spec in self.hosts:
            emit(
                HostResult(
                    spec.raw, outcome == "success", detail or "fab " + " ".join(self.config.tasks) + " done"
                )
            )
        if outcome == "interrupted":
            return Outcome(
                False,
                f"interrupted: fab {' '.join(self.config.tasks)} was stopped; the lock is released",
                ExitCode.FAILED,
            )
        if outcome != "success":
            return Outcome(
                False, f"deploy failed: fab {' '.join(self.config.tasks)}: {detail}", ExitCode.FAILED
            )
        return Outcome(
            True,
            f"deployed {self.env.name} with fab {' '.join(self.config.tasks)} to {counted(len(self.hosts), 'hosts')}"
            + (f" ({self.sha[:12]})" if self.sha else ""),
            ExitCode.OK,
            {spec.raw: "fab " + " ".join(self.config.tasks) for spec in self.hosts},
        )


class FabricRollbackAction(_FabricTasksUnderLock, RollbackAction):
    """`rollback` for an environment with strategy = "fabric": its rollback_tasks (RollbackAction
    picks it); without them, a refusal that says so (exit 3)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Action.__init__(self, *args, **kwargs)
        self.config = require_deploy(self.env)
        if not self.config.rollback_tasks:
            raise RefusedError(
                f"refused: {self.env.name}'s fabfile has no rollback task: set rollback_tasks in "
                f'[environments.{self.env.name}.deploy] (e.g. rollback_tasks = ["production", "rollback"])',
                "No rollback task",
            )
        if self.target.options.get("to"):
            raise UsageError("--to does not apply to a fabric rollback: rollback_tasks decide", "Bad option")
        self.to = None
        self.force = False
        self.expected = None
        self.superseded = None
        self.planned = None
        self.fab = FabricRun(self, self.config.rollback_tasks)

    @property
    def target_label(self) -> str:
        return "fab " + " ".join(self.config.rollback_tasks)

    def summary(self) -> list[str]:
        lines = [f"Roll back {self.env.name} with its fabfile: {' '.join(self.config.rollback_tasks)}"]
        return lines + self.fab.plan_lines()

    def plan(self) -> Any:
        return self.make_plan(self._plan_steps(self.fab, self._record_head()))

    def _running_releases(self) -> dict[str, tuple[str, str | None, bool]]:
        """host -> (the release it runs, the one deployed before it): `current` where the fabfile
        keeps the releases/current layout, else the newest successful deploy in its journal (the
        shim records each); hosts whose state cannot be read, or that never deployed, are left out."""
        running: dict[str, tuple[str, str | None, bool]] = {}
        for host, state in read_states(self.ctx.backends, self.hosts, self.config).items():
            if isinstance(state, OpsError):
                continue
            deployed = [
                str(r["release"])
                for r in state.history + state.journal
                if r.get("event") == "deploy" and r.get("outcome") == "success" and r.get("release")
            ]
            now = state.current or (deployed[-1] if deployed else None)
            if now is not None:
                earlier = [r for r in deployed if r != now]
                running[host] = (now, earlier[-1] if earlier else None, state.current is not None)
        return running

    def _tell_verifications(self, before: dict[str, tuple[str, str | None, bool]]) -> None:
        """As the built-in rollback does: a verification of the release the fabfile rolled back from
        says so (not VERIFIED) and stops. The release rolled back to is `current` where there is
        one, else the one deployed before."""
        after = self._running_releases()
        left: dict[str, str] = {}
        to: str | None = None
        for host, (was, previous, layout) in before.items():
            now = after.get(host, (was, previous, layout))[0]
            if layout and now != was:  # the releases/current layout: `current` moved
                left[host], to = was, now
            elif not layout and previous is not None:  # the fabfile's own layout: the journal's
                left[host], to = was, to or previous
        if left and to is not None:
            rolled_back(self.config.path, left, to, marked_bad=False)  # the fabfile's rollback marks none

    def _record_head(self) -> dict[str, Any]:
        return {
            "event": "rollback",
            "strategy": "fabric",
            "tasks": list(self.config.rollback_tasks),
            "who": self.ctx.user,
            "run": self.ctx.run_id,
        }

    def execute(self, emit: Emit) -> Outcome:
        record = {**self._record_head(), "started": utc_stamp()}
        tasks = " ".join(self.config.rollback_tasks)
        before = self._running_releases()
        outcome, _result, detail = self._run_tasks(
            self.fab, f"fab {tasks}", f"rollback: {tasks}", emit, record
        )
        if outcome == "success":
            self._tell_verifications(before)
        for spec in self.hosts:
            emit(HostResult(spec.raw, outcome == "success", detail or f"fab {tasks} done"))
        if outcome == "interrupted":
            return Outcome(
                False, f"interrupted: fab {tasks} was stopped; the lock is released", ExitCode.FAILED
            )
        if outcome != "success":
            return Outcome(False, f"rollback failed: fab {tasks}: {detail}", ExitCode.FAILED)
        return Outcome(True, f"rolled back {self.env.name} with fab {tasks}", ExitCode.OK)


class FabricTaskAction(CustomAction):
    """A custom action naming a fabfile task (`fab = "TASK"`); CustomAction picks it. It runs like
    any custom action (confirmation, audit, run log, streamed output), without the deploy lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        target: Target = args[1] if len(args) > 1 else kwargs["target"]
        if (target.name or "").startswith("fab:"):
            Action.__init__(self, *args, **kwargs)
            self.custom = self._exposed((target.name or "")[4:])
        else:
            super().__init__(*args, **kwargs)
        assert self.custom.fab
        self.fab = FabricRun(self, (self.custom.fab,))

    def _exposed(self, task: str) -> CustomProfileAction:
        """`fab:TASK`, for any task the fabfile lists when [fabric] expose_tasks = true; titled by
        its docstring's first line."""
        fabric = self.ctx.profile.fabric
        if fabric is None or not fabric.expose_tasks:
            raise UsageError(
                f"'fab:{task}': the profile does not expose the fabfile's tasks; set "
                "[fabric] expose_tasks = true, or add an [[environments.E.actions]] with fab = ...",
                "Unknown action",
            )
        if not is_task_name(task):
            raise UsageError(f"'fab:{task}' is not a task name", "Unknown action")
        tasks = dict(list_fabfile_tasks(self.ctx.profile, self.env))
        setup = fabric_setup(self.ctx.profile, self.env)
        wanted = task if setup.fabric1 else fabric_cli.dashed(task)
        if wanted not in tasks:
            raise UsageError(
                f"{setup.fabfile} has no task '{task}' (its tasks: {', '.join(tasks) or 'none'})",
                "Unknown action",
            )
        return CustomProfileAction(name=f"fab:{task}", fab=task, title=tasks[wanted] or f"fab {task}")

    def summary(self) -> list[str]:
        return [f"{self.custom.label}: fab {self.custom.fab} in {self.env.name}", *self.fab.plan_lines()]

    def plan(self) -> Plan:
        return self.make_plan(
            [PlanStep(self.hosts[0].raw if self.hosts else "local", "command", self.fab.command.line())]
        )

    def execute(self, emit: Emit) -> Outcome:
        label = f"fab {self.custom.fab}"
        first = self.hosts[0].raw if self.hosts else OUTPUT_HOST
        emit(StepStarted(first, label))
        try:
            result = self.fab.run(emit, self.ctx.cancel)
        except OpsError as exc:
            emit(StepFinished(first, label, False, exc.message))
            raise
        emit(StepFinished(first, label, result.ok, "" if result.ok else f"fab exited {result.exit_code}"))
        if not result.ok:
            return Outcome(
                False,
                f"{self.custom.name} failed: fab {self.custom.fab} exited {result.exit_code}",
                ExitCode.FAILED,
            )
        return Outcome(True, f"{self.custom.name}: fab {self.custom.fab} done", ExitCode.OK)


def register() -> None:
    """`deploy`, `rollback` and `run` pick these for fabric environments and `fab` actions."""
    STRATEGIES["fabric"] = FabricDeployAction
    ROLLBACK_STRATEGIES["fabric"] = FabricRollbackAction
    FAB_TASK_ACTION[:] = [FabricTaskAction]


def list_fabfile_tasks(profile: Profile, env: Environment) -> list[tuple[str, str]]:
    """(task, first docstring line) of every task the environment's fabfile lists (runs `fab`)."""
    setup = fabric_setup(profile, env)
    command = fabric_cli.FabCommand(
        setup.python,
        fabric_cli.build_args(setup.fabfile, setup.fabric1, (), None, None, profile.defaults.timeout),
        setup.fabfile.parent,
        "",
        prefix=False,
    )
    return fabric_cli.list_tasks(command, setup.fabric1)


def check_fabric(profile: Profile) -> None:
    """`profile validate`: every fabric environment's fabfile exists, its `fab` runs here and lists
    the tasks the environment names (deploy, rollback and `fab` actions); ProfileError with
    file:line otherwise."""
    from opsconsole.profiles import display_path, locate_lines
    from opsconsole.profiles.locate import _line_for

    try:
        index = locate_lines(profile.path.read_text())
    except OSError:
        index = {}
    shown = display_path(profile.path)
    problems: list[str] = []
    listed: dict[tuple[Path, str], list[str] | str] = {}
    for env in profile.environments.values():
        deploy = env.deploy
        named: list[tuple[tuple[str | int, ...], str]] = []
        if deploy is not None and deploy.strategy == "fabric":
            base: tuple[str | int, ...] = ("environments", env.name, "deploy")
            named += [((*base, "tasks"), t) for t in deploy.tasks]
            named += [((*base, "rollback_tasks"), t) for t in deploy.rollback_tasks]
        named += [
            (("environments", env.name, "actions", i, "fab"), a.fab)
            for i, a in enumerate(env.actions)
            if a.fab
        ]
        if not named:
            continue
        where = f"{shown}:{_line_for(named[0][0][:3], index)}"
        try:
            setup = fabric_setup(profile, env)
        except OpsError as exc:
            problems.append(f"{where}: environment '{env.name}': {exc.message}")
            continue
        key = (setup.fabfile, setup.python)
        if key not in listed:
            try:
                listed[key] = [name for name, _help in list_fabfile_tasks(profile, env)]
            except OpsError as exc:
                listed[key] = exc.message
        tasks = listed[key]
        if isinstance(tasks, str):
            problems.append(
                f"{where}: environment '{env.name}': the tasks of {setup.fabfile} could not be listed: {tasks}"
            )
            continue
        for path, name in named:
            task_name = name.split(":", 1)[0] if setup.fabric1 else fabric_cli.dashed(name)
            if task_name not in tasks:
                problems.append(
                    f"{shown}:{_line_for(path, index)}: {setup.fabfile} has no task '{name}' "
                    f"(its tasks: {', '.join(tasks) or 'none'})"
                )
    if problems:
        from opsconsole.errors import ProfileError

        raise ProfileError(problems)
