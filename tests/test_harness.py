"""The harness starts real services; these tests prove each one answers."""

from __future__ import annotations

import socket
from typing import Any

import paramiko

import harness


def test_supervisord_runs_programs(supervisord: harness.Supervisord) -> None:
    infos = supervisord.proxy().supervisor.getAllProcessInfo()
    names = {f"{p['group']}:{p['name']}": p["statename"] for p in infos}
    assert names["counter:counter"] == "RUNNING" and names["idle:idle"] == "STOPPED"
    assert supervisord.socket_path.exists()


def test_sshd_accepts_the_generated_key(sshd: harness.Sshd) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=sshd.port,
        username="root",
        key_filename=str(sshd.client_key),
        timeout=10,
        allow_agent=False,
        look_for_keys=False,
    )
    _, stdout, _ = client.exec_command("echo hi")
    assert stdout.read().strip() == b"hi"
    client.close()


def test_redis_answers(redis: harness.Redis) -> None:
    assert redis.cli("SET", "k", "v") == "OK" and redis.cli("GET", "k") == "v"


def test_docker_image_runs(docker_engine) -> None:  # type: ignore[no-untyped-def]
    out = docker_engine.containers.run(
        harness.IMAGE, ["echo", "hello"], remove=True, labels={harness.TEST_LABEL: "1"}
    )
    assert out.strip() == b"hello"


def listening(port: int) -> set[str]:
    """The local addresses a TCP port listens on, from /proc/net/tcp and tcp6 (no traffic sent)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hexport = fields[1].split(":")
            if int(hexport, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_services_listen_on_loopback_only(
    supervisord: harness.Supervisord, sshd: harness.Sshd, redis: harness.Redis, sentry_server: Any
) -> None:
    """Each service the tests start listens on 127.0.0.1 and nothing else: never 0.0.0.0 or ::, so
    no other address of this machine reaches it (checked in the kernel's socket table)."""
    ports = {
        "supervisord": supervisord.http_port,
        "sshd": sshd.port,
        "redis": redis.port,
        "sentry stand-in": int(sentry_server.url.rsplit(":", 1)[1]),
    }
    for name, port in ports.items():
        addresses = listening(port)
        assert addresses == {"127.0.0.1"}, f"{name} on port {port} listens on {addresses}"
    with socket.create_connection(("127.0.0.1", sshd.port), timeout=2) as sock:
        assert sock.recv(4).startswith(b"SSH-")  # and it is really there
