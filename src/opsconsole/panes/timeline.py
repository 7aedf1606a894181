"""The Timeline pane: what changed and what broke in the environment, newest first. Selecting an
alert or an error marks the last change before it in the status line and offers the rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opsconsole.panes.spec import PaneData, PaneSpec
from opsconsole.sanitize import clean
from opsconsole.sources.timeline import PROBLEMS, lead_note
from opsconsole.widgets.pane import Row, cell, start_time

if TYPE_CHECKING:
    from opsconsole.sources.timeline import Entry, Timeline

KIND_STYLES = {
    "deploy": "cyan",
    "rollback": "magenta",
    "verify": "green",
    "action": "",
    "restart": "yellow",
    "error": "bold red",
    "alert": "bold red",
}


def _timeline(data: PaneData) -> Timeline | None:
    for _key, result in data.of("timeline"):
        return cast("Timeline | None", result.data)
    return None


def rows(data: PaneData) -> list[Row]:
    line = _timeline(data)
    out = []
    for i, entry in enumerate(line.entries if line else []):
        out.append(
            Row(
                # the same entry keeps its key across refreshes (the cursor stays on it)
                f"{entry.time:.0f}|{entry.kind}|{entry.host}|{entry.summary}|{i if entry.kind == 'action' else ''}",
                [
                    cell(start_time(entry.time, data.now)),
                    cell(entry.kind, KIND_STYLES.get(entry.kind, "")),
                    cell(entry.summary, limit=120),
                    cell(entry.who, limit=40),
                    cell(entry.host, limit=60),
                ],
                ("timeline", "", entry),
            )
        )
    return out


def note(data: PaneData) -> str:
    line = _timeline(data)
    if line is None or not line.missing:
        return ""
    return "".join(f"\nmissing: {clean(m, 200)}" for m in line.missing)


def selected_note(data: PaneData, selected: Any) -> str:
    """For a selected alert or error: the last change before it, and the rollback key."""
    if not (isinstance(selected, tuple) and len(selected) >= 3 and selected[0] == "timeline"):
        return ""
    entry = cast("Entry", selected[2])
    line = _timeline(data)
    if line is None or entry.kind not in PROBLEMS:
        return ""
    text = lead_note(line.entries, entry)
    if "before this started" in text and not text.startswith("no change"):
        text += " · R: roll back (shows its plan first)"
    return "\n▶ " + text


SPEC = PaneSpec(
    "timeline",
    "Timeline",
    ("time", "kind", "summary", "who", "host"),
    rows,
    noun="entries",
    note=note,
    selected_note=selected_note,
)
