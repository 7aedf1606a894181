"""The fabric deploy strategy against the loopback sshd and supervisord: a real Fabric 3 fabfile
doing a small app's steps (pull, venv, migrate, CSS, collectstatic, compilemessages, restart),
inside the console's lock, journal, audit, run log and watch; cancel by signal; host keys; a task
as a custom action; and a Fabric 1 fabfile through fab-classic in its own venv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import fabric_harness
import harness
from test_actions import git

MANAGE = '''\
"""A stand-in for Django's manage.py: migrate, collectstatic, compilemessages, each real work."""
import json, pathlib, shutil, sys
here = pathlib.Path(__file__).parent
command = sys.argv[1]
if command == "migrate":
    done = json.loads((here / "db.json").read_text()) if (here / "db.json").exists() else []
    for migration in sorted((here / "migrations").glob("*.sql")):
        if migration.name not in done:
            print("Applying", migration.stem)
            done.append(migration.name)
    (here / "db.json").write_text(json.dumps(done))
elif command == "collectstatic":
    shutil.rmtree(here / "staticfiles", ignore_errors=True)
    shutil.copytree(here / "static", here / "staticfiles")
    print(len(list((here / "staticfiles").rglob("*.*"))), "static files copied")
elif command == "compilemessages":
    for po in (here / "locale").rglob("*.po"):
        pairs, msgid = {}, None
        for line in po.read_text().splitlines():
            if line.startswith("msgid "):
                msgid = json.loads(line[6:])
            elif line.startswith("msgstr ") and msgid:
                pairs[msgid] = json.loads(line[7:])
        po.with_suffix(".mo.json").write_text(json.dumps(pairs))
        print("processing", po.relative_to(here))
'''

BUILD_CSS = """\
import pathlib
here = pathlib.Path(__file__).parent
css = "".join(p.read_text() for p in sorted((here / "styles").glob("*.scss")))
(here / "static").mkdir(exist_ok=True)
(here / "static" / "app.css").write_text(css.replace("$brand", "#336699"))
print("css built")
"""

FABFILE = '''\
import os

from fabric import task

APP = {app!r}
REPO = {repo!r}
PIDFILE = {pidfile!r}
SUPERVISORCTL = {supervisorctl!r}


@task
def production(c):
    """Use the production settings."""
    print("settings: production")
    print("secrets:", "SEEN" if os.environ.get("OPSCONSOLE_SECRET_PROBE") else "hidden")


@task
def deploy(c):
    """Pull, install, migrate, build CSS, collect static, compile messages, restart."""
    c.run(f"test -d {{APP}}/.git || git clone -q {{REPO}} {{APP}}")
    c.run(f"cd {{APP}} && git pull -q --ff-only && git rev-parse HEAD > REVISION && cat REVISION")
    c.run(f"cd {{APP}} && (test -x venv/bin/python || python3 -m venv --without-pip venv)")
    c.run(f"cd {{APP}} && venv/bin/python manage.py migrate")
    c.run(f"cd {{APP}} && venv/bin/python build_css.py")
    c.run(f"cd {{APP}} && venv/bin/python manage.py collectstatic")
    c.run(f"cd {{APP}} && venv/bin/python manage.py compilemessages")
    c.run(f"{{SUPERVISORCTL}} restart sleeper:sleeper")


@task
def rollback(c):
    """Back to the previous commit."""
    c.run(f"cd {{APP}} && git reset -q --hard HEAD~1 && git rev-parse HEAD > REVISION && echo rolled back")


@task
def broken(c):
    """A migration that fails."""
    c.run("echo migrating; echo 'no such table: shop_order' >&2; exit 1")


@task
def slow(c):
    """A long task (to be interrupted)."""
    c.run(f"echo slow-started; exec sh -c 'echo $$ > {{PIDFILE}}; exec sleep 60'")


@task
def clear_cache(c):
    """Clear the application cache."""
    c.run(f"rm -rf {{APP}}/cache && mkdir -p {{APP}}/cache && echo cache cleared")
