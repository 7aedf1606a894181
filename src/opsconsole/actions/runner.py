"""Running an action: policies (read-only, protected, confirmation), audit, events, cancellation.

The same runner serves the CLI, the console and scripts, so every caller gets the same refusals and
every change is audited: one JSON line per change (time, user@machine, profile, environment, action,
target, plan summary, outcome, duration), flushed and fsynced. If the audit log cannot be written the
action is refused before it changes anything.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from opsconsole import paths
from opsconsole.actions.base import Action, Plan
from opsconsole.actions.events import Event, Notice, Outcome
from opsconsole.atomic import append_durable
from opsconsole.backends.hosts import Cancelled
from opsconsole.errors import ExitCode, OpsError, RefusedError
from opsconsole.sanitize import clean
from opsconsole.secrets import redact

MIN_FREE_BYTES = 64 * 1024


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Confirmation = Literal["none", "yes", "typed"]


def read_only_active(action: Action) -> bool:
    """Read-only comes from one place: the context (the CLI's --read-only, the console's flag) or
    the environment's `read_only = true`."""
    return action.ctx.read_only or action.env.read_only


def confirmation_for(action: Action) -> Confirmation:
    """The one rule for asking: nothing for reads, the typed name for protected environments,
    y/N for other changes (custom actions may opt out with `confirm = false`)."""
    if not action.changes:
        return "none"
    if action.env.protected:
        return "typed"
    return "yes" if action.needs_confirmation else "none"


def read_only_reason(action: Action) -> str:
    """Why changes are refused, in the words of what switched read-only on."""
    import os

    if action.env.read_only:
        return "the environment is read_only = true"
    if action.ctx.via == "serve":
        return "this console is served read-only (`opsconsole serve --allow-changes` lets browsers change things)"
    if os.environ.get("OPSCONSOLE_READ_ONLY") == "1":
        return "read-only mode is on (OPSCONSOLE_READ_ONLY=1)"
    return "read-only mode is on (--read-only)"


def check_policies(action: Action, *, confirm: str | None, approved: bool) -> None:
    """Raise RefusedError unless the action may run now. Read-only first, then confirmation."""
    if not action.changes:
        return
    env = action.env
    if read_only_active(action):
        where = read_only_reason(action)
        raise RefusedError(f"refused: {action.id} changes {env.name}, and {where}", "Read-only")
    needed = confirmation_for(action)
    if needed == "typed" and confirm != env.name:
        given = f" (got '{confirm}')" if confirm else ""
        raise RefusedError(
            f"refused: {env.name} is protected; confirm by passing --confirm {env.name}{given}",
            "Confirmation required",
        )
    if needed == "yes" and not approved:
        raise RefusedError(
            f"refused: {action.id} changes {env.name}; confirm with --yes (or answer the prompt in a terminal)",
            "Confirmation required",
        )


@dataclass(frozen=True)
class Prepared:
    """The one prepare step every front end visits: the plan to show (and to run, and to audit),
    the confirmation it needs, or why it may not run at all."""

    plan: Plan | None
    confirmation: Confirmation
    refusal: RefusedError | None = None


