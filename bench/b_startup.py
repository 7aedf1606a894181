"""Start-up to the first frame showing the environments, against a bare Textual app."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.common import BARE_APP, OPSCONSOLE, PYTHON, Config, Result
from bench.terminal import Terminal

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
