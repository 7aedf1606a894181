"""DORA delivery metrics from deploy journals: hand-computed cases, then the CLI over real hosts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness
from conftest import write_profile
from opsconsole.metrics import compute, frequency_bucket, parse_since

SINCE = datetime(2026, 9, 1, tzinfo=UTC)
UNTIL = datetime(2026, 9, 29, tzinfo=UTC)  # four whole weeks


def deploy(release: str, finished: str, commits: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event": "deploy",
        "release": release,
        "outcome": "success",
        "finished": finished,
        **extra,
    }
    if commits is not None:
        record["commits"] = [[f"sha{n}", when, "subject"] for n, when in enumerate(commits)]
    return record


def test_no_deploys() -> None:
    data = compute("prod", [], SINCE, UNTIL)
    assert data["deployments"] == 0 and data["deployment_frequency"] == {"per_week": 0.0, "bucket": "yearly"}
    assert data["lead_time_hours"] == {"median": None, "p90": None, "changes": 0}
    assert data["change_failure_rate"] == {"value": None, "failed": 0, "total": 0}
    assert data["recovery_hours"] == {"median": None, "incidents": 0}
    assert data["bands"]["lead_time"] is None and data["bands"]["deployment_frequency"] is None


def test_one_deploy_with_its_commit_time_only() -> None:
    records = [deploy("r1", "2026-09-10T12:00:00Z", commit_time="2026-09-10T06:00:00+00:00")]
    data = compute("prod", records, SINCE, UNTIL)
    assert data["deployments"] == 1 and data["deployment_frequency"]["per_week"] == 0.25
    assert data["lead_time_hours"] == {"median": 6.0, "p90": 6.0, "changes": 1}
    assert data["bands"]["lead_time"] == "elite"
    assert data["change_failure_rate"]["value"] == 0.0


def test_a_release_on_two_hosts_counts_once_at_its_latest_finish() -> None:
    commits = ["2026-09-10T00:00:00Z", "2026-09-09T00:00:00Z"]
    records = [
        deploy("r1", "2026-09-10T10:00:00Z", commits),  # host 1
        deploy("r1", "2026-09-10T12:00:00Z", commits),  # host 2, later
    ]
    data = compute("prod", records, SINCE, UNTIL)
    assert data["deployments"] == 1
    # changes: 12 h and 36 h after their commits (from the latest finish)
    assert data["lead_time_hours"] == {"median": 24.0, "p90": 36.0, "changes": 2}


def test_commits_older_than_the_window_still_count_for_a_deploy_inside_it() -> None:
    records = [
        deploy("old", "2026-08-20T00:00:00Z", ["2026-08-19T00:00:00Z"]),  # outside the window
        deploy("r1", "2026-09-02T00:00:00Z", ["2026-08-25T00:00:00Z"]),  # inside: 8 days of lead time
    ]
    data = compute("prod", records, SINCE, UNTIL)
    assert data["deployments"] == 1 and data["lead_time_hours"]["median"] == 192.0
    assert data["bands"]["lead_time"] == "medium"


def test_rollback_makes_a_failure_and_its_recovery() -> None:
    records = [
        deploy("r1", "2026-09-02T00:00:00Z"),
        deploy("r2", "2026-09-03T00:00:00Z"),
        {"event": "mark_bad", "release": "r2", "time": "2026-09-03T02:00:00Z"},
        {
            "event": "rollback",
            "from": "r2",
            "to": "r1",
            "release": "r1",
            "outcome": "success",
            "finished": "2026-09-03T02:30:00Z",
        },
        deploy("r3", "2026-09-04T00:00:00Z"),
        deploy("r4", "2026-09-05T00:00:00Z"),
    ]
    data = compute("prod", records, SINCE, UNTIL)
    assert data["change_failure_rate"] == {"value": 0.25, "failed": 1, "total": 4}
    assert data["recovery_hours"] == {"median": 2.5, "incidents": 1}
    assert data["bands"]["recovery"] == "high" and data["bands"]["change_failure_rate"] == "high"


def test_a_rollback_without_a_failed_deploy_in_the_window() -> None:
    """A rollback from a release deployed before the window: no failure inside it to count."""
    records = [
        deploy("r0", "2026-08-01T00:00:00Z"),
        deploy("r1", "2026-09-10T00:00:00Z"),
        {
            "event": "rollback",
            "from": "r0",
            "to": "r1",
            "release": "r1",
            "outcome": "success",
            "finished": "2026-09-11T00:00:00Z",
        },
    ]
    data = compute("prod", records, SINCE, UNTIL)
    assert data["change_failure_rate"] == {"value": 0.0, "failed": 0, "total": 1}
    assert data["recovery_hours"] == {"median": None, "incidents": 0}


def test_a_failed_verification_is_a_change_failure() -> None:
    records = [deploy("r1", "2026-09-10T00:00:00Z"), {"event": "verify", "release": "r1", "outcome": "fail"}]
    assert compute("prod", records, SINCE, UNTIL)["change_failure_rate"]["failed"] == 1


def test_frequency_buckets() -> None:
    def days(*pairs: tuple[int, int]) -> list[datetime]:
        return [datetime(2026, 9, day, hour, tzinfo=UTC) for day, hour in pairs]

    every_day = days(*[(d, 9) for d in range(1, 29)])
    assert frequency_bucket(every_day, SINCE, UNTIL) == "daily"
    weekly = days((2, 9), (9, 9), (16, 9), (23, 9))
    assert frequency_bucket(weekly, SINCE, UNTIL) == "weekly"
    assert frequency_bucket(days((2, 9)), SINCE, UNTIL) == "monthly"
    year = datetime(2026, 1, 1, tzinfo=UTC)
    assert frequency_bucket([datetime(2026, 2, 1, tzinfo=UTC)], year, UNTIL) == "yearly"


def test_since_parsing() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_since("90d", now) == datetime(2026, 8, 28, tzinfo=UTC)
    assert parse_since("2w", now) == datetime(2026, 11, 12, tzinfo=UTC)
    assert parse_since("2026-09-01", now) == SINCE


def test_metrics_cli_reads_every_hosts_journal(run_cli: Any, tmp_path: Path, sshd: harness.Sshd) -> None:
    """Two hosts (local and through the loopback sshd), each with its journal: a release on both
    counts once; `--json` has the documented shape; a host that cannot be read exits 4."""
    root = tmp_path / "srv" / "shop"
    (root / ".opsconsole").mkdir(parents=True)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    committed = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = [deploy("r1", stamp, [committed], who="ann")]
    (root / ".opsconsole" / "deploys.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    profile = write_profile(
        tmp_path,
        f"""
