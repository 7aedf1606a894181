"""The incident timeline of one environment: what changed and what broke, newest first.

`build(results, now)` merges what the read model's sources already fetched (no read of its own):
deploys, rollbacks and verifications from every host's journal (once per release and run, with the
hosts it touched), actions from the run logs the `deploys` source read on the first host, process,
unit and container (re)starts, new and regressed error-tracker issues, alerts starting and resolving
and Nginx 5xx bursts. A source that failed is not dropped silently: its reason is in `missing`.
Every text is sanitized here; times are epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.human import duration
from opsconsole.sanitize import clean

KINDS = ("deploy", "rollback", "verify", "action", "restart", "error", "alert")
CHANGES = frozenset({"deploy", "rollback", "action", "restart"})  # what `last_change_before` looks at
PROBLEMS = frozenset({"error", "alert"})  # rows whose last change before them is marked
TEXT = 160  # characters of a summary
LIMIT = 500  # entries kept, newest first

Results = Mapping[tuple[str, ...], Any]  # source key -> SourceResult


@dataclass(frozen=True)
class Entry:
    time: float  # epoch seconds
    kind: str  # one of KINDS
    summary: str
    who: str = ""
    host: str = ""  # one host, or several joined with ","; "" for the environment
    source: str = ""  # the catalog source it came from
    release: str = ""  # the release a deploy/rollback/verify is of

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = stamp(self.time)
        return data


@dataclass
class Timeline:
    entries: list[Entry] = field(default_factory=list)  # newest first
    missing: list[str] = field(default_factory=list)  # "SOURCE: reason" of each part that is missing

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.to_json() for e in self.entries], "missing": list(self.missing)}


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an epoch number or an ISO 8601 text (`Z`, offsets, fractions beyond
    microseconds as Docker writes them); None for anything else or a zero time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # at most 6 fraction digits for fromisoformat on 3.11
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = head + "." + digits[:6] + rest[len(digits) :]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.year < 1971:  # Docker's "0001-01-01T00:00:00Z": never started
        return None
    return when.timestamp()


def _text(value: Any, limit: int = TEXT) -> str:
    return clean(str(value), limit) if value is not None else ""


# ------------------------------------------------------------------ per source


def _journal(results: list[tuple[str, Any]]) -> list[Entry]:
    """Deploy, rollback and verify records of every host's journal, each once: records of one
    release by one run (or of one verification) are merged, with the hosts that wrote them."""
    merged: dict[tuple[str, ...], tuple[dict[str, Any], list[str]]] = {}
    order: list[tuple[str, ...]] = []
    for host, state in results:
        for record in getattr(state, "journal", []) or []:
            if not isinstance(record, dict):
                continue
            event = record.get("event")
            if event not in ("deploy", "rollback", "verify"):
                continue
            key = (
                str(event),
                str(record.get("release", "")),
                str(record.get("run") or record.get("started") or record.get("finished") or ""),
                str(record.get("outcome", "")),
            )
            if key not in merged:
                merged[key] = (record, [])
                order.append(key)
            if host not in merged[key][1]:
                merged[key][1].append(host)
    out: list[Entry] = []
    for found in order:
        record, hosts = merged[found]
        when = parse_time(record.get("finished")) or parse_time(record.get("started"))
        if when is None:
            continue
        event, release, outcome = found[0], found[1], found[3]
        if event == "deploy":
            summary = f"deploy {release}"
            if record.get("ref"):
                summary += f" ({record.get('ref')})"
        elif event == "rollback":
            summary = f"rollback {record.get('from') or '?'} -> {release}"
        else:
            summary = f"verify {release}"
        if outcome and outcome != "success":
            summary += f": {outcome}"
        if event == "verify" and record.get("reasons"):
            reasons = record.get("reasons")
            if isinstance(reasons, list):
                summary += " (" + "; ".join(str(r) for r in reasons[:3]) + ")"
        out.append(
            Entry(
                when, event, _text(summary), _text(record.get("who", "")), ",".join(hosts), "deploys", release
            )
        )
    return out


def _runs(runs: Iterable[Any], journalled: set[str]) -> list[Entry]:
    """Actions from the run logs (who, what, outcome); runs whose journal records are already on
    the timeline (deploys and rollbacks) are not repeated."""
    out: list[Entry] = []
    for run in runs:
        if getattr(run, "run", None) in journalled:
            continue
        start = getattr(run, "start", {}) or {}
        when = parse_time(start.get("started"))
        if when is None:
            continue
        end = getattr(run, "end", None)
        if end is None:
            outcome = "running" if getattr(run, "running", False) else "no end (its writer is gone)"
        else:
            outcome = "ok" if end.get("ok") else f"failed: {end.get('message', '')}"
        what = f"{start.get('action', '?')} {start.get('target', '')}".strip()
        hosts = start.get("hosts")
        host = ",".join(str(h) for h in hosts) if isinstance(hosts, list) else ""
        out.append(
            Entry(when, "action", _text(f"{what}: {outcome}"), _text(start.get("who", "")), host, "runs")
        )
    return out


def _processes(host: str, procs: Iterable[Any]) -> list[Entry]:
    out = []
    for p in procs:
        when = parse_time(getattr(p, "start", 0))
        if when is None or getattr(p, "state", "") not in ("RUNNING", "STARTING", "BACKOFF"):
            continue
        name = f"{p.group}:{p.name}" if getattr(p, "group", "") else p.name
        out.append(
            Entry(when, "restart", _text(f"supervisor {name} started ({p.state})"), "", host, "supervisor")
        )
    return out


def _containers(host: str, containers: Iterable[Any]) -> list[Entry]:
    out = []
    for c in containers:
        when = parse_time(getattr(c, "started_at", None))
        if when is None:
            continue
        out.append(
            Entry(when, "restart", _text(f"container {c.name} started ({c.state})"), "", host, "docker")
        )
    return out


def _units(host: str, report: Any) -> list[Entry]:
    out = []
    for u in getattr(report, "units", []) or []:
        when = parse_time(getattr(u, "since", None))
        if when is None or getattr(u, "active", "") not in ("active", "activating", "reloading"):
            continue
        out.append(
            Entry(when, "restart", _text(f"unit {u.unit} started ({u.active}/{u.sub})"), "", host, "systemd")
        )
    return out


def _issues(page: Any) -> list[Entry]:
    out = []
    for issue in getattr(page, "issues", []) or []:
        title = f"{issue.short_id or issue.id} {issue.title}".strip()
        when = parse_time(issue.first_seen)
        if when is not None:
            summary = f"new issue {title}"
            if getattr(issue, "first_release", None):
                summary += f" (first in {issue.first_release})"
            out.append(Entry(when, "error", _text(summary), "", "", "sentry"))
        if getattr(issue, "regressed", False):
            again = parse_time(issue.last_seen)
            if again is not None:
                out.append(Entry(again, "error", _text(f"regressed {title}"), "", "", "sentry"))
    return out


def _get(item: Any, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        if value is not None:
            return value
    return None


def _alert_items(data: Any) -> list[Any]:
    """The alerts of an `alerts` result: a list of alerts or of groups, or an object holding them."""
    items = _get(data, "alerts", "groups") if not isinstance(data, list) else data
    out: list[Any] = []
    for item in items or []:
        inner = _get(item, "alerts")
        if isinstance(inner, list) and _get(item, "startsAt", "starts_at") is None:
            out.extend(inner)
        else:
            out.append(item)
    return out


def _alerts(data: Any, now: float) -> list[Entry]:
    out = []
    seen: set[tuple[Any, ...]] = set()
    for alert in _alert_items(data):
        labels = _get(alert, "labels") or {}
        annotations = _get(alert, "annotations") or {}
        name = labels.get("alertname", "alert") if isinstance(labels, dict) else "alert"
        summary = annotations.get("summary", "") if isinstance(annotations, dict) else ""
        severity = labels.get("severity", "") if isinstance(labels, dict) else ""
        instance = labels.get("instance", "") if isinstance(labels, dict) else ""
        fingerprint = _get(alert, "fingerprint") or repr(
            sorted(labels.items()) if isinstance(labels, dict) else labels
        )
        starts = parse_time(_get(alert, "startsAt", "starts_at"))
        ends = parse_time(_get(alert, "endsAt", "ends_at"))
        if (fingerprint, starts) in seen:
            continue
        seen.add((fingerprint, starts))
        what = " ".join(str(x) for x in (name, f"[{severity}]" if severity else "", summary) if x)
        if starts is not None:
            out.append(Entry(starts, "alert", _text(f"alert firing: {what}"), "", _text(instance), "alerts"))
        if ends is not None and ends <= now:
            out.append(Entry(ends, "alert", _text(f"alert resolved: {what}"), "", _text(instance), "alerts"))
    return out


def _nginx(host: str, status: Any, fetched_at: float) -> list[Entry]:
    fives = getattr(status, "fives", 0) or 0
    if not fives:
        return []
    window = getattr(status, "window", 5.0)
    paths = ", ".join(f"{p.path} {p.status}" for p in (getattr(status, "top_failing", []) or [])[:3])
    summary = f"nginx: {fives} 5xx in the last {window:g} min" + (f" ({paths})" if paths else "")
    # at the newest 5xx's time, not the read's: an unchanged log is an unchanged entry, and an
    # idle timeline draws nothing
    when = getattr(status, "last_5xx", None) or fetched_at
    return [Entry(when, "error", _text(summary), "", host, "nginx")]


# ------------------------------------------------------------------ the merge


def build(
    results: Results,
    now: float,
    since: float | None = None,
    runs: Iterable[Any] | None = None,
    runs_error: str | None = None,
) -> Timeline:
    """The environment's timeline from its results (source key -> SourceResult), newest first,
    only entries at or after `since` (epoch seconds) when given. `runs`: the run logs' newest runs
    when the caller read them itself; otherwise those the `deploys` source kept."""
    entries: list[Entry] = []
    missing: list[str] = []
    journals: list[tuple[str, Any]] = []
    kept_runs: list[Any] = []
    for key, result in results.items():
        name = key[0]
        host = key[1] if len(key) > 1 else ""
        error = getattr(result, "error", None)
        data = getattr(result, "data", None)
        if name == "timeline":
            continue
        if error:
            if name in SOURCES:
                missing.append(_text(f"{name}: {error}", 300))
            continue
        if data is None:
            continue
        if name == "deploys":
            journals.append((host, data))
            kept_runs += list(getattr(data, "runs", []) or [])
            kept_runs += list(getattr(data, "recent_runs", []) or [])
            for warning in getattr(data, "warnings", []) or []:
                if str(warning).startswith("run logs:"):
                    missing.append(_text(f"runs: {host}: {str(warning).removeprefix('run logs: ')}", 300))
        elif name == "supervisor":
            entries += _processes(host, data)
        elif name == "docker":
            entries += _containers(host, data)
        elif name == "systemd":
            entries += _units(host, data)
        elif name == "sentry":
            entries += _issues(data)
        elif name == "alerts":
            entries += _alerts(data, now)
        elif name == "nginx":
            entries += _nginx(host, data, getattr(result, "fetched_at", now))
    journal = _journal(journals)
    entries += journal
    journalled = {
        str(r.get("run"))
        for _, s in journals
        for r in getattr(s, "journal", []) or []
        if isinstance(r, dict) and r.get("run")
    }
    if runs_error:
        missing.append(_text(f"runs: {runs_error}", 300))
    unique: dict[str, Any] = {}
    for run in list(runs or []) + kept_runs:
        unique.setdefault(str(getattr(run, "run", "")), run)
    entries += _runs(unique.values(), journalled)
    if since is not None:
        entries = [e for e in entries if e.time >= since]
    # newest first; at one second, a change sorts after (below) what it caused
    rank = {
        kind: i
        for i, kind in enumerate(("alert", "error", "verify", "restart", "action", "rollback", "deploy"))
    }
    entries.sort(key=lambda e: (-e.time, rank.get(e.kind, 0), e.host, e.summary))
    return Timeline(entries[:LIMIT], sorted(set(missing), key=missing.index))


SOURCES = frozenset({"deploys", "supervisor", "docker", "systemd", "sentry", "alerts", "nginx"})


def last_change_before(entries: Iterable[Entry], t: float) -> Entry | None:
    """The newest deploy, rollback, action or restart at or before `t` (a change in the same
    second as a problem may have caused it)."""
    best: Entry | None = None
    for entry in entries:
        if entry.kind in CHANGES and entry.time <= t and (best is None or entry.time > best.time):
            best = entry
    return best


VERBS = {"deploy": "deployed", "rollback": "rolled back", "action": "ran", "restart": "restarted"}


def lead_note(entries: Iterable[Entry], problem: Entry) -> str:
    """`deploy 20261203-1204 deployed 4 min before this started` for an alert or error; "" for
    other rows or when nothing changed before it."""
    if problem.kind not in PROBLEMS:
        return ""
    change = last_change_before(entries, problem.time)
    if change is None:
        return "no change on the timeline before this started"
    verb = VERBS.get(change.kind, change.kind)
    who = f" by {change.who}" if change.who else ""
    where = f" on {change.host}" if change.host else ""
    return f"{change.summary}{who}{where}: {verb} {duration(problem.time - change.time)} before this started"


# ------------------------------------------------------------------ as a (derived) source

INPUTS = ("deploys", "supervisor", "docker", "systemd", "sentry", "alerts", "nginx")


def fetch(f: Any) -> Timeline:
    """The timeline from what this refresh's sources left in the state (it runs once every host has
    had its turn): no read of its own."""
    import time

    return build(f.context.model.state.of(f.env.name), time.time())


def visible(line: Timeline) -> Any:
    return (tuple(line.entries), tuple(line.missing))
