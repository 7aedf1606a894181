"""The Metrics pane: delivery (DORA) figures from the deploy journals, then Prometheus queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsconsole.panes.spec import PaneSpec, Results
from opsconsole.widgets.pane import Row, cell

BAND_STYLES = {"elite": "bold green", "high": "green", "medium": "yellow", "low": "red"}


@dataclass
class Metric:
    """A Metrics row's item: `enter` shows its fields whole (a narrow pane cuts the detail
    column), `y` copies its name."""

    name: str
    fields: dict[str, Any]

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return self.fields


def rows_metrics(results: Results) -> list[Row]:
    """DORA's four keys (with their DORA 2024 bands and deploys per week), then each Prometheus
    query's current value and last hour."""
    from opsconsole.backends.prometheus import human, sparkline
    from opsconsole.metrics import per_week_text  # with `statistics`: not needed for the first frame

    rows: list[Row] = []
    for key, result in sorted(results, key=lambda kr: kr[0][0] != "dora"):  # delivery first
        if result.error:
            rows.append(
                Row(
                    f"{key[0]}|error",
                    [
                        cell(key[0], "bold"),
                        cell(""),
                        cell(""),
                        cell(""),
                        cell("✗ " + result.error, "red", limit=160),
                    ],
                    ("metric", "", Metric(key[0], {"error": result.error})),
                )
            )
            continue
        if key[0] == "dora" and result.data is not None:
            d = result.data
            bands = d["bands"]
            lead, fail, rec, freq = (
                d["lead_time_hours"],
                d["change_failure_rate"],
                d["recovery_hours"],
                d["deployment_frequency"],
            )

            def hours(value: float | None) -> str:
                if value is None:
                    return "–"
                return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"

            figures = [
                (
                    "deploys/week",
                    per_week_text(freq["per_week"]),
                    bands["deployment_frequency"],
                    sparkline([float(c) for c in d["weekly"]]),
                    f"{d['deployments']} deploys in 90 days ({freq['bucket']}); the trend: 12 weeks",
                ),
                (
                    "lead time",
                    hours(lead["median"]),
                    bands["lead_time"],
                    "",
                    f"median over {lead['changes']} changes, p90 {hours(lead['p90'])}",
                ),
                (
                    "change failure",
                    "–" if fail["value"] is None else f"{fail['value'] * 100:.0f} %",
                    bands["change_failure_rate"],
                    "",
                    f"{fail['failed']} of {fail['total']} deploys rolled back, marked bad or failed verification",
                ),
                (
                    "recovery",
                    hours(rec["median"]),
                    bands["recovery"],
                    "",
                    f"median over {rec['incidents']} incidents",
                ),
            ]
            for name, value, band, trend, detail in figures:
                rows.append(
                    Row(
                        f"dora|{name}",
                        [
                            cell(name, "bold"),
                            cell(value),
                            cell(band or "–", BAND_STYLES.get(band or "", "dim")),
                            cell(trend, "cyan"),
                            cell(detail),
                        ],
                        ("metric", "", Metric(name, {"value": value, "band": band or "–", "detail": detail})),
                    )
                )
            for error in d.get("errors") or []:
                rows.append(
                    Row(
                        f"dora|err|{error}",
                        [
                            cell("journal", "bold"),
                            cell(""),
                            cell(""),
                            cell(""),
                            cell("✗ " + error, "red", limit=160),
                        ],
                        ("metric", "", Metric("journal", {"error": error})),
                    )
                )
        elif key[0] == "prometheus" and result.data is not None:
            for label, series in result.data.series.items():
                rows.append(
                    Row(
                        f"prom|{label}",
                        [
                            cell(label, "bold"),
                            cell(human(series.value)),
                            cell(""),
                            cell(sparkline([v for _t, v in series.points]), "cyan"),
                            cell(series.note or series.query, "red" if series.error else "dim", limit=160),
                        ],
                        ("metric", "", Metric(label, series.to_json())),
                    )
                )
    return rows


SPEC = PaneSpec(
    "metrics",
    "Metrics",
    ("metric", "value", "band", "trend", "detail"),
    lambda data: rows_metrics(data.results),
    not_configured=(
        "No metrics: delivery metrics come from [environments.ENV.deploy] journals; service metrics from "
        '[environments.ENV.prometheus] url = "http://prometheus:9090" with [environments.ENV.prometheus.queries]'
    ),
)
