"""Supervisor over XML-RPC: locally or through SSH (supervisord usually listens on a unix socket).

Reads every process; starts, stops, restarts (stop then start: there is no restartProcess) and
signals by process, group or all; follows a process log with no lost and no repeated bytes.
"""

from __future__ import annotations

import base64
import http.client
import re
import sys
import threading
import urllib.parse
import xmlrpc.client
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from opsconsole.backends.hosts import Host, HostError, Stream, describe_error
from opsconsole.errors import OpsError, UsageError
from opsconsole.profiles import SupervisorConfig

FAULT_SHUTDOWN_STATE = 6
FAULT_BAD_NAME = 10
FAULT_ALREADY_STARTED = 60
FAULT_NOT_RUNNING = 70
FAULT_SUCCESS = 80
CONTROL_GRACE = 60.0  # start/stop wait for startsecs/stopwaitsecs on top of the timeout


READ_ONLY_CALLS = ("supervisor.get", "supervisor.read", "supervisor.tail", "system.")


class SupervisorError(OpsError):
    pass


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    host: str
    group: str
    name: str
    state: str
    pid: int
    start: int
    now: int
    exitstatus: int
    description: str
    spawnerr: str
    stdout_logfile: str
    stderr_logfile: str

    @property
    def full_name(self) -> str:
        return f"{self.group}:{self.name}"

    @property
    def uptime(self) -> int | None:
        if self.state != "RUNNING" or not self.start:
            return None
        return max(0, self.now - self.start)

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["full_name"] = self.full_name
        data["uptime"] = self.uptime
        return data


_XML_UNSAFE = re.compile(rb"[\x00-\x08\x0b-\x1f]")
_SHIFT = 0xE000
_RESTORE = {_SHIFT + n: n for n in range(0x20)}
_SHIFTED = re.compile("[\ue000-\ue01f]")


