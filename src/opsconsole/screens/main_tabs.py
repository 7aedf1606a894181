"""The main screen's pane tabs: a tab per pane spec (its number key on the tab), then All (`0`).
Mounted just after the first frame, which shows the environments at once: Textual's tab widgets
load with this module, then (MainScreen.after_first_frame)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import TabbedContent, TabPane

from opsconsole.panes import PaneSpec
from opsconsole.panes import all as all_pane
from opsconsole.widgets.pane import Pane


class Panes(Vertical):
    """Its TabbedContent has the id `panes`; each tab's id is `tab-` and the pane's id."""

    DEFAULT_CSS = "Panes { height: 1fr; }"

    def __init__(self, specs: list[PaneSpec]) -> None:
        super().__init__()
        self._specs = specs

    def compose(self) -> ComposeResult:
        with TabbedContent(id="panes"):
            for index, spec in enumerate(self._specs):
                with TabPane(f"{index + 1} {spec.title}", id=f"tab-{spec.id}"):
                    yield Pane(spec.id, spec.columns)
            with TabPane(f"0 {all_pane.TITLE}", id=f"tab-{all_pane.ID}"):
                yield Pane(all_pane.ID, all_pane.COLUMNS)
