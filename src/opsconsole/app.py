"""The console: wiring of the Textual app over the core (profile, backends, action layer).

The app owns the latest source results and the running actions (`Runs`); screens render them when
told by messages (`SourceChanged`, `RunBatch`). Refreshes run in thread workers, one per
environment, re-armed with `set_timer` when they complete (`RefreshSchedule` says when), so a slow
host never stacks refreshes and never blocks a key press.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App
from textual.binding import BindingType

from opsconsole.errors import OpsError
from opsconsole.messages import (
    RunBatch,
    RunsChanged,
    RunsPending,
    SourceChanged,
    SourceUpdated,
    StatsUpdated,
    VerifyChanged,
)
from opsconsole.profiles import Profile
from opsconsole.refresh import RefreshSchedule
from opsconsole.runs import Runs, RunState
from opsconsole.screens.keymap import APP_BINDINGS
from opsconsole.snapshot import (
    DEADLINE_MARGIN,
    Backends,
    SourceResult,
    describe_timeout,
    dora_result,
    env_tasks,
    fan_out,
    host_of,
    owed_keys,
)
from opsconsole.summary import visible

if TYPE_CHECKING:  # the action layer loads when the first action is asked for, after the first frame
    from opsconsole.actions.base import Action
    from opsconsole.actions.runner import ActionRun

__all__ = ["CLEANUP_SECONDS", "OpsConsoleApp", "RunState", "make_app"]


def _main_screen() -> Any:
    from opsconsole.screens.main import MainScreen

    return MainScreen()


def _actions_provider() -> Any:
    from opsconsole.palette import ActionsProvider

    return ActionsProvider


SourceKey = tuple[str, ...]
CLEANUP_SECONDS = 120  # how long quitting waits for cancelled runs to clean up
FIRST_FRAME_FALLBACK_SECONDS = 1.0  # start-up work waits for the first frame, at most this long
FREEZE_AFTER_SECONDS = 2.0  # start-up objects (modules, widgets, styles) are frozen once built
EXIT_GRACE_SECONDS = 5


class OpsConsoleApp(App[None]):
    """Built by `make_app` from a resolved profile and its backends (the CLI and tests both do)."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)
    COMMANDS = App.COMMANDS | {_actions_provider}
    COMMAND_PALETTE_BINDING = ""  # the binding above (id "palette") opens it, remappable
    # The console is the bottom screen of its mode: pushed over Textual's empty default screen, that
    # one (a "background screen") asked for a repaint of the whole terminal after every burst of
    # messages, ~16 KB a second at 120x40 while nothing changed. (A mode also loads its CSS_PATH.)
    MODES: ClassVar[dict[str, Any]] = {"console": _main_screen}
    DEFAULT_MODE = "console"

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
    ) -> None:
        super().__init__()
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
        self.results: dict[str, dict[SourceKey, SourceResult[Any]]] = {
            name: {} for name in profile.environments
        }
        self.stats: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in profile.environments}
        self.runs = Runs()
        self.schedule = RefreshSchedule(profile.defaults.refresh)
        self.schedule.spread(list(profile.environments))
        self.exit_signal: int | None = None
        self.current_env: str | None = next(iter(profile.environments), None)
        self.verifications: dict[str, Any] = {}  # env -> VerifyStatus of its latest deploy
        self._verifiers: dict[str, Any] = {}
        self._shutting_down = threading.Event()
        self._refreshing_envs: set[str] = set()
        self._refresh_timers: dict[str, Any] = {}
        self._first_frame_done = False

    # ---------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        if self.profile.keymap:
            self.set_keymap(dict(self.profile.keymap))
        # output lines of running actions are delivered in batches, ten times a second at most
        self._flush_timer = self.set_interval(0.1, self._flush_runs, pause=True)
        self._install_signal_handlers()
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
        self._on_screens("after_first_frame")
        if self.live:
            self.action_refresh_all()

    def _on_screens(self, hook: str) -> None:
        """Call `hook` on every screen that has it (the console screen's start-up steps)."""
        for screen in self.screen_stack:
            method = getattr(screen, hook, None)
            if method is not None:
                method()

    def _freeze_startup_objects(self) -> None:
        """Move what start-up built (modules, widgets, styles) out of the garbage collector's reach:
        a full collection then scans only what changes, and no longer stalls a key press for
        ~50-90 ms now and then (the slow presses measured under load were these)."""
        import gc

        gc.collect()
        gc.freeze()

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
        self.runs.cancel_all()
        # After a hang-up the terminal is gone and Textual's shutdown can block on its output
        # thread; once the runs have cleaned up, a watchdog ends the process regardless.
        threading.Thread(target=self._exit_after_cleanup, args=(signum,), daemon=True).start()
        self.exit()

    def _exit_after_cleanup(self, signum: int) -> None:
        import os

        self.runs.wait(CLEANUP_SECONDS)
        time.sleep(EXIT_GRACE_SECONDS)
        os._exit(128 + signum)

    def action_refresh_all(self) -> None:
        for env in self.profile.environments:
            self.refresh_env(env)

    def on_unmount(self) -> None:
        self._shutting_down.set()
        self.runs.cancel_all()

    # ---------------------------------------------------------------- refresh

    def refresh_env(self, env_name: str) -> None:
        """Every source of one environment, on the profile's shared workers (hosts take turns, at
        most `defaults.concurrency` at once); each result is posted as it arrives. Whatever happens,
        the next refresh is armed, and an unexpected failure shows in every pane."""
        if self._shutting_down.is_set():
            return
        self._refreshing_envs.add(env_name)
        env = self.profile.env(env_name)
        timeout = self.profile.defaults.timeout

        def post(key: SourceKey, result: SourceResult[Any]) -> None:
            if key[0] == "supervisor" and result.ok:
                previous = self.results.get(env_name, {}).get(key)
                if previous is not None and previous.ok and visible(previous.data) == visible(result.data):
                    # nothing on screen changes: fresh again, with no message and no redraw (the
                    # UI thread stays free for keys while a fleet of supervisords answers)
                    previous.fetched_at, previous.elapsed = result.fetched_at, result.elapsed
                    return
            self.post_message(SourceUpdated(env_name, key, result))

        def failed(exc: Exception) -> None:
            error = f"refresh of {env_name} failed: {type(exc).__name__}: {exc}"
            for key in owed_keys(env):
                post(key, SourceResult(error=error))

        def done(_results: Any) -> None:  # on a worker thread, once every host has had its turn
            try:
                if env.deploy is not None and env.hosts:  # from the journals the deploys sources read
                    post(("dora",), dora_result(self.backends, env))
                if env_name == self.current_env and env.docker is not None:
                    self._sample_stats(env_name)
            except Exception as exc:  # noqa: BLE001 - shown in the panes, and the refresh goes on
                failed(exc)
            finally:
                if self.live and not self._shutting_down.is_set():
                    try:
                        self.call_from_thread(self._rearm, env_name)
                    except RuntimeError:  # the app has stopped meanwhile
                        pass

        try:
            tasks = env_tasks(self.backends, env)
        except Exception as exc:  # noqa: BLE001
            failed(exc)
            tasks = {}
        if not tasks:
            if self.live:
                self.call_later(self._rearm, env_name)
            return
        fan_out(
            tasks,
            timeout + DEADLINE_MARGIN,
            describe_timeout(env, timeout),
            on_result=post,
            host_of=host_of,
            pools=self.backends.pools,
            on_done=done,
        )

    def _rearm(self, env_name: str) -> None:
        # on the UI thread, after this refresh's results were handled (they were posted before);
        # one timer per environment, so refreshes never stack
        self._refreshing_envs.discard(env_name)
        delay = self.schedule.next_delay(env_name, self.results.get(env_name, {}))
        old = self._refresh_timers.pop(env_name, None)
        if old is not None:
            old.stop()
        self._refresh_timers[env_name] = self.set_timer(delay, lambda: self.refresh_env(env_name))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not self._first_frame_done:
            self._on_screens("add_action_bindings")  # a key before the first frame: bind them now
        if isinstance(event, events.Key | events.MouseDown) and self.schedule.idle:
            self.schedule.touched()
            env = self.current_env
            if env is not None and self.live and env not in self._refreshing_envs:
                timer = self._refresh_timers.pop(env, None)
                if timer is not None:
                    timer.stop()
                self.refresh_env(env)  # the stretched wait ends now, not in 4x refresh
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

    def _to_screens(self, message_factory: Callable[[], Any]) -> None:
        for screen in self.screen_stack:
            screen.post_message(message_factory())

    def on_source_updated(self, message: SourceUpdated) -> None:
        self.results.setdefault(message.env, {})[message.key] = message.result
        self._to_screens(lambda: SourceChanged(message.env, message.key))

    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.stats.setdefault(message.env, {})[message.host] = message.stats
        self._to_screens(lambda: SourceChanged(message.env, ("docker", message.host)))

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

        ctx = ActionContext(
            profile=self.profile,
            backends=self.backends,
            read_only=self.read_only,
            via=self.via,
            remote=self.remote,
        )
        return ACTIONS[action_id](ctx, Target(env=env, name=name, host=host, options=options))

    def request_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> None:
        """Build the action and visit the core prepare step (off the UI thread: a plan may read the
        hosts), then confirm with exactly that plan, or refuse, or run."""
        try:
            action = self.make_action(action_id, env, name, host, **options)
        except OpsError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        self._prepare(action)

    @work(thread=True, exit_on_error=False, group="prepare")
    def _prepare(self, action: Action) -> None:
        from opsconsole.actions.runner import ActionRun

        run = ActionRun(action)
        try:
            run.prepare()
        except OpsError as exc:
            self.call_from_thread(self.notify, exc.message, title=exc.title, severity="error")
            return
        self.call_from_thread(self._confirm_and_start, run)

    def _confirm_and_start(self, run: ActionRun) -> None:
        from opsconsole.screens.confirm import ConfirmScreen

        prepared = run.prepare()
        action = run.action
        if prepared.refusal is not None:
            self.notify(prepared.refusal.message, title=prepared.refusal.title, severity="error")
            return
        if prepared.confirmation == "none":
            run.approved = True
            self.start_run(run)
            return
        assert prepared.plan is not None

        def confirmed(answer: str | None) -> None:
            if answer is None:
                self.notify(f"{action.title} cancelled: nothing was changed", timeout=3)
                return
            run.approved = True
            run.confirm = answer if prepared.confirmation == "typed" else None
            self.start_run(run)

        self.push_screen(ConfirmScreen(action, prepared.plan, prepared.confirmation), confirmed)

    def start_run(self, run: ActionRun, show: bool = True) -> RunState:
        state = self.runs.add(run)
        self._flush_timer.resume()
        self._drive_run(state)
        self._to_screens(RunsChanged)
        if show:
            self.show_run(state)
        return state

    def show_run(self, state: RunState) -> None:
        if state.action.id == "logs":
            from opsconsole.screens.log_screen import LogScreen

            self.push_screen(LogScreen(state))
        else:
            from opsconsole.screens.action_screen import ActionScreen

            self.push_screen(ActionScreen(state))

    @work(thread=True, exit_on_error=False, group="actions")
    def _drive_run(self, state: RunState) -> None:
        def wake() -> None:
            self.post_message(RunsPending())

        Runs.drive(state, wake)

    def on_runs_pending(self, _message: RunsPending) -> None:
        self._flush_runs()

    def _flush_runs(self) -> None:
        for state, batch in self.runs.take():
            if state.outcome is not None and state.outcome in batch:
                self._announce(state)
                self._to_screens(RunsChanged)
                if state.action.changes and self.live:
                    self.refresh_env(state.action.env.name)
                if state.action.id == "deploy" and state.outcome.ok and self.live:
                    self._maybe_verify(state)
            self._to_screens(partial(RunBatch, state.id, batch))
        if not self.runs.running():
            self._flush_timer.pause()

    def _maybe_verify(self, state: RunState) -> None:
        """After a successful deploy with [deploy.verify]: the verification banner for the window."""
        from opsconsole.actions.deploy import DeployAction
        from opsconsole.verify import Verifier, sentry_version

        action = state.action
        env = action.env
        if not isinstance(action, DeployAction) or env.deploy is None or env.deploy.verify is None:
            return
        if action.sha is None:
            return
        previous = self._verifiers.pop(env.name, None)
        if previous is not None:
            previous.cancel.set()  # a newer deploy: the older verification no longer applies
        version = sentry_version(env, self.profile.project_name, action.release, action.sha, action.ref)
        verifier = Verifier(self.backends, env, action.release, version)
        self._verifiers[env.name] = verifier
        self.verifications[env.name] = verifier.status
        self._run_verifier(verifier)

    @work(thread=True, exit_on_error=False, group="verify")
    def _run_verifier(self, verifier: Any) -> None:
        env = verifier.env.name

        def update(_status: Any) -> None:
            self.call_from_thread(self._to_screens, partial(VerifyChanged, env))

        try:
            status = verifier.run(update)
        except Exception as exc:  # noqa: BLE001 - the banner says what happened, the console goes on
            verifier.status.verdict = "fail"
            verifier.status.reasons.append(f"verification stopped: {type(exc).__name__}: {exc}")
            status = verifier.status
        if verifier.cancel.is_set() or status.verdict is None:
            return
        self.call_from_thread(self._verified, env, status)

    def _verified(self, env: str, status: Any) -> None:
        self._to_screens(partial(VerifyChanged, env))
        if status.verdict == "pass":
            self.notify(status.line(), title="Verified", timeout=10)
        else:
            self.notify(
                status.line() + f". Press R to roll back {env}.",
                title="Verification FAILED",
                severity="error",
                timeout=30,
            )

    def _announce(self, state: RunState) -> None:
        outcome = state.outcome
        assert outcome is not None
        if state.action.id == "logs" and outcome.ok:
            return
        watching = getattr(self.screen, "run_id", None) == state.id
        if not watching or not outcome.ok or state.action.id == "watch":
            self.notify(
                outcome.message[:500],
                title=f"{state.title}: {'done' if outcome.ok else 'FAILED'}",
                severity="information" if outcome.ok else "error",
                timeout=8 if outcome.ok else 20,
            )

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

    def save_text(self, path: Path, text: str) -> None:
        from opsconsole.atomic import write_atomic

        write_atomic(path, text.encode("utf-8"))


def make_app(profile: Profile, backends: Backends | None = None, **kwargs: Any) -> OpsConsoleApp:
    return OpsConsoleApp(profile, backends or Backends(profile), **kwargs)
