"""Did the deploy make things worse: the verification window after a deploy.

A verification judges ONE release, the one its deploy made current, and only while it is current.
Every check round first reads `current` on the deployed hosts; when another deploy or rollback has
replaced it on any host, the verdict is `superseded`: the health URLs now answer for someone else's
release, so nothing more is judged and nothing is rolled back or marked bad.

While it is current, for `window` seconds the environment's health URLs must keep passing (a URL
failing twice in a row fails the verification) and at most `max_new_issues` Sentry issues at level
error or above may be first seen in this release (`firstRelease:VERSION`, never another release's
issues). Both can fail early; otherwise the verdict comes when the window ends: `pass` only when the
error tracker answered the window's final check (an answer at the start says nothing about issues
that came later), else `inconclusive`; with nothing to check at all it is `inconclusive` too (profile
validation refuses such a [deploy.verify]).

The verdict is appended to the deployed hosts' journals as `{"event": "verify", "release",
"outcome": "pass"|"fail"|"inconclusive"|"superseded", "reasons": [...]}`; the delivery metrics count
only `fail` as a change failure. The CLI (`deploy --verify`) and the console's banner both run it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opsconsole.backends.clients import Backends
from opsconsole.errors import OpsError
from opsconsole.human import counted, duration, utc_stamp
from opsconsole.profiles import Environment, HostSpec, VerifyConfig

SERIOUS = ("error", "fatal")
INTERVAL = 5.0

Verdict = Literal["pass", "fail", "inconclusive", "superseded"]


@dataclass
class VerifyStatus:
    env: str
    release: str
    version: str | None  # the Sentry release name, when Sentry is configured
    window: float
    started: float = field(default_factory=time.monotonic)
    checks: int = 0
    health_total: int = 0
    health_ok: int = 0
    health_failing: dict[str, str] = field(default_factory=dict)  # url -> reason (latest check)
    new_issues: list[str] = field(default_factory=list)  # "SHOP-1A ValueError: … (error)"
    sentry_error: str | None = None  # the latest check's error; None when it answered
    sentry_answers: int = 0  # checks the error tracker answered
    current_error: str | None = None  # why `current` could not be read on a host (latest check)
    replaced_by: dict[str, str] = field(default_factory=dict)  # host -> the release now current there
    verdict: Verdict | None = None  # None while running
    reasons: list[str] = field(default_factory=list)
    # set by `rolled_back`: the release a rollback in this process switched to from this one, and
    # the verdict this verification had then (None: it was still running, and stopped)
    rolled_back_to: str | None = None
    marked_bad: bool = False  # with rolled_back_to: the rollback journalled it bad (a fabfile's does not)
    judged: Verdict | None = None

    @property
    def remaining(self) -> float:
        return max(0.0, self.window - (time.monotonic() - self.started))

    def line(self) -> str:
        """One line for a banner or a progress print."""
        head = f"Verifying releases/{self.release} on {self.env}"
        reasons = "; ".join(self.reasons)
        if self.rolled_back_to is not None:
            had = {
                "pass": "it had passed verification",
                "fail": "its verification had FAILED",
                "superseded": "its verification had been superseded",
                "inconclusive": "its verification had been inconclusive",
                None: "its verification was stopped",
            }[self.judged]
            marked = " and marked bad" if self.marked_bad else ""
            return (
                f"releases/{self.release} on {self.env}: ROLLED BACK to releases/{self.rolled_back_to}"
                f"{marked} ({had})"
            )
        if self.verdict == "pass":
            return f"{head}: VERIFIED after {duration(self.window)} ({self.facts()})"
        if self.verdict == "fail":
            return f"{head}: FAILED: {reasons}"
        if self.verdict == "superseded":
            return f"{head}: SUPERSEDED, not judged (nothing rolled back or marked bad): {reasons}"
        if self.verdict == "inconclusive":
            return f"{head}: INCONCLUSIVE, not verified: {reasons}"
        return f"{head}: {duration(self.remaining)} left · {self.facts()}"

    def mark_rolled_back(self, to: str, marked_bad: bool = True) -> None:
        """A rollback left this release for `to`: the verdict becomes `superseded` (someone else's
        release is current; nothing here is to roll back again), the one it had is kept."""
        self.judged = self.verdict
        self.rolled_back_to = to
        self.marked_bad = marked_bad
        self.verdict = "superseded"
        self.reasons = [f"rolled back to releases/{to}"]

    def facts(self) -> str:
        parts = []
        if self.health_total:
            parts.append(f"health {self.health_ok}/{self.health_total} ok")
        if self.version is not None:
            if self.sentry_error and not self.sentry_answers:
                parts.append(f"new issues: unknown ({self.sentry_error})")
            elif self.sentry_error:
                parts.append(f"new issues: {len(self.new_issues)} at the last answer ({self.sentry_error})")
            else:
                parts.append(f"new issues: {len(self.new_issues)}")
        if self.current_error:
            parts.append(f"current unknown ({self.current_error})")
        return " · ".join(parts) or "nothing to check"

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "event": "verify",
            "release": self.release,
            "outcome": self.verdict,
            "reasons": self.reasons,
            "window": self.window,
            "finished": utc_stamp(),
        }
        if self.replaced_by:
            record["replaced_by"] = dict(self.replaced_by)
        return record


class Verifier:
    """Run once per deploy, in a thread; `cancel` stops it early (no verdict is journalled).

    `hosts` are the hosts the deploy switched (default: the environment's); `current` is read on
    them, and the verdict is journalled on them."""

    def __init__(
        self,
        backends: Backends,
        env: Environment,
        release: str,
        version: str | None,
        config: VerifyConfig | None = None,
        interval: float = INTERVAL,
        hosts: Sequence[HostSpec] | None = None,
    ) -> None:
        self.backends = backends
        self.env = env
        self.config = config or (env.deploy.verify if env.deploy else None) or VerifyConfig()
        self.interval = interval
        self.hosts = list(hosts if hosts is not None else env.hosts)
        self.cancel = threading.Event()
        self.status = VerifyStatus(env.name, release, version if env.errors else None, self.config.window)
        self._strikes: dict[str, int] = {}
        _VERIFIERS.add(self)

    def run(self, on_update: Callable[[VerifyStatus], None] = lambda _s: None) -> VerifyStatus:
        """Check every `interval` until a verdict, then journal it."""
        status = self.status
        while True:
            self.check_once()
            on_update(status)
            if status.verdict is not None:
                break
            if status.remaining <= 0:
                self.conclude()
                on_update(status)
                break
            if self.cancel.wait(min(self.interval, max(0.05, status.remaining))):
                return status
        if self.cancel.is_set():  # stopped during the last check (a rollback left the release)
            return status
        self.journal()
        return status

    def check_once(self) -> None:
        status = self.status
        status.checks += 1
        if self.still_current() is False:
            return
        timeout = self.backends.profile.defaults.timeout
        if self.env.health:
            from opsconsole.backends.health import check_all

            results = asyncio.run(check_all(self.env.health, timeout))
            status.health_total = len(results)
            status.health_ok = sum(r.ok for r in results)
            status.health_failing = {r.url: r.error or "failed" for r in results if not r.ok}
            for result in results:
                self._strikes[result.url] = 0 if result.ok else self._strikes.get(result.url, 0) + 1
                if self._strikes[result.url] >= 2:
                    self._fail(f"health {result.url}: {result.error or 'failed'} (twice in a row)")
        if status.version is not None:
            try:
                page = asyncio.run(
                    self.backends.issues(self.env).issues(
                        query=f"is:unresolved firstRelease:{status.version}"
                    )
                )
                status.sentry_error = None
                status.sentry_answers += 1
                status.new_issues = [
                    f"{i.short_id} {i.title} ({i.level})" for i in page.issues if i.level in SERIOUS
                ]
            except OpsError as exc:
                status.sentry_error = exc.message
            if len(status.new_issues) > self.config.max_new_issues:
                self._fail(
                    f"{counted(len(status.new_issues), 'new issues')} in {status.version} (at most "
                    f"{self.config.max_new_issues}): " + "; ".join(status.new_issues[:3])
                )
        if status.verdict == "fail":
            self.still_current()  # a failure seen while another release took over is not ours

    def conclude(self) -> None:
        """The window ended without a failure: pass, unless the release was replaced meanwhile or
        there is nothing that answered for it."""
        status = self.status
        if status.rolled_back_to is not None or self.still_current() is False:
            return
        if not self.env.health and status.version is None:
            status.reasons.append(
                "nothing to check: no health URLs and no Sentry to look for new issues in this release"
            )
            status.verdict = "inconclusive"
        elif status.version is not None and status.sentry_error is not None:
            seen = (
                "never answered during the window"
                if not status.sentry_answers
                else "did not answer the final check (earlier answers say nothing about later issues)"
            )
            status.reasons.append(
                f"the error tracker {seen}: {status.sentry_error}; new issues in {status.version} are "
                "unknown. Check it, then judge the release yourself (or deploy --verify again)"
            )
            status.verdict = "inconclusive"
        else:
            status.verdict = "pass"

    def still_current(self) -> bool | None:
        """Is the verified release still `current` on every deployed host? False sets the verdict
        `superseded`; None when no host could say (the checks go on)."""
        if self.env.deploy is None or not self.hosts:
            return None
        from opsconsole.actions.deploy.host import read_states
        from opsconsole.backends.releases import DeployState

        status = self.status
        states = read_states(self.backends, self.hosts, self.env.deploy)
        errors = [s.message for s in states.values() if isinstance(s, OpsError)]
        status.current_error = errors[0] if errors else None
        replaced = {
            host: state.current or ""
            for host, state in states.items()
            if isinstance(state, DeployState) and state.current != status.release
        }
        if not replaced:
            return None if len(errors) == len(states) else True
        status.replaced_by = replaced
        host, now = next(iter(replaced.items()))
        state = states[host]
        assert isinstance(state, DeployState)
        record = state.record_for(now) if now else {}
        who = f", deployed by {record['who']}" if record.get("who") else ""
        status.reasons = [
            f"{host}: current is now "
            + (f"releases/{now}{who}" if now else "no release")
            + f", not releases/{status.release}"
            + (f" (and {counted(len(replaced) - 1, 'more hosts')})" if len(replaced) > 1 else "")
            + ": another deploy or rollback replaced it during the window"
        ]
        status.verdict = "superseded"
        return False

    def _fail(self, reason: str) -> None:
        if self.status.rolled_back_to is not None:
            return  # rolled back meanwhile: nothing left to fail
        if reason not in self.status.reasons:
            self.status.reasons.append(reason)
        self.status.verdict = "fail"

    def journal(self) -> list[str]:
        """Append the verdict to the deployed hosts' journals; returns the hosts where that failed."""
        from opsconsole.actions.deploy.shell import journal_command

        assert self.env.deploy is not None
        failed = []
        for spec in self.hosts:
            try:
                host = self.backends.host(spec)
                result = host.run(
                    journal_command(self.env.deploy.path, self.status.record()), timeout=host.timeout
                )
                if not result.ok:
                    failed.append(f"{spec.raw}: {result.stderr.strip()[:200]}")
            except OpsError as exc:
                failed.append(exc.message)
        return failed


# Every verification of this process, so a rollback run here can tell the ones of the release it left
# (the console's banner shows their status); weak: a verification nobody holds is forgotten.
_VERIFIERS: weakref.WeakSet[Verifier] = weakref.WeakSet()


def rolled_back(path: str, left: Mapping[str, str], to: str, marked_bad: bool = True) -> None:
    """A rollback in this process switched the hosts of `left` (host -> the release it left there)
    under deploy path `path` to releases/`to`: every verification of a release it left says it was
    rolled back (not VERIFIED), and one still running stops (its release is no longer current)."""
    for verifier in list(_VERIFIERS):
        status = verifier.status
        if verifier.env.deploy is None or verifier.env.deploy.path != path or status.rolled_back_to:
            continue
        if any(left.get(spec.raw) == status.release for spec in verifier.hosts):
            status.mark_rolled_back(to, marked_bad)
            verifier.cancel.set()


def running_version(env: Environment, project: str, state: Any) -> str | None:
    """The release name the environment's error tracker (Sentry or Bugsink) gives what a host runs
    (its DeployState), when its commit is known; None without a tracker or a known commit."""
    sha = state.current_commit() if state is not None and state.current else None
    if sha is None or env.errors is None:
        return None
    ref = str(state.record_for(state.current).get("ref") or "")
    return env.errors.release_name(project=project, env=env.name, sha=sha, release=state.current, ref=ref)


def sentry_version(env: Environment, project: str, release: str, sha: str, ref: str) -> str | None:
    if env.sentry is None:
        return None
    return env.sentry.release_name(project=project, env=env.name, sha=sha, release=release, ref=ref)
