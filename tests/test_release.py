"""The release as a unit: what goes out (pending commits from a real git history), the CI gate
against a GitHub-shaped server held to GitHub's OpenAPI description, Sentry releases and deploys
against the Sentry-shaped server, and rolling, health-gated deploys across two SSH hosts."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile
from github_server import GitHubServer, Run
from test_actions import git

GH_TOKEN = "ghp_test_token_123"
SENTRY_TOKEN = "sntrys_test_token_123456"


def commit(repo: Path, message: str, files: dict[str, str], when: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", ".")
    os.environ["GIT_COMMITTER_DATE"] = os.environ["GIT_AUTHOR_DATE"] = when
    try:
        git(repo, "commit", "-q", "-m", message)
    finally:
        del os.environ["GIT_COMMITTER_DATE"], os.environ["GIT_AUTHOR_DATE"]
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "first", {"app.py": "V = 1\n"}, "2026-11-20T10:00:00+00:00")
    return repo


def profile(tmp_path: Path, repo: Path, extra: str = "", hosts: str = '["local"]', deploy: str = "") -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
timeout = 10
[environments.staging]
hosts = {hosts}
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
build = ["echo built"]
{deploy}
{extra}
""",
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "OPSCONSOLE_SECRET_GITHUB_TOKEN": GH_TOKEN,
        "OPSCONSOLE_SECRET_SENTRY_TOKEN": SENTRY_TOKEN,
    }


def journal(tmp_path: Path) -> list[dict[str, Any]]:
    text = (tmp_path / "srv" / "shop" / ".opsconsole" / "deploys.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["phase"] == "end"]


# ------------------------------------------------------------------------ what goes out


def test_pending_commits_migrations_and_journal(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str]
) -> None:
    path = profile(tmp_path, repo)
    first_sha = git(repo, "rev-parse", "HEAD")
    before = run_cli("--profile", str(path), "pending", "staging")
    assert before.returncode == 0, before.stderr
    assert "no release yet" in before.stdout and "first deploy" in before.stdout
    assert "CI: not configured" in before.stdout
    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    # the first deploy's record carries just its own commit
    assert journal(tmp_path)[-1]["commits"] == [[first_sha, "2026-11-20T10:00:00+00:00", "first"]]

    shas = [
        commit(repo, f"change {n}", {"app.py": f"V = {n + 100}\n"}, f"2026-11-21T10:{n:02d}:00+00:00")
        for n in range(1, 55)
    ]
    shas.append(
        commit(repo, "add a migration", {"shop/migrations/0002_x.py": "x\n"}, "2026-11-22T09:00:00+00:00")
    )
    git(repo, "checkout", "-q", "-b", "side", shas[0])
    commit(repo, "side work", {"side.txt": "s\n"}, "2026-11-21T12:30:00+00:00")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    head = git(repo, "rev-parse", "HEAD")

    shown = run_cli("--profile", str(path), "pending", "staging", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["current_commit"] == first_sha and data["commit"] == head
    assert data["total"] == 56  # 55 on main + the side commit; the merge commit is left out
    assert data["commits"][0]["subject"] == "add a migration" and data["commits"][0]["author"] == "t"
    assert data["migrations"] == ["shop/migrations/0002_x.py"] and data["behind"] == 0

    text = run_cli("--profile", str(path), "pending", "staging").stdout
    assert f"{shas[-1][:12]} add a migration (t, " in text
    assert "… and 6 more" in text and "MIGRATIONS: the range touches 1 file:" in text

    dry = run_cli("--profile", str(path), "deploy", "staging", "--dry-run")
    assert (
        "What goes out" in dry.stdout and "56 pending commits" in dry.stdout and "MIGRATIONS" in dry.stdout
    )

    older = run_cli("--profile", str(path), "pending", "staging", "--ref", shas[0], "--json")
    assert json.loads(older.stdout)["total"] == 1

    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    record = journal(tmp_path)[-1]
    assert record["commit"] == head and len(record["commits"]) == 56
    assert record["commits"][0] == [shas[-1], "2026-11-22T09:00:00+00:00", "add a migration"]
    assert {c[0] for c in record["commits"]} == {*shas, git(repo, "rev-parse", "side")}

    backwards = run_cli("--profile", str(path), "pending", "staging", "--ref", shas[0])
    assert "goes backwards" in backwards.stdout


def test_pending_over_ssh_names_an_unknown_ref(
    run_cli, tmp_path: Path, repo: Path, sshd: harness.Sshd, env: dict[str, str]
) -> None:
    path = profile(tmp_path, repo, hosts=f'["{sshd.host}"]')
    text = path.read_text().replace(
        "[defaults]", f'[defaults]\nknown_hosts = "{sshd.known_hosts}"\nidentity_file = "{sshd.client_key}"'
    )
    path.write_text(text)
    first = run_cli("--profile", str(path), "pending", "staging", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)  # nothing deployed: resolved with ls-remote, nothing created
    assert data["commit"] == git(repo, "rev-parse", "HEAD") and "first deploy" in data["note"]
    assert not (tmp_path / "srv").exists()
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env).returncode == 0
    commit(repo, "over ssh", {"b.txt": "b\n"}, "2026-11-24T10:00:00+00:00")
    ok = run_cli("--profile", str(path), "pending", "staging", "--json")
    assert ok.returncode == 0, ok.stderr
    assert [c["subject"] for c in json.loads(ok.stdout)["commits"]] == ["over ssh"]
    bad = run_cli("--profile", str(path), "pending", "staging", "--ref", "nope")
    assert bad.returncode == 1 and "ref 'nope' not found" in bad.stdout