'''

FABFILE1 = """\
from fabric.api import env, run, task

@task
def production():
    env.hosts = [{host!r}]

@task
def deploy():
    run("echo deployed-by-fabric-1 && uname -s")
"""


@dataclass
class World:
    root: Path
    profile: Path
    stranger: Path  # the same environments, with a known_hosts that lacks the sshd's key
    app: Path
    repo: Path
    pidfile: Path
    sshd: harness.Sshd

    def state(self, env: str) -> Path:
        return self.root / "srv" / env / ".opsconsole"

    def journal(self, env: str) -> list[dict[str, Any]]:
        path = self.state(env) / "deploys.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def env(self, audit: str = "audit.jsonl", user: str = "ann") -> dict[str, str]:
        return {
            **os.environ,
            "OPSCONSOLE_AUDIT_LOG": str(self.root / audit),
            "OPSCONSOLE_USER": user,
            "OPSCONSOLE_SECRET_PROBE": "s3cret",  # opsconsole's secrets never reach the fabfile
        }

    def cli(
        self, *args: str, profile: Path | None = None, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", "--profile", str(profile or self.profile), *args],
            capture_output=True,
            text=True,
            env=self.env(**kw),
            timeout=timeout,
            cwd=self.root,
        )

    def start(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "opsconsole", "--profile", str(self.profile), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(**kw),
            cwd=self.root,
        )

    def audit(self, name: str = "audit.jsonl") -> list[dict[str, Any]]:
        path = self.root / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def make_app_repo(repo: Path) -> None:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "manage.py").write_text(MANAGE)
    (repo / "build_css.py").write_text(BUILD_CSS)
    (repo / "styles").mkdir()
    (repo / "styles" / "base.scss").write_text("body { color: $brand; }\n")
    (repo / "migrations").mkdir()
    (repo / "migrations" / "0001_initial.sql").write_text("CREATE TABLE shop_order (id int);\n")
    (repo / "locale" / "fr").mkdir(parents=True)
    (repo / "locale" / "fr" / "django.po").write_text('msgid "Cart"\nmsgstr "Panier"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "migrations" / "0002_price.sql").write_text("ALTER TABLE shop_order ADD price int;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v2")


def profile_text(world_root: Path, sshd: harness.Sshd, known_hosts: Path, fabfile: Path) -> str:
    envs = ""
    for name, tasks, extra in (
        ("production", ["production", "deploy"], 'rollback_tasks = ["rollback"]\n'),
        ("broken", ["broken"], ""),
        ("slow", ["slow"], ""),
    ):
        envs += f"""
[environments.{name}]
hosts = ["{sshd.host}"]

[environments.{name}.deploy]
strategy = "fabric"
path = "{world_root}/srv/{name}"
tasks = {json.dumps(tasks)}
{extra}"""
    return f"""
[project]
name = "shop"

[defaults]
known_hosts = "{known_hosts}"
identity_file = "{sshd.client_key}"
timeout = 10

[fabric]
fabfile = "{fabfile.name}"
expose_tasks = true
{envs}
[[environments.production.actions]]
name = "clear-cache"
title = "Clear the cache"
fab = "clear_cache"
confirm = false

[environments.pair]
hosts = ["{sshd.host}", "root@localhost:{sshd.port}"]

[[environments.pair.actions]]
name = "clear-cache"
fab = "clear_cache"
confirm = false
"""


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, sshd: harness.Sshd, supervisord: harness.Supervisord
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fabric")
    repo = root / "app-repo"
    make_app_repo(repo)
    app = root / "app"
    pidfile = root / "slow.pid"
    supervisorctl = f"{sys.executable} -m supervisor.supervisorctl -s {supervisord.unix_url}"
    fabfile = root / "fabfile.py"
    fabfile.write_text(
        FABFILE.format(app=str(app), repo=str(repo), pidfile=str(pidfile), supervisorctl=supervisorctl)
    )
    # the sshd's key under both names, so the two "hosts" of `pair` are accepted
    known = root / "known_hosts"
    key = sshd.known_hosts.read_text().split(" ", 1)[1]
    known.write_text(f"[127.0.0.1]:{sshd.port} {key}[localhost]:{sshd.port} {key}")
    profile = root / "shop.toml"
    profile.write_text(profile_text(root, sshd, known, fabfile))
    empty = root / "empty_known_hosts"
    empty.write_text("")
    stranger = root / "stranger.toml"
    stranger.write_text(profile_text(root, sshd, empty, fabfile))
    yield World(root, profile, stranger, app, repo, pidfile, sshd)


def test_fabric_deploy_runs_the_fabfile_inside_lock_journal_audit_and_run_log(world: World) -> None:
    done = world.cli("deploy", "production", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    for line in (
        "settings: production",
        "secrets: hidden",
        "Applying 0001_initial",
        "Applying 0002_price",
        "css built",
        "static files copied",
        "processing locale/fr/django.po",
    ):
        assert line in out, out
    assert (world.app / "staticfiles" / "app.css").read_text() == "body { color: #336699; }\n"
    assert json.loads((world.app / "locale" / "fr" / "django.mo.json").read_text()) == {"Cart": "Panier"}
    assert (world.app / "REVISION").read_text().strip() == git(world.repo, "rev-parse", "HEAD")

    record = world.journal("production")[-1]
    assert record["strategy"] == "fabric" and record["outcome"] == "success" and record["exit_code"] == 0
    assert record["tasks"] == ["production", "deploy"] and record["who"] == "ann@" + os.uname().nodename
    assert not (world.state("production") / "lock").exists()
    end = [r for r in world.audit() if r["phase"] == "end" and r["action"] == "deploy"][-1]
    # the plan approved and audited names the exact fab command line and how host keys are held
    assert end["outcome"] == "success" and "$ fab --search-root" in end["plan"]
    assert "production deploy" in end["plan"] and "Host keys: only those in" in end["plan"]
    runs = sorted((world.state("production") / "runs").glob("*.jsonl"))
    assert runs and "Applying 0002_price" in runs[-1].read_text()


def test_a_failing_task_fails_the_deploy_and_is_journalled(world: World) -> None:
    failed = world.cli("deploy", "broken", "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "no such table: shop_order" in failed.stdout + failed.stderr
    assert "fab exited 1" in failed.stdout + failed.stderr
    record = world.journal("broken")[-1]
    assert record["outcome"] == "failed" and record["exit_code"] == 1
    assert not (world.state("broken") / "lock").exists()


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_sigterm_stops_fab_and_its_remote_command_releases_the_lock_and_journals_interrupted(
    world: World,
) -> None:
    world.pidfile.unlink(missing_ok=True)
    deploy = world.start("deploy", "slow", "--yes")
    wait_until(lambda: world.pidfile.exists() and world.pidfile.read_text().strip(), 20, "the remote command")
    remote = int(world.pidfile.read_text())
    assert alive(remote)
    # another process follows the run live (by its id, which the lock names), and a second deploy
    # is refused by the lock
    run = json.loads((world.state("slow") / "lock").read_text())["run"]
    watcher = world.start("--read-only", "watch", "slow", "--run", run, user="bob")
    second = world.cli("deploy", "slow", "--yes", user="carol")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "the deploy lock is held by ann@" in second.stderr

    deploy.send_signal(signal.SIGTERM)
    out, err = deploy.communicate(timeout=10)
    assert deploy.returncode == 128 + signal.SIGTERM, out + err
    wait_until(lambda: not alive(remote), 5, "the remote command to be hung up")
    assert not (world.state("slow") / "lock").exists()
    record = world.journal("slow")[-1]
    assert record["outcome"] == "interrupted" and record["strategy"] == "fabric"
    wout, werr = watcher.communicate(timeout=20)
    assert "slow-started" in wout + werr and "by ann@" in werr, wout + werr
    assert [r["outcome"] for r in world.audit() if r["phase"] == "end" and r["action"] == "deploy"][-1] in (
        "interrupted",
        "failed",
    )


def test_rollback_runs_rollback_tasks_and_without_them_says_so(world: World) -> None:
    if not world.journal("production"):
        assert world.cli("deploy", "production", "--yes").returncode == 0
    before = (world.app / "REVISION").read_text().strip()
    rolled = world.cli("rollback", "production", "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rolled back" in rolled.stdout + rolled.stderr
    assert (world.app / "REVISION").read_text().strip() == git(world.repo, "rev-parse", "HEAD~1") != before
    record = world.journal("production")[-1]
    assert (
        record["event"] == "rollback" and record["outcome"] == "success" and record["tasks"] == ["rollback"]
    )

    none = world.cli("rollback", "broken", "--yes")
    assert none.returncode == 3, none.stdout + none.stderr
    assert "fabfile has no rollback task" in none.stderr


def test_a_fabric_rollback_ends_the_verification_of_the_release_it_left(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after the built-in rollback: the console's banner for the release rolled back from says
    ROLLED BACK, never VERIFIED, and its verification stops."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.deploy.verify import Verifier
    from opsconsole.actions.registry import ACTIONS
    from opsconsole.actions.runner import ActionRun
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import read_profile

    for _ in range(2):  # a release to leave, and one before it
        deployed = world.cli("deploy", "production", "--yes")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    latest = [r for r in world.journal("production") if r.get("event") == "deploy"][-1]["release"]
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(world.root / "audit-inprocess.jsonl"))
    profile = read_profile(world.profile)[0]
    backends = Backends(profile)
    try:
        env = profile.environments["production"]
        verifier = Verifier(backends, env, latest, None, hosts=env.hosts)  # the console's, running
        action = ACTIONS["rollback"](ActionContext(profile, backends), Target(env="production"))
        outcome = ActionRun(action, approved=True).run_to_end()
        assert outcome.ok, outcome.message
        status = verifier.status
        assert status.rolled_back_to not in (None, latest) and verifier.cancel.is_set()
        line = status.line()
        assert "ROLLED BACK" in line and "VERIFIED" not in line and "marked bad" not in line, line
    finally:
        backends.close()


def test_a_fabfile_task_as_a_custom_action(world: World) -> None:
    ran = world.cli("run", "production", "clear-cache")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "cache cleared" in ran.stdout + ran.stderr
    assert (world.app / "cache").is_dir()
    end = [r for r in world.audit() if r["phase"] == "end" and r["action"] == "run"][-1]
    assert end["target"] == "clear-cache" and end["outcome"] == "success" and "fab clear_cache" in end["plan"]
    # with expose_tasks, every task the fabfile lists is the action fab:TASK, titled by its docstring
    exposed = world.cli("run", "production", "fab:clear_cache", "--yes")
    assert exposed.returncode == 0, exposed.stdout + exposed.stderr
    assert "cache cleared" in exposed.stdout
    end = [r for r in world.audit() if r["phase"] == "end" and r["action"] == "run"][-1]
    assert end["target"] == "fab:clear_cache" and "Clear the application cache" in end["plan"]


def test_with_several_hosts_each_line_is_a_line_of_its_host(world: World) -> None:
    ran = world.cli("run", "pair", "clear-cache")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # Fabric 2+ does not prefix; the console's wrapper does, and the CLI shows each host's lines
    assert f"{world.sshd.host} | cache cleared" in ran.stdout, ran.stdout
    assert f"root@localhost:{world.sshd.port} | cache cleared" in ran.stdout, ran.stdout


def test_an_unknown_host_key_is_refused_before_any_task_runs(world: World) -> None:
    (world.app / "cache").mkdir(parents=True, exist_ok=True)
    marker = world.app / "cache" / "kept"
    marker.write_text("x")
    refused = world.cli("run", "production", "clear-cache", profile=world.stranger)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "not found in known_hosts (the profile's known_hosts is" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert marker.exists()  # clear_cache never ran


@pytest.fixture(scope="module")
def fab_classic() -> Path:
    try:
        return fabric_harness.fab_classic()
    except harness.ServiceUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"service unavailable under CI: {exc}")
        pytest.skip(str(exc))


def test_a_fabric1_fabfile_runs_through_fab_classic_and_chooses_its_own_hosts(
    world: World, fab_classic: Path
) -> None:
    fabfile = world.root / "legacy" / "fabfile.py"
    fabfile.parent.mkdir(exist_ok=True)
    fabfile.write_text(FABFILE1.format(host=world.sshd.host))
    profile = world.root / "legacy.toml"
    profile.write_text(
        f"""
[project]
name = "legacy"
[defaults]
known_hosts = "{world.sshd.known_hosts}"
identity_file = "{world.sshd.client_key}"
[fabric]
fabfile = "legacy/fabfile.py"
fab = "{fab_classic}"
hosts_flag = false
[environments.production]
hosts = ["{world.sshd.host}"]
[environments.production.deploy]
strategy = "fabric"
path = "{world.root}/srv/legacy"
tasks = ["production", "deploy"]
"""
    )
    done = world.cli("deploy", "production", "--yes", profile=profile)
    assert done.returncode == 0, done.stdout + done.stderr
    # Fabric 1's `[host] out: …` lines are lines of that host
    assert f"{world.sshd.host} | deployed-by-fabric-1" in done.stdout, done.stdout
    assert "out: deployed" not in done.stdout
    record = [
        json.loads(line)
        for line in (world.root / "srv" / "legacy" / ".opsconsole" / "deploys.jsonl").read_text().splitlines()
    ][-1]
    assert record["outcome"] == "success" and record["strategy"] == "fabric"
    plan = [r for r in world.audit() if r["phase"] == "end" and r["environment"] == "production"][-1]["plan"]
    assert "--reject-unknown-hosts" in plan and "the fabfile chooses its own" in plan


def test_profile_validate_checks_the_fabfile_and_its_tasks(world: World) -> None:
    valid = world.cli("profile", "validate", str(world.profile))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    wrong = world.root / "wrong.toml"
    text = world.profile.read_text().replace('tasks = ["broken"]', 'tasks = ["brokne"]')
    wrong.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "brokne" in t)
    invalid = world.cli("profile", "validate", str(wrong))
    assert invalid.returncode == 2, invalid.stdout + invalid.stderr
    assert f"wrong.toml:{line}: " in invalid.stderr and "has no task 'brokne'" in invalid.stderr
    assert "clear-cache" in invalid.stderr  # the tasks it does list are named


def test_cancel_as_the_console_does_stops_fab_within_seconds(world: World, tmp_path: Path) -> None:
    """`c` in the action screen is ActionRun.cancel(): the same stop as a signal, in-process."""
    from opsconsole.actions.base import ActionContext, Target
    from opsconsole.actions.registry import ACTIONS
    from opsconsole.actions.runner import ActionRun, AuditLog
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import load_profile

    world.pidfile.unlink(missing_ok=True)
    profile = load_profile(world.profile)
    backends = Backends(profile)
    try:
        action = ACTIONS["deploy"](ActionContext(profile, backends, user="dana@x"), Target(env="slow"))
        run = ActionRun(action, approved=True, audit=AuditLog(tmp_path / "audit.jsonl"))
        seen: list[str] = []
        for event in run.events():
            text = getattr(event, "line", "")
            seen.append(text)
            if text == "slow-started":
                wait_until(lambda: world.pidfile.exists() and world.pidfile.read_text().strip(), 10, "pid")
                remote = int(world.pidfile.read_text())
                cancelled = time.monotonic()
                run.cancel()
        assert run.outcome is not None and not run.outcome.ok
        assert run.outcome.message.startswith("interrupted"), run.outcome.message
        assert time.monotonic() - cancelled < 5
        wait_until(lambda: not alive(remote), 5, "the remote command to be hung up")
        assert world.journal("slow")[-1]["outcome"] == "interrupted"
        assert not (world.state("slow") / "lock").exists()
    finally:
        backends.close()
