"""`fab` as a subprocess: its command line, one run (stdin closed, its own process group, a timeout,
output read in chunks and split into lines mapped to their host), and the fabfile's task list.

`fab` runs through fabric_shim.py in the Python that has the Fabric to use: opsconsole's own (the
default) or the one of the team's `fab` (its shebang). The shim adds host-key enforcement, remote
ptys and host prefixes; see its docstring.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsconsole.backends.hosts import Cancelled
from opsconsole.errors import OpsError, UnreachableError, UsageError

SHIM = Path(__file__).with_name("fabric_shim.py")
CHUNK = 65536  # bytes read at once from fab's output
LINE_MAX = 65536  # a longer line is passed on in pieces of this many characters
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of fab's process group
TAIL_LINES = 20  # lines kept for the message of a failed run

# `[host] out: text` (Fabric 1), `[host] text` (the shim's prefix for Fabric 2+)
_PREFIXED = re.compile(r"\[([^\]\s]+)\] (?:(?:out|err): ?)?(.*)")


def own_python() -> str:
    """The interpreter with opsconsole's own Fabric (a runtime dependency: it must import)."""
    import fabric  # noqa: F401 - fails loudly when the dependency is missing

    return sys.executable


def python_of(fab: str) -> str:
    """The Python a `fab` script runs in, from its shebang (a venv's `fab` names its python)."""
    path = Path(fab).expanduser()
    if not path.is_file():
        found = shutil.which(fab)
        if found is None:
            raise UsageError(f"fab '{fab}' does not exist: set [fabric] fab to the path of a `fab`", "No fab")
        path = Path(found)
    try:
        with path.open("rb") as handle:
            first = handle.readline(512).decode("utf-8", errors="replace").strip()
    except OSError as exc:
        raise UsageError(f"fab '{fab}' cannot be read: {exc.strerror or exc}", "No fab") from None
    words = first[2:].split() if first.startswith("#!") else []
    if words and Path(words[0]).name == "env" and len(words) > 1:
        words = [shutil.which(words[1]) or words[1]]
    if not words or "python" not in Path(words[0]).name:
        raise UsageError(
            f"fab '{fab}' is not a Python script (first line: {first[:80]!r}): opsconsole runs it in "
            "its own Python to enforce host keys; point [fabric] fab at the venv's bin/fab",
            "Not a Fabric fab",
        )
    return words[0]


def is_fabric1(fabfile: Path) -> bool:
    """A Fabric 1 fabfile imports `fabric.api` (or sets `env.hosts`)."""
    try:
        text = fabfile.read_text(errors="replace")
    except OSError:
        return False
    return bool(
        re.search(r"^\s*from\s+fabric\.api\s+import|^\s*import\s+fabric\.api|env\.hosts\b", text, re.M)
    )


@dataclass(frozen=True)
class FabCommand:
    """One `fab` run: the interpreter, the arguments `fab` gets, where it runs and the settings the
    shim reads. `line()` is the exact `fab` command line the plan shows."""

    python: str
    args: tuple[str, ...]
    cwd: Path
    known_hosts: str
    prefix: bool
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return shlex.join(("fab", *self.args))

    def argv(self) -> list[str]:
        return [self.python, str(SHIM), *self.args]

    def environ(self) -> dict[str, str]:
        # opsconsole's own secrets (OPSCONSOLE_SECRET_*) are not the fabfile's to read
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_SECRET_")}
        return {
            **inherited,
            **self.extra_env,
            "PYTHONUNBUFFERED": "1",
            "OPSCONSOLE_FAB_KNOWN_HOSTS": self.known_hosts,
            "OPSCONSOLE_FAB_PREFIX": "1" if self.prefix else "0",
        }


def build_args(
    fabfile: Path,
    fabric1: bool,
    tasks: tuple[str, ...],
    hosts: list[str] | None,
    identity: str | None,
    connect_timeout: float,
) -> tuple[str, ...]:
    """The arguments of `fab`: the fabfile, hosts (`-H`, unless the fabfile picks them), the key,
    the connect timeout, then the tasks in order."""
    args: list[str] = (
        ["-f", str(fabfile), "--abort-on-prompts", "--reject-unknown-hosts"]
        if fabric1
        else ["--search-root", str(fabfile.parent), "--collection", fabfile.stem]
    )
    if hosts:
        args += ["-H", ",".join(hosts)]
    if identity:
        args += ["-i", str(Path(identity).expanduser())]
    args += ["-t", str(max(1, int(connect_timeout)))]
    return (*args, *(task if fabric1 else dashed(task) for task in tasks))


