"""The console: the Textual app over the core (profile, clients, read model, action layer).

Wiring only. The read model (`sources.ReadModel`, its `FleetState` and `Refresher`) owns the
results and the refresh loop; the app turns its listener's calls into messages for the screens.
The running actions are `Runs`; screens render both when told (`SourceChanged`, `RunBatch`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import events
from textual.app import App
from textual.binding import BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from opsconsole.actions.runs import Runs, RunState
from opsconsole.backends.clients import Backends
from opsconsole.console_flow import CLEANUP_SECONDS, ActionFlow
from opsconsole.errors import RefusedError
from opsconsole.messages import (
    RunsPending,
    SourceChanged,
    SourceUpdated,
)
from opsconsole.profiles import Profile
from opsconsole.screens.bindings import APP_BINDINGS
from opsconsole.sources.catalog import SourceKey
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.model import ReadModel
from opsconsole.sources.refresher import Refresher

if TYPE_CHECKING:  # the action layer loads when the first action is asked for, after the first frame
    from opsconsole.actions.base import Action
    from opsconsole.actions.runner import ActionRun
    from opsconsole.sources.overview import Project, Projects

__all__ = ["CLEANUP_SECONDS", "OpsConsoleApp", "ProjectsApp", "RunState", "make_app"]


def _main_screen() -> Any:
    from opsconsole.screens.main import MainScreen

    return MainScreen()


def _actions_provider() -> Any:
    from opsconsole.palette import ActionsProvider

    return ActionsProvider


FIRST_FRAME_SWITCH_SECONDS = 0.0005  # the GIL's switch interval until then (Python's default: 5 ms)
FIRST_FRAME_FALLBACK_SECONDS = 1.0  # start-up work waits for the first frame, at most this long
FREEZE_AFTER_SECONDS = 2.0  # start-up objects (modules, widgets, styles) are frozen once built


class OpsConsoleApp(App[None]):
    """Built by `make_app` from a resolved profile and its backends (the CLI and tests both do)."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)
    COMMANDS = App.COMMANDS | {_actions_provider}
    COMMAND_PALETTE_BINDING = ""  # the binding above (id "palette") opens it, remappable

    def get_default_screen(self) -> Screen[Any]:
        """The console is the bottom screen of the default mode: no background screen under it asks
        for repaints. Textual's default screen rather than a `MODES` entry: the first screen of a
        mode makes Textual parse the whole stylesheet again (`App.refresh_css`) before the first frame."""
        return cast("Screen[Any]", _main_screen())

    def __init__(
        self,
        profile: Profile,
        backends: Backends,
        *,
        read_only: bool = False,
        live: bool = True,
        log_lines: int = 10_000,
        clock: Callable[[], float] = time.time,
        via: str | None = None,
        remote: str | None = None,
        on_started: Callable[[OpsConsoleApp], None] | None = None,
    ) -> None:
        super().__init__()
        from opsconsole.widgets.tint import install as tint_once_per_style

        tint_once_per_style()  # the screen under help, the palette and confirmations
        # no animations: a pane switch slid the tab underline over ~15 frames, each sent over SSH
        # and each competing with the next key press
        self.animation_level = "none"
        self.via = via  # "serve": this console runs in a browser (audited with the browser's address)
        self.remote = remote
        if self.no_color:
            # NO_COLOR means no colour: Textual's default is greys (Monochrome), still sent as
            # colour sequences; the NoColor filter leaves every cell in the terminal's own colours.
            from textual.filter import Monochrome, NoColor

            self._filters = [NoColor() if isinstance(f, Monochrome) else f for f in self._filters]
        self.profile = profile
        self.backends = backends
        self.read_only = read_only
        self.live = live
        self.log_lines = log_lines
        self.clock = clock
        self.model = ReadModel(backends)
        self.state = self.model.state
        self.refresher = Refresher(self.model, live=live)
        self.schedule = self.refresher.schedule
        self._unsubscribe = self.state.subscribe(self._source_changed)
        self.runs = Runs()
        self.exit_signal: int | None = None
        self.current_env = next(iter(profile.environments), None)
        self.flow = ActionFlow(self)
        self._first_frame_done = False
        self._switch_interval = sys.getswitchinterval()  # restored once the first frame is up
        self._on_started = on_started  # once the first frame is up (the demo's first deploy)

    @property
    def results(self) -> dict[str, dict[SourceKey, SourceResult[Any]]]:
        return self.state.results

    @property
    def stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.state.stats

    @property
    def verifications(self) -> dict[str, Any]:
        return self.state.verifications

    @property
    def current_env(self) -> str | None:
        return self.refresher.focus

    @current_env.setter
    def current_env(self, name: str | None) -> None:
        self.refresher.focus = name

    # ---------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        # until the first frame is on screen, a thread waiting for the GIL (Textual's writer, with
        # that frame) gets it within 0.5 ms, not 5: the UI thread renders again right after it
        sys.setswitchinterval(min(self._switch_interval, FIRST_FRAME_SWITCH_SECONDS))
        if self.profile.keymap:
            self.set_keymap(dict(self.profile.keymap))
        # output lines of running actions are delivered in batches, ten times a second at most
        self.flush_timer = self.set_interval(0.1, self.flow.flush, pause=True)
        self.flow.install_signal_handlers()
        # what the first frame does not show waits for it (events.Ready); a timer in case no frame
        # is ever drawn (a terminal of size 0)
        self.set_timer(FIRST_FRAME_FALLBACK_SECONDS, self._after_first_frame)
        self.set_timer(FREEZE_AFTER_SECONDS, self._freeze_startup_objects)

    def on_ready(self) -> None:
        self._after_first_frame()

    def _after_first_frame(self) -> None:
        """The first frame (the environments) is on screen: now the rest. The panes and the action
        keys are built, and the first refreshes start: none of them competes with that frame."""
        if self._first_frame_done:
            return
        self._first_frame_done = True
        sys.setswitchinterval(self._switch_interval)
        self._on_screens("after_first_frame")
        if self.live:
            self.action_refresh_all()
        if self._on_started is not None:
            self._on_started(self)

    def _on_screens(self, hook: str) -> None:
        """Call `hook` on every screen that has it (the console screen's start-up steps)."""
        for screen in self.screen_stack:
            method = getattr(screen, hook, None)
            if method is not None:
                method()

    def _freeze_startup_objects(self) -> None:
        """What start-up built (modules, widgets, styles) leaves the garbage collector's reach: a full
        collection scans only what changes, and never stalls a key press."""
        import gc

        gc.collect()
        gc.freeze()

    def on_unmount(self) -> None:
        self.refresher.close()
        self.runs.cancel_all()

    # ---------------------------------------------------------------- refresh

    def action_refresh_all(self) -> None:
        self.refresher.start()

    def refresh_env(self, env_name: str) -> None:
        """Refresh one environment now (results arrive as each source answers)."""
        self.refresher.refresh(env_name)

    def action_refresh(self) -> None:
        self.refresher.start()
        self.notify("refreshing every source", timeout=2)

    def _source_changed(self, env: str, key: SourceKey) -> None:
        """The state's listener, on the thread that stored the result: a message to the UI."""
        self.post_message(SourceUpdated(env, key))

    def on_source_updated(self, message: SourceUpdated) -> None:
        self.to_screens(lambda: SourceChanged(message.env, message.key))
        if message.key[0] == "deploys":
            self.flow.prefetch_after_refresh(message.env, message.key)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not self._first_frame_done:
            self._on_screens("add_action_bindings")  # a key before the first frame: bind them now
        if isinstance(event, events.Key | events.MouseDown) and self.schedule.idle:
            self.refresher.touched()  # the stretched wait ends now, not in 4x refresh
        await super().on_event(event)

    def to_screens(self, message_factory: Callable[[], Any]) -> None:
        for screen in self.screen_stack:
            screen.post_message(message_factory())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's failure in one place: a toast that says what broke (never silence)."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        self.notify(
            f"{type(error).__name__}: {error}. The console goes on; please report this.",
            title=f"Internal error in {event.worker.name or event.worker.group}",
            severity="error",
            timeout=20,
        )

    # ---------------------------------------------------------------- actions

    def make_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> Action:
        return self.flow.make_action(action_id, env, name, host, **options)

    def request_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> None:
        self.flow.request(action_id, env, name, host, **options)

    def start_run(self, run: ActionRun, show: bool = True) -> RunState:
        return self.flow.start(run, show)

    def show_run(self, state: RunState) -> None:
        self.flow.show(state)

    def on_runs_pending(self, _message: RunsPending) -> None:
        self.flow.flush()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Toasts carry text from profiles and errors: never parsed as markup (`[deploy]` stays)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    @property
    def saves_to_browser(self) -> bool:
        """A browser's console (`opsconsole serve`) saves by download; it writes nothing here."""
        return self.is_web or self.via == "serve"

    def save_text(self, path: Path, text: str, *, overwrite: bool = False) -> str:
        """Save the log viewer's lines; returns where they went. Served: delivered to the browser
        as a download named after `path` (its name only), never written on this machine. Local:
        `saving.save_local` (never replaces without `overwrite`, never the audit log)."""
        if self.saves_to_browser:
            if not self.is_web:  # via serve but not a web driver: nowhere safe to put it
                raise RefusedError("refused: a served console saves only to its browser", "Read-only")
            import io

            self.deliver_text(
                io.StringIO(text), save_filename=path.name, mime_type="text/plain", encoding="utf-8"
            )
            return f"sent to your browser as {path.name}"
        from opsconsole.saving import save_local

        return f"saved to {save_local(path, text.encode('utf-8'), overwrite=overwrite)}"


