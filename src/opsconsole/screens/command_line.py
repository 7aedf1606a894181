"""`:` as in k9s: one line to switch environment or pane, or run an action on a named row. What a
line means and what it completes are pure functions of the names the screen shows (no widget here
but the line itself)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from opsconsole.record import frozen

Target = tuple[str, str, Any]  # a row's (kind, host, item)
VERBS = ("logs", "restart", "start", "stop")  # the actions `:` completes with a row's name


@frozen
class Command:
    """What one line asks for. `word`: the environment, the action id or the line; `pane`: the
    pane's index; `arg`: the action's row name."""

    kind: Literal["pane", "all", "env", "quit", "help", "action", "unknown"]
    word: str = ""
    pane: int = 0
    arg: str = ""


def row_names(rows: Iterable[Target]) -> list[tuple[str, Target]]:
    """Each process or container row with the name `:` knows it by: a process's group:name."""
    return [
        (item.full_name if kind == "process" else item.name, (kind, host, item)) for kind, host, item in rows
    ]


def completions(
    envs: Iterable[str], panes: Iterable[str], actions: Iterable[str], names: Iterable[str]
) -> list[str]:
    """What `:` completes: environments, panes, actions, and `ACTION NAME` for the visible rows."""
    words = [*envs, *panes, *actions, "unlock", "quit", "help"]
    shown = list(names)
    for verb in VERBS:
        words += [f"{verb} {n}" for n in shown]
    return list(dict.fromkeys(words))


def parse(line: str, envs: Sequence[str], panes: Sequence[str], actions: Collection[str]) -> Command:
    """`:prod`, `:errors`, `:deploy`, `:logs worker`, `:restart web:web_0`, `:quit`. `actions`: the
    action ids that may run here (none without an environment)."""
    word, _, arg = line.strip().lstrip(":").partition(" ")
    arg = arg.strip()
    match = [n for n in envs if n == word] or [n for n in envs if n.startswith(word)]
    if word in panes:
        return Command("pane", pane=list(panes).index(word))
    if word in ("0", "all"):
        return Command("all")
    if match and not arg:
        return Command("env", match[0])
    if word in ("q", "quit"):
        return Command("quit")
    if word == "help":
        return Command("help")
    if word in actions:
        return Command("action", word, arg=arg)
    return Command("unknown", line)


def find_target(name: str, rows: Sequence[tuple[str, Target]]) -> Target | None:
    """The row named `name`: exactly, by its last part (`worker` for `worker:worker`), or as the one
    name that contains it (`:logs acc`). `rows`: as `row_names` gives them."""
    for full, target in rows:
        if name in (full, full.split(":")[-1]):
            return target
    containing = {full for full, _target in rows if name in full}
    if len(containing) == 1:  # one name contains it: `:logs acc` for accworker
        return next(target for full, target in rows if full in containing)
    return None


class CommandLine(ModalScreen[str | None]):
    # a bar at the bottom, over the footer, as in k9s: the table stays in sight while you type
    DEFAULT_CSS = """
    CommandLine { align: left bottom; background: $background 0%; }
    CommandLine > Vertical { width: 100%; height: auto; border-top: thick $accent; background: $surface; padding: 0 1; }
    CommandLine Input, CommandLine Input:focus { border: none; height: 1; padding: 0; }
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
