"""SSH hosts over asyncssh (one event loop thread for every connection), with host keys verified
against known_hosts."""

from __future__ import annotations

import asyncio
import contextlib
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
    """A file-like that hands complete lines to a callback (a command's output, line by line)."""

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
    """An SSH target over one asyncssh connection (more when its sessions are all busy), host keys
    verified against known_hosts. Every SSH connection of the process lives on one event loop
    thread (`_Loop`): a host costs no thread of its own (paramiko ran one per connection, ~12 KiB
    of stack each and most of a fleet's memory). Callers stay blocking and get real sockets."""

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
        """The first open connection's link (tests cut its socket to simulate a dropped link)."""
        return self._links[0] if self._links else None

    @property
    def known_hosts(self) -> Path:
        return Path(os.path.expanduser(self.defaults.known_hosts or "~/.ssh/known_hosts"))

    def _target(self) -> tuple[str, int | None, str | None]:
        """Host name, port and user as ~/.ssh/config resolves them (a `Host` alias, its HostName,
        Port and User: asyncssh reads the same file when it connects), with defaults.user where
        neither the profile nor ssh_config names one."""
        config = _ssh_config(self.spec.hostname, self.spec.port)
        user = self.spec.user
        if user is None and config.get("User") is None:
            user = self.defaults.user
        port = self.spec.port or config.get("Port")
        return str(config.get("Hostname") or self.spec.hostname), int(port) if port else None, user

    def _connect(self) -> Any:
        import asyncssh

        hostname, port, user = self._target()
        known = self.known_hosts
        trusted = _known_hosts(known)
        options: dict[str, Any] = {
            "known_hosts": trusted,
            "connect_timeout": self.timeout,
            "login_timeout": self.timeout,
            "keepalive_interval": 15,
        }
        if user:
            options["username"] = user
        if self.defaults.identity_file:
            options["client_keys"] = [os.path.expanduser(self.defaults.identity_file)]
        try:
            return _LOOP.call(
                asyncssh.connect(self.spec.hostname, self.spec.port or (), **options), self.timeout + 1
            )
        except asyncssh.HostKeyNotVerifiable:
            name = hostname if port in (None, 22) else f"[{hostname}]:{port}"
            expected = trusted.match(hostname, "", port)[0]
            if expected:
                key = expected[0].export_public_key("openssh").split()
                raise HostError(
                    f"{self.name}: ssh: the host key does not match known_hosts (expected {key[0].decode()} "
                    f"{key[1].decode()[:16]}…): refusing to connect. If the host was rebuilt, verify its "
                    f"new key, then remove the old one with `ssh-keygen -R {name}`",
                    "Changed host key",
                ) from None
            target = hostname if port in (None, 22) else f"-p {port} {hostname}"
            raise HostError(
                f"{self.name}: ssh: unknown host key (not in {known}); refusing to connect. "
                f"Verify the host's fingerprint, then trust it with: ssh-keyscan {target} >> {known}",
                "Unknown host key",
            ) from None
        except TimeoutError:
            raise HostError(
                f"{self.name}: ssh: timed out after {self.timeout:g} s connecting (no answer from the "
                "host, or from its SSH server)",
                "Unreachable",
            ) from None

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

    def _refused(self, what: str, exc: BaseException) -> HostError:
        import asyncssh

        if isinstance(exc, asyncssh.ChannelOpenError) and exc.code == asyncssh.OPEN_CONNECT_FAILED:
            return HostError(
                f"{self.name}: {what}: sshd refused a new session (MaxSessions, 10 by default, is reached); "
                "opsconsole keeps below defaults.max_sessions (8): lower it to fit the server's MaxSessions",
                "SSH busy",
            )
        if isinstance(exc, HostError):
            return exc
        return self.error(what, exc)

    def _open_process(self, link: _Link, command: str) -> Any:
        if not link.alive:
            raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
        try:
            return _LOOP.call(link.connection.create_process(command, encoding=None), self.timeout)
        except Exception as exc:
            raise self._refused("ssh", exc) from None

    def open_exec(self, command: str) -> _ChannelSocket:
        """A socket to a command's stdin and stdout, on a leased session slot; closing it closes
        the channel and gives the slot back. Its stderr and exit status are kept (`.process`)."""
        link = self._lease()
        try:
            process = self._open_process(link, command)
        except BaseException:
            self._release(link)
            raise
        sock = _bridge(process.stdout, process.stdin, lambda: self._release(link))
        sock.process = process
        return sock

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
            return self._run_on(link, command, timeout, on_line, cancel, check)
        finally:
            self._release(link)

    def _run_on(
        self,
        link: _Link,
        command: str,
        timeout: float | None,
        on_line: LineCallback | None,
        cancel: threading.Event | None,
        check: bool,
    ) -> CommandResult:
        """The command on its own exec channel; its output arrives on the SSH loop and is read here
        as it comes, so `on_line` runs on the caller's thread, never on the loop."""
        import codecs
        import queue

        # with `cancel`, guarded: the command dies when its channel closes (cancel or a dropped
        # connection), since sshd signals nothing to a session without a pty
        guarded = cancel is not None
        process = self._open_process(link, guarded_command(command) if guarded else command)
        chunks: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        _LOOP.submit(_collect(process, chunks, close_stdin=not guarded))
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
        exited: int | None = None
        while True:
            try:
                kind, value = chunks.get(timeout=0.05)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                elif deadline is not None and time.monotonic() > deadline:
                    reason = "timeout"
                if reason:
                    _LOOP.call_soon(process.close)  # a guarded command dies with its channel
                    break
                continue
            if kind == "end":
                exited = value
                break
            take(kind, value)
        for name in streams:
            take(name, b"", final=True)
            streams[name][0].finish()
        self._raise_if_stopped(reason, command, timeout)
        if exited is None:  # no exit status: killed by a signal, or the connection went down
            if not link.alive:
                raise HostError(f"{self.name}: ssh: connection lost while running `{command}`", "Unreachable")
            exited = -1
        stdout, stderr = ("".join(streams[name][2]) for name in ("out", "err"))
        return self._checked(command, CommandResult(int(exited), stdout, stderr), check)

    def open_unix(self, path: str) -> Stream:
        """A stream to a unix socket on the host: OpenSSH's streamlocal forwarding (no process on the
        host, no shell start-up per connection); where the server refuses it, or the socket cannot be
        reached that way, a python3 bridge over an exec channel, whose errors say exactly why."""
        if self._streamlocal is not False:
            try:
                sock = self._channel(lambda connection: connection.open_unix_connection(path), "ssh")
            except Exception:  # noqa: BLE001 - refused (or no such socket): the bridge tells which
                pass
            else:
                self._streamlocal = True
                return sock
        bridge = _BridgeChannel(self.open_exec(unix_bridge_command(path)), self.name, path)
        bridge.settimeout(self.timeout)
        if self._streamlocal is None:
            self._streamlocal = False  # the bridge answered where streamlocal did not: the server refuses it
        return bridge

    def open_tcp(self, host: str, port: int) -> Stream:
        return self._channel(
            lambda connection: connection.open_connection(host, port), f"ssh tunnel to {host}:{port}"
        )

    def _channel(self, open_streams: Callable[[Any], Any], what: str) -> _ChannelSocket:
        """A socket to the channel `open_streams(connection)` opens, on a leased session slot."""
        link = self._lease()
        try:
            if not link.alive:
                raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
            reader, writer = _LOOP.call(open_streams(link.connection), self.timeout)
        except Exception as exc:
            self._release(link)
            raise exc if isinstance(exc, HostError) else self.error(what, exc) from None
        sock = _bridge(reader, writer, lambda: self._release(link))
        sock.settimeout(self.timeout)
        return sock

    def close(self) -> None:
        # A connect in progress holds the lock until its timeout: don't wait for it (its connection
        # is dropped with the process).
        if not self._lock.acquire(timeout=0.1):
            return
        try:
            for link in self._links:
                link.close()
            self._links = []
        finally:
            self._lock.release()


