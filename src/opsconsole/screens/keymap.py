"""Every key binding of the console, read from the screens' own BINDINGS (the action keys among them
come from the action registry): what help lists and what `[keymap]` may remap. No second list."""

from __future__ import annotations

from textual.binding import Binding

from opsconsole.record import frozen


@frozen
class BindingInfo:
    screen: str
    id: str
    keys: str
    description: str
    tooltip: str


# The app's own keys (anywhere): here, so that screens never import the app.
APP_BINDINGS: tuple[Binding, ...] = (
    Binding("ctrl+c", "quit", "Quit", show=False, id="ctrl_c_quit", tooltip="Quit opsconsole"),
    Binding(
        "ctrl+p",
        "command_palette",
        "Palette",
        show=False,
        priority=True,
        id="palette",
        tooltip="Command palette: every action, environment and pane",
    ),
)


def screens() -> list[tuple[str, list[Binding]]]:
    from opsconsole.screens.action_screen import ActionScreen
    from opsconsole.screens.command_line import CommandLine
    from opsconsole.screens.confirm import ConfirmScreen
    from opsconsole.screens.details import DetailsScreen
    from opsconsole.screens.help import HelpScreen
    from opsconsole.screens.log_screen import LogScreen
    from opsconsole.screens.main import main_bindings
    from opsconsole.screens.pick import PickScreen

    found = []
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


def display_keys(keys: str) -> str:
    names = {"question_mark": "?", "slash": "/", "pagedown": "PgDn", "pageup": "PgUp"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))
