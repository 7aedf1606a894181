"""The command palette (ctrl+p): every action of the registry, and the profile's custom actions."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from opsconsole.actions.registry import ACTIONS

if TYPE_CHECKING:
    from opsconsole.app import OpsConsoleApp

SELECTION_ACTIONS = {"restart", "start", "stop", "logs", "resolve", "ignore"}


class ActionsProvider(Provider):
    def _entries(self) -> list[tuple[str, str, object]]:
        app = cast("OpsConsoleApp", self.app)
        env_name = app.current_env
        if env_name is None:
            return []
        env = app.profile.env(env_name)
        entries: list[tuple[str, str, object]] = []
        screen = app.screen
        for action_id, cls in ACTIONS.items():
            if action_id == "run":
                continue
            if action_id in SELECTION_ACTIONS:
                method = getattr(
                    screen, f"action_{'start_stop' if action_id in ('start', 'stop') else action_id}", None
                )
                if method is None:
                    continue
                entries.append((f"{cls.title} selection ({env.name})", cls.description, method))
            else:
                entries.append(
                    (
                        f"{cls.title} {env.name}",
                        cls.description,
                        partial(app.request_action, action_id, env.name),
                    )
                )
        for custom in env.actions:
            entries.append(
                (
                    f"Run: {custom.label} ({env.name})",
                    custom.command,
                    partial(app.request_action, "run", env.name, custom.name),
                )
            )
        return entries

    async def discover(self) -> Hits:
        for title, help_text, callback in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)  # type: ignore[arg-type]
