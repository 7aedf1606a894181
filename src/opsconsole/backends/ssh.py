"""SSH hosts through Fabric, with host keys verified against known_hosts (RejectPolicy)."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsconsole.backends.hosts import CommandResult, Host, HostError, LineCallback, Stream
from opsconsole.backends.remote_scripts import guarded_command, unix_bridge_command
from opsconsole.profiles import Defaults, HostSpec


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


class SshHost(Host):
    """An SSH target through Fabric, with host keys verified against known_hosts."""

    def __init__(self, spec: HostSpec, defaults: Defaults, timeout: float) -> None:
        self.spec = spec
        self.defaults = defaults
        self.timeout = timeout
        self.max_sessions = max(1, min(defaults.max_sessions, 100))
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._links: list[_Link] = []
        self._failure: tuple[float, HostError] | None = None

    @property
    def _connection(self) -> Any:
        """The first open connection (tests cut it to simulate a dropped link)."""
        return self._links[0].connection if self._links else None

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

    def _open_link(self) -> _Link:
        """A new connection (under the lock). Callers that queued behind a failed attempt get its
        error at once instead of each waiting out another timeout; a fresh attempt is made once the
        failure is `timeout` old."""
        if self._failure is not None and time.monotonic() - self._failure[0] < self.timeout:
            raise self._failure[1]
        try:
            link = _Link(self._connect())
        except HostError as exc:
            self._failure = (time.monotonic(), exc)
            raise
        except Exception as exc:
            error = self.error("ssh", exc)
            self._failure = (time.monotonic(), error)
            raise error from None
        self._failure = None
        self._links.append(link)
        return link

    def _lease(self) -> _Link:
        """A session slot on a connection: every user (commands, the Supervisor bridge, Docker's
        dial-stdio, log followers) shares `max_sessions` per connection, kept below sshd's
        MaxSessions; when every connection is full a second one is opened (up to MAX_LINKS), else
        the caller waits for a slot (up to the timeout)."""
        deadline = time.monotonic() + self.timeout
        with self._free:
            while True:
                for link in list(self._links):
                    if not link.alive and link.sessions == 0:
                        link.close()
                        self._links.remove(link)
                for link in self._links:
                    if link.alive and link.sessions < self.max_sessions:
                        link.sessions += 1
                        return link
                if sum(1 for link in self._links if link.alive) < MAX_LINKS:
                    link = self._open_link()
                    link.sessions += 1
                    return link
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HostError(
                        f"{self.name}: ssh: all {self.max_sessions * MAX_LINKS} sessions ({self.max_sessions} on each "
                        f"of {MAX_LINKS} connections) stayed busy for {self.timeout:g} s; raise "
                        "defaults.max_sessions if the server's MaxSessions allows it",
                        "SSH busy",
                    )
                self._free.wait(left)

    def _release(self, link: _Link) -> None:
        with self._free:
            link.sessions -= 1
            self._free.notify()

    def connection(self) -> Any:
        """An open connection, for callers that manage no channel of their own."""
        link = self._lease()
        self._release(link)
        return link.connection

    def open_exec(self, command: str) -> Any:
        """An exec channel on a leased session slot; closing it gives the slot back."""
        link = self._lease()
        try:
            transport = link.connection.client.get_transport()
            if transport is None or not transport.is_active():
                raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
            channel = transport.open_session(timeout=self.timeout)
            channel.settimeout(self.timeout)
            channel.exec_command(command)
        except HostError:
            self._release(link)
            raise
        except Exception as exc:
            self._release(link)
            raise self.error("ssh", exc) from None
        return _LeasedChannel(channel, lambda: self._release(link))

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
        check: bool = False,
    ) -> CommandResult:
        link = self._lease()
        try:
            return self._run_on(link.connection, command, timeout, on_line, cancel, check)
        finally:
            self._release(link)

    def _run_on(
        self,
        connection: Any,
        command: str,
        timeout: float | None,
        on_line: LineCallback | None,
        cancel: threading.Event | None,
        check: bool,
    ) -> CommandResult:
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
        return _BridgeChannel(self.open_exec(unix_bridge_command(path)), self.name, path)

    def open_tcp(self, host: str, port: int) -> Stream:
        try:
            transport = self.connection().client.get_transport()
            if transport is None or not transport.is_active():
                raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
            channel = transport.open_channel(
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
            for link in self._links:
                link.close()
            self._links = []
        finally:
            self._lock.release()


MAX_LINKS = 4  # connections per host at most; each carries up to `max_sessions` sessions


class _Link:
    """One SSH connection and how many of its sessions are in use."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.sessions = 0

    @property
    def alive(self) -> bool:
        transport = self.connection.client.get_transport()
        return bool(self.connection.is_connected and transport is not None and transport.is_active())

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class _LeasedChannel:
    """A paramiko channel whose close() also gives its session slot back (once)."""

    def __init__(self, channel: Any, release: Callable[[], None]) -> None:
        self._channel = channel
        self._release: Callable[[], None] | None = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def close(self) -> None:
        try:
            self._channel.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

    def __del__(self) -> None:
        if self._release is not None:  # dropped without close (a pool discarding it)
            self.close()


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