[defaults]
known_hosts = "{sshd.known_hosts}"
identity_file = "{sshd.client_key}"
[environments.prod]
hosts = ["local", "{sshd.host}"]
[environments.prod.deploy]
path = "{root}"
repo = "unused"
""",
    )
    done = run_cli("--profile", str(profile), "metrics", "prod", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {
        "environment",
        "since",
        "until",
        "deployments",
        "deployment_frequency",
        "lead_time_hours",
        "change_failure_rate",
        "recovery_hours",
        "bands",
    }
    assert data["deployments"] == 1 and data["lead_time_hours"]["changes"] == 1
    human = run_cli("--profile", str(profile), "metrics", "prod", "--since", "30d")
    assert human.returncode == 0 and "deployments           1" in human.stdout and "DORA 2024" in human.stdout
    bad = run_cli("--profile", str(profile), "metrics", "prod", "--since", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


async def test_metrics_pane_shows_the_four_keys_from_the_journals(tmp_path: Path) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from test_console import pane_texts, panes_built, wait_until

    root = tmp_path / "srv" / "shop"
    (root / ".opsconsole").mkdir(parents=True)
    now = datetime.now(UTC)
    records = [
        deploy(
            f"r{n}",
            (now - timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            [(now - timedelta(days=n, hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")],
        )
        for n in (1, 2, 3, 9)
    ]
    (root / ".opsconsole" / "deploys.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = write_profile(
        tmp_path,
        f'[environments.prod]\nhosts = ["local"]\n[environments.prod.deploy]\npath = "{root}"\nrepo = "x"\n',
    )
    app = make_app(load_profile(path))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("6")

        def rows() -> list[str]:
            return pane_texts(app, "metrics")

        await wait_until(pilot, lambda: any("deploys/week" in r for r in rows()), what="DORA rows")
        found = rows()
        assert "4 deploys in 90 days" in found[0] and "lead time 3.0 h elite" in found[1]
        assert any(ch in found[0] for ch in "▁▂▃▄▅▆▇█")
