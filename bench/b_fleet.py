"""Fleet snapshot against a shell loop and a Fabric script; status with dead hosts."""

from __future__ import annotations

import json
import statistics
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.common import OPSCONSOLE, PYTHON, Config, Result
from bench.fleet import Fleet
from bench.terminal import Terminal


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
