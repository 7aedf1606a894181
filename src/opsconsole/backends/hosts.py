"""Host access: `local` (subprocess, sockets opened directly) or SSH (asyncssh, host keys verified).

Every call has a timeout. A connection is opened lazily, reused per host, and re-opened after it
drops. Errors are `HostError`s whose text names the host and the cause
("web-2: ssh: timed out after 5.0 s").
"""

from __future__ import annotations

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
from opsconsole.profiles import Defaults, HostSpec
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


@frozen
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


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
        # does (its stdin pipe closes), so a SIGKILLed console leaves no build running.
        guard = cancel is not None
        proc = subprocess.Popen(
            ["/bin/sh", "-c", guarded_command(command) if guard else command],
            stdin=subprocess.PIPE if guard else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out: list[str] = []
        err: list[str] = []

        def pump(pipe: Any, name: str, sink: list[str]) -> None:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                sink.append(line)
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
            if proc.stdin is not None:
                proc.stdin.close()  # the watchdog kills the command's group on EOF
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        reason = self._wait(lambda: proc.poll() is not None, stop, timeout, cancel)
        proc.wait()
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        for thread in threads:
            thread.join(5)
        self._raise_if_stopped(reason, command, timeout)
        return self._checked(command, CommandResult(proc.returncode, "".join(out), "".join(err)), check)

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


def make_host(spec: HostSpec, defaults: Defaults, timeout: float | None = None) -> Host:
    seconds = timeout if timeout is not None else defaults.timeout
    if spec.is_local:
        return LocalHost(spec, seconds)
    from opsconsole.backends.ssh import SshHost

    return SshHost(spec, defaults, seconds)


class HostPool:
    """One Host per spec, shared by every source so SSH connections are reused."""

    def __init__(self, defaults: Defaults) -> None:
        self.defaults = defaults
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def get(self, spec: HostSpec) -> Host:
        with self._lock:
            host = self._hosts.get(spec.raw)
            if host is None:
                host = make_host(spec, self.defaults)
                self._hosts[spec.raw] = host
            return host

    def close(self) -> None:
        with self._lock:
            hosts = list(self._hosts.values())
            self._hosts.clear()
        for host in hosts:
            try:
                host.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
