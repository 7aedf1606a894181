"""Run logs: every changing action's event stream, written to its environment's first host, so anyone
can watch a run that someone else started, from anywhere (`opsconsole watch`, the console's `w`).

The file is `.opsconsole/runs/<run-id>.jsonl` under the environment's `deploy.path` (without one,
`~/.opsconsole/runs/` of the SSH user). Line one is a `start` record (run, action, environment,
target, who, started, hosts); then one line per event, in order (`{"type": "StepStarted", ...}`,
the same events the action screen shows), appended in batches at most every 0.25 s, with a
`beat` record every 5 s while nothing else is written; the last line is the `end` record (the
outcome and the exit code the CLI exited with). The newest 50 logs are kept.

Writing never fails an action: if the host cannot take the log, the run goes on and a notice says
that watchers will not see it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from opsconsole.actions.base import (
    Event,
    HostResult,
    Notice,
    Outcome,
    OutputLine,
    OutputLines,
    StepFinished,
    StepStarted,
)
from opsconsole.actions.commands import q
from opsconsole.backends.hosts import Host
from opsconsole.backends.releases import rq
from opsconsole.errors import ExitCode, OpsError
from opsconsole.profiles import Environment
from opsconsole.secrets import redact

RUNS_DIR = ".opsconsole/runs"
KEEP = 50
BATCH_SECONDS = 0.25
BEAT_SECONDS = 5.0
SILENT_SECONDS = 60.0  # a run log silent this long: its writer is gone (killed, host lost)
MAX_APPEND = 60_000  # bytes per append command (one shell argument stays well below 128 KiB)

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (StepStarted, StepFinished, OutputLine, OutputLines, HostResult, Notice, Outcome)
}


def runs_dir(env: Environment) -> str:
    return f"{env.deploy.path}/{RUNS_DIR}" if env.deploy else f"~/{RUNS_DIR}"


def run_path(env: Environment, run_id: str) -> str:
    return f"{runs_dir(env)}/{run_id}.jsonl"


def encode(event: Event) -> dict[str, Any]:
    data = asdict(event)
    if isinstance(event, Outcome):
        data["exit_code"] = int(event.exit_code)
        data["hosts"] = dict(event.hosts)
    if isinstance(event, OutputLines):
        data["lines"] = list(event.lines)
    return {"type": type(event).__name__, **data}


def decode(record: dict[str, Any]) -> Event | None:
    """The event a record holds; None for start/beat/end records and anything unknown."""
    cls = EVENT_TYPES.get(str(record.get("type")))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in record.items() if k in names}
    try:
        if cls is Outcome:
            values["exit_code"] = ExitCode(int(values.get("exit_code", 1)))
        if cls is OutputLines:
            values["lines"] = tuple(str(x) for x in values.get("lines", ()))
        event: Event = cls(**values)
    except (TypeError, ValueError):
        return None
    return event


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._queue.put({"type": "start", **start})
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
                "finished": now_iso(),
            }
        )
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        first = True
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
                batch.append({"type": "beat", "time": now_iso()})
            if batch and not self._broken:
                self._write(batch, prune=first)
                first = False
                last_write = time.monotonic()

    def _write(self, batch: list[dict[str, Any]], prune: bool) -> None:
        text = "".join(redact(json.dumps(r, sort_keys=True, ensure_ascii=False)) + "\n" for r in batch)
        chunks = [text[i : i + MAX_APPEND] for i in range(0, len(text), MAX_APPEND)]
        folder = rq(runs_dir(self.env))
        try:
            for n, chunk in enumerate(chunks):
                command = f"printf '%s' {q(chunk)} >> {rq(self.path)}"
                if prune and n == 0:
                    # keep the newest KEEP logs (names sort by time: run ids start with a UTC stamp)
                    command = (
                        f"mkdir -p {folder} && {command} && cd {folder} && "
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


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class RunInfo:
    run: str
    start: dict[str, Any]
    end: dict[str, Any] | None
    age: float | None  # seconds since the log was last written (host clock)
    step: str | None = None  # the last step started, and on which host
    step_host: str | None = None

    @property
    def running(self) -> bool:
        return self.end is None and (self.age is None or self.age < SILENT_SECONDS)

    @property
    def who(self) -> str:
        return str(self.start.get("who") or "?")

    @property
    def what(self) -> str:
        return f"{self.start.get('action', '?')} {self.start.get('target', '')}".strip()

    def describe(self) -> str:
        s = self.start
        what = f"{s.get('action', '?')} {s.get('target', '')}".strip()
        return f"{what} by {s.get('who', '?')} (run {self.run})"


def latest_runs(host: Host, env: Environment, count: int = 5) -> list[RunInfo]:
    """The newest runs on the host, newest first: each log's first and last line and its age."""
    folder = rq(runs_dir(env))
    command = (
        f"[ -d {folder} ] || exit 0; cd {folder} && now=$(date +%s) && "
        f"for f in $(ls -1 | grep '\\.jsonl$' | sort -r | head -n {int(count)}); do "
        # mtime: GNU/BusyBox `stat -c %Y`, BSD `stat -f %m`
        'm=$(stat -c %Y "$f" 2>/dev/null || stat -f %m "$f" 2>/dev/null || echo ""); '
        'a=$(head -n 1 "$f"); b=$(tail -n 1 "$f"); '
        'c=$(grep \'"type": "StepStarted"\' "$f" | tail -n 1); '
        'printf "@run\\t%s\\t%s\\t%s\\n%s\\n%s\\n%s\\n" "$f" "$now" "$m" "$a" "$b" "$c"; done'
    )
    result = host.run(command, timeout=host.timeout)
    if not result.ok:
        raise OpsError(f"{host.name}: could not list the run logs: {result.stderr.strip()[:200]}", "Run logs")
    out: list[RunInfo] = []
    lines = result.stdout.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("@run\t"):
            i += 1
            continue
        _, name, now, mtime = (lines[i].split("\t") + ["", "", ""])[:4]
        first = _json(lines[i + 1]) if i + 1 < len(lines) else {}
        last = _json(lines[i + 2]) if i + 2 < len(lines) else {}
        age = float(now) - float(mtime) if now.isdigit() and mtime.isdigit() else None
        step = _json(lines[i + 3]) if i + 3 < len(lines) else {}
        out.append(
            RunInfo(
                name.removesuffix(".jsonl"),
                first,
                last if last.get("type") == "end" else None,
                age,
                str(step["step"]) if step.get("step") else None,
                str(step["host"]) if step.get("host") else None,
            )
        )
        i += 4
    return out


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def follow(host: Host, env: Environment, run_id: str, cancel: threading.Event) -> Iterator[dict[str, Any]]:
    """Every record of a run log from its start, then new ones as they come, until the `end`
    record; stops (raising OpsError) when the log has been silent for SILENT_SECONDS."""
    records: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
    heard = [time.monotonic()]
    stop = threading.Event()

    def on_line(_stream: str, line: str) -> None:
        heard[0] = time.monotonic()
        record = _json(line)
        if record:
            records.put(record)
            if record.get("type") == "end":
                stop.set()

    def tail() -> None:
        try:
            # `tail -n +1 -f`: POSIX; the watchdog ends it when we stop
            result = host.run(
                f"tail -n +1 -f {rq(run_path(env, run_id))}", on_line=on_line, cancel=stop, timeout=None
            )
            if not stop.is_set() and not result.ok:
                records.put(OpsError(f"{host.name}: run {run_id}: {result.stderr.strip()[:200]}", "Watch"))
        except OpsError as exc:
            if not stop.is_set():
                records.put(exc)
        records.put(None)

    thread = threading.Thread(target=tail, daemon=True, name="runlog-follow")
    thread.start()
    try:
        while True:
            if cancel.is_set():
                return
            if time.monotonic() - heard[0] > SILENT_SECONDS:
                raise OpsError(
                    f"run {run_id} has written nothing for {SILENT_SECONDS:g} s: the process that ran it "
                    "is most likely gone (its lock, if any, turns stale)",
                    "Run silent",
                )
            try:
                item = records.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.get("type") == "end":
                return
    finally:
        stop.set()
