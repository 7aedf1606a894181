"""SSH sessions as the rest of opsconsole uses them: output collection with its process-group mark,
the group kill, and the socket bridge that makes an SSH channel look like a socket."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import Callable
from typing import Any

from opsconsole.backends.hosts import (
    LINE_READ,
    HostError,
    LineCallback,
)
from opsconsole.backends.remote_scripts import (
    GROUP_MARK,
    kill_group_command,
)
from opsconsole.backends.ssh.loop import LOOP


class LineSplitter(io.TextIOBase):
    """A file-like that hands complete lines to a callback (a command's output, line by line); a
    line longer than LINE_READ characters is handed on in pieces of that size."""

    def __init__(self, stream: str, callback: LineCallback) -> None:
        super().__init__()
        self.stream = stream
        self.callback = callback
        self.buffer = ""

    def write(self, text: str) -> int:
        lines = (self.buffer + text).split("\n")
        self.buffer = lines.pop()
        for line in lines:
            self.callback(self.stream, line.rstrip("\r"))
        while len(self.buffer) > LINE_READ:
            self.callback(self.stream, self.buffer[:LINE_READ])
            self.buffer = self.buffer[LINE_READ:]
        return len(text)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        if self.buffer:
            self.callback(self.stream, self.buffer.rstrip("\r"))
            self.buffer = ""


async def collect(process: Any, chunks: Any, done: threading.Event, close_stdin: bool) -> None:
    """A command's stdout and stderr as they arrive, then ("end", exit status or None). While
    QUEUED pieces wait for the reader, nothing more is read (SSH flow control holds the command);
    once the reader is `done`, nothing more is queued."""
    if close_stdin:
        process.stdin.write_eof()  # no input: the command reads EOF

    async def pump(name: str, reader: Any) -> None:
        while not done.is_set():
            data = await reader.read(65536)
            if not data:
                return
            # the reader is a thread, not a task: it is polled (a loop call per piece costs more)
            while chunks.qsize() >= QUEUED and not done.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if done.is_set():
                return
            chunks.put((name, data))

    try:
        await asyncio.gather(pump("out", process.stdout), pump("err", process.stderr))
        await process.wait_closed()
    except Exception:  # noqa: BLE001 - a dropped connection: told by the caller (no exit status)
        pass
    finally:
        chunks.put(("end", process.exit_status))


async def kill_group(connection: Any, pgid: int) -> None:
    """Kill a stopped command's process group on the host, over a channel of its own."""
    with contextlib.suppress(Exception):
        process = await asyncio.wait_for(
            connection.create_process(kill_group_command(pgid), encoding=None), KILL_TIMEOUT
        )
        try:
            process.stdin.write_eof()
            await asyncio.wait_for(process.wait_closed(), KILL_TIMEOUT)
        finally:
            process.close()


class GroupMark:
    """Takes the GROUP_MARK line (the command's process group) out of the start of its stderr; if
    it does not come within MARK_SEARCH bytes (a login shell that writes first, a shell that
    is no sh), stderr passes on untouched and the command is only closed on a stop."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.searching = True
        self.held = b""

    def strip(self, data: bytes, final: bool) -> bytes:
        if not self.searching:
            return data
        self.held += data
        mark = GROUP_MARK.encode()
        at = self.held.find(mark)
        if at >= 0:
            end = self.held.find(b"\n", at)
            if end >= 0:
                with contextlib.suppress(ValueError):
                    self.pgid = int(self.held[at + len(mark) : end])
                data, self.held, self.searching = self.held[:at] + self.held[end + 1 :], b"", False
                return data
        if final or len(self.held) > MARK_SEARCH:
            data, self.held, self.searching = self.held, b"", False
            return data
        return b""


class ChannelSocket(socket.socket):
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


def bridge(reader: Any, writer: Any, release: Callable[[], None]) -> ChannelSocket:
    mine, theirs = socket.socketpair()
    sock = ChannelSocket(mine.family, mine.type, mine.proto, fileno=mine.detach())
    theirs.setblocking(False)

    def closed() -> None:
        try:
            LOOP.call_soon(writer.close)
        finally:
            release()

    sock._on_close = closed
    LOOP.submit(_pump(theirs, reader, writer))
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


QUEUED = 16  # pieces of output (64 KiB at most each) waiting for the reader before reading pauses

MARK_SEARCH = 4096  # bytes of stderr searched for the GROUP_MARK line

KILL_TIMEOUT = 5.0  # seconds for the kill of a stopped command's group, each step


class BridgeChannel:
    """The python3 unix-socket bridge's socket; reports the bridge's errors clearly."""

    def __init__(self, sock: ChannelSocket, host: str, path: str) -> None:
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
            LOOP.call(process.wait_closed(), 2.0)
        except Exception:  # noqa: BLE001 - what it wrote so far is enough to tell
            pass
        status = process.exit_status
        err = b""
        try:
            err = LOOP.call(process.stderr.read(65536), 1.0) or b""
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
    def __init__(self, stream: BridgeChannel) -> None:
        super().__init__()
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)
