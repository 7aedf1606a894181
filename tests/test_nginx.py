"""Nginx against a real server: a reverse proxy on loopback (tests/nginx_harness.py) in front of a
Supervisor program (`shop-web`, python's http.server), read over the local host connection.

One Nginx and one supervisord serve the whole module; the tests run in file order and each leaves
both as it found them (config valid, shop-web RUNNING).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
import nginx_harness
from conftest import write_profile
from opsconsole.backends.clients import Backends
from opsconsole.backends.nginx import read_nginx
from opsconsole.commands.status import cmd_status
from opsconsole.panes.nginx import rows_nginx
from opsconsole.panes.spec import PaneData
from opsconsole.profiles import load_profile
from opsconsole.sources.model import ReadModel
from opsconsole.sources.summary import summarize


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[harness.Supervisord, nginx_harness.Nginx]]:
    root = tmp_path_factory.mktemp("nginx-stack")
    port = harness.free_port()
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("hello from shop-web\n")
    sup = harness.make_supervisord(
        root / "sup",
        [
            harness.Program(
                "shop-web", f"{{python}} -m http.server {port} --bind 127.0.0.1 --directory {root}/site"
            )
        ],
    )
    server: nginx_harness.Nginx | None = None
    try:
        sup.start()
        sup.wait_running(["shop-web:shop-web"])
        server = nginx_harness.make_nginx(root / "nginx", port)
        server.start()
        harness.wait_for(lambda: nginx_harness.get(server.url + "/")[0] == 200, 10, "shop-web through nginx")
    except harness.ServiceUnavailable as exc:
        if server is not None:
            server.stop()
        sup.stop()
        if os.environ.get("CI"):
            pytest.fail(f"service unavailable under CI: {exc}")
        pytest.skip(str(exc))
    yield sup, server
    server.stop()
    sup.stop()


def profile_text(sup: harness.Supervisord, server: nginx_harness.Nginx, extra: str = "") -> str:
    return f"""
[environments.shop]
hosts = ["local"]
{extra}
[environments.shop.supervisor]
url = "{sup.unix_url}"

