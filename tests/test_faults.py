"""Fault and abuse suite (`pytest -m faults`): real services broken on purpose, hostile input.

Each test documents one row of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from conftest import write_profile
from opsconsole.actions.base import ActionContext, Target
from opsconsole.actions.deploy import DeployAction
from opsconsole.actions.deploy.host import HostDeploy
from opsconsole.actions.events import Outcome
from opsconsole.actions.runner import ActionRun
from opsconsole.backends.clients import Backends, make_host
from opsconsole.backends.hosts import HostError
from opsconsole.backends.ssh import SshHost
from opsconsole.backends.supervisor import SupervisorClient
from opsconsole.errors import ExitCode, ProfileError
from opsconsole.profiles import Defaults, SupervisorConfig, load_profile, parse_host, parse_profile_text
from opsconsole.sources.model import ReadModel
from opsconsole.widgets.pane import Pane
from test_actions import git

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parent.parent
TOKEN = "sntrys_fault_token_5e5e5e5e"


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('v1')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    return repo


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[harness.Sshd]:
    """An sshd of this test's own (its sessions get killed on purpose)."""
    server = harness.make_sshd(tmp_path / "own-sshd")
    try:
        server.start()
    except harness.ServiceUnavailable as exc:
        pytest.fail(str(exc)) if os.environ.get("CI") else pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def second_host(tmp_path: Path, sshd: harness.Sshd) -> Iterator[harness.Sshd]:
    """A second "host": an sshd whose sessions see their own filesystem under tmp_path/srv.

    It accepts the main sshd's client key, and `tmp_path/known_hosts` trusts both hosts."""
    server = harness.make_sshd(tmp_path / "host2-sshd", private_dir=tmp_path / "srv")
    with (server.root / "authorized_keys").open("a") as keys:
        keys.write(sshd.client_key.with_suffix(".pub").read_text())
    (tmp_path / "known_hosts").write_text(sshd.known_hosts.read_text() + server.known_hosts.read_text())
    try:
        server.start()
    except harness.ServiceUnavailable as exc:
        pytest.fail(str(exc)) if os.environ.get("CI") else pytest.skip(str(exc))
    yield server
    server.stop()


def deploy_profile(
    tmp_path: Path, sshd: harness.Sshd, hosts: list[str], repo: Path, build: list[str], extra: str = ""
) -> Path:
    known_hosts = tmp_path / "known_hosts" if (tmp_path / "known_hosts").exists() else sshd.known_hosts
    return write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 5
[environments.staging]
hosts = {json.dumps(hosts)}
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
build = {json.dumps(build)}
{extra}
""",
    )


def _shows(pane: Pane, text: str) -> bool:
    return text in str(pane.status_text)


def run(profile_path: Path, action_id: str = "deploy", **options: Any) -> tuple[Outcome, list[Any], Backends]:
    profile = load_profile(profile_path)
    backends = Backends(profile)
    action = DeployAction(ActionContext(profile, backends), Target(env="staging", options=options))
    events: list[Any] = []
    runner = ActionRun(action, approved=True)
    for event in runner.events():
        events.append(event)
    assert runner.outcome is not None
    return runner.outcome, events, backends


# ------------------------------------------------------------------------ faults


def test_dead_refused_and_unresolvable_hosts_each_report_their_own_error(
    tmp_path: Path,
    supervisord: harness.Supervisord,
    sshd: harness.Sshd,
    blackhole: harness.Blackhole,
    monkeypatch: pytest.MonkeyPatch,
    refused_port: int,
) -> None:
    refused = f"root@127.0.0.1:{refused_port}"
    dead = f"root@127.0.0.1:{blackhole.port}"
    text = f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 2
[environments.staging]
hosts = ["local", "{dead}", "{refused}", "root@db.unresolvable.invalid", "{sshd.host}"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
"""
    real_getaddrinfo = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".invalid"):  # DNS that fails, without sending a query anywhere
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    backends = Backends(load_profile(write_profile(tmp_path, text)))
    started = time.monotonic()
    results = ReadModel(backends).collect(["staging"]).of("staging")
    assert time.monotonic() - started < 2 + 1.0
    errors = {key[1]: result.error for key, result in results.items() if key[0] == "supervisor"}
    assert errors["local"] is None and errors[sshd.host] is None
    assert results[("supervisor", "local")].data and results[("supervisor", sshd.host)].data
    dead_error = errors[dead]
    assert dead_error is not None and dead_error.startswith(f"{dead}: ") and "timed out" in dead_error
    assert errors[refused] == f"{refused}: ssh: connection refused"
    assert (
        errors["root@db.unresolvable.invalid"]
        == "root@db.unresolvable.invalid: ssh: cannot resolve host name (Name or service not known)"
    )
    backends.close()


