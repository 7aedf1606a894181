"""The console's key data: the app's keys, the main screen's keys (its action keys come from the action
registry) and how keys are shown. Pure data below every screen: screens, help and the inventory of
every screen's keys (keymap.py) read it; it imports no screen."""

from __future__ import annotations

from collections.abc import Sequence
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

# Shift + a letter sorts the visible pane by one of its columns (again: the other way), as in k9s.
# Each key sorts the columns of one kind, so every column of every built-in pane, optional pane and
# All has exactly one key, and no two columns of a pane share one (tests/test_rough_edges_panes.py).
# None is D, R, A or G (deploy, rollback, ack, last row). (key, id, what, the column names)
SORT_KEYS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("H", "sort_host", "host", ("host",)),
    (
        "N",
        "sort_name",
        "name (process, container, unit, metric, alert, URL, issue...)",
        ("process", "name", "unit", "metric", "alert", "url", "what", "issue"),
    ),
    ("S", "sort_state", "state (status, active/sub, outcome)", ("state", "status", "active/sub", "outcome")),
    ("P", "sort_pid", "pid", ("pid",)),
    (
        "T",
        "sort_time",
        "time (started, when, since, last seen; Metrics: trend)",
        ("started", "when", "since", "last seen", "time", "trend"),
    ),
    ("L", "sort_level", "level (health, severity, band)", ("level", "health", "severity", "band")),
    ("C", "sort_count", "number (CPU%, count, restarts, latency)", ("CPU%", "count", "restarts", "latency")),
    ("M", "sort_memory", "memory", ("memory",)),
    ("I", "sort_image", "image", ("image",)),
    ("K", "sort_kind", "kind (event, group)", ("kind", "event", "group")),
    ("V", "sort_value", "release or value", ("release", "value")),
    ("F", "sort_ref", "ref", ("ref",)),
    ("W", "sort_who", "who", ("who",)),
    ("U", "sort_users", "users", ("users",)),
    ("E", "sort_env", "environment (All)", ("env",)),
    (
        "X",
        "sort_text",
        "text (description, detail, summary, title, error)",
        ("description", "detail", "summary", "title", "error"),
    ),
)

SORT_BINDINGS: list[BindingType] = [
    Binding(
        key,
        f"sort('{binding_id}')",
        f"Sort: {what.split(' (')[0]}",
        show=False,
        id=binding_id,
        tooltip=f"Sort the visible pane by {what}; again: the other way",
    )
    for key, binding_id, what, _columns in SORT_KEYS
]


def sort_column(binding_id: str, columns: Sequence[str]) -> int | None:
    """The index of the column of `columns` that the sort key `binding_id` sorts (None: none). A
    column of no kind above (a registered source's own pane) is sorted by its first letter's key."""
    key, names = next(((k, names) for k, i, _w, names in SORT_KEYS if i == binding_id), ("", ()))
    known = {name for *_rest, names_of in SORT_KEYS for name in names_of}
    for index, column in enumerate(columns):
        if column in names or (column not in known and key and column.upper().startswith(key)):
            return index
    return None


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
        tooltip="Errors: only issues first seen in the running release (Sentry or Bugsink), or all open ones",
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
    *SORT_BINDINGS,
]


def main_bindings(read_only: bool = False) -> list[BindingType]:
    """Action keys from the registry (one generic dispatch), then the screen's own: every key of the
    console screen (help and `[keymap]` read these). The screen binds the action keys just after
    its first frame (`MainScreen.add_action_bindings`). In a read-only console (`--read-only`,
    OPSCONSOLE_READ_ONLY=1, served without --allow-changes) a key whose every action changes
    something stays bound (help lists it, pressing it says why it is refused) but leaves the footer."""
    from opsconsole.actions.registry import ACTIONS

    def footer(k: ActionKey) -> bool:
        refused = read_only and all(ACTIONS[a].changes for a in k.actions)
        return k.footer and not refused

    return [
        Binding(k.keys, f"act('{k.id}')", k.label, id=k.id, tooltip=k.tooltip, show=footer(k))
        for k in action_keys()
    ] + SCREEN_BINDINGS


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
