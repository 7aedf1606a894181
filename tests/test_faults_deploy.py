"""Fault suite, deploy safety (`pytest -m faults`): a good release is never lost, an interrupted deploy
leaves nothing behind, a hostile profile is refused. One test per finding of the deploy-safety review;
docs/reliability.md names each.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from opsconsole.actions.base import ActionContext, Target
from opsconsole.actions.deploy import DeployAction
from opsconsole.actions.runner import ActionRun, AuditLog
from opsconsole.backends.clients import Backends
from opsconsole.backends.releases import parse_state
from opsconsole.profiles import load_profile, parse_host
from opsconsole.secrets import Secret, redact
from test_actions import git
from test_faults import deploy_profile, second_host  # noqa: F401 - fixture

pytestmark = pytest.mark.faults
TOKEN = "sntrys_safety_token_7c7c7c7c"


def wait_for(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # the process may end between the two looks, or while /proc is read (ESRCH): gone is not alive
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for version in ("v1", "v2"):
        (path / "app.py").write_text(f"print('{version}')\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", version)
        git(path, "tag", version)
    return path


def cli(
    profile: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=profile.parent,
    )


def spawn(profile: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--profile", str(profile), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=profile.parent,
    )


def journal(root: Path) -> list[dict[str, Any]]:
    path = root / ".opsconsole" / "deploys.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _argv(proc: Path) -> list[str]:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def releases(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "releases").iterdir()) if (root / "releases").exists() else []


def current(root: Path) -> str:
    return os.readlink(root / "current").rsplit("/", 1)[-1]


# ------------------------------------------------------------------------ 1. shared is checked


@pytest.mark.parametrize(
    ("shared", "says"),
    [
        ('["../../releases"]', "must stay inside the release"),
        ('["../outside"]', "must stay inside the release"),
        ('["/etc"]', "relative to the release"),
        ('["media", "media/"]', "listed twice"),
        ('["media", "media/uploads"]', "lies inside 'media'"),
        ('["REVISION"]', "reserved"),
    ],
)
def test_hostile_shared_entries_are_refused_with_file_and_line(
    tmp_path: Path, sshd: harness.Sshd, repo: Path, shared: str, says: str
) -> None:
    profile = deploy_profile(tmp_path, sshd, ["local"], repo, ["true"], extra=f"shared = {shared}")
    done = cli(profile, "profile", "validate")
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and f"{profile.name}:" in done.stderr and "deploy.shared" in done.stderr
    assert not (tmp_path / "srv").exists()


def test_trailing_slash_in_shared_is_normalised_and_deploys(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    profile = deploy_profile(tmp_path, sshd, ["local"], repo, ["ls -ld media"], extra='shared = ["media/"]')
    assert load_profile(profile).env("staging").deploy.shared == ("media",)  # type: ignore[union-attr]
    done = cli(profile, "deploy", "staging", "--yes")
    assert done.returncode == 0, done.stderr
    root = tmp_path / "srv" / "shop"
    assert (root / "current" / "media").is_symlink() and (root / "shared" / "media").is_dir()
    assert releases(root) == [current(root)]


# ------------------------------------------------------------------------ 2. pruning


def test_pruning_keeps_good_releases_and_removes_leftovers(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    """keep_releases = 3: deploy v1, v2, v1; two deploys interrupted mid-build; a leftover folder; a bad
    release; deploy v2. The good ones stay, the rest goes, and two rollbacks still work."""
    marker = tmp_path / "building"
    build = [f"if [ -e {tmp_path}/slow ]; then touch {marker}; sleep 60; fi"]
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, build, extra="keep_releases = 3")
    root = tmp_path / "srv" / "shop"
    good: list[str] = []
    for ref in ("v1", "v2", "v1"):
        done = cli(profile, "deploy", "staging", "--yes", "--ref", ref)
        assert done.returncode == 0, done.stderr
        good.append(current(root))
    (tmp_path / "slow").touch()
    for _ in range(2):
        marker.unlink(missing_ok=True)
        proc = spawn(profile, "deploy", "staging", "--yes", "--ref", "v2")
        wait_for(marker.exists, "the build to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
        assert cli(profile, "unlock", "staging", "--yes").returncode == 0
    (tmp_path / "slow").unlink()
    assert releases(root) == good  # each interrupted deploy removed its own release
    (root / "releases" / "20000101T000000Z").mkdir()  # a leftover from a SIGKILLed deploy: no record
    done = cli(profile, "deploy", "staging", "--yes", "--ref", "v2")
    assert done.returncode == 0, done.stderr
    newest = current(root)
    assert releases(root) == sorted([*good, newest])[-3:] == [good[1], good[2], newest]
    first = cli(profile, "rollback", "staging", "--yes")
    assert first.returncode == 0, first.stderr
    assert current(root) == good[2]
    second = cli(profile, "rollback", "staging", "--yes")
    assert second.returncode == 0, second.stderr
    assert current(root) == good[1]
    third = cli(profile, "rollback", "staging", "--yes")
    assert third.returncode == 3 and "nothing to roll back to" in third.stderr
    assert "skipped bad releases" in third.stderr


# ------------------------------------------------------------------------ 3. rollback --to


def test_rollback_to_an_unfinished_or_bad_release_is_refused(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    profile = deploy_profile(tmp_path, sshd, ["local"], repo, ["true"])
    root = tmp_path / "srv" / "shop"
    assert cli(profile, "deploy", "staging", "--yes", "--ref", "v1").returncode == 0
    first = current(root)
    assert cli(profile, "deploy", "staging", "--yes", "--ref", "v2").returncode == 0
    second = current(root)
    (root / "releases" / "20000101T000000Z").mkdir()  # half-built: never journalled
    half = cli(profile, "rollback", "staging", "--yes", "--to", "20000101T000000Z")
    assert half.returncode == 3 and "never finished deploying" in half.stderr
    assert current(root) == second
    assert cli(profile, "rollback", "staging", "--yes").returncode == 0
    assert current(root) == first
    bad = cli(profile, "rollback", "staging", "--yes", "--to", second)
    assert bad.returncode == 3 and "marked bad" in bad.stderr and "--force" in bad.stderr
    audit = tmp_path / "audit.jsonl"
    forced = cli(
        profile,
        "rollback",
        "staging",
        "--yes",
        "--to",
        second,
        "--force",
        env={"OPSCONSOLE_AUDIT_LOG": str(audit)},
    )
    assert forced.returncode == 0, forced.stderr
    assert current(root) == second
    end = [r for r in audit_records(audit) if r["phase"] == "end"][-1]
    assert end["outcome"] == "success" and "--force" in end["target"]


# ------------------------------------------------------------------------ 4. interruptions


def _slow_build(tmp_path: Path) -> tuple[list[str], Path]:
    """A build that is quick until the test creates `slow`; then it writes its pid and sleeps."""
    pidfile = tmp_path / "build.pid"
    slow = tmp_path / "slow"
    return [
        f"if [ -e {slow} ]; then echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; echo building; sleep 60; echo never; fi"
    ], pidfile


def _go_slow(tmp_path: Path) -> None:
    (tmp_path / "slow").touch()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_during_build_cleans_up_everything(
    tmp_path: Path, sshd: harness.Sshd, repo: Path, signum: int
) -> None:
    build, pidfile = _slow_build(tmp_path)
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, build)
    root = tmp_path / "srv" / "shop"
    audit = tmp_path / "audit.jsonl"
    env = {"OPSCONSOLE_AUDIT_LOG": str(audit)}
    assert cli(profile, "deploy", "staging", "--yes", "--ref", "v1", env=env).returncode == 0
    before = current(root)
    _go_slow(tmp_path)
    proc = spawn(profile, "deploy", "staging", "--yes", "--ref", "v2", env=env)
    wait_for(pidfile.exists, "the build to start")
    build_pid = int(pidfile.read_text())
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    wait_for(lambda: not alive(build_pid), "the build process to die", deadline=5)
    assert current(root) == before and releases(root) == [before]
    assert not (root / ".opsconsole" / "lock").exists() and not (root / ".opsconsole" / "lock.beat").exists()
    last = journal(root)[-1]
    assert last["event"] == "deploy" and last["outcome"] == "interrupted" and last["ref"] == "v2"
    records = audit_records(audit)
    runs = {r["run"] for r in records if r["phase"] == "start"}
    assert runs == {r["run"] for r in records if r["phase"] == "end"} and len(runs) == 2
    assert records[-1]["outcome"] == "interrupted" and records[-1]["interrupted"] is True


def test_losing_the_ssh_connection_mid_build_kills_the_build_and_cleans_up(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    """The client's TCP connection is cut under it (not the CLI): the build dies with its session."""
    build, pidfile = _slow_build(tmp_path)
    profile_path = deploy_profile(tmp_path, sshd, [sshd.host], repo, build)
    root = tmp_path / "srv" / "shop"
    profile = load_profile(profile_path)
    _go_slow(tmp_path)
    backends = Backends(profile)
    action = DeployAction(ActionContext(profile, backends), Target(env="staging", options={"ref": "v1"}))
    run = ActionRun(action, approved=True, audit=AuditLog(tmp_path / "audit.jsonl"))
    thread = threading.Thread(target=run.run_to_end)
    thread.start()
    try:
        wait_for(pidfile.exists, "the build to start")
        build_pid = int(pidfile.read_text())
        host = backends.host(parse_host(sshd.host))
        # every connection to the server (projects share them: an earlier one may still be open)
        for link in list(host._links):  # type: ignore[attr-defined]
            link.sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: not alive(build_pid), "the build process to die with its session", deadline=5)
        thread.join(60)
    finally:
        run.cancel()
        thread.join(60)
        backends.close()
    assert run.outcome is not None and not run.outcome.ok
    assert "connection lost" in run.outcome.message
    assert releases(root) == [] and not (root / "current").exists()
    assert not (root / ".opsconsole" / "lock").exists()
    assert journal(root)[-1]["outcome"] == "failed"


