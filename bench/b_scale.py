"""200 hosts through SSH: the fleet snapshot against a Fabric ThreadingGroup doing the same per-host
work, and the console's memory per extra host (RSS from 10 to 200 hosts).

The hosts are one sshd configuration answering on 200 loopback addresses (127.0.1.1…, each its own
host name in the profile; see harness.SshFleet), with one supervisord reachable from each.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.common import OPSCONSOLE, PYTHON, Config, Result
from bench.terminal import Terminal, tree_cpu_seconds, tree_rss_kib

# the per-host work both sides do: the supervisord's processes and the deploy state of the app
FABRIC_GROUP = textwrap.dedent(
    """
    import json, sys
    from fabric import ThreadingGroup
    spec = json.load(open(sys.argv[1]))
    group = ThreadingGroup(*spec["hosts"], user="root", port=spec["port"],
                           connect_kwargs={"key_filename": spec["key"]})
    for connection in group:
        connection.client.load_host_keys(spec["known_hosts"])
    results = group.run(spec["command"], hide=True, warn=True)
    failed = [c.host for c, r in results.items() if getattr(r, "exited", 1) != 0]
    print(json.dumps({"hosts": len(results), "failed": failed}))
    """
)


def scale_profile(fleet: harness.SshFleet, sup: harness.Supervisord, count: int, path: Path) -> Path:
    lines = [
        "[defaults]",
        f'known_hosts = "{fleet.sshd.known_hosts}"',
        f'identity_file = "{fleet.sshd.client_key}"',
        "timeout = 10",
    ]
    for n, address in enumerate(fleet.addresses[:count]):
        lines += [
            f"[environments.web-{n:03d}]",
            f'hosts = ["root@{address}:{fleet.sshd.port}"]',
            f"[environments.web-{n:03d}.supervisor]",
            f'url = "{sup.unix_url}"',
            f"[environments.web-{n:03d}.deploy]",
            f'path = "{fleet.sshd.root}/app"',
            'repo = "unused"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _fabric(fleet: harness.SshFleet, sup: harness.Supervisord, root: Path) -> float:
    from opsconsole.backends.releases import read_command

    spec = {
        "hosts": fleet.addresses,
        "port": fleet.sshd.port,
        "key": str(fleet.sshd.client_key),
        "known_hosts": str(fleet.sshd.known_hosts),
        "command": f"{PYTHON} -m supervisor.supervisorctl -s unix://{sup.socket_path} status; "
        + read_command(str(fleet.sshd.root / "app")),
    }
    (root / "group.json").write_text(json.dumps(spec))
    (root / "group.py").write_text(FABRIC_GROUP)
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, str(root / "group.py"), str(root / "group.json")], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    report = json.loads(done.stdout or "{}")
    if done.returncode != 0 or report.get("hosts") != len(fleet.addresses) or report.get("failed"):
        raise RuntimeError(f"the Fabric baseline failed: {done.stderr[-2000:]} {report}")
    return elapsed


def _settled(term: Terminal, quiet: float = 0.3, limit: float = 120.0) -> None:
    """Until the console's CPU stays under `quiet` s per 2 s: the first refresh of every host landed."""
    deadline = time.monotonic() + limit
    last = tree_cpu_seconds(term.pid)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = tree_cpu_seconds(term.pid)
        if now - last < quiet:
            return
        last = now


def bench_scale(cfg: Config, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    fleet = harness.make_ssh_fleet(root / "sshd", cfg.scale_hosts)
    programs = [harness.Program(f"p{n:02d}", "/bin/sleep 36000", group="app") for n in range(cfg.programs)]
    sup = harness.make_supervisord(root / "sup", programs)
    try:
        fleet.start()
        sup.start()
        sup.wait_running([f"app:p{n:02d}" for n in range(cfg.programs)], timeout=60)
        profile = scale_profile(fleet, sup, cfg.scale_hosts, root / "scale.toml")
        fabric = _fabric(fleet, sup, root)
        before = fleet.accepted()
        started = time.perf_counter()
        done = subprocess.run(
            [OPSCONSOLE, "--profile", str(profile), "status", "--json"], capture_output=True, text=True
        )
        ours = time.perf_counter() - started
        data = json.loads(done.stdout)
        reached = sum(
            1
            for env in data["environments"].values()
            for host in env["hosts"].values()
            if host["supervisor"]["error"] is None and len(host["supervisor"]["processes"]) == cfg.programs
        )
        if done.returncode != 0 or reached != cfg.scale_hosts:
            errors = [
                source["error"]
                for env in data["environments"].values()
                for host in env["hosts"].values()
                for source in (host["supervisor"], host["deploys"])
                if source["error"]
            ]
            raise RuntimeError(f"status reached {reached} of {cfg.scale_hosts} hosts: {errors[:5]}")
        connections = fleet.accepted() - before
        cfg.results.append(
            Result(
                f"8. fleet snapshot, {cfg.scale_hosts} hosts through SSH, vs a Fabric ThreadingGroup",
                ours,
                fabric,
                "s",
                "ratio <= 0.5",
                ours <= 0.5 * fabric,
                f"status --json, concurrency 32, {connections} SSH connections for {cfg.scale_hosts} hosts "
                "(supervisor + deploy state each); ThreadingGroup: one thread per host, "
                "supervisorctl status + the same deploy-state command",
            )
        )
        small = scale_profile(fleet, sup, cfg.scale_small, root / "small.toml")
        rss: dict[int, float] = {}
        for count, path in ((cfg.scale_small, small), (cfg.scale_hosts, profile)):
            term = Terminal([OPSCONSOLE, "--profile", str(path)], size=(120, 40))
            try:
                term.wait_for("web-003", timeout=60)
                _settled(term)
                rss[count] = tree_rss_kib(term.pid)
            finally:
                term.close()
        per_host = (rss[cfg.scale_hosts] - rss[cfg.scale_small]) / (cfg.scale_hosts - cfg.scale_small)
        cfg.results.append(
            Result(
                f"9. console memory per extra host ({cfg.scale_small} → {cfg.scale_hosts} hosts)",
                per_host,
                150,
                "KiB",
                "<= 150 KiB/host",
                per_host <= 150,
                f"RSS after the first refreshes settled: {rss[cfg.scale_small] / 1024:.1f} MiB at "
                f"{cfg.scale_small} hosts, {rss[cfg.scale_hosts] / 1024:.1f} MiB at {cfg.scale_hosts}",
            )
        )
    finally:
        sup.stop()
        fleet.stop()
