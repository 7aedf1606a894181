"""SSH hosts through Fabric, with host keys verified against known_hosts (RejectPolicy)."""

from __future__ import annotations

import io
import os
import socket
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
        self._streamlocal: bool | None = None  # whether the server forwards unix sockets (unknown yet)
        self.opened: list[str] = []  # why connections were opened (first use, lost, all busy): the last few

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

        user = self.spec.user
        config = _fabric_config()
        if (
            user is None
            and "user" not in Connection(self.spec.hostname, port=self.spec.port, config=config).ssh_config
        ):
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
            config=config,
        )
        client = connection.client
        known = self.known_hosts
        if known.is_file():
            # only this host's entries: loading the whole file per connection is O(hosts²) in a fleet
            name = connection.host if connection.port == 22 else f"[{connection.host}]:{connection.port}"
            for keytype, key in (_known_hosts(known).lookup(name) or {}).items():
                client.get_host_keys().add(name, keytype, key)
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
            # without it every channel open waits out a delayed ACK (~40 ms on Linux)
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    def _note_opened(self, why: str) -> None:
        """Keep the reason, and only the last few: a console that runs for weeks against a host that
        keeps dropping must not grow a list without end."""
        self.opened.append(why)
        del self.opened[:-OPENED_KEPT]

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
                        self._note_opened("the connection was lost")
                for link in self._links:
                    if link.alive and link.sessions < self.max_sessions:
                        link.sessions += 1
                        return link
                if sum(1 for link in self._links if link.alive) < MAX_LINKS:
                    why = "all sessions busy" if self._links else "first use"
                    link = self._open_link()
                    self._note_opened(why)
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
        """The command on its own exec channel, read as it arrives (paramiko directly: Fabric's
        runner polls its streams and cost ~0.1 s per command, which a refresh of 200 hosts pays)."""
        import codecs
        import select

        # with `cancel`, guarded: the command dies when its channel closes (cancel or a dropped
        # connection), since sshd signals nothing to a session without a pty
        guarded = cancel is not None
        try:
            transport = connection.client.get_transport()
            if transport is None or not transport.is_active():
                raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
            channel = transport.open_session(timeout=self.timeout)
            channel.exec_command(guarded_command(command) if guarded else command)
            if not guarded:
                _shutdown_write(channel)  # no input: the command reads EOF
        except HostError:
            raise
        except Exception as exc:
            raise self.error("ssh", exc) from None
        callback = on_line or (lambda _s, _l: None)
        streams: dict[str, tuple[_LineSplitter, Any, list[str]]] = {
            "out": (_LineSplitter("out", callback), codecs.getincrementaldecoder("utf-8")("replace"), []),
            "err": (_LineSplitter("err", callback), codecs.getincrementaldecoder("utf-8")("replace"), []),
        }

        def take(name: str, data: bytes, final: bool = False) -> None:
            splitter, decoder, sink = streams[name]
            text = decoder.decode(data, final)
            if text:
                sink.append(text)
                splitter.write(text)

        deadline = None if timeout is None else time.monotonic() + timeout
        reason: str | None = None
        try:
            wake = channel.fileno()  # readable when stdout or stderr has data, or at EOF
            while True:
                while channel.recv_ready():
                    take("out", channel.recv(65536))
                while channel.recv_stderr_ready():
                    take("err", channel.recv_stderr(65536))
                if channel.eof_received or channel.closed or not transport.is_active():
                    if not (channel.recv_ready() or channel.recv_stderr_ready()):
                        break
                    continue
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                elif deadline is not None and time.monotonic() > deadline:
                    reason = "timeout"
                if reason:
                    break
                select.select([wake], [], [], 0.05)
            if reason is None:
                channel.status_event.wait(self.timeout)  # the exit status follows the output
        except Exception as exc:
            channel.close()
            raise self.error("ssh", exc) from None
        exited = channel.exit_status if channel.status_event.is_set() else -1
        channel.close()
        for name in streams:
            take(name, b"", final=True)
            streams[name][0].finish()
        self._raise_if_stopped(reason, command, timeout)
        if exited == -1:  # no exit status: killed by a signal, or the connection is going down
            for _ in range(20):
                if not transport.is_active():
                    break
                time.sleep(0.05)
        if exited == -1 and not transport.is_active():
            raise HostError(f"{self.name}: ssh: connection lost while running `{command}`", "Unreachable")
        stdout, stderr = ("".join(streams[name][2]) for name in ("out", "err"))
        return self._checked(command, CommandResult(int(exited), stdout, stderr), check)

    def open_unix(self, path: str) -> Stream:
        """A stream to a unix socket on the host: OpenSSH's streamlocal forwarding (no process on the
        host, no shell start-up per connection); where the server refuses it, or the socket cannot be
        reached that way, a python3 bridge over an exec channel, whose errors say exactly why."""
        if self._streamlocal is not False:
            link = self._lease()
            try:
                channel = _open_streamlocal(link.connection.client.get_transport(), path, self.timeout)
            except Exception:  # noqa: BLE001 - refused (or no such socket): the bridge tells which
                self._release(link)
            else:
                self._streamlocal = True
                channel.settimeout(self.timeout)
                return _LeasedChannel(channel, lambda: self._release(link))
        bridge = _BridgeChannel(self.open_exec(unix_bridge_command(path)), self.name, path)
        if self._streamlocal is None:
            self._streamlocal = False  # the bridge answered where streamlocal did not: the server refuses it
        return bridge

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


