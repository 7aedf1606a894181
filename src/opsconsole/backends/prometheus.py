"""Prometheus: each configured query's current value and its last hour, for the Metrics pane.

One `GET /api/v1/query_range` per query (start = now − 1 h, step 60 s, so 61 points at most, far
below the server's 11,000-point limit); the value shown is the newest point. A query that returns
several series is shown as their sum per timestamp, and says so. A bad query is that query's error
(Prometheus answers 400 `bad_data` with the parser's message); an unreachable server is the
source's error. `token` is sent as a bearer token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from opsconsole.backends.http_read import BodyTooLarge, BoundedClient, scrub
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import PrometheusConfig
from opsconsole.secrets import Secret, redact

WINDOW = 3600.0
STEP = 60.0


@dataclass(frozen=True)
class Series:
    label: str
    query: str
    value: float | None = None
    points: tuple[tuple[float, float], ...] = ()
    series: int = 0  # how many series the query returned (more than one: summed)
    error: str | None = None

    @property
    def note(self) -> str:
        if self.error:
            return self.error
        if self.series > 1:
            return f"sum of {self.series} series"
        if self.series == 0:
            return "no data"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "points": [[t, v] for t, v in self.points],
            "series": self.series,
            "query": self.query,
            "error": self.error,
        }


@dataclass
class PromReport:
    series: dict[str, Series] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"series": {label: s.to_json() for label, s in self.series.items()}}


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def summed(result: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """A matrix's series added up per timestamp (NaN and ±Inf samples left out)."""
    totals: dict[float, float] = {}
    for item in result:
        for sample in item.get("values") or []:
            if not isinstance(sample, list) or len(sample) != 2:
                continue
            when, value = _number(sample[0]), _number(sample[1])
            if when is not None and value is not None:
                totals[when] = totals.get(when, 0.0) + value
    return sorted(totals.items())


class PrometheusClient:
    def __init__(
        self,
        config: PrometheusConfig,
        token: Secret | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.base = config.url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        self._client = BoundedClient(headers, timeout, transport)

    @property
    def label(self) -> str:
        return f"prometheus {self.base}"

    def close(self) -> None:
        self._client.close()

    def _range(self, query: str, now: float) -> Any:
        params = {"query": query, "start": f"{now - WINDOW:.3f}", "end": f"{now:.3f}", "step": f"{STEP:g}"}
        try:
            response = self._client.request(
                "GET", f"{self.base}/api/v1/query_range", seconds=self.timeout, params=params
            )
        except BodyTooLarge as exc:
            raise UnreachableError(
                redact(f"{self.label}: {exc} (a query over many series? aggregate it, e.g. sum by (job))"),
                "Prometheus",
            ) from None
        except httpx.TimeoutException:
            raise UnreachableError(
                f"{self.label}: timed out after {self.timeout:g} s", "Prometheus"
            ) from None
        except httpx.HTTPError as exc:
            raise UnreachableError(
                redact(f"{self.label}: cannot connect ({exc or type(exc).__name__})"), "Prometheus"
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise UnreachableError(
                f"{self.label}: HTTP {response.status_code} with a body that is not JSON (is this Prometheus?)",
                "Prometheus",
            ) from None
        if response.status_code in (400, 422) and isinstance(body, dict):
            raise OpsError(scrub(f"{body.get('errorType', 'error')}: {body.get('error', '')}", 300), "PromQL")
        if response.status_code == 401 or response.status_code == 403:
            raise UnreachableError(
                f"{self.label}: HTTP {response.status_code} (check prometheus.token)", "Prometheus"
            )
        if response.status_code >= 400 or not isinstance(body, dict) or body.get("status") != "success":
            detail = scrub(str(body.get("error") or ""), 200) if isinstance(body, dict) else ""
            raise UnreachableError(
                redact(f"{self.label}: HTTP {response.status_code} {detail}".strip()), "Prometheus"
            )
        return body.get("data") or {}

    def series(self, now: float) -> PromReport:
        """Every query's last hour; a bad query is its own error, an unreachable server raises."""
        report = PromReport()
        for label, query in self.config.queries:
            try:
                data = self._range(query, now)
            except UnreachableError:
                raise
            except OpsError as exc:
                report.series[label] = Series(label, query, error=exc.message)
                continue
            result = data.get("result") if isinstance(data, dict) else None
            if not isinstance(result, list):
                report.series[label] = Series(label, query, error="unexpected answer (no result list)")
                continue
            points = summed(result)
            value = points[-1][1] if points else None
            report.series[label] = Series(label, query, value, tuple(points), len(result))
        return report


def sparkline(values: list[float], width: int = 30) -> str:
    """`▁▂▅█…` for the last `width` values (scaled between their min and max)."""
    if not values:
        return ""
    values = values[-width:]
    low, high = min(values), max(values)
    bars = "▁▂▃▄▅▆▇█"
    if high - low < 1e-12:
        return (bars[0] if high == 0 else bars[3]) * len(values)
    return "".join(bars[min(7, int((v - low) / (high - low) * 7.999))] for v in values)


def human(value: float | None) -> str:
    """A value as a person reads it: 0.0123 → 0.0123, 1234.5 → 1.23k, 2.5e6 → 2.50M."""
    if value is None:
        return "–"
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.2f}{suffix}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