def prepare(action: Action) -> Prepared:
    """Read-only refuses before any plan is built; otherwise the plan, built once. Raises OpsError
    when the plan itself cannot be made (nothing to roll back to, an unknown host...)."""
    if action.changes and read_only_active(action):
        try:
            check_policies(action, confirm=None, approved=True)
        except RefusedError as exc:
            return Prepared(None, "none", exc)
    return Prepared(action.plan(), confirmation_for(action))


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.audit_log_path()

    def preflight(self) -> None:
        """Refuse before any change when the audit log cannot take a record."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.close(fd)
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            raise RefusedError(
                f"refused: the audit log {self.path} is not writable ({exc.strerror or exc}); "
                "no change is made unaudited. Fix its permissions or set OPSCONSOLE_AUDIT_LOG",
                "Audit log unavailable",
            ) from None
        if free < MIN_FREE_BYTES:
            raise RefusedError(
                f"refused: the disk holding the audit log {self.path} is full ({free} bytes free); "
                "no change is made unaudited",
                "Audit log unavailable",
            )

    def write(self, record: dict[str, Any]) -> None:
        append_durable(self.path, redact(json.dumps(record, sort_keys=True)))


class ActionRun:
    """One run of an action: iterate `events()`; `cancel()` from any thread."""

    def __init__(
        self,
        action: Action,
        *,
        confirm: str | None = None,
        approved: bool = False,
        audit: AuditLog | None = None,
    ) -> None:
        self.action = action
        self.confirm = confirm
        self.approved = approved
        self.prepared: Prepared | None = None
        self.audit = audit or AuditLog()
        self.outcome: Outcome | None = None
        self.done = threading.Event()  # set once the outcome is final and audited
        self._queue: queue.Queue[Event | None] = queue.Queue()

    def prepare(self) -> Prepared:
        """Build the plan once; the front end shows it, and exactly it runs and is audited."""
        if self.prepared is None:
            self.prepared = prepare(self.action)
        return self.prepared

    def approve(self, answer: str | None) -> None:
        """A person's answer to the prepared confirmation, the one way front ends give it: a run
        that needs none is approved; for "yes" any answer approves; for "typed" the answer is the
        name typed, which the policies check when the run starts. None (declined, no terminal to
        ask) grants nothing, and an answer never takes back what `--yes`/`--confirm` granted."""
        needed = self.prepare().confirmation
        if needed == "none" or answer is not None:
            self.approved = True
        if needed == "typed" and answer is not None:
            self.confirm = answer

    def cancel(self) -> None:
        self.action.ctx.cancel.set()

    @property
    def cancelled(self) -> bool:
        return self.action.ctx.cancel.is_set()

    def _emit(self, event: Event) -> None:
        self._queue.put(event)

    def events(self) -> Iterator[Event]:
        """Check policies, run the action in a thread and yield its events; the last is the Outcome."""
        try:
            yield from self._events()
        finally:
            self.done.set()

    def _events(self) -> Iterator[Event]:
        action = self.action
        started = time.monotonic()
        started_at = now_iso()
        plan = None
        try:
            prepared = self.prepare()
            if prepared.refusal is not None:
                raise prepared.refusal
            check_policies(action, confirm=self.confirm, approved=self.approved)
            plan = prepared.plan
            if action.changes:
                self.audit.preflight()
        except OpsError as exc:
            # refused before anything ran: nothing changed, so nothing to audit
            outcome = Outcome(False, redact(exc.message), exc.exit_code)
            self.outcome = outcome
            yield outcome
            return

        if action.changes:
            # the start record comes before any change, so even a SIGKILLed run leaves a trace
            try:
                self._audit_start(plan, started_at)
            except OSError as exc:
                outcome = Outcome(
                    False,
                    f"refused: the audit log {self.audit.path} could not take the start record "
                    f"({exc.strerror or exc}); nothing was changed",
                    ExitCode.REFUSED,
                )
                self.outcome = outcome
                yield outcome
                return

        writer = self._run_log(action, started_at) if action.changes else None

        def work() -> None:
            try:
                result = action.execute(self._emit)
            except Cancelled as exc:
                result = Outcome(False, redact(f"interrupted: {exc.message}"), ExitCode.FAILED)
            except OpsError as exc:
                result = Outcome(False, redact(exc.message), exc.exit_code)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome, never a hang
                result = Outcome(False, redact(f"{type(exc).__name__}: {exc}"), ExitCode.FAILED)
            self.outcome = result
            self._queue.put(None)

        thread = threading.Thread(target=work, daemon=True, name=f"action-{action.id}")
        thread.start()
        while True:
            try:
                event = self._queue.get()
            except KeyboardInterrupt:
                if self.cancelled:
                    raise  # a second Ctrl+C abandons the run
                self.cancel()
                yield Notice("cancelling (Ctrl+C again to abandon)")
                continue
            if event is None:
                break
            if writer is not None:
                writer.add(event)
            yield event
        thread.join()
        final = self.outcome
        assert final is not None
        outcome = final
        if writer is not None:
            # 130 for an interrupted run, as a shell reports Ctrl+C; watchers exit with this
            writer.finish(outcome, 130 if self.cancelled else int(outcome.exit_code))
        # every run that wrote a start record gets its end record, a refusal (lock held, nothing to
        # roll back to) included, so the two always pair up by run id
        if action.changes:
            try:
                self._audit(plan, outcome, started, started_at)
            except OSError as exc:
                outcome = Outcome(
                    False,
                    f"{outcome.message}; AND the audit record could not be written to {self.audit.path}: "
                    f"{exc.strerror or exc}",
                    ExitCode.FAILED,
                    outcome.hosts,
                )
                self.outcome = outcome
                yield Notice(outcome.message)
        yield outcome

    def _run_log(self, action: Action, started_at: str) -> Any:
        """The run's event stream on the environment's first host, for watchers (see actions/runlog.py)."""
        if not action.env.hosts:
            return None
        from opsconsole.actions.runlog import RunLogWriter

        start = {
            "run": action.ctx.run_id,
            "action": action.id,
            "environment": action.env.name,
            "target": action.target_label,
            "who": action.ctx.user,
            "started": started_at,
            "hosts": [h.raw for h in action.hosts],
        }
        if action.ctx.via:
            start["via"] = action.ctx.via
        try:
            host = action.ctx.backends.host(action.env.hosts[0])
        except OpsError as exc:
            self._emit(Notice(f"the run log cannot be written ({exc.message}); others cannot watch this run"))
            return None
        return RunLogWriter(host, action.env, start, lambda text: self._emit(Notice(text)))

    def _base_record(self, plan: Any, started_at: str) -> dict[str, Any]:
        action = self.action
        record: dict[str, Any] = {
            "run": action.ctx.run_id,
            "time": started_at,
            "user": action.ctx.user,
            "profile": action.ctx.profile.name,
            "environment": action.env.name,
            "action": action.id,
            "target": action.target_label,
            "hosts": [h.raw for h in action.hosts],
            # the very plan the person approved: prepare() built it once, before the question
            "plan": plan.render() if plan is not None else None,
        }
        options = {k: v for k, v in action.target.options.items() if v not in (None, False, "")}
        if options:  # what the person asked for beyond the target (--skip-ci, --reason...)
            record["options"] = options
        if action.ctx.via:
            record["via"] = action.ctx.via
        if action.ctx.remote:
            record["remote"] = action.ctx.remote
        return record

    def _audit_start(self, plan: Any, started_at: str) -> None:
        self.audit.write({**self._base_record(plan, started_at), "phase": "start"})

    def _audit(self, plan: Any, outcome: Outcome, started: float, started_at: str) -> None:
        if outcome.ok:
            label = "success"
        elif outcome.exit_code == ExitCode.REFUSED:
            label = "refused"
        elif self.cancelled:
            label = "interrupted"
        else:
            label = "failed"
        record = {
            **self._base_record(plan, started_at),
            "phase": "end",
            "finished": now_iso(),
            "outcome": label,
            "message": clean(outcome.message, 2000),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if self.cancelled:
            record["interrupted"] = True
        self.audit.write(record)

    def run_to_end(self) -> Outcome:
        for _ in self.events():
            pass
        assert self.outcome is not None
        return self.outcome
