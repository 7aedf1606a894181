"""Run logs: every changing action's event stream, written to its environment's first host, so anyone
can watch a run that someone else started, from anywhere (`opsconsole watch`, the console's `w`).

The file is `.opsconsole/runs/<run-id>.jsonl` under the environment's `deploy.path` (without one,
`~/.opsconsole/runs/` of the SSH user). Line one is a `start` record (run, action, environment,
target, who, started, hosts), written before the action starts (so before it takes a lock); then
one line per event, in order (`{"type": "StepStarted", ...}`, the same events the action screen
shows), appended in batches at most every 0.25 s, with a `beat` record every 5 s while nothing else is written; the last line is the `end` record (the
outcome and the exit code the CLI exited with). The newest 50 logs are kept.

Writing never fails an action: if the host cannot take the log, the run goes on and a notice says
that watchers will not see it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from opsconsole.actions.events import (
    Event,
    HostResult,
    Notice,
    Outcome,
    OutputLine,
    OutputLines,
    StepFinished,
    StepStarted,
)
from opsconsole.backends.hosts import Host
from opsconsole.backends.runlogs import run_path, runs_dir
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import ExitCode, OpsError
from opsconsole.human import utc_stamp
from opsconsole.profiles import Environment
from opsconsole.secrets import redact

KEEP = 50
BATCH_SECONDS = 0.25
BEAT_SECONDS = 5.0
MAX_APPEND = 60_000  # bytes per append command (one shell argument stays well below 128 KiB)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (StepStarted, StepFinished, OutputLine, OutputLines, HostResult, Notice, Outcome)
}


def encode(event: Event) -> dict[str, Any]:
    data = asdict(event)
    if isinstance(event, Outcome):
        data["exit_code"] = int(event.exit_code)
        data["hosts"] = dict(event.hosts)
    if isinstance(event, OutputLines):
        data["lines"] = list(event.lines)
    return {"type": type(event).__name__, **data}


# each event's fields as a run log may carry them: name -> (type, required). A record with a field of
# another type is dropped whole (a log on a host is outside input: `"host": ["x"]` must not reach a
# widget that keys on the host); fields not listed here (`shown`) are never taken from a log.
_FIELDS: dict[type[Any], dict[str, tuple[type[Any], bool]]] = {
    StepStarted: {"host": (str, True), "step": (str, True)},
    StepFinished: {"host": (str, True), "step": (str, True), "ok": (bool, True), "detail": (str, False)},
    OutputLine: {"host": (str, True), "line": (str, True), "stream": (str, False)},
    OutputLines: {"host": (str, True), "lines": (list, True), "stream": (str, False)},
    HostResult: {"host": (str, True), "ok": (bool, True), "message": (str, True)},
    Notice: {"message": (str, True)},
    Outcome: {"ok": (bool, True), "message": (str, True), "exit_code": (int, False), "hosts": (dict, False)},
}


def decode(record: dict[str, Any]) -> Event | None:
    """The event a record holds; None for start/beat/end records, anything unknown, and any record
    whose fields are not of the expected types."""
    cls = EVENT_TYPES.get(str(record.get("type")))
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for name, (kind, required) in _FIELDS[cls].items():
        if name not in record:
            if required:
                return None
            continue
        value = record[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
        values[name] = value
    if cls is OutputLines:
        if not all(isinstance(x, str) for x in values["lines"]):
            return None
        values["lines"] = tuple(values["lines"])
    if cls is Outcome:
        hosts = values.get("hosts", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in hosts.items()):
            return None
        values["exit_code"] = exit_code_of(values.get("exit_code", 1))
    event: Event = cls(**values)
    return event


def exit_code_of(value: Any) -> ExitCode:
    """A recorded exit code as one of ours; anything else (a signal's 130, a string) is FAILED."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ExitCode(value)
        except ValueError:
            pass
    return ExitCode.FAILED


class RunLogWriter:
    """Batches a run's events to its log on one host, from a thread of its own."""

    def __init__(
        self, host: Host, env: Environment, start: dict[str, Any], notice: Callable[[str], None]
    ) -> None:
        self.host = host
        self.env = env
        self.path = run_path(env, str(start["run"]))
        self.notice = notice
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._broken = False
        # the start record is written here, before the runner starts the action: a watcher started
        # right after the confirmation finds the run before its first step (the lock) is taken
        self._write([{"type": "start", **start}], prune=True)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="runlog")
        self._thread.start()

    def add(self, event: Event) -> None:
        self._queue.put(encode(event))

    def finish(self, outcome: Outcome, exit_code: int, timeout: float = 10.0) -> None:
        self._queue.put({**encode(outcome), "type": "Outcome"})
        self._queue.put(
            {
                "type": "end",
                "ok": outcome.ok,
                "exit_code": exit_code,
                "message": outcome.message,
                "finished": utc_stamp(),
            }
        )
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        last_write = time.monotonic()
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            deadline = time.monotonic() + BATCH_SECONDS
            while True:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            if not batch and time.monotonic() - last_write >= BEAT_SECONDS:
                batch.append({"type": "beat", "time": utc_stamp()})
            if batch and not self._broken:
                self._write(batch, prune=False)
                last_write = time.monotonic()

    def _write(self, batch: list[dict[str, Any]], prune: bool) -> None:
        text = "".join(redact(json.dumps(r, sort_keys=True, ensure_ascii=False)) + "\n" for r in batch)
        chunks = [text[i : i + MAX_APPEND] for i in range(0, len(text), MAX_APPEND)]
        folder = quote_path(runs_dir(self.env))
        try:
            for n, chunk in enumerate(chunks):
                # umask 077: a run log holds every output line of the run, for its owner only
                command = f"umask 077 && printf '%s' {quote(chunk)} >> {quote_path(self.path)}"
                if prune and n == 0:
                    # keep the newest KEEP logs (names sort by time: run ids start with a UTC stamp)
                    command = (
                        f"umask 077 && mkdir -p {folder} && "
                        f"{{ chmod go-rwx {folder} {quote_path(runs_dir(self.env).rsplit('/', 1)[0])} 2>/dev/null || true; }} && "
                        f"{command} && cd {folder} && "
                        f"ls -1 | grep '\\.jsonl$' | sort -r | sed -n '{KEEP + 1},$p' | "
                        'while read -r f; do rm -f -- "$f"; done'
                    )
                result = self.host.run(command, timeout=self.host.timeout)
                if not result.ok:
                    raise OpsError(result.stderr.strip()[:200] or f"exit {result.exit_code}")
        except OpsError as exc:
            self._broken = True
            self.notice(
                f"{self.host.name}: the run log {self.path} could not be written ({exc.message}); "
                "others cannot watch this run"
            )
