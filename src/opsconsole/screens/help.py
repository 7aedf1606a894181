"""`?`: every key binding of every screen, with the keys in force (after the profile's [keymap])."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from opsconsole.screens.bindings import display_keys

SIDE_PANEL_WIDTH = 140  # columns from which help and details open beside the table, not over it


class HelpScreen(ModalScreen[None]):
    # wide enough (SIDE_PANEL_WIDTH), a panel on the right that leaves the table in sight
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 98%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    HelpScreen.-side { align: right top; background: $background 0%; }
    HelpScreen.-side > VerticalScroll { width: 45%; max-width: 100; height: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help_close", tooltip="Close help"),
    ]

    def on_mount(self) -> None:
        self.set_class(self.app.size.width >= SIDE_PANEL_WIDTH, "-side")

    def on_resize(self) -> None:
        self.set_class(self.app.size.width >= SIDE_PANEL_WIDTH, "-side")

    def __init__(self, sections: Sequence[tuple[str, Sequence[Binding]]]) -> None:
        """`sections`: each screen's title and its bindings, as the inventory (keymap.py) lists them."""
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        profile = getattr(self.app, "profile", None)
        keymap = dict(profile.keymap) if profile is not None else {}
        with VerticalScroll():
            # titles are Text, never markup: "[keymap]" must show as written
            yield Static(
                Text(
                    "Keys, by screen. Remap any of them by id in the profile's [keymap] table.", style="bold"
                )
            )
            for title, items in self.sections:
                table = Table(title=Text(title), expand=True, show_edge=False, title_justify="left")
                table.add_column("key", style="bold", no_wrap=True)
                table.add_column("id", style="dim")
                table.add_column("what it does")
                for binding in items:
                    if not binding.id:
                        continue
                    keys = keymap.get(binding.id, binding.key)
                    table.add_row(
                        Text(display_keys(keys)),
                        Text(binding.id),
                        Text(binding.tooltip or binding.description),
                    )
                yield Static(table)
            yield Static(
                Text(
                    "Actions that change something show their plan first; protected environments ask you to type their name.",
                    style="dim",
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)
