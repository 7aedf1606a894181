"""Watch: follow the action running on an environment, whoever and wherever started it.

It reads the run log on the environment's first host (see actions/runlog.py) from its start and re-emits
its events, so the CLI prints them and the console's action screen shows them as if the run were
local; it ends with the run's outcome. It changes nothing, so it is allowed in read-only mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Option, Plan, PlanStep, Scope
from opsconsole.actions.events import Emit, Notice, Outcome
from opsconsole.actions.runlog import decode
from opsconsole.backends.runlogs import RunInfo, end_exit_code, follow, latest_runs, run_path, text_field
from opsconsole.errors import ExitCode, UsageError

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # never a path: no '/', no leading '.'


class WatchAction(Action):
    id: ClassVar[str] = "watch"
    title: ClassVar[str] = "Watch"
    key: ClassVar[str | None] = "w"
    key_in_footer: ClassVar[bool] = False  # `?` lists it; the Deploys pane's running row names it
    tooltip: ClassVar[str] = (
        "Watch the action running on this environment, whoever started it, from its start"
    )
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = False
    description: ClassVar[str] = (
        "Follow the running deploy, rollback, restart... of an environment from its start, wherever it "
        "was started; exit with its exit code (nothing running: the last run's outcome, exit 0)"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option("run", ("--run",), "a run id (default: the running one, else the last)", metavar="RUN_ID"),
        Option("json", ("--json",), "print the run log's records as JSON lines", "flag"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.env.hosts:
            raise UsageError(
                f"environment '{self.env.name}' has no hosts: no run log to watch", "Not configured"
            )
        run = self.target.options.get("run") or None
        if run is not None and not RUN_ID_RE.fullmatch(str(run)):
            raise UsageError(
                f"'{run}' is not a run id (letters, digits, '.', '_' and '-', e.g. 20261126T093000Z-ab12cd; "
                "`opsconsole watch ENV` without --run follows the running one)",
                "Bad run id",
            )
        self.run_id: str | None = str(run) if run is not None else None
        self.holder: str | None = None  # "deploy main by ann@laptop", once known
        self.exit_code: int | None = None  # the watched run's exit code, once it ended

    @property
    def hosts(self) -> list[Any]:
        return [self.env.hosts[0]]

    @property
    def target_label(self) -> str:
        return self.holder or self.run_id or self.env.name

    def plan(self) -> Plan:
        where = run_path(self.env, self.run_id or "<the running run>")
        return self.make_plan([PlanStep(self.env.hosts[0].raw, "command", f"tail -n +1 -f {where}")])

    def _host(self) -> Any:
        return self.ctx.backends.host(self.env.hosts[0])

    def choose(self) -> tuple[str | None, RunInfo | None]:
        """The run to follow (None when nothing runs) and the newest run seen."""
        runs = latest_runs(self._host(), self.env)
        if self.run_id:
            return self.run_id, next((r for r in runs if r.run == self.run_id), None)
        running = next((r for r in runs if r.running), None)
        return (running.run if running else None), (running or (runs[0] if runs else None))

    def records(self) -> Iterator[dict[str, Any]]:
        """The run log's records (the CLI's --json prints these)."""
        if self.run_id is None:
            self.run_id, _ = self.choose()
        if self.run_id is None:
            return
        yield from follow(self._host(), self.env, self.run_id, self.ctx.cancel)

    def _nothing_running(self, newest: RunInfo | None) -> str:
        if newest is None:
            return f"nothing is running on {self.env.name}, and no run was recorded yet"
        end = newest.end or {}
        how = (
            ("done" if end.get("ok") is True else f"FAILED (exit {end_exit_code(end)})")
            if newest.end
            else "never finished (its writer went silent)"
        )
        message = text_field(end, "message", "")
        return f"nothing is running on {self.env.name}; the last run, {newest.describe()}: {how}" + (
            f": {message}" if message else ""
        )

    def idle_message(self) -> str | None:
        """Nothing running (and no run asked for): what to say instead of an empty action screen."""
        if self.run_id is not None:
            return None
        run_id, newest = self.choose()
        return self._nothing_running(newest) if run_id is None else None

    def execute(self, emit: Emit) -> Outcome:
        run_id, newest = self.choose()
        if run_id is None:
            return Outcome(True, self._nothing_running(newest), ExitCode.OK)
        self.run_id = run_id
        remote: Outcome | None = None
        for record in follow(self._host(), self.env, run_id, self.ctx.cancel):
            kind = record.get("type")
            if kind == "start":
                what = f"{text_field(record, 'action')} {text_field(record, 'target', '')}".strip()
                self.holder = f"{what} by {text_field(record, 'who')}"
                emit(Notice(f"watching {self.holder} (run {run_id}, started {text_field(record, 'started')})"))
            elif kind == "end":
                self.exit_code = end_exit_code(record)
            else:
                event = decode(record)
                if isinstance(event, Outcome):
                    remote = event
                elif event is not None:
                    emit(event)
        if self.ctx.cancel.is_set():
            return Outcome(False, f"stopped watching run {run_id}; it goes on", ExitCode.OK)
        if remote is None:
            return Outcome(False, f"run {run_id} ended without an outcome", ExitCode.FAILED)
        who = f" ({self.holder})" if self.holder else ""
        return Outcome(
            remote.ok, f"watched run {run_id}{who}: {remote.message}", remote.exit_code, remote.hosts
        )
