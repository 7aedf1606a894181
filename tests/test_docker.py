"""Docker backend against the real dockerd: directly and over SSH (ssh:// through the loopback sshd)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import harness
from opsconsole.backends.clients import make_host
from opsconsole.backends.docker_engine import DockerClient, compute_stats
from opsconsole.backends.hosts import HostError
from opsconsole.errors import UsageError
from opsconsole.human import parse_time
from opsconsole.profiles import Defaults, DockerConfig, parse_host


@pytest.fixture(scope="module")
def containers(docker_engine: Any) -> Iterator[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:6]
    labels = {
        harness.TEST_LABEL: "1",
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "web",
    }
    web = docker_engine.containers.run(
        harness.IMAGE,
        ["httpd", "-f", "-p", "80", "-h", "/www"],
        detach=True,
        name=f"opsc-web-{suffix}",
        labels=labels,
        ports={"80/tcp": ("127.0.0.1", None)},
        healthcheck={"test": ["CMD", "true"], "interval": 500_000_000, "start_period": 0},
    )
    ticker = docker_engine.containers.run(
        harness.IMAGE,
        ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
        detach=True,
        name=f"opsc-tick-{suffix}",
        labels={harness.TEST_LABEL: "1"},
    )
    stopped = docker_engine.containers.create(
        harness.IMAGE, ["sleep", "1"], name=f"opsc-stopped-{suffix}", labels={harness.TEST_LABEL: "1"}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        web.reload()
        if web.attrs["State"].get("Health", {}).get("Status") == "healthy":
            break
        time.sleep(0.2)
    yield {"web": web.name, "ticker": ticker.name, "stopped": stopped.name}
    for item in (web, ticker, stopped):
        item.remove(force=True)


@pytest.fixture(params=["local", "ssh"])
def client(request: pytest.FixtureRequest) -> DockerClient:
    if request.param == "ssh":
        host = make_host(
            parse_host(request.getfixturevalue("sshd").host), request.getfixturevalue("ssh_defaults")
        )
    else:
        host = make_host(parse_host("local"), Defaults())
    return DockerClient(host, DockerConfig())


def test_lists_running_and_stopped_with_details(client: DockerClient, containers: dict[str, str]) -> None:
    found = {c.name: c for c in client.containers()}
    web = found[containers["web"]]
    assert web.state == "running" and web.health == "healthy"
    assert web.image == harness.IMAGE
    assert web.compose_project == "shop" and web.compose_service == "web"
    assert any(p.startswith("127.0.0.1:") and p.endswith("->80/tcp") for p in web.ports)
    assert web.started_at is not None and web.started_at.startswith("20")
    stopped = found[containers["stopped"]]
    assert stopped.state == "created" and stopped.started_at is None
    assert found[containers["ticker"]].health == "none"


def test_stats_like_docker_stats(client: DockerClient, containers: dict[str, str]) -> None:
    stats = client.stats([containers["ticker"], containers["web"]])
    ticker = stats[containers["ticker"]]
    assert not isinstance(ticker, str)
    assert ticker.memory_bytes > 0 and ticker.memory_limit > 0 and ticker.cpu_percent >= 0
    # the same figures `docker stats` shows (memory moves little in an idle shell loop)
    shown = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", containers["ticker"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used, limit = (_bytes(part) for part in shown.split("/"))
    assert abs(ticker.memory_bytes - used) <= max(1024 * 1024, used * 0.25), (ticker.memory_bytes, shown)
    assert abs(ticker.memory_limit - limit) <= limit * 0.01, (ticker.memory_limit, shown)


def _bytes(text: str) -> float:
    """`1.234MiB` → bytes, as `docker stats` prints them."""
    text = text.strip()
    for unit, factor in (
        ("GiB", 1024**3),
        ("MiB", 1024**2),
        ("KiB", 1024),
        ("kB", 1000),
        ("MB", 1000**2),
        ("GB", 1000**3),
        ("B", 1),
    ):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise AssertionError(f"unparsed size {text!r}")


def test_compute_stats_formula() -> None:
    sample = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 2_000_000},
            "system_cpu_usage": 20_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000}, "system_cpu_usage": 10_000_000},
        "memory_stats": {"usage": 10_000, "limit": 100_000, "stats": {"inactive_file": 2_000}},
    }
    stats = compute_stats("x", sample)
    assert stats.cpu_percent == 20.0 and stats.memory_bytes == 8_000 and stats.memory_percent == 8.0


def test_restart_stop_start(client: DockerClient, containers: dict[str, str], docker_engine: Any) -> None:
    name = containers["ticker"]
    before = docker_engine.containers.get(name).attrs["State"]["StartedAt"]
    client.restart(name)
    assert docker_engine.containers.get(name).attrs["State"]["StartedAt"] != before
    client.stop(name)
    assert docker_engine.containers.get(name).status == "exited"
    client.start(name)
    assert docker_engine.containers.get(name).status == "running"


def test_start_times_are_read_again_only_when_a_container_restarted(
    containers: dict[str, str], docker_engine: Any
) -> None:
    """A refresh lists the containers and inspects only those whose start time may have changed:
    new ones, a changed state, or an "Up …" shorter than the known start allows (a restart)."""
    client = DockerClient(make_host(parse_host("local"), Defaults()), DockerConfig())
    api = client.client().api
    inspected: list[str] = []
    real = api.inspect_container

    def counting(container_id: str) -> Any:
        inspected.append(container_id)
        return real(container_id)

    api.inspect_container = counting
    ours = {docker_engine.containers.get(name).id: name for name in containers.values()}
    by_name = {c.name: c for c in client.containers()}
    assert set(ours) <= set(inspected)  # first list: every start time is read
    inspected.clear()
    again = {c.name: c for c in client.containers()}
    assert not set(ours) & set(inspected)  # nothing changed: no inspect
    assert {n: c.started_at for n, c in again.items()} == {n: c.started_at for n, c in by_name.items()}

    ticker = docker_engine.containers.get(containers["ticker"])
    started = parse_time(ticker.attrs["State"]["StartedAt"])
    assert started is not None
    time.sleep(max(0.0, 5.0 - (time.time() - started.timestamp())))  # a restart must show as one
    ticker.restart(timeout=1)  # by someone else, between two refreshes: the state stays "running"
    inspected.clear()
    after = {c.name: c for c in client.containers()}
    assert [ours[i] for i in inspected if i in ours] == [containers["ticker"]]
    assert (
        after[containers["ticker"]].started_at
        == docker_engine.containers.get(containers["ticker"]).attrs["State"]["StartedAt"]
    )

    ticker.stop(timeout=1)
    inspected.clear()
    stopped = {c.name: c for c in client.containers()}
    assert stopped[containers["ticker"]].state == "exited" and ticker.id in inspected  # state changed
    ticker.start()


def test_unknown_container_is_a_usage_error(client: DockerClient) -> None:
    with pytest.raises(UsageError, match="No such container"):
        client.restart("opsc-does-not-exist")


def test_follow_logs_with_timestamps_and_cancel(client: DockerClient, containers: dict[str, str]) -> None:
    lines: list[str] = []
    cancel = threading.Event()
    thread = threading.Thread(
        target=client.follow_logs,
        args=(containers["ticker"], lines.append),
        kwargs={"tail": 3, "cancel": cancel},
    )
    thread.start()
    deadline = time.monotonic() + 30
    while len(lines) < 6 and time.monotonic() < deadline:  # the 3 of the tail, then new ticks
        time.sleep(0.05)
    cancel.set()
    thread.join(10)
    assert not thread.is_alive()
    assert len(lines) >= 6
    stamp, _, text = lines[-1].partition(" ")
    assert stamp.startswith("20") and text.startswith("tick ")
    ticks = [int(line.split()[-1]) for line in lines[3:]]
    assert ticks == sorted(ticks)


def test_unreachable_daemon_is_reported(tmp_path: Any) -> None:
    client = DockerClient(
        make_host(parse_host("local"), Defaults()), DockerConfig(url=f"unix://{tmp_path}/docker.sock")
    )
    with pytest.raises(
        HostError, match=r"^local: docker at unix://.*does not exist \(is dockerd running\?\)"
    ):
        client.containers()


def test_labels_keep_an_environment_to_its_own_containers(containers: dict[str, str]) -> None:
    """On a shared engine `[docker] labels` lists only the environment's containers, and its
    actions refuse another project's container by name."""
    from opsconsole.errors import OpsError

    host = make_host(parse_host("local"), Defaults())
    mine = DockerClient(host, DockerConfig(labels=("com.docker.compose.project=shop",)))
    names = {c.name for c in mine.containers()}
    assert containers["web"] in names and containers["ticker"] not in names
    with pytest.raises(OpsError, match="not a container of this environment"):
        mine.restart(containers["ticker"])
    with pytest.raises(OpsError, match="not a container of this environment"):
        mine.follow_logs(containers["ticker"], lambda _line: None, follow=False)
    assert mine.inspect(containers["web"])["Name"].lstrip("/") == containers["web"]
    only_key = DockerClient(host, DockerConfig(labels=("com.docker.compose.service",)))
    assert {c.name for c in only_key.containers()} & set(containers.values()) == {containers["web"]}
