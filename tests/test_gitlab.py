"""The CI gate on GitLab against a GitLab-shaped server on loopback held to the documented fields of
the commit statuses endpoint: the verdict (red, running, green, allow_failure, several statuses of
one name, every page by `x-next-page`), the token (none, wrong), the profile keys, and the real
CLI (`deploy` refused with exit 3 naming jobs and URLs, exit 4 unreachable, `--skip-ci` audited,
`pending --json`, `status` and `status --json`) with the same deploy fixtures as the GitHub gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitlab_server import TOKEN, GitLabServer, Job
from opsconsole.backends.gitlab import GitLabJobs
from opsconsole.profiles import CiConfig, SecretRef, parse_profile_text
from opsconsole.secrets import Secret
from test_actions import git
from test_profiles import errors_of
from test_release import audit, commit, journal, profile

SHA = "18f3e63d05582537db6d183d9d557be09e1f90c8"


@pytest.fixture(scope="module")
def gitlab_module() -> Iterator[GitLabServer]:
    server = GitLabServer().start()
    yield server
    server.stop()


@pytest.fixture
def gitlab(gitlab_module: GitLabServer) -> Iterator[GitLabServer]:
    gitlab_module.reset()
    yield gitlab_module
    assert gitlab_module.violations == [], (
        "the GitLab-shaped server saw requests or sent bodies off the schema"
    )


def client(
    server: GitLabServer, checks: tuple[str, ...] = (), token: str | None = TOKEN, **kw: str
) -> GitLabJobs:
    config = CiConfig(
        provider="gitlab",
        project=kw.get("project", "acme/shop"),
        url=server.url,
        token=SecretRef("gitlab-token") if token else None,
        checks=checks,
    )
    return GitLabJobs(config, Secret("gitlab-token", token) if token else None, 5)


# ------------------------------------------------------------------------ the verdict


def test_red_running_green_and_allow_failure(gitlab: GitLabServer) -> None:
    jobs = client(gitlab)
    try:
        gitlab.set_jobs(SHA, Job("test", "failed"), Job("lint"), Job("deploy-docs", "canceled"))
        red = jobs.state(SHA)
        assert red.state == "failure" and red.provider == "gitlab"
        assert "test: failed (https://gitlab.example.com/acme/shop/-/jobs/1001)" in red.summary()
        assert "deploy-docs: canceled (https://gitlab.example.com/acme/shop/-/jobs/1003)" in red.summary()

        for status in (
            "created",
            "waiting_for_resource",
            "preparing",
            "pending",
            "running",
            "manual",
            "scheduled",
        ):
            gitlab.set_jobs(SHA, Job("test", status), Job("lint"))
            pending = jobs.state(SHA)
            assert pending.state == "pending", status
            assert f"test: {status.replace('_', ' ')} (https://" in pending.summary()

        gitlab.set_jobs(SHA, Job("test"), Job("docs", "skipped"))
        green = jobs.state(SHA)
        assert green.state == "success" and green.summary() == "green (2 check(s))"

        # a job allowed to fail never blocks, failed or still running
        gitlab.set_jobs(
            SHA, Job("test"), Job("audit", "failed", allow_failure=True), Job("e2e", "running", True)
        )
        allowed = jobs.state(SHA)
        assert allowed.state == "success", allowed.summary()
        assert [c["conclusion"] for c in allowed.to_json()["checks"]] == ["success", "failed", None]

        gitlab.set_jobs(SHA)
        assert jobs.state(SHA).state == "pending"  # nothing reported yet is not green
        request = gitlab.requests[-1]
        assert request["path"] == f"/api/v4/projects/acme%2Fshop/repository/commits/{SHA}/statuses"
        assert request["query"]["per_page"] == ["100"] and "ref" not in request["query"]
    finally:
        jobs.close()


def test_several_statuses_of_one_name_and_required_jobs(gitlab: GitLabServer) -> None:
    # two pipelines of one commit (branch and merge request) each report `test`
    jobs = client(gitlab, checks=("test", "build"))
    try:
        gitlab.set_jobs(SHA, Job("test"), Job("build"), Job("test", "failed"), Job("lint", "failed"))
        red = jobs.state(SHA)
        assert red.state == "failure" and "test: failed" in red.summary() and "lint" not in red.summary()
        gitlab.set_jobs(SHA, Job("test"), Job("build"), Job("test", "running"))
        assert jobs.state(SHA).state == "pending"
        gitlab.set_jobs(SHA, Job("test"), Job("test"), Job("lint", "failed"))
        missing = jobs.state(SHA)  # only the named jobs gate; one has not reported
        assert missing.state == "pending" and "build: not reported yet" in missing.summary()
        gitlab.set_jobs(SHA, Job("test"), Job("build"), Job("test"), Job("lint", "failed"))
        assert jobs.state(SHA).state == "success"
    finally:
        jobs.close()


def test_every_page_is_followed_by_x_next_page_without_totals(gitlab: GitLabServer) -> None:
    jobs = client(gitlab, project="42")  # the numeric id works as well as the path
    try:
        gitlab.omit_totals = True  # as GitLab does above 10,000 rows
        gitlab.set_jobs(SHA, *[Job(f"job-{n}") for n in range(249)], Job("last", "failed"))
        red = jobs.state(SHA)
        pages = [r["query"]["page"] for r in gitlab.requests]
        assert pages == [["1"], ["2"], ["3"]] and len(red.checks) == 250
        assert red.state == "failure" and "last: failed" in red.summary()  # found on the third page
        assert gitlab.requests[0]["path"].startswith("/api/v4/projects/42/")
    finally:
        jobs.close()


def test_no_token_and_a_wrong_token_are_named(gitlab: GitLabServer) -> None:
    from opsconsole.errors import OpsError

    anonymous = client(gitlab, token=None)
    wrong = client(gitlab, token="glpat-wrong-value-0000")
    try:
        with pytest.raises(OpsError) as none:
            anonymous.state(SHA)
        assert "HTTP 401" in none.value.message and "no token is set" in none.value.message
        assert "read_api" in none.value.message and "PRIVATE-TOKEN" not in gitlab.requests[-1]["headers"]
        with pytest.raises(OpsError) as bad:
            wrong.state(SHA)
        text = bad.value.message
        assert "HTTP 401" in text and "the secret 'gitlab-token' (ci.token)" in text
        assert "glpat-wrong" not in text and bad.value.exit_code != 4
        assert gitlab.requests[-1]["headers"]["PRIVATE-TOKEN"] == "glpat-wrong-value-0000"
    finally:
        anonymous.close()
        wrong.close()


# ------------------------------------------------------------------------ the profile


def test_profile_keys_per_provider() -> None:
    head = '[environments.a]\nhosts = ["local"]\n[environments.a.ci]\n'
    ok = parse_profile_text(head + 'provider = "gitlab"\nproject = "acme/sub/shop"\n', Path("p.toml"))
    ci = ok.env("a").ci
    assert ci is not None and ci.url == "https://gitlab.com" and ci.project == "acme/sub/shop"
    by_id = parse_profile_text(
        head + 'provider = "gitlab"\nproject = 42\nurl = "https://git.acme.io"\n', Path("p.toml")
    )
    assert by_id.env("a").ci is not None and by_id.env("a").ci.project == "42"  # type: ignore[union-attr]
    github = parse_profile_text(head + 'repository = "acme/shop"\n', Path("p.toml")).env("a").ci
    assert github is not None and github.url == "https://api.github.com" and github.provider == "github"

    assert errors_of(head + 'provider = "bitbucket"\nrepository = "a/b"\n') == [
        "profiles/x.toml:4: 'environments.a.ci.provider' must be one of 'github', 'gitlab' (got 'bitbucket')"
    ]
    assert errors_of(head + 'provider = "gitlab"\n') == [
        "profiles/x.toml:3: 'environments.a.ci' is missing the required key 'project' ('group/app' or a numeric id)"
    ]
    assert errors_of(head + 'provider = "gitlab"\nrepository = "a/b"\n') == [
        "profiles/x.toml:5: 'environments.a.ci.repository' is for provider = \"github\"; with provider = "
        "\"gitlab\" name the code with project = 'group/app' or a numeric id"
    ]
    assert errors_of(head + 'provider = "gitlab"\nproject = "no-group"\n')[0].startswith(
        "profiles/x.toml:5: 'environments.a.ci.project' must be the project's path with its group"
    )
    assert "missing the required key 'repository'" in errors_of(head + 'token = { secret = "t" }\n')[0]


# ------------------------------------------------------------------------ through the CLI


def gitlab_section(url: str, checks: str = "") -> str:
    return f"""
