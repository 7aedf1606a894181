"""Container stats against `docker stats`; idle CPU, bytes and memory against a bare app."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

from bench.common import ANSI, BARE_APP, OPSCONSOLE, PYTHON, Config, Result
from bench.fleet import Fleet
from bench.terminal import Terminal


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_stats(cfg: Config, fleet: Fleet) -> None:
    if fleet.docker is None:
        return
    from opsconsole.backends.clients import make_host
    from opsconsole.backends.docker_engine import DockerClient
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


# The cost of the job itself: every `interval` s, each supervisord's processes (XML-RPC on its
# socket; for the SSH hosts `supervisorctl status` over one kept-open paramiko connection) and the
# Docker host's containers, parsed, and nothing drawn.
POLLER = textwrap.dedent(
    """
    import json, sys, time, xmlrpc.client
    import docker, paramiko
    from supervisor.xmlrpc import SupervisorTransport
    spec = json.load(open(sys.argv[1]))
    proxies = [xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, url))
               for url in spec["local"]]
    ssh = paramiko.SSHClient()
    ssh.load_host_keys(spec["known_hosts"])
    ssh.connect("127.0.0.1", port=spec["port"], username="root", key_filename=spec["key"])
    engine = docker.DockerClient(base_url="unix:///var/run/docker.sock") if spec["docker"] else None
    while True:
        started = time.monotonic()
        for proxy in proxies:
            proxy.supervisor.getAllProcessInfo()
        for command in spec["remote"]:
            _, out, _ = ssh.exec_command(command)
            out.read()
        if engine is not None:
            engine.containers.list(all=True)
        time.sleep(max(0.0, spec["interval"] - (time.monotonic() - started)))
    """
)


def _poller(fleet: Fleet, tmp: Path, interval: float) -> list[str]:
    spec = {
        "local": [
            sup.unix_url
            for name, sup in zip(fleet.env_names(), fleet.sups, strict=True)
            if name not in fleet.ssh_names
        ],
        "remote": [
            f"{PYTHON} -m supervisor.supervisorctl -s {sup.unix_url} status"
            for name, sup in zip(fleet.env_names(), fleet.sups, strict=True)
            if name in fleet.ssh_names
        ],
        "port": fleet.sshd.port,
        "key": str(fleet.sshd.client_key),
        "known_hosts": str(fleet.sshd.known_hosts),
        "docker": fleet.docker is not None,
        "interval": interval,
    }
    (tmp / "poller.json").write_text(json.dumps(spec))
    (tmp / "poller.py").write_text(POLLER)
    return [PYTHON, str(tmp / "poller.py"), str(tmp / "poller.json")]


def _bare(tmp: Path, rows: int) -> list[str]:
    bare = tmp / "bare.py"
    bare.write_text(BARE_APP)
    return [PYTHON, str(bare), str(rows)]


def bench_idle_and_memory(cfg: Config, fleet: Fleet, tmp: Path) -> None:
    refresh = 5.0
    profile = fleet.profile(fleet.root / "idle.toml", cfg.timeout, refresh=refresh)
    for label, seconds, kind in (
        ("6. idle", cfg.idle_seconds, "idle"),
        ("7. memory", cfg.memory_seconds, "memory"),
    ):
        ours = Terminal([OPSCONSOLE, "--profile", str(profile)])
        bare = Terminal(_bare(tmp, cfg.hosts))
        poller = Terminal(_poller(fleet, tmp, refresh)) if kind == "idle" else None
        try:
            ours.wait_for("app:p00")
            bare.wait_for(f"env-{cfg.hosts - 1}")
            time.sleep(2 * 5.0 if not cfg.smoke else 1.0)  # let the first refreshes land
            cpu0, bare_cpu0 = ours.cpu_seconds(), bare.cpu_seconds()
            poll_cpu0 = poller.cpu_seconds() if poller is not None else 0.0
            bytes0 = ours.bytes_read
            mark = ours.mark()
            time.sleep(seconds)
            cpu, bare_cpu = ours.cpu_seconds() - cpu0, bare.cpu_seconds() - bare_cpu0
            poll_cpu = poller.cpu_seconds() - poll_cpu0 if poller is not None else 0.0
            written = ours.bytes_read - bytes0
            sample = ANSI.sub(b"", bytes(ours.output[mark : mark + 4000])).decode("utf-8", "replace")
            peak, bare_peak = ours.peak_rss_mib(), bare.peak_rss_mib()
        finally:
            ours.close()
            bare.close()
            if poller is not None:
                poller.close()
        if kind == "idle":
            floor = 0.01  # clock ticks: below this a process reads as 0
            cfg.results.append(
                Result(
                    f"{label}: CPU seconds over {seconds:.0f} s vs a minimal polling script",
                    cpu,
                    max(poll_cpu, floor),
                    "s",
                    "ratio <= 1.2",
                    cpu <= 1.2 * max(poll_cpu, floor),
                    f"{cfg.hosts} hosts ({cfg.ssh_hosts} via SSH) + {len(fleet.containers)} containers every "
                    f"{refresh:g} s over kept-open connections, parsed, nothing drawn; a bare Textual app "
                    f"{bare_cpu:.2f} s",
                )
            )
            cfg.results.append(
                Result(
                    f"{label}: bytes written to the terminal over {seconds:.0f} s",
                    written,
                    1000 * seconds / 60,
                    "B",
                    "<= 1 KB a minute",
                    written <= 1000 * seconds / 60,
                    f"nothing changes meanwhile; what was drawn: {sample.strip()[:120]!r}",
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
