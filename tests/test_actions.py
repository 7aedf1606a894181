"""The action layer through the CLI, against real hosts (loopback sshd and local), supervisord and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile

TOKEN = "sntrys_secret_value_987654"


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("VERSION = 1\n")
    (repo / "build.sh").write_text(
        "#!/bin/sh\necho building $OPSCONSOLE_RELEASE\nmkdir -p static && echo css > static/app.css\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    (repo / "app.py").write_text("VERSION = 2\n")
    git(repo, "commit", "-q", "-am", "v2")
    git(repo, "tag", "v2")
    return repo


def deploy_profile(
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    repo: Path,
    host: str,
    *,
    build: list[str] | None = None,
    protected: bool = False,
    redis_port: int | None = None,
    sentry_url: str | None = None,
) -> tuple[Path, Path]:
    root = tmp_path / "srv" / "shop"
    build = (
        build
        if build is not None
        else ["sh build.sh", "python3 -c 'import app; print(\"version\", app.VERSION)'"]
    )
    cache = (
        f'\n[environments.staging.cache]\npurge = ["redis-cli -p {redis_port} -n 1 FLUSHDB"]\n'
        if redis_port
        else ""
    )
    sentry = (
        f'\n[environments.staging.sentry]\nurl = "{sentry_url}"\norganization = "acme"\nproject = "shop"\ntoken = {{ secret = "sentry-token" }}\n'
        if sentry_url
        else ""
    )
    text = f"""
[project]
name = "shop"

