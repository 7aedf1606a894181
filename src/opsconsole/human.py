"""Times as people and journals read them: durations ("45 s", "12 min", "3 h 5 min", "2 d 4 h") and
the one UTC timestamp opsconsole writes ("2026-12-03T07:40:44Z", in journals, locks and records)."""

from __future__ import annotations

from datetime import UTC, datetime

STAMP = "%Y-%m-%dT%H:%M:%SZ"


def utc_stamp(when: datetime | None = None) -> str:
    """`when` (a UTC time; default now) to the second, as every journal, lock and record writes it."""
    return (when or datetime.now(UTC)).strftime(STAMP)


def parse_stamp(text: str) -> datetime:
    """A `utc_stamp` back to an aware UTC datetime; ValueError for anything else."""
    return datetime.strptime(text, STAMP).replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time as journals, Sentry and docker write them ("…Z" included); naive means UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def counted(n: int, noun: str) -> str:
    """"3 processes", "1 process": `noun` is the plural, made singular for one ("entries" → "entry")."""
    if n != 1:
        return f"{n} {noun}"
    if noun.endswith("ies"):
        noun = noun[:-3] + "y"
    elif noun.endswith(("sses", "ches", "shes", "xes")):
        noun = noun[:-2]
    elif noun.endswith("s"):
        noun = noun[:-1]
    return f"1 {noun}"
