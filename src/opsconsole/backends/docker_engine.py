"""Docker Engine through the docker SDK: the profile's URL locally, the same URL through SSH remotely.

Over SSH the SDK's HTTP requests ride on the host's verified SSH connection, each HTTP
connection an exec channel running `docker system dial-stdio` (what `docker -H ssh://` does), so
host keys are checked against the profile's known_hosts like every other source.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from opsconsole.backends.hosts import Host, HostError, describe_error
from opsconsole.backends.ssh import SshHost
from opsconsole.errors import OpsError, UsageError
from opsconsole.human import parse_time
from opsconsole.profiles import DockerConfig

SSH_BASE = "tcp://docker-over-ssh:2375"


class DockerError(OpsError):
    pass


@dataclass(frozen=True)
class ContainerInfo:
    host: str
    id: str
    name: str
    state: str
    health: str
    image: str
    ports: tuple[str, ...]
    compose_project: str | None
    compose_service: str | None
    started_at: str | None
    status: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = list(self.ports)
        return data


@dataclass(frozen=True)
class ContainerStats:
    name: str
    cpu_percent: float
    memory_bytes: int
    memory_limit: int
    memory_percent: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compute_stats(name: str, sample: dict[str, Any]) -> ContainerStats:
    """CPU% and memory as `docker stats` computes them (cgroup v1 and v2)."""
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    ncpu = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_pct = cpu_delta / sys_delta * ncpu * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = sample.get("memory_stats") or {}
    usage = int(mem.get("usage", 0) or 0)
    inner = mem.get("stats") or {}
    cache = int(inner.get("total_inactive_file", inner.get("inactive_file", 0)) or 0)
    used = usage - cache if cache < usage else usage
    limit = int(mem.get("limit", 0) or 0)
    return ContainerStats(
        name=name,
        cpu_percent=round(cpu_pct, 2),
        memory_bytes=used,
        memory_limit=limit,
        memory_percent=round(used / limit * 100.0, 2) if limit else 0.0,
    )


_UP_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 31 * 86400,
    "year": 366 * 86400,
}
_UP = re.compile(r"Up (Less than a second|About a minute|About an hour|(\d+) (\w+?)s?)\b")


def _uptime_at_most(status: str) -> float | None:
    """The most a running container's uptime can be, by Docker's own "Up 5 minutes" (go-units'
    HumanDuration, rounded down); None when the status says otherwise."""
    match = _UP.match(status)
    if match is None:
        return None
    if match.group(2) is None:
        return {"Less than a second": 1.0, "About a minute": 120.0, "About an hour": 7200.0}[match.group(1)]
    unit = _UP_UNITS.get(match.group(3))
    return None if unit is None else (int(match.group(2)) + 1) * unit


def _must_inspect(item: dict[str, Any], known: dict[str, tuple[str, str | None]]) -> bool:
    """Whether a listed container's start time must be read again (an inspect each: 30 of them
    every refresh was most of the Docker source's cost). Yes when it is new or its state changed,
    or when Docker's "Up …" is shorter than the time since the start we know: restarted
    between two refreshes, without a state change being seen."""
    seen = known.get(item["Id"])
    if seen is None or seen[0] != str(item.get("State")):
        return True
    if item.get("State") != "running":
        return False  # a stopped container's start time stays until it runs again (a state change)
    start = parse_time(seen[1])
    most = _uptime_at_most(str(item.get("Status", "")))
    if start is None or most is None:
        return True
    return time.time() - start.timestamp() > most + 2.0  # 2 s of leeway for the clocks


def _health_from_status(status: str) -> str:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return "starting" if word == "health: starting" else word
    return "none"


def _ports(raw: list[dict[str, Any]] | None) -> tuple[str, ...]:
    out = []
    for port in raw or []:
        private = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            out.append(f"{port.get('IP', '')}:{port['PublicPort']}->{private}")
        else:
            out.append(private)
    return tuple(sorted(set(out)))


class DockerClient:
    """One Docker Engine on one host. The SDK client is built lazily and reused."""

    def __init__(self, host: Host, config: DockerConfig) -> None:
        self.host = host
        self.config = config
        self.timeout = host.timeout
        self._client: Any = None
        self._lock = threading.Lock()
        # container id -> (state, StartedAt) from its last inspect: see _must_inspect
        self._started: dict[str, tuple[str, str | None]] = {}

    @property
    def label(self) -> str:
        return self.host.name

    def _error(self, exc: BaseException) -> OpsError:
        import docker.errors
        import requests

        if isinstance(exc, OpsError):
            return exc
        if isinstance(exc, docker.errors.NotFound):
            return UsageError(f"{self.label}: docker: {exc.explanation or exc}", "No such container")
        if isinstance(exc, docker.errors.APIError):
            return DockerError(f"{self.label}: docker: {exc.explanation or exc}", "Docker error")
        if isinstance(exc, requests.exceptions.Timeout):
            return HostError(f"{self.label}: docker: timed out after {self.timeout:g} s", "Unreachable")
        if isinstance(exc, requests.exceptions.ConnectionError | docker.errors.DockerException):
            cause = exc
            while cause.__cause__ or cause.__context__:
                inner = cause.__cause__ or cause.__context__
                assert inner is not None
                cause = inner
            if isinstance(cause, ConnectionRefusedError | TimeoutError | PermissionError):
                return HostError(
                    describe_error(self.label, f"docker at {self.config.url}", cause, self.timeout),
                    "Unreachable",
                )
            text = str(exc)
            if "FileNotFoundError" in text or "No such file" in text or isinstance(cause, FileNotFoundError):
                text = f"{self.config.url} does not exist (is dockerd running?)"
            elif "Connection refused" in text:
                text = "connection refused (is dockerd running?)"
            return HostError(f"{self.label}: docker at {self.config.url}: {text}", "Unreachable")
        return HostError(describe_error(self.label, "docker", exc, self.timeout), "Unreachable")

    def client(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                self._client = self._build()
            except Exception as exc:
                raise self._error(exc) from None
            return self._client

    def _build(self) -> Any:
        import docker

        if isinstance(self.host, SshHost):
            client = docker.DockerClient(base_url=SSH_BASE, version="1.24", timeout=self.timeout)
            adapter = _SshAdapter(self.host, self.config.url, self.timeout)
            # not "http+docker://ssh…": for those the SDK reads streams off a paramiko `fp.channel`;
            # our SSH sessions are plain sockets, which it reads as it reads any other
            client.api.base_url = "http+docker://opsconsole-over-ssh"
            client.api.mount(client.api.base_url, adapter)
            version = client.api.version(api_version=False)
            negotiated = min(
                (str(version.get("ApiVersion", "1.24")), docker.constants.DEFAULT_DOCKER_API_VERSION),
                key=lambda v: tuple(int(x) for x in v.split(".")),
            )
            client.api._version = negotiated
            return client
        url = self.config.url
        if url.startswith("http://"):
            url = "tcp://" + url[len("http://") :]
        return docker.DockerClient(base_url=url, version="auto", timeout=self.timeout)

    def reset(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # noqa: BLE001
                    pass
            self._client = None

    def _guard(self, fn: Callable[[Any], Any]) -> Any:
        client = self.client()
        try:
            return fn(client)
        except Exception as exc:
            error = self._error(exc)
            if isinstance(error, HostError):
                self.reset()  # rebuilt on the next call, so the pane recovers when dockerd is back
            raise error from None

    # ---------------------------------------------------------------- read

    def containers(self) -> list[ContainerInfo]:
        """Running and stopped containers: one list call, then inspects in parallel for start times."""

        def read(client: Any) -> list[ContainerInfo]:
            wanted = list(self.config.labels)
            raw = client.api.containers(all=True, filters={"label": wanted} if wanted else None)
            known = self._started
            started: dict[str, str | None] = {
                item["Id"]: known[item["Id"]][1] for item in raw if not _must_inspect(item, known)
            }

            def inspect(item: dict[str, Any]) -> None:
                try:
                    state = client.api.inspect_container(item["Id"]).get("State") or {}
                    started[item["Id"]] = state.get("StartedAt")
                except Exception:  # noqa: BLE001 - removed in between: no start time
                    started[item["Id"]] = None

            todo = [item for item in raw if item["Id"] not in started]
            if todo:
                with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
                    list(pool.map(inspect, todo))
            self._started = {item["Id"]: (str(item.get("State")), started.get(item["Id"])) for item in raw}
            out = []
            for item in raw:
                labels = item.get("Labels") or {}
                names = item.get("Names") or ["/" + item["Id"][:12]]
                start = started.get(item["Id"])
                if start and start.startswith("0001-"):
                    start = None
                out.append(
                    ContainerInfo(
                        host=self.label,
                        id=item["Id"][:12],
                        name=names[0].lstrip("/"),
                        state=str(item.get("State", "unknown")),
                        health=_health_from_status(str(item.get("Status", ""))),
                        image=str(item.get("Image", "")),
                        ports=_ports(item.get("Ports")),
                        compose_project=labels.get("com.docker.compose.project"),
                        compose_service=labels.get("com.docker.compose.service"),
                        started_at=start,
                        status=str(item.get("Status", "")),
                    )
                )
            return sorted(out, key=lambda c: c.name)

        result: list[ContainerInfo] = self._guard(read)
        return result

    def stats(self, names: list[str]) -> dict[str, ContainerStats | str]:
        """One stats sample per running container, all in parallel (~1 s in all, not per container)."""

        def one(client: Any, name: str) -> ContainerStats | str:
            try:
                self._ours(client, name)
                sample = client.api.stats(name, stream=False)
            except Exception as exc:  # noqa: BLE001 - reported per container
                return self._error(exc).message
            if str(sample.get("read", "")).startswith("0001-"):
                return "not running"
            return compute_stats(name, sample)

        def read(client: Any) -> dict[str, ContainerStats | str]:
            if not names:
                return {}
            with ThreadPoolExecutor(max_workers=min(32, len(names))) as pool:
                return dict(zip(names, pool.map(lambda n: one(client, n), names), strict=True))

        result: dict[str, ContainerStats | str] = self._guard(read)
        return result

    def inspect(self, name: str) -> dict[str, Any]:
        def read(client: Any) -> dict[str, Any]:
            found: dict[str, Any] = client.api.inspect_container(name)
            self._check_ours(name, found)
            return found

        result: dict[str, Any] = self._guard(read)
        return result

    def _check_ours(self, name: str, inspected: dict[str, Any]) -> None:
        """With `labels`, a container without all of them is another project's: refused."""
        if not self.config.labels:
            return
        have = (inspected.get("Config") or {}).get("Labels") or {}
        for wanted in self.config.labels:
            key, sep, value = wanted.partition("=")
            if key not in have or (sep and have[key] != value):
                raise DockerError(
                    f"{name}: not a container of this environment (its [docker] labels want {wanted})",
                    "Not this environment's",
                )

    def _ours(self, client: Any, name: str) -> None:
        if self.config.labels:
            self._check_ours(name, client.api.inspect_container(name))

    # ---------------------------------------------------------------- control

    def _control(self, name: str, call: Callable[[Any], Any]) -> None:
        def act(client: Any) -> None:
            self._ours(client, name)
            call(client)

        self._guard(act)

    def start(self, name: str) -> str:
        self._control(name, lambda client: client.api.start(name))
        return f"{name}: started"

    def stop(self, name: str) -> str:
        self._control(name, lambda client: client.api.stop(name, timeout=10))
        return f"{name}: stopped"

    def restart(self, name: str) -> str:
        self._control(name, lambda client: client.api.restart(name, timeout=10))
        return f"{name}: restarted"

    def follow_logs(
        self,
        name: str,
        on_line: Callable[[str], None],
        *,
        tail: int = 100,
        follow: bool = True,
        timestamps: bool = True,
        cancel: threading.Event | None = None,
    ) -> None:
        """Last `tail` lines then, with `follow`, new lines until cancelled."""
        client = self.client()
        try:
            self._ours(client, name)
            stream = client.api.logs(name, stream=True, follow=follow, timestamps=timestamps, tail=tail)
        except Exception as exc:
            raise self._error(exc) from None
        stopper: threading.Thread | None = None
        if cancel is not None:

            def stop_when_cancelled() -> None:
                cancel.wait()
                try:
                    # a read blocked on the socket wakes on shutdown (closing it alone does not)
                    sock = getattr(getattr(stream._response.raw._fp.fp, "raw", None), "_sock", None)
                    if isinstance(sock, socket.socket):
                        sock.shutdown(socket.SHUT_RDWR)
                except Exception:  # noqa: BLE001 - already closed
                    pass
                with contextlib.suppress(Exception):
                    stream.close()

            stopper = threading.Thread(target=stop_when_cancelled, daemon=True)
            stopper.start()
        buffer = b""
        try:
            for chunk in stream:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    on_line(line.decode("utf-8", "replace").rstrip("\r"))
        except Exception as exc:
            if cancel is None or not cancel.is_set():
                raise self._error(exc) from None
        if buffer:
            on_line(buffer.decode("utf-8", "replace"))

    def close(self) -> None:
        if self._lock.acquire(timeout=0.1):  # a client being built against a dead host: leave it
            self._lock.release()
            self.reset()