[environments.staging.ci]
provider = "gitlab"
project = "acme/shop"
url = "{url}"
token = {{ secret = "gitlab-token" }}
{checks}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "first", {"app.py": "V = 1\n"}, "2026-11-20T10:00:00+00:00")
    return repo


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "OPSCONSOLE_SECRET_GITLAB_TOKEN": TOKEN}


def test_deploy_is_gated_through_the_cli(
    run_cli: Any, tmp_path: Path, repo: Path, env: dict[str, str], gitlab: GitLabServer, refused_port: int
) -> None:
    path = profile(tmp_path, repo, gitlab_section(gitlab.url))
    sha = git(repo, "rev-parse", "HEAD")
    releases = tmp_path / "srv" / "shop" / "releases"

    gitlab.set_jobs(sha, Job("test", "failed"), Job("rspec", "canceled"), Job("lint"))
    red = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert red.returncode == 3, red.stdout + red.stderr
    assert "CI for main" in red.stderr and "--skip-ci" in red.stderr
    assert "test: failed (https://gitlab.example.com/acme/shop/-/jobs/1001)" in red.stderr
    assert "rspec: canceled (https://gitlab.example.com/acme/shop/-/jobs/1002)" in red.stderr
    assert "GitLab CI checks of" in red.stdout + red.stderr
    assert not releases.exists() or not any(releases.iterdir())  # nothing was built

    dry = run_cli("--profile", str(path), "deploy", "staging", "--dry-run", env=env)
    assert "CI: red: test: failed" in dry.stdout
    assert f"GET {gitlab.url}/api/v4/projects/acme%2Fshop/repository/commits/<sha>/statuses" in dry.stdout

    gitlab.set_jobs(sha, Job("test", "running"), Job("lint"))
    pending = run_cli("--profile", str(path), "pending", "staging", "--json", env=env)
    shown = json.loads(pending.stdout)["ci"]
    assert shown["provider"] == "gitlab" and shown["state"] == "pending"
    assert shown["checks"][0] == {
        "name": "test",
        "status": "running",
        "conclusion": None,
        "url": "https://gitlab.example.com/acme/shop/-/jobs/1001",
    }
    held = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert held.returncode == 3 and "pending: test: running (https://gitlab.example.com" in held.stderr

    skipped = run_cli("--profile", str(path), "deploy", "staging", "--yes", "--skip-ci", env=env)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "CI gate skipped" in skipped.stdout and journal(tmp_path)[-1]["ci_skipped"] is True
    assert audit(tmp_path)[-1]["options"]["skip_ci"] is True

    head = commit(repo, "second", {"app.py": "V = 2\n"}, "2026-11-23T10:00:00+00:00")
    gitlab.set_jobs(head, Job("test"), Job("audit", "failed", allow_failure=True))
    green = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert green.returncode == 0, green.stdout + green.stderr
    assert "green (2 check(s))" in green.stdout
    assert [a["outcome"] for a in audit(tmp_path)] == ["refused", "refused", "success", "success"]

    # status and status --json name the provider and show what runs and the branch head
    gitlab.set_jobs("main", Job("test", "failed"))
    status = run_cli("--profile", str(path), "status", "--env", "staging", "--json", env=env)
    ci = json.loads(status.stdout)["environments"]["staging"]["ci"]
    assert ci["provider"] == "gitlab" and ci["error"] is None
    assert ci["commit"] == head and ci["current"]["state"] == "success"
    assert ci["branch"] == "main" and ci["head"]["state"] == "failure"
    text = run_cli("--profile", str(path), "status", "--env", "staging", env=env)
    assert "GitLab CI: checks of what runs" in text.stdout and "test: failed (https://" in text.stdout

    no_token = run_cli(
        "--profile",
        str(path),
        "pending",
        "staging",
        env={**env, "OPSCONSOLE_SECRET_GITLAB_TOKEN": "nope-nope"},
    )
    assert "HTTP 401" in no_token.stdout and "'gitlab-token' (ci.token)" in no_token.stdout
    assert "nope-nope" not in no_token.stdout

    path = profile(tmp_path, repo, gitlab_section(f"http://127.0.0.1:{refused_port}"))
    down = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert down.returncode == 4 and "cannot reach" in down.stderr and "--skip-ci" in down.stderr


