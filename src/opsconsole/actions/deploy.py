"""Deploy on the Capistrano/Deployer layout (see backends/releases.py).

Deploy: lock every host, then on every host (in parallel) fetch the repository into a bare mirror,
export the commit into `releases/<UTC timestamp>`, link `shared` items and run the `build` commands;
only when every host has built does any host switch `current` (see commands.switch_command). Then the
restart targets, the journal, pruning, and the lock released. On any failure before the switch,
`current` is untouched everywhere, the failed release is removed, and the journal says what failed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar

from opsconsole.actions.base import (
    Action,
    Emit,
    HostResult,
    Notice,
    Option,
    Outcome,
    Plan,
    PlanStep,
    Scope,
    StepFinished,
    StepStarted,
)
from opsconsole.actions.commands import lock_command, release_id, unlock_command, validate_ref
from opsconsole.actions.hostdeploy import (
    HostDeploy,
    describe_release,
    read_states,
    require_deploy,
    restart_steps,
    run_restarts,
)
from opsconsole.actions.locks import Locks
from opsconsole.actions.pending import journal_commits, what_goes_out
from opsconsole.backends.github import CiState
from opsconsole.backends.releases import (
    DeployState,
    read_state,
    rq,
)
from opsconsole.errors import ExitCode, OpsError
from opsconsole.human import duration
from opsconsole.profiles import HostSpec
from opsconsole.verify import sentry_version


def ci_line(configured: bool, ci: CiState | OpsError | None, skip: bool) -> str:
    """The plan's CI line: green, red or pending with the checks, unreachable, or not configured."""
    if not configured:
        return "CI: not configured (no [ci] section): the deploy is not gated on checks"
    tail = " (--skip-ci: deploying anyway)" if skip else ""
    if ci is None:
        return "CI: unknown (the target commit could not be resolved)" + tail
    if isinstance(ci, OpsError):
        return f"CI: could not be read ({ci.message}); the deploy stops unless --skip-ci" + tail
    if ci.state == "success":
        return f"CI: {ci.summary()}"
    return f"CI: {ci.summary()}; the deploy stops unless --skip-ci" + tail


