"""systemd units against a real systemd (PID 1 in a container, reached over the SSH layer): the
units with their state, failed and missing ones, restart, the journal followed through a
reconnect, and `deploy.restart` with a `systemd:` target. One container for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

import systemd_harness
from conftest import _unavailable, write_profile
from harness import ServiceUnavailable, wait_for
from opsconsole.backends import systemd as sd
from opsconsole.profiles import parse_profile_text
from opsconsole.profiles.model import SystemdConfig

if TYPE_CHECKING:
    from rich.text import Text

    from opsconsole.backends.hosts import Host

UNITS = '["demo", "flaky.service", "broken", "nosuch.service", "shop-*", "zz-*", "fast-tick", "bytes"]'


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[systemd_harness.SystemdHost]:
    try:
        server = systemd_harness.start_systemd(tmp_path_factory.mktemp("systemd"))
    except ServiceUnavailable as exc:
        _unavailable(exc)
    # a quick ticker (the follow test needs lines faster than demo's one per 5 s), and a unit whose
    # message is not UTF-8 (the journal then stores MESSAGE as an array of bytes) and one at `err`
    server.exec(
        "systemd-run --quiet --unit=fast-tick sh -c 'i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done'"
    )
    server.exec(
        "systemd-run --quiet --unit=bytes sh -c \"printf 'caf\\351 latin1\\n<3>disk failing\\n'; sleep 600\""
    )
    yield server
    server.stop()


def profile_text(box: systemd_harness.SystemdHost, *, protected: bool = False, extra: str = "") -> str:
    return f"""
[defaults]
known_hosts = "{box.known_hosts}"
identity_file = "{box.client_key}"
timeout = 10

[environments.staging]
hosts = ["{box.host}"]
protected = {str(protected).lower()}

