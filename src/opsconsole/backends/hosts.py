"""Host access: `local` (subprocess, sockets opened directly) or SSH (asyncssh, host keys verified).

Every call has a timeout. A connection is opened lazily, reused per host, and re-opened after it
drops. Errors are `HostError`s whose text names the host and the cause
("web-2: ssh: timed out after 5.0 s").
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from opsconsole.backends.remote_scripts import guarded_command
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import HostSpec
from opsconsole.record import frozen

LineCallback = Callable[[str, str], None]  # (stream "out"|"err", line)

# asyncssh logs every connection and channel (and its failures) itself; they are reported as
# HostErrors instead, and a log record on stderr would scribble over the console's screen.
logging.getLogger("asyncssh").setLevel(logging.CRITICAL)


class HostError(UnreachableError):
    """The host could not be reached or the transport failed (exit code 4)."""


def failure_message(host: str, what: str, result: CommandResult) -> str:
    """The one way a failed command is told: `web-1: WHAT exited with 2: last | lines | of stderr`."""
    tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
    detail = " | ".join(tail)[:500]
    return f"{host}: {what} exited with {result.exit_code}" + (f": {detail}" if detail else "")


class CommandFailed(OpsError):
    def __init__(self, host: str, what: str, result: CommandResult, title: str = "Command failed") -> None:
        super().__init__(failure_message(host, what, result), title)
        self.result = result


class Cancelled(OpsError):
    def __init__(self, what: str = "cancelled") -> None:
        super().__init__(what, "Cancelled")


OUTPUT_KEPT = 4 * 1024 * 1024  # characters of each stream a command's result keeps (its tail)


@frozen
class CommandResult:
    """A command's exit status and the tail of its output: the last OUTPUT_KEPT characters of each
    stream, from a line start (callers that need every line stream them with `on_line`)."""

    exit_code: int
    stdout: str
    stderr: str
    cut: int = 0  # characters dropped from the start of stdout and stderr (0: the output is whole)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class OutputTail:
    """The last `limit` characters written to a stream, and how many were dropped before them."""

    def __init__(self, limit: int = OUTPUT_KEPT) -> None:
        self.limit = limit
        self.parts: collections.deque[str] = collections.deque()
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        while self.size > self.limit:
            excess = self.size - self.limit
            first = self.parts[0]
            if len(first) <= excess:
                self.parts.popleft()
                self.size -= len(first)
                self.dropped += len(first)
            else:
                self.parts[0] = first[excess:]
                self.size -= excess
                self.dropped += excess

    def text(self) -> str:
        """What is kept; once something was dropped, from the first whole line on."""
        text = "".join(self.parts)
        if self.dropped and "\n" in text:
            head, text = text.split("\n", 1)
            self.dropped += len(head) + 1
            self.parts = collections.deque([text])
            self.size = len(text)
        return text


class Stream(Protocol):
    """A byte stream to a service on the host (socket or SSH channel)."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


def describe_error(host: str, what: str, exc: BaseException, timeout: float) -> str:
    """One line naming host, source and cause: 'web-2: ssh: timed out after 5.0 s'."""
    if isinstance(exc, OpsError):
        return exc.message
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{host}: {what}: timed out after {timeout:g} s"
    kind = type(exc).__module__.split(".")[0]
    if kind == "asyncssh":
        import asyncssh

        if isinstance(exc, asyncssh.PermissionDenied):
            return f"{host}: ssh: authentication failed ({exc.reason}); check the user, identity_file and ssh-agent"
        if isinstance(exc, asyncssh.ConnectionLost | asyncssh.DisconnectError):
            return f"{host}: {what}: connection lost ({exc.reason})"
        if isinstance(exc, asyncssh.ChannelOpenError):
            return f"{host}: {what}: the server refused the channel ({exc.reason})"
    if isinstance(exc, socket.gaierror):
        return f"{host}: {what}: cannot resolve host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{host}: {what}: connection refused"
    if isinstance(exc, FileNotFoundError):
        return f"{host}: {what}: {exc.filename or 'the socket or file'} does not exist"
    if isinstance(exc, PermissionError):
        return f"{host}: {what}: permission denied ({exc.filename or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{host}: {what}: {exc.strerror}"
    text = str(exc) or type(exc).__name__
    return f"{host}: {what}: {text}"


