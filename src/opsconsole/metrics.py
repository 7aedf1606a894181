"""DORA delivery metrics from the deploy journals (no git, no external service).

Definitions follow DORA as Four Keys computes them (see README, "Delivery metrics"):
- a deployment is one release with a successful deploy record, counted once however many hosts it
  went to; its time is the latest `finished` across hosts;
- deployment frequency: per week over the window, and the Four Keys bucket (`daily` when the median
  week has at least 3 deploy days, `weekly` when the median week has a deploy, `monthly` when the
  median 30-day month has one, else `yearly`);
- lead time: the median over changes (commits) of deploy finished − commit time, from the record's
  `commits` list (`[[sha, committer_time_iso, subject], …]`) or else its `commit_time`; values ≤ 0 are
  dropped;
- change failure rate: successful deploys later rolled back from, marked bad or failing verification,
  over successful deploys;
- recovery time: the median, over failed deploys, of the time from its `finished` to the `finished`
  of the next successful rollback or deploy that replaced it;
- bands from the DORA 2024 report (elite/high/medium/low).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsconsole.errors import OpsError
from opsconsole.human import parse_time, utc_stamp

WEEK = timedelta(days=7)
MONTH = timedelta(days=30)


@dataclass
class Deployment:
    release: str
    finished: datetime
    commit_times: list[datetime] = field(default_factory=list)
    failed: bool = False


def deployments(records: Iterable[Mapping[str, Any]]) -> tuple[list[Deployment], list[tuple[datetime, str]]]:
    """Successful deployments (one per release, latest finish across hosts), oldest first, and the
    recoveries: (finished, release) of every successful rollback or deploy."""
    by_release: dict[str, Deployment] = {}
    failed: set[str] = set()
    recoveries: list[tuple[datetime, str]] = []
    for record in records:
        event, release = record.get("event"), str(record.get("release") or "")
        finished = parse_time(record.get("finished"))
        if event == "deploy" and record.get("outcome") == "success" and finished and release:
            known = by_release.get(release)
            times = [t for t in (parse_time(c[1]) for c in record.get("commits") or [] if len(c) > 1) if t]
            if not times and parse_time(record.get("commit_time")):
                times = [parse_time(record.get("commit_time"))]  # type: ignore[list-item]
            if known is None:
                by_release[release] = Deployment(release, finished, times)
            else:
                known.finished = max(known.finished, finished)
                known.commit_times = known.commit_times or times
            recoveries.append((finished, release))
        elif event == "rollback" and record.get("outcome") == "success":
            if record.get("from"):
                failed.add(str(record["from"]))
            if finished:
                recoveries.append((finished, release))
        elif event == "mark_bad" and release:
            failed.add(release)
        elif event == "verify" and record.get("outcome") == "fail" and release:
            failed.add(release)
    for release in failed:
        if release in by_release:
            by_release[release].failed = True
    return sorted(by_release.values(), key=lambda d: d.finished), sorted(recoveries)


def frequency_bucket(days: list[datetime], since: datetime, until: datetime) -> str:
    """Four Keys: daily / weekly / monthly / yearly from the median week and month."""
    weeks = max(1, int((until - since) / WEEK + 0.999))
    deploy_days = [set() for _ in range(weeks)]  # type: list[set[Any]]
    for when in days:
        index = min(weeks - 1, int((when - since) / WEEK))
        deploy_days[index].add(when.date())
    if statistics.median(len(d) for d in deploy_days) >= 3:
        return "daily"
    if statistics.median(1 if d else 0 for d in deploy_days) >= 1:
        return "weekly"
    months = max(1, int((until - since) / MONTH + 0.999))
    per_month = [0] * months
    for when in days:
        per_month[min(months - 1, int((when - since) / MONTH))] += 1
    if statistics.median(1 if n else 0 for n in per_month) >= 1:
        return "monthly"
    return "yearly"


def _band_lead(hours: float | None) -> str | None:
    if hours is None:
        return None
    return "elite" if hours < 24 else "high" if hours < 168 else "medium" if hours < 730 else "low"


def _band_failure(rate: float | None) -> str | None:
    """The DORA 2024 clusters sit at 5 % (elite), 10 % (medium), 20 % (high), 40 % (low): the nearest."""
    if rate is None:
        return None
    clusters = {"elite": 0.05, "medium": 0.10, "high": 0.20, "low": 0.40}
    if rate <= 0.05:
        return "elite"
    return min(clusters, key=lambda band: abs(clusters[band] - rate))


def _band_recovery(hours: float | None) -> str | None:
    if hours is None:
        return None
    return "elite" if hours < 1 else "high" if hours < 24 else "medium" if hours < 168 else "low"


def _band_frequency(bucket: str) -> str:
    return {"daily": "elite", "weekly": "high", "monthly": "medium"}.get(bucket, "low")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


def compute(
    env: str, records: Iterable[Mapping[str, Any]], since: datetime, until: datetime
) -> dict[str, Any]:
    """The four keys over [since, until], with the counts each rests on."""
    all_deploys, recoveries = deployments(records)
    window = [d for d in all_deploys if since <= d.finished <= until]
    weeks = max((until - since) / WEEK, 1e-9)
    bucket = frequency_bucket([d.finished for d in window], since, until)
    leads = [
        (d.finished - t).total_seconds() / 3600 for d in window for t in d.commit_times if d.finished > t
    ]
    failed = [d for d in window if d.failed]
    recovery = []
    for deploy in failed:
        after = [when for when, release in recoveries if when > deploy.finished and release != deploy.release]
        if after:
            recovery.append((min(after) - deploy.finished).total_seconds() / 3600)
    lead_median = round(statistics.median(leads), 2) if leads else None
    rate = round(len(failed) / len(window), 4) if window else None
    recovery_median = round(statistics.median(recovery), 2) if recovery else None
    return {
        "environment": env,
        "since": utc_stamp(since),
        "until": utc_stamp(until),
        "deployments": len(window),
        "deployment_frequency": {"per_week": round(len(window) / weeks, 2), "bucket": bucket},
        "lead_time_hours": {
            "median": lead_median,
            "p90": round(percentile(leads, 0.9), 2) if leads else None,
            "changes": len(leads),
        },
        "change_failure_rate": {"value": rate, "failed": len(failed), "total": len(window)},
        "recovery_hours": {"median": recovery_median, "incidents": len(recovery)},
        "bands": {
            "deployment_frequency": _band_frequency(bucket) if window else None,
            "lead_time": _band_lead(lead_median),
            "change_failure_rate": _band_failure(rate),
            "recovery": _band_recovery(recovery_median),
            "source": "DORA 2024",
        },
    }


def weekly(records: Iterable[Mapping[str, Any]], until: datetime, weeks: int = 12) -> list[int]:
    """Successful deployments per week, oldest week first, over the `weeks` weeks before `until`."""
    counts = [0] * weeks
    for deploy in deployments(records)[0]:
        age = (until - deploy.finished) / WEEK
        if 0 <= age < weeks:
            counts[weeks - 1 - int(age)] += 1
    return counts


def collect_dora(
    journals: Mapping[str, tuple[list[dict[str, Any]], list[str]] | Exception],
    env: str,
    now: datetime,
    days: int = 90,
) -> dict[str, Any]:
    """The Metrics pane's DORA figures from every host's journal (a host that failed is named)."""
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    for host, result in journals.items():
        if isinstance(result, Exception):
            errors.append(f"{host}: {result}")
        else:
            records += result[0]
    if errors and len(errors) == len(journals):
        raise OpsError("; ".join(errors), "Journals")
    out = compute(env, records, now - timedelta(days=days), now)
    out["weekly"] = weekly(records, now)
    out["errors"] = errors
    return out


def parse_since(text: str, now: datetime) -> datetime:
    """`90d`, `12w`, `36h`, or an ISO date."""
    units = {"d": timedelta(days=1), "w": WEEK, "h": timedelta(hours=1)}
    if text[-1:] in units and text[:-1].isdigit():
        return now - int(text[:-1]) * units[text[-1]]
    when = parse_time(text if "T" in text else text + "T00:00:00Z")
    if when is None:
        raise ValueError(f"'{text}' is not a duration (90d, 12w, 36h) or a date (2026-09-01)")
    return when


def per_week_text(per_week: float) -> str:
    """Deploys a week as the Metrics pane and `opsconsole metrics` both print it: "0.16", "2.5", "12"."""
    return f"{per_week:.2f}".rstrip("0").rstrip(".") or "0"
