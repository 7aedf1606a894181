"""Benchmarks: opsconsole against what users would do instead, side by side, on this machine.

    make bench         # every row, full size (about 17 minutes)
    make bench-smoke   # the same benchmarks, small and fast (CI runs this so none of them rots)

Each benchmark runs opsconsole and its baseline in the same run and prints the ratio against its
budget. Terminal-facing figures are read from a pseudo-terminal (no hooks inside the app). Results go
to stdout as a table; `--json FILE` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.b_deploy import bench_deploy
from bench.b_firehose import bench_firehose
from bench.b_fleet import bench_dead, bench_fleet
from bench.b_plan import bench_plan
from bench.b_projects import bench_projects
from bench.b_realistic import bench_realistic
from bench.b_resources import bench_idle_and_memory, bench_stats
from bench.b_scale import bench_scale
from bench.b_sources import bench_sources_idle
from bench.b_startup import bench_startup
from bench.common import Config, Result
from bench.fleet import build_fleet

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


def compile_sources() -> None:
    """Byte-compile opsconsole's sources, as installing a package does. The checkout is installed
    in editable mode, and with PYTHONDONTWRITEBYTECODE set (it is, on these machines) every start
    would compile our modules again while Textual's come compiled: start-up would measure the
    compiler. Stale files are safe: Python checks each against its source."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src"), quiet=1)


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
        "--only",
        action="append",
        help="run only these (startup, fleet, dead, firehose, stats, idle, projects, scale, deploy, plan, sources, realistic)",
    )
    args = parser.parse_args(argv)
    cfg = Config.make(args.smoke)
    if args.hosts:
        cfg.hosts, cfg.ssh_hosts = args.hosts, max(1, args.hosts // 3)
    if args.idle_seconds:
        cfg.idle_seconds = args.idle_seconds
    if args.memory_seconds:
        cfg.memory_seconds = args.memory_seconds
    everything = ["startup", "fleet", "dead", "firehose", "stats", "idle", "projects", "scale", "deploy", "plan", "sources"]
    everything.append("realistic")  # issue 34: bench/b_realistic.py
    wanted = set(args.only or everything)
    compile_sources()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="opsc-bench-"))
    os.environ["OPSCONSOLE_AUDIT_LOG"] = str(tmp / "audit.jsonl")
    # the benchmarks write their profiles in temp folders: trusted for this run (profiles/trust.py)
    os.environ["OPSCONSOLE_TRUSTED_PATHS"] = str(Path(tempfile.gettempdir()).resolve())
    fleet = None
    failed: list[str] = []

    def attempt(name: str, fn: Callable[..., None], *args: Any) -> None:
        """One benchmark; a failure is reported (and fails the run) without losing the others' rows."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            failed.append(f"{name}: {type(exc).__name__}: {exc}")

    try:
        if "startup" in wanted:
            attempt("startup", bench_startup, cfg, tmp)
        if wanted & {"fleet", "dead", "stats", "idle", "projects"}:
            fleet = build_fleet(cfg, tmp / "fleet")
            for name, fn in (("fleet", bench_fleet), ("dead", bench_dead), ("stats", bench_stats)):
                if name in wanted:
                    attempt(name, fn, cfg, fleet)
        if "firehose" in wanted:
            attempt("firehose", bench_firehose, cfg, tmp)
        if "idle" in wanted and fleet is not None:
            attempt("idle", bench_idle_and_memory, cfg, fleet, tmp)
        if "projects" in wanted and fleet is not None:
            attempt("projects", bench_projects, cfg, fleet, tmp)
        if fleet is not None:
            fleet.stop()
            fleet = None
        if "scale" in wanted:
            attempt("scale", bench_scale, cfg, tmp / "scale")
        if "realistic" in wanted:
            attempt("realistic", bench_realistic, cfg, tmp / "realistic")
        if "deploy" in wanted:
            attempt("deploy", bench_deploy, cfg, tmp)
        if "plan" in wanted:
            attempt("plan", bench_plan, cfg, tmp)
        if "sources" in wanted:
            attempt("sources", bench_sources_idle, cfg, tmp / "sources")
    finally:
        if fleet is not None:
            fleet.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(f"\nopsconsole benchmarks ({'smoke' if args.smoke else 'full'}) on {machine()}, {elapsed:.0f} s\n")
    print(table(cfg.results))
    for failure in failed:
        print(f"FAILED {failure}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**r.__dict__, "ratio": r.ratio} for r in cfg.results], indent=2)
        )
    if failed:
        return 1
    if args.smoke:
        return 0  # smoke runs check that every benchmark runs; budgets are judged on full runs
    return 0 if all(r.met for r in cfg.results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
