"""The console's side of running an action: prepare it off the UI thread (saying so at once),
confirm exactly its plan, drive it, deliver its events to the screens, announce its end, and run
what the action says follows it (a deploy's verification, with its banner and verdict toast).

The action layer decides; this only shows. `app` is the `OpsConsoleApp` (typed loosely: the app
imports this module, not the other way round).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.messages import RunBatch, RunsChanged, RunsPending, VerifyChanged

if TYPE_CHECKING:
    from opsconsole.actions.base import Action
    from opsconsole.actions.runner import ActionRun
    from opsconsole.actions.runs import RunState

PREPARING_TITLE = "Preparing plan…"
FILL_IN_SECONDS = 300  # how long a plan on screen waits for the mirror's pending commits
PREFETCH_EVERY = 60.0  # seconds between background reads of the shown environment's mirror
CLEANUP_SECONDS = 120  # how long quitting waits for cancelled runs to clean up
EXIT_GRACE_SECONDS = 5


class ActionFlow:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._preparing: dict[int, Any] = {}  # id(action) -> its "preparing plan" toast
        self._verifiers: dict[str, Any] = {}  # env -> the Verifier of its latest deploy

    def install_signal_handlers(self) -> None:
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
        import threading

        app = self.app
        if app.exit_signal is not None:
            return
        app.exit_signal = signum
        app.runs.cancel_all()
        # with the terminal gone Textual's shutdown can block on its output thread: once the runs
        # have cleaned up, a watchdog ends the process regardless
        threading.Thread(target=self._exit_after_cleanup, args=(signum,), daemon=True).start()
        app.exit()

    def _exit_after_cleanup(self, signum: int) -> None:
        import os
        import time

        self.app.runs.wait(CLEANUP_SECONDS)
        time.sleep(EXIT_GRACE_SECONDS)
        os._exit(128 + signum)

    def make_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> Action:
        from opsconsole.actions.base import ActionContext, Target
        from opsconsole.actions.registry import ACTIONS

        app = self.app
        ctx = ActionContext(
            profile=app.profile,
            backends=app.backends,
            read_only=app.read_only,
            via=app.via,
            remote=app.remote,
            known=app.state,  # plans start from the last refresh, not from reading every host again
        )
        return ACTIONS[action_id](ctx, Target(env=env, name=name, host=host, options=options))

    def request(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> None:
        """Build the action and visit the core prepare step (off the UI thread: a plan may read the
        hosts), then confirm with exactly that plan, or refuse, or run."""
        try:
            action = self.make_action(action_id, env, name, host, **options)
        except OpsError as exc:
            self.app.notify(exc.message, title=exc.title, severity="error")
            return
        if action.changes:  # its plan may read every host (and fetch the repository): say so at once
            from textual.notifications import Notification, Notify

            toast = Notification(f"{action.title} on {env}: reading the hosts…", PREPARING_TITLE, "information", 300)
            self._preparing[id(action)] = toast
            self.app.post_message(Notify(toast))
        work = partial(
            self.app.run_worker,
            partial(self._prepare, action),
            thread=True,
            exit_on_error=False,
            group="prepare",
            name="prepare",
        )
        # the toast is drawn first: a plan built meanwhile on a worker thread competes with that
        # frame for the interpreter (D showed nothing for ~60 ms, a bare app's toast takes ~12)
        if action.changes:
            self.app.call_after_refresh(work)
        else:
            work()

    def _prepare(self, action: Action) -> None:
        from opsconsole.actions.runner import ActionRun

        run = ActionRun(action)
        try:
            run.prepare()
            idle = action.idle_message()
            if idle is not None:  # nothing to show on a run's screen: say so instead
                self.app.call_from_thread(self.app.notify, idle, title=action.title, timeout=8)
                return
        except OpsError as exc:
            self.app.call_from_thread(self.app.notify, exc.message, title=exc.title, severity="error")
            return
        finally:
            self.app.call_from_thread(self._prepared, action)
        self.app.call_from_thread(self._confirm_and_start, run)

    def _prepared(self, action: Action) -> None:
        """The plan is ready (or failed): the "preparing plan" toast goes."""
        toast = self._preparing.pop(id(action), None)
        if toast is not None and toast in self.app._notifications:
            self.app._unnotify(toast)

    def _confirm_and_start(self, run: ActionRun) -> None:
        from opsconsole.screens.confirm import ConfirmScreen

        prepared = run.prepare()
        action = run.action
        if prepared.refusal is not None:
            self.app.notify(prepared.refusal.message, title=prepared.refusal.title, severity="error")
            return
        # a shell takes the terminal: it runs once the modal is gone, with the console suspended
        begin = partial(self.app.call_later, self.in_terminal) if getattr(action, "foreground", False) else self.start
        if prepared.confirmation == "none":
            run.approve(None)
            begin(run)
            return
        assert prepared.plan is not None

        def confirmed(answer: str | None) -> None:
            if answer is None:
                self.app.notify(f"{action.title} cancelled: nothing was changed", timeout=3)
                return
            run.approve(answer)
            begin(run)

        screen = ConfirmScreen(action, prepared.plan, prepared.confirmation)
        self.app.push_screen(screen, confirmed)
        filling = getattr(action, "filling", None)
        if filling is not None and not filling.is_set():
            self.app.run_worker(
                partial(self._fill_in, run, screen, filling),
                thread=True,
                exit_on_error=False,
                group="prepare",
                name="fill in the plan",
            )

    def _fill_in(self, run: ActionRun, screen: Any, filling: Any) -> None:
        """Off the UI thread: once what the plan was waiting for is read (the mirror's pending
        commits), the plan is built again from what is now held and replaces the one on screen,
        if that screen is still asking (the plan approved is the plan shown)."""
        from opsconsole.actions.runner import Prepared

        filling.wait(FILL_IN_SECONDS)
        if not filling.is_set():
            return
        try:
            plan = run.action.plan()
        except OpsError:
            return  # the plan on screen stays: it says the commits are being read, the run reads them

        def replace() -> None:
            prepared = run.prepared
            if prepared is not None and screen.update_plan(plan):
                run.prepared = Prepared(plan, prepared.confirmation, prepared.refusal)

        self.app.call_from_thread(replace)

    def prefetch_after_refresh(self, env_name: str, key: Any) -> None:
        """The shown environment's first host was refreshed: what a deploy would send out is read from
        its mirror in the background, at most once a minute, so D shows it at once. Never in
        read-only (the fetch writes the mirror), nor for a fabfile's deploy (it has no mirror), nor
        while the environment's polling is stretched (nothing changed and nobody pressed a key: an
        idle console would fetch once a minute for nobody; D reads the mirror then, and its plan
        says so until the read is in)."""
        app = self.app
        env = app.profile.environments.get(env_name)
        if (
            app.read_only
            or app.refresher.schedule.stretched(env_name)
            or env is None
            or env.deploy is None
            or env.deploy.strategy == "fabric"
            or not env.hosts
            or key != ("deploys", env.hosts[0].raw)
            or env_name != app.current_env
        ):
            return
        import time

        from opsconsole.actions.deploy.pending import MIRRORS

        ref = env.deploy.branch
        fetched = MIRRORS.get(env, ref)
        if MIRRORS.fetching(env, ref) is None and (fetched is None or time.time() - fetched.at > PREFETCH_EVERY):
            MIRRORS.prefetch(app.backends, env, ref)

    def in_terminal(self, run: ActionRun) -> None:
        """An action that needs the terminal (a shell) runs with the console suspended (`App.suspend`),
        on the UI thread, and the console comes back as it was: same screen, pane and selection."""
        from textual.app import SuspendNotSupported

        action = run.action
        try:
            with self.app.suspend():
                print(f"opsconsole: {action.summary()[0]}; `exit` comes back to the console", flush=True)
                outcome = run.run_to_end()
        except SuspendNotSupported:
            self.app.notify(
                f"{action.title}: this console cannot hand its terminal over (it runs headless or in a "
                f"browser); in a terminal, run `opsconsole {action.id} {action.env.name} {action.target_label}"
                + (f" --host {action.target.host}`" if action.target.host else "`"),
                title=f"{action.title}: not here",
                severity="error",
                timeout=20,
            )
            return
        self.app.notify(
            outcome.message[:500],
            title=f"{action.title}: {'closed' if outcome.ok else 'FAILED'}",
            severity="information" if outcome.ok else "error",
            timeout=5 if outcome.ok else 20,
        )
        if self.app.live:
            self.app.refresh_env(action.env.name)

    def start(self, run: ActionRun, show: bool = True) -> RunState:
        from opsconsole.actions.runs import Runs

        app = self.app
        state: RunState = app.runs.add(run)
        app.flush_timer.resume()

        def drive() -> None:
            Runs.drive(state, lambda: app.post_message(RunsPending()))

        app.run_worker(drive, thread=True, exit_on_error=False, group="actions", name=f"run {state.title}")
        app.to_screens(RunsChanged)
        if show:
            self.show(state)
        return state

    def show(self, state: RunState) -> None:
        if state.action.viewer == "log":
            from opsconsole.screens.log_screen import LogScreen

            self.app.push_screen(LogScreen(state))
        else:
            from opsconsole.screens.action_screen import ActionScreen

            self.app.push_screen(ActionScreen(state))

    def flush(self) -> None:
        """On the UI thread: every run's waiting events to the screens; an end is announced, its
        environment refreshed, and what follows it started."""
        app = self.app
        for state, batch in app.runs.take():
            if state.outcome is not None and state.outcome in batch:
                self._announce(state)
                app.to_screens(RunsChanged)
                if state.action.changes and app.live:
                    app.refresh_env(state.action.env.name)
                if app.live:
                    self._follow_up(state)
            app.to_screens(partial(RunBatch, state.id, batch))
        if not app.runs.running():
            app.flush_timer.pause()

    def _announce(self, state: RunState) -> None:
        outcome = state.outcome
        assert outcome is not None
        if state.action.viewer == "log" and outcome.ok:
            return
        watching = getattr(self.app.screen, "run_id", None) == state.id
        if not watching or not outcome.ok or state.action.id == "watch":
            self.app.notify(
                outcome.message[:500],
                title=f"{state.title}: {'done' if outcome.ok else 'FAILED'}",
                severity="information" if outcome.ok else "error",
                timeout=8 if outcome.ok else 20,
            )

    def _follow_up(self, state: RunState) -> None:
        """What the action says follows its outcome; a deploy's verification gets the banner."""
        from opsconsole.actions.deploy.verify import Verifier

        assert state.outcome is not None
        verifier = state.action.follow_up(state.outcome)
        if not isinstance(verifier, Verifier):
            return
        env = state.action.env.name
        previous = self._verifiers.pop(env, None)
        if previous is not None:
            previous.cancel.set()  # a newer deploy: the older verification no longer applies
        self._verifiers[env] = verifier
        self.app.state.verifications[env] = verifier.status
        self.app.run_worker(
            partial(self._verify, verifier), thread=True, exit_on_error=False, group="verify", name="verify"
        )

    def _verify(self, verifier: Any) -> None:
        env = verifier.env.name

        def update(_status: Any) -> None:
            self.app.call_from_thread(self.app.to_screens, partial(VerifyChanged, env))

        try:
            status = verifier.run(update)
        except Exception as exc:  # noqa: BLE001 - the banner says what happened, the console goes on
            # a verifier that broke says nothing about the release: not verified, nothing to roll back
            verifier.status.verdict = "inconclusive"
            verifier.status.reasons.append(f"verification stopped: {type(exc).__name__}: {exc}")
            status = verifier.status
        if verifier.cancel.is_set() or status.verdict is None:
            return
        self.app.call_from_thread(self._verified, env, status)

    def _verified(self, env: str, status: Any) -> None:
        """The verdict's toast; only a failed verification offers `R` (superseded: the release is no
        longer current, inconclusive: nothing says it is bad)."""
        notify = self.app.notify
        self.app.to_screens(partial(VerifyChanged, env))
        if status.verdict == "pass":
            notify(status.line(), title="Verified", timeout=10)
        elif status.verdict == "fail":
            notify(
                status.line() + f". Press R to roll back {env}.",
                title="Verification FAILED",
                severity="error",
                timeout=30,
            )
        elif status.verdict == "superseded":
            notify(status.line(), title="Verification superseded", severity="warning", timeout=30)
        else:
            notify(status.line(), title="Verification INCONCLUSIVE", severity="warning", timeout=30)