[environments.staging.systemd]
units = {UNITS}
{extra}
"""


def connect(box: systemd_harness.SystemdHost, user: str = "root") -> Host:
    """An SSH host of the SSH layer, to the container, as `user`."""
    from opsconsole.backends.clients import make_host
    from opsconsole.profiles import Defaults
    from opsconsole.profiles.convert import parse_host

    defaults = Defaults(known_hosts=str(box.known_hosts), identity_file=str(box.client_key), timeout=10.0)
    return make_host(parse_host(f"{user}@127.0.0.1:{box.port}"), defaults)


@pytest.fixture
def profile(tmp_path: Path, box: systemd_harness.SystemdHost) -> Path:
    return write_profile(tmp_path, profile_text(box))


@pytest.fixture
def audit(tmp_path: Path) -> dict[str, str]:
    return {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}


def test_status_lists_units_failed_first_and_names_missing(
    run_cli: Any, profile: Path, box: systemd_harness.SystemdHost
) -> None:
    done = run_cli("--profile", str(profile), "status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    systemd = data["environments"]["staging"]["hosts"][box.host]["systemd"]
    assert systemd["error"] is None and systemd["version"] >= 246
    units = {u["unit"]: u for u in systemd["units"]}
    demo = units["demo.service"]
    assert (demo["active"], demo["sub"]) == ("active", "running") and demo["pid"] > 1
    assert demo["description"] == "Demo ticker service" and demo["since"] > 1_600_000_000
    assert demo["restarts"] == 0 and (demo["memory"] is None or demo["memory"] > 0)
    assert "shop-web.service" in units  # the glob expanded on the host
    broken = units["broken.service"]
    assert broken["failed"] and broken["active"] == "failed" and "failed" in broken["problem"]
    missing = units["nosuch.service"]
    assert missing["load"] == "not-found" and missing["failed"]
    assert missing["problem"] == "no such unit on this host"
    failed_first = [u["failed"] for u in systemd["units"]]
    assert failed_first == sorted(failed_first, reverse=True)
    assert "no unit matches 'zz-*'" in systemd["notes"]
    text = run_cli("--profile", str(profile), "status")
    assert "    systemd:    " in text.stdout and "failed or missing" in text.stdout
    assert "✗ broken.service: failed/failed" in text.stdout and "demo.service" not in text.stdout
    assert "✗ nosuch.service: inactive/dead - no such unit on this host" in text.stdout


def test_a_host_without_systemd_says_so_not_zero_units() -> None:
    from opsconsole.backends.hosts import LocalHost
    from opsconsole.profiles.convert import parse_host

    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this machine runs systemd as PID 1")
    with pytest.raises(sd.SystemdError, match="no systemd here"):
        sd.read_units(LocalHost(parse_host("local"), 5.0), SystemdConfig(units=("demo.service",)))


def test_globs_that_match_nothing_are_an_error_not_zero_units(box: systemd_harness.SystemdHost) -> None:
    host = connect(box)
    try:
        with pytest.raises(sd.SystemdError, match=r"none of the profile's units .*no unit matches 'zz-\*'"):
            sd.read_units(host, SystemdConfig(units=("zz-*",)))
    finally:
        host.close()


def test_restart_changes_main_pid_with_the_exact_command_and_typed_confirm(
    run_cli: Any, tmp_path: Path, box: systemd_harness.SystemdHost, audit: dict[str, str]
) -> None:
    protected = write_profile(tmp_path, profile_text(box, protected=True), "prod")
    before = box.show("shop-web.service", "MainPID")
    plan = run_cli(
        "--profile", str(protected), "restart", "staging", "systemd:shop-web", "--dry-run", env=audit
    )
    assert plan.returncode == 0, plan.stderr
    assert "systemctl restart -- shop-web.service" in plan.stdout
    refused = run_cli(
        "--profile", str(protected), "restart", "staging", "systemd:shop-web", "--yes", env=audit
    )
    assert refused.returncode == 3 and "--confirm staging" in refused.stderr
    assert box.show("shop-web.service", "MainPID") == before
    done = run_cli(
        "--profile",
        str(protected),
        "restart",
        "staging",
        "systemd:shop-web",
        "--confirm",
        "staging",
        env=audit,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    after = box.show("shop-web.service", "MainPID")
    assert after not in (before, "0") and box.show("shop-web.service", "ActiveState") == "active"
    assert "active/running, pid " + after in done.stdout + done.stderr
    records = [json.loads(line) for line in Path(audit["OPSCONSOLE_AUDIT_LOG"]).read_text().splitlines()]
    assert [(r["action"], r["target"]) for r in records if r["phase"] == "end"] == [
        ("restart", "systemd:shop-web")
    ]


def test_sudo_that_wants_a_password_is_said(box: systemd_harness.SystemdHost) -> None:
    """A non-root user with sudo that asks for a password: the change is refused with the reason."""
    box.exec(
        "id ops >/dev/null 2>&1 || useradd -m -s /bin/sh ops; mkdir -p /home/ops/.ssh; "
        "cp /root/.ssh/authorized_keys /home/ops/.ssh/; chown -R ops /home/ops/.ssh; "
        "echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops; chmod 440 /etc/sudoers.d/ops"
    )
    host = connect(box, "ops")
    try:
        with pytest.raises(sd.SystemdError, match="sudo asks for a password") as caught:
            sd.change(host, SystemdConfig(units=("shop-web",), sudo=True), "restart", "shop-web")
        assert "sudo -n systemctl restart -- shop-web.service" in caught.value.message
    finally:
        host.close()


def test_logs_follow_reads_the_journal_and_survives_a_reconnect(
    profile: Path, box: systemd_harness.SystemdHost, audit: dict[str, str]
) -> None:
    import signal

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--profile",
            str(profile),
            "logs",
            "staging",
            "systemd:fast-tick",
        ]
        + ["-n", "3", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **audit},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def ticks() -> list[int]:
        return [int(line.rsplit("tick ", 1)[1]) for line in list(lines) if "tick " in line]

    def alive() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"logs -f exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        return True

    try:
        wait_for(lambda: alive() and len(ticks()) >= 8, 30, "the journal's first lines")
        box.drop_ssh()
        seen = len(ticks())
        wait_for(lambda: len(ticks()) >= seen + 10, 30, "lines after the reconnect")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        reader.join(5)
    numbers = ticks()
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost, none twice
    assert " info " in next(line for line in lines if "tick " in line)  # the priority is shown
    assert "reconnecting" in proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode in (0, 130)


def test_journal_bytes_message_and_priority(box: systemd_harness.SystemdHost) -> None:
    host = connect(box)
    got: list[sd.JournalEntry] = []
    config = SystemdConfig(units=())
    try:
        deadline = time.monotonic() + 20
        while not any("disk failing" in e.message for e in got) and time.monotonic() < deadline:
            got.clear()
            sd.follow_journal(host, config, "bytes", got.append, lines=10, follow=False)
    finally:
        host.close()
    latin = next(e for e in got if e.message.startswith("caf"))
    assert latin.message == "caf\ufffd latin1"  # MESSAGE came as an array of byte values
    failing = next(e for e in got if e.message == "disk failing")
    assert failing.priority == 3 and failing.urgent and " err " in failing.line()


def test_deploy_restart_with_a_systemd_target(
    run_cli: Any, tmp_path: Path, box: systemd_harness.SystemdHost, audit: dict[str, str]
) -> None:
    """`deploy.restart = ["systemd:shop-web"]`: its plan step is the systemctl command, and a real
    deploy over SSH to the systemd host switches the release and restarts the unit (a new MainPID)."""
    from opsconsole.actions.deploy.host import restart_steps
    from test_actions import git

    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("VERSION = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    box.copy_in(repo, "/srv/app-repo")
    deploy = (
        '\n[environments.staging.deploy]\npath = "/srv/shop"\nrepo = "/srv/app-repo"\nbranch = "main"\n'
        'build = ["cat app.py"]\nrestart = ["systemd:shop-web"]\n'
    )
    profile = write_profile(tmp_path, profile_text(box, extra=deploy))
    env = parse_profile_text(profile.read_text(), profile).env("staging")
    assert env.deploy is not None
    steps = restart_steps(env, env.hosts[0], env.deploy)
    assert [s.text for s in steps] == ["systemctl restart -- shop-web.service"]
    before = box.show("shop-web.service", "MainPID")
    done = run_cli("--profile", str(profile), "deploy", "staging", "--yes", env=audit)
    assert done.returncode == 0, done.stdout + done.stderr
    after = box.show("shop-web.service", "MainPID")
    assert after not in (before, "0") and box.show("shop-web.service", "ActiveState") == "active"
    assert "VERSION = 1" in box.exec("cat /srv/shop/current/app.py")
    assert f"pid {after}" in done.stdout + done.stderr


def test_profile_units_validated(tmp_path: Path) -> None:
    from opsconsole.errors import ProfileError

    text = '[environments.e]\nhosts = ["local"]\n[environments.e.systemd]\nunits = ["shop-web", "a@1", "x-*"]\nuser = true\n'
    env = parse_profile_text(text, tmp_path / "p.toml").env("e")
    assert env.systemd == SystemdConfig(units=("shop-web.service", "a@1.service", "x-*"), user=True)
    assert sd.journal_command(env.systemd, "shop-web", lines=5, follow=True) == (
        "journalctl --user-unit=shop-web.service -o json --no-pager -n 5 -f"
    )
    for bad, said in (
        ('["-x"]', "is not a unit name"),
        ("[]", "at least one unit"),
        ('["a b"]', "is not a unit"),
    ):
        with pytest.raises(ProfileError, match=said):
            parse_profile_text(text.replace('["shop-web", "a@1", "x-*"]', bad), tmp_path / "p.toml")


def test_show_without_unix_timestamps_reads_the_monotonic_fields() -> None:
    """systemd < 251 refuses --timestamp=unix: the monotonic fields and the host's uptime give the time."""
    text = (
        "Id=web.service\nActiveState=active\nSubState=running\nMainPID=12\nNRestarts=2\n"
        "ExecMainStartTimestamp=Thu 2026-12-03 10:00:00 UTC\nExecMainStartTimestampMonotonic=5000000\n"
        "MemoryCurrent=[not set]\nLoadState=loaded\n\n"
        "Id=gone.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n"
    )
    web, gone = sd.parse_show(text, "h", plain=True, now=1000.0, uptime=105.0)
    assert (web.pid, web.restarts, web.since, web.memory) == (12, 2, 900, None)
    assert gone.missing and gone.failed and gone.since is None
    assert sd.parse_entry('{"MESSAGE": [104, 105], "PRIORITY": "6", "__CURSOR": "c"}').message == "hi"  # type: ignore[union-attr]
    assert sd.parse_entry('{"MESSAGE": {"x": 1}}').message == ""  # type: ignore[union-attr]
    assert sd.parse_entry("[1]") is None and sd.parse_entry("not json") is None