# ------------------------------------------------------------------------ CI gate


def ci_section(server: GitHubServer, checks: str = "") -> str:
    return f"""
[environments.staging.ci]
repository = "acme/shop"
url = "{server.url}"
token = {{ secret = "github-token" }}
{checks}
"""


def test_ci_gate_red_pending_green_and_skip(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str], github_server: GitHubServer
) -> None:
    path = profile(tmp_path, repo, ci_section(github_server))
    sha = git(repo, "rev-parse", "HEAD")
    releases = tmp_path / "srv" / "shop" / "releases"

    github_server.set_runs(sha, Run("test", conclusion="failure"), Run("lint"))
    red = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert red.returncode == 3, red.stdout + red.stderr
    assert "CI for main" in red.stderr and "test: failure (https://github.com/acme/shop/runs/1)" in red.stderr
    assert "--skip-ci" in red.stderr and not any(releases.iterdir())  # nothing was built

    dry = run_cli("--profile", str(path), "deploy", "staging", "--dry-run", env=env)
    assert "CI: red: test: failure" in dry.stdout

    github_server.set_runs(sha, Run("test", status="in_progress", conclusion=None), Run("lint"))
    pending = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert pending.returncode == 3 and "pending: test: in progress" in pending.stderr

    skipped = run_cli("--profile", str(path), "deploy", "staging", "--yes", "--skip-ci", env=env)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "CI gate skipped" in skipped.stdout
    assert journal(tmp_path)[-1]["ci_skipped"] is True
    assert audit(tmp_path)[-1]["options"]["skip_ci"] is True

    github_server.set_runs(
        sha, Run("test"), Run("lint", conclusion="neutral"), Run("docs", conclusion="skipped")
    )
    green = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert green.returncode == 0, green.stdout + green.stderr
    assert "green (3 check(s))" in green.stdout
    assert [a["outcome"] for a in audit(tmp_path)] == ["refused", "refused", "success", "success"]

    # a required check must be there and pass; others may fail
    path = profile(tmp_path, repo, ci_section(github_server, 'checks = ["test", "e2e"]'))
    github_server.set_runs(sha, Run("test"), Run("lint", conclusion="failure"))
    missing = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert missing.returncode == 3 and "e2e: not reported yet" in missing.stderr
    github_server.set_runs(sha, Run("test"), Run("e2e"), Run("lint", conclusion="failure"))
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env).returncode == 0


def test_ci_unreachable_exits_4_and_a_bad_token_is_named(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str], refused_port: int, github_server: GitHubServer
) -> None:
    path = profile(
        tmp_path,
        repo,
        f'[environments.staging.ci]\nrepository = "acme/shop"\nurl = "http://127.0.0.1:{refused_port}"\n',
    )
    down = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert down.returncode == 4 and "cannot reach" in down.stderr and "--skip-ci" in down.stderr
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", "--skip-ci", env=env).returncode == 0

    path = profile(tmp_path, repo, ci_section(github_server))
    wrong = run_cli(
        "--profile", str(path), "pending", "staging", env={**env, "OPSCONSOLE_SECRET_GITHUB_TOKEN": "nope"}
    )
    assert "HTTP 401" in wrong.stdout and "ci.token" in wrong.stdout and "nope" not in wrong.stdout


