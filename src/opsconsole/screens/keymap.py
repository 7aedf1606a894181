"""Every key binding of the console, read from the screens' own BINDINGS (the action keys among them
come from the action registry): what help lists and what `[keymap]` may remap. No second list.
It imports every screen but the main one, whose keys are in bindings.py: the main screen's `?` hands
this inventory to the help screen."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding

from opsconsole.record import frozen
from opsconsole.screens.action_screen import ActionScreen
from opsconsole.screens.bindings import APP_BINDINGS, OVERVIEW_BINDINGS, main_bindings
from opsconsole.screens.command_line import CommandLine
from opsconsole.screens.confirm import ConfirmScreen
from opsconsole.screens.details import DetailsScreen
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.log_screen import LogScreen
from opsconsole.screens.pick import PickScreen

Section = tuple[str, Sequence[Binding]]


@frozen
class BindingInfo:
    screen: str
    id: str
    keys: str
    description: str
    tooltip: str


def screens() -> list[Section]:
    found: list[Section] = []
    for title, cls in (
        ("Console", tuple(main_bindings())),
        ("Anywhere", APP_BINDINGS),
        ("Log viewer", LogScreen),
        ("Running action", ActionScreen),
        ("Confirmation", ConfirmScreen),
        ("Details", DetailsScreen),
        ("Pickers", PickScreen),
        ("Command line (:)", CommandLine),
        ("Help", HelpScreen),
        ("Projects overview (--all)", tuple(OVERVIEW_BINDINGS)),
    ):
        items = cls if isinstance(cls, tuple) else cls.BINDINGS
        found.append((title, [b for b in items if isinstance(b, Binding)]))
    return found


def bindings() -> list[BindingInfo]:
    out = []
    for title, items in screens():
        for binding in items:
            if binding.id:
                out.append(BindingInfo(title, binding.id, binding.key, binding.description, binding.tooltip))
    return out


def binding_ids() -> set[str]:
    return {b.id for b in bindings()}
