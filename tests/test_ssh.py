"""SSH host access: host keys verified against known_hosts, unknown and changed keys refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.backends.clients import make_host
from opsconsole.backends.hosts import CommandFailed, HostError
from opsconsole.profiles import Defaults, parse_host


def test_known_host_connects_and_runs(sshd: harness.Sshd, ssh_defaults: Defaults) -> None:
    host = make_host(parse_host(sshd.host), ssh_defaults)
    result = host.run("echo hi; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "hi\n", "err\n")
    with pytest.raises(CommandFailed, match="exited with 3"):
        host.run("exit 3", check=True)
    host.close()


def test_unknown_host_key_is_refused_with_how_to_trust_it(sshd: harness.Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = make_host(
        parse_host(sshd.host), Defaults(known_hosts=str(empty), identity_file=str(sshd.client_key))
    )
    with pytest.raises(HostError) as info:
        host.run("true")
    message = info.value.message
    assert "unknown host key" in message and "refusing to connect" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message


def test_changed_host_key_is_refused(sshd: harness.Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = (other.with_suffix(".pub")).read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    host = make_host(
        parse_host(sshd.host), Defaults(known_hosts=str(known), identity_file=str(sshd.client_key))
    )
    log = sshd.root / "sshd.log"
    accepted = log.read_text().count("Accepted publickey")
    with pytest.raises(HostError, match="does not match known_hosts.*ssh-keygen -R"):
        host.run("true")
    host.close()
    # the key check comes before authentication: no session was ever opened on that server
    assert log.read_text().count("Accepted publickey") == accepted


def test_dead_and_refused_hosts_fail_within_the_timeout(blackhole: harness.Blackhole, tmp_path: Path) -> None:
    import time

    defaults = Defaults(known_hosts=str(tmp_path / "kh"), timeout=1.0)
    dead = make_host(parse_host(f"root@127.0.0.1:{blackhole.port}"), defaults)
    started = time.monotonic()
    with pytest.raises(HostError, match=rf"^root@127.0.0.1:{blackhole.port}: ssh: "):
        dead.run("true")
    assert time.monotonic() - started < 3.0
    with harness.closed_port() as port:
        refused = make_host(parse_host(f"root@127.0.0.1:{port}"), defaults)
        with pytest.raises(HostError, match="connection refused"):
            refused.run("true")
    refused = make_host(parse_host("root@127.0.0.1:1"), defaults)  # port 1: nothing listens there
    with pytest.raises(HostError, match="connection refused"):
        refused.run("true")


def test_ssh_config_alias_is_honoured(
    run_cli, sshd: harness.Sshd, supervisord: harness.Supervisord, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host shop-web\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {sshd.client_key}\n"
    )
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts.read_text())
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[defaults]\nuser = "nobody"\n[environments.s]\nhosts = ["shop-web"]\n'
        f'[environments.s.supervisor]\nurl = "{supervisord.unix_url}"\n'
    )
    done = run_cli("--profile", str(profile), "status", "--json", env={"HOME": str(home)})
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr
    import json

    host = json.loads(done.stdout)["environments"]["s"]["hosts"]["shop-web"]
    assert host["supervisor"]["error"] is None and host["supervisor"]["processes"]


SESSIONS = ""  # (set to "max_sessions = 100\n" to see the test fail as the console did before)


async def test_four_environments_on_one_default_sshd_never_exhaust_its_sessions(
    tmp_path: Path, supervisord: harness.Supervisord, docker_engine: Any
) -> None:
    """Small teams run staging and production side by side on one server. Four environments on one
    default-configured sshd (MaxSessions 10), each with Supervisor, Docker and deploys, refreshing
    every second, Containers shown (stats sampled), and a deploy from the console: sshd never has
    to refuse a session, and the deploy succeeds."""
    import asyncio

    from textual.widgets import Button

    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.action_screen import ActionScreen
    from opsconsole.screens.confirm import ConfirmScreen
    from test_actions import git

    server = harness.make_sshd(tmp_path / "default-sshd", max_sessions=None)
    server.start()
    try:
        repo = tmp_path / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "app.py").write_text("print('hi')\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "one")
        envs = ""
        for name in ("staging", "production", "qa", "demo"):
            envs += f"""
[environments.{name}]
hosts = ["{server.host}"]
[environments.{name}.supervisor]
url = "{supervisord.unix_url}"
[environments.{name}.docker]
url = "unix:///var/run/docker.sock"
[environments.{name}.deploy]
path = "{tmp_path}/srv/{name}"
repo = "{repo}"
build = ["echo built"]
"""
        profile = write_profile(
            tmp_path,
            f'[defaults]\nknown_hosts = "{server.known_hosts}"\nidentity_file = "{server.client_key}"\n'
            f"timeout = 10\nrefresh = 1.0\n{SESSIONS}{envs}",
        )
        app = make_app(load_profile(profile))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")  # Containers: stats are sampled on every refresh
            for env in ("production", "qa", "demo"):
                app.refresh_env(env)
            await asyncio.sleep(6)  # several rounds of every source of every environment
            await pilot.press("D")
            for _ in range(100):
                if isinstance(app.screen, ConfirmScreen):
                    break
                await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.pause(0.2)
            app.screen.query_one("#run", Button).press()
            for _ in range(600):
                if any(r.outcome is not None for r in app.runs):
                    break
                await pilot.pause(0.1)
            runs = list(app.runs)
            notes = [n.message for n in app._notifications]  # type: ignore[attr-defined]
            assert len(runs) == 1, (type(app.screen).__name__, notes)
            (run,) = runs
            assert isinstance(app.screen, ActionScreen)
            assert run.outcome is not None and run.outcome.ok, run.outcome
        log = (server.root / "sshd.log").read_text()
        assert "no more sessions" not in log, log[-2000:]
    finally:
        server.stop()
