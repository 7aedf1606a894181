"""The harness starts real services; these tests prove each one answers."""

from __future__ import annotations

import socket

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


def test_services_listen_on_loopback_only(supervisord: harness.Supervisord, sshd: harness.Sshd) -> None:
    for port in (supervisord.http_port, sshd.port):
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
