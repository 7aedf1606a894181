"""A console with fixed data and a frozen clock, for snapshot tests (no IO: live refresh is off)."""

from __future__ import annotations

from pathlib import Path

from opsconsole.app import OpsConsoleApp, make_app
from opsconsole.backends.docker_engine import ContainerInfo, ContainerStats
from opsconsole.backends.health import HealthResult
from opsconsole.backends.releases import DeployState, LockInfo
from opsconsole.backends.sentry import IssuePage, SentryIssue
from opsconsole.backends.supervisor import ProcessInfo
from opsconsole.profiles import parse_profile_text
from opsconsole.sources.fanout import SourceResult

NOW = 1_764_151_200.0  # 2025-11-26 10:00:00 UTC
PROFILE = """
[project]
name = "shop"
[defaults]
refresh = 5
[environments.staging]
hosts = ["web-1", "web-2"]
color = "yellow"
health = ["https://staging.example.com/healthz", "https://staging.example.com/api/ping"]
[environments.staging.supervisor]
url = "unix:///var/run/supervisor.sock"
[environments.staging.docker]
url = "unix:///var/run/docker.sock"
[environments.staging.deploy]
path = "/srv/shop"
repo = "git@example.com:acme/shop.git"
[environments.staging.logs]
files = ["/var/log/app.log"]
[environments.staging.prometheus]
url = "http://prometheus.internal:9090"
[environments.staging.prometheus.queries]
requests = "sum(rate(http_requests_total[5m]))"
"error ratio" = 'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
p95 = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
[environments.staging.sentry]
organization = "acme"
project = "shop"
token = { secret = "sentry-token" }
[environments.production]
hosts = ["web-3"]
protected = true
color = "red"
[environments.production.deploy]
path = "/srv/shop"
repo = "git@example.com:acme/shop.git"
build = ["make build"]
restart = ["supervisor:shop-web"]
"""


def proc(host: str, group: str, name: str, state: str, pid: int, description: str) -> ProcessInfo:
    start = int(NOW) - 3725 if state == "RUNNING" else 0
    return ProcessInfo(host, group, name, state, pid, start, int(NOW), 0, description, "", "", "")


def build() -> OpsConsoleApp:
    profile = parse_profile_text(PROFILE, Path("profiles/shop.toml"), "shop")
    app = make_app(profile, live=False, clock=lambda: NOW)
    r = app.results["staging"]
    ok = lambda data: SourceResult(data=data, fetched_at=NOW - 2)  # noqa: E731
    r[("supervisor", "web-1")] = ok(
        [
            proc("web-1", "web", "web_0", "RUNNING", 4100, "pid 4100, uptime 1:02:05"),
            proc(
                "web-1", "worker", "worker", "FATAL", 0, "Exited too quickly (process log may have details)"
            ),
            proc("web-1", "[bold]evil[/]", "\x1b]52;c;cHduZWQ=\x07name", "STOPPED", 0, "Not started"),
        ]
    )
    r[("supervisor", "web-2")] = SourceResult(error="web-2: ssh: timed out after 5 s", fetched_at=NOW - 2)
    r[("docker", "web-1")] = ok(
        [
            ContainerInfo(
                "web-1",
                "0123456789ab",
                "shop-web-1",
                "running",
                "healthy",
                "shop:2.3.0",
                ("127.0.0.1:8000->80/tcp",),
                "shop",
                "web",
                "2025-11-26T09:00:00Z",
                "Up 1 hour (healthy)",
            ),
            ContainerInfo(
                "web-1",
                "ba9876543210",
                "shop-redis-1",
                "running",
                "none",
                "redis:7",
                (),
                "shop",
                "redis",
                "2025-11-26T09:00:00Z",
                "Up 1 hour",
            ),
        ]
    )
    r[("docker", "web-2")] = SourceResult(error="web-2: ssh: timed out after 5 s", fetched_at=NOW - 2)
    app.stats["staging"]["web-1"] = {
        "shop-web-1": ContainerStats("shop-web-1", 3.5, 120 * 1024 * 1024, 1 << 30, 11.7)
    }
    r[("deploys", "web-1")] = ok(
        DeployState(
            "web-1",
            "/srv/shop",
            True,
            "20251126T090000Z",
            ["20251125T170000Z", "20251126T090000Z"],
            LockInfo("ann@laptop", "2025-11-26T09:58:00Z", "release 2.3.1"),
            [
                {
                    "event": "deploy",
                    "release": "20251126T090000Z",
                    "ref": "v2.3.0",
                    "who": "bob@box",
                    "outcome": "success",
                    "started": "2025-11-26T09:00:00Z",
                    "finished": "2025-11-26T09:01:30Z",
                }
            ],
        )
    )
    r[("deploys", "web-2")] = SourceResult(error="web-2: ssh: timed out after 5 s", fetched_at=NOW - 2)
    issues = [
        SentryIssue(
            "4001",
            "SHOP-1",
            "ZeroDivisionError: division by zero",
            "app.views in checkout",
            "error",
            42,
            7,
            "2025-11-20T10:00:00Z",
            "2025-11-26T09:55:00Z",
            "https://acme.sentry.io/issues/4001/",
            "unresolved",
        ),
        SentryIssue(
            "4002",
            "SHOP-2",
            "[link=http://evil]click[/link] \x1b[2J",
            "",
            "warning",
            3,
            1,
            None,
            "2025-11-26T08:00:00Z",
            "",
            "unresolved",
        ),
    ]
    r[("sentry",)] = ok(IssuePage(issues, []))
    r[("health",)] = ok(
        [
            HealthResult("https://staging.example.com/healthz", True, 200, 31.0, None),
            HealthResult("https://staging.example.com/api/ping", False, None, None, "timed out after 5 s"),
        ]
    )
    from opsconsole.backends.prometheus import PromReport, Series

    wave = [(NOW - 3600 + 60 * n, 20 + 8 * ((n % 12) - 6) ** 2 / 36) for n in range(61)]
    r[("prometheus",)] = ok(
        PromReport(
            {
                "requests": Series("requests", "sum(rate(...))", wave[-1][1], tuple(wave), 1),
                "error ratio": Series(
                    "error ratio", "...", 0.012, tuple((t, 0.01 + v / 4000) for t, v in wave), 2
                ),
                "p95": Series("p95", "histogram_quantile(...)", error="bad_data: parse error at char 12"),
            }
        )
    )
    r[("dora",)] = ok(
        {
            "deployments": 23,
            "deployment_frequency": {"per_week": 1.79, "bucket": "weekly"},
            "lead_time_hours": {"median": 30.5, "p90": 140.2, "changes": 96},
            "change_failure_rate": {"value": 0.087, "failed": 2, "total": 23},
            "recovery_hours": {"median": 0.75, "incidents": 2},
            "bands": {
                "deployment_frequency": "high",
                "lead_time": "high",
                "change_failure_rate": "medium",
                "recovery": "elite",
                "source": "DORA 2024",
            },
            "weekly": [1, 2, 0, 3, 2, 1, 2, 4, 2, 1, 3, 2],
            "errors": [],
        }
    )
    return app
