"""`opsconsole profile init HOST...` against the loopback sshd, the test supervisord and dockerd.

The sshd's sessions see a private, empty /srv (a tmpfs in their own mount namespace) holding one
deploy layout; everything else they see is this machine: its processes, its Docker socket.
"""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from opsconsole.backends.clients import make_host
from opsconsole.backends.discover import DISCOVERY_SCRIPT, Findings, Layout, Supervisord, parse_report
from opsconsole.backends.shell import quote
from opsconsole.commands.profile_init import EnvPlan, HostPlan, group, render, schema_keys
from opsconsole.profiles import Defaults, parse_host, parse_profile_text

RELEASE = "20261203T101500Z"


@pytest.fixture(scope="module")
def srv_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Sshd]:
    """A loopback sshd whose sessions see their own /srv, holding /srv/shop with a release."""
    root = tmp_path_factory.mktemp("init-sshd")
    try:
        server = harness.make_sshd(root, private_dir=Path("/srv"))
        server.start()
    except harness.ServiceUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"service unavailable under CI: {exc}")
        pytest.skip(str(exc))
    defaults = Defaults(known_hosts=str(server.known_hosts), identity_file=str(server.client_key))
    host = make_host(parse_host(server.host), defaults)
    try:
        host.run(
            f"mkdir -p /srv/shop/releases/{RELEASE} /srv/shop/.opsconsole/repo.git && "
            f"ln -s releases/{RELEASE} /srv/shop/current && : > /srv/shop/.opsconsole/deploys.jsonl && "
            "printf '[remote \"origin\"]\\n\\turl = https://deployer:tok3n-value@git.example.com/shop.git\\n' "
            "> /srv/shop/.opsconsole/repo.git/config",
            timeout=10,
            check=True,
        )
    finally:
        host.close()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def compose_container(docker_engine: Any) -> Iterator[tuple[str, str]]:
    project = f"opsc-init-{uuid.uuid4().hex[:6]}"
    container = docker_engine.containers.run(
        harness.IMAGE,
        ["sleep", "600"],
        detach=True,
        name=f"{project}-web-1",
        labels={harness.TEST_LABEL: "1", "com.docker.compose.project": project},
    )
    yield project, container.name
    container.remove(force=True)


def test_init_writes_a_profile_status_reads(
    run_cli: Any,
    tmp_path: Path,
    srv_sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    compose_container: tuple[str, str],
    refused_port: int,
) -> None:
    project, container = compose_container
    target = tmp_path / "out" / "shop.toml"
    (tmp_path / "fabfile.py").write_text("from fabric import task\n")
    down = f"root@127.0.0.1:{refused_port}"
    args = [
        "profile",
        "init",
        srv_sshd.host,
        down,
        "--known-hosts",
        str(srv_sshd.known_hosts),
        "--identity-file",
        str(srv_sshd.client_key),
        # other supervisords may run on this machine: the test's own is chosen among those found
        "--supervisor-config",
        str(supervisord.conf),
        "-o",
        str(target),
    ]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"{down}: NOT REACHED" in done.stdout and "connection refused" in done.stdout
    assert f"wrote {target}" in done.stdout
    assert "fabfile.py" in done.stdout
    text = target.read_text()
    data = tomllib.loads(text)
    env = data["environments"]["production"]
    assert env["hosts"] == [srv_sshd.host]  # the unreachable host is named in a comment, not kept
    assert f"NOT REACHED, left out: {down}" in text
    assert env["supervisor"]["url"] == supervisord.unix_url  # found from its process's -c config
    assert env["docker"]["url"] == "unix:///var/run/docker.sock"
    assert project in text  # the compose project, named in the docker block's comment
    assert env["deploy"]["path"] == "/srv/shop"
    assert env["deploy"]["repo"] == "https://git.example.com/shop.git"  # the token is not copied
    assert '# strategy = "fabric"' in text
    assert data["project"]["name"] == "shop"
    for secret in (supervisord.password, "tok3n-value"):
        assert secret not in text and secret not in done.stdout

    valid = run_cli("profile", "validate", str(target))
    assert valid.returncode == 0, valid.stderr

    status = run_cli("--profile", str(target), "status", "--json")
    assert status.returncode in (0, 1), status.stderr
    host = json.loads(status.stdout)["environments"]["production"]["hosts"][srv_sshd.host]
    assert host["supervisor"]["error"] is None
    programs = {f"{p['group']}:{p['name']}" for p in host["supervisor"]["processes"]}
    assert {"counter:counter", "sleeper:sleeper", "web:web_0"} <= programs
    assert host["docker"]["error"] is None
    assert container in {c["name"] for c in host["docker"]["containers"]}
    assert host["deploys"]["current"] == RELEASE

    again = run_cli(*args)
    assert again.returncode == 2
    assert str(target) in again.stderr and "never overwrites" in again.stderr
    assert tomllib.loads(target.read_text()) == data