def test_units_pane_puts_failed_units_first_and_marks_them() -> None:
    from opsconsole.actions.targets import selection_target
    from opsconsole.panes.spec import PaneData
    from opsconsole.panes.units import SPEC
    from opsconsole.sources.fanout import SourceResult

    def unit(name: str, active: str, sub: str, load: str = "loaded") -> sd.UnitInfo:
        return sd.UnitInfo(
            "web-1", name, f"{name} here", load, active, sub, "", 7, 3, 1_700_000_000, 3 << 20, ""
        )

    report = sd.UnitsReport(
        "web-1",
        [unit("ok.service", "active", "running"), unit("bad.service", "failed", "failed")],
        252,
        ["no unit matches 'x-*'"],
    )
    data = PaneData([(("systemd", "web-1"), SourceResult(data=report))], {}, frozenset(), 1_700_000_100.0)
    rows = SPEC.rows(data)
    cells = [[cast("Text", c) for c in r.cells] for r in rows]
    assert [r[0].plain for r in cells] == ["✗ bad.service", "ok.service"]
    assert cells[0][2].plain == "failed/failed" and "red" in str(cells[0][2].style)
    assert [c.plain for c in cells[1][3:7]] == ["7", "3", cells[1][5].plain, "3.0M"]
    assert SPEC.note is not None and SPEC.note(data) == "web-1: no unit matches 'x-*'"
    kind, _host, item = rows[0].data
    assert (kind, selection_target(kind, item)) == ("unit", "systemd:bad.service")


