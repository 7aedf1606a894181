"""`opsconsole status` against real services: JSON schema, exit codes, and a host that never answers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import harness
from conftest import write_profile
from sentry_server import SentryServer


def profile_text(
    sup: harness.Supervisord,
    sshd: harness.Sshd,
    hosts: list[str],
    timeout: float = 2.0,
    extra: str = "",
    health: str = "[]",
) -> str:
    return f"""
[project]
name = "shop"

[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = {timeout}

[environments.staging]
hosts = {json.dumps(hosts)}
health = {health}

[environments.staging.supervisor]
url = "{sup.unix_url}"

[environments.staging.docker]
url = "unix:///var/run/docker.sock"
{extra}
"""


def test_status_json_with_a_host_that_never_answers(
    run_cli,
    tmp_path: Path,
    supervisord: harness.Supervisord,
    sshd: harness.Sshd,
    blackhole: harness.Blackhole,
    docker_engine: Any,
) -> None:
    dead = f"root@127.0.0.1:{blackhole.port}"
    profile = write_profile(tmp_path, profile_text(supervisord, sshd, ["local", dead]))
    started = time.monotonic()
    done = run_cli("--profile", str(profile), "status", "--json")
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    data = json.loads(done.stdout)
    assert data["elapsed_seconds"] <= 2.0 + 1.0
    assert elapsed < 2.0 + 1.0 + 3.0  # plus interpreter start-up
    hosts = data["environments"]["staging"]["hosts"]
    local = hosts["local"]
    assert local["supervisor"]["error"] is None
    names = {p["name"]: p for p in local["supervisor"]["processes"]}
    assert (
        names["counter"]["state"] == "RUNNING"
        and names["counter"]["group"] == "counter"
        and names["counter"]["pid"] > 0
    )
    assert local["docker"]["error"] is None
    for container in local["docker"]["containers"]:
        assert {"name", "state", "health"} <= set(container)
    for source in ("supervisor", "docker"):
        error = hosts[dead][source]["error"]
        assert error.startswith(f"{dead}: ") and "timed out" in error
        assert hosts[dead][source]["processes" if source == "supervisor" else "containers"] == []


def test_status_human_output_and_all_sources(
    run_cli,
    tmp_path: Path,
    supervisord: harness.Supervisord,
    sshd: harness.Sshd,
    sentry_server: SentryServer,
    docker_engine: Any,
) -> None:
    sentry_server.add_issue("TypeError: 'NoneType' object is not subscriptable", count=3)
    deploy_root = tmp_path / "srv"
    extra = f"""
[environments.staging.sentry]
url = "{sentry_server.url}"
organization = "acme"
project = "shop"
environment = "staging"
token = {{ secret = "sentry-token" }}

[environments.staging.deploy]
path = "{deploy_root}"
repo = "unused"

[environments.staging.logs]
files = ["{supervisord.root}/counter.out.log"]
"""
    profile = write_profile(
        tmp_path,
        profile_text(
            supervisord, sshd, ["local", sshd.host], extra=extra, health=f'["{sentry_server.url}/api/0/"]'
        ),
    )
    env = {"OPSCONSOLE_SECRET_SENTRY_TOKEN": sentry_server.token}
    done = run_cli("--profile", str(profile), "status", "--json", env=env)
    assert done.stdout.startswith("{"), done.stderr
    data = json.loads(done.stdout)
    staging = data["environments"]["staging"]
    assert staging["sentry"]["error"] is None and staging["sentry"]["issues"][0]["short_id"] == "SHOP-1"
    health = staging["health"][0]
    # the Sentry stand-in answers an unauthenticated GET with 401: reported as such, and failing
    assert health["status"] == 401 and health["ok"] is False and health["latency_ms"] > 0
    assert staging["hosts"][sshd.host]["supervisor"]["error"] is None
    assert staging["hosts"][sshd.host]["docker"]["error"] is None
    assert (
        staging["hosts"]["local"]["deploys"]["error"] is None
        and staging["hosts"]["local"]["deploys"]["current"] is None
    )
    assert staging["hosts"]["local"]["logs"]["files"][0]["exists"] is True
    human = run_cli("--profile", str(profile), "status", env=env)
    assert "== staging" in human.stdout and "supervisor:" in human.stdout and "SHOP-1" in human.stdout
    assert sentry_server.token not in human.stdout + human.stderr + done.stdout
    # the 404 health check makes nothing unreachable: exit code reflects reachability only
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_status_missing_secret_is_reported_not_fatal(
    run_cli, tmp_path: Path, supervisord: harness.Supervisord, sshd: harness.Sshd
) -> None:
    extra = '\n[environments.staging.sentry]\norganization = "a"\nproject = "b"\ntoken = { secret = "absent-token" }\n'
    text = profile_text(supervisord, sshd, ["local"], extra=extra).replace(
        "[environments.staging.docker]\nurl", "# no docker\n#url"
    )
    profile = write_profile(tmp_path, text)
    done = run_cli("--profile", str(profile), "status", "--json")
    assert done.returncode == 4
    staging = json.loads(done.stdout)["environments"]["staging"]
    assert "OPSCONSOLE_SECRET_ABSENT_TOKEN" in staging["sentry"]["error"]
    assert staging["hosts"]["local"]["supervisor"]["error"] is None
    assert staging["hosts"]["local"]["docker"] == {"containers": [], "error": None, "configured": False}


def test_status_unknown_env_is_usage_error(
    run_cli, tmp_path: Path, supervisord: harness.Supervisord, sshd: harness.Sshd
) -> None:
    profile = write_profile(tmp_path, profile_text(supervisord, sshd, ["local"]))
    done = run_cli("--profile", str(profile), "status", "--env", "stagin")
    assert done.returncode == 2 and "did you mean 'staging'" in done.stderr
