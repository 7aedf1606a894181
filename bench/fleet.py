"""The benchmark fleet: many supervisord programs and hosts (local and through the loopback sshd)."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.common import Config

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
