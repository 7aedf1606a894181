"""A pane for a catalog source that no built-in pane shows: its plain rows, one table per pane."""

from __future__ import annotations

from opsconsole.panes.spec import PaneData, PaneSpec
from opsconsole.sources import catalog
from opsconsole.sources.catalog import Source
from opsconsole.widgets.pane import Row, cell


def generic_spec(pane: str, first: Source) -> PaneSpec:
    """The pane `pane`, titled and laid out as its first source says; every source of the pane
    gives its rows (`Source.rows`) for each result with data. Errors show in the status line."""

    def rows(data: PaneData) -> list[Row]:
        out: list[Row] = []
        for key, result in data.results:
            src = catalog.source(key[0])
            if src is None or src.rows is None or result.data is None:
                continue
            host = key[1] if len(key) > 1 else ""
            for row_key, cells in src.rows(result.data):
                out.append(
                    Row(
                        "|".join(part for part in (host, row_key) if part),
                        [cell(c) for c in cells],
                        (src.name, host, row_key),
                    )
                )
        return out

    return PaneSpec(pane, first.title, first.columns, rows, badge=first.name)