def test_ci_client_pages_combines_statuses_and_reuses_etags(github_server: GitHubServer) -> None:
    from opsconsole.backends.github import GitHubChecks
    from opsconsole.profiles import CiConfig
    from opsconsole.secrets import Secret

    config = CiConfig(repository="acme/shop", url=github_server.url)
    client = GitHubChecks(config, Secret("github-token", GH_TOKEN), 5)
    github_server.set_runs("abc", *[Run(f"job-{n}") for n in range(150)])
    state = client.state("abc")
    assert state.state == "success" and len(state.checks) == 150  # two pages of 100
    charged = github_server.charged
    again = client.state("abc")
    assert again.state == "success" and github_server.charged == charged  # all 304s: no rate limit spent
    assert github_server.not_modified >= 3

    github_server.statuses["abc"] = [("jenkins", "failure")]
    red = client.state("abc")
    assert red.state == "failure" and "jenkins: failure (https://ci.example/1)" in red.summary()
    github_server.statuses["abc"] = [("jenkins", "success"), ("jenkins", "failure")]  # newest first
    assert client.state("abc").state == "success"
    github_server.set_runs("empty")
    github_server.statuses["empty"] = []
    assert client.state("empty").state == "pending"  # nothing reported yet is not green
    client.close()


# ------------------------------------------------------------------------ Sentry releases


def sentry_section(server: Any, extra: str = "") -> str:
    return f"""
[environments.staging.sentry]
url = "{server.url}"
organization = "acme"
project = "shop"
environment = "staging-eu"
token = {{ secret = "sentry-token" }}
releases = true
{extra}
"""


def test_sentry_release_and_deploy_are_created_idempotently(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str], sentry_server: Any, refused_port: int
) -> None:
    path = profile(tmp_path, repo, sentry_section(sentry_server))
    sha = git(repo, "rev-parse", "HEAD")
    done = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    version = f"shop@{sha[:12]}"
    body = sentry_server.releases[version]
    assert body["projects"] == ["shop"] and body["commits"][0]["id"] == sha
    assert body["commits"][0]["message"] == "first" and body["ref"] == "main"
    deployed = sentry_server.deploys[-1]
    assert deployed[0] == version and deployed[1]["environment"] == "staging-eu"
    assert deployed[1]["dateStarted"] <= deployed[1]["dateFinished"]

    again = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)  # same commit: 208
    assert again.returncode == 0 and "existed" in again.stdout and len(sentry_server.deploys) == 2

    # an organization token that may create releases, but not read issues
    sentry_server.tokens.add("sntrys_org_only")
    path = profile(
        tmp_path,
        repo,
        sentry_section(
            sentry_server,
            'release_format = "{project}-{env}-{release}"\nrelease_token = { secret = "sentry-org-token" }',
        ),
    )
    commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    orgtok = run_cli(
        "--profile",
        str(path),
        "deploy",
        "staging",
        "--yes",
        env={**env, "OPSCONSOLE_SECRET_SENTRY_ORG_TOKEN": "sntrys_org_only"},
    )
    assert orgtok.returncode == 0, orgtok.stdout + orgtok.stderr
    newest = journal(tmp_path)[-1]["release"]
    assert f"shop-staging-{newest}" in sentry_server.releases
    assert sentry_server.requests[-1]["auth"] == "Bearer sntrys_org_only"

    # Sentry down: the deploy still succeeds, with a notice
    broken = path.read_text().replace(sentry_server.url, f"http://127.0.0.1:{refused_port}")
    path.write_text(broken)
    down = run_cli(
        "--profile",
        str(path),
        "deploy",
        "staging",
        "--yes",
        env={**env, "OPSCONSOLE_SECRET_SENTRY_ORG_TOKEN": "x"},
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Sentry was not told" in down.stderr
    assert journal(tmp_path)[-1]["outcome"] == "success"


def test_errors_new_in_release_and_regressed(sentry_server: Any) -> None:
    import asyncio

    from opsconsole.backends.sentry import SentryClient
    from opsconsole.profiles import SecretRef, SentryConfig
    from opsconsole.secrets import Secret

    old = sentry_server.add_issue("KeyError: old")
    new = sentry_server.add_issue("ValueError: new")
    sentry_server.first_release[new["id"]] = "shop@abc"
    old["substatus"] = "regressed"
    config = SentryConfig(organization="acme", project="shop", token=SecretRef("t"), url=sentry_server.url)
    client = SentryClient(config, Secret("t", SENTRY_TOKEN), 5)
    page = asyncio.run(client.issues(query="is:unresolved firstRelease:shop@abc"))
    assert [i.title for i in page.issues] == ["ValueError: new"]
    everything = asyncio.run(client.issues())
    assert [i.regressed for i in everything.issues] == [True, False]
    assert "first_release" in everything.issues[0].to_json()


# ------------------------------------------------------------------------ rolling deploys


class Health(BaseHTTPRequestHandler):
    healthy = True

    def do_GET(self) -> None:  # noqa: N802
        ok = type(self).healthy
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[list[harness.Sshd], list[type[Health]], int, Path]]:
    """Two SSH "hosts", each with its own filesystem under tmp_path/srv and its own /etc/hosts in
    which `app.test` is that host's own address (127.0.0.1 and 127.0.0.3), where each runs its app's
    health server on the same port."""
    port = harness.free_port()
    handlers: list[type[Health]] = [type(f"Health{n}", (Health,), {"healthy": True}) for n in range(2)]
    servers = [
        HTTPServer((addr, port), h) for addr, h in zip(("127.0.0.1", "127.0.0.3"), handlers, strict=True)
    ]
    for http in servers:
        threading.Thread(target=http.serve_forever, daemon=True).start()
    hosts: list[harness.Sshd] = []
    known = tmp_path / "known_hosts"
    key_text = ""
    for n, addr in enumerate(("127.0.0.1", "127.0.0.3")):
        etc = tmp_path / f"hosts{n}"
        etc.write_text(f"127.0.0.1 localhost\n{addr} app.test\n")
        server = harness.make_sshd(tmp_path / f"host{n}-sshd", private_dir=tmp_path / "srv", etc_hosts=etc)
        hosts.append(server)
    key_text = hosts[0].client_key.with_suffix(".pub").read_text()
    with (hosts[1].root / "authorized_keys").open("a") as keys:
        keys.write(key_text)
    known.write_text(hosts[0].known_hosts.read_text() + hosts[1].known_hosts.read_text())
    try:
        for server in hosts:
            server.start()
    except harness.ServiceUnavailable as exc:
        pytest.fail(str(exc)) if os.environ.get("CI") else pytest.skip(str(exc))
    yield hosts, handlers, port, known
    for server in hosts:
        server.stop()
    for http in servers:
        http.shutdown()
        http.server_close()


