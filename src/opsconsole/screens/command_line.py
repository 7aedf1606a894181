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

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        box = self.query_one(Input)
        if key == "tab" and box._suggestion:  # noqa: SLF001 - accept the completion, as → does
            box.value = box._suggestion  # noqa: SLF001
            box.cursor_position = len(box.value)
            getattr(event, "stop", lambda: None)()
            getattr(event, "prevent_default", lambda: None)()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
