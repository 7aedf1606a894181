"""Did the deploy make things worse: the verification window after a deploy.

For `window` seconds the environment's health URLs must keep passing (a URL failing twice in a row
fails the verification) and at most `max_new_issues` Sentry issues at level error or above may be
first seen in the new release (`firstRelease:VERSION`). Both can fail early; otherwise the verdict
comes when the window ends. The verdict is appended to every host's journal as
`{"event": "verify", "release", "outcome": "pass"|"fail", "reasons": [...]}`, which the delivery
metrics count as a change failure. The CLI (`deploy --verify`) and the console's banner both run it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.errors import OpsError
from opsconsole.human import duration
from opsconsole.profiles import Environment, VerifyConfig
from opsconsole.snapshot import Backends

SERIOUS = ("error", "fatal")
INTERVAL = 5.0


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
    sentry_error: str | None = None
    verdict: str | None = None  # "pass" | "fail" | None while running
    reasons: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> float:
        return max(0.0, self.window - (time.monotonic() - self.started))

    def line(self) -> str:
        """One line for a banner or a progress print."""
        head = f"Verifying releases/{self.release} on {self.env}"
        if self.verdict == "pass":
            return f"{head}: VERIFIED after {duration(self.window)} ({self.facts()})"
        if self.verdict == "fail":
            return f"{head}: FAILED: {'; '.join(self.reasons)}"
        return f"{head}: {duration(self.remaining)} left · {self.facts()}"

    def facts(self) -> str:
        parts = []
        if self.health_total:
            parts.append(f"health {self.health_ok}/{self.health_total} ok")
        if self.version is not None:
            parts.append(
                f"new issues: {'unknown (' + self.sentry_error + ')' if self.sentry_error else len(self.new_issues)}"
            )
        return " · ".join(parts) or "nothing to check"

    def record(self) -> dict[str, Any]:
        return {
            "event": "verify",
            "release": self.release,
            "outcome": self.verdict,
            "reasons": self.reasons,
            "window": self.window,
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class Verifier:
    """Run once per deploy, in a thread; `cancel` stops it early (no verdict is journalled)."""

    def __init__(
        self,
        backends: Backends,
        env: Environment,
        release: str,
        version: str | None,
        config: VerifyConfig | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.backends = backends
        self.env = env
        self.config = config or (env.deploy.verify if env.deploy else None) or VerifyConfig()
        self.interval = interval
        self.cancel = threading.Event()
        self.status = VerifyStatus(env.name, release, version if env.errors else None, self.config.window)
        self._strikes: dict[str, int] = {}

    def run(self, on_update: Callable[[VerifyStatus], None] = lambda _s: None) -> VerifyStatus:
        status = self.status
        while True:
            self.check_once()
            on_update(status)
            if status.verdict is not None:
                break
            if status.remaining <= 0:
                status.verdict = "pass"
                on_update(status)
                break
            if self.cancel.wait(min(self.interval, max(0.05, status.remaining))):
                return status
        self.journal()
        return status

    def check_once(self) -> None:
        status = self.status
        status.checks += 1
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
                    self.backends.sentry(self.env).issues(
                        query=f"is:unresolved firstRelease:{status.version}"
                    )
                )
                status.sentry_error = None
                status.new_issues = [
                    f"{i.short_id} {i.title} ({i.level})" for i in page.issues if i.level in SERIOUS
                ]
            except OpsError as exc:
                status.sentry_error = exc.message
            if len(status.new_issues) > self.config.max_new_issues:
                self._fail(
                    f"{len(status.new_issues)} new issue(s) in {status.version} (at most "
                    f"{self.config.max_new_issues}): " + "; ".join(status.new_issues[:3])
                )

    def _fail(self, reason: str) -> None:
        if reason not in self.status.reasons:
            self.status.reasons.append(reason)
        self.status.verdict = "fail"

    def journal(self) -> list[str]:
        """Append the verdict to every host's journal; returns the hosts where that failed."""
        from opsconsole.actions.commands import journal_command

        assert self.env.deploy is not None
        failed = []
        for spec in self.env.hosts:
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


def running_version(env: Environment, project: str, state: Any) -> str | None:
    """The Sentry release name of what a host runs (its DeployState), when its commit is known."""
    from opsconsole.actions.pending import current_commit

    sha = current_commit(state) if state is not None and state.current else None
    if sha is None:
        return None
    ref = str(state.record_for(state.current).get("ref") or "")
    return sentry_version(env, project, state.current, sha, ref)


def sentry_version(env: Environment, project: str, release: str, sha: str, ref: str) -> str | None:
    if env.sentry is None:
        return None
    return env.sentry.release_name(project=project, env=env.name, sha=sha, release=release, ref=ref)