def make_app(profile: Profile, backends: Backends | None = None, **kwargs: Any) -> OpsConsoleApp:
    return OpsConsoleApp(profile, backends or Backends(profile), **kwargs)


def _overview_screen() -> Any:
    from opsconsole.screens.overview import OverviewScreen

    return OverviewScreen()


class ProjectsApp(OpsConsoleApp):
    """`opsconsole --all`: the overview of every project first; `enter` opens one project in the
    normal console (bound to that project's profile, clients and state: its keymap, protections and
    read-only apply), and backspace or `:projects` comes back. Only the opened project is refreshed
    in full; the overview polls the others' cheap sources."""

    MODES: ClassVar[dict[str, Any]] = {"projects": _overview_screen, "console": _main_screen}
    DEFAULT_MODE = "projects"

    def __init__(self, projects: Projects, **kwargs: Any) -> None:
        first = next((p for p in projects.projects if p.profile is not None), None)
        if first is None or first.profile is None or first.backends is None:
            from opsconsole.errors import UsageError

            reasons = "; ".join(f"{p.name}: {p.failure}" for p in projects.projects)
            raise UsageError(f"--all: no project could be loaded ({reasons})", "No profile")
        super().__init__(first.profile, first.backends, **kwargs)
        self.projects = projects
        self.project: Project | None = None  # the project the console shows (None: the overview)
        self._bind(first)

    def _bind(self, project: Project) -> None:
        """Point the console at `project`: its profile, clients, read model and state."""
        assert project.profile is not None and project.backends is not None and project.model is not None
        self._unsubscribe()
        self.refresher.close()
        self.profile = project.profile
        self.backends = project.backends
        self.model = project.model
        self.state = project.model.state
        self.refresher = Refresher(self.model, live=self.live)
        self.schedule = self.refresher.schedule
        self._unsubscribe = self.state.subscribe(self._source_changed)

    def action_refresh_all(self) -> None:
        if self.project is None:
            self.projects.poll()
        else:
            super().action_refresh_all()

    def open_project(self, name: str, env: str | None = None) -> str | None:
        """Show `name` in the console (on `env` when given); returns why not, or None."""
        project = self.projects.get(name)
        if project is None:
            return f"no project named '{name}' (the projects: {', '.join(self.projects.names())})"
        if project.profile is None:
            return f"{name} is not loaded: {project.failure}"
        if project.profile.keymap:
            from opsconsole.errors import OpsError
            from opsconsole.profiles import check_keymap
            from opsconsole.screens.keymap import binding_ids

            try:
                check_keymap(project.profile, binding_ids())
            except OpsError as exc:
                return f"{name}: {exc.message}"
        if self.project is not project:
            if self.current_mode == "console":
                self.switch_mode("projects")
            self.remove_mode("console")
            self.add_mode("console", _main_screen)
        self._leave()
        self._bind(project)
        self.project = project
        project.full = True
        self.set_keymap(dict(project.profile.keymap))
        if env is not None and env in project.profile.environments:
            self.current_env = env
        elif self.current_env not in project.profile.environments:
            self.current_env = next(iter(project.profile.environments), None)
        self.switch_mode("console")
        # the console screen builds its panes after the first frame: this app's was the overview's
        self.call_after_refresh(self._on_screens, "after_first_frame")
        if self.live:
            self.refresher.start()
        return None

    def show_projects(self) -> None:
        """Back to the overview; the project's full refresh stops (the overview polls it again)."""
        self._leave()
        self.switch_mode("projects")
        self.projects.poll()

    def _leave(self) -> None:
        if self.project is not None:
            self.refresher.close()
            self.project.full = False