class _Loop:
    """The one event loop thread that every SSH connection of the process lives on, started at the
    first connection. Blocking callers hand it coroutines and wait for their results."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                # a task whose caller stopped waiting (a timeout, a cancel) may still end in an
                # error: callers get theirs as HostErrors, and asyncio's own report of it would be
                # written to stderr, over the console's screen
                loop.set_exception_handler(lambda _loop, _context: None)
                threading.Thread(target=loop.run_forever, daemon=True, name="ssh-loop").start()
                self._loop = loop
            return self._loop

    def submit(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop)

    def call(self, coroutine: Any, timeout: float) -> Any:
        """The coroutine's result, or TimeoutError after `timeout` (the coroutine is cancelled)."""
        import concurrent.futures

        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"timed out after {timeout:g} s") from None

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(callback)


_LOOP = _Loop()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable  # asyncssh.connect() gives an awaitable that is not a coroutine


async def _collect(process: Any, chunks: Any, close_stdin: bool) -> None:
    """A command's stdout and stderr as they arrive, then ("end", exit status or None)."""
    if close_stdin:
        process.stdin.write_eof()  # no input: the command reads EOF

    async def pump(name: str, reader: Any) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            chunks.put((name, data))

    try:
        await asyncio.gather(pump("out", process.stdout), pump("err", process.stderr))
        await process.wait_closed()
    except Exception:  # noqa: BLE001 - a dropped connection: told by the caller (no exit status)
        pass
    finally:
        chunks.put(("end", process.exit_status))