def test_ssh_killed_mid_build_fails_cleanly_and_a_rerun_succeeds(
    tmp_path: Path, own_sshd: harness.Sshd, app_repo: Path
) -> None:
    started = tmp_path / "build-started"
    profile = deploy_profile(
        tmp_path, own_sshd, [own_sshd.host], app_repo, [f"echo start; touch {started}; sleep 20; echo never"]
    )
    root = tmp_path / "srv" / "shop"
    done: list[Outcome] = []

    def deploy() -> None:
        outcome, _evs, backends = run(profile)
        done.append(outcome)
        backends.close()

    thread = threading.Thread(target=deploy)
    thread.start()
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:  # the build is running now
        time.sleep(0.05)
    assert started.exists(), "the build never started"
    own_sshd.kill_sessions()  # the SSH connection dies in the middle of the build
    thread.join(60)
    (outcome,) = done
    assert not outcome.ok and outcome.exit_code == ExitCode.FAILED
    assert "connection lost" in outcome.message
    assert not (root / "current").exists()  # no host switched
    assert not (root / ".opsconsole" / "lock").exists()  # released over a new connection
    records = [json.loads(line) for line in (root / ".opsconsole" / "deploys.jsonl").read_text().splitlines()]
    assert records[-1]["outcome"] == "failed"
    assert list((root / "releases").iterdir()) == []
    quick = deploy_profile(tmp_path, own_sshd, [own_sshd.host], app_repo, ["echo fine"])
    again, _, backends = run(quick)
    backends.close()
    assert again.ok, again.message
    assert (root / "current").is_symlink()


def test_every_host_builds_before_any_switch_and_a_failed_build_switches_none(
    tmp_path: Path, sshd: harness.Sshd, second_host: harness.Sshd, app_repo: Path
) -> None:
    marker = tmp_path / "fail-on-host2"
    # host 2 sees an empty tmpfs at tmp_path/srv: the marker file is outside it, visible to both
    build = [f"if [ -e {tmp_path}/srv/.host2 ] && [ -e {marker} ]; then echo host2 breaks; exit 9; fi"]
    profile = deploy_profile(tmp_path, sshd, ["local", second_host.host], app_repo, build)
    root = tmp_path / "srv" / "shop"
    ok, _, backends = run(profile)
    backends.close()
    assert ok.ok, ok.message
    first = os.readlink(root / "current")
    Backends(load_profile(profile)).host(parse_host(second_host.host)).run(
        f"touch {tmp_path}/srv/.host2", check=True
    )
    marker.write_text("")
    failed, _, backends = run(profile)
    backends.close()
    assert not failed.ok and "exit 9" in failed.message
    assert os.readlink(root / "current") == first  # host 1 built fine but did not switch
    host2 = make_host(
        parse_host(second_host.host),
        Defaults(known_hosts=str(tmp_path / "known_hosts"), identity_file=str(sshd.client_key)),
    )
    assert host2.run(f"readlink {root}/current").stdout.strip() == first