def test_sigkill_leaves_a_lock_that_turns_stale_and_says_so(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    build, pidfile = _slow_build(tmp_path)
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, build)
    root = tmp_path / "srv" / "shop"
    audit = tmp_path / "audit.jsonl"
    _go_slow(tmp_path)
    proc = spawn(profile, "deploy", "staging", "--yes", env={"OPSCONSOLE_AUDIT_LOG": str(audit)})
    wait_for(pidfile.exists, "the build to start")
    build_pid = int(pidfile.read_text())
    lock = json.loads((root / ".opsconsole" / "lock").read_text())
    proc.kill()
    proc.wait(10)
    wait_for(lambda: not alive(build_pid), "the build process to die with the SSH session", deadline=5)
    # even a SIGKILLed run left its start record, naming the run the lock names
    assert [(r["phase"], r["run"]) for r in audit_records(audit)] == [("start", lock["run"])]
    fresh = cli(profile, "deploy", "staging", "--yes")
    assert fresh.returncode == 3 and "STALE" not in fresh.stderr
    beat = root / ".opsconsole" / "lock.beat"
    beat.write_text(str(int(time.time()) - 125) + "\n")  # as if 125 s had passed without a heartbeat
    refused = cli(profile, "deploy", "staging", "--yes")
    assert refused.returncode == 3
    assert "STALE: no heartbeat for 2 min" in refused.stderr and "opsconsole unlock staging" in refused.stderr
    status = cli(profile, "status", "--json")
    deploys = json.loads(status.stdout)["environments"]["staging"]["hosts"][sshd.host]["deploys"]
    assert deploys["lock"]["stale"] is True and deploys["lock"]["heartbeat_age"] >= 120
    listing = cli(profile, "releases", "staging")
    assert "STALE" in listing.stdout and "opsconsole unlock staging" in listing.stdout
    assert cli(profile, "unlock", "staging", "--yes").returncode == 0
    (tmp_path / "slow").unlink()
    after = cli(profile, "deploy", "staging", "--yes", "--ref", "v1")
    assert after.returncode == 0, after.stderr
    assert releases(root) == [current(root)]  # the killed deploy's half-built release was pruned


