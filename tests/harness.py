"""Real services for the tests: supervisord, sshd, dockerd (with a busybox image), Redis.

Everything listens on loopback, on a free port, in a temp folder, and is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

IMAGE = "opsconsole-test/busybox:latest"
TEST_LABEL = "opsconsole.test"


class ServiceUnavailable(RuntimeError):
    """A real service could not be started here (the fixture skips, or fails under CI)."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port for a service to listen on. Taken below the kernel's ephemeral range (32768+), where
    outgoing connections get their ports, so nothing else on the machine is handed it between this
    check and the service's bind; never the same one twice in a run."""
    import random

    for _ in range(1000):
        port = random.randint(20_000, 32_000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise ServiceUnavailable("no free loopback port between 20000 and 32000")


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port known to refuse connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(0.05)
    raise ServiceUnavailable(f"{what} not ready after {timeout:.0f} s ({last})")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ------------------------------------------------------------------------ supervisord

COUNTER = textwrap.dedent(
    """
    import sys, time
    n = 0
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    while True:
        n += 1
        print(f"line {n:08d} héllo", flush=True)
        time.sleep(1.0 / rate)
    """
)

SLEEPER = (
    "import signal, time\n"
    "signal.signal(signal.SIGUSR1, lambda *a: print('got SIGUSR1', flush=True))\n"
    "while True: time.sleep(3600)\n"
)


@dataclass
class Program:
    name: str
    command: str
    autostart: bool = True
    group: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Supervisord:
    root: Path
    socket_path: Path
    http_port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None
    username: str = "admin"
    password: str = "s3cret-pass"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def proxy(self) -> Any:  # XML-RPC answers are untyped (typeshed says "marshallable")
        return xmlrpc.client.ServerProxy(
            f"http://{self.username}:{self.password}@127.0.0.1:{self.http_port}/RPC2"
        )

    def start(self) -> None:
        log = open(self.root / "supervisord.stdout", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceUnavailable(
                    "supervisord exited: "
                    + (self.root / "supervisord.stdout").read_text(errors="replace")[-2000:]
                )
            state = self.proxy().supervisor.getState()
            return bool(state["statename"] == "RUNNING")

        wait_for(ready, 20, "supervisord")

    def wait_running(self, names: list[str], timeout: float = 20) -> None:
        def check() -> bool:
            infos = {f"{p['group']}:{p['name']}": p for p in self.proxy().supervisor.getAllProcessInfo()}
            return all(infos[n]["statename"] == "RUNNING" for n in names)

        wait_for(check, timeout, f"programs {names}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proxy().supervisor.shutdown()
            self.proc.wait(15)
        except Exception:  # noqa: BLE001 - fall back to signals
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def make_supervisord(root: Path, programs: list[Program]) -> Supervisord:
    root.mkdir(parents=True, exist_ok=True)
    (root / "counter.py").write_text(COUNTER)
    (root / "sleeper.py").write_text(SLEEPER)
    port = free_port()
    sock = root / "supervisor.sock"
    sup = Supervisord(root=root, socket_path=sock, http_port=port, conf=root / "supervisord.conf")
    sections = [
        "[unix_http_server]",
        f"file = {sock}",
        "chmod = 0700",
        "",
        "[inet_http_server]",
        f"port = 127.0.0.1:{port}",
        f"username = {sup.username}",
        f"password = {sup.password}",
        "",
        "[supervisord]",
        f"logfile = {root}/supervisord.log",
        f"pidfile = {root}/supervisord.pid",
        f"childlogdir = {root}",
        "nodaemon = true",
        "loglevel = info",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl = unix://{sock}",
        "",
    ]
    groups: dict[str, list[str]] = {}
    for program in programs:
        command = program.command.format(python=sys.executable, root=root)
        sections += [
            f"[program:{program.name}]",
            f"command = {command}",
            f"directory = {root}",
            f"autostart = {'true' if program.autostart else 'false'}",
            "autorestart = true",
            "startsecs = 1",
            "stopwaitsecs = 5",
            "stopasgroup = true",
            "killasgroup = true",
            f"stdout_logfile = {root}/{program.name}.out.log",
            f"stderr_logfile = {root}/{program.name}.err.log",
            "stdout_logfile_maxbytes = 50MB",
        ]
        sections += [f"{k} = {v}" for k, v in program.extra.items()]
        sections.append("")
        if program.group:
            groups.setdefault(program.group, []).append(program.name)
    for group, names in groups.items():
        sections += [f"[group:{group}]", f"programs = {','.join(names)}", ""]
    sup.conf.write_text("\n".join(sections))
    return sup


DEFAULT_PROGRAMS = [
    Program("counter", "{python} -u {root}/counter.py 50"),
    Program("sleeper", "{python} -u {root}/sleeper.py"),
    Program("idle", "{python} -u {root}/sleeper.py", autostart=False),
    Program("web_0", "{python} -u {root}/sleeper.py", group="web"),
    Program("web_1", "{python} -u {root}/sleeper.py", group="web"),
    Program("burst", "{python} -u {root}/counter.py 4000", autostart=False),
]


# ------------------------------------------------------------------------ sshd


@dataclass
class Sshd:
    root: Path
    port: int
    client_key: Path
    known_hosts: Path
    host_key: Path
    proc: subprocess.Popen[bytes] | None = None
    private_dir: Path | None = None  # sessions see their own empty tmpfs here: a second "host"
    etc_hosts: Path | None = None  # with private_dir: sessions see this file as /etc/hosts

    @property
    def host(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def start(self) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise ServiceUnavailable("sshd is not installed (apt-get install openssh-server)")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        command = [sshd, "-D", "-e", "-f", str(self.root / "sshd_config")]
        if self.private_dir is not None:
            if shutil.which("unshare") is None or os.geteuid() != 0:
                raise ServiceUnavailable("a second host needs root and unshare (util-linux)")
            self.private_dir.mkdir(parents=True, exist_ok=True)
            hosts = (
                f"mount --bind {shlex.quote(str(self.etc_hosts))} /etc/hosts && " if self.etc_hosts else ""
            )
            script = (
                f"mount -t tmpfs opsc-host2 {shlex.quote(str(self.private_dir))} && {hosts}exec "
                + " ".join(map(shlex.quote, command))
            )
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        self.proc = subprocess.Popen(
            command,
            stdout=open(self.root / "sshd.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceUnavailable(
                    "sshd exited: " + (self.root / "sshd.log").read_text(errors="replace")
                )
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH-")

        wait_for(ready, 15, "sshd")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill_sessions(self) -> None:
        """Kill the sshd children serving connections (the listener survives)."""
        if self.proc is None:
            return
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        for pid in out.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def make_sshd(
    root: Path,
    private_dir: Path | None = None,
    max_sessions: int | None = 100,
    etc_hosts: Path | None = None,
    streamlocal: bool = True,
) -> Sshd:
    """A loopback sshd; `max_sessions=None` keeps sshd's own default (MaxSessions 10);
    `streamlocal=False` refuses unix-socket forwarding (as some hardened servers do)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ServiceUnavailable("ssh-keygen is not installed (apt-get install openssh-client)")
    root.mkdir(parents=True, exist_ok=True)
    host_key = root / "host_ed25519"
    client_key = root / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
    port = free_port()
    (root / "sshd_config").write_text(
        textwrap.dedent(
            f"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {host_key}
            AuthorizedKeysFile {root}/authorized_keys
            PidFile {root}/sshd.pid
            UsePAM no
            StrictModes no
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            AllowTcpForwarding yes
            AllowStreamLocalForwarding {"yes" if streamlocal else "no"}
            {f"MaxSessions {max_sessions}" if max_sessions else "# MaxSessions: sshd's default (10)"}
            MaxStartups 100:30:200
            Subsystem sftp internal-sftp
            AcceptEnv LANG LC_*
            """
        )
    )
    public = (root / "host_ed25519.pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    return Sshd(
        root=root,
        port=port,
        client_key=client_key,
        known_hosts=known_hosts,
        host_key=host_key,
        private_dir=private_dir,
        etc_hosts=etc_hosts,
    )


def fleet_addresses(count: int) -> list[str]:
    """`count` loopback addresses past 127.0.0.x: 127.0.1.1, 127.0.1.2, … (all of 127/8 is lo)."""
    return [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(count)]


@dataclass
class SshFleet:
    """Many SSH "hosts": one sshd configuration answering on `count` loopback addresses, each its
    own host name in a profile. OpenSSH listens on 16 addresses per daemon at most, so there is one
    daemon per 16 addresses, all with the same keys, port and config."""

    sshd: Sshd
    addresses: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return [f"root@{address}:{self.sshd.port}" for address in self.addresses]

    def accepted(self) -> int:
        """How many SSH connections the daemons accepted so far (from their logs)."""
        return sum(
            log.read_text(errors="replace").count("Accepted publickey")
            for log in self.sshd.root.glob("fleet-*.log")
        )

    def start(self) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        base = (self.sshd.root / "sshd_config").read_text()
        # Fleet hosts stand in for servers: bash sources ~/.bashrc for every SSH command, and this
        # machine's (root's, with pyenv) costs ~0.1 s of CPU each time, which 200 hosts on 2 cores
        # turn into minutes. Where possible the daemons run in a mount namespace of their own with
        # an empty file over it.
        rc: Path | None = Path(os.path.expanduser("~/.bashrc"))
        if rc is None or not rc.is_file() or os.geteuid() != 0 or shutil.which("unshare") is None:
            rc = None
        empty = self.sshd.root / "empty-bashrc"
        empty.write_text("")
        for n in range(0, len(self.addresses), 16):
            chunk = self.addresses[n : n + 16]
            config = self.sshd.root / f"fleet-{n // 16}.conf"
            listen = "".join(f"ListenAddress {a}\n" for a in chunk)
            text = base.replace("ListenAddress 127.0.0.1\n", listen).replace(
                f"PidFile {self.sshd.root}/sshd.pid", f"PidFile {self.sshd.root}/fleet-{n // 16}.pid"
            )
            config.write_text(text.replace("MaxStartups 100:30:200", "MaxStartups 300:30:600"))
            command = [sshd, "-D", "-e", "-f", str(config)]
            if rc is not None:  # the sessions see a stock shell start-up, not this machine's ~/.bashrc
                script = (
                    f"mount --bind {shlex.quote(str(empty))} {shlex.quote(str(rc))} && exec "
                    + shlex.join(command)
                )
                command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
            self.procs.append(
                subprocess.Popen(
                    command,
                    stdout=open(self.sshd.root / f"fleet-{n // 16}.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        port = self.sshd.port

        def ready(address: str) -> bool:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise ServiceUnavailable("sshd exited: see " + str(self.sshd.root))
            with socket.create_connection((address, port), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH-")

        for address in (self.addresses[0], self.addresses[-1]):
            wait_for(partial(ready, address), 15, f"sshd on {address}")

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)


def make_ssh_fleet(root: Path, count: int) -> SshFleet:
    """An SshFleet of `count` hosts (127.0.1.1…), trusted by its known_hosts file."""
    sshd = make_sshd(root)
    addresses = fleet_addresses(count)
    key = " ".join(sshd.host_key.with_suffix(".pub").read_text().split()[:2])
    sshd.known_hosts.write_text("".join(f"[{a}]:{sshd.port} {key}\n" for a in addresses))
    return SshFleet(sshd, addresses)


# ------------------------------------------------------------------------ redis


@dataclass
class Redis:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    def stop(self) -> None:
        stop_process(self.proc)


def start_redis(root: Path) -> Redis:
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable("redis-server is not installed (apt-get install redis-server)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=open(root / "redis.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    redis = Redis(port=port, proc=proc)
    wait_for(lambda: redis.cli("PING") == "PONG", 15, "redis")
    return redis


# ------------------------------------------------------------------------ docker


def docker_client():  # type: ignore[no-untyped-def]
    import docker

    try:
        client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=20)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise ServiceUnavailable(f"no Docker Engine at /var/run/docker.sock ({exc})") from exc
    return client


def build_busybox_image(client) -> str:  # type: ignore[no-untyped-def]
    """Import a busybox rootfs as IMAGE (no registry is reachable here)."""
    import docker

    try:
        client.images.get(IMAGE)
        return IMAGE
    except docker.errors.ImageNotFound:
        pass
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        raise ServiceUnavailable("busybox-static is not installed (apt-get install busybox-static)")
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "tmp").mkdir()
        (rootfs / "www").mkdir()
        (rootfs / "www" / "index.html").write_text("ok\n")
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in (
            "sh",
            "sleep",
            "echo",
            "httpd",
            "cat",
            "ls",
            "wget",
            "date",
            "seq",
            "printf",
            "true",
            "kill",
        ):
            os.symlink("busybox", rootfs / "bin" / applet)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        with open(archive, "rb") as handle:
            client.api.import_image_from_data(handle.read(), repository=IMAGE.split(":")[0], tag="latest")
    client.images.get(IMAGE)
    return IMAGE


class Blackhole:
    """A loopback port that accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------ prometheus

PROMETHEUS_EXTRACTED = "/opt/opsconsole-prometheus/usr/bin/prometheus"  # where with-services.sh unpacks it


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    if found:
        return found
    return PROMETHEUS_EXTRACTED if os.path.exists(PROMETHEUS_EXTRACTED) else None


@dataclass
class Prometheus:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def start_prometheus(root: Path, targets: list[str], interval: str = "1s") -> Prometheus:
    """Debian's prometheus on loopback with a temp config and storage, scraping `targets`."""
    binary = prometheus_binary()
    if binary is None:
        raise ServiceUnavailable("prometheus is not installed (make test unpacks Debian's package)")
    root.mkdir(parents=True, exist_ok=True)
    (root / "prom.yml").write_text(
        f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prom.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={root / 'data'}",
        ],
        stdout=open(root / "prometheus.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(port, proc)

    def ready() -> bool:
        if proc.poll() is not None:
            raise ServiceUnavailable("prometheus exited: " + (root / "prometheus.log").read_text()[-2000:])
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)

    try:
        wait_for(ready, 30, "prometheus")
    except ServiceUnavailable:
        server.stop()
        raise
    return server


# ------------------------------------------------------------------------ bugsink

BUGSINK_VENV = Path(__file__).resolve().parents[1] / ".cache" / "bugsink-venv"  # gitignored


def start_bugsink(root: Path) -> Any:
    """Bugsink on loopback with a token, team and project, as the demo starts it (its own venv, made
    once and kept in .cache/)."""
    import secrets

    from opsconsole.demo import bugsink
    from opsconsole.errors import OpsError

    try:
        return bugsink.start(root, free_port(), secrets.token_hex(20), venv=BUGSINK_VENV)
    except OpsError as exc:
        raise ServiceUnavailable(exc.message) from None