[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 10

[environments.staging]
hosts = ["{host}"]
protected = {str(protected).lower()}

[environments.staging.supervisor]
url = "{supervisord.unix_url}"

[environments.staging.deploy]
path = "{root}"
repo = "{repo}"
branch = "main"
keep_releases = 3
shared = [".env", "media"]
build = {json.dumps(build)}
restart = ["supervisor:sleeper"]
{cache}{sentry}
[[environments.staging.actions]]
name = "touch"
title = "Touch a file"
command = "touch {tmp_path}/touched"
confirm = false
"""
    return write_profile(tmp_path, text), root


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest, sshd: harness.Sshd) -> str:
    return "local" if request.param == "local" else sshd.host


@pytest.fixture
def audit(tmp_path: Path) -> dict[str, str]:
    return {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "OPSCONSOLE_SECRET_SENTRY_TOKEN": TOKEN}


def audit_lines(env: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env["OPSCONSOLE_AUDIT_LOG"])
    if not path.exists():
        return []
    text = path.read_text()
    assert TOKEN not in text
    records = [json.loads(line) for line in text.splitlines()]
    # every run writes a start record before it changes anything and an end record with the same run id
    starts = {r["run"] for r in records if r["phase"] == "start"}
    ends = [r for r in records if r["phase"] == "end"]
    assert {r["run"] for r in ends} == starts
    return ends


def journal(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / ".opsconsole" / "deploys.jsonl").read_text().splitlines()]


def current(root: Path) -> str:
    return os.readlink(root / "current").split("/")[-1]


def test_two_deploys_then_rollback(
    run_cli,
    tmp_path: Path,
    where: str,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, where)
    pid_before = supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"]
    first = run_cli("--profile", str(profile), "deploy", "staging", "--ref", "v1", "--yes", env=audit)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "building" in first.stdout and "version 1" in first.stdout  # build output streamed
    release1 = current(root)
    assert (root / "releases" / release1 / "static" / "app.css").read_text() == "css\n"
    assert (root / "releases" / release1 / "media").is_symlink() and (root / "shared" / "media").is_dir()
    assert (root / "releases" / release1 / "REVISION").read_text().strip() == git(app_repo, "rev-parse", "v1")
    assert (
        supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"] != pid_before
    )  # restart target ran

    second = run_cli("--profile", str(profile), "deploy", "staging", "--yes", env=audit)
    assert second.returncode == 0, second.stdout + second.stderr
    release2 = current(root)
    assert release2 != release1 and "version 2" in second.stdout

    back = run_cli("--profile", str(profile), "rollback", "staging", "--yes", env=audit)
    assert back.returncode == 0, back.stdout + back.stderr
    assert current(root) == release1
    records = journal(root)
    deploys = [r for r in records if r["event"] == "deploy"]
    assert [(r["release"], r["ref"], r["outcome"]) for r in deploys] == [
        (release1, "v1", "success"),
        (release2, "main", "success"),
    ]
    assert deploys[0]["commit"] == git(app_repo, "rev-parse", "v1") and deploys[0]["commit_time"]
    assert all(r["who"] and r["started"] and r["finished"] for r in deploys)
    assert {"event": "mark_bad", "release": release2}.items() <= records[-2].items()
    assert (
        records[-1]["event"] == "rollback"
        and records[-1]["from"] == release2
        and records[-1]["to"] == release1
    )
    assert not (root / ".opsconsole" / "lock").exists()

    listing = run_cli("--profile", str(profile), "releases", "staging", "--json")
    rows = {r["release"]: r for r in json.loads(listing.stdout)["hosts"][where]["releases"]}
    assert rows[release1]["current"] and rows[release2]["bad"]

    nothing = run_cli("--profile", str(profile), "rollback", "staging", "--yes", env=audit)
    assert nothing.returncode == 3 and "nothing to roll back to" in nothing.stderr
    lines = audit_lines(audit)
    assert [(a["action"], a["outcome"]) for a in lines] == [
        ("deploy", "success"),
        ("deploy", "success"),
        ("rollback", "success"),
    ]  # "nothing to roll back to" is found while preparing the plan: refused before any run starts
    assert all(a["user"] and "@" in a["user"] and a["environment"] == "staging" and a["plan"] for a in lines)


def test_failed_build_leaves_current_untouched_and_lock_free(
    run_cli,
    tmp_path: Path,
    where: str,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, where)
    assert run_cli("--profile", str(profile), "deploy", "staging", "--yes", env=audit).returncode == 0
    good = current(root)
    bad_profile, _ = deploy_profile(
        tmp_path, sshd, supervisord, app_repo, where, build=["sh build.sh", "echo compiling; exit 7"]
    )
    done = run_cli("--profile", str(bad_profile), "deploy", "staging", "--yes", env=audit)
    assert done.returncode == 1
    assert "exit 7" in done.stderr and "current is untouched" in done.stderr
    assert current(root) == good
    assert sorted(os.listdir(root / "releases")) == [good]  # the failed release was removed
    assert not (root / ".opsconsole" / "lock").exists()
    last = journal(root)[-1]
    assert last["outcome"] == "failed" and "exit 7" in last["error"]
    assert audit_lines(audit)[-1]["outcome"] == "failed"


def test_deploy_while_locked_exits_3_naming_the_holder(
    run_cli,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    (root / ".opsconsole").mkdir(parents=True)
    holder = {"who": "ann@laptop", "when": "2026-11-26T08:00:00Z", "why": "hotfix"}
    (root / ".opsconsole" / "lock").write_text(json.dumps(holder) + "\n")
    done = run_cli("--profile", str(profile), "deploy", "staging", "--yes", env=audit)
    assert done.returncode == 3
    assert "ann@laptop" in done.stderr and "opsconsole unlock" in done.stderr
    assert not (root / "current").exists()
    unlocked = run_cli("--profile", str(profile), "unlock", "staging", "--yes", env=audit)
    assert unlocked.returncode == 0 and "ann@laptop" in unlocked.stdout
    assert not (root / ".opsconsole" / "lock").exists()
    assert [(a["action"], a["outcome"]) for a in audit_lines(audit)] == [
        ("deploy", "refused"),
        ("unlock", "success"),
    ]


def test_read_only_and_protected_refuse_and_change_nothing(
    run_cli,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local")
    ro = run_cli("--profile", str(profile), "--read-only", "deploy", "staging", "--yes", env=audit)
    assert ro.returncode == 3 and "read-only" in ro.stderr
    ro2 = run_cli(
        "--profile",
        str(profile),
        "restart",
        "staging",
        "supervisor:sleeper",
        "--yes",
        "--read-only",
        env=audit,
    )
    assert ro2.returncode == 3
    unconfirmed = run_cli("--profile", str(profile), "deploy", "staging", env=audit)
    assert unconfirmed.returncode == 3 and "--yes" in unconfirmed.stderr
    protected, _ = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local", protected=True)
    refused = run_cli("--profile", str(protected), "deploy", "staging", "--yes", env=audit)
    assert refused.returncode == 3 and "--confirm staging" in refused.stderr
    wrong = run_cli(
        "--profile", str(protected), "run", "staging", "touch", "--confirm", "production", env=audit
    )
    assert wrong.returncode == 3
    assert not root.exists() and not (tmp_path / "touched").exists()
    assert audit_lines(audit) == []
    ok = run_cli("--profile", str(protected), "run", "staging", "touch", "--confirm", "staging", env=audit)
    assert ok.returncode == 0 and (tmp_path / "touched").exists()


def test_dry_run_prints_commands_and_changes_nothing(
    run_cli,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    done = run_cli("--profile", str(profile), "deploy", "staging", "--dry-run", env=audit)
    assert done.returncode == 0, done.stderr
    assert "git clone --mirror" in done.stdout and "mv -T" in done.stdout and "sh build.sh" in done.stdout
    assert "supervisor.stopProcess(sleeper)" in done.stdout and "nothing was changed" in done.stdout
    assert not root.exists() and audit_lines(audit) == []


def test_purge_empties_a_real_redis_database(
    run_cli,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    redis: harness.Redis,
    audit: dict[str, str],
) -> None:
    profile, _ = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host, redis_port=redis.port)
    redis.cli("-n", "1", "SET", "page:/", "cached")
    redis.cli("-n", "2", "SET", "keep", "me")
    done = run_cli("--profile", str(profile), "purge", "staging", "--yes", env=audit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert redis.cli("-n", "1", "DBSIZE") == "0" and redis.cli("-n", "2", "GET", "keep") == "me"
    assert audit_lines(audit)[-1]["action"] == "purge"


def test_restart_changes_the_pid(
    run_cli,
    tmp_path: Path,
    where: str,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    profile, _ = deploy_profile(tmp_path, sshd, supervisord, app_repo, where)
    before = supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")["pid"]
    done = run_cli("--profile", str(profile), "restart", "staging", "supervisor:sleeper", "--yes", env=audit)
    assert done.returncode == 0, done.stderr
    after = supervisord.proxy().supervisor.getProcessInfo("sleeper:sleeper")
    assert after["statename"] == "RUNNING" and after["pid"] != before
    missing = run_cli("--profile", str(profile), "restart", "staging", "supervisor:nope", "--yes", env=audit)
    assert missing.returncode == 1 and "no process or group 'nope'" in missing.stderr
    assert [(a["action"], a["target"], a["outcome"]) for a in audit_lines(audit)] == [
        ("restart", "supervisor:sleeper", "success"),
        ("restart", "supervisor:nope", "failed"),
    ]


def test_logs_follow_prints_new_lines_once_each(
    tmp_path: Path,
    where: str,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
) -> None:
    import signal
    import sys

    profile, _ = deploy_profile(tmp_path, sshd, supervisord, app_repo, where)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--profile",
            str(profile),
            "logs",
            "staging",
            "supervisor:counter",
            "-n",
            "5",
            "-f",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **audit},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 60
    while sum(line.startswith("line ") for line in list(lines)) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)  # until enough lines followed, however loaded the machine
    proc.send_signal(signal.SIGINT)
    proc.wait(15)
    reader.join(5)
    numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert len(numbers) > 100  # 5 first, then ~50 a second
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # in order, none twice, none missing
    assert proc.returncode in (0, 130)
    assert audit_lines(audit) == []  # reading changes nothing


def test_sentry_resolve_and_ignore(
    run_cli,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    audit: dict[str, str],
    sentry_server: Any,
) -> None:
    sentry_server.token = TOKEN
    sentry_server.add_issue("KeyError: 'cart'")
    sentry_server.add_issue("TimeoutError")
    profile, _ = deploy_profile(tmp_path, sshd, supervisord, app_repo, "local", sentry_url=sentry_server.url)
    done = run_cli("--profile", str(profile), "resolve", "staging", "SHOP-1", "--yes", env=audit)
    assert done.returncode == 0, done.stderr
    assert "SHOP-1 is now resolved" in done.stdout
    done = run_cli("--profile", str(profile), "ignore", "staging", "4002", "--yes", env=audit)
    assert done.returncode == 0 and "ignored" in done.stdout
    assert [i["status"] for i in sentry_server.issues] == ["resolved", "ignored"]
    assert [a["action"] for a in audit_lines(audit)] == ["resolve", "ignore"]
    requests = len(sentry_server.requests)
    dry = run_cli("--profile", str(profile), "resolve", "staging", "SHOP-2", "--dry-run", env=audit)
    assert dry.returncode == 0 and "PUT" in dry.stdout and '"status": "resolved"' in dry.stdout
    assert "nothing was changed" in dry.stdout
    assert [r["method"] for r in sentry_server.requests[requests:]] in ([], ["GET"])  # a lookup at most
    assert [i["status"] for i in sentry_server.issues] == ["resolved", "ignored"]
    assert [a["action"] for a in audit_lines(audit)] == ["resolve", "ignore"]
