"""Host access: `local` (subprocess, sockets opened directly) or SSH (Fabric, host keys verified).

Every call has a timeout. A connection is opened lazily, reused per host, and re-opened after it
drops. Errors are `HostError`s whose text names the host and the cause
("web-2: ssh: timed out after 5.0 s").
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import Defaults, HostSpec

LineCallback = Callable[[str, str], None]  # (stream "out"|"err", line)

# paramiko logs connection failures itself; they are reported as HostErrors instead, and a log
# record on stderr would scribble over the console's screen.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class HostError(UnreachableError):
    """The host could not be reached or the transport failed (exit code 4)."""


class CommandFailed(OpsError):
    def __init__(self, host: str, command: str, result: CommandResult) -> None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        detail = ("; ".join(tail))[:500]
        super().__init__(
            f"{host}: `{command}` exited with {result.exit_code}" + (f": {detail}" if detail else ""),
            "Command failed",
        )
        self.result = result


class Cancelled(OpsError):
    def __init__(self, what: str = "cancelled") -> None:
        super().__init__(what, "Cancelled")


@dataclass(frozen=True)
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


# A bridge from stdin/stdout to a unix socket on the remote host, run with the remote python3
# (present wherever supervisord runs). The socket path is passed as an argument, quoted.
_UNIX_BRIDGE = (
    "import os,socket,sys,threading\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
    "def up():\n"
    " while True:\n"
    "  d=os.read(0,65536)\n"
    "  if not d:\n"
    "   s.shutdown(socket.SHUT_WR);return\n"
    "  s.sendall(d)\n"
    "threading.Thread(target=up,daemon=True).start()\n"
    "while True:\n"
    " d=s.recv(65536)\n"
    " if not d:break\n"
    " os.write(1,d)\n"
)


# A watchdog for commands that change things (build steps, restarts, custom actions). It runs the
# command in a session of its own with stdin from /dev/null, and kills that whole process group when
# the command's own stdin reaches EOF, which happens when the SSH channel closes: a cancel, a dropped
# connection, or the local parent dying (its pipe closes). sshd sends no signal to a session without a
# pty, so without this a build would outlive the deploy that started it. Exit status is passed on
# (128+N when the command died of signal N). Plain python3 (2.7-compatible calls) keeps it portable
# across GNU, BusyBox and BSD userlands; hosts without python3 run the command unguarded.
_WATCHDOG = (
    "import os,signal,sys,threading,time\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    " os.setsid();n=os.open(os.devnull,os.O_RDONLY);os.dup2(n,0)\n"
    " signal.signal(signal.SIGPIPE,signal.SIG_DFL)\n"
    " os.execv('/bin/sh',['/bin/sh','-c',sys.argv[1]])\n"
    "def kill(*a):\n"
    " for sig in (signal.SIGTERM,signal.SIGKILL):\n"
    "  try:os.killpg(pid,sig)\n"
    "  except OSError:return\n"
    "  time.sleep(2)\n"
    "def watch():\n"
    " while True:\n"
    "  try:d=os.read(0,4096)\n"
    "  except OSError:d=b''\n"
    "  if not d:break\n"
    " kill()\n"
    "t=threading.Thread(target=watch);t.daemon=True;t.start()\n"
    "for s in (signal.SIGTERM,signal.SIGHUP,signal.SIGINT):\n"
    " signal.signal(s,lambda *a:threading.Thread(target=kill).start())\n"
    "signal.signal(signal.SIGPIPE,signal.SIG_IGN)\n"
    "_,st=os.waitpid(pid,0)\n"
    "sys.exit(128+os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))\n"
)


def guarded_command(command: str) -> str:
    """`command`, killed with its process group when its stdin (the channel or pipe) closes."""
    return (
        f"if command -v python3 >/dev/null 2>&1; then exec python3 -c {shlex.quote(_WATCHDOG)} {shlex.quote(command)}; "
        f"else exec /bin/sh -c {shlex.quote(command)}; fi"
    )


def unix_bridge_command(path: str) -> str:
    return f"python3 -c {shlex.quote(_UNIX_BRIDGE)} {shlex.quote(path)}"


def describe_error(host: str, what: str, exc: BaseException, timeout: float) -> str:
    """One line naming host, source and cause: 'web-2: ssh: timed out after 5.0 s'."""
    import paramiko

    if isinstance(exc, OpsError):
        return exc.message
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{host}: {what}: timed out after {timeout:g} s"
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{host}: ssh: the host key does not match known_hosts (expected {exc.expected_key.get_name()} "
            f"{exc.expected_key.get_base64()[:16]}…): refusing to connect. If the host was rebuilt, verify its "
            f"new key, then remove the old one with `ssh-keygen -R {exc.hostname}`"
        )
    if isinstance(exc, paramiko.SSHException) and (
        "No existing session" in str(exc) or "protocol banner" in str(exc)
    ):
        return f"{host}: {what}: timed out after {timeout:g} s waiting for the SSH server to answer"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{host}: ssh: authentication failed ({exc}); check the user, identity_file and ssh-agent"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"{host}: {what}: connection refused"
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


class _LineSplitter(io.TextIOBase):
    """A file-like that hands complete lines to a callback (Fabric's out_stream)."""

    def __init__(self, stream: str, callback: LineCallback) -> None:
        super().__init__()
        self.stream = stream
        self.callback = callback
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.callback(self.stream, line.rstrip("\r"))
        return len(text)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        if self.buffer:
            self.callback(self.stream, self.buffer.rstrip("\r"))
            self.buffer = ""


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
            raise CommandFailed(self.name, command, result)
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


class SshHost(Host):
    """An SSH target through Fabric, with host keys verified against known_hosts."""

    def __init__(self, spec: HostSpec, defaults: Defaults, timeout: float) -> None:
        self.spec = spec
        self.defaults = defaults
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: Any = None
        self._failure: tuple[float, HostError] | None = None

    @property
    def known_hosts(self) -> Path:
        return Path(os.path.expanduser(self.defaults.known_hosts or "~/.ssh/known_hosts"))

    def _connect(self) -> Any:
        import paramiko
        from fabric import Connection

        probe = Connection(self.spec.hostname, port=self.spec.port)
        user = self.spec.user
        if user is None and "user" not in probe.ssh_config:
            user = self.defaults.user
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": self.timeout,
            "auth_timeout": self.timeout,
            "channel_timeout": self.timeout,
        }
        if self.defaults.identity_file:
            connect_kwargs["key_filename"] = [os.path.expanduser(self.defaults.identity_file)]
        connection = Connection(
            self.spec.hostname,
            user=user,
            port=self.spec.port,
            connect_timeout=self.timeout,
            connect_kwargs=connect_kwargs,
        )
        client = connection.client
        known = self.known_hosts
        if known.is_file():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            connection.open()
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                port = connection.port
                target = connection.host if port == 22 else f"-p {port} {connection.host}"
                raise HostError(
                    f"{self.name}: ssh: unknown host key (not in {known}); refusing to connect. "
                    f"Verify the host's fingerprint, then trust it with: ssh-keyscan {target} >> {known}",
                    "Unknown host key",
                ) from None
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return connection

    def connection(self) -> Any:
        with self._lock:
            conn = self._connection
            if conn is not None and conn.is_connected:
                return conn
            if conn is not None:
                conn.close()
            self._connection = None
            # Callers that queued behind a failed attempt get its error at once instead of each
            # waiting out another timeout; a fresh attempt is made once the failure is `timeout` old.
            if self._failure is not None and time.monotonic() - self._failure[0] < self.timeout:
                raise self._failure[1]
            try:
                self._connection = self._connect()
            except HostError as exc:
                self._failure = (time.monotonic(), exc)
                raise
            except Exception as exc:
                error = self.error("ssh", exc)
                self._failure = (time.monotonic(), error)
                raise error from None
            self._failure = None
            return self._connection

    def _transport(self) -> Any:
        transport = self.connection().client.get_transport()
        if transport is None or not transport.is_active():
            raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
        return transport

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
        check: bool = False,
    ) -> CommandResult:
        connection = self.connection()
        out = _LineSplitter("out", on_line or (lambda _s, _l: None))
        err = _LineSplitter("err", on_line or (lambda _s, _l: None))
        try:
            promise = connection.run(
                # with `cancel`, guarded: the command dies when its channel closes (cancel or a
                # dropped connection), since sshd signals nothing to a session without a pty
                guarded_command(command) if cancel is not None else command,
                hide=True,
                warn=True,
                in_stream=False,
                out_stream=out,
                err_stream=err,
                asynchronous=True,
            )
        except Exception as exc:
            raise self.error("ssh", exc) from None
        runner = promise.runner
        reason = self._wait(lambda: bool(runner.process_is_finished), runner.kill, timeout, cancel)
        try:
            result = promise.join()
        except Exception as exc:
            if reason is None:
                raise self.error("ssh", exc) from None
            result = None
        out.finish()
        err.finish()
        self._raise_if_stopped(reason, command, timeout)
        assert result is not None
        transport = connection.client.get_transport()
        if result.exited == -1 and (transport is None or not transport.is_active()):
            raise HostError(f"{self.name}: ssh: connection lost while running `{command}`", "Unreachable")
        return self._checked(command, CommandResult(int(result.exited), result.stdout, result.stderr), check)

    def open_unix(self, path: str) -> Stream:
        try:
            channel = self._transport().open_session(timeout=self.timeout)
            channel.settimeout(self.timeout)
            channel.exec_command(unix_bridge_command(path))
        except HostError:
            raise
        except Exception as exc:
            raise self.error("ssh", exc) from None
        return _BridgeChannel(channel, self.name, path)

    def open_tcp(self, host: str, port: int) -> Stream:
        try:
            channel = self._transport().open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.timeout
            )
        except HostError:
            raise
        except Exception as exc:
            raise self.error(f"ssh tunnel to {host}:{port}", exc) from None
        channel.settimeout(self.timeout)
        return channel  # type: ignore[no-any-return]

    def close(self) -> None:
        # A connect in progress holds the lock until its timeout: don't wait for it (its thread is a
        # daemon and its connection is dropped with the process).
        if not self._lock.acquire(timeout=0.1):
            return
        try:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        finally:
            self._lock.release()


