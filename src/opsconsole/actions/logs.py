"""Actions that change nothing: log tails (supervisor process, container, systemd unit, log file)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Option, Plan, PlanStep, Scope, Viewer
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome, OutputLine, OutputLines
from opsconsole.actions.targets import parse_target
from opsconsole.backends.files import follow_file
from opsconsole.errors import ExitCode, OpsError, RefusedError, UnreachableError, UsageError
from opsconsole.profiles import HostSpec
from opsconsole.sanitize import display_line

MAX_LINES = 1_000_000


class LogsAction(Action):
    id: ClassVar[str] = "logs"
    title: ClassVar[str] = "Tail log"
    key: ClassVar[str | None] = "l"
    key_label: ClassVar[str] = "Logs"
    tooltip: ClassVar[str] = "Tail the log of the selection, or pick a log file"
    selection: ClassVar[tuple[str, ...]] = ("process", "container", "unit")
    selection_optional: ClassVar[bool] = True
    viewer: ClassVar[Viewer] = "log"
    default_options: ClassVar[Mapping[str, Any]] = {"lines": 200, "follow": True}
    scope: ClassVar[Scope] = "process"
    changes: ClassVar[bool] = False
    description: ClassVar[str] = "Last N lines of a process, container, systemd unit or log file, then follow"
    target_arg: ClassVar[str | None] = "TARGET"
    target_help: ClassVar[str] = "supervisor:NAME, docker:NAME, systemd:UNIT or file:PATH"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "lines", ("-n", "--lines"), "how many lines to show first", kind="int", default=100, metavar="N"
        ),
        Option("follow", ("-f", "--follow"), "keep following until interrupted", kind="flag", default=False),
        Option("stream", ("--stream",), "supervisor log: stdout or stderr", default="stdout"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind, self.name = parse_target(self.target.name, ("supervisor", "docker", "systemd", "file"))
        self.lines = int(self.target.options.get("lines", 100))
        self.follow = bool(self.target.options.get("follow", False))
        self.stream = str(self.target.options.get("stream", "stdout"))
        if not 0 <= self.lines <= MAX_LINES:
            raise UsageError(f"-n must be between 0 and {MAX_LINES} (got {self.lines})", "Bad line count")
        if self.kind == "systemd" and self.env.systemd is None:
            raise UsageError(f"environment '{self.env.name}' has no [systemd] section", "Not configured")
        files = self.env.logs.files if self.env.logs is not None else ()
        if self.kind == "file" and self.name not in files:
            listed = f" (listed now: {', '.join(files)})" if files else " (none is listed now)"
            raise RefusedError(
                f"refused: '{self.name}' is not one of environment '{self.env.name}''s log files{listed}. "
                f"Only listed files can be read: add it to [environments.{self.env.name}.logs] files",
                "Unlisted log file",
            )

    def plan(self) -> Plan:
        verb = "follow" if self.follow else "read"
        return self.make_plan(
            [
                PlanStep(s.raw, "note", f"{verb} the last {self.lines} lines of {self.target.name}")
                for s in self.hosts
            ]
        )

    def _tail_supervisor(self, spec: HostSpec, emit: Emit) -> None:
        client = self.ctx.backends.supervisor(self.env, spec)
        target = client.resolve(self.name)
        lines, offset = client.tail_lines(target, self.lines, self.stream)
        for line in lines:
            emit(OutputLine(spec.raw, line))
        if not self.follow:
            return
        pending = [""]

        def on_text(chunk: str) -> None:
            data = pending[0] + chunk
            *complete, pending[0] = data.split("\n")
            if complete:
                lines = tuple(complete)
                emit(OutputLines(spec.raw, lines, shown=tuple(display_line(line) for line in lines)))

        client.follow_log(
            target,
            on_text,
            stream=self.stream,
            cancel=self.ctx.cancel,
            start_offset=offset,
            on_notice=lambda message: emit(Notice(message)),
        )
        if pending[0]:
            emit(OutputLine(spec.raw, pending[0]))

    def _tail_journal(self, spec: HostSpec, emit: Emit) -> None:
        from opsconsole.backends.systemd import follow_journal

        assert self.env.systemd is not None
        follow_journal(
            self.ctx.backends.host(spec),
            self.env.systemd,
            self.name,
            lambda entry: emit(OutputLine(spec.raw, entry.line(), "err" if entry.urgent else "out")),
            lines=self.lines,
            follow=self.follow,
            cancel=self.ctx.cancel,
            on_notice=lambda message: emit(Notice(message)),
        )

    def _tail_one(self, spec: HostSpec, emit: Emit) -> None:
        if self.kind == "supervisor":
            self._tail_supervisor(spec, emit)
        elif self.kind == "systemd":
            self._tail_journal(spec, emit)
        elif self.kind == "docker":
            self.ctx.backends.docker(self.env, spec).follow_logs(
                self.name,
                lambda line: emit(OutputLine(spec.raw, line)),
                tail=self.lines,
                follow=self.follow,
                cancel=self.ctx.cancel,
            )
        else:
            follow_file(
                self.ctx.backends.host(spec),
                self.name,
                lambda line: emit(OutputLine(spec.raw, line)),
                lines=self.lines,
                follow=self.follow,
                cancel=self.ctx.cancel,
            )

    def execute(self, emit: Emit) -> Outcome:
        errors: dict[str, OpsError] = {}

        def run(spec: HostSpec) -> None:
            try:
                self._tail_one(spec, emit)
            except OpsError as exc:
                if not self.ctx.cancel.is_set():
                    errors[spec.raw] = exc
                    emit(HostResult(spec.raw, False, exc.message))

        threads = [threading.Thread(target=run, args=(spec,), daemon=True) for spec in self.hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            code = (
                ExitCode.UNREACHABLE
                if all(isinstance(e, UnreachableError) for e in errors.values())
                else ExitCode.FAILED
            )
            return Outcome(False, "; ".join(e.message for e in errors.values()), code)
        return Outcome(True, "stopped following" if self.follow else "done", ExitCode.OK)
