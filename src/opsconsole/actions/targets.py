"""Targets of actions, in one place: `supervisor:NAME`, `docker:NAME`, `systemd:UNIT`, `file:PATH`, and what the
console's selected rows become."""

from __future__ import annotations

from typing import Any

from opsconsole.errors import UsageError

# What to select for each kind of row an action may act on (for "select … first").
SELECTION_HINTS = {
    "process": "a process (1)",
    "container": "a container (2)",
    "unit": "a systemd unit (8)",
    "issue": "a Sentry issue in the Errors pane (4)",
    "alert": "an alert in the Alerts pane",
}


def parse_target(target: str | None, allowed: tuple[str, ...]) -> tuple[str, str]:
    """`kind:name` → (kind, name), for the kinds an action allows; a UsageError says what is wanted."""
    if not target:
        raise UsageError(f"a target is needed: {' or '.join(f'{k}:NAME' for k in allowed)}", "Missing target")
    kind, sep, name = target.partition(":")
    if not sep or kind not in allowed or not name:
        raise UsageError(
            f"'{target}' is not a target: use {' or '.join(f'{k}:NAME' for k in allowed)}", "Bad target"
        )
    if any(ch in name for ch in "\n\r\x00"):
        raise UsageError("a target name cannot hold control characters", "Bad target")
    return kind, name


def selection_target(kind: str, item: Any) -> str:
    """The target an action gets for a selected row: a process, a container or a Sentry issue."""
    if kind == "process":
        return f"supervisor:{item.full_name}"
    if kind == "container":
        return f"docker:{item.name}"
    if kind == "unit":
        return f"systemd:{item.unit}"
    if kind == "alert":  # its group's labels, as matchers (actions/alerts.py splits them)
        return " ".join(item.group_matchers())
    return str(item.id)
