"""Deploy on the Capistrano/Deployer layout (see backends/releases.py): the saga.

Deploy: lock every host, then on every host (in parallel) fetch the repository into a bare mirror,
export the commit into `releases/<UTC timestamp>`, link `shared` items and run the `build` commands;
only when every host has built does any host switch `current` (see shell.switch_command). Then the
restart targets, the journal, pruning, and the lock released. On any failure before the switch,
`current` is untouched everywhere, the failed release is removed, and the journal says what failed
(recover.py). The plan is plan.py; the batch-by-batch switch is rolling.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from opsconsole.actions.base import Action, ActionContext, Option, Plan, Scope, Target
from opsconsole.actions.deploy import plan as deploy_plan
from opsconsole.actions.deploy.host import HostDeploy, require_deploy, run_restarts
from opsconsole.actions.deploy.locks import Locks
from opsconsole.actions.deploy.pending import MIRRORS, journal_commits
from opsconsole.actions.deploy.recover import Transaction, fail_before_switch, fail_during_switch
from opsconsole.actions.deploy.rolling import batches, roll
from opsconsole.actions.deploy.shell import release_id, validate_ref
from opsconsole.actions.deploy.verify import Verifier, sentry_version
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome, StepFinished, StepStarted
from opsconsole.backends.releases import DeployState, prune_candidates, read_state
from opsconsole.backends.shell import quote_path
from opsconsole.errors import ExitCode, OpsError
from opsconsole.human import counted, utc_stamp
from opsconsole.profiles import HostSpec


class DeployAction(Action):
    id: ClassVar[str] = "deploy"
    title: ClassVar[str] = "Deploy"
    key: ClassVar[str | None] = "D"
    tooltip: ClassVar[str] = "Deploy the environment (shows the plan first)"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    description: ClassVar[str] = "Release a ref to every host: build everywhere, then switch `current`"
    options: ClassVar[tuple[Option, ...]] = (
        Option("ref", ("--ref",), "git branch, tag or commit to release (default: the profile's branch)"),
        Option("reason", ("--reason",), "why, recorded in the deploy lock"),
        Option(
            "skip_ci", ("--skip-ci",), "deploy even if CI is red, pending or unreachable (audited)", "flag"
        ),
        Option(
            "verify",
            ("--verify",),
            "after the deploy, wait for the verification window; exit 1 failed, 3 superseded by "
            "another deploy, 4 inconclusive (the error tracker did not answer)",
            "flag",
        ),
        Option(
            "auto_rollback",
            ("--auto-rollback",),
            "with --verify: roll back when verification fails, only from this release and only while "
            "it is still current",
            "flag",
        ),
    )

    def __new__(cls, ctx: ActionContext, target: Target, *args: Any, **kwargs: Any) -> DeployAction:
        """A strategy registered in STRATEGIES deploys with its own action instead."""
        if cls is DeployAction:
            env = ctx.profile.environments.get(target.env)
            other = (
                STRATEGIES.get(env.deploy.strategy) if env is not None and env.deploy is not None else None
            )
            if other is not None:
                return super().__new__(other)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = require_deploy(self.env)
        self.ref = validate_ref(str(self.target.options.get("ref") or self.config.branch))
        self.release = str(self.target.options.get("release") or release_id())
        self.reason = str(self.target.options.get("reason") or f"deploy {self.ref}")
        self.sha: str | None = None  # the deployed commit, once the deploy succeeded
        # in the console, what the plan showed (the run says what changed since) and, while the
        # mirror is read for it, the event set when it is (the front end then fills the plan in)
        self.planned_current: dict[str, str | None] | None = None
        self.planned_sha: str | None = None
        self.filling: threading.Event | None = None

    @property
    def target_label(self) -> str:
        return self.ref

    @property
    def skip_ci(self) -> bool:
        return bool(self.target.options.get("skip_ci"))

    def batches(self) -> list[list[HostSpec]]:
        return batches(self.config, self.hosts)

    def summary(self) -> list[str]:
        held = self._held() if self.ctx.known is not None else None
        return deploy_plan.summary(
            self.ctx.backends, self.env, self.config, self.hosts, self.ref, self.release, self.skip_ci, held
        )

    def _held(self) -> deploy_plan.Held:
        """In the console: the hosts' deploy states of the last refresh (a host not read yet is read
        now) and what goes out as last read from the mirror, while it still starts from the commit
        that runs; else the mirror is read in the background (`filling` is set when it is) and the
        plan says so. What the plan showed is kept: the run says what changed since (`_deploy`)."""
        import time

        known = self.ctx.known
        assert known is not None
        states: dict[str, DeployState | OpsError] = {}
        ages: dict[str, float] = {}
        missing: list[HostSpec] = []
        now = time.time()
        for spec in self.hosts:
            held = known.deploy_state(self.env.name, spec.raw)
            if held is None:
                missing.append(spec)
            else:
                states[spec.raw], ages[spec.raw] = held[0], max(0.0, now - held[1])
        if missing:
            from opsconsole.actions.deploy.host import read_states

            states.update(read_states(self.ctx.backends, missing, self.config))
            states = {spec.raw: states[spec.raw] for spec in self.hosts}
        first = states.get(self.hosts[0].raw)
        running = first.current_commit() if isinstance(first, DeployState) else None
        fetched = MIRRORS.get(self.env, self.ref)
        if fetched is not None and (fetched.found.error or fetched.found.current_commit != running):
            fetched = None  # read before the running release changed, or failed: read again
        if fetched is None:
            self.filling = MIRRORS.fetching(self.env, self.ref) or MIRRORS.prefetch(
                self.ctx.backends, self.env, self.ref
            )
        self.planned_current = {h: s.current for h, s in states.items() if isinstance(s, DeployState)}
        self.planned_sha = fetched.found.sha if fetched is not None else None
        return deploy_plan.Held(states, ages, fetched)

    @property
    def sentry_environment(self) -> str:
        return deploy_plan.sentry_environment(self.env)

    def plan(self) -> Plan:
        host_deploys = self.host_deploys(lambda _e: None)
        return self.make_plan(
            deploy_plan.steps(self.env, self.config, host_deploys, self.ref, self.release, self.skip_ci)
        )

    def follow_up(self, outcome: Outcome) -> Verifier | None:
        """After a successful deploy with [deploy.verify], or one asked to verify (`--verify`, which
        then checks with the default terms): the verification of the deployed release over its
        window. Not started: the front end runs it and shows its verdict."""
        if not outcome.ok or self.sha is None:
            return None
        if self.config.verify is None and not self.target.options.get("verify"):
            return None
        version = sentry_version(self.env, self.ctx.profile.project_name, self.release, self.sha, self.ref)
        return Verifier(self.ctx.backends, self.env, self.release, version, hosts=self.hosts)

    def host_deploys(self, emit: Emit) -> list[HostDeploy]:
        return [
            HostDeploy(
                spec=spec,
                host=self.ctx.backends.host(spec),
                config=self.config,
                release=self.release,
                ref=self.ref,
                user=self.ctx.user,
                cancel=self.ctx.cancel,
                emit=emit,
            )
            for spec in self.hosts
        ]

    def execute(self, emit: Emit) -> Outcome:
        parts = self.host_deploys(emit)
        started = utc_stamp()
        locks = Locks(
            [(p.spec, p.host) for p in parts],
            self.config.path,
            self.ctx.user,
            self.reason,
            emit,
            run=self.ctx.run_id,
            env=self.env.name,
        )
        locks.acquire()
        try:
            return self._deploy(parts, started, emit)
        finally:
            locks.release()

    def _say_what_changed_since_the_plan(self, parts: list[HostDeploy], emit: Emit) -> None:
        """Under the lock, the release each host runs against what the plan showed (the console's
        plan starts from the last refresh): a change is said, and the deploy goes on from it."""
        if self.planned_current is None:
            return
        for part in parts:
            if part.name in self.planned_current and self.planned_current[part.name] != part.previous:
                shown = self.planned_current[part.name]
                emit(
                    Notice(
                        f"{part.name}: now on {'releases/' + part.previous if part.previous else 'no release'}, "
                        f"not {'releases/' + shown if shown else 'no release'} as the plan showed "
                        "(a deploy or rollback ran since); this deploy goes on from it"
                    )
                )

    def _record(self, part: HostDeploy, started: str, outcome: str, **extra: Any) -> dict[str, Any]:
        return {
            "event": "deploy",
            "release": self.release,
            "ref": self.ref,
            "commit": part.sha,
            "commit_time": part.commit_time,
            "who": self.ctx.user,
            "run": self.ctx.run_id,
            "started": started,
            "finished": utc_stamp(),
            "outcome": outcome,
            **extra,
        }

    def _deploy(self, parts: list[HostDeploy], started: str, emit: Emit) -> Outcome:
        existing: set[str] = set()
        states: dict[str, DeployState] = {}
        for part in parts:
            state = states[part.name] = read_state(part.host, self.config)
            part.previous = state.current
            existing.update(state.releases)
        self._say_what_changed_since_the_plan(parts, emit)
        if self.release in existing:  # two deploys within one second: still a fresh, sortable id
            base, n = self.release, 2
            while f"{base}-{n}" in existing:
                n += 1
            self.release = f"{base}-{n}"
            for part in parts:
                part.release = self.release
        errors: dict[str, str] = {}
        deploy = Transaction(
            self.env.name,
            self.release,
            started,
            emit,
            self._record,
            lambda part, cancel: run_restarts(
                self.ctx.backends, self.env, part.spec, self.config, emit, cancel
            ),
        )

        def on_every_host(step: Callable[[HostDeploy], None]) -> None:
            """`step` on every host at once; a host's failure is kept in `errors` by host."""

            def on_host(part: HostDeploy) -> None:
                try:
                    step(part)
                except OpsError as exc:
                    errors[part.name] = exc.message

            with ThreadPoolExecutor(max_workers=len(parts)) as pool:
                list(pool.map(on_host, parts))

        MIRRORS.wait_idle(self.env, parts[0].host.timeout + 300.0)  # the console's background read
        on_every_host(HostDeploy.fetch_and_resolve)
        shas = {p.sha for p in parts if p.sha}
        if self.planned_sha and shas and shas != {self.planned_sha}:
            emit(
                Notice(
                    f"{self.ref} moved since the plan was shown: it is now {min(shas)[:12]}, the plan "
                    f"showed {self.planned_sha[:12]}; deploying {min(shas)[:12]} (the journal records it)"
                )
            )
        if not errors and len(shas) > 1:
            errors.update(
                {p.name: f"{p.name}: {self.ref} resolved to {p.sha}, other hosts differ" for p in parts}
            )
        if not errors and not self.ctx.cancel.is_set():
            refused = self._ci_gate(parts[0], emit)
            if refused is not None:
                return refused
            on_every_host(HostDeploy.build)
        if errors or self.ctx.cancel.is_set():
            if not errors:
                errors = {p.name: f"{p.name}: interrupted before the switch" for p in parts}
            return fail_before_switch(deploy, parts, errors, self.ctx.cancel.is_set())
        commits = self._commits(parts[0], states[parts[0].name], emit)
        # The commit point. From here on an interrupt no longer undoes the deploy: the switch, the
        # restarts and the journal are finished (quickly) so no host is left half-switched.
        interrupted_after_switch = threading.Event()
        for part in parts:
            part.cancel = interrupted_after_switch
        if self.config.strategy == "rolling":
            stopped = roll(deploy, self.config, parts, self.batches(), interrupted_after_switch)
            if stopped is not None:
                return stopped
        else:
            switched: list[HostDeploy] = []
            for part in parts:
                try:
                    part.step(
                        f"switch current -> releases/{self.release}",
                        part.switch_command(self.release),
                        timeout=part.host.timeout,
                    )
                except OpsError as exc:
                    return fail_during_switch(deploy, parts, switched, part, exc)
                part.switched = True
                switched.append(part)
        results: dict[str, str] = {}
        restart_failures: dict[str, list[str]] = {}
        for part in parts:
            failures = (
                []
                if self.config.strategy == "rolling"  # restarted batch by batch already
                else run_restarts(
                    self.ctx.backends, self.env, part.spec, self.config, emit, interrupted_after_switch
                )
            )
            if failures:
                restart_failures[part.name] = failures
            extra: dict[str, Any] = {"restart_errors": failures} if failures else {}
            if self.ctx.cancel.is_set():
                extra["note"] = "interrupted after the switch; the deploy was completed"
            if self.skip_ci:
                extra["ci_skipped"] = True
            part.journal(self._record(part, started, "success", commits=commits, **extra))
            self._prune(part, emit)
            results[part.name] = f"releases/{self.release} ({(part.sha or '')[:12]})"
            ok = not failures
            emit(
                HostResult(
                    part.name, ok, f"current -> releases/{self.release}" + ("" if ok else "; restart failed")
                )
            )
        self._tell_sentry(parts[0], started, commits, emit)
        late = (
            " (the interrupt came after the switch, so the deploy was completed)"
            if self.ctx.cancel.is_set()
            else ""
        )
        if restart_failures:
            detail = "; ".join(f for fs in restart_failures.values() for f in fs)
            return Outcome(
                False,
                f"deployed {self.ref} as {self.release}, but restarting failed: {detail}{late}",
                ExitCode.FAILED,
                results,
            )
        self.sha = next(iter(shas)) if shas else None
        sha = (self.sha or "?")[:12]
        skipped = " (CI gate skipped with --skip-ci)" if self.skip_ci and self.env.ci else ""
        return Outcome(
            True,
            f"deployed {self.ref} ({sha}) as {self.release} to {counted(len(parts), 'hosts')}{skipped}{late}",
            ExitCode.OK,
            results,
        )

    # ------------------------------------------------------------------ CI, commits, Sentry

    def _ci_gate(self, first: HostDeploy, emit: Emit) -> Outcome | None:
        """None to go on; an Outcome (exit 3 red or pending, 4 unreachable) to stop before any build."""
        if self.env.ci is None:
            return None
        assert first.sha is not None
        label = f"{self.env.ci.title} CI checks of {first.sha[:12]}"
        emit(StepStarted(first.name, label))
        try:
            ci = self.ctx.backends.ci(self.env).state(first.sha)
        except OpsError as exc:
            emit(StepFinished(first.name, label, False, exc.message))
            if self.skip_ci:
                emit(Notice(f"CI could not be read ({exc.message}); deploying anyway (--skip-ci)"))
                return None
            return Outcome(
                False,
                f"deploy stopped before building: {exc.message}. Nothing changed; deploy anyway with --skip-ci",
                ExitCode.UNREACHABLE if exc.exit_code == ExitCode.UNREACHABLE else ExitCode.REFUSED,
            )
        emit(StepFinished(first.name, label, ci.state == "success", ci.summary()))
        if ci.state == "success":
            return None
        if self.skip_ci:
            emit(Notice(f"CI is not green ({ci.summary()}); deploying anyway (--skip-ci)"))
            return None
        return Outcome(
            False,
            f"deploy refused: CI for {self.ref} ({first.sha[:12]}) is {ci.summary()}. Nothing changed; "
            "wait for CI, or deploy anyway with --skip-ci",
            ExitCode.REFUSED,
        )

    def _commits(self, first: HostDeploy, state: DeployState, emit: Emit) -> list[list[str]]:
        assert first.sha is not None and first.commit_time is not None
        try:
            return journal_commits(first.host, self.config, state, first.sha, first.commit_time)
        except OpsError as exc:
            emit(Notice(f"{first.name}: could not list the deployed commits: {exc.message}"))
            return [[first.sha, first.commit_time, ""]]

    def _tell_sentry(self, first: HostDeploy, started: str, commits: list[list[str]], emit: Emit) -> None:
        """Create the Sentry release and its deploy; a failure is a notice, never a failed deploy."""
        sentry = self.env.sentry
        if sentry is None or not sentry.releases or first.sha is None:
            return
        version = sentry_version(self.env, self.ctx.profile.project_name, self.release, first.sha, self.ref)
        assert version is not None
        repository = self.env.ci.name if self.env.ci else self.ctx.profile.project_name
        finished = utc_stamp()
        label = f"Sentry release {version}"
        emit(StepStarted(first.name, label))
        try:
            client = self.ctx.backends.sentry_releases(self.env)
            created = asyncio.run(client.create_release(version, commits, self.ref, repository, finished))
            asyncio.run(client.create_deploy(version, self.sentry_environment, started, finished))
        except OpsError as exc:
            emit(StepFinished(first.name, label, False, exc.message))
            emit(Notice(f"the deploy is done, but Sentry was not told: {exc.message}"))
            return
        emit(
            StepFinished(first.name, label, True, f"{created}; deploy to {self.sentry_environment} recorded")
        )

    def _prune(self, part: HostDeploy, emit: Emit) -> None:
        try:
            state = read_state(part.host, self.config)
        except OpsError as exc:
            emit(Notice(f"{part.name}: could not list releases to prune: {exc.message}"))
            return
        old = prune_candidates(state, self.config.keep_releases, self.release)
        if not old:
            return
        targets = " ".join(quote_path(f"{self.config.path}/releases/{r}") for r in old)
        try:
            part.step(
                f"prune {counted(len(old), 'old releases')}",
                f"rm -rf -- {targets}",
                timeout=max(part.host.timeout, 120.0),
            )
        except OpsError as exc:
            emit(Notice(f"{part.name}: pruning failed: {exc.message}"))


# The deploy action of a strategy other than the release layout's, by strategy name; "fabric":
# actions/fabric_deploy.py registers it (the registry imports that module).
STRATEGIES: dict[str, type[DeployAction]] = {}
