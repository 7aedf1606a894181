"""`:` as in k9s: one line to switch environment or pane, or run an action on a named row."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label


class CommandLine(ModalScreen[str | None]):
    DEFAULT_CSS = """
    CommandLine { align: center top; }
    CommandLine > Vertical { width: 80; max-width: 98%; height: auto; margin-top: 1; border: thick $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="command_cancel", tooltip="Close the command line"),
        Binding(
            "tab",
            "complete",
            "Complete",
            priority=True,
            show=False,
            id="command_complete",
            tooltip="Take the completion shown (the line keeps the focus)",
        ),
    ]

    def __init__(self, words: list[str]) -> None:
        super().__init__()
        self.words = words

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(":ENV  :PANE  :deploy  :logs NAME  :restart NAME  (tab or → completes)")
            yield Input(
                placeholder=":", suggester=SuggestFromList(self.words, case_sensitive=False), id="command"
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_complete(self) -> None:
        box = self.query_one(Input)
        if box._suggestion:  # noqa: SLF001 - Textual keeps the shown completion there
            box.value = box._suggestion  # noqa: SLF001
            box.cursor_position = len(box.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