class _BridgeChannel:
    """An exec channel running the unix-socket bridge; reports the bridge's errors clearly."""

    def __init__(self, channel: Any, host: str, path: str) -> None:
        self.channel = channel
        self.host = host
        self.path = path
        self._got_data = False

    def sendall(self, data: bytes) -> None:
        self.channel.sendall(data)

    def recv(self, size: int) -> bytes:
        data: bytes = self.channel.recv(size)
        if data:
            self._got_data = True
        elif not self._got_data:
            self._raise_bridge_error()
        return data

    def _raise_bridge_error(self) -> None:
        status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else None
        err = b""
        while self.channel.recv_stderr_ready():
            err += self.channel.recv_stderr(65536)
        text = err.decode("utf-8", "replace")
        if "FileNotFoundError" in text or "No such file" in text:
            raise FileNotFoundError(2, "No such file or directory", self.path)
        if "ConnectionRefusedError" in text:
            raise ConnectionRefusedError(111, "Connection refused")
        if "PermissionError" in text:
            raise PermissionError(13, "Permission denied", self.path)
        if "python3: not found" in text or "command not found" in text:
            raise HostError(
                f"{self.host}: python3 is needed on the host to reach {self.path} over SSH", "Bridge"
            )
        if status not in (None, 0) or text:
            last = text.strip().splitlines()[-1] if text.strip() else f"exit {status}"
            raise OSError(f"bridge to {self.path} failed: {last}")

    def makefile(self, mode: str = "rb", *args: Any) -> Any:
        return io.BufferedReader(_RawReader(self))

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def close(self) -> None:
        self.channel.close()


class _RawReader(io.RawIOBase):
    def __init__(self, stream: _BridgeChannel) -> None:
        super().__init__()
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def make_host(spec: HostSpec, defaults: Defaults, timeout: float | None = None) -> Host:
    seconds = timeout if timeout is not None else defaults.timeout
    if spec.is_local:
        return LocalHost(spec, seconds)
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