def test_ssh_dying_during_the_switch_reports_which_host_runs_what(
    tmp_path: Path,
    sshd: harness.Sshd,
    second_host: harness.Sshd,
    app_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = deploy_profile(tmp_path, sshd, ["local", second_host.host], app_repo, ["echo built"])
    ok, _, backends = run(profile)
    backends.close()
    assert ok.ok, ok.message
    root = tmp_path / "srv" / "shop"
    previous = os.readlink(root / "current").split("/")[-1]
    original = HostDeploy.step

    def step(
        self: HostDeploy, label: str, command: str, stream: bool = False, timeout: float | None = None
    ) -> str:
        if label.startswith("switch current") and isinstance(self.host, SshHost):
            # the SSH connection dies while host 2 is switching (the switch waits a second first)
            threading.Timer(0.5, second_host.kill_sessions).start()
            command = f"sleep 1 && {command}"
        return original(self, label, command, stream, timeout)

    monkeypatch.setattr(HostDeploy, "step", step)
    outcome, _, backends = run(profile)
    backends.close()
    assert not outcome.ok
    assert "while switching" in outcome.message and "rollback" in outcome.message
    assert outcome.hosts["local"] == f"runs releases/{previous}"  # host 1 was switched back
    assert previous in outcome.hosts[second_host.host]
    assert os.readlink(root / "current").split("/")[-1] == previous


def test_follow_survives_supervisord_restart(tmp_path: Path) -> None:
    sup = harness.make_supervisord(
        tmp_path / "sup", [harness.Program("counter", "{python} -u {root}/counter.py 50")]
    )
    sup.start()
    try:
        client = SupervisorClient(
            make_host(parse_host("local"), Defaults(timeout=2)), SupervisorConfig(url=sup.unix_url)
        )
        chunks: list[str] = []
        notices: list[str] = []
        cancel = threading.Event()
        thread = threading.Thread(
            target=client.follow_log,
            args=("counter", chunks.append),
            kwargs={"cancel": cancel, "poll": 0.1, "on_notice": notices.append},
        )
        thread.start()

        def until(check: Any, what: str, seconds: float = 30) -> None:
            end = time.monotonic() + seconds
            while not check():
                assert time.monotonic() < end, f"timed out waiting for {what}"
                time.sleep(0.05)

        until(lambda: "".join(chunks).count("\n") >= 20, "lines before the restart")
        sup.stop()
        until(lambda: any("retrying until it is back" in n for n in notices), "the retry notice")
        before = "".join(chunks)
        sup.start()
        sup.wait_running(["counter:counter"])
        until(lambda: any("is back" in n for n in notices), "the resume notice")
        until(lambda: "".join(chunks).count("\n") >= before.count("\n") + 20, "lines after the restart")
        cancel.set()
        thread.join(15)
        assert not thread.is_alive()
        # both runs of the program arrive whole and in order: 1, 2, 3... then 1, 2, 3... again
        numbers = [int(line.split()[1]) for line in "".join(chunks).splitlines() if line.startswith("line ")]
        restart = next(i for i in range(1, len(numbers)) if numbers[i] < numbers[i - 1])
        first, second = numbers[:restart], numbers[restart:]
        assert first == list(range(first[0], first[0] + len(first)))
        assert second == list(range(1, len(second) + 1))
    finally:
        sup.stop()


class UnixProxy:
    """A unix socket in front of dockerd's: stopping it is, for a client, dockerd going away."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self.server: socket.socket | None = None
        self.running = False
        self.open: list[socket.socket] = []

    def start(self) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(16)
        self.running = True
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while self.running:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self.running = False
        if self.server is not None:
            self.server.close()
        for sock in self.open:  # established connections die with it, as with a stopped dockerd
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self.open = []
        self.path.unlink(missing_ok=True)


async def test_containers_pane_shows_dockerd_gone_and_recovers(
    tmp_path: Path, docker_engine: Any, supervisord: harness.Supervisord
) -> None:
    from opsconsole.app import make_app
    from test_console import pane_keys, wait_until

    proxy = UnixProxy(tmp_path / "d.sock")
    proxy.start()
    container = docker_engine.containers.run(
        harness.IMAGE, ["sleep", "300"], detach=True, labels={harness.TEST_LABEL: "1"}
    )
    text = f"""
[defaults]
refresh = 1
timeout = 2
[environments.staging]
hosts = ["local"]
[environments.staging.docker]
url = "unix://{proxy.path}"
"""
    app = make_app(load_profile(write_profile(tmp_path, text)))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            await wait_until(
                pilot, lambda: f"local|{container.name}" in pane_keys(app, "containers"), what="containers"
            )
            proxy.stop()
            pane = app.screen.query_one("#containers", Pane)
            await wait_until(
                pilot, lambda: "✗ local: docker" in str(pane.status_text), timeout=15, what="error shown"
            )  # type: ignore[attr-defined]
            proxy.start()
            await wait_until(
                pilot,
                lambda: (
                    "✗" not in str(pane.status_text)
                    and f"local|{container.name}" in pane_keys(app, "containers")
                ),
                timeout=15,
                what="recovery",
            )
    finally:
        container.remove(force=True)
        proxy.stop()


async def test_sentry_faults_show_in_the_errors_pane(
    tmp_path: Path, sentry_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.app import make_app
    from sentry_server import Forced
    from test_console import wait_until

    monkeypatch.setenv("OPSCONSOLE_SECRET_SENTRY_TOKEN", sentry_server.token)
    sentry_server.add_issue("Boom")
    text = f"""
[defaults]
refresh = 60
timeout = 1
[environments.staging]
hosts = []
[environments.staging.sentry]
url = "{sentry_server.url}"
organization = "acme"
project = "shop"
token = {{ secret = "sentry-token" }}
"""
    app = make_app(load_profile(write_profile(tmp_path, text)))
    cases = [
        (Forced(500, b'{"detail": "Internal Error"}'), "HTTP 500"),
        (Forced(200, b"{not json"), "not JSON"),
        (Forced(200, b"[]", delay=2.0), "timed out after 1 s"),
    ]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        pane = app.screen.query_one("#errors", Pane)
        await wait_until(pilot, lambda: "1 issue ·" in str(pane.status_text), what="issues")  # type: ignore[attr-defined]
        for forced, expected in cases:
            sentry_server.force(forced)
            app.refresh_env("staging")
            await wait_until(pilot, partial(_shows, pane, expected), what=expected)
        sentry_server.force(Forced(429, b"{}", {"Retry-After": "0.1"}))
        app.refresh_env("staging")
        await wait_until(
            pilot, lambda: "rate limited (429); backed off" in str(pane.status_text), what="429 note"
        )  # type: ignore[attr-defined]


def test_two_processes_deploy_at_once_exactly_one_proceeds(
    tmp_path: Path, sshd: harness.Sshd, app_repo: Path
) -> None:
    profile = deploy_profile(tmp_path, sshd, [sshd.host], app_repo, ["sleep 3"])
    env = {**os.environ, "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    command = [sys.executable, "-m", "opsconsole", "--profile", str(profile), "deploy", "staging", "--yes"]
    first = subprocess.Popen(
        [*command, "--reason", "first"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "OPSCONSOLE_USER": "ann"},
    )
    second = subprocess.Popen(
        [*command, "--reason", "second"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "OPSCONSOLE_USER": "bob"},
    )
    results = [(p.wait(60), p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 3]
    loser_err = next(out[1] for code, out in results if code == 3)
    assert "the deploy lock is held by" in loser_err and ("ann@" in loser_err or "bob@" in loser_err)
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    ends = [r for r in records if r["phase"] == "end"]
    assert sorted(r["outcome"] for r in ends) == ["refused", "success"]
    assert {r["run"] for r in records if r["phase"] == "start"} == {r["run"] for r in ends}


def _mount(fs_args: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", *fs_args, "opsc-audit", str(target)], check=True)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a small tmpfs"
)
@pytest.mark.parametrize("kind", ["full", "read-only", "not-a-directory"])
def test_unwritable_audit_log_refuses_before_any_change(
    tmp_path: Path, sshd: harness.Sshd, app_repo: Path, run_cli: Any, kind: str
) -> None:
    profile = deploy_profile(tmp_path, sshd, ["local"], app_repo, ["echo built"])
    mountpoint = tmp_path / "auditfs"
    try:
        if kind == "full":
            _mount(["-o", "size=64k"], mountpoint)
            filler = mountpoint / "filler"
            with filler.open("wb") as handle:
                try:
                    handle.write(b"x" * (1 << 20))
                except OSError:
                    pass
            audit = mountpoint / "audit.jsonl"
        elif kind == "read-only":
            _mount(["-o", "ro,size=64k"], mountpoint)
            audit = mountpoint / "audit.jsonl"
        else:
            mountpoint.mkdir()
            (mountpoint / "file").write_text("")
            audit = mountpoint / "file" / "audit.jsonl"
        done = run_cli(
            "--profile", str(profile), "deploy", "staging", "--yes", env={"OPSCONSOLE_AUDIT_LOG": str(audit)}
        )
        assert done.returncode == 3, done.stdout + done.stderr
        assert "audit log" in done.stderr and "no change is made unaudited" in done.stderr
        assert not (tmp_path / "srv").exists()
    finally:
        if kind != "not-a-directory":
            subprocess.run(["umount", str(mountpoint)], check=False)


# ------------------------------------------------------------------------ hostile input

HOSTILE = [
    "\x1b]52;c;cm0gLXJmIH4=\x07clipboard",  # OSC 52 clipboard write
    "\x1b]0;owned title\x07title",
    "\x1b[2J\x1b[H\x1b[31mred\x1b[0m cursor",
    "[bold]markup[/bold] [link=https://evil.example]link[/link]",
    "nul\x00byte \x9b31m c1",
    "\x1bP+q\x1b\\dcs",
]


def test_hostile_log_lines_are_inert_in_the_log_view() -> None:
    from rich.console import Console

    from opsconsole.widgets.log_view import LogView

    view = LogView()
    view.append_many([(line, "h") for line in HOSTILE])
    view.append_many([("\udcff invalid utf-8 already replaced", "h")])
    big = "A" * 1_000_000
    view.append(big, "h")
    console = Console(width=120, force_terminal=True, color_system="truecolor")
    for line in view.lines:
        assert (
            "\x1b" not in line.text
            and "\x00" not in line.text
            and "\x9b" not in line.text
            and "\x07" not in line.text
        )
        rendered = view._styled(line)
        assert "\x1b" not in rendered.plain
        with console.capture() as cap:
            console.print(rendered, end="")
        output = cap.get()
        assert (
            "\x1b]" not in output
            and "\x1bP" not in output
            and "\x1b[2J" not in output
            and "\x1b[H" not in output
        )
    assert "[bold]markup[/bold]" in view.lines[3].text  # shown literally, not parsed
    assert view.lines[-1].text == big  # kept whole
    assert "more characters" in view._styled(view.lines[-1]).plain  # but cut for display


def test_hostile_bytes_from_a_real_process_reach_the_cli_inert(tmp_path: Path, run_cli: Any) -> None:
    script = tmp_path / "evil.py"
    script.write_bytes(
        b"import sys,time\n"
        b"w=sys.stdout.buffer.write\n"
        b"w(b'\\x1b]52;c;cm0gLXJmIH4=\\x07osc52 \\x1b]0;title\\x07 \\x1b[2J clear\\n')\n"
        b"w(b'bad utf8 \\xff\\xfe \\xc3 end\\n')\n"
        b"w(b'nul \\x00 here [bold]x[/bold]\\n')\n"
        b"w(b'B'*1000000+b'\\n')\n"
        b"sys.stdout.flush()\n"
        b"time.sleep(3600)\n"
    )
    sup = harness.make_supervisord(tmp_path / "sup", [harness.Program("evil", f"{{python}} -u {script}")])
    sup.start()
    try:
        sup.wait_running(["evil:evil"])
        log = sup.root / "evil.out.log"
        deadline = time.monotonic() + 20
        while (not log.exists() or log.stat().st_size < 1_000_000) and time.monotonic() < deadline:
            time.sleep(0.05)  # everything written has reached supervisord's log
        profile = write_profile(
            tmp_path,
            f'[environments.s]\nhosts = ["local"]\n[environments.s.supervisor]\nurl = "{sup.unix_url}"\n',
        )
        done = run_cli("--profile", str(profile), "logs", "s", "supervisor:evil", "-n", "10")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
        assert "osc52" in out and "[bold]x[/bold]" in out and "\ufffd" in out
        assert "B" * 1000 in out
    finally:
        sup.stop()


def test_shell_metacharacters_are_never_executed(
    tmp_path: Path, sshd: harness.Sshd, supervisord: harness.Supervisord, app_repo: Path, run_cli: Any
) -> None:
    canary = tmp_path / "canary"
    evil = f"x; touch {canary}; $(touch {canary}) `touch {canary}` ' \" \n"
    path = f"{tmp_path}/srv/a b;touch {canary}"
    profile = write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
[environments.staging]
hosts = ["{sshd.host}"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
[environments.staging.deploy]
path = {json.dumps(path)}
repo = {json.dumps(str(app_repo))}
build = ["echo built"]
[environments.staging.logs]
files = [{json.dumps(str(tmp_path / "log; touch " / "canary"))}]
""",
    )
    env = {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    attempts = [  # each with the exit code its refusal documents
        (["deploy", "staging", "--yes", "--ref", f"$(touch {canary})"], 2),
        (["deploy", "staging", "--yes", "--ref", f"main;touch {canary}"], 2),
        (["restart", "staging", f"supervisor:{evil}", "--yes"], 2),
        (["restart", "staging", f"docker:{evil}", "--yes"], 2),
        (["logs", "staging", f"file:{tmp_path}/x; touch {canary}"], 3),
        (["logs", "staging", f"file:{tmp_path / 'log; touch ' / 'canary'}", "-n", "1"], 1),
        (["rollback", "staging", "--yes", "--to", f"$(touch {canary})"], 2),
        (["run", "staging", f"x;touch {canary}", "--yes"], 2),
        (["deploy", "staging", "--yes", "--host", f"x;touch {canary}"], 2),
        (["deploy", "staging", "--yes"], 0),  # the quoted path with ';' deploys for real
    ]
    for args, code in attempts:
        done = run_cli("--profile", str(profile), *args, env=env)
        assert done.returncode == code, (args, done.returncode, done.stderr[-500:])
    assert not canary.exists()
    assert (Path(path) / "current").is_symlink()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_fuzzed_profiles_give_clean_errors(text: str) -> None:
    try:
        parse_profile_text(text, Path("profiles/fuzz.toml"))
    except ProfileError as exc:
        assert all(p.startswith("profiles/fuzz.toml:") for p in exc.problems)


EXAMPLE = (REPO / "profiles" / "example.toml").read_text()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE) - 1),
    st.integers(min_value=0, max_value=40),
    st.text(alphabet=st.sampled_from(list("[]{}=\"'#.,\n 0123456789abcxyz-_\\")), max_size=12),
)
def test_mutated_example_profiles_give_clean_errors(start: int, length: int, insert: str) -> None:
    text = EXAMPLE[:start] + insert + EXAMPLE[start + length :]
    try:
        profile = parse_profile_text(text, Path("profiles/mutant.toml"))
    except ProfileError as exc:
        for problem in exc.problems:
            location = problem.split(": ", 1)[0]
            assert location.startswith("profiles/mutant.toml:") and location.split(":")[1].isdigit()
        return
    assert profile.project_name