class _ChannelSocket(socket.socket):
    """The caller's end of a socket pair whose other end the SSH loop pumps to and from a channel:
    a real socket (select, makefile and timeouts work as on any socket). Closing it (and every file
    made from it) closes the channel and gives its session slot back, once."""

    process: Any = None
    _on_close: Callable[[], None] | None = None

    def _real_close(self, _ss: Any = socket.socket) -> None:
        try:
            super()._real_close()  # type: ignore[misc]
        finally:
            self._closed_once()

    def __del__(self) -> None:
        self._closed_once()  # dropped without close (a pool discarding it): the slot comes back

    def _closed_once(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


def _bridge(reader: Any, writer: Any, release: Callable[[], None]) -> _ChannelSocket:
    mine, theirs = socket.socketpair()
    sock = _ChannelSocket(mine.family, mine.type, mine.proto, fileno=mine.detach())
    theirs.setblocking(False)

    def closed() -> None:
        try:
            _LOOP.call_soon(writer.close)
        finally:
            release()

    sock._on_close = closed
    _LOOP.submit(_pump(theirs, reader, writer))
    return sock


async def _pump(sock: socket.socket, reader: Any, writer: Any) -> None:
    """Bytes both ways between the socket pair's far end and the channel, until both are done."""
    loop = asyncio.get_running_loop()

    async def down() -> None:  # channel -> caller
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await loop.sock_sendall(sock, data)
        except Exception:  # noqa: BLE001 - the caller closed its end, or the channel went down
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    async def up() -> None:  # caller -> channel
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except Exception:  # noqa: BLE001 - as above
            pass
        with contextlib.suppress(Exception):
            writer.write_eof()

    try:
        await asyncio.gather(down(), up())
    finally:
        with contextlib.suppress(Exception):
            writer.close()
        sock.close()


_KNOWN_HOSTS: dict[Path, tuple[tuple[int, int], Any]] = {}
_KNOWN_HOSTS_LOCK = threading.Lock()


def _ssh_config(host: str, port: int | None) -> Any:
    """~/.ssh/config's settings for `host`, as asyncssh applies them when it connects."""
    import getpass

    from asyncssh.config import SSHClientConfig

    path = Path(os.path.expanduser("~/.ssh/config"))
    paths = [path] if path.is_file() else []
    return SSHClientConfig.load(None, paths, False, False, False, getpass.getuser(), (), host, port or ())


def _known_hosts(path: Path) -> Any:
    """known_hosts parsed once per change of the file (not once per connection); a missing or empty
    file trusts no key (every host is then refused with how to trust it)."""
    import asyncssh

    try:
        stat = path.stat()
    except OSError:
        return asyncssh.import_known_hosts("")
    version = (stat.st_mtime_ns, stat.st_size)
    with _KNOWN_HOSTS_LOCK:
        cached = _KNOWN_HOSTS.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        keys = asyncssh.read_known_hosts(str(path))
        _KNOWN_HOSTS[path] = (version, keys)
        return keys


OPENED_KEPT = 16  # reasons kept in SshHost.opened
MAX_LINKS = 4  # connections per host at most; each carries up to `max_sessions` sessions


class _Link:
    """One SSH connection and how many of its sessions are in use."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.sessions = 0

    @property
    def alive(self) -> bool:
        return not self.connection.is_closed()

    @property
    def sock(self) -> socket.socket:
        """The connection's TCP socket (tests cut it to simulate a dropped link)."""
        return self.connection.get_extra_info("socket")  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            _LOOP.call_soon(self.connection.close)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class _BridgeChannel:
    """The python3 unix-socket bridge's socket; reports the bridge's errors clearly."""

    def __init__(self, sock: _ChannelSocket, host: str, path: str) -> None:
        self.sock = sock
        self.host = host
        self.path = path
        self._got_data = False

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        data: bytes = self.sock.recv(size)
        if data:
            self._got_data = True
        elif not self._got_data:
            self._raise_bridge_error()
        return data

    def _raise_bridge_error(self) -> None:
        process = self.sock.process
        try:
            _LOOP.call(process.wait_closed(), 2.0)
        except Exception:  # noqa: BLE001 - what it wrote so far is enough to tell
            pass
        status = process.exit_status
        err = b""
        try:
            err = _LOOP.call(process.stderr.read(65536), 1.0) or b""
        except Exception:  # noqa: BLE001
            pass
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
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()


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