class Host:
    """Common interface of local and SSH hosts."""

    spec: HostSpec
    timeout: float

    @property
    def name(self) -> str:
        return self.spec.raw

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
        check: bool = False,
    ) -> CommandResult:
        raise NotImplementedError

    def open_unix(self, path: str) -> Stream:
        raise NotImplementedError

    def open_tcp(self, host: str, port: int) -> Stream:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def error(self, what: str, exc: BaseException) -> HostError:
        return HostError(describe_error(self.name, what, exc, self.timeout), "Unreachable")

    @staticmethod
    def _wait(
        finished: Callable[[], bool],
        stop: Callable[[], None],
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> str | None:
        """Wait for a command; on cancel or timeout stop it and say which ("cancelled"/"timeout")."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not finished():
            reason = None
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
            elif deadline is not None and time.monotonic() > deadline:
                reason = "timeout"
            if reason:
                stop()
                return reason
            time.sleep(0.02)
        return None

    def _raise_if_stopped(self, reason: str | None, command: str, timeout: float | None) -> None:
        if reason == "cancelled":
            raise Cancelled(f"{self.name}: `{command}` cancelled")
        if reason == "timeout":
            raise HostError(f"{self.name}: `{command}` timed out after {timeout:g} s", "Timeout")

    def _checked(self, command: str, result: CommandResult, check: bool) -> CommandResult:
        if check and not result.ok:
            raise CommandFailed(self.name, f"`{command}`", result)
        return result


class LocalHost(Host):
    def __init__(self, spec: HostSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
        check: bool = False,
    ) -> CommandResult:
        # With `cancel`, the command is guarded: it dies with its process group when this process
        # does (its stdin pipe closes), so a SIGKILLed console leaves no build running. Every
        # command leads a process group of its own, killed on cancel or timeout.
        guard = cancel is not None
        proc = subprocess.Popen(
            ["/bin/sh", "-c", guarded_command(command) if guard else command],
            stdin=subprocess.PIPE if guard else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out, err = OutputTail(), OutputTail()

        def pump(pipe: Any, name: str, sink: OutputTail) -> None:
            # lines of at most LINE_READ bytes: a stream without newlines is read in bounded pieces
            for raw in iter(lambda: pipe.readline(LINE_READ), b""):
                line = raw.decode("utf-8", errors="replace")
                sink.add(line)
                if on_line is not None:
                    on_line(name, line.rstrip("\r\n"))
            pipe.close()

        threads = [
            threading.Thread(target=pump, args=(proc.stdout, "out", out), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "err", err), daemon=True),
        ]
        for thread in threads:
            thread.start()

        def stop() -> None:
            # TERM now, KILL 2 s later if anything of the group is left; the caller does not wait
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # the watchdog kills the command's group on EOF
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            threading.Thread(target=_kill_later, args=(proc,), daemon=True).start()

        reason = self._wait(lambda: proc.poll() is not None, stop, timeout, cancel)
        if reason is None:
            proc.wait()
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        # a stopped command's output no longer matters: its readers get 0.2 s in all, then are left
        # to end with the pipes (they are daemons)
        until = time.monotonic() + (0.2 if reason else 5)
        for thread in threads:
            thread.join(max(0.0, until - time.monotonic()))
        self._raise_if_stopped(reason, command, timeout)
        stdout, stderr = out.text(), err.text()
        result = CommandResult(proc.returncode, stdout, stderr, out.dropped + err.dropped)
        return self._checked(command, result, check)

    def open_unix(self, path: str) -> Stream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except FileNotFoundError:
            sock.close()
            raise FileNotFoundError(2, "No such file or directory", path) from None
        except OSError:
            sock.close()
            raise
        return sock

    def open_tcp(self, host: str, port: int) -> Stream:
        return socket.create_connection((host, port), timeout=self.timeout)


LINE_READ = 65536  # bytes read at most per line (a longer line arrives in pieces)


def _kill_later(proc: subprocess.Popen[bytes]) -> None:
    """KILL what is left of a stopped command's process group after 2 s."""
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
