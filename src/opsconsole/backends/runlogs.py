"""Reading run logs on a host: the newest runs (`latest_runs`) and one run's records as they come
(`follow`). A log on a host is outside input: every read is capped, only regular files are read.
The writer and the record format are in actions/runlog.py."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from opsconsole.backends.hosts import Host
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import OpsError
from opsconsole.profiles import Environment

RUNS_DIR = ".opsconsole/runs"
SILENT_SECONDS = 60.0  # a run log silent this long: its writer is gone (killed, host lost)
LINE_CAP = 65_536  # bytes read for one record when listing runs (its first, last and last step)
SCAN_CAP = 4 * 1024 * 1024  # bytes of a log's end searched for its last step


def runs_dir(env: Environment) -> str:
    return f"{env.deploy.path}/{RUNS_DIR}" if env.deploy else f"~/{RUNS_DIR}"


def run_path(env: Environment, run_id: str) -> str:
    return f"{runs_dir(env)}/{run_id}.jsonl"


def end_exit_code(record: dict[str, Any]) -> int:
    """The exit code an `end` record says its CLI exited with (0-255, e.g. 130 interrupted); 1 when
    it is missing or not a whole number in that range."""
    value = record.get("exit_code")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    return 1


def text_field(record: dict[str, Any], key: str, default: str = "?") -> str:
    """A start/end record's text field, or `default` when it is missing or not text."""
    value = record.get(key)
    return value if isinstance(value, str) else default


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


# what the last listing read of each log (host, folder -> name -> ("mtime.size", RunInfo)): a log
# unchanged since is not read again (an idle console re-read up to ten logs, ~12 processes each,
# every refresh)
_SEEN: dict[tuple[str, str], dict[str, tuple[str, RunInfo]]] = {}
_SEEN_LOCK = threading.Lock()


def latest_runs(host: Host, env: Environment, count: int = 5) -> list[RunInfo]:
    """The newest runs on the host, newest first: each log's first and last line and its age."""
    folder = runs_dir(env)
    key = (host.name, folder)
    with _SEEN_LOCK:
        seen = dict(_SEEN.get(key, {}))
    known = " ".join(f"{name}:{sig}" for name, (sig, _info) in seen.items())
    command = (
        f"[ -d {quote_path(folder)} ] || exit 0; cd {quote_path(folder)} && now=$(date +%s) && "
        f"known={quote(known)}; "
        f"for f in $(ls -1 | grep '\\.jsonl$' | sort -r | head -n {int(count)}); do "
        # only regular files (a symlink to /dev/zero or a FIFO would never end), every read capped
        '[ -f "$f" ] && [ ! -h "$f" ] || continue; '
        # mtime.size: GNU/BusyBox `stat -c`, BSD `stat -f`; unchanged since the last listing: not read
        'm=$(stat -c %Y.%s "$f" 2>/dev/null || stat -f %m.%z "$f" 2>/dev/null || echo ""); '
        'case " $known " in *" $f:$m "*) printf "@same\\t%s\\t%s\\t%s\\n" "$f" "$now" "$m"; continue;; esac; '
        f'a=$(head -c {LINE_CAP} "$f" | head -n 1); b=$(tail -c {LINE_CAP} "$f" | tail -n 1); '
        f'c=$(tail -c {SCAN_CAP} "$f" | grep \'"type": "StepStarted"\' | tail -n 1 | head -c {LINE_CAP}); '
        'printf "@run\\t%s\\t%s\\t%s\\n%s\\n%s\\n%s\\n" "$f" "$now" "$m" "$a" "$b" "$c"; done'
    )
    result = host.run(command, timeout=host.timeout)
    if not result.ok:
        raise OpsError(f"{host.name}: could not list the run logs: {result.stderr.strip()[:200]}", "Run logs")
    out: list[RunInfo] = []
    now_seen: dict[str, tuple[str, RunInfo]] = {}
    lines = result.stdout.splitlines()
    i = 0
    while i < len(lines):
        tag = lines[i].split("\t", 1)[0]
        if tag not in ("@run", "@same"):
            i += 1
            continue
        _, name, now, sig = (lines[i].split("\t") + ["", "", ""])[:4]
        mtime = sig.split(".", 1)[0]
        age = float(now) - float(mtime) if now.isdigit() and mtime.isdigit() else None
        if tag == "@same":  # named only when it was in `known`, from this very snapshot
            i += 1
            if name not in seen:
                continue
            info = replace(seen[name][1], age=age)
        else:
            first = _json(lines[i + 1]) if i + 1 < len(lines) else {}
            last = _json(lines[i + 2]) if i + 2 < len(lines) else {}
            step = _json(lines[i + 3]) if i + 3 < len(lines) else {}
            info = RunInfo(
                name.removesuffix(".jsonl"),
                first,
                last if last.get("type") == "end" else None,
                age,
                str(step["step"]) if step.get("step") else None,
                str(step["host"]) if step.get("host") else None,
            )
            i += 4
        out.append(info)
        if sig:
            now_seen[name] = (sig, info)
    with _SEEN_LOCK:
        _SEEN[key] = now_seen
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
            path = quote_path(run_path(env, run_id))
            result = host.run(
                f"if [ -f {path} ] && [ ! -h {path} ]; then exec tail -n +1 -f {path}; "
                f"else echo 'no such run log (or not a regular file)' >&2; exit 1; fi",
                on_line=on_line,
                cancel=stop,
                timeout=None,
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