def test_a_running_deploy_renews_its_heartbeat(tmp_path: Path, sshd: harness.Sshd, repo: Path) -> None:
    build, pidfile = _slow_build(tmp_path)
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, build)
    beat = tmp_path / "srv" / "shop" / ".opsconsole" / "lock.beat"
    _go_slow(tmp_path)
    proc = spawn(profile, "deploy", "staging", "--yes")
    try:
        wait_for(pidfile.exists, "the build to start")
        beat.write_text("1\n")  # ancient: the next heartbeat (every 5 s) must replace it
        wait_for(lambda: beat.read_text().strip() not in ("", "1"), "a heartbeat", deadline=15)
        assert abs(int(beat.read_text()) - time.time()) < 30
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_interrupt_after_the_switch_completes_the_deploy(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    started = tmp_path / "restarting"
    extra = f'restart = ["touch {started}; sleep 2; echo restarted"]'
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, ["true"], extra=extra)
    root = tmp_path / "srv" / "shop"
    audit = tmp_path / "audit.jsonl"
    proc = spawn(profile, "deploy", "staging", "--yes", env={"OPSCONSOLE_AUDIT_LOG": str(audit)})
    wait_for(started.exists, "the restart after the switch")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "restarted" in out and "the deploy was completed" in out + err
    record = journal(root)[-1]
    assert record["outcome"] == "success" and record["release"] == current(root)
    assert "interrupted after the switch" in record["note"]
    end = audit_records(audit)[-1]
    assert end["phase"] == "end" and end["outcome"] == "success" and end["interrupted"] is True
    assert not (root / ".opsconsole" / "lock").exists()


