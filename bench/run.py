"""Benchmarks: opsconsole against what users would do instead, side by side, on this machine.

    make bench         # all seven, full size (about 10 minutes)
    make bench-smoke   # the same benchmarks, small and fast (CI runs this so none of them rots)

Each benchmark runs opsconsole and its baseline in the same run and prints the ratio against its
budget. Terminal-facing figures are read from a pseudo-terminal (no hooks inside the app). Results go
to stdout as a table; `--json FILE` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import harness  # noqa: E402

PYTHON = sys.executable
OPSCONSOLE = str(Path(PYTHON).parent / "opsconsole")
ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
BARE_APP = textwrap.dedent(
    """
    import sys
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header

    class Bare(App):
        def compose(self):
            yield Header()
            yield DataTable()
            yield Footer()

        def on_mount(self):
            table = self.query_one(DataTable)
            table.add_columns("environment", "hosts", "state")
            for n in range(int(sys.argv[1])):
                table.add_row(f"env-{n}", "1", "ok")

    Bare().run()
    """
)


@dataclass
class Result:
    name: str
    figure: float
    baseline: float
    unit: str
    budget: str
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else float("inf")


@dataclass
class Config:
    smoke: bool
    hosts: int = 30
    ssh_hosts: int = 10
    programs: int = 20
    containers: int = 30
    dead: int = 5
    startup_runs: int = 7
    firehose_rate: int = 20_000
    firehose_seconds: float = 10.0
    idle_seconds: float = 60.0
    memory_seconds: float = 300.0
    timeout: float = 3.0
    results: list[Result] = field(default_factory=list)

    @classmethod
    def make(cls, smoke: bool) -> Config:
        if not smoke:
            return cls(smoke=False)
        return cls(
            smoke=True,
            hosts=4,
            ssh_hosts=2,
            programs=3,
            containers=3,
            dead=1,
            startup_runs=1,
            firehose_rate=2000,
            firehose_seconds=2.0,
            idle_seconds=4.0,
            memory_seconds=5.0,
            timeout=2.0,
        )


# ------------------------------------------------------------------------ terminal helpers


class Terminal:
    """A program in a pseudo-terminal: send keys, wait for text, count bytes, read its CPU and memory."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (120, 40),
        cwd: Path | None = None,
    ) -> None:
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.environ.update(env or {})
            os.environ["TERM"] = "xterm-256color"
            if cwd is not None:
                os.chdir(cwd)
            os.execv(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.output = bytearray()
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.output += data
                self.bytes_read += len(data)

    def mark(self) -> int:
        with self._lock:
            return len(self.output)

    def wait_for(self, text: str, since: int = 0, timeout: float = 30.0) -> float:
        """Seconds until `text` appears (escape sequences ignored) in output after offset `since`."""
        needle = text.encode()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self._lock:
                chunk = bytes(self.output[since:])
            if needle in ANSI.sub(b"", chunk):
                return time.perf_counter()
            time.sleep(0.002)
        raise TimeoutError(f"{text!r} did not appear within {timeout} s")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self._stop = True
        try:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


# ------------------------------------------------------------------------ the fleet


@dataclass
class Fleet:
    root: Path
    sups: list[harness.Supervisord]
    sshd: harness.Sshd
    ssh_names: set[str]
    containers: list[Any]
    holes: list[harness.Blackhole]
    docker: Any = None

    def env_names(self) -> list[str]:
        return [f"host-{n:02d}" for n in range(len(self.sups))]

    def profile(self, path: Path, timeout: float, dead: bool = False, refresh: float = 5.0) -> Path:
        lines = [
            "[project]",
            'name = "fleet"',
            "[defaults]",
            f'known_hosts = "{self.sshd.known_hosts}"',
            f'identity_file = "{self.sshd.client_key}"',
            f"timeout = {timeout}",
            f"refresh = {refresh}",
        ]
        for n, sup in enumerate(self.sups):
            name = f"host-{n:02d}"
            host = self.sshd.host if name in self.ssh_names else "local"
            lines += [
                f"[environments.{name}]",
                f'hosts = ["{host}"]',
                f"[environments.{name}.supervisor]",
                f'url = "{sup.unix_url}"',
            ]
            if n == 0 and self.docker is not None:
                lines += [f"[environments.{name}.docker]", 'url = "unix:///var/run/docker.sock"']
        if dead:
            for n, hole in enumerate(self.holes):
                lines += [
                    f"[environments.dead-{n}]",
                    f'hosts = ["root@127.0.0.1:{hole.port}"]',
                    f"[environments.dead-{n}.supervisor]",
                    'url = "unix:///var/run/supervisor.sock"',
                ]
        path.write_text("\n".join(lines) + "\n")
        return path

    def stop(self) -> None:
        for sup in self.sups:
            sup.stop()
        self.sshd.stop()
        for hole in self.holes:
            hole.close()
        for container in self.containers:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001
                pass


def build_fleet(cfg: Config, root: Path) -> Fleet:
    sshd = harness.make_sshd(root / "sshd")
    sshd.start()
    programs = [harness.Program(f"p{n:02d}", "/bin/sleep 36000", group="app") for n in range(cfg.programs)]

    def one(n: int) -> harness.Supervisord:
        sup = harness.make_supervisord(root / f"sup{n:02d}", programs)
        sup.start()
        return sup

    with ThreadPoolExecutor(max_workers=8) as pool:
        sups = list(pool.map(one, range(cfg.hosts)))
    ssh_names = {f"host-{n:02d}" for n in range(cfg.hosts - cfg.ssh_hosts, cfg.hosts)}
    fleet = Fleet(root, sups, sshd, ssh_names, [], [harness.Blackhole() for _ in range(cfg.dead)])
    try:
        client = harness.docker_client()
        harness.build_busybox_image(client)
        fleet.docker = client
        for n in range(cfg.containers):
            fleet.containers.append(
                client.containers.run(
                    harness.IMAGE,
                    ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                    detach=True,
                    name=f"bench-{os.getpid()}-{n}",
                    labels={harness.TEST_LABEL: "bench"},
                )
            )
    except harness.ServiceUnavailable as exc:
        print(f"bench: no Docker Engine ({exc}); container figures are skipped", file=sys.stderr)
    for sup in sups:
        sup.wait_running([f"app:p{n:02d}" for n in range(cfg.programs)], timeout=60)
    return fleet


# ------------------------------------------------------------------------ benchmarks


def bench_startup(cfg: Config, tmp: Path) -> None:
    hosts = [f"root@127.0.0.1:{harness.free_port()}" for _ in range(30)]
    lines = ["[defaults]", "timeout = 2"]
    for n in range(3):
        lines += [
            f"[environments.env-{n}]",
            f"hosts = {json.dumps(hosts[n * 10 : (n + 1) * 10])}",
            f"[environments.env-{n}.supervisor]",
            'url = "unix:///var/run/supervisor.sock"',
        ]
    profile = tmp / "startup.toml"
    profile.write_text("\n".join(lines) + "\n")
    bare = tmp / "bare.py"
    bare.write_text(BARE_APP)
    ours: list[float] = []
    base: list[float] = []
    for _ in range(cfg.startup_runs):
        for argv, sink in (([OPSCONSOLE, "--profile", str(profile)], ours), ([PYTHON, str(bare), "3"], base)):
            term = Terminal(argv)
            try:
                sink.append(term.wait_for("env-2") - term.started)
            finally:
                term.close()
    figure, baseline = statistics.median(ours), statistics.median(base)
    cfg.results.append(
        Result(
            "1. start-up to first frame (30 hosts)",
            figure,
            baseline,
            "s",
            "ratio <= 1.3",
            figure / baseline <= 1.3,
            f"median of {cfg.startup_runs}",
        )
    )


def _baseline_shell_loop(fleet: Fleet) -> float:
    commands = []
    for name, sup in zip(fleet.env_names(), fleet.sups, strict=True):
        ctl = f"{PYTHON} -m supervisor.supervisorctl -s unix://{sup.socket_path} status"
        if name in fleet.ssh_names:
            commands.append(
                f"ssh -q -i {fleet.sshd.client_key} -o UserKnownHostsFile={fleet.sshd.known_hosts} "
                f"-o StrictHostKeyChecking=yes -p {fleet.sshd.port} root@127.0.0.1 {ctl} >/dev/null || true"
            )
        else:
            commands.append(f"{ctl} >/dev/null || true")
    script = fleet.root / "loop.sh"
    script.write_text("\n".join(commands) + "\n")
    started = time.perf_counter()
    subprocess.run(["bash", str(script)], check=True)
    return time.perf_counter() - started


FABRIC_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    from concurrent.futures import ThreadPoolExecutor
    from fabric import Connection, ThreadingGroup
    spec = json.load(open(sys.argv[1]))
    def local(cmd):
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout
    # the SSH hosts: one Fabric ThreadingGroup per supervisord socket (one command each), all at once
    def remote(cmd):
        group = ThreadingGroup.from_connections([Connection("127.0.0.1", user="root", port=spec["port"],
                    connect_kwargs={"key_filename": spec["key"]})])
        return [r.stdout for r in group.run(cmd, hide=True, warn=True).values()]
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(remote if h["ssh"] else local, h["cmd"]) for h in spec["hosts"]]
        out = [f.result() for f in futures]
    print(len(out))
    """
)


def _baseline_fabric(fleet: Fleet) -> float:
    spec = {
        "port": fleet.sshd.port,
        "key": str(fleet.sshd.client_key),
        "hosts": [
            {
                "ssh": name in fleet.ssh_names,
                "cmd": f"{PYTHON} -m supervisor.supervisorctl -s unix://{sup.socket_path} status",
            }
            for name, sup in zip(fleet.env_names(), fleet.sups, strict=True)
        ],
    }
    (fleet.root / "fabric.json").write_text(json.dumps(spec))
    (fleet.root / "fabric_baseline.py").write_text(FABRIC_SCRIPT)
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, str(fleet.root / "fabric_baseline.py"), str(fleet.root / "fabric.json")],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _status(profile: Path) -> tuple[float, dict[str, Any], int]:
    started = time.perf_counter()
    done = subprocess.run(
        [OPSCONSOLE, "--profile", str(profile), "status", "--json"], capture_output=True, text=True
    )
    return time.perf_counter() - started, json.loads(done.stdout), done.returncode


def bench_fleet(cfg: Config, fleet: Fleet) -> None:
    # known_hosts for plain ssh in the shell loop
    profile = fleet.profile(fleet.root / "fleet.toml", cfg.timeout)
    _status(profile)  # warm the page cache once for every contender
    shell = _baseline_shell_loop(fleet)
    fabric = _baseline_fabric(fleet)
    ours, data, code = _status(profile)
    processes = sum(
        len(h["supervisor"]["processes"])
        for env in data["environments"].values()
        for h in env["hosts"].values()
    )
    assert code == 0 and processes == cfg.hosts * cfg.programs, (code, processes)
    cfg.results.append(
        Result(
            "2a. fleet snapshot vs shell loop of supervisorctl",
            ours,
            shell,
            "s",
            "ratio <= 0.25",
            ours / shell <= 0.25,
            f"{processes} processes on {cfg.hosts} supervisords ({cfg.ssh_hosts} via SSH) + {len(fleet.containers)} containers",
        )
    )
    cfg.results.append(
        Result(
            "2b. fleet snapshot vs Fabric threads",
            ours,
            fabric,
            "s",
            "ratio <= 1.0",
            ours / fabric <= 1.0,
            "best hand-written parallel script: Fabric for the SSH hosts, subprocesses for local ones, 32 threads",
        )
    )


def bench_dead(cfg: Config, fleet: Fleet) -> None:
    profile = fleet.profile(fleet.root / "dead.toml", cfg.timeout, dead=True, refresh=cfg.timeout)
    elapsed, data, code = _status(profile)
    errors = [
        e["hosts"][h]["supervisor"]["error"]
        for name, e in data["environments"].items()
        if name.startswith("dead")
        for h in e["hosts"]
    ]
    assert code == 4 and all(errors), errors
    cfg.results.append(
        Result(
            "3a. status with dead hosts: elapsed",
            data["elapsed_seconds"],
            cfg.timeout + 0.5,
            "s",
            "<= timeout + 0.5 s",
            data["elapsed_seconds"] <= cfg.timeout + 0.5,
            f"{cfg.dead} hosts accept TCP and never answer; wall {elapsed:.2f} s with start-up",
        )
    )
    term = Terminal([OPSCONSOLE, "--profile", str(profile)])
    try:
        term.wait_for("app:p00")
        # past the start-up burst; refreshes (every `timeout` s) keep waiting on the dead hosts throughout
        time.sleep(2.0)
        latencies = []
        for n in range(20 if not cfg.smoke else 8):
            key, marker = ("2", "containers ·") if n % 2 == 0 else ("1", "processes ·")
            since = term.mark()
            sent = time.perf_counter()
            term.send(key)
            latencies.append(term.wait_for(marker, since=since, timeout=5) - sent)
        p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 4 else max(latencies)
    finally:
        term.close()
    cfg.results.append(
        Result(
            "3b. key-to-screen p95 while refresh waits on dead hosts",
            p95 * 1000,
            100,
            "ms",
            "< 100 ms",
            p95 < 0.1,
            f"{len(latencies)} pane switches read through the terminal: "
            + ", ".join(f"{x * 1000:.0f}" for x in latencies)
            + " ms",
        )
    )


FIREHOSE = textwrap.dedent(
    """
    import sys, time
    rate, seconds = int(sys.argv[1]), float(sys.argv[2])
    batch = max(1, rate // 100)
    n = 0
    start = time.monotonic()
    out = sys.stdout
    while n < rate * seconds:
        lines = "".join(f"fire {i:09d} the quick brown fox\\n" for i in range(n + 1, n + batch + 1))
        out.write(lines)
        out.flush()
        n += batch
        wait = start + n / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    time.sleep(3600)
    """
)


def _numbers(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("fire ")]


def bench_firehose(cfg: Config, tmp: Path) -> None:
    script = tmp / "firehose.py"
    script.write_text(FIREHOSE)
    sup = harness.make_supervisord(
        tmp / "firesup",
        [
            harness.Program(
                "fire",
                f"{{python}} -u {script} {cfg.firehose_rate} {cfg.firehose_seconds}",
                autostart=False,
                extra={"stdout_logfile_maxbytes": "0"},
            )
        ],
    )
    sup.start()
    total = int(cfg.firehose_rate * cfg.firehose_seconds)
    profile = tmp / "fire.toml"
    profile.write_text(
        f'[environments.fire]\nhosts = ["local"]\n[environments.fire.supervisor]\nurl = "{sup.unix_url}"\n'
    )
    try:
        (sup.root / "fire.out.log").touch()  # supervisorctl tail -f needs the file to exist
        ours = subprocess.Popen(
            [OPSCONSOLE, "--profile", str(profile), "logs", "fire", "supervisor:fire", "-n", "0", "-f"],
            stdout=subprocess.PIPE,
            text=True,
        )
        theirs = subprocess.Popen(
            [PYTHON, "-m", "supervisor.supervisorctl", "-s", sup.unix_url, "tail", "-f", "fire:fire"],
            stdout=subprocess.PIPE,
            text=True,
        )
        got: dict[str, list[str]] = {"ours": [], "theirs": []}
        done_at: dict[str, float] = {}

        def drain(name: str, proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                got[name].append(line.rstrip("\n"))
                if line.startswith(f"fire {total:09d}"):
                    done_at[name] = time.perf_counter()

        readers = [
            threading.Thread(target=drain, args=(n, p), daemon=True)
            for n, p in (("ours", ours), ("theirs", theirs))
        ]
        for reader in readers:
            reader.start()
        time.sleep(1.5)
        started = time.perf_counter()
        sup.proxy().supervisor.startProcess("fire:fire", False)
        time.sleep(cfg.firehose_seconds + 3)
        for proc in (ours, theirs):
            proc.send_signal(signal.SIGINT)
        for proc in (ours, theirs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        mine = _numbers(got["ours"])
        exact = mine == list(range(1, total + 1))
        theirs_numbers = _numbers(got["theirs"])
        ours_rate = len(mine) / ((done_at.get("ours", time.perf_counter())) - started)
        theirs_rate = len(theirs_numbers) / ((done_at.get("theirs", time.perf_counter())) - started)
        cfg.results.append(
            Result(
                "4a. logs -f firehose throughput vs supervisorctl tail -f",
                ours_rate,
                theirs_rate,
                "lines/s",
                "every line once, in order; ratio >= 1.0",
                exact and ours_rate >= theirs_rate,
                f"{len(mine)}/{total} lines, exact={exact}; supervisorctl got {len(set(theirs_numbers))} distinct",
            )
        )
        sup.proxy().supervisor.stopProcess("fire:fire")
        (sup.root / "fire.out.log").write_text("")
        _viewer_firehose(cfg, profile, sup, total)
    finally:
        sup.stop()


def _viewer_firehose(cfg: Config, profile: Path, sup: harness.Supervisord, total: int) -> None:
    """The console's log viewer on the firehose, in a real terminal: key latency is read from the
    screen (pressing `w` makes the status line say "wrap"); delivery is checked with the viewer's
    own save (`ctrl+s`), which writes the lines it holds."""
    workdir = Path(tempfile.mkdtemp(prefix="opsc-fire-"))
    term = Terminal([OPSCONSOLE, "--profile", str(profile)], size=(120, 40), cwd=workdir)
    try:
        term.wait_for("fire:fire")
        time.sleep(1.0)
        term.send("l")
        term.wait_for("lines (last")
        rss_before = _rss_mib(term.pid)
        sup.proxy().supervisor.startProcess("fire:fire", False)
        time.sleep(1.0)
        latencies = []
        deadline = time.monotonic() + cfg.firehose_seconds - 1.0
        while time.monotonic() < deadline:
            since = term.mark()
            sent = time.perf_counter()
            term.send("w")
            latencies.append(term.wait_for("· wrap", since=since, timeout=10) - sent)
            term.send("w")  # back off: the next press turns it on again
            time.sleep(0.3)
        time.sleep(3.0)  # let the tail of the firehose arrive
        growth = _rss_mib(term.pid) - rss_before
        term.send("\x13")  # ctrl+s: save what the viewer holds
        term.wait_for("opsconsole-supervisor_fire")
        term.send("\r")  # the suggested name, in the working directory
        deadline = time.monotonic() + 10
        while not list(workdir.glob("opsconsole-*.log")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        term.close()
    files = list(workdir.glob("opsconsole-*.log"))
    numbers = _numbers(files[0].read_text().splitlines()) if files else []
    shutil.rmtree(workdir, ignore_errors=True)
    kept_ok = bool(numbers) and numbers == list(range(total - len(numbers) + 1, total + 1))
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 4 else max(latencies or [0.0])
    cfg.results.append(
        Result(
            "4b. log viewer on the firehose: key-to-screen p95",
            p95 * 1000,
            100,
            "ms",
            "< 100 ms; every line once, in order",
            p95 < 0.1 and kept_ok,
            f"{len(latencies)} presses read through the terminal; the viewer holds the last {len(numbers)} "
            f"lines, in order and ending at line {total}: {kept_ok}; RSS growth {growth:.1f} MiB",
        )
    )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_stats(cfg: Config, fleet: Fleet) -> None:
    if fleet.docker is None:
        return
    from opsconsole.backends.docker_engine import DockerClient
    from opsconsole.backends.hosts import make_host
    from opsconsole.profiles import Defaults, DockerConfig, parse_host

    started = time.perf_counter()
    client = DockerClient(make_host(parse_host("local"), Defaults(timeout=10)), DockerConfig())
    containers = [c.name for c in client.containers() if c.state == "running"]
    stats = client.stats(containers)
    ours = time.perf_counter() - started
    shown = sum(1 for v in stats.values() if not isinstance(v, str))
    started = time.perf_counter()
    subprocess.run(["docker", "stats", "--no-stream"], check=True, capture_output=True)
    theirs = time.perf_counter() - started
    cfg.results.append(
        Result(
            "5. CPU%/memory for every running container vs docker stats --no-stream",
            ours,
            theirs,
            "s",
            "ratio <= 1.0",
            ours <= theirs,
            f"{shown} containers sampled in parallel",
        )
    )


def _bare(tmp: Path, rows: int) -> list[str]:
    bare = tmp / "bare.py"
    bare.write_text(BARE_APP)
    return [PYTHON, str(bare), str(rows)]


def bench_idle_and_memory(cfg: Config, fleet: Fleet, tmp: Path) -> None:
    profile = fleet.profile(fleet.root / "idle.toml", cfg.timeout)
    for label, seconds, kind in (
        ("6. idle", cfg.idle_seconds, "idle"),
        ("7. memory", cfg.memory_seconds, "memory"),
    ):
        ours = Terminal([OPSCONSOLE, "--profile", str(profile)])
        bare = Terminal(_bare(tmp, cfg.hosts))
        try:
            ours.wait_for("app:p00")
            bare.wait_for(f"env-{cfg.hosts - 1}")
            time.sleep(2 * 5.0 if not cfg.smoke else 1.0)  # let the first refreshes land
            cpu0, bare_cpu0 = ours.cpu_seconds(), bare.cpu_seconds()
            bytes0, bare_bytes0 = ours.bytes_read, bare.bytes_read
            time.sleep(seconds)
            cpu, bare_cpu = ours.cpu_seconds() - cpu0, bare.cpu_seconds() - bare_cpu0
            written, bare_written = ours.bytes_read - bytes0, bare.bytes_read - bare_bytes0
            peak, bare_peak = ours.peak_rss_mib(), bare.peak_rss_mib()
        finally:
            ours.close()
            bare.close()
        if kind == "idle":
            floor = 0.01  # clock ticks: below this the bare app reads as 0
            cfg.results.append(
                Result(
                    f"{label}: CPU seconds over {seconds:.0f} s",
                    cpu,
                    max(bare_cpu, floor),
                    "s",
                    "ratio <= 2",
                    cpu <= 2 * max(bare_cpu, floor),
                    f"refresh every 5 s of {cfg.hosts} hosts; bare app {bare_cpu:.2f} s",
                )
            )
            cfg.results.append(
                Result(
                    f"{label}: bytes written to the terminal over {seconds:.0f} s",
                    written,
                    max(bare_written, 1),
                    "B",
                    "ratio <= 2",
                    written <= 2 * max(bare_written, 1),
                    f"bare app {bare_written} B",
                )
            )
        else:
            cfg.results.append(
                Result(
                    f"{label}: peak RSS after {seconds:.0f} s of refreshes",
                    peak,
                    bare_peak,
                    "MiB",
                    "ratio <= 4",
                    peak <= 4 * bare_peak,
                    f"{cfg.hosts} hosts, {cfg.hosts * cfg.programs} processes",
                )
            )


# ------------------------------------------------------------------------ main


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{platform.platform()}, {os.cpu_count()} cores ({cpu}), {mem} GiB, Python {platform.python_version()}"


def table(results: list[Result]) -> str:
    rows = [("benchmark", "opsconsole", "baseline", "ratio", "budget", "met", "notes")]
    for r in results:
        rows.append(
            (
                r.name,
                f"{r.figure:.3g} {r.unit}",
                f"{r.baseline:.3g} {r.unit}",
                f"{r.ratio:.2f}",
                r.budget,
                "yes" if r.met else "NO",
                r.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    out = []
    for n, row in enumerate(rows):
        out.append(
            "| " + " | ".join(cell.ljust(widths[i]) if i < 6 else cell for i, cell in enumerate(row)) + " |"
        )
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="small and fast: checks the benchmarks still run"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--hosts", type=int, help="fleet size (default 30; smoke 4)")
    parser.add_argument("--idle-seconds", type=float)
    parser.add_argument("--memory-seconds", type=float)
    parser.add_argument(
        "--only", action="append", help="run only these (startup, fleet, dead, firehose, stats, idle)"
    )
    args = parser.parse_args(argv)
    cfg = Config.make(args.smoke)
    if args.hosts:
        cfg.hosts, cfg.ssh_hosts = args.hosts, max(1, args.hosts // 3)
    if args.idle_seconds:
        cfg.idle_seconds = args.idle_seconds
    if args.memory_seconds:
        cfg.memory_seconds = args.memory_seconds
    wanted = set(args.only or ["startup", "fleet", "dead", "firehose", "stats", "idle"])
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="opsc-bench-"))
    os.environ["OPSCONSOLE_AUDIT_LOG"] = str(tmp / "audit.jsonl")
    fleet = None
    try:
        if "startup" in wanted:
            bench_startup(cfg, tmp)
        if wanted & {"fleet", "dead", "stats", "idle"}:
            fleet = build_fleet(cfg, tmp / "fleet")
            for name, fn in (("fleet", bench_fleet), ("dead", bench_dead), ("stats", bench_stats)):
                if name in wanted:
                    fn(cfg, fleet)
        if "firehose" in wanted:
            bench_firehose(cfg, tmp)
        if "idle" in wanted and fleet is not None:
            bench_idle_and_memory(cfg, fleet, tmp)
    finally:
        if fleet is not None:
            fleet.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(f"\nopsconsole benchmarks ({'smoke' if args.smoke else 'full'}) on {machine()}, {elapsed:.0f} s\n")
    print(table(cfg.results))
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**r.__dict__, "ratio": r.ratio} for r in cfg.results], indent=2)
        )
    if args.smoke:
        return 0  # smoke runs check that every benchmark runs; budgets are judged on full runs
    return 0 if all(r.met for r in cfg.results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