[environments.shop.nginx]
prefix = "{server.prefix}"
config = "{server.conf}"
access_log = "{server.access_log}"
error_log = "{server.error_log}"
status_url = "{server.status_url}"
upstreams = {{ "127.0.0.1:{server.upstream}" = "supervisor:shop-web" }}
"""


@pytest.fixture
def profile_path(tmp_path: Path, stack: tuple[harness.Supervisord, nginx_harness.Nginx]) -> Path:
    return write_profile(tmp_path, profile_text(*stack))


@pytest.fixture
def audit(tmp_path: Path) -> dict[str, str]:
    return {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}


def status_json(profile: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    args = argparse.Namespace(profile=str(profile), envs=["shop"], json=True, stats=False)
    cmd_status(args)
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out["environments"]["shop"]["hosts"]["local"]  # type: ignore[no-any-return]


def test_config_test_passes_then_names_the_broken_directive(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx], profile_path: Path
) -> None:
    _sup, server = stack
    env = load_profile(profile_path).env("shop")
    assert env.nginx is not None
    backends = Backends(load_profile(profile_path))
    try:
        host = backends.host(env.hosts[0])
        good = read_nginx(host, env.nginx, logs=False)
        assert good.config_ok and good.error is None
        assert good.master_pid == server.master
        assert list(good.workers) == server.workers()
        server.break_config()
        try:
            bad = read_nginx(host, env.nginx, logs=False)
        finally:
            server.write_config()
        assert not bad.config_ok
        assert bad.error is not None and 'directive "worker_processes" is not terminated' in bad.error
        assert bad.master_pid == server.master  # the running server is untouched
    finally:
        backends.close()


def test_counts_stub_status_and_the_502s_upstream_mapped_to_the_stopped_program(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx],
    profile_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sup, server = stack
    assert nginx_harness.get(server.url + "/index.html")[0] == 200
    assert nginx_harness.get(server.url + "/no-such-page")[0] == 404
    sup.proxy().supervisor.stopProcess("shop-web:shop-web")
    try:
        assert nginx_harness.get(server.url + "/cart")[0] == 502
        assert nginx_harness.get(server.url + "/cart")[0] == 502

        host = status_json(profile_path, capsys)
        nginx = host["nginx"]
        assert nginx["config_ok"] is True and nginx["error"] is None
        assert nginx["master_pid"] == server.master
        counts = nginx["status_counts"]
        assert counts["2xx"] >= 1 and counts["4xx"] >= 1 and counts["5xx"] >= 2
        assert nginx["top_failing"][0] == {"path": "/cart", "status": 502, "count": counts["5xx"]}
        assert {"path": "/no-such-page", "status": 404, "count": 1} in nginx["top_failing"]
        stub = nginx["stub_status"]
        assert stub["requests"] >= 4 and stub["active"] >= 1
        (upstream,) = nginx["upstream_errors"]
        assert upstream["upstream"] == f"127.0.0.1:{server.upstream}"
        assert upstream["count"] >= 2 and "Connection refused" in upstream["reason"]
        assert upstream["target"] == "supervisor:shop-web" and upstream["target_state"] == "STOPPED"

        # the read model: the environment list's badge, and the pane's upstream row (with the process,
        # so `r` restarts it)
        profile = load_profile(profile_path)
        model = ReadModel(Backends(profile))
        try:
            state = model.collect(["shop"])
        finally:
            model.close()
            model.clients.close()
        results = state.of("shop")
        fives = f"nginx: {counts['5xx']} 5xx in 5 min"
        assert fives in summarize(results).badges()
        rows = rows_nginx(PaneData(list(results.items()), {}, frozenset(), 0.0))
        row = next(r for r in rows if r.key == f"local|upstream 127.0.0.1:{server.upstream}")
        assert "502s: shop-web (supervisor) is STOPPED" in str(row.cells[3])
        kind, _host, proc = row.data
        assert kind == "process" and proc.full_name == "shop-web:shop-web"
    finally:
        sup.proxy().supervisor.startProcess("shop-web:shop-web")
    harness.wait_for(lambda: nginx_harness.get(server.url + "/")[0] == 200, 10, "shop-web back")


async def test_console_pane_names_the_stopped_program_and_offers_its_restart_and_the_reload(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx], profile_path: Path
) -> None:
    from textual.widgets import TabbedContent

    from opsconsole.app import make_app
    from opsconsole.screens.confirm import ConfirmScreen
    from opsconsole.widgets.pane import Pane
    from test_console import confirm_open, pane_keys, pane_texts, wait_until
    from test_console_keys import header

    sup, server = stack
    sup.proxy().supervisor.stopProcess("shop-web:shop-web")
    try:
        assert nginx_harness.get(server.url + "/checkout")[0] == 502
        app = make_app(load_profile(profile_path))
        row_key = f"local|upstream 127.0.0.1:{server.upstream}"
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_until(pilot, lambda: row_key in pane_keys(app, "nginx"), what="the upstream row")
            await pilot.press("7")
            assert app.screen.query_one(TabbedContent).active == "tab-nginx"
            assert any("502s: shop-web (supervisor) is STOPPED" in t for t in pane_texts(app, "nginx"))
            assert "5xx in 5 min" in header(app)
            table = app.screen.query_one("#nginx", Pane).table
            table.move_cursor(row=pane_keys(app, "nginx").index(row_key))
            await pilot.press("r")
            await wait_until(
                pilot, lambda: confirm_open(app), what="restart's confirmation"
            )
            assert "Restart supervisor:shop-web:shop-web in shop" in str(
                app.screen.query_one("#plan-text").render()
            )
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancel")
            await pilot.press("o")
            await wait_until(
                pilot, lambda: confirm_open(app), what="reload's confirmation"
            )
            assert "nginx -t" in str(app.screen.query_one("#plan-text").render())
            await pilot.press("escape")
    finally:
        sup.proxy().supervisor.startProcess("shop-web:shop-web")
    harness.wait_for(lambda: nginx_harness.get(server.url + "/")[0] == 200, 10, "shop-web back")


def test_reload_is_refused_on_a_broken_config_and_the_server_keeps_serving(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx],
    profile_path: Path,
    run_cli: Any,
    audit: dict[str, str],
) -> None:
    _sup, server = stack
    workers = server.workers()
    server.break_config()
    try:
        result = run_cli("--profile", str(profile_path), "reload", "shop", "--yes", env=audit)
    finally:
        server.write_config()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "reload refused" in result.stderr and "is not terminated" in result.stderr + result.stdout
    assert server.workers() == workers  # never signalled
    assert nginx_harness.get(server.url + "/index.html")[0] == 200

    read_only = run_cli(
        "--profile", str(profile_path), "reload", "shop", "--yes", env={**audit, "OPSCONSOLE_READ_ONLY": "1"}
    )
    assert read_only.returncode == 3 and server.workers() == workers


def test_reload_keeps_the_master_and_starts_new_workers(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx],
    profile_path: Path,
    run_cli: Any,
    audit: dict[str, str],
) -> None:
    _sup, server = stack
    master, workers = server.master, server.workers()
    result = run_cli("--profile", str(profile_path), "reload", "shop", "--yes", env=audit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"master {master} kept" in result.stdout
    new = nginx_harness.wait_worker_change(server, workers)
    assert server.master == master and server.proc is not None and server.proc.poll() is None
    assert not set(new) & set(workers)
    assert nginx_harness.get(server.url + "/index.html")[0] == 200
    records = [json.loads(line) for line in Path(audit["OPSCONSOLE_AUDIT_LOG"]).read_text().splitlines()]
    assert any(r.get("action") == "reload" for r in records), records  # audited like every action


def test_profile_checks_the_nginx_keys() -> None:
    from opsconsole.errors import ProfileError
    from opsconsole.profiles import parse_profile_text

    text = """