def _restore(value: Any) -> Any:
    if isinstance(value, str):
        return value.translate(_RESTORE) if _SHIFTED.search(value) else value
    if isinstance(value, list | tuple):
        return type(value)(_restore(v) for v in value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    return value


class _Unusual(Exception):
    """A response the fast decoder does not know: the standard XML-RPC parser reads it instead."""


def _decode_response(data: bytes) -> tuple[Any, ...]:
    """An XML-RPC methodResponse as xmlrpc.client's parser returns it (a 1-tuple; a fault raises
    Fault), built by ElementTree's C parser and one walk over its elements. The standard parser
    calls back into Python for every tag: ~3.7 ms of CPU for one supervisord's 20 processes, which
    a fleet's refresh did 30 times a cycle while the console's screen waited for the GIL; this
    takes a fraction of that. Anything unusual raises _Unusual."""
    from xml.etree.ElementTree import ParseError, fromstring

    try:
        root = fromstring(data)
    except ParseError:
        raise _Unusual from None
    if root.tag != "methodResponse" or len(root) != 1:
        raise _Unusual
    body = root[0]
    if body.tag == "fault":
        fault = _decode_value(body.find("value"))
        if not isinstance(fault, dict):
            raise _Unusual
        raise xmlrpc.client.Fault(**fault)
    if body.tag != "params":
        raise _Unusual
    return tuple(_decode_value(param.find("value")) for param in body)


def _decode_value(value: Any) -> Any:
    if value is None or value.tag != "value":
        raise _Unusual
    if len(value) == 0:  # <value>text</value> is a string
        return value.text or ""
    typed = value[0]
    tag, text = typed.tag, typed.text or ""
    if tag == "string":
        return text
    if tag in ("int", "i4", "i8", "i1", "i2", "biginteger"):
        return int(text)
    if tag == "boolean":
        if text not in ("0", "1"):
            raise _Unusual
        return text == "1"
    if tag == "struct":
        out = {}
        for member in typed:
            name = member.find("name")
            if member.tag != "member" or name is None:
                raise _Unusual
            out[name.text or ""] = _decode_value(member.find("value"))
        return out
    if tag == "array":
        data = typed.find("data")
        return [_decode_value(item) for item in data] if data is not None else []
    if tag == "nil":
        return None
    if tag in ("double", "float"):
        return float(text)
    raise _Unusual  # base64, dateTime and the rest: the standard parser


class _StreamHTTPConnection(http.client.HTTPConnection):
    def __init__(self, opener: Callable[[], Stream], timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = self._opener()


class _Transport(xmlrpc.client.Transport):
    """XML-RPC over any stream (unix socket, SSH bridge, SSH tunnel), one persistent connection."""

    def __init__(self, opener: Callable[[], Stream], auth: tuple[str, str] | None, timeout: float) -> None:
        super().__init__()
        self._opener = opener
        self._auth = auth
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection and self._connection[0] == host and self._connection[1] is not None:
            return self._connection[1]
        connection = _StreamHTTPConnection(self._opener, self.timeout)
        self._connection = host, connection
        return connection

    def set_timeout(self, timeout: float) -> None:
        self.timeout = timeout
        if self._connection[1] is not None:
            connection = self._connection[1]
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)

    def parse_response(self, response: http.client.HTTPResponse) -> Any:
        """Parse leniently: supervisord puts log bytes into XML unescaped, and control characters
        (ESC, NUL, CR...) are not XML. They are carried through as private-use characters and put
        back after parsing, so the text (and its byte count) is exactly what the log holds."""
        data, unsafe = _XML_UNSAFE.subn(lambda m: chr(_SHIFT + m.group()[0]).encode("utf-8"), response.read())
        try:
            result = _decode_response(data)
        except _Unusual:
            parser, unmarshaller = self.getparser()
            parser.feed(data)
            parser.close()
            result = unmarshaller.close()
        return _restore(result) if unsafe else result

    def send_headers(self, connection: http.client.HTTPConnection, headers: list[tuple[str, str]]) -> None:
        if self._auth:
            token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        super().send_headers(connection, headers)


class SupervisorClient:
    """One supervisord on one host. Thread-safe: calls are serialised on one connection."""

    def __init__(self, host: Host, config: SupervisorConfig, password: str | None = None) -> None:
        self.host = host
        self.config = config
        self.timeout = host.timeout
        auth = (config.username or "", password or "") if (config.username or password) else None
        url = config.url
        if url.startswith("unix://"):
            path = url[len("unix://") :]
            opener: Callable[[], Stream] = lambda: host.open_unix(path)  # noqa: E731
        else:
            parsed = urllib.parse.urlparse(url)
            if parsed.username and auth is None:
                auth = (urllib.parse.unquote(parsed.username), urllib.parse.unquote(parsed.password or ""))
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            hostname = parsed.hostname or "127.0.0.1"
            opener = lambda: host.open_tcp(hostname, port)  # noqa: E731
        self._transport = _Transport(opener, auth, self.timeout)
        self._proxy = xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=self._transport, allow_none=True
        )
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.host.name

    def _error(self, exc: BaseException, timeout: float) -> OpsError:
        if isinstance(exc, OpsError):
            return exc
        if isinstance(exc, xmlrpc.client.ProtocolError):
            if exc.errcode == 401:
                return HostError(
                    f"{self.label}: supervisor: authentication failed (401); check supervisor.username "
                    "and the password secret",
                    "Unauthorized",
                )
            return HostError(f"{self.label}: supervisor: HTTP {exc.errcode} {exc.errmsg}", "Supervisor error")
        if isinstance(exc, xmlrpc.client.Fault) and exc.faultCode == FAULT_SHUTDOWN_STATE:
            return HostError(f"{self.label}: supervisor is shutting down or restarting", "Unreachable")
        if isinstance(exc, xmlrpc.client.Fault):
            return SupervisorError(f"{self.label}: supervisor: {exc.faultString}", "Supervisor fault")
        if isinstance(exc, http.client.HTTPException | ConnectionError | EOFError):
            return HostError(
                f"{self.label}: supervisor: connection closed ({type(exc).__name__})", "Unreachable"
            )
        return HostError(
            describe_error(self.label, f"supervisor at {self.config.url}", exc, timeout), "Unreachable"
        )

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        seconds = timeout or self.timeout
        # a read may be tried again once on a new connection when the connection closed without an
        # answer (a kept connection gone stale, a busy supervisord dropping a new one); a change never
        retry = method.startswith(READ_ONLY_CALLS)
        with self._lock:
            while True:
                self._transport.set_timeout(seconds)
                try:
                    return getattr(self._proxy, method)(*args)
                except xmlrpc.client.Fault:
                    raise
                except (EOFError, ConnectionError, http.client.RemoteDisconnected) as exc:
                    self._transport.close()
                    if retry:
                        retry = False
                        continue
                    raise self._error(exc, seconds) from None
                except Exception as exc:
                    self._transport.close()
                    raise self._error(exc, seconds) from None

    def close(self) -> None:
        if self._lock.acquire(timeout=0.1):  # a call stuck on a dead host must not hold up closing
            try:
                self._transport.close()
            finally:
                self._lock.release()

    # ---------------------------------------------------------------- read

    def processes(self) -> list[ProcessInfo]:
        try:
            infos = self.call("supervisor.getAllProcessInfo")
        except xmlrpc.client.Fault as exc:
            raise self._error(exc, self.timeout) from None
        return [self._info(raw) for raw in infos]

    def _info(self, raw: dict[str, Any]) -> ProcessInfo:
        # names, states and log paths repeat on every host of a fleet and every refresh: one copy each
        def text(key: str, default: str = "") -> str:
            return sys.intern(str(raw.get(key, default)))

        return ProcessInfo(
            host=self.label,
            group=text("group"),
            name=text("name"),
            state=text("statename", "UNKNOWN"),
            pid=int(raw.get("pid", 0)),
            start=int(raw.get("start", 0)),
            now=int(raw.get("now", 0)),
            exitstatus=int(raw.get("exitstatus", 0)),
            description=str(raw.get("description", "")),
            spawnerr=str(raw.get("spawnerr", "")),
            stdout_logfile=text("stdout_logfile"),
            stderr_logfile=text("stderr_logfile"),
        )

    def process(self, name: str) -> ProcessInfo:
        full = self.resolve(name)
        try:
            return self._info(self.call("supervisor.getProcessInfo", full))
        except xmlrpc.client.Fault as exc:
            raise self._error(exc, self.timeout) from None

    def resolve(self, name: str) -> str:
        """`group:name`, `group:*`, `all`, or a bare process or group name made unambiguous."""
        if name == "all" or ":" in name:
            return name
        infos = self.processes()
        matches = sorted({p.full_name for p in infos if p.name == name})
        if len(matches) == 1:
            return matches[0]
        if any(p.group == name for p in infos):
            return f"{name}:*"
        if len(matches) > 1:
            raise UsageError(f"{self.label}: '{name}' is ambiguous: {', '.join(matches)}", "Ambiguous name")
        known = ", ".join(sorted(p.full_name for p in infos)) or "none"
        raise UsageError(
            f"{self.label}: supervisor has no process or group '{name}' (processes: {known})",
            "No such process",
        )

    # ---------------------------------------------------------------- control

    def _control(self, method: str, *args: Any) -> Any:
        return self.call(method, *args, timeout=self.timeout + CONTROL_GRACE)

    def _group_call(self, verb: str, target: str, *extra: Any) -> list[str]:
        """`supervisor.<verb>Process`, `...ProcessGroup` or `...AllProcesses`, by target; outcomes."""
        if target == "all":
            results = self._control(f"supervisor.{verb}AllProcesses", *extra)
        elif target.endswith(":*"):
            results = self._control(f"supervisor.{verb}ProcessGroup", target[:-2], *extra)
        else:
            try:
                self._control(f"supervisor.{verb}Process", target, *extra)
            except xmlrpc.client.Fault as exc:
                raise self._error(exc, self.timeout) from None
            return [f"{target}: ok"]
        failures = [r for r in results if r.get("status") != FAULT_SUCCESS]
        if failures:
            detail = "; ".join(f"{r['group']}:{r['name']}: {r['description']}" for r in failures)
            raise SupervisorError(f"{self.label}: supervisor: {detail}", "Supervisor fault")
        return [f"{r['group']}:{r['name']}: {r['description']}" for r in results]

    def _start_or_stop(self, verb: str, name: str, harmless_fault: str, already: str) -> list[str]:
        target = self.resolve(name)
        try:
            return self._group_call(verb, target, True)
        except SupervisorError as exc:
            if harmless_fault in exc.message and ":*" not in target and target != "all":
                return [f"{target}: {already}"]
            raise

    def start(self, name: str) -> list[str]:
        return self._start_or_stop("start", name, "ALREADY_STARTED", "already running")

    def stop(self, name: str) -> list[str]:
        return self._start_or_stop("stop", name, "NOT_RUNNING", "was not running")

    def restart(self, name: str) -> list[str]:
        """Stop (a stopped process is fine), then start: what supervisorctl restart does."""
        target = self.resolve(name)
        self.stop(target)
        return self.start(target)

    def signal(self, name: str, signal_name: str) -> list[str]:
        return self._group_call("signal", self.resolve(name), signal_name)

    # ---------------------------------------------------------------- logs

    def log_size(self, name: str, stream: str = "stdout") -> int:
        method = (
            "supervisor.tailProcessStdoutLog" if stream == "stdout" else "supervisor.tailProcessStderrLog"
        )
        try:
            _data, size, _overflow = self.call(method, name, 0, 0)
        except xmlrpc.client.Fault as exc:
            raise self._error(exc, self.timeout) from None
        return int(size)

    def read_log(self, name: str, offset: int, length: int, stream: str = "stdout") -> tuple[str, int]:
        """Read bytes [offset, offset+length) as text; returns (text, bytes consumed).

        supervisord decodes each window strictly as UTF-8 and answers HTTP 500 when the window cuts a
        character or holds invalid bytes; shrink the window to a boundary, and past an invalid byte
        emit U+FFFD and step over it, so nothing is lost or repeated.
        """
        method = (
            "supervisor.readProcessStdoutLog" if stream == "stdout" else "supervisor.readProcessStderrLog"
        )
        size = length
        tried_trim = 0
        while size > 0:
            try:
                text = self.call(method, name, offset, size)
            except HostError as exc:
                if "HTTP 500" not in exc.message:
                    raise
                if tried_trim < 3 and size > 1:
                    tried_trim += 1
                    size -= 1
                else:
                    size //= 2
                continue
            except xmlrpc.client.Fault as exc:
                raise self._error(exc, self.timeout) from None
            return str(text), len(str(text).encode("utf-8"))
        return "\ufffd", 1

    def read_range(
        self, name: str, start: int, end: int, stream: str = "stdout", chunk: int = 256 * 1024
    ) -> str:
        """Bytes [start, end) as text, however many windows that takes (invalid bytes become U+FFFD)."""
        parts = []
        offset = start
        while offset < end:
            text, used = self.read_log(name, offset, min(chunk, end - offset), stream)
            parts.append(text)
            offset += used
        return "".join(parts)

    def tail_lines(
        self, name: str, count: int, stream: str = "stdout", max_bytes: int = 8 * 1024 * 1024
    ) -> tuple[list[str], int]:
        """The last `count` complete lines and the offset just past them (to follow from)."""
        size = self.log_size(name, stream)
        window = 8192
        while True:
            start = max(0, size - window)
            text = self.read_range(name, start, size, stream)
            lines = text.split("\n")
            if start > 0:
                lines = lines[1:]  # the first line may be cut
            partial = (
                lines.pop() if lines else ""
            )  # "" after a final newline; else a line still being written
            if len(lines) > count or start == 0 or window >= max_bytes:
                # follow from the start of an unfinished last line, so it is delivered once, whole
                return (lines[-count:] if count else []), size - len(partial.encode("utf-8"))
            window *= 4

    def follow_log(
        self,
        name: str,
        on_text: Callable[[str], None],
        *,
        stream: str = "stdout",
        initial_bytes: int = 4096,
        cancel: threading.Event | None = None,
        poll: float = 0.25,
        chunk: int = 256 * 1024,
        on_notice: Callable[[str], None] | None = None,
        start_offset: int | None = None,
    ) -> None:
        """Deliver the last `initial_bytes` (or from `start_offset`) then every new byte, exactly once,
        until cancelled.

        A cleared or rotated log restarts from its beginning (with a notice). If supervisord goes away
        the follow reconnects until it is back or the caller cancels.
        """
        target = self.resolve(name)
        event = cancel or threading.Event()
        if start_offset is None:
            size = self.log_size(target, stream)
            offset = max(0, size - initial_bytes)
            skip_partial = offset > 0
        else:
            offset, skip_partial = start_offset, False
        failures = 0
        while not event.is_set():
            try:
                size = self.log_size(target, stream)
                if size < offset:
                    if on_notice:
                        on_notice(
                            f"{self.label}: {target} {stream} log was cleared or rotated; following from its start"
                        )
                    offset = 0
                while offset < size and not event.is_set():
                    text, used = self.read_log(target, offset, min(chunk, size - offset), stream)
                    offset += used
                    if skip_partial:
                        skip_partial = False
                        cut = text.find("\n")
                        text = text[cut + 1 :] if cut >= 0 else ""
                    if text:
                        on_text(text)
                if failures and on_notice:
                    on_notice(f"{self.label}: supervisor is back; following {target} again")
                failures = 0
            except HostError as exc:
                failures += 1
                if on_notice and failures == 1:
                    on_notice(f"{exc.message}; retrying until it is back (cancel to stop)")
                event.wait(min(5.0, poll * 4 * failures))
                continue
            event.wait(poll)
