"""A log firehose: throughput and key latency in the log viewer, against tail -f."""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.b_resources import _rss_mib
from bench.common import OPSCONSOLE, PYTHON, Config, Result
from bench.terminal import Terminal

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
    # the viewer proposes to save in the data dir (never the current folder): this run's own
    term = Terminal(
        [OPSCONSOLE, "--profile", str(profile)],
        env={"OPSCONSOLE_DATA_DIR": str(workdir)},
        size=(120, 40),
        cwd=workdir,
    )
    saved = workdir / "saved-logs"
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
        term.send("\r")  # the suggested name, in the data dir
        deadline = time.monotonic() + 10
        while not list(saved.glob("opsconsole-*.log")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        term.close()
    files = list(saved.glob("opsconsole-*.log"))
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