# ------------------------------------------------------------------------ 5, 6. the Sentry token


def test_a_token_with_a_control_character_is_refused_and_never_printed(
    tmp_path: Path, sentry_server: Any, run_cli: Any
) -> None:
    profile = write_profile(
        tmp_path,
        f"""
[environments.staging]
[environments.staging.sentry]
url = "{sentry_server.url}"
organization = "{sentry_server.org}"
project = "{sentry_server.project}"
token = {{ secret = "sentry-token" }}
""",
    )
    audit = tmp_path / "audit.jsonl"
    for bad in (TOKEN + "\r", TOKEN + "\n", " " + TOKEN):
        env = {"OPSCONSOLE_SECRET_SENTRY_TOKEN": bad, "OPSCONSOLE_AUDIT_LOG": str(audit)}
        status = run_cli("--profile", str(profile), "status", "--json", env=env)
        human = run_cli("--profile", str(profile), "status", env=env)
        resolve = run_cli("--profile", str(profile), "resolve", "staging", "SHOP-1", "--yes", env=env)
        for done in (status, human, resolve):
            text = done.stdout + done.stderr
            assert TOKEN not in text and "sntrys_" not in text
        said = status.stdout + human.stdout
        assert "secret 'sentry-token'" in said and ("control character" in said or "white space" in said)
        assert resolve.returncode != 0
    assert TOKEN not in (audit.read_text() if audit.exists() else "")
    assert all(r.get("auth") is None for r in sentry_server.requests)  # nothing was sent with it


def test_redaction_catches_escaped_and_percent_encoded_forms() -> None:
    value = 'tok/en+with spaces&"quotes"-9f9f'
    Secret("odd", value)
    for text in (
        value,
        json.dumps(value),
        repr(value),
        repr(value.encode()),
        "t=" + __import__("urllib.parse").parse.quote(value, safe=""),
    ):
        assert "tok/en" not in redact(text) and "en+with" not in redact(text), text
        assert "***" in redact(text)


class _Capture(BaseHTTPRequestHandler):
    seen: list[dict[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list[dict[str, str | None]]]]:
    _Capture.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.seen
    server.shutdown()
    server.server_close()


