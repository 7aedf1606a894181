"""Converters of `[environments.E.alerts]`'s own keys: Alertmanager matchers and durations.

A matcher is Alertmanager's own syntax, `NAME OP "VALUE"` with OP one of `=`, `!=`, `=~`, `!~`, the
value double-quoted (Alertmanager 0.27's UTF-8 parser wants the quotes; 0.25 accepts them), and a
regex value must compile. Durations are Go-style (`90s`, `15m`, `1h30m`, `2d`), at most 90 days.
"""

from __future__ import annotations

import json
import re
from typing import Any

from opsconsole.profiles.convert import Problems, dotted, nonempty_str, type_name
from opsconsole.profiles.model import PathKey

MATCHER_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*')
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION = 90 * 86400.0


def parse_matcher(text: str) -> tuple[str, str, str] | str:
    """(name, op, value) of one matcher, or what is wrong with it."""
    match = MATCHER_RE.fullmatch(text)
    if match is None:
        return (
            f"'{text}' is not an Alertmanager matcher: write NAME=\"VALUE\" (or !=, =~, !~), "
            'the value double-quoted, e.g. env="production" or team=~"shop|web"'
        )
    name, op, quoted = match.groups()
    try:
        value = json.loads(quoted)
    except ValueError:
        return f"'{text}': the quoted value is not a valid string"
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            return f"'{text}': the regex does not compile ({exc})"
    return name, op, value


def matcher_text(name: str, op: str, value: str) -> str:
    return f"{name}{op}{json.dumps(value)}"


def matchers(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.add(path, f"'{dotted(path)}' must be an array of matchers, not {type_name(value)}")
        return None
    out: list[str] = []
    for index, item in enumerate(value):
        text = nonempty_str(item, (*path, index), problems)
        if text is None:
            return None
        parsed = parse_matcher(text)
        if isinstance(parsed, str):
            problems.add((*path, index), f"'{dotted((*path, index))}': {parsed}")
            return None
        out.append(matcher_text(*parsed))
    return tuple(out)


def parse_duration(text: str) -> float | str:
    """Seconds of a Go-style duration, or what is wrong with it."""
    stripped = text.strip()
    parts = DURATION_RE.findall(stripped)
    if not parts or "".join(n + u for n, u in parts) != stripped:
        return f"'{text}' is not a duration: write e.g. 15m, 1h, 1h30m or 2d"
    seconds = sum(float(n) * UNITS[u] for n, u in parts)
    if not 0 < seconds <= MAX_DURATION:
        return f"'{text}' must be above 0 and at most 90 days"
    return seconds


def duration(value: Any, path: PathKey, problems: Problems) -> float | None:
    text = nonempty_str(value, path, problems)
    if text is None:
        return None
    seconds = parse_duration(text)
    if isinstance(seconds, str):
        problems.add(path, f"'{dotted(path)}': {seconds}")
        return None
    return seconds
