"""The console's key data: the app's keys, the main screen's keys (its action keys come from the action
registry) and how keys are shown. Pure data below every screen: screens, help and the inventory of
every screen's keys (keymap.py) read it; it imports no screen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingType

from opsconsole.panes import BUILTIN

if TYPE_CHECKING:
    from opsconsole.actions.registry import ActionKey

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


def action_keys() -> tuple[ActionKey, ...]:
    """The registry's keys. The registry (every action module) loads after the first frame: the
    screen's first frame needs none of it (see MainScreen.add_action_bindings)."""
    from opsconsole.actions.registry import action_keys as keys

    return keys()


# On the console screen of a project opened from the overview.
PROJECTS_BACK = Binding(
    "backspace",
    "projects",
    "Projects",
    show=False,
    id="projects_back", tooltip="Back to the overview of every project (--all)"
)

# The screen's own keys; the action keys (D, R, r, s, l, p, x, i) come from the action registry.
SCREEN_BINDINGS: list[BindingType] = [
    Binding("enter", "details", "Details", show=False, id="details", tooltip="Details of the selection"),
    Binding("slash", "filter", "Filter", id="filter", tooltip="Filter the visible pane"),
    Binding("e", "switch_env", "Env", show=False, id="switch_env", tooltip="Switch environment"),
    Binding("ctrl+r", "refresh", "Refresh", show=False, id="refresh", tooltip="Refresh every source now"),
    *[
        Binding(str(n), f"pane({n - 1})", title, show=False, id=f"pane_{n}", tooltip=f"Show the {title} pane")
        for n, title in enumerate((spec.title for spec in BUILTIN), start=1)
    ],
    Binding(
        "0",
        "pane_all",
        "All",
        show=False,
        id="pane_all",
        tooltip="Every environment at once: processes, containers and errors in one table",
    ),
    Binding("tab", "next_pane", "Next pane", show=False, id="next_pane", tooltip="Show the next pane"),
    Binding("down,j", "cursor('down')", "Down", show=False, id="cursor_down", tooltip="Next row"),
    Binding("up,k", "cursor('up')", "Up", show=False, id="cursor_up", tooltip="Previous row"),
    Binding(
        "pagedown,ctrl+d",
        "cursor('page_down')",
        "Page down",
        show=False,
        id="cursor_page_down",
        tooltip="A page of rows down",
    ),
    Binding(
        "pageup,ctrl+u",
        "cursor('page_up')",
        "Page up",
        show=False,
        id="cursor_page_up",
        tooltip="A page of rows up",
    ),
    Binding("home,g", "cursor('top')", "First row", show=False, id="cursor_top", tooltip="First row"),
    Binding("end,G", "cursor('bottom')", "Last row", show=False, id="cursor_bottom", tooltip="Last row"),
    Binding(
        "escape",
        "clear_filter",
        "Clear filter",
        show=False,
        id="clear_filter",
        tooltip="Clear the visible pane's filter",
    ),
    Binding(
        "n",
        "toggle_new_issues",
        "New in release",
        show=False,
        id="errors_new_in_release",
        tooltip="Errors: only issues first seen in the running release (Sentry firstRelease), or all open ones",
    ),
    Binding(
        "m",
        "toggle_muted_alerts",
        "Muted alerts",
        show=False,
        id="alerts_show_muted",
        tooltip="Alerts: show or hide silenced and inhibited alerts",
    ),
    Binding(
        "y",
        "copy_name",
        "Copy name",
        show=False,
        id="copy_name",
        tooltip="Copy the selected row's name (process, container, issue, release) to the clipboard",
    ),
    Binding(
        "colon",
        "command_line",
        "Command",
        show=False,
        id="command_line",
        tooltip="Command line, as in k9s: :ENV, :PANE, :deploy, :logs NAME, :restart NAME (tab completes)",
    ),
    Binding(
        "a",
        "show_runs",
        "Running",
        show=False,
        id="show_runs",
        tooltip="Reopen a running action's screen (its output, per-host status, cancel)",
    ),
    Binding("question_mark", "help", "Help", id="help", tooltip="Every key binding"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit opsconsole (asks first while an action runs)"),
    PROJECTS_BACK,
]


def main_bindings() -> list[BindingType]:
    """Action keys from the registry (one generic dispatch), then the screen's own: every key of the
    console screen (help and `[keymap]` read these). The screen binds the action keys just after
    its first frame (`MainScreen.add_action_bindings`)."""
    return [
        Binding(k.keys, f"act('{k.id}')", k.label, id=k.id, tooltip=k.tooltip, show=k.footer)
        for k in action_keys()
    ] + SCREEN_BINDINGS


def bound_characters(bindings: Iterable[BindingType], keymap: Mapping[str, str]) -> frozenset[str]:
    """The single characters (`D`, `G`, `/`...) that `bindings` take, each binding on its keys in
    force: the profile's `[keymap]` entry for its id, else its own."""
    taken: set[str] = set()
    for binding in bindings:
        if not isinstance(binding, Binding):
            continue
        keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
        taken.update(k.strip() for k in keys.split(",") if len(k.strip()) == 1)
    return frozenset(taken)


def display_keys(keys: str) -> str:
    names = {"question_mark": "?", "slash": "/", "pagedown": "PgDn", "pageup": "PgUp"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))


# The overview of every project (`opsconsole --all`).
OVERVIEW_BINDINGS: list[BindingType] = [
    Binding("enter", "open", "Open", id="projects_open", tooltip="Open the selected project on that environment"),
    Binding("slash", "filter", "Filter", id="projects_filter", tooltip="Filter across every project"),
    Binding(
        "escape", "clear_filter", "Clear filter", show=False, id="projects_clear_filter", tooltip="Clear the filter"
    ),
    Binding(
        "n",
        "needs_me",
        "Needs me",
        id="projects_needs_me",
        tooltip="Only the environments that need someone (failing sources, alerts, down, locked), or all",
    ),
    Binding("down,j", "cursor('down')", "Down", show=False, id="projects_down", tooltip="Next row"),
    Binding("up,k", "cursor('up')", "Up", show=False, id="projects_up", tooltip="Previous row"),
    Binding(
        "colon",
        "command_line",
        "Command",
        show=False,
        id="projects_command_line",
        tooltip=":project NAME opens a project, :quit, :help",
    ),
    Binding("ctrl+r", "refresh", "Refresh", show=False, id="projects_refresh", tooltip="Read every project now"),
    Binding("question_mark", "help", "Help", id="projects_help", tooltip="Every key binding"),
    Binding("q", "quit", "Quit", id="projects_quit", tooltip="Quit opsconsole"),
]
