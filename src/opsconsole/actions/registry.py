"""The one registry of actions: the CLI subcommands, the console's keys, its palette and help come from it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from opsconsole.actions.alerts import AckAction, SilenceAction, UnsilenceAction
from opsconsole.actions.base import Action
from opsconsole.actions.deploy import DeployAction
from opsconsole.actions.fabric_deploy import register as register_fabric
from opsconsole.actions.issues import IgnoreAction, ResolveAction
from opsconsole.actions.logs import LogsAction
from opsconsole.actions.nginx_reload import ReloadAction
from opsconsole.actions.operate import CustomAction, PurgeAction, RestartAction, StartAction, StopAction
from opsconsole.actions.rollback import RollbackAction
from opsconsole.actions.shell_into import ShellAction
from opsconsole.actions.unlock import UnlockAction
from opsconsole.actions.watch import WatchAction

register_fabric()  # strategy = "fabric" and `fab = "TASK"` custom actions

ACTIONS: dict[str, type[Action]] = {
    cls.id: cls
    for cls in (
        DeployAction,
        RollbackAction,
        UnlockAction,
        RestartAction,
        StartAction,
        StopAction,
        LogsAction,
        ShellAction,
        PurgeAction,
        ResolveAction,
        IgnoreAction,
        CustomAction,
        WatchAction,
        ReloadAction,
        SilenceAction,
        AckAction,
        UnsilenceAction,
    )
}


def get(action_id: str) -> type[Action]:
    return ACTIONS[action_id]


@dataclass(frozen=True)
class ActionKey:
    """A console key derived from the actions that declare it (several share one: start/stop)."""

    id: str
    keys: str
    label: str
    tooltip: str
    actions: tuple[str, ...]
    selection: tuple[str, ...]
    selection_optional: bool
    footer: bool = True

    def pick(self, item: Any) -> str:
        """The action id this key means for the selected item."""
        for action_id in self.actions:
            if ACTIONS[action_id].applies_to(item):
                return action_id
        return self.actions[0]


@functools.cache
def action_keys() -> tuple[ActionKey, ...]:
    """Built once: the registry does not change while the console runs (footer checks call it often)."""
    keys: dict[str, ActionKey] = {}
    for action_id, cls in ACTIONS.items():
        if cls.key is None:
            continue
        key_id = cls.key_id or action_id
        known = keys.get(key_id)
        if known is not None:
            keys[key_id] = ActionKey(**{**known.__dict__, "actions": (*known.actions, action_id)})
            continue
        keys[key_id] = ActionKey(
            key_id,
            cls.key,
            cls.key_label or cls.title,
            cls.tooltip or cls.description,
            (action_id,),
            cls.selection,
            cls.selection_optional,
            cls.key_in_footer,
        )
    return tuple(keys.values())