# ------------------------------------------------------------------------ deploy


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
            "after the deploy, wait for the verification window; exit 1 if it fails",
            "flag",
        ),
        Option(
            "auto_rollback", ("--auto-rollback",), "with --verify: roll back when verification fails", "flag"
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = require_deploy(self.env)
        self.ref = validate_ref(str(self.target.options.get("ref") or self.config.branch))
        self.release = str(self.target.options.get("release") or release_id())
        self.reason = str(self.target.options.get("reason") or f"deploy {self.ref}")
        self.sha: str | None = None  # the deployed commit, once the deploy succeeded

    @property
    def target_label(self) -> str:
        return self.ref

    def _parts(self, emit: Emit) -> list[HostDeploy]:
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

    @property
    def skip_ci(self) -> bool:
        return bool(self.target.options.get("skip_ci"))

    def batches(self) -> list[list[HostSpec]]:
        """Rolling: the hosts in switch order, `deploy.batch` at a time; all at once: one batch."""
        if self.config.strategy != "rolling":
            return [list(self.hosts)]
        size = self.config.batch
        return [list(self.hosts[i : i + size]) for i in range(0, len(self.hosts), size)]

    def summary(self) -> list[str]:
        """What a person decides on: what goes out, is CI green, where, from which release to which
        ref, builds, restarts."""
        hosts = [h.raw for h in self.hosts]
        lines = [f"Deploy {self.ref} to {self.env.name} on {len(hosts)} host(s): {', '.join(hosts)}"]
        found, ci = what_goes_out(self.ctx.backends, self.env, self.ref)
        if found is not None:
            lines += found.lines()
        lines.append(ci_line(self.env.ci is not None, ci, self.skip_ci))
        for host, state in read_states(self.ctx.backends, self.hosts, self.config).items():
            if isinstance(state, OpsError):
                lines.append(f"  {host}: current release unknown ({state.message})")
            else:
                lines.append(f"  {host}: now on {describe_release(state, state.current)}")
                if state.lock is not None:
                    lines.append(f"  {host}: LOCKED, {state.lock.describe()}")
        lines.append(f"  → new release releases/{self.release} from {self.ref}")
        if self.config.build:
            lines.append("Build in the new release, on every host: " + "; ".join(self.config.build))
        if self.config.strategy == "rolling":
            batches = self.batches()
            gate = (
                f", each must answer {self.config.host_health} within {self.config.host_health_timeout:g} s"
                if self.config.host_health
                else ""
            )
            lines.append(f"Then, once every host has built, switch in {len(batches)} batch(es){gate}:")
            lines += [f"  batch {n}: {', '.join(h.raw for h in b)}" for n, b in enumerate(batches, 1)]
            lines.append("  a failing batch stops the deploy and switches every switched host back")
        else:
            lines.append("Then, once every host has built, switch `current` on every host")
        if self.config.restart:
            lines.append("Restart: " + ", ".join(self.config.restart))
        if self.env.sentry is not None and self.env.sentry.releases:
            lines.append(
                "Then tell Sentry: the release with its commits, and a deploy to " + self.sentry_environment
            )
        if self.config.verify is not None:
            lines.append(f"Then verify for {duration(self.config.verify.window)}: {self.verify_terms()}")
        lines.append(f"Keep the {self.config.keep_releases} newest good releases")
        return lines

    @property
    def sentry_environment(self) -> str:
        return (self.env.sentry.environment if self.env.sentry else None) or self.env.name

    def verify_terms(self) -> str:
        verify = self.config.verify
        assert verify is not None
        terms = []
        if self.env.health:
            terms.append(f"{len(self.env.health)} health URL(s) keep passing")
        if self.env.sentry is not None:
            terms.append(f"at most {verify.max_new_issues} new Sentry issue(s) at level error or above")
        return ", ".join(terms) or "nothing to check (no health URLs, no Sentry)"

    def plan(self) -> Plan:
        steps: list[PlanStep] = []
        parts = self._parts(lambda _e: None)
        for part in parts:
            host = part.name
            steps.append(PlanStep(host, "command", lock_command(self.config.path, "<lock: who, when, why>")))
            steps.append(PlanStep(host, "command", part.fetch_command()))
            steps.append(PlanStep(host, "command", part.resolve_command()))
            if self.env.ci is not None and part is parts[0]:
                repo = self.env.ci.repository
                steps.append(
                    PlanStep(
                        host,
                        "api",
                        f"GET {self.env.ci.url}/repos/{repo}/commits/<sha>/check-runs and /status: "
                        "stop unless green" + (" (skipped: --skip-ci)" if self.skip_ci else ""),
                    )
                )
            steps.append(PlanStep(host, "command", part.export_command("<sha of " + self.ref + ">")))
            steps += [PlanStep(host, "command", part.shared_command(item)) for item in self.config.shared]
            steps += [PlanStep(host, "command", part.build_command(cmd)) for cmd in self.config.build]
            steps.append(PlanStep(host, "note", "after every host has built:"))
            steps.append(PlanStep(host, "command", part.switch_command(self.release)))
            steps += restart_steps(self.env, part.spec, self.config)
            if self.config.strategy == "rolling" and self.config.host_health:
                steps.append(
                    PlanStep(
                        host,
                        "command",
                        part.health_command(self.config.host_health, self.config.host_health_timeout),
                    )
                )
            steps.append(PlanStep(host, "note", f"prune releases/ to the newest {self.config.keep_releases}"))
            steps.append(
                PlanStep(
                    host,
                    "command",
                    part.journal_command({"event": "deploy", "release": self.release, "...": "..."}),
                )
            )
            steps.append(PlanStep(host, "command", unlock_command(self.config.path, "<our lock>")))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        parts = self._parts(emit)
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
        if self.release in existing:  # two deploys within one second: still a fresh, sortable id
            base, n = self.release, 2
            while f"{base}-{n}" in existing:
                n += 1
            self.release = f"{base}-{n}"
            for part in parts:
                part.release = self.release
        errors: dict[str, str] = {}

        def each(step: Callable[[HostDeploy], None]) -> None:
            def one(part: HostDeploy) -> None:
                try:
                    step(part)
                except OpsError as exc:
                    errors[part.name] = exc.message

            with ThreadPoolExecutor(max_workers=len(parts)) as pool:
                list(pool.map(one, parts))

        each(HostDeploy.fetch_and_resolve)
        shas = {p.sha for p in parts if p.sha}
        if not errors and len(shas) > 1:
            errors.update(
                {p.name: f"{p.name}: {self.ref} resolved to {p.sha}, other hosts differ" for p in parts}
            )
        if not errors and not self.ctx.cancel.is_set():
            refused = self._ci_gate(parts[0], emit)
            if refused is not None:
                return refused
            each(HostDeploy.build)
        if errors or self.ctx.cancel.is_set():
            if not errors:
                errors = {p.name: f"{p.name}: interrupted before the switch" for p in parts}
            return self._fail_before_switch(parts, started, errors, emit)
        commits = self._commits(parts[0], states[parts[0].name], emit)
        # The commit point. From here on an interrupt no longer undoes the deploy: the switch, the
        # restarts and the journal are finished (quickly) so no host is left half-switched.
        interrupted_after_switch = threading.Event()
        for part in parts:
            part.cancel = interrupted_after_switch
        if self.config.strategy == "rolling":
            stopped = self._roll(parts, started, emit, interrupted_after_switch)
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
                    return self._fail_during_switch(parts, switched, part, exc, started, emit)
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
            f"deployed {self.ref} ({sha}) as {self.release} to {len(parts)} host(s){skipped}{late}",
            ExitCode.OK,
            results,
        )

    # ------------------------------------------------------------------ CI, commits, Sentry

    def _ci_gate(self, first: HostDeploy, emit: Emit) -> Outcome | None:
        """None to go on; an Outcome (exit 3 red or pending, 4 unreachable) to stop before any build."""
        if self.env.ci is None:
            return None
        assert first.sha is not None
        label = f"CI checks of {first.sha[:12]}"
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
        repository = self.env.ci.repository if self.env.ci else self.ctx.profile.project_name
        finished = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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

    # ------------------------------------------------------------------ rolling

    def _roll(
        self, parts: list[HostDeploy], started: str, emit: Emit, cancel: threading.Event
    ) -> Outcome | None:
        """Batch by batch: switch, restart, wait for the host's health URL. On a failure: stop, and
        switch every switched host back (and restart it), so every host runs one release."""
        by_name = {p.name: p for p in parts}
        batches = [[by_name[h.raw] for h in batch] for batch in self.batches()]
        switched: list[HostDeploy] = []
        for number, batch in enumerate(batches, 1):
            tag = f"batch {number}/{len(batches)}"
            failure: tuple[HostDeploy, str] | None = None
            for part in batch:
                try:
                    part.step(
                        f"{tag}: switch current -> releases/{self.release}",
                        part.switch_command(self.release),
                        timeout=part.host.timeout,
                    )
                except OpsError as exc:
                    failure = (part, f"switching failed: {exc.message}")
                    break
                part.switched = True
                switched.append(part)
            if failure is None:
                for part in batch:
                    failures = run_restarts(self.ctx.backends, self.env, part.spec, self.config, emit, cancel)
                    if failures:
                        failure = (part, "restart failed: " + "; ".join(failures))
                        break
            if failure is None and self.config.host_health:
                for part in batch:
                    url, wait = self.config.host_health, self.config.host_health_timeout
                    try:
                        part.step(f"{tag}: health {url}", part.health_command(url, wait), timeout=wait + 15)
                    except OpsError as exc:
                        failure = (part, f"health check {url} failed: {exc.message.rsplit(': ', 1)[-1]}")
                        break
            if failure is not None:
                return self._stop_rolling(parts, switched, failure, started, tag, emit)
        return None

    def _stop_rolling(
        self,
        parts: list[HostDeploy],
        switched: list[HostDeploy],
        failure: tuple[HostDeploy, str],
        started: str,
        tag: str,
        emit: Emit,
    ) -> Outcome:
        bad, reason = failure
        emit(Notice(f"{tag}: {bad.name}: {reason}; stopping and switching {len(switched)} host(s) back"))
        self._switch_back(switched, emit, restart=True)
        hosts = self._where(parts)
        error = f"rolling deploy stopped at {tag}: {bad.name}: {reason}"
        for part in parts:
            if not part.switched:
                try:
                    part.remove_release()
                except OpsError:
                    pass
            try:
                part.journal(self._record(part, started, "failed", error=error))
            except OpsError:
                pass
            emit(HostResult(part.name, False, hosts[part.name]))
        state = "; ".join(f"{h}: {s}" for h, s in hosts.items())
        return Outcome(
            False,
            f"deploy failed: {bad.name}: {reason} ({tag}). Every switched host was switched back. Now: {state}",
            ExitCode.FAILED,
            hosts,
        )

    def _fail_before_switch(
        self, parts: list[HostDeploy], started: str, errors: dict[str, str], emit: Emit
    ) -> Outcome:
        interrupted = self.ctx.cancel.is_set()
        created = any(p.created for p in parts)
        for part in parts:
            message = errors.get(part.name) or (
                "interrupted" if interrupted else "not switched: another host failed"
            )
            try:
                part.remove_release()
                part.journal(
                    self._record(part, started, "interrupted" if interrupted else "failed", error=message)
                )
            except OpsError as exc:
                emit(
                    Notice(
                        f"{part.name}: cleaning up after the failure failed too: {exc.message}; "
                        f"remove releases/{self.release} by hand (it is not current and never was)"
                    )
                )
            emit(HostResult(part.name, False, message))
        first = next(iter(errors.values()))
        verb = "interrupted" if interrupted else "failed"
        removed = f" and releases/{self.release} was removed" if created else ""
        return Outcome(
            False,
            f"deploy {verb}: {first}. No host switched; current is untouched{removed}",
            ExitCode.FAILED,
            {p.name: f"still on {p.previous or 'no release'}" for p in parts},
        )

    def _fail_during_switch(
        self,
        parts: list[HostDeploy],
        switched: list[HostDeploy],
        failed: HostDeploy,
        exc: OpsError,
        started: str,
        emit: Emit,
    ) -> Outcome:
        """Switch failed on one host: put the switched hosts back, so every host runs one release."""
        self._switch_back(switched, emit, restart=False)
        hosts = self._where(parts)
        for part in parts:
            try:
                part.journal(
                    self._record(
                        part, started, "failed", error=f"switch failed on {failed.name}: {exc.message}"
                    )
                )
            except OpsError:
                pass
        state = "; ".join(f"{h}: {s}" for h, s in hosts.items())
        return Outcome(
            False,
            f"deploy failed while switching: {exc.message}. Now: {state}. Retry the deploy, or roll back with `opsconsole rollback {self.env.name}`",
            ExitCode.FAILED,
            hosts,
        )

    def _switch_back(self, switched: list[HostDeploy], emit: Emit, restart: bool) -> None:
        """Point every switched host back at its previous release (and restart it when asked)."""
        for part in switched:
            if not part.previous:
                emit(Notice(f"{part.name}: no earlier release to switch back to; it stays on {self.release}"))
                continue
            try:
                part.step(
                    f"switch back to releases/{part.previous}",
                    part.switch_command(part.previous),
                    timeout=part.host.timeout,
                )
                part.switched = False
            except OpsError as exc:
                emit(Notice(f"{part.name}: could not switch back: {exc.message}"))
                continue
            if restart:
                failures = run_restarts(
                    self.ctx.backends, self.env, part.spec, self.config, emit, threading.Event()
                )
                if failures:
                    emit(Notice(f"{part.name}: switched back, but restarting failed: {'; '.join(failures)}"))

    def _where(self, parts: list[HostDeploy]) -> dict[str, str]:
        return {
            p.name: f"runs releases/{self.release} (could not switch back)"
            if p.switched
            else f"runs {('releases/' + p.previous) if p.previous else 'no release'}"
            for p in parts
        }

    def _prune(self, part: HostDeploy, emit: Emit) -> None:
        try:
            state = read_state(part.host, self.config)
        except OpsError as exc:
            emit(Notice(f"{part.name}: could not list releases to prune: {exc.message}"))
            return
        old = prune_candidates(state, self.config.keep_releases, self.release)
        if not old:
            return
        targets = " ".join(rq(f"{self.config.path}/releases/{r}") for r in old)
        try:
            part.step(
                f"prune {len(old)} old release(s)",
                f"rm -rf -- {targets}",
                timeout=max(part.host.timeout, 120.0),
            )
        except OpsError as exc:
            emit(Notice(f"{part.name}: pruning failed: {exc.message}"))


def prune_candidates(state: DeployState, keep: int, ours: str | None = None) -> list[str]:
    """Release folders to remove: all but the `keep` newest good ones, `current`, the previous good one
    and `ours`. Good = a successful deploy record and not marked bad; failed, interrupted and
    unjournalled leftovers and bad releases beyond that set go."""
    good = state.successful_releases
    kept = set(good[-keep:])
    if state.current:
        kept.add(state.current)
        earlier = [r for r in good if r < state.current]
        if earlier:
            kept.add(earlier[-1])
    if ours:
        kept.add(ours)
    return [r for r in state.releases if r not in kept]
