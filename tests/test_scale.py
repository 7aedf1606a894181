"""Many hosts: bounded concurrency (`defaults.concurrency`), one SSH connection per host carrying all
its sources, and connections kept between the console's refreshes. The "hosts" are one sshd
configuration answering on many loopback addresses (127.0.1.x), each its own host in the profile."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.profiles import load_profile


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.SshFleet]:
    try:
        ssh_fleet = harness.make_ssh_fleet(tmp_path_factory.mktemp("fleet"), 24)
        ssh_fleet.start()
    except harness.ServiceUnavailable as exc:
        pytest.fail(str(exc))
    yield ssh_fleet
    ssh_fleet.stop()


def fleet_profile(
    fleet: harness.SshFleet, sup: harness.Supervisord, hosts: list[str], tmp: Path, extra: str = ""
) -> str:
    lines = [
        "[defaults]",
        f'known_hosts = "{fleet.sshd.known_hosts}"',
        f'identity_file = "{fleet.sshd.client_key}"',
        extra,
    ]
    for n, host in enumerate(hosts):
        lines += [
            f"[environments.web-{n:02d}]",
            f'hosts = ["{host}"]',
            f"[environments.web-{n:02d}.supervisor]",
            f'url = "{sup.unix_url}"',
            f"[environments.web-{n:02d}.deploy]",
            f'path = "{tmp}/app-{n:02d}"',
            'repo = "unused"',
            f"[environments.web-{n:02d}.logs]",
            f'files = ["{sup.root}/counter.out.log"]',
        ]
    return "\n".join(lines) + "\n"


def test_status_reaches_every_host_over_one_connection_each(
    run_cli, tmp_path: Path, fleet: harness.SshFleet, supervisord: harness.Supervisord
) -> None:
    """24 hosts, 8 at a time: every host reports its processes, deploys and log files, and each host
    was reached over exactly one SSH connection (its three sources share it)."""
    before = fleet.accepted()
    profile = write_profile(
        tmp_path, fleet_profile(fleet, supervisord, fleet.hosts, tmp_path, "concurrency = 8\ntimeout = 10")
    )
    done = run_cli("--profile", str(profile), "status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["environments"]) == 24
    for env in data["environments"].values():
        (host,) = env["hosts"].values()
        assert host["supervisor"]["error"] is None and host["supervisor"]["processes"]
        assert host["deploys"]["error"] is None and host["deploys"]["path_exists"] is False
        assert host["logs"]["error"] is None and host["logs"]["files"]
    harness.wait_for(lambda: fleet.accepted() - before == 24, 5, "the sshd logs")
    assert fleet.accepted() - before == 24


class RecordingBlackhole:
    """A dead host that records when it was contacted: accepts TCP, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.contacted: list[float] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.contacted.append(time.monotonic())
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_dead_hosts_are_contacted_a_few_at_a_time(
    run_cli, tmp_path: Path, fleet: harness.SshFleet, supervisord: harness.Supervisord
) -> None:
    """Nine hosts that never answer, `concurrency = 3`: they are contacted in waves of three (each
    holds its turn for at most the timeout), every one is reported timed out, and status ends."""
    holes = [RecordingBlackhole() for _ in range(9)]
    try:
        hosts = [f"root@127.0.0.1:{hole.port}" for hole in holes]
        profile = write_profile(
            tmp_path, fleet_profile(fleet, supervisord, hosts, tmp_path, "concurrency = 3\ntimeout = 1")
        )
        done = run_cli("--profile", str(profile), "status", "--json")
        assert done.returncode == 4, done.stderr
        data = json.loads(done.stdout)
        for env in data["environments"].values():
            (host,) = env["hosts"].values()
            assert "timed out" in host["supervisor"]["error"], host
        contacted = sorted(t for hole in holes for t in hole.contacted[:1])
        assert len(contacted) == 9
        first_wave = [t for t in contacted if t - contacted[0] < 0.6]
        assert len(first_wave) == 3, [round(t - contacted[0], 2) for t in contacted]
    finally:
        for hole in holes:
            hole.close()


def test_console_keeps_one_connection_per_host_across_refreshes(
    tmp_path: Path, fleet: harness.SshFleet, supervisord: harness.Supervisord
) -> None:
    """The console refreshes 12 SSH hosts every 0.5 s: several refreshes land, over the same 12
    connections."""
    hosts = fleet.hosts[:12]
    path = write_profile(
        tmp_path,
        fleet_profile(fleet, supervisord, hosts, tmp_path, "concurrency = 4\ntimeout = 10\nrefresh = 0.5"),
    )
    before = fleet.accepted()
    app = make_app(load_profile(path))

    async def scenario() -> list[float]:
        async with app.run_test(size=(120, 40)) as pilot:
            first: dict[str, float] = {}
            for _ in range(400):
                await pilot.pause(0.05)
                for env, results in app.results.items():
                    result = results.get(("supervisor", hosts[int(env[-2:])]))
                    if result is not None and result.ok:
                        first.setdefault(env, result.fetched_at)
                if len(first) == 12:
                    break
            assert len(first) == 12, sorted(first)
            for _ in range(100):  # a key press now and then keeps the pace at `refresh`
                await pilot.press("1")
                await pilot.pause(0.1)
                latest = [app.results[env][("supervisor", hosts[int(env[-2:])])].fetched_at for env in first]
                if all(t > first[env] + 1.0 for t, env in zip(latest, first, strict=True)):
                    break
            return [latest[n] - first[env] for n, env in enumerate(first)]

    gaps = asyncio.run(scenario())
    assert all(gap > 1.0 for gap in gaps), gaps
    opened = {
        name: getattr(host, "opened", None)
        for name, host in app.backends.hosts._hosts.items()
        if getattr(host, "opened", None) != ["first use"]
    }
    assert fleet.accepted() - before == 12, f"connections opened again, and why: {opened}"


def test_refreshes_of_many_environments_are_spread_over_the_interval() -> None:
    """Every environment refreshes at once at start; from then on each at its own offset within
    the interval (as Prometheus spreads scrapes), not the whole fleet in one burst each time."""
    from opsconsole.sources.schedule import RefreshSchedule

    schedule = RefreshSchedule(4.0)
    schedule.spread(["a", "b", "c", "d"])
    first = [schedule.next_delay(env, {}) for env in "abcd"]
    assert first == [4.0, 5.0, 6.0, 7.0]  # after the first refresh: 0, 1/4, 2/4, 3/4 of 4 s apart
    schedule.touched()  # someone is looking: no idle stretch
    assert [schedule.next_delay(env, {}) for env in "abcd"] == [4.0] * 4  # then each keeps its phase
    alone = RefreshSchedule(4.0)
    alone.spread(["only"])
    assert alone.next_delay("only", {}) == 4.0