[environments.a.nginx]
window = 0
log_format = '(?P<code>\\d+)'
upstreams = { "127.0.0.1:8000" = "shop-web" }
"""
    with pytest.raises(ProfileError) as info:
        parse_profile_text(text, Path("profiles") / "x.toml")
    problems = "\n".join(info.value.problems)
    assert "'environments.a.nginx.window' must be minutes above 0" in problems
    assert "needs the named group(s) (?P<status>...)" in problems
    assert "as supervisor:NAME or docker:NAME or systemd:NAME (got 'shop-web')" in problems
    good = parse_profile_text(
        '[environments.a.nginx]\nupstreams = { "127.0.0.1:8000" = "supervisor:shop-web" }\n', Path("x.toml")
    )
    nginx = good.env("a").nginx
    assert nginx is not None and nginx.access_log == "/var/log/nginx/access.log" and nginx.window == 5.0


def test_read_over_ssh_with_stub_status_through_the_connection(
    stack: tuple[harness.Supervisord, nginx_harness.Nginx],
    sshd: harness.Sshd,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same read over the SSH layer: the script runs there, stub_status comes through a
    direct-tcpip channel of the host's connection (no curl needed on the host)."""
    sup, server = stack
    text = profile_text(sup, server).replace('hosts = ["local"]', f'hosts = ["{sshd.host}"]')
    text = f'[defaults]\nknown_hosts = "{sshd.known_hosts}"\nidentity_file = "{sshd.client_key}"\n' + text
    args = argparse.Namespace(
        profile=str(write_profile(tmp_path, text)), envs=["shop"], json=True, stats=False
    )
    cmd_status(args)
    nginx = json.loads(capsys.readouterr().out)["environments"]["shop"]["hosts"][sshd.host]["nginx"]
    assert nginx["config_ok"] is True and nginx["master_pid"] == server.master, nginx
    assert nginx["stub_status"] is not None and nginx["stub_status"]["requests"] >= 1, nginx
    assert nginx["status_counts"]["2xx"] >= 1


def test_logs_are_read_from_the_end_within_the_cap_and_the_window(tmp_path: Path) -> None:
    """A log larger than the cap: only its end is read (and the pane says how far back it reaches);
    lines older than the window are not counted. Nginx itself need not run for this."""
    import time as _time

    from opsconsole.backends.hosts import LocalHost
    from opsconsole.backends.nginx import LOG_CAP
    from opsconsole.profiles.model import HostSpec, NginxConfig

    def line(when: float, status: int, path: str) -> str:
        stamp = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime(when))
        return f'127.0.0.1 - - [{stamp}] "GET {path} HTTP/1.1" {status} 5 "-" "t"\n'

    now = _time.time()
    old = line(now - 3600, 500, "/old") * 10  # an hour ago: outside the 5 minutes
    recent = line(now - 60, 200, "/") + line(now - 30, 503, "/api")
    filler = line(now - 120, 200, "/fill")
    count = (LOG_CAP + LOG_CAP // 2) // len(filler)
    access = tmp_path / "access.log"
    access.write_text(old + filler * count + recent)
    error = tmp_path / "error.log"
    error.write_text("")
    config = NginxConfig(binary="/bin/false", access_log=str(access), error_log=str(error))
    status = read_nginx(LocalHost(HostSpec("local", "local"), 5.0), config)
    counts = status.status_counts
    assert counts["5xx"] == 1  # /api, not the old 500s
    assert counts["2xx"] < count  # the file's start was never read
    assert counts["2xx"] >= LOG_CAP // len(filler) - 2
    assert status.top_failing[0].path == "/api" and status.top_failing[0].status == 503
    assert not any("/old" == f.path for f in status.top_failing)
    assert any(f"only its last {LOG_CAP // 1024} KiB were read" in note for note in status.notes)
    assert not status.config_ok  # /bin/false is no nginx: the test fails, and says so