def dashed(task: str) -> str:
    """A task as Fabric 2+ names it: Invoke turns `clear_cache` into `clear-cache` (auto_dash_names)."""
    return task.replace("_", "-")


@dataclass
class FabResult:
    exit_code: int
    tail: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class LineSplitter:
    """Chunks in, whole lines out (a line longer than LINE_MAX goes out in pieces); `\\r` dropped."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line = on_line
        self.pending = ""

    def feed(self, text: str) -> None:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        while len(self.pending) > LINE_MAX:
            lines.append(self.pending[:LINE_MAX])
            self.pending = self.pending[LINE_MAX:]
        for line in lines:
            self.on_line(line.rstrip("\r"))

    def close(self) -> None:
        if self.pending:
            self.on_line(self.pending.rstrip("\r"))
            self.pending = ""


def host_of(line: str, labels: Mapping[str, str]) -> tuple[str | None, str]:
    """(host, text) for a prefixed line whose prefix names one of `labels`; else (None, line)."""
    match = _PREFIXED.fullmatch(line)
    if match is None or match.group(1) not in labels:
        return None, line
    return labels[match.group(1)], match.group(2)


def run(
    command: FabCommand,
    on_line: Callable[[str], None],
    cancel: threading.Event,
    timeout: float,
) -> FabResult:
    """Run `fab` to its end, or kill its process group on `cancel` (raises Cancelled) or after
    `timeout` seconds (raises OpsError). `on_line` gets every line of its output (stdout and stderr
    merged, in order), called from a reader thread."""
    try:
        proc = subprocess.Popen(
            command.argv(),
            cwd=command.cwd,
            env=command.environ(),
            stdin=subprocess.DEVNULL,  # Invoke's stdin handling needs a terminal; it gets none
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one
        )
    except OSError as exc:
        raise UnreachableError(
            f"fab could not be started ({command.python}): {exc.strerror or exc}", "fab failed"
        ) from None
    tail: list[str] = []

    def line(text: str) -> None:
        tail.append(text)
        del tail[:-TAIL_LINES]
        on_line(text)

    splitter = LineSplitter(line)

    def pump() -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                break
            if not chunk:
                break
            splitter.feed(chunk.decode("utf-8", errors="replace"))
        splitter.close()

    reader = threading.Thread(target=pump, daemon=True, name="fab-output")
    reader.start()
    deadline = time.monotonic() + timeout
    stopped: str | None = None
    while proc.poll() is None:
        if cancel.wait(0.1):
            stopped = "cancelled"
        elif time.monotonic() > deadline:
            stopped = "timeout"
        if stopped:
            kill_group(proc)
            break
    proc.wait()
    reader.join(0.5 if stopped else 5.0)
    with contextlib.suppress(OSError):
        assert proc.stdout is not None
        proc.stdout.close()
    if stopped == "cancelled":
        raise Cancelled(f"fab was stopped ({command.line()})")
    if stopped == "timeout":
        raise OpsError(f"fab took longer than {timeout:g} s and was stopped", "fab timed out")
    return FabResult(proc.returncode, tail)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to fab's group, SIGKILL after KILL_GRACE if any of it is left; waits for fab."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def list_tasks(command: FabCommand, fabric1: bool, timeout: float = 30.0) -> list[tuple[str, str]]:
    """(name, first docstring line) of every task the fabfile lists; OpsError when `fab` fails."""
    lines: list[str] = []
    args = ("--shortlist",) if fabric1 else ("--list", "--list-format=json")
    listing = FabCommand(command.python, (*command.args, *args), command.cwd, command.known_hosts, False)
    result = run(listing, lines.append, threading.Event(), timeout)
    if not result.ok:
        raise OpsError(
            f"`{listing.line()}` failed (exit {result.exit_code}): " + " ".join(result.tail[-3:])[:300],
            "fab --list failed",
        )
    if fabric1:
        return [(name.strip(), "") for name in lines if name.strip()]
    try:
        data = json.loads("\n".join(lines))
    except ValueError:
        raise OpsError(
            "fab --list printed no JSON: " + " ".join(lines[-3:])[:300], "fab --list failed"
        ) from None
    found: list[tuple[str, str]] = []

    def walk(collection: object, prefix: str) -> None:
        if not isinstance(collection, dict):
            return
        for task in collection.get("tasks") or []:
            if isinstance(task, dict) and isinstance(task.get("name"), str):
                help_text = task.get("help")
                found.append((prefix + task["name"], help_text if isinstance(help_text, str) else ""))
        for sub in collection.get("collections") or []:
            if isinstance(sub, dict) and isinstance(sub.get("name"), str):
                walk(sub, f"{prefix}{sub['name']}.")

    walk(data, "")
    return found