# ------------------------------------------------------------------------ SSH transport


def _make_adapter_class() -> Any:
    import urllib3
    from docker.transport.basehttpadapter import BaseHTTPAdapter

    class DialStdioConnection(urllib3.connection.HTTPConnection):
        def __init__(self, host: SshHost, command: str, timeout: float) -> None:
            super().__init__("localhost", timeout=timeout)
            self.ssh_host = host
            self.command = command
            self.ssh_timeout = timeout

        def connect(self) -> None:
            # a leased session: it counts against the host's SSH session budget until closed
            self.sock = self.ssh_host.open_exec(self.command)

    class DialStdioPool(urllib3.connectionpool.HTTPConnectionPool):
        def __init__(self, host: SshHost, command: str, timeout: float) -> None:
            # few kept-open dial-stdio sessions: they share the host's SSH session budget
            super().__init__("localhost", timeout=timeout, maxsize=2)
            self.ssh_host = host
            self.command = command
            self.ssh_timeout = timeout

        def _new_conn(self) -> Any:
            return DialStdioConnection(self.ssh_host, self.command, self.ssh_timeout)

    class SshAdapter(BaseHTTPAdapter):  # type: ignore[misc]
        def __init__(self, host: SshHost, url: str, timeout: float) -> None:
            super().__init__()
            env = f"DOCKER_HOST={shlex.quote(url)} " if url != "unix:///var/run/docker.sock" else ""
            self.pool = DialStdioPool(host, f"{env}docker system dial-stdio", timeout)

        def get_connection(self, url: Any, proxies: Any = None) -> Any:
            return self.pool

        def close(self) -> None:
            super().close()
            self.pool.close()

    return SshAdapter


_adapter_class: Any = None


def _SshAdapter(host: SshHost, url: str, timeout: float) -> Any:  # noqa: N802 - a lazy class
    global _adapter_class
    if _adapter_class is None:
        _adapter_class = _make_adapter_class()
    return _adapter_class(host, url, timeout)