def test_secret_never_leaks(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    redis: harness.Redis,
    sentry_server: Any,
    run_cli: Any,
) -> None:
    sentry_server.token = TOKEN
    root = tmp_path / "srv" / "shop"
    profile = write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
[environments.staging]
hosts = ["{sshd.host}"]
[environments.staging.supervisor]
url = "{supervisord.http_url}"
username = "admin"
password = {{ secret = "sup-pass" }}
[environments.staging.deploy]
path = "{root}"
repo = "{app_repo}"
build = ["echo token is $OPSCONSOLE_SECRET_SENTRY_TOKEN"]
[environments.staging.cache]
purge = ["redis-cli -p {redis.port} FLUSHALL"]
[environments.staging.sentry]
url = "{sentry_server.url}"
organization = "acme"
project = "shop"
token = {{ secret = "sentry-token" }}
""",
    )
    audit = tmp_path / "audit.jsonl"
    env = {
        "OPSCONSOLE_SECRET_SENTRY_TOKEN": TOKEN,
        "OPSCONSOLE_SECRET_SUP_PASS": supervisord.password,
        "OPSCONSOLE_AUDIT_LOG": str(audit),
    }
    outputs = []
    for args in (
        ["deploy", "staging", "--yes"],
        ["purge", "staging", "--yes"],
        ["status", "--json"],
        ["status"],
    ):
        done = run_cli("--profile", str(profile), *args, env=env)
        outputs.append(done.stdout + done.stderr)
    sentry_server.token = "a-different-token"  # every Sentry call now fails with 401
    for args, code in ((["status"], 4), (["resolve", "staging", "4001", "--yes"], 1)):
        done = run_cli("--profile", str(profile), *args, env=env)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        outputs.append(done.stdout + done.stderr)
    everything = "\n".join(outputs) + audit.read_text() + (root / ".opsconsole" / "deploys.jsonl").read_text()
    assert "401" in everything
    assert TOKEN not in everything and supervisord.password not in everything
    # exception messages too: a failing call in-process
    import asyncio

    from opsconsole.backends.sentry import SentryClient, SentryError
    from opsconsole.profiles import SecretRef, SentryConfig
    from opsconsole.secrets import Secret

    client = SentryClient(
        SentryConfig("acme", "shop", SecretRef("t"), url=sentry_server.url), Secret("t", TOKEN), 2.0
    )
    with pytest.raises(SentryError, match="401") as info:
        asyncio.run(client.issues())
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.args)


def test_unknown_or_changed_host_keys_never_connect(sshd: harness.Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = make_host(
        parse_host(sshd.host), Defaults(known_hosts=str(empty), identity_file=str(sshd.client_key))
    )
    with pytest.raises(HostError, match="unknown host key"):
        host.run(f"touch {tmp_path}/connected")
    assert not (tmp_path / "connected").exists()
