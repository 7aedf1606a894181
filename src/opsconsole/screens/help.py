"""`?`: every key binding, with the keys in force (after the profile's [keymap])."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from opsconsole.keys import KEYS

LOG_KEYS = (
    ("end", "resume following (scrolling up pauses it)"),
    ("/", "search; n / N next / previous match"),
    ("f", "filter: show only matching lines"),
    ("w", "wrap long lines"),
    ("t", "timestamps"),
    ("ctrl+s", "save the lines shown to a file"),
    ("escape / q", "close (stops following)"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 98%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help_close"),
    ]

    def compose(self) -> ComposeResult:
        keymap = dict(self.app.profile.keymap) if hasattr(self.app, "profile") else {}
        table = Table(title="Keys (remap them in the profile's [keymap] by id)", expand=True, show_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("id", style="dim")
        table.add_column("what it does")
        for spec in KEYS:
            keys = keymap.get(spec.id, spec.keys).replace("question_mark", "?").replace("slash", "/")
            table.add_row(keys, spec.id, spec.tooltip)
        logs = Table(title="In the log viewer", expand=True, show_edge=False)
        logs.add_column("key", style="bold", no_wrap=True)
        logs.add_column("what it does")
        for key, text in LOG_KEYS:
            logs.add_row(key, text)
        with VerticalScroll():
            yield Static(table)
            yield Static(logs)
            yield Static(
                Text(
                    "Actions that change something show their plan first; protected environments ask you to type their name.",
                    style="dim",
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)
