"""The one registry of actions: the CLI subcommands, the console's keys and palette come from it."""

from __future__ import annotations

from opsconsole.actions.base import Action
from opsconsole.actions.deploy import DeployAction
from opsconsole.actions.observe import LogsAction
from opsconsole.actions.operate import CustomAction, PurgeAction, RestartAction, StartAction, StopAction
from opsconsole.actions.rollback import RollbackAction, UnlockAction
from opsconsole.actions.sentry_actions import IgnoreAction, ResolveAction

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
        PurgeAction,
        ResolveAction,
        IgnoreAction,
        CustomAction,
    )
}


def get(action_id: str) -> type[Action]:
    return ACTIONS[action_id]
