"""Prometheus in the Metrics pane and `status --json`, against a real Prometheus (Debian's package)
scraping a `prometheus_client` exporter this test runs; and the DORA rows of the same pane."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile


@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

    registry = CollectorRegistry()
    requests = Counter("http_requests", "requests", ["status"], registry=registry)
    latency = Histogram("http_request_duration_seconds", "latency", registry=registry, buckets=(0.1, 0.5, 1))
    port = harness.free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.wait(0.05):
            n += 1
            requests.labels(status="500" if n % 10 == 0 else "200").inc()
            latency.observe(0.05 * (n % 12))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    yield port
    stop.set()
    server.shutdown()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, exporter: int) -> Iterator[harness.Prometheus]:
    try:
        server = harness.start_prometheus(tmp_path_factory.mktemp("prom"), [f"127.0.0.1:{exporter}"])
    except harness.ServiceUnavailable as exc:
        pytest.fail(str(exc)) if os.environ.get("CI") else pytest.skip(str(exc))
    yield server
    server.stop()


QUERIES = {
    "requests": "sum(rate(http_requests_total[5s]))",
    "by status": "sum by (status) (rate(http_requests_total[5s]))",
    "errors": 'sum(rate(http_requests_total{status=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))',
    "p95": "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5s])))",
    "broken": "sum(rate(http_requests_total[5s]",
}


def prom_profile(tmp_path: Path, url: str) -> Path:
    queries = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in QUERIES.items())
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
timeout = 5
refresh = 1
[environments.staging]
[environments.staging.prometheus]
url = "{url}"
[environments.staging.prometheus.queries]
{queries}
""",
    )


def wait_for_data(prometheus: harness.Prometheus) -> None:
    from opsconsole.backends.prometheus import PrometheusClient
    from opsconsole.profiles import PrometheusConfig

    client = PrometheusClient(
        PrometheusConfig(url=prometheus.url, queries=(("r", QUERIES["requests"]),)), None, 5
    )

    def ready() -> bool:
        return client.series(time.time()).series["r"].value is not None

    harness.wait_for(ready, 30, "scraped data")
    client.close()


def test_query_values_sums_errors_and_unreachable(prometheus: harness.Prometheus, refused_port: int) -> None:
    from opsconsole.backends.prometheus import PrometheusClient, sparkline
    from opsconsole.errors import UnreachableError
    from opsconsole.profiles import PrometheusConfig

    wait_for_data(prometheus)
    config = PrometheusConfig(url=prometheus.url, queries=tuple(QUERIES.items()))
    client = PrometheusClient(config, None, 5)
    report = client.series(time.time())
    requests = report.series["requests"]
    assert requests.value is not None and 5 < requests.value < 40 and requests.series == 1  # ~20/s
    assert requests.points and all(len(p) == 2 for p in requests.points)
    by_status = report.series["by status"]
    assert by_status.series == 2 and by_status.note == "sum of 2 series"
    assert by_status.value == pytest.approx(requests.value, rel=0.25)
    assert report.series["errors"].value == pytest.approx(0.1, abs=0.06)
    p95 = report.series["p95"].value
    assert p95 is not None and 0.4 < p95 <= 1.0
    broken = report.series["broken"]
    assert broken.value is None and broken.error and "bad_data" in broken.error
    assert sparkline([1, 2, 3, 8]) == "▁▂▃█" and sparkline([0, 0]) == "▁▁"
    client.close()

    dead = PrometheusClient(
        PrometheusConfig(url=f"http://127.0.0.1:{refused_port}", queries=(("r", "up"),)), None, 2
    )
    with pytest.raises(UnreachableError, match="cannot connect"):
        dead.series(time.time())
    dead.close()


def test_status_json_and_the_metrics_pane(
    run_cli: Any, tmp_path: Path, prometheus: harness.Prometheus
) -> None:
    wait_for_data(prometheus)
    path = prom_profile(tmp_path, prometheus.url)
    done = run_cli("--profile", str(path), "status", "--env", "staging", "--json")
    assert done.returncode == 0, done.stderr
    prom = json.loads(done.stdout)["environments"]["staging"]["prometheus"]
    assert prom["error"] is None
    assert prom["series"]["requests"]["value"] > 0 and prom["series"]["requests"]["points"]
    assert prom["series"]["by status"]["series"] == 2
    assert "bad_data" in prom["series"]["broken"]["error"]
    text = run_cli("--profile", str(path), "status", "--env", "staging").stdout
    assert "prometheus:" in text and "requests" in text


async def test_metrics_pane_shows_values_and_sparklines(
    tmp_path: Path, prometheus: harness.Prometheus
) -> None:
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile
    from test_console import pane_texts, panes_built, wait_until

    wait_for_data(prometheus)
    app = make_app(load_profile(prom_profile(tmp_path, prometheus.url)))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: panes_built(app), what="panes")
        await pilot.press("6")

        def rows() -> list[str]:
            return pane_texts(app, "metrics")

        await wait_until(
            pilot, lambda: any(r.startswith("requests") for r in rows()), timeout=20, what="rows"
        )
        found = {r.split(" ")[0]: r for r in rows()}
        assert any(ch in found["requests"] for ch in "▁▂▃▄▅▆▇█")
        assert "sum of 2 series" in next(r for r in rows() if r.startswith("by status"))
        assert "bad_data" in next(r for r in rows() if r.startswith("broken"))
