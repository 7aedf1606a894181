"""Container stats against `docker stats`; idle CPU, bytes and memory against a bare app."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.common import BARE_APP, OPSCONSOLE, PYTHON, Config, Result
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
