"""The incident timeline: the merge, order, dedup and "last change before" of sources/timeline.py,
and one run against real services (a deploy over SSH, a Supervisor restart, a new Bugsink issue)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import harness
import test_actions
from opsconsole.backends.docker_engine import ContainerInfo
from opsconsole.backends.nginx import NginxStatus
from opsconsole.backends.releases import DeployState
from opsconsole.backends.runlogs import RunInfo
from opsconsole.backends.sentry import IssuePage, SentryIssue
from opsconsole.backends.supervisor import ProcessInfo
from opsconsole.backends.systemd import UnitInfo, UnitsReport
from opsconsole.sources import timeline
from opsconsole.sources.fanout import SourceResult
from test_actions import deploy_profile
from test_bugsink import send

app_repo = test_actions.app_repo  # the deploy tests' fixture: a git repository with v1 and v2

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC).timestamp()


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy_record(
    release: str, run: str, started: float, finished: float, outcome: str = "success"
) -> dict[str, Any]:
    return {
        "event": "deploy",
        "release": release,
        "ref": "main",
        "commit": "abc123",
        "who": "ana@example.com",
        "run": run,
        "started": at(started),
        "finished": at(finished),
        "outcome": outcome,
    }


def state(host: str, journal: list[dict[str, Any]], runs: list[Any] | None = None) -> DeployState:
    return DeployState(
        host,
        "/srv/shop",
        True,
        journal[-1]["release"] if journal else None,
        journal=journal,
        recent_runs=runs or [],
    )


def process(host: str, name: str, start: float, state_: str = "RUNNING") -> ProcessInfo:
    return ProcessInfo(host, name, name, state_, 42, int(T0 + start), int(T0 + 3600), 0, "pid 42", "", "", "")


def issue(short: str, first: float, last: float, substatus: str | None = None) -> SentryIssue:
    return SentryIssue(
        short,
        short,
        "KeyError: 'cart'",
        "shop.views",
        "error",
        3,
        1,
        at(first),
        at(last),
        "",
        "unresolved",
        substatus,
    )


def results() -> dict[tuple[str, ...], SourceResult[Any]]:
    journal = [
        deploy_record("20261203-115000", "r1", -600, -590),
        {
            "event": "verify",
            "release": "20261203-115000",
            "outcome": "pass",
            "reasons": [],
            "finished": at(-300),
        },
        deploy_record("20261203-120100", "r2", 60, 70),
    ]
    runs = [
        RunInfo(
            "r3",
            {"run": "r3", "action": "restart", "target": "supervisor:web", "who": "bo", "started": at(100)},
            {"type": "end", "ok": True},
            5.0,
        ),
        RunInfo(
            "r2",
            {"run": "r2", "action": "deploy", "target": "", "who": "ana@example.com", "started": at(60)},
            {"type": "end", "ok": True},
            5.0,
        ),
    ]
    unit = UnitInfo(
        "web-2",
        "shop.service",
        "",
        "loaded",
        "active",
        "running",
        "success",
        7,
        0,
        int(T0 + 30),
        None,
        "enabled",
    )
    container = ContainerInfo(
        "web-1",
        "c1",
        "redis",
        "running",
        "",
        "redis:7",
        (),
        None,
        None,
        "2026-12-03T12:00:20.123456789Z",
        "Up",
    )
    return {
        ("supervisor", "web-1"): SourceResult(
            data=[process("web-1", "web", 101), process("web-1", "old", 0, "STOPPED")]
        ),
        ("supervisor", "web-2"): SourceResult(error="web-2: supervisor: connection refused"),
        ("docker", "web-1"): SourceResult(data=[container]),
        ("deploys", "web-1"): SourceResult(data=state("web-1", journal, runs)),
        ("deploys", "web-2"): SourceResult(data=state("web-2", journal)),
        ("systemd", "web-2"): SourceResult(data=UnitsReport("web-2", [unit])),
        ("sentry",): SourceResult(
            data=IssuePage([issue("SHOP-1", 200, 250), issue("SHOP-0", -9000, 230, "regressed")], [])
        ),
    }


def test_merge_is_newest_first_and_deduplicated_per_release() -> None:
    line = timeline.build(results(), T0 + 3600)
    kinds = [(e.kind, e.summary.split(" ")[0]) for e in line.entries]
    times = [e.time for e in line.entries]
    assert times == sorted(times, reverse=True)
    deploys = [e for e in line.entries if e.kind == "deploy"]
    assert [d.release for d in deploys] == ["20261203-120100", "20261203-115000"]  # once each, two hosts
    assert all(d.host == "web-1,web-2" and d.who == "ana@example.com" for d in deploys)
    assert [e.kind for e in line.entries if e.kind == "verify"] == ["verify"]
    # the deploy's own run is on the timeline as its journal record, the restart run as an action
    actions = [e for e in line.entries if e.kind == "action"]
    assert [(a.summary, a.who) for a in actions] == [("restart supervisor:web: ok", "bo")]
    assert ("error", "regressed") in kinds and ("error", "new") in kinds
    restarts = {e.summary for e in line.entries if e.kind == "restart"}
    assert restarts == {
        "supervisor web:web started (RUNNING)",
        "unit shop.service started (active/running)",
        "container redis started (running)",
    }  # the stopped process is no (re)start


def test_a_failing_source_is_missing_with_its_reason() -> None:
    line = timeline.build(results(), T0 + 3600)
    assert line.missing == ["supervisor: web-2: supervisor: connection refused"]
    assert timeline.build({}, T0, runs_error="web-1: could not list the run logs").missing == [
        "runs: web-1: could not list the run logs"
    ]


def test_since_keeps_the_window() -> None:
    line = timeline.build(results(), T0 + 3600, since=T0)
    assert min(e.time for e in line.entries) >= T0
    assert not [e for e in line.entries if e.release == "20261203-115000"]


def test_last_change_before_an_error_is_the_newest_change_before_it() -> None:
    line = timeline.build(results(), T0 + 3600)
    new = next(e for e in line.entries if e.summary.startswith("new issue SHOP-1"))
    change = timeline.last_change_before(line.entries, new.time)
    assert change is not None and change.kind == "restart" and change.summary.startswith("supervisor web:web")
    deploy_only = [e for e in line.entries if e.kind != "restart" and e.kind != "action"]
    change = timeline.last_change_before(deploy_only, new.time)
    assert change is not None and change.release == "20261203-120100"
    note = timeline.lead_note(deploy_only, new)
    assert (
        note
        == "deploy 20261203-120100 (main) by ana@example.com on web-1,web-2: deployed 2 min before this started"
    )
    assert timeline.last_change_before(line.entries, T0 - 100000) is None
    # verifications, errors and alerts are not changes
    assert (
        timeline.last_change_before([e for e in line.entries if e.kind in ("verify", "error")], T0 + 3600)
        is None
    )


def test_alerts_start_and_resolve_and_nginx_bursts() -> None:
    alerts = [
        {
            "labels": {"alertname": "HighErrorRate", "severity": "page", "instance": "web-1"},
            "annotations": {"summary": "5xx over 5%"},
            "startsAt": at(300),
            "endsAt": at(900),
            "fingerprint": "f1",
        },
        {
            "labels": {"alertname": "DiskFull"},
            "annotations": {},
            "startsAt": at(400),
            "endsAt": at(99999),
            "fingerprint": "f2",
        },
    ]
    groups = [{"labels": {}, "alerts": alerts}]
    line = timeline.build({("alerts",): SourceResult(data=groups)}, T0 + 1000)
    assert [e.summary for e in line.entries] == [
        "alert resolved: HighErrorRate [page] 5xx over 5%",
        "alert firing: DiskFull",
        "alert firing: HighErrorRate [page] 5xx over 5%",
    ]  # DiskFull's endsAt is in the future: not resolved

    nginx = NginxStatus("web-1", True, "", master_pid=1, status_counts={"5xx": 12, "2xx": 400})
    burst = timeline.build({("nginx", "web-1"): SourceResult(data=nginx, fetched_at=T0)}, T0)
    assert [(e.kind, e.summary, e.host) for e in burst.entries] == [
        ("error", "nginx: 12 5xx in the last 5 min", "web-1")
    ]


def test_outside_text_is_sanitized() -> None:
    bad = issue("SHOP-9", 10, 10)
    bad = SentryIssue(
        bad.id,
        bad.short_id,
        "boom \x1b[31mred\x1b[0m [bold]x[/bold]",
        "",
        "error",
        1,
        1,
        at(10),
        at(10),
        "",
        "unresolved",
    )
    line = timeline.build({("sentry",): SourceResult(data=IssuePage([bad], []))}, T0 + 60)
    assert "\x1b" not in line.entries[0].summary
    assert timeline.parse_time("0001-01-01T00:00:00Z") is None
    assert timeline.parse_time("2026-12-03T12:00:20.123456789Z") == T0 + 20.123456


# ------------------------------------------------------------------ the pane's rows and its note


def test_pane_rows_and_the_last_change_before_a_selected_error() -> None:
    from opsconsole.panes import timeline as pane
    from opsconsole.panes.spec import PaneData

    line = timeline.build(results(), T0 + 3600)
    data = PaneData([(("timeline",), SourceResult(data=line))], {}, frozenset(), T0 + 3600)
    rows = pane.rows(data)
    assert len(rows) == len(line.entries) and len({r.key for r in rows}) == len(rows)
    new = next(r for r in rows if str(r.cells[2]).startswith("new issue SHOP-1"))
    assert str(new.cells[1]) == "error"
    note = pane.selected_note(data, new.data)
    assert "supervisor web:web started" in note and "restarted 1 min before this started" in note
    assert "R: roll back" in note
    deploy = next(r for r in rows if r.data[2].kind == "deploy")
    assert pane.selected_note(data, deploy.data) == ""  # only alerts and errors are marked
    assert pane.note(data) == "\nmissing: supervisor: web-2: supervisor: connection refused"


# ------------------------------------------------------------------ against real services


@pytest.fixture(scope="module")
def bugsink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        server = harness.start_bugsink(tmp_path_factory.mktemp("bugsink"))
    except harness.ServiceUnavailable as exc:
        pytest.skip(f"Bugsink is not available here: {exc}")
    yield server
    server.stop()


def alerts_landed() -> bool:
    from opsconsole.sources import catalog

    return catalog.source("alerts") is not None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not alerts_landed():
        yield None
        return
    import alertmanager_harness

    server = alertmanager_harness.make(tmp_path_factory.mktemp("am"))
    server.start()
    yield server
    server.stop()


async def test_a_deploy_a_restart_a_new_issue_and_an_alert_in_order(
    run_cli: Any,
    tmp_path: Path,
    sshd: harness.Sshd,
    supervisord: harness.Supervisord,
    app_repo: Path,
    bugsink: Any,
    alertmanager: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile, _root = deploy_profile(tmp_path, sshd, supervisord, app_repo, sshd.host)
    extra = f"""