async def test_console_units_pane_restart_and_journal(
    tmp_path: Path, box: systemd_harness.SystemdHost, audit: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the console: the Units pane (8) lists the units failed first; `r` on a unit shows the
    systemctl command and restarts it; `l` opens its journal."""
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.action_screen import ActionScreen
    from opsconsole.screens.log_screen import LogScreen
    from opsconsole.widgets.log_view import LogView
    from opsconsole.widgets.pane import Pane
    from test_console import confirm_open, pane_keys, wait_until

    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", audit["OPSCONSOLE_AUDIT_LOG"])
    app = make_app(load_profile(write_profile(tmp_path, profile_text(box))))
    web = f"{box.host}|shop-web.service"
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("7")  # the Units tab follows the six built-in ones: this profile has no Nginx
        await wait_until(pilot, lambda: web in pane_keys(app, "units"), what="the units")
        keys = pane_keys(app, "units")
        assert keys.index(f"{box.host}|broken.service") < keys.index(f"{box.host}|demo.service")
        before = box.show("shop-web.service", "MainPID")
        table = app.screen.query_one("#units", Pane).table
        table.move_cursor(row=keys.index(web))
        await pilot.press("r")
        await wait_until(pilot, lambda: confirm_open(app), what="confirmation")
        await pilot.press("v")
        assert "systemctl restart -- shop-web.service" in str(app.screen.query_one("#plan-text").render())
        await pilot.click("#run")
        await wait_until(pilot, lambda: isinstance(app.screen, ActionScreen), what="action screen")
        await wait_until(pilot, lambda: any(r.outcome is not None for r in app.runs.values()), what="restart")
        assert all(r.outcome is not None and r.outcome.ok for r in app.runs.values())
        assert box.show("shop-web.service", "MainPID") != before
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ActionScreen), what="back")
        table = app.screen.query_one("#units", Pane).table
        table.move_cursor(row=pane_keys(app, "units").index(f"{box.host}|fast-tick.service"))
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), what="log screen")
        view = app.screen.query_one(LogView)
        await wait_until(pilot, lambda: sum("tick " in line.text for line in view.lines) > 5, what="journal")
        await pilot.press("q")


def test_a_systemctl_without_unix_timestamps_is_read_again_without_them(
    box: systemd_harness.SystemdHost,
) -> None:
    """systemd < 251 refuses `--timestamp=unix`: a systemctl that does is asked again without it,
    and the start times come from the monotonic fields, the same to a few seconds."""
    host = connect(box)
    config = SystemdConfig(units=("demo.service",))
    try:
        (new,) = sd.read_units(host, config).units
        # /usr/local/bin comes first on an SSH session's PATH
        box.exec(
            "printf '%s\\n' '#!/bin/sh' 'for a; do [ \"$a\" = --timestamp=unix ] && "
            '{ echo "systemctl: unrecognized option $a" >&2; exit 1; }; done\' '
            "'exec /usr/bin/systemctl \"$@\"' > /usr/local/bin/systemctl && chmod +x /usr/local/bin/systemctl"
        )
        try:
            again = sd.read_units(host, config)
            (old,) = again.units
        finally:
            box.exec("rm -f /usr/local/bin/systemctl")
    finally:
        host.close()
    assert again.monotonic and old.pid == new.pid and old.active == new.active == "active"
    assert new.since is not None and old.since is not None and abs(old.since - new.since) <= 3
