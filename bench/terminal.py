"""A pseudo-terminal driver: run a program in a pty, send keys, read what reaches the screen."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import threading
import time
from pathlib import Path

from bench.common import ANSI

# ------------------------------------------------------------------------ terminal helpers


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(pid: int) -> list[int]:
    """`pid` and every process below it (a console's helpers count as the console)."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += tree.get(current, [])
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for one in tree_pids(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def tree_rss_kib(pid: int) -> float:
    """Resident memory of `pid` and its live descendants, in KiB."""
    total = 0
    for one in tree_pids(pid):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return float(total)


class Terminal:
    """A program in a pseudo-terminal: send keys, wait for text, count bytes, read its CPU and memory."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (120, 40),
        cwd: Path | None = None,
    ) -> None:
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.environ.update(env or {})
            os.environ["TERM"] = "xterm-256color"
            if cwd is not None:
                os.chdir(cwd)
            os.execv(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.output = bytearray()
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.output += data
                self.bytes_read += len(data)

    def mark(self) -> int:
        with self._lock:
            return len(self.output)

    def wait_for(self, text: str, since: int = 0, timeout: float = 30.0) -> float:
        """Seconds until `text` appears (escape sequences ignored) in output after offset `since`."""
        needle = text.encode()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self._lock:
                chunk = bytes(self.output[since:])
            if needle in ANSI.sub(b"", chunk):
                return time.perf_counter()
            time.sleep(0.002)
        raise TimeoutError(f"{text!r} did not appear within {timeout} s")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def cpu_seconds(self) -> float:
        """CPU of the program and of any helper process it started."""
        return tree_cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self._stop = True
        try:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
