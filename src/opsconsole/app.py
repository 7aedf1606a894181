"""The console: wiring of the Textual app over the core (profile, backends, action layer).

The app owns the latest source results and the running actions; screens render them. Refreshes run
in thread workers, one per environment, re-armed with `set_timer` when they complete, so a slow host
never stacks refreshes and never blocks a key press.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType

from opsconsole.errors import OpsError
from opsconsole.keys import KEYS
from opsconsole.messages import RunsPending, SourceUpdated, StatsUpdated
from opsconsole.profiles import Profile
from opsconsole.snapshot import Backends, SourceResult, describe_timeout, env_tasks, run_with_deadline

if TYPE_CHECKING:  # the action layer loads when the first action is asked for, after the first frame
    from opsconsole.actions.base import Action, Event, Outcome
    from opsconsole.actions.runner import ActionRun


def _actions_provider() -> Any:
    from opsconsole.palette import ActionsProvider

    return ActionsProvider


SourceKey = tuple[str, ...]
IDLE_BACKOFF = 4
CLEANUP_SECONDS = 120  # how long quitting waits for cancelled runs to clean up
EXIT_GRACE_SECONDS = 5


@dataclass
class RunState:
    """One action run as the console tracks it (several can run at once)."""

    id: int
    action: Action
    run: ActionRun
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    outcome: Outcome | None = None
    finished: float | None = None
    pending: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def title(self) -> str:
        return f"{self.action.title} {self.action.target_label} ({self.action.env.name})"


def key_bindings() -> list[BindingType]:
    bindings: list[BindingType] = []
    for spec in KEYS:
        priority = spec.id in ("palette", "quit")
        bindings.append(
            Binding(
                spec.keys,
                spec.id,
                spec.description,
                show=spec.show,
                tooltip=spec.tooltip,
                id=spec.id,
                priority=priority and spec.id == "palette",
            )
        )
    return bindings


class OpsConsoleApp(App[None]):
    """Built by `make_app` from a resolved profile and its backends (the CLI and tests both do)."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+c", "quit", "Quit", show=False, id="ctrl_c_quit")]
    COMMANDS = App.COMMANDS | {_actions_provider}

    def __init__(
        self,
        profile: Profile,
        backends: Backends,
        *,
        read_only: bool = False,
        live: bool = True,
        log_lines: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.profile = profile
        self.backends = backends
        self.read_only = read_only
        self.live = live
        self.log_lines = log_lines
        self.clock = clock
        self.results: dict[str, dict[SourceKey, SourceResult[Any]]] = {
            name: {} for name in profile.environments
        }
        self.stats: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in profile.environments}
        self.runs: dict[int, RunState] = {}
        self.exit_signal: int | None = None
        self._run_ids = itertools.count(1)
        self.current_env: str | None = next(iter(profile.environments), None)
        self._fingerprints: dict[str, Any] = {}
        self._streaks: dict[str, int] = {}
        self._shutting_down = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        from opsconsole.screens.main import MainScreen

        if self.profile.keymap:
            self.set_keymap(dict(self.profile.keymap))
        # output lines of running actions are delivered in batches, ten times a second at most
        self._flush_timer = self.set_interval(0.1, self._flush_runs, pause=True)
        self.push_screen(MainScreen())
        if self.live:
            self.call_after_refresh(self.action_refresh_all)
        self._install_signal_handlers()

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP (a dropped SSH session) cancel running actions like `c` does, then quit;
        `run_console` waits for their clean-up and exits 128+signal."""
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(signum, self._on_signal, int(signum))
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                pass

    def _on_signal(self, signum: int) -> None:
        if self.exit_signal is not None:
            return
        self.exit_signal = signum
        self.cancel_runs()
        # After a hang-up the terminal is gone and Textual's shutdown can block on its output
        # thread; once the runs have cleaned up, a watchdog ends the process regardless.
        threading.Thread(target=self._exit_after_cleanup, args=(signum,), daemon=True).start()
        self.exit()

    def _exit_after_cleanup(self, signum: int) -> None:
        import os

        self.wait_for_runs(CLEANUP_SECONDS)
        time.sleep(EXIT_GRACE_SECONDS)
        os._exit(128 + signum)

    def cancel_runs(self) -> None:
        for state in self.runs.values():
            if state.outcome is None:
                state.run.cancel()

    def wait_for_runs(self, timeout: float) -> list[RunState]:
        """Wait for cancelled runs to clean up (remove the release, journal, unlock, audit); returns
        those still running at the deadline."""
        deadline = time.monotonic() + timeout
        for state in list(self.runs.values()):
            state.run.done.wait(max(0.0, deadline - time.monotonic()))
        return [s for s in self.runs.values() if not s.run.done.is_set()]

    def action_refresh_all(self) -> None:
        for env in self.profile.environments:
            self.refresh_env(env)

    def on_unmount(self) -> None:
        self._shutting_down.set()
        self.cancel_runs()

    # ---------------------------------------------------------------- refresh

    @work(thread=True, exit_on_error=False, group="refresh")
    def refresh_env(self, env_name: str) -> None:
        """Every source of one environment at once; each result is posted as it arrives."""
        if self._shutting_down.is_set():
            return
        env = self.profile.env(env_name)
        timeout = self.profile.defaults.timeout
        tasks = env_tasks(self.backends, env)

        def post(key: SourceKey, result: SourceResult[Any]) -> None:
            self.post_message(SourceUpdated(env_name, key, result))

        if tasks:
            run_with_deadline(
                tasks, time.monotonic() + timeout + 0.3, describe_timeout(env, timeout), on_result=post
            )
            if env_name == self.current_env and env.docker is not None:
                self._sample_stats(env_name)
        if self.live and not self._shutting_down.is_set():
            self.call_from_thread(self._rearm, env_name)

    def _rearm(self, env_name: str) -> None:
        # on the UI thread, after this refresh's results were handled (they were posted before)
        self.set_timer(self._next_delay(env_name), lambda: self.refresh_env(env_name))

    def _next_delay(self, env_name: str) -> float:
        """The refresh interval, stretched (up to IDLE_BACKOFF times) while nothing changes and nobody
        touches a key: an idle console costs the hosts, the link and the CPU less. Any change, or
        any key, brings it back to the profile's `refresh`."""
        from opsconsole.summary import fingerprint

        now = fingerprint(self.results.get(env_name, {}))
        same = self._fingerprints.get(env_name) == now
        self._fingerprints[env_name] = now
        self._streaks[env_name] = self._streaks.get(env_name, 0) + 1 if same else 0
        factor = min(2 ** self._streaks[env_name], IDLE_BACKOFF)
        return float(self.profile.defaults.refresh * factor)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown) and any(self._streaks.values()):
            self._streaks.clear()  # someone is looking: the next refreshes come at the normal pace
        await super().on_event(event)

    def _sample_stats(self, env_name: str) -> None:
        env = self.profile.env(env_name)
        for key, result in list(self.results.get(env_name, {}).items()):
            if key[0] != "docker" or not result.data:
                continue
            host = env.host(key[1])
            running = [c.name for c in result.data if c.state == "running"]
            try:
                sample = self.backends.docker(env, host).stats(running)
            except OpsError:
                continue
            self.post_message(StatsUpdated(env_name, host.raw, sample))

    def on_source_updated(self, message: SourceUpdated) -> None:
        self.results.setdefault(message.env, {})[message.key] = message.result
        from opsconsole.screens.main import MainScreen

        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.source_updated(message.env, message.key)

    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.stats.setdefault(message.env, {})[message.host] = message.stats
        from opsconsole.screens.main import MainScreen

        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.source_updated(message.env, ("docker", message.host))

    def action_refresh(self) -> None:
        for env in self.profile.environments:
            self.refresh_env(env)
        self.notify("refreshing every source", timeout=2)

    # ---------------------------------------------------------------- actions

    def make_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> Action:
        from opsconsole.actions.base import ActionContext, Target
        from opsconsole.actions.registry import ACTIONS

        ctx = ActionContext(profile=self.profile, backends=self.backends, read_only=self.read_only)
        return ACTIONS[action_id](ctx, Target(env=env, name=name, host=host, options=options))

    def request_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> None:
        """Build the action, refuse early under read-only, confirm with its plan, then run it."""
        from opsconsole.actions.runner import check_policies, read_only_active
        from opsconsole.screens.confirm import ConfirmScreen

        try:
            action = self.make_action(action_id, env, name, host, **options)
        except OpsError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        if action.changes and read_only_active(action):
            try:
                check_policies(action, confirm=None, approved=True)
            except OpsError as exc:
                self.notify(exc.message, title="Read-only", severity="error")
            return
        if not action.changes or (not action.needs_confirmation and not action.env.protected):
            self.start_run(action, None, True)  # reads, and custom actions with confirm = false
            return
        try:
            plan = action.plan()
        except OpsError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return

        def confirmed(answer: str | None) -> None:
            if answer is None:
                self.notify(f"{action.title} cancelled: nothing was changed", timeout=3)
                return
            self.start_run(action, answer if action.env.protected else None, True)

        self.push_screen(ConfirmScreen(action, plan), confirmed)

    def start_run(self, action: Action, confirm: str | None, approved: bool, show: bool = True) -> RunState:
        from opsconsole.actions.runner import ActionRun

        state = RunState(next(self._run_ids), action, ActionRun(action, confirm=confirm, approved=approved))
        self.runs[state.id] = state
        self._flush_timer.resume()
        self._drive_run(state)
        if show:
            if action.id == "logs":
                from opsconsole.screens.log_screen import LogScreen

                self.push_screen(LogScreen(state))
            else:
                from opsconsole.screens.action_screen import ActionScreen

                self.push_screen(ActionScreen(state))
        return state

    @work(thread=True, exit_on_error=False, group="actions")
    def _drive_run(self, state: RunState) -> None:
        from opsconsole.actions.base import OutputLine, OutputLines

        for event in state.run.events():
            with state.lock:
                state.pending.append(event)
            if not isinstance(event, OutputLine | OutputLines):
                self.post_message(RunsPending())  # steps and outcomes show at once; lines in batches
        self.post_message(RunsPending())

    def on_runs_pending(self, _message: RunsPending) -> None:
        self._flush_runs()

    def _flush_runs(self) -> None:
        active = False
        for state in list(self.runs.values()):
            with state.lock:
                batch, state.pending = state.pending, []
            if state.outcome is None:
                active = True
            if batch:
                self._deliver(state, batch)
        if not active:
            self._flush_timer.pause()

    def _deliver(self, state: RunState, batch: list[Event]) -> None:
        from opsconsole.actions.base import Outcome

        for event in batch:
            if isinstance(event, Outcome):
                state.outcome = event
                state.finished = time.monotonic()
                self._announce(state)
                if state.action.changes and self.live:
                    self.refresh_env(state.action.env.name)
            elif state.action.id != "logs":
                state.events.append(event)
        for screen in self.screen_stack:
            handler = getattr(screen, "on_run_batch", None)
            if handler is not None and getattr(screen, "run_id", None) == state.id:
                handler(batch)

    def _announce(self, state: RunState) -> None:
        from opsconsole.screens.action_screen import ActionScreen

        outcome = state.outcome
        assert outcome is not None
        if state.action.id == "logs" and outcome.ok:
            return
        watching = isinstance(self.screen, ActionScreen) and self.screen.run_id == state.id
        if not watching or not outcome.ok:
            self.notify(
                outcome.message[:500],
                title=f"{state.title}: {'done' if outcome.ok else 'FAILED'}",
                severity="information" if outcome.ok else "error",
                timeout=8 if outcome.ok else 20,
            )

    def save_text(self, path: Path, text: str) -> None:
        from opsconsole.atomic import write_atomic

        write_atomic(path, text.encode("utf-8"))


def make_app(profile: Profile, backends: Backends | None = None, **kwargs: Any) -> OpsConsoleApp:
    return OpsConsoleApp(profile, backends or Backends(profile), **kwargs)
