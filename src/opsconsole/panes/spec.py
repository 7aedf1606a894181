"""What a pane is: its id, title and columns, the catalog sources it shows and how their results
become rows. The screen draws every pane from these specs and names none of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opsconsole.record import frozen
from opsconsole.sources import catalog
from opsconsole.sources.catalog import Source, SourceKey
from opsconsole.sources.fanout import SourceResult
from opsconsole.widgets.pane import Row

Results = list[tuple[SourceKey, SourceResult[Any]]]


@frozen  # a frozen dataclass, built without generating code (opsconsole.record)
class PaneData:
    """What a pane's rows are built from: the results of its sources in one environment, the
    environment's container stats (host -> container -> sample), the run ids this console started
    (its own runs are not "someone else's") and the clock."""

    results: Results
    stats: Mapping[str, Mapping[str, Any]]
    own_runs: frozenset[str]
    now: float
    issues_release: str | None = None  # the release whose new issues are shown; None: all open

    def of(self, name: str) -> Results:
        return [(k, r) for k, r in self.results if k[0] == name]


@frozen
class PaneSpec:
    """One pane. `counted`: the sources whose results the status line and the header badge count
    (empty: every source of the pane); `badge`: the header's short label ("" = no badge; the long
    label is the counted source's name); `note`: a cyan note after the status counts."""

    id: str
    title: str
    columns: tuple[str, ...]
    rows: Callable[[PaneData], list[Row]]
    not_configured: str = ""
    noun: str = ""
    counted: tuple[str, ...] = ()
    badge: str = ""
    note: Callable[[PaneData], str] | None = None
    also: tuple[str, ...] = ()  # other sources whose results the rows read (not shown, not counted)
    # a note for the selected row's data (the Timeline: the last change before an alert)
    selected_note: Callable[[PaneData, Any], str] | None = None
    # which rows the status line counts (default: all; the Deploys pane counts journal records, not
    # each host's `current` row or the CI rows)
    count: Callable[[list[Row]], int] = len

    @property
    def sources(self) -> list[Source]:
        return catalog.of_pane(self.id)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.sources)

    @property
    def counted_names(self) -> frozenset[str]:
        return frozenset(self.counted) if self.counted else self.names

    @property
    def badge_label(self) -> str:
        return self.counted[0] if self.counted else self.sources[0].name if self.sources else self.id

    @property
    def status_noun(self) -> str:
        return self.noun or self.id

    def help(self, env_name: str) -> str:
        """The status line of an environment without the pane's sources: its own text, else that of
        its sources (ENV stands for the environment's name)."""
        text = self.not_configured or " ".join(s.not_configured for s in self.sources if s.not_configured)
        return (text or f"{self.title} is not configured for this environment").replace("ENV", env_name)
