"""Every key binding of the console: id, default keys, description. Core data, no Textual.

The console builds its `Binding`s from this table, the profile's `[keymap]` is validated against
it, and the help screen and README list it. Bindings whose id is also an action id trigger that
action from the shared action layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpec:
    id: str
    keys: str
    description: str
    tooltip: str
    show: bool = True


KEYS: tuple[KeySpec, ...] = (
    KeySpec("deploy", "D", "Deploy", "Deploy the environment (shows the plan first)"),
    KeySpec("rollback", "R", "Rollback", "Roll back to the previous good release"),
    KeySpec("restart", "r", "Restart", "Restart the selected process or container"),
    KeySpec("start_stop", "s", "Start/stop", "Start or stop the selected process or container"),
    KeySpec("logs", "l", "Logs", "Tail the log of the selection, or pick a log file"),
    KeySpec("purge", "p", "Purge cache", "Run the environment's cache purge commands"),
    KeySpec("resolve", "x", "Resolve", "Resolve the selected Sentry issue"),
    KeySpec("ignore", "i", "Ignore", "Ignore (archive) the selected Sentry issue"),
    KeySpec("details", "enter", "Details", "Details of the selection", show=False),
    KeySpec("filter", "slash", "Filter", "Filter the focused pane"),
    KeySpec("switch_env", "e", "Env", "Switch environment"),
    KeySpec("refresh", "ctrl+r", "Refresh", "Refresh every source now", show=False),
    KeySpec("pane_1", "1", "Processes", "Show the Processes pane", show=False),
    KeySpec("pane_2", "2", "Containers", "Show the Containers pane", show=False),
    KeySpec("pane_3", "3", "Deploys", "Show the Deploys pane", show=False),
    KeySpec("pane_4", "4", "Errors", "Show the Errors pane", show=False),
    KeySpec("pane_5", "5", "Health", "Show the Health pane", show=False),
    KeySpec("next_pane", "tab", "Next pane", "Show the next pane", show=False),
    KeySpec("palette", "ctrl+p", "Palette", "Command palette: every action", show=False),
    KeySpec("help", "question_mark", "Help", "Every key binding"),
    KeySpec("quit", "q", "Quit", "Quit opsconsole"),
)

KEY_IDS: frozenset[str] = frozenset(spec.id for spec in KEYS)
