"""The command palette (ctrl+p): every action of the registry on the selection or the environment,
the profile's custom actions, every environment and every pane. Built from the same registry and
screen bindings as the keys, so there is no second list."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from opsconsole.actions.registry import ACTIONS, action_keys
from opsconsole.panes import pane_specs
from opsconsole.screens.main import MainScreen

if TYPE_CHECKING:
    from opsconsole.ui import Console

Entry = tuple[str, str, Callable[[], object]]


class ActionsProvider(Provider):
    def _project_entries(self, projects: Any) -> list[Entry]:
        """On the overview of `--all`: no project's actions (none is open), only opening one."""
        opener = self.app.open_project  # type: ignore[attr-defined]
        entries: list[Entry] = []
        for project in projects.projects:
            if project.profile is None:
                continue
            for env_name in project.profile.environments:
                entries.append(
                    (f"Project: {project.name} {env_name}", f"open {project.title} on {env_name}", partial(opener, project.name, env_name))
                )
        return entries

    def _entries(self) -> list[Entry]:
        app = cast("Console", self.app)
        projects = getattr(self.app, "projects", None)
        if projects is not None and getattr(self.app, "project", None) is None:
            return self._project_entries(projects)
        # the screen the palette was opened from (not the palette itself); only the main screen has
        # a selection, environments to switch and panes to show
        screen = self.screen if isinstance(self.screen, MainScreen) else None
        entries: list[Entry] = []
        env_name = app.current_env
        keyed: set[str] = set()
        if env_name is not None:
            env = app.profile.env(env_name)
            for key in action_keys():
                keyed.update(key.actions)
                if key.selection and screen is not None:
                    entries.append(
                        (
                            f"{key.label} selection ({env.name})",
                            key.tooltip,
                            partial(screen.action_act, key.id),
                        )
                    )
                elif not key.selection:
                    entries.append(
                        (
                            f"{key.label} {env.name}",
                            key.tooltip,
                            partial(app.request_action, key.actions[0], env.name),
                        )
                    )
            for action_id, cls in ACTIONS.items():
                if action_id in keyed or action_id == "run":
                    continue
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
        for state in app.runs.running():
            entries.append((f"Running: {state.title}", "reopen its screen", partial(app.show_run, state)))
        if screen is not None:
            for name, env in app.profile.environments.items():
                entries.append(
                    (
                        f"Environment: {name}",
                        env.description or f"switch to {name}",
                        partial(screen.select_env, name),
                    )
                )
            for index, title in enumerate(spec.title for spec in pane_specs(app.profile)):
                entries.append(
                    (
                        f"Pane: {title}",
                        f"show the {title} pane ({index + 1})",
                        partial(screen.action_pane, index),
                    )
                )
        return entries

    async def discover(self) -> Hits:
        for title, help_text, callback in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._entries():
            # match the help text too: "restart", "log", "stop" find "Restart selection", "Logs…"
            score = max(matcher.match(title), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
