"""Reload Nginx: test the config on every host first, reload only when every test passes, then
confirm each host's master is the same process and a new worker took over."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Plan, PlanStep, Scope
from opsconsole.actions.events import Emit, HostResult, Outcome, OutputLine, StepFinished, StepStarted
from opsconsole.actions.operate import per_host
from opsconsole.backends.hosts import CommandFailed
from opsconsole.errors import ExitCode, OpsError, UsageError
from opsconsole.human import counted
from opsconsole.profiles import HostSpec
from opsconsole.profiles.model import NginxConfig

CONFIRM_WITHIN = 10.0  # seconds a reload has to show its new workers


class ReloadAction(Action):
    id: ClassVar[str] = "reload"
    title: ClassVar[str] = "Reload Nginx"
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Reload Nginx on the environment's hosts: `nginx -t` on each first (a failing test refuses, "
        "nothing is reloaded), then `nginx -s reload` or [nginx] reload; confirms the same master "
        "and new workers"
    )
    key: ClassVar[str | None] = "o"
    key_label: ClassVar[str] = "Reload nginx"
    key_in_footer: ClassVar[bool] = False
    tooltip: ClassVar[str] = "Reload Nginx (config tested first on every host)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.env.nginx is None:
            raise UsageError(f"environment '{self.env.name}' has no [nginx] section", "Not configured")
        self.config: NginxConfig = self.env.nginx

    @property
    def target_label(self) -> str:
        return "nginx"

    def plan(self) -> Plan:
        from opsconsole.backends.nginx import reload_command, test_command

        steps = []
        for spec in self.hosts:
            steps += [
                PlanStep(spec.raw, "command", test_command(self.config)),
                PlanStep(spec.raw, "command", reload_command(self.config)),
                PlanStep(spec.raw, "note", "then: the same master pid, new worker pids"),
            ]
        summary = [
            f"Reload Nginx in {self.env.name} on {counted(len(self.hosts), 'hosts')}: a change",
            "`nginx -t` runs on every host first; if any fails, no host is reloaded",
        ]
        return self.make_plan(steps, summary)

    def _test(self, spec: HostSpec, emit: Emit) -> str | None:
        """None when the host's config passes, else the test's output."""
        from opsconsole.backends.nginx import test_command

        host = self.ctx.backends.host(spec)
        command = test_command(self.config)
        emit(StepStarted(spec.raw, "nginx -t"))
        try:
            result = host.run(
                command,
                on_line=lambda _stream, line: emit(OutputLine(spec.raw, line, "err")),
                cancel=self.ctx.cancel,
                timeout=host.timeout,
            )
        except OpsError as exc:
            emit(StepFinished(spec.raw, "nginx -t", False, exc.message))
            return exc.message
        if result.ok:
            emit(StepFinished(spec.raw, "nginx -t", True, "config ok"))
            return None
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        emit(StepFinished(spec.raw, "nginx -t", False, f"exited with {result.exit_code}"))
        return output or f"exited with {result.exit_code}"

    def execute(self, emit: Emit) -> Outcome:
        if not self.hosts:
            raise UsageError("the environment has no hosts", "No hosts")
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            tests = dict(zip(self.hosts, pool.map(lambda s: self._test(s, emit), self.hosts), strict=True))
        failing = {spec.raw: out for spec, out in tests.items() if out is not None}
        if failing:
            for host in failing:
                emit(HostResult(host, False, "config test failed: not reloaded"))
            detail = "; ".join(f"{host}: {out}" for host, out in failing.items())
            return Outcome(
                False,
                f"reload refused: the config test failed on {len(failing)} of {counted(len(self.hosts), 'hosts')}; "
                f"no host was reloaded: {detail}",
                ExitCode.FAILED,
                {host: f"config test failed: {out}" for host, out in failing.items()},
            )
        return per_host(self.hosts, lambda spec: self._reload(spec, emit), emit, "reload nginx")

    def _reload(self, spec: HostSpec, emit: Emit) -> str:
        from opsconsole.backends.nginx import fetch_stub_status, reload_command, workers

        host = self.ctx.backends.host(spec)
        master, before = workers(host, self.config)
        if master is None:
            raise OpsError(f"{spec.raw}: no Nginx master is running: nothing to reload (start it first)")
        command = reload_command(self.config)
        result = host.run(
            command,
            on_line=lambda stream, line: emit(OutputLine(spec.raw, line, stream)),
            cancel=self.ctx.cancel,
            timeout=max(host.timeout, 30.0),
        )
        if not result.ok:
            raise CommandFailed(spec.raw, f"`{command}`", result)
        deadline = time.monotonic() + CONFIRM_WITHIN
        now_master: int | None = master
        now = before
        while time.monotonic() < deadline and not self.ctx.cancel.is_set():
            now_master, now = workers(host, self.config)
            if now_master != master or (now and not set(now) <= set(before)):
                break
            time.sleep(0.1)
        if now_master != master:
            raise OpsError(
                f"{spec.raw}: the master changed ({master} -> {now_master or 'none'}): "
                "Nginx restarted or died instead of reloading; check its error log"
            )
        new = sorted(set(now) - set(before))
        if not new:
            raise OpsError(
                f"{spec.raw}: no new worker within {CONFIRM_WITHIN:g} s of the reload "
                f"(master {master}, workers still {', '.join(map(str, now)) or 'none'}); check the error log"
            )
        answered = ""
        if self.config.status_url:
            try:
                stub = fetch_stub_status(host, self.config.status_url)
                answered = f"; stub_status answers ({stub.requests} requests)"
            except (OpsError, OSError) as exc:
                message = exc.message if isinstance(exc, OpsError) else str(exc)
                raise OpsError(f"{spec.raw}: reloaded, but no worker answers: {message}") from None
        return (
            f"reloaded: master {master} kept, workers {', '.join(map(str, before)) or 'none'} -> "
            f"{', '.join(map(str, new))}{answered}"
        )