async def test_sentry_pagination_never_sends_the_token_to_another_origin(
    sentry_server: Any,
    capture_server: tuple[str, list[dict[str, str | None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_sentry import client_for

    elsewhere, seen = capture_server
    for n in range(105):
        sentry_server.add_issue(f"Error {n}")
    client = client_for(sentry_server)
    monkeypatch.setattr(type(sentry_server), "url", property(lambda _self: elsewhere))  # Link points away
    page = await client.issues(limit=200)
    assert len(page.issues) == 100
    assert seen == []  # not followed at all, so no token went there
    assert any("another origin" in note and elsewhere.replace("http://", "") in note for note in page.notes)


# ------------------------------------------------------------------------ 7. the journal


def test_journal_damage_is_skipped_reported_and_never_swallows_a_record(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, ["true"])
    root = tmp_path / "srv" / "shop"
    assert cli(profile, "deploy", "staging", "--yes", "--ref", "v1").returncode == 0
    first = current(root)
    path = root / ".opsconsole" / "deploys.jsonl"
    with path.open("a") as out:
        out.write('{"event": "deploy", "outcome": "success"}\n')  # no release
        out.write("[" * 30_000 + "\n")  # nested too deep for json
        out.write('{"x": "' + "y" * 70_000 + '"}\n')  # oversized
        out.write('{"event": "deploy", "release": "2')  # truncated: no newline
    done = cli(profile, "deploy", "staging", "--yes", "--ref", "v2")
    assert done.returncode == 0, done.stderr
    second = current(root)
    last = path.read_text().splitlines()[-1]
    assert json.loads(last)["release"] == second and json.loads(last)["who"]
    listing = cli(profile, "releases", "staging", "--json")
    warnings = json.loads(listing.stdout)["hosts"][sshd.host]["warnings"]
    text = " ".join(warnings)
    assert "without release" in text and "nested too deeply" in text and "over 64 KiB" in text
    assert "unreadable line" in text
    status = json.loads(cli(profile, "status", "--json").stdout)
    assert status["environments"]["staging"]["hosts"][sshd.host]["deploys"]["warnings"] == warnings
    back = cli(profile, "rollback", "staging", "--yes")
    assert back.returncode == 0, back.stderr
    assert current(root) == first


def test_parse_state_reports_each_kind_of_bad_line() -> None:
    output = "\n".join(
        [
            "@now\t1000",
            "@current\treleases/b",
            "@release\ta",
            "@release\tb",
            '@journal\t{"event": "deploy", "release": "a", "outcome": "success"}',
            "@journal\tnot json",
            '@journal\t{"event": "rollback"}',
            "@journal\t[1, 2]",
            "@journal!\t7",
        ]
    )
    state = parse_state("h", "/p", output)
    assert state.successful_releases == ["a"] and len(state.journal) == 1
    assert len(state.warnings) == 4, state.warnings


# ------------------------------------------------------------------------ 8. multi-host rollback


def test_multi_host_rollback_is_all_or_nothing(
    tmp_path: Path,
    sshd: harness.Sshd,
    second_host: harness.Sshd,  # noqa: F811
    repo: Path,
) -> None:
    profile_path = deploy_profile(tmp_path, sshd, [sshd.host, second_host.host], repo, ["true"])
    root = tmp_path / "srv" / "shop"
    assert cli(profile_path, "deploy", "staging", "--yes", "--ref", "v1").returncode == 0
    first = current(root)
    assert cli(profile_path, "deploy", "staging", "--yes", "--ref", "v2").returncode == 0
    second = current(root)
    backends = Backends(load_profile(profile_path))
    host2 = backends.host(parse_host(second_host.host))
    try:
        # on host 2 only, the temporary link's name is taken by a folder: its switch fails
        host2.run(f"mkdir -p {root}/.current.tmp-{first}/blocker", check=True)
        done = cli(profile_path, "rollback", "staging", "--yes")
        assert done.returncode == 1, done.stderr
        assert f"{sshd.host} on releases/{second}" in done.stderr
        assert f"{second_host.host} on releases/{second}" in done.stderr
        assert "switched back" in done.stderr
        assert current(root) == second
        assert host2.run(f"readlink {root}/current").stdout.strip() == f"releases/{second}"
        host2.run(f"rm -rf {root}/.current.tmp-{first}", check=True)
        again = cli(profile_path, "rollback", "staging", "--yes")
        assert again.returncode == 0, again.stderr
        assert current(root) == first
        assert host2.run(f"readlink {root}/current").stdout.strip() == f"releases/{first}"
    finally:
        backends.close()


# ------------------------------------------------------------------------ 9-12. hostile profiles


@pytest.mark.parametrize("value", ["inf", "1e300", "nan", "-1", "0", "3601"])
def test_absurd_timeouts_are_refused(tmp_path: Path, value: str, run_cli: Any) -> None:
    profile = write_profile(
        tmp_path, f'[defaults]\ntimeout = {value}\n[environments.staging]\nhosts = ["local"]\n'
    )
    for args in (("profile", "validate"), ("status",)):
        done = run_cli("--profile", str(profile), *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "defaults.timeout" in done.stderr and ":2:" in done.stderr


def test_tilde_deploy_path_expands_on_the_host(tmp_path: Path, sshd: harness.Sshd, repo: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    profile = write_profile(
        tmp_path,
        f"""
[environments.staging]
hosts = ["local"]
[environments.staging.deploy]
path = "~/apps/shop"
repo = "{repo}"
build = ["true"]
""",
    )
    done = cli(profile, "deploy", "staging", "--yes", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert (home / "apps" / "shop" / "current" / "app.py").exists()
    assert not (profile.parent / "~").exists()
    status = json.loads(cli(profile, "status", "--json", env={"HOME": str(home)}).stdout)
    assert status["environments"]["staging"]["hosts"]["local"]["deploys"]["current"]


@pytest.mark.parametrize(
    ("section", "says"),
    [
        (
            '[environments.staging.supervisor]\nurl = "http://admin:s3cr3t@127.0.0.1:9001"',
            "supervisor.password",
        ),
        ('[environments.staging.docker]\nurl = "tcp://user:s3cr3t@127.0.0.1:2375"', "secret"),
        ('health = ["https://user:s3cr3t@example.invalid/healthz"]', "health URLs take no credentials"),
        (
            '[environments.staging.sentry]\nurl = "https://tok:s3cr3t@sentry.invalid"\norganization = "a"\n'
            'project = "b"\ntoken = { secret = "t" }',
            "sentry.token",
        ),
    ],
)
def test_credentials_in_urls_are_refused_and_never_shown(
    tmp_path: Path, run_cli: Any, section: str, says: str
) -> None:
    head = '[environments.staging]\nhosts = ["local"]\n'
    profile = write_profile(tmp_path, head + section + "\n")
    for args in (("profile", "validate"), ("profile", "show"), ("status",)):
        done = run_cli("--profile", str(profile), *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "carries credentials" in done.stderr and says in done.stderr
        assert "s3cr3t" not in done.stdout + done.stderr


def test_same_host_twice_is_refused(tmp_path: Path, run_cli: Any) -> None:
    for hosts in ('["local", "local"]', '["root@web1:22", "root@WEB1:22"]'):
        profile = write_profile(tmp_path, f"[environments.staging]\nhosts = {hosts}\n")
        done = run_cli("--profile", str(profile), "profile", "validate")
        assert done.returncode == 2 and "is the same host as" in done.stderr


def test_unlisted_log_files_are_refused(tmp_path: Path, run_cli: Any) -> None:
    profile = write_profile(tmp_path, '[environments.staging]\nhosts = ["local"]\n')
    done = run_cli("--profile", str(profile), "logs", "staging", "file:/etc/shadow")
    assert done.returncode == 3 and "logs" in done.stderr and "files" in done.stderr
    assert "root:" not in done.stdout


def test_small_usage_errors_say_what_is_wrong(tmp_path: Path, run_cli: Any, repo: Path) -> None:
    folder = tmp_path / "profile-folder.toml"
    folder.mkdir()
    done = run_cli("--profile", str(folder), "status")
    assert done.returncode == 2 and "is a folder" in done.stderr
    profile = write_profile(
        tmp_path,
        f"""
[environments.staging]
hosts = ["local"]
[environments.staging.logs]
files = ["{tmp_path}/app.log"]
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
""",
    )
    (tmp_path / "app.log").write_text("one\n")
    huge = run_cli("--profile", str(profile), "logs", "staging", f"file:{tmp_path}/app.log", "-n", "9" * 23)
    assert huge.returncode == 2 and "-n must be between" in huge.stderr
    unknown = run_cli("--profile", str(profile), "deploy", "staging", "--yes", "--ref", "no-such-branch")
    assert unknown.returncode == 1 and "was removed" not in unknown.stderr
    assert "no-such-branch" in unknown.stderr


# ------------------------------------------------------------------------ the console, signalled


@pytest.mark.parametrize(
    ("signum", "hangup"), [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGHUP, True)]
)
def test_console_signalled_mid_deploy_cancels_and_cleans_up(
    tmp_path: Path, sshd: harness.Sshd, repo: Path, signum: int, hangup: bool
) -> None:
    """The console in a real terminal, deploying; SIGTERM or SIGHUP (the terminal's SSH session
    dropped) cancels the deploy like `c`, cleans up, and exits 128+signal."""
    from test_e2e_tmux import Tmux

    build, pidfile = _slow_build(tmp_path)
    profile = deploy_profile(tmp_path, sshd, [sshd.host], repo, build)
    root = tmp_path / "srv" / "shop"
    audit = tmp_path / "audit.jsonl"
    status_file = tmp_path / "exit-status"
    _go_slow(tmp_path)
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    script = f"{opsconsole} --profile {profile}; echo $? > {status_file}; sleep 30"
    env = {"NO_COLOR": "1", "OPSCONSOLE_AUDIT_LOG": str(audit), "PATH": os.environ["PATH"]}
    session = Tmux(["sh", "-c", script], env, size=(120, 40))
    try:
        session.wait_for("staging")
        session.keys("D")
        session.wait_for("Deploy main in staging")
        session.keys("Tab")
        time.sleep(0.3)
        session.keys("Enter")
        wait_for(pidfile.exists, "the build to start")
        build_pid = int(pidfile.read_text())
        console = [
            int(d.name)
            for d in Path("/proc").iterdir()
            if d.name.isdigit() and _argv(d)[1:3] == [opsconsole, "--profile"]
        ]
        assert len(console) == 1, "the console process was not found"
        if hangup:  # the terminal itself goes away: tmux closes the pty and sends SIGHUP
            session.kill()
            wait_for(lambda: not alive(console[0]), "the console to exit", deadline=60)
        else:
            os.kill(console[0], signum)
            wait_for(status_file.exists, "the console to exit", deadline=60)
            assert status_file.read_text().strip() == str(128 + signum)
        wait_for(lambda: not alive(build_pid), "the build process to die", deadline=5)
    finally:
        session.kill()
    assert releases(root) == [] and not (root / ".opsconsole" / "lock").exists()
    assert journal(root)[-1]["outcome"] == "interrupted"
    records = audit_records(audit)
    assert [r["phase"] for r in records] == ["start", "end"] and records[-1]["outcome"] == "interrupted"


# ------------------------------------------------------------------------ the switch is atomic


def test_a_reader_never_sees_current_missing_or_half_made(
    tmp_path: Path, sshd: harness.Sshd, repo: Path
) -> None:
    """While deploys and rollbacks switch `current` back and forth, a reader polling it in a tight
    loop always finds a link to a complete release (its REVISION file is there)."""
    profile = deploy_profile(tmp_path, sshd, ["local"], repo, ["true"], extra="keep_releases = 10")
    root = tmp_path / "srv" / "shop"
    assert cli(profile, "deploy", "staging", "--yes", "--ref", "v1").returncode == 0
    problems: list[str] = []
    reads = {"n": 0}
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                target = os.readlink(root / "current")
                if not (root / "current" / "REVISION").is_file():
                    problems.append(f"current -> {target} without REVISION")
            except OSError as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
            reads["n"] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for ref in ("v2", "v1", "v2"):
            assert cli(profile, "deploy", "staging", "--yes", "--ref", ref).returncode == 0
            assert cli(profile, "rollback", "staging", "--yes").returncode == 0
    finally:
        stop.set()
        thread.join(10)
    assert reads["n"] > 1000 and problems == [], problems[:5]