[environments.staging.bugsink]
url = "{bugsink.url}"
project = {bugsink.project}
token = {{ secret = "bugsink-token" }}
"""
    if alertmanager is not None:
        extra += f"""
[environments.staging.alerts]
url = "{alertmanager.url}"
matchers = ['env="staging"']
"""
    profile.write_text(profile.read_text() + extra)
    env = {
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "OPSCONSOLE_SECRET_BUGSINK_TOKEN": bugsink.token,
        "OPSCONSOLE_USER": "ana",
    }
    for ref in ("v1", "main"):  # two releases: the second is what a rollback would undo
        done = run_cli("--profile", str(profile), "deploy", "staging", "--ref", ref, "--yes", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run_cli("--profile", str(profile), "restart", "staging", "supervisor:sleeper", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    send(bugsink, "shop@timeline", "timeline")
    if alertmanager is not None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        alert = {"alertname": "ShopDown", "env": "staging", "severity": "page"}
        alertmanager.request(
            "POST",
            "/api/v2/alerts",
            [{"labels": alert, "annotations": {"summary": "shop 5xx"}, "startsAt": now}],
        )
        other = {"alertname": "OtherTeam", "env": "production"}
        alertmanager.request("POST", "/api/v2/alerts", [{"labels": other, "startsAt": now}])
        harness.wait_for(lambda: len(alertmanager.alerts()) == 2, 10, "both alerts stored")

    out = run_cli("--profile", str(profile), "timeline", "staging", "--since", "1h", "--json", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["missing"] == []
    entries = data["entries"]
    kinds = [e["kind"] for e in entries]
    deploy = kinds.index("deploy")
    restart = next(
        i
        for i, e in enumerate(entries)
        if e["kind"] == "action" and "restart supervisor:sleeper" in e["summary"]
    )
    started = next(i for i, e in enumerate(entries) if e["kind"] == "restart" and "sleeper" in e["summary"])
    issue = next(
        i for i, e in enumerate(entries) if e["kind"] == "error" and "bad value timeline" in e["summary"]
    )
    assert issue < started < deploy and issue < restart < deploy  # newest first
    assert entries[deploy]["host"] == sshd.host and entries[deploy]["who"].startswith("ana")
    assert kinds.count("deploy") == 2 and "(main)" in entries[deploy]["summary"]
    assert entries[restart]["summary"].endswith(": ok")
    problems = [issue]
    if alertmanager is not None:
        alert_at = next(i for i, e in enumerate(entries) if e["kind"] == "alert")
        assert "ShopDown" in entries[alert_at]["summary"] and alert_at < started
        assert not [e for e in entries if "OtherTeam" in e["summary"]]  # another environment's
        problems.append(alert_at)
    parsed = [timeline.Entry(**{k: v for k, v in e.items() if k != "at"}) for e in entries]
    for index in problems:
        change = timeline.last_change_before(parsed, parsed[index].time)
        assert change is not None and change.kind in ("restart", "action") and "sleeper" in change.summary
        assert "before this started" in timeline.lead_note(parsed, parsed[index])

    from opsconsole.commands.timeline import render

    plain = render(timeline.Timeline(parsed, []), parsed[0].time)
    assert "bad value timeline" in plain and f"deploy {entries[deploy]['release']} (main)" in plain

    # the console: the Timeline pane, a selected issue names the change before it, R plans the rollback
    from textual.widgets import TabbedContent

    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from opsconsole.widgets.pane import Pane
    from test_console import confirm_open, pane_texts, wait_until

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = make_app(load_profile(profile))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(
            pilot, lambda: app.screen.query_one_optional("#timeline", Pane) is not None, what="panes"
        )
        app.screen.query_one(TabbedContent).active = "tab-timeline"
        await wait_until(
            pilot,
            lambda: any("bad value timeline" in t for t in pane_texts(app, "timeline")),
            what="timeline rows",
        )
        pane = app.screen.query_one("#timeline", Pane)
        row = next(i for i, t in enumerate(pane_texts(app, "timeline")) if "bad value timeline" in t)
        pane.table.move_cursor(row=row)
        await wait_until(
            pilot, lambda: "before this started" in pane.status_text.plain, what="the marked change"
        )
        assert "sleeper" in pane.status_text.plain and "R: roll back" in pane.status_text.plain
        await pilot.press("R")
        await wait_until(pilot, lambda: confirm_open(app), what="the rollback's plan")
        assert "roll" in str(app.screen.query_one("#plan-text").render()).lower()
        await pilot.press("escape")


def test_an_unchanged_nginx_log_and_journal_leave_the_fingerprint_and_timeline_as_they_were() -> None:
    """Idle means unchanged: the Nginx 5xx entry is dated by the newest 5xx in the log, not by the
    read, and the delivery metrics' window ends (new to the second at every refresh) do not count,
    so an idle environment's poll stretches and the Timeline draws nothing (issue 34)."""
    import re as _re

    from opsconsole.backends.nginx import COMBINED, NginxStatus, count_access
    from opsconsole.metrics import collect_dora
    from opsconsole.sources import timeline as tl
    from opsconsole.sources.fanout import SourceResult
    from opsconsole.sources.summary import fingerprint

    line = '127.0.0.1 - - [03/Dec/2026:10:00:00 +0000] "GET /boom HTTP/1.1" 502 12 "-" "curl"'
    counts, failing, newest = count_access([line], _re.compile(COMBINED), 0.0, False, 5.0, [])
    assert counts["5xx"] == 1 and newest is not None
    status = NginxStatus("local", True, "", master_pid=1, status_counts=counts, top_failing=failing, last_5xx=newest)
    first = tl.build({("nginx", "local"): SourceResult(data=status, fetched_at=newest + 10)}, newest + 10)
    later = tl.build({("nginx", "local"): SourceResult(data=status, fetched_at=newest + 70)}, newest + 70)
    assert [e.time for e in first.entries] == [e.time for e in later.entries] == [newest]

    journal: tuple[list[dict[str, Any]], list[str]] = ([{"event": "deploy", "outcome": "success", "release": "r1", "finished": "2026-12-01T10:00:00Z"}], [])
    a = collect_dora({"local": journal}, "staging", datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC))
    b = collect_dora({"local": journal}, "staging", datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC))
    assert a["until"] != b["until"]
    assert fingerprint({("dora",): SourceResult(data=a)}) == fingerprint({("dora",): SourceResult(data=b)})
