"""Converters of `[environments.E.nginx]`'s own keys: the window in minutes, the access log's
format regex and the upstreams table."""

from __future__ import annotations

import math
import re
from typing import Any

from opsconsole.profiles.convert import Problems, dotted, nonempty_str, str_table, type_name
from opsconsole.profiles.model import PathKey

MAX_WINDOW = 24 * 60  # minutes
# what an access log line must give for the counts: its status; time and path are used when given
LOG_GROUPS = ("status",)
UPSTREAM_KINDS = ("supervisor", "docker", "systemd")


def window(value: Any, path: PathKey, problems: Problems) -> float | None:
    """Minutes of log read: finite, 0 < m <= 1440."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"'{dotted(path)}' must be a number of minutes, not {type_name(value)}")
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_WINDOW:
        problems.add(path, f"'{dotted(path)}' must be minutes above 0 and at most {MAX_WINDOW} (got {value})")
        return None
    return float(value)


def log_format(value: Any, path: PathKey, problems: Problems) -> str | None:
    """A regex with named groups: `status` required; `time` ($time_local), `path` or `request` used."""
    text = nonempty_str(value, path, problems)
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        problems.add(path, f"'{dotted(path)}' is not a valid regex: {exc}")
        return None
    missing = [g for g in LOG_GROUPS if g not in pattern.groupindex]
    if missing:
        problems.add(
            path,
            f"'{dotted(path)}' needs the named group(s) {', '.join(f'(?P<{g}>...)' for g in missing)}"
            " (and may name time, path or request)",
        )
        return None
    return text


def upstreams(value: Any, path: PathKey, problems: Problems) -> tuple[tuple[str, str], ...] | None:
    """`{ "127.0.0.1:8000" = "supervisor:shop-web" }`: an upstream address and what serves it."""
    table = str_table(value, path, problems)
    if table is None:
        return None
    for address, target in table:
        kind, sep, name = target.partition(":")
        if not sep or kind not in UPSTREAM_KINDS or not name:
            problems.add(
                (*path, address),
                f"'{dotted((*path, address))}' must name what serves the upstream as "
                f"{' or '.join(f'{k}:NAME' for k in UPSTREAM_KINDS)} (got '{target}')",
            )
            return None
    return table
