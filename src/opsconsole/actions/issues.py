"""Sentry triage: resolve an issue, ignore (archive) an issue."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Plan, PlanStep, Scope
from opsconsole.actions.events import Emit, HostResult, Outcome
from opsconsole.errors import ExitCode, UsageError


class _SentryUpdate(Action):
    scope: ClassVar[Scope] = "sentry_issue"
    changes: ClassVar[bool] = True
    target_arg: ClassVar[str | None] = "ISSUE"
    target_help: ClassVar[str] = "Sentry issue id or short id (e.g. SHOP-1A)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.target.name:
            raise UsageError("which issue? give its id or short id (e.g. SHOP-1A)", "Missing issue")
        if self.env.errors is None:
            raise UsageError(
                f"environment '{self.env.name}' has no [sentry] or [bugsink] section", "Not configured"
            )

    @property
    def hosts(self) -> list[Any]:
        return []

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    def plan(self) -> Plan:
        sentry = self.env.sentry
        if sentry is None:
            assert self.env.bugsink is not None
            verb = "resolve" if self.body().get("status") == "resolved" else "mute"
            url = f"{self.env.bugsink.url.rstrip('/')}/api/canonical/0/issues/{self.target.name}/{verb}/"
            return self.make_plan([PlanStep("bugsink", "api", f"POST {url}")])
        url = f"{sentry.url.rstrip('/')}/api/0/organizations/{sentry.organization}/issues/<id of {self.target.name}>/"
        return self.make_plan([PlanStep("sentry", "api", f"PUT {url} {json.dumps(self.body())}")])

    def execute(self, emit: Emit) -> Outcome:
        client = self.ctx.backends.issues(self.env)
        issue = asyncio.run(client.update(str(self.target.name), self.body()))
        message = f"{issue.short_id or self.target.name} is now {issue.status}"
        emit(HostResult("sentry", True, message))
        return Outcome(True, message, ExitCode.OK)


class ResolveAction(_SentryUpdate):
    id: ClassVar[str] = "resolve"
    title: ClassVar[str] = "Resolve issue"
    key: ClassVar[str | None] = "x"
    key_label: ClassVar[str] = "Resolve"
    tooltip: ClassVar[str] = "Resolve the selected Sentry issue"
    selection: ClassVar[tuple[str, ...]] = ("issue",)
    description: ClassVar[str] = "Resolve a Sentry issue"

    def body(self) -> dict[str, Any]:
        from opsconsole.backends.sentry import SentryClient

        return SentryClient.resolve_body()


class IgnoreAction(_SentryUpdate):
    id: ClassVar[str] = "ignore"
    title: ClassVar[str] = "Ignore issue"
    key: ClassVar[str | None] = "i"
    key_label: ClassVar[str] = "Ignore"
    tooltip: ClassVar[str] = "Ignore (archive) the selected Sentry issue"
    selection: ClassVar[tuple[str, ...]] = ("issue",)
    description: ClassVar[str] = "Ignore (archive) a Sentry issue"

    def body(self) -> dict[str, Any]:
        from opsconsole.backends.sentry import SentryClient

        return SentryClient.ignore_body()
