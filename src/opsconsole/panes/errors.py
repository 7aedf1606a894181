"""The Errors pane: the error tracker's open issues (Sentry or Bugsink)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsconsole.panes.spec import PaneData, PaneSpec, Results
from opsconsole.sanitize import clean
from opsconsole.widgets.pane import Row, cell

if TYPE_CHECKING:
    from opsconsole.backends.sentry import IssuePage

LEVEL_STYLES = {"fatal": "bold red", "error": "red", "warning": "yellow"}


def rows_errors(results: Results) -> list[Row]:
    rows = []
    for _key, result in results:
        page = cast("IssuePage | None", result.data)
        for issue in page.issues if page else []:
            rows.append(
                Row(
                    issue.id,
                    [
                        cell(issue.short_id),
                        cell(issue.level, LEVEL_STYLES.get(issue.level, "")),
                        cell(("↺ regressed · " if issue.regressed else "") + issue.title, limit=90),
                        cell(issue.count),
                        cell(issue.users),
                        cell((issue.last_seen or "").replace("T", " ")[:19]),
                    ],
                    ("issue", "sentry", issue),
                )
            )
    return rows


def release_note(data: PaneData) -> str:
    """While `n` narrows the pane to one release's new issues."""
    if not data.issues_release:
        return ""
    return f" · new in {clean(data.issues_release, 80)} only (n: all open issues)"


SPEC = PaneSpec(
    "errors",
    "Errors",
    ("issue", "level", "title", "count", "users", "last seen"),
    lambda data: rows_errors(data.results),
    noun="issues",
    badge="err",
    note=release_note,
)