_KNOWN_HOSTS: dict[Path, tuple[tuple[int, int], Any]] = {}
_KNOWN_HOSTS_LOCK = threading.Lock()


def _shutdown_write(channel: Any) -> None:
    """channel.shutdown_write(), with the EOF sent while the channel's lock is held. paramiko sends
    it after releasing the lock: when the command had already finished, the transport thread could
    answer the server's CLOSE in between, our EOF then followed our CLOSE, and sshd dropped the
    whole connection ("ieof packet referred to nonexistent channel"), every session on it with it.
    Under the lock the EOF goes first (paramiko answers a CLOSE under the same lock)."""
    with channel.lock:
        message = channel._send_eof()
        if message is not None and channel.transport is not None:
            channel.transport._send_user_message(message)


_FABRIC_CONFIG: tuple[Any, Any] | None = None  # (the ssh_config files' state, the Config)


def _fabric_config() -> Any:
    """One Fabric configuration for every connection (it is only read once made), made again when
    an ssh_config file changes. Each Connection built its own: a deep copy of every default and the
    ssh_config files read again, ~8 KiB of memory a host in a fleet and two file reads a connection."""
    global _FABRIC_CONFIG
    files: list[tuple[str, int | None, int | None]] = []
    for name in (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config"):
        try:
            stat = os.stat(name)
            files.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            files.append((name, None, None))
    state = tuple(files)
    if _FABRIC_CONFIG is None or _FABRIC_CONFIG[0] != state:
        from fabric import Config

        _FABRIC_CONFIG = (state, Config())
    return _FABRIC_CONFIG[1]


def _known_hosts(path: Path) -> Any:
    """known_hosts parsed once per change of the file (not once per connection)."""
    import paramiko

    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    with _KNOWN_HOSTS_LOCK:
        cached = _KNOWN_HOSTS.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        keys = paramiko.HostKeys(str(path))
        _KNOWN_HOSTS[path] = (version, keys)
        return keys


def _open_streamlocal(transport: Any, path: str, timeout: float) -> Any:
    """A `direct-streamlocal@openssh.com` channel to a unix socket on the server (OpenSSH's
    `ssh -L local:/remote.sock`). paramiko's open_channel cannot send this request's fields (path,
    reserved string, reserved uint32), so this is its body with them: it uses paramiko 3-5 internals
    and any failure falls back to the python3 bridge."""
    import paramiko
    from paramiko.common import cMSG_CHANNEL_OPEN
    from paramiko.message import Message

    if transport is None or not transport.active:
        raise paramiko.SSHException("SSH session not active")
    with transport.lock:
        window_size = transport._sanitize_window_size(None)
        max_packet_size = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string("direct-streamlocal@openssh.com")
        m.add_int(chanid)
        m.add_int(window_size)
        m.add_int(max_packet_size)
        m.add_string(path)
        m.add_string("")
        m.add_int(0)
        chan = paramiko.Channel(chanid)
        transport._channels.put(chanid, chan)
        transport.channel_events[chanid] = event = threading.Event()
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window_size, max_packet_size)
    transport._send_user_message(m)
    if not event.wait(timeout):
        raise paramiko.SSHException("timed out opening a streamlocal channel")
    chan = transport._channels.get(chanid)
    if chan is None:
        raise transport.get_exception() or paramiko.SSHException("streamlocal channel refused")
    return chan


OPENED_KEPT = 16  # reasons kept in SshHost.opened
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