def test_hosts_are_grouped_by_what_they_run(
    run_cli: Any, tmp_path: Path, srv_sshd: harness.Sshd, supervisord: harness.Supervisord
) -> None:
    """Two names of the /srv sshd see the same things (one environment); `local` sees this
    machine's own /srv, without the deploy folder (an environment of its own)."""
    alias = f"root@localhost:{srv_sshd.port}"
    known = tmp_path / "known_hosts"
    line = srv_sshd.known_hosts.read_text()
    known.write_text(line + line.replace("[127.0.0.1]", "[localhost]", 1))
    done = run_cli(
        "profile", "init", srv_sshd.host, alias, "local", "--known-hosts", str(known),
        "--identity-file", str(srv_sshd.client_key), "--supervisor-config", str(supervisord.conf), "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    envs = tomllib.loads(done.stdout)["environments"]
    assert envs["production"]["hosts"] == [srv_sshd.host, alias]
    assert envs["production"]["deploy"]["path"] == "/srv/shop"
    assert envs["production-local"]["hosts"] == ["local"]
    assert "deploy" not in envs["production-local"]
    assert f"environment production: {srv_sshd.host}, {alias} (they run the same programs)" in done.stderr
    assert "environments of their own" in done.stderr
    assert f"# {srv_sshd.host}, {alias} run the same programs: one environment" in done.stdout


def test_unknown_host_key_is_refused_with_the_keyscan_hint(
    run_cli: Any, tmp_path: Path, srv_sshd: harness.Sshd
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = tmp_path / "new.toml"
    done = run_cli(
        "profile", "init", srv_sshd.host, "--known-hosts", str(empty), "--identity-file", str(srv_sshd.client_key),
        "-o", str(target),
    )  # fmt: skip
    assert done.returncode == 4
    assert f"ssh-keyscan -p {srv_sshd.port} 127.0.0.1 >> {empty}" in done.stdout
    assert "nothing written" in done.stdout and not target.exists()
    assert empty.read_text() == ""


def test_dry_run_prints_the_profile_and_writes_nothing(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "fabfile.py").write_text("from fabric import task\n")
    done = run_cli("profile", "init", "local", "--name", "here", "--env", "staging", "--dry-run")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(done.stdout)
    assert data["environments"]["staging"]["hosts"] == ["local"]
    assert data["environments"]["staging"]["protected"] is False
    assert list(tmp_path.glob("*.toml")) == [] and "local: reached" in done.stderr
    assert '# strategy = "fabric"' in done.stdout


def test_script_never_sends_a_password(supervisord: harness.Supervisord) -> None:
    host = make_host(parse_host("local"), Defaults())
    out = host.run(f"sh -c {quote(DISCOVERY_SCRIPT)}", timeout=20).stdout
    assert str(supervisord.conf) in out and "[inet_http_server]" in out
    assert supervisord.password not in out


REPORT = """\x1eopsc:id
deploy
/home/deploy
\x1eopsc:procs
\x1eopsc:proc 41
/usr/bin/python3 /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf
\x1eopsc:config 41 /etc/supervisor/supervisord.conf
[inet_http_server]
port = *:9001
username = ops
password = <not read>
[program:worker]
command = x
\x1eopsc:include 41 /etc/supervisor/conf.d/web.conf
[program:web_0]
[program:web_1]
[group:web]
programs = web_0,web_1
\x1eopsc:docker
\x1eopsc:layouts
/srv/shop\treleases/1\tno\t
\x1eopsc:systemd
shop-web.service
shop-web.service
bad name.service
\x1eopsc:nginx
/usr/sbin/nginx
name shop.example.com
name _
name ~^regex$
tls
access_log /var/log/nginx/shop.access.log
error_log /var/log/nginx/shop.error.log
\x1eopsc:end
"""


def test_report_parsing_and_grouping() -> None:
    found = parse_report("web-1", REPORT)
    sup = found.supervisords[0]
    assert (sup.url, sup.username) == ("http://127.0.0.1:9001", "ops")
    assert sup.config_programs == ["worker", "web:web_0", "web:web_1"]
    assert found.layouts == [Layout("/srv/shop", "releases/1", False, None)]
    assert (found.server_names, found.tls, found.docker_socket) == (["shop.example.com"], True, False)

    twin = parse_report("web-2", REPORT)
    other = Findings(host="db-1", supervisords=[Supervisord(pid=7, command="", config="/c", url="unix:///s")])
    plans = [
        HostPlan(parse_host(h), f, s)
        for h, f, s in (("web-1", found, sup), ("web-2", twin, twin.supervisords[0]))
    ]
    plans[0].layout = plans[1].layout = found.layouts[0]
    plans.append(HostPlan(parse_host("db-1"), other, other.supervisords[0]))
    envs = group(plans, "production")
    assert [(e.name, [h.spec.raw for h in e.hosts]) for e in envs] == [
        ("production", ["web-1", "web-2"]),
        ("production-db-1", ["db-1"]),
    ]
    text, secrets = render(
        "shop", envs, Defaults(), {"web-3": "web-3: ssh: connection refused"}, "init", False
    )
    profile = parse_profile_text(text, Path("shop.toml"))
    supervisor = profile.env("production").supervisor
    assert supervisor is not None and supervisor.username == "ops"
    assert (
        supervisor.password is not None
        and supervisor.password.name == secrets[0] == "shop-production-supervisor"
    )
    assert profile.env("production").deploy is None  # the repo is unknown: offered commented out
    assert "# [environments.production.deploy]" in text
    assert '# health = ["https://shop.example.com/"]' in text
    assert "web-1, web-2 run the same programs" in text
    assert [h.raw for h in profile.env("production-db-1").hosts] == ["db-1"]
    assert isinstance(envs[0], EnvPlan)
    assert found.access_logs == ["/var/log/nginx/shop.access.log"]
    assert found.units == ["shop-web.service"]
    if "units" in schema_keys("systemd"):  # the systemd source is in this opsconsole
        systemd: Any = getattr(profile.env("production"), "systemd", None)
        assert systemd is not None and systemd.units == ("shop-web.service",)
    elif not schema_keys("systemd"):
        assert "[environments.production.systemd]" not in text
    nginx = getattr(profile.env("production"), "nginx", None)
    if schema_keys("nginx"):  # the Nginx source is in this opsconsole: its section is written
        assert nginx is not None and nginx.access_log == "/var/log/nginx/shop.access.log"
        assert nginx.binary == "/usr/sbin/nginx"
    else:
        assert nginx is None and "[environments.production.nginx]" not in text


def test_several_supervisords_and_here_paths() -> None:
    from opsconsole.commands.profile_init import _choose

    report = (
        "\x1eopsc:proc 10\nsupervisord -c /etc/supervisord.conf\n"
        "\x1eopsc:config 10 /etc/supervisord.conf\n[unix_http_server]\nfile=/run/a.sock\n"
        "\x1eopsc:proc 20\nsupervisord -c /home/app/sv/supervisord.conf\n"
        "\x1eopsc:config 20 /home/app/sv/supervisord.conf\n[unix_http_server]\nfile = %(here)s/sv.sock ; ours\n"
        "\x1eopsc:proc 30\nsupervisord -c /root/s.conf\n\x1eopsc:unreadable 30 /root/s.conf\n"
        "\x1eopsc:end\n"
    )
    found = parse_report("web-1", report)
    assert [s.url for s in found.supervisords] == ["unix:///run/a.sock", "unix:///home/app/sv/sv.sock", None]
    assert found.supervisords[2].problem == "its config /root/s.conf is not readable by the SSH user"
    plan = _choose(parse_host("web-1"), found, None)
    assert plan.supervisord is found.supervisords[0]
    assert any("2 supervisords run" in line and "--supervisor-config" in line for line in plan.undecided)
    assert any("/root/s.conf is not readable" in line for line in plan.undecided)
    chosen = _choose(parse_host("web-1"), found, "/home/app/sv/supervisord.conf")
    assert chosen.supervisord is found.supervisords[1]
    assert not any("supervisords run" in line for line in chosen.undecided)
    missing = _choose(parse_host("web-1"), found, "/nope.conf")
    assert missing.supervisord is None and "no supervisord runs with" in missing.undecided[0]


def test_a_section_whose_required_key_is_unknown_is_offered_commented_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.commands import profile_init

    monkeypatch.setattr(profile_init, "schema_keys", lambda section: {"units": False, "bus": True})
    env = EnvPlan(
        "production", [HostPlan(parse_host("web-1"), Findings(host="web-1", units=["shop.service"]))]
    )
    lines = profile_init._systemd_lines(env)
    assert "# fill in bus, then uncomment:" in lines
    assert '# units = ["shop.service"]' in lines and "# [environments.production.systemd]" in lines
    assert not any(line.startswith(("units", "[")) for line in lines)