def rolling_profile(tmp_path: Path, repo: Path, hosts: list[harness.Sshd], port: int, known: Path) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
known_hosts = "{known}"
identity_file = "{hosts[0].client_key}"
timeout = 10
[environments.prod]
hosts = ["{hosts[0].host}", "{hosts[1].host}"]
[environments.prod.deploy]
path = "{tmp_path}/srv/shop"
repo = "{repo}"
build = ["echo built"]
restart = ["echo restarted > restarted.txt"]
strategy = "rolling"
batch = 1
host_health = "http://app.test:{port}/healthz"
host_health_timeout = 3
""",
    )


def currents(run_cli: Any, path: Path, env_name: str = "prod") -> dict[str, str | None]:
    out = run_cli("--profile", str(path), "releases", env_name, "--json")
    hosts = json.loads(out.stdout)["hosts"]
    return {
        name: next((r["release"] for r in h["releases"] if r["current"]), None) for name, h in hosts.items()
    }


def test_rolling_deploy_stops_and_switches_every_host_back(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str], two_hosts: Any
) -> None:
    hosts, health, port, known = two_hosts
    path = rolling_profile(tmp_path, repo, hosts, port, known)
    a, b = hosts[0].host, hosts[1].host

    dry = run_cli("--profile", str(path), "deploy", "prod", "--dry-run")
    assert f"batch 1: {a}" in dry.stdout and f"batch 2: {b}" in dry.stdout
    assert "switches every switched host back" in dry.stdout

    first = run_cli("--profile", str(path), "deploy", "prod", "--yes", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "batch 1/2: health" in first.stdout and "batch 2/2: health" in first.stdout
    release1 = currents(run_cli, path)
    assert release1[a] == release1[b] is not None

    commit(repo, "breaks b", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    health[1].healthy = False  # the second host's app will not come up healthy
    second = run_cli("--profile", str(path), "deploy", "prod", "--yes", env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"{b}: health check http://app.test:{port}/healthz failed" in second.stderr
    assert "HTTP 503" in second.stderr and "batch 2/2" in second.stderr
    assert currents(run_cli, path) == release1  # a, already switched, was switched back
    assert f"[{a}] ✓ switch back to releases/{release1[a]}" in second.stdout
    assert second.stdout.count("restart echo restarted") >= 3  # a restarted again on its old release

    health[1].healthy = True
    third = run_cli("--profile", str(path), "deploy", "prod", "--yes", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    now = currents(run_cli, path)
    assert now[a] == now[b] != release1[a]


# ------------------------------------------------------------------------ verification


@pytest.fixture
def health_url() -> Iterator[tuple[str, type[Health]]]:
    handler: type[Health] = type("VerifyHealth", (Health,), {"healthy": True})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    server.shutdown()
    server.server_close()


def verify_profile(tmp_path: Path, repo: Path, health: str, sentry: Any) -> Path:
    text = (
        profile(tmp_path, repo)
        .read_text()
        .replace("[environments.staging]\n", f'[environments.staging]\nhealth = ["{health}"]\n', 1)
    )
    verify = "\n[environments.staging.deploy.verify]\nwindow = 3\nmax_new_issues = 0\n"
    return write_profile(tmp_path, text + sentry_section(sentry) + verify)


def test_deploy_verify_passes_fails_on_new_issues_and_auto_rolls_back(
    run_cli, tmp_path: Path, repo: Path, env: dict[str, str], sentry_server: Any, health_url: Any
) -> None:
    url, health = health_url
    path = verify_profile(tmp_path, repo, url, sentry_server)
    ok = run_cli("--profile", str(path), "deploy", "staging", "--yes", "--verify", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED after 3 s (health 1/1 ok · new issues: 0)" in ok.stdout
    release1 = journal(tmp_path)[-1]
    assert release1 == {**release1, "event": "verify", "outcome": "pass", "reasons": []}

    sha2 = commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    issue = sentry_server.add_issue("ZeroDivisionError: boom", level="error")
    sentry_server.first_release[issue["id"]] = f"shop@{sha2[:12]}"
    warning = sentry_server.add_issue("Slow query", level="warning")
    sentry_server.first_release[warning["id"]] = f"shop@{sha2[:12]}"
    bad = run_cli("--profile", str(path), "deploy", "staging", "--yes", "--verify", env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"1 new issue in shop@{sha2[:12]} (at most 0): SHOP-" in bad.stderr
    assert "ZeroDivisionError: boom" in bad.stderr and "Slow query" not in bad.stderr
    assert "opsconsole rollback staging" in bad.stderr
    record = journal(tmp_path)[-1]
    assert record["event"] == "verify" and record["outcome"] == "fail" and record["reasons"]

    commit(repo, "third", {"app.py": "V = 3\n"}, "2026-11-24T10:00:00+00:00")
    health.healthy = False
    rolled = run_cli(
        "--profile", str(path), "deploy", "staging", "--yes", "--verify", "--auto-rollback", env=env
    )
    assert rolled.returncode == 1, rolled.stdout + rolled.stderr
    assert "health " + url + ": HTTP 503 (twice in a row)" in rolled.stderr
    assert "auto-rollback: rolled back" in rolled.stderr
    records = journal(tmp_path)
    assert [r["event"] for r in records[-3:]] == ["verify", "mark_bad", "rollback"]
    last = audit(tmp_path)[-1]
    assert last["action"] == "rollback" and last["options"]["auto_rollback"] is True
    assert "verification failed" in last["options"]["reason"]

    metrics = run_cli("--profile", str(path), "metrics", "staging", "--json", "--since", "3650d")
    data = json.loads(metrics.stdout)
    assert data["change_failure_rate"]["failed"] == 2 and data["change_failure_rate"]["total"] == 3


async def test_console_shows_the_verification_banner_and_offers_rollback(
    tmp_path: Path, repo: Path, sentry_server: Any, health_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.screens.confirm import ConfirmScreen
    from test_console import confirm_open, panes_built, wait_until

    url, health = health_url
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("OPSCONSOLE_SECRET_SENTRY_TOKEN", SENTRY_TOKEN)
    path = verify_profile(tmp_path, repo, url, sentry_server)
    app = make_app(load_profile(path))

    def banner() -> str:
        widget = app.screen.query_one_optional("#verify")
        return str(widget.render()) if widget is not None and widget.display else ""

    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        assert banner() == ""
        for healthy, verdict in ((True, "VERIFIED"), (False, "FAILED")):
            health.healthy = healthy
            if not healthy:
                commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
            await pilot.press("D")
            await wait_until(
                pilot, lambda: confirm_open(app), timeout=30, what="confirmation"
            )
            # the plan is on screen at once, from the last refresh; what goes out is filled in once
            # the mirror is read (in the background)
            await wait_until(
                pilot,
                lambda: any("What goes out" in line for line in app.screen.plan.summary_lines),  # type: ignore[attr-defined]
                timeout=30,
                what="what goes out",
            )
            await pilot.press("tab", "enter")  # from Cancel to Run (a toast may cover the buttons)
            await wait_until(
                pilot, lambda: not isinstance(app.screen, ConfirmScreen), what=f"run to start {app.screen}"
            )
            runs = 1 if healthy else 2

            def finished(n: int = runs) -> bool:
                return sum(r.outcome is not None for r in app.runs.values()) == n

            def shown(word: str = verdict) -> bool:
                return word in banner()

            await wait_until(pilot, finished, timeout=60, what="deploy")
            await pilot.press("escape")  # back from the action screen: the banner is on the main screen
            await wait_until(pilot, lambda: "left" in banner() or shown(), timeout=10, what="banner")
            await wait_until(pilot, shown, timeout=30, what=verdict)
        assert "R: roll back" in banner() and "HTTP 503 (twice in a row)" in banner()
        await wait_until(
            pilot, lambda: any(n.title == "Verification FAILED" for n in app._notifications), what="toast"
        )


async def test_deploys_pane_and_status_show_ci_of_the_running_release_and_the_head(
    run_cli,
    tmp_path: Path,
    repo: Path,
    env: dict[str, str],
    github_server: GitHubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from test_console import pane_texts, panes_built, wait_until

    path = profile(tmp_path, repo, ci_section(github_server))
    running = git(repo, "rev-parse", "HEAD")
    github_server.set_runs(running, Run("test"))
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env).returncode == 0
    head = commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    github_server.set_runs("main", Run("test", conclusion="failure"))

    status = run_cli("--profile", str(path), "status", "--env", "staging", "--json", env=env)
    ci = json.loads(status.stdout)["environments"]["staging"]["ci"]
    assert ci["commit"] == running and ci["current"]["state"] == "success"
    assert ci["branch"] == "main" and ci["head"]["state"] == "failure" and ci["error"] is None
    assert head  # the branch moved on; CI of its head is red

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = make_app(load_profile(path))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("3")

        def cells() -> list[str]:
            return pane_texts(app, "deploys")

        await wait_until(pilot, lambda: any("branch head" in c for c in cells()), timeout=20, what="CI rows")
        rows = cells()
        assert any(running[:12] in r and "green (1 check(s))" in r for r in rows), rows
        assert any("branch head" in r and "red: test: failure" in r for r in rows), rows


async def test_errors_pane_toggles_new_in_the_running_release(
    run_cli,
    tmp_path: Path,
    repo: Path,
    env: dict[str, str],
    sentry_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.widgets.pane import Pane
    from test_console import panes_built, wait_until

    path = profile(tmp_path, repo, sentry_section(sentry_server))
    assert run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env).returncode == 0
    sha = git(repo, "rev-parse", "HEAD")
    old = sentry_server.add_issue("KeyError: old")
    old["substatus"] = "regressed"
    new = sentry_server.add_issue("ValueError: new in this release")
    sentry_server.first_release[new["id"]] = f"shop@{sha[:12]}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = make_app(load_profile(path))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        pane = app.screen.query_one("#errors", Pane)

        def titles() -> list[str]:
            return [str(pane.table.get_row_at(n)[2]) for n in range(pane.table.row_count)]

        await pilot.press("4")
        await wait_until(pilot, lambda: len(titles()) == 2, what="all issues")
        assert "↺ regressed · KeyError: old" in titles()
        await wait_until(
            pilot, lambda: app.results["staging"].get(("deploys", "local")) is not None, what="deploys"
        )
        await pilot.press("n")
        await wait_until(pilot, lambda: titles() == ["ValueError: new in this release"], what="new only")
        assert f"new in shop@{sha[:12]} only" in str(pane.status_text)
        assert sentry_server.requests[-1]["query"]["query"] == [f"is:unresolved firstRelease:shop@{sha[:12]}"]
        await pilot.press("n")
        await wait_until(pilot, lambda: len(titles()) == 2, what="all again")
