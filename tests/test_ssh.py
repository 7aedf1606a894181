"""SSH host access: host keys verified against known_hosts, unknown and changed keys refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness
from opsconsole.backends.hosts import CommandFailed, HostError, make_host
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
    with pytest.raises(HostError, match="does not match known_hosts.*ssh-keygen -R"):
        host.run("true")


def test_dead_and_refused_hosts_fail_within_the_timeout(blackhole: harness.Blackhole, tmp_path: Path) -> None:
    import time

    defaults = Defaults(known_hosts=str(tmp_path / "kh"), timeout=1.0)
    dead = make_host(parse_host(f"root@127.0.0.1:{blackhole.port}"), defaults)
    started = time.monotonic()
    with pytest.raises(HostError, match=rf"^root@127.0.0.1:{blackhole.port}: ssh: "):
        dead.run("true")
    assert time.monotonic() - started < 3.0
    refused = make_host(parse_host(f"root@127.0.0.1:{harness.free_port()}"), defaults)
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