def test_deploys_pane_rows_name_the_provider(gitlab: GitLabServer) -> None:
    from opsconsole.backends.github import ci_report
    from opsconsole.panes.deploys import rows_ci
    from opsconsole.sources.fanout import SourceResult

    jobs = client(gitlab)
    try:
        gitlab.set_jobs(SHA, Job("test"))
        gitlab.set_jobs("main", Job("test", "failed"))
        report = ci_report(jobs, "main", "20261203-1000", SHA, "gitlab")
    finally:
        jobs.close()
    rows = rows_ci([(("ci",), SourceResult(report))])
    texts = [" | ".join(c if isinstance(c, str) else c.plain for c in row.cells) for row in rows]
    assert any("GitLab CI" in t and SHA[:12] in t and "green (1 check(s))" in t for t in texts), texts
    assert any(
        "GitLab CI" in t and "branch head" in t and "red: test: failed (https://" in t for t in texts
    ), texts


def test_deploy_over_ssh_is_refused_naming_the_jobs(
    run_cli: Any, tmp_path: Path, repo: Path, env: dict[str, str], gitlab: GitLabServer, sshd: Any
) -> None:
    path = profile(tmp_path, repo, gitlab_section(gitlab.url, 'checks = ["test"]'), hosts=f'["{sshd.host}"]')
    text = path.read_text().replace(
        "[defaults]", f'[defaults]\nknown_hosts = "{sshd.known_hosts}"\nidentity_file = "{sshd.client_key}"'
    )
    path.write_text(text)
    sha = git(repo, "rev-parse", "HEAD")  # resolved on the SSH host, then asked of GitLab
    gitlab.set_jobs(sha, Job("test", "failed"), Job("test"))
    red = run_cli("--profile", str(path), "deploy", "staging", "--yes", env=env)
    assert red.returncode == 3, red.stdout + red.stderr
    assert (
        f"CI for main ({sha[:12]}) is red: test: failed (https://gitlab.example.com/acme/shop/-/jobs/1001)"
        in (red.stderr)
    )
    assert not (tmp_path / "srv" / "shop" / "releases").exists() or not any(
        (tmp_path / "srv" / "shop" / "releases").iterdir()
    )
