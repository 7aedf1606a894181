"""The deploy's three failure paths: before the switch (remove the new release everywhere), during an
all-at-once switch, and a stopped rolling switch (switch every switched host back). Each leaves every
host on one release, journals the failure on every host, and says where each host is now."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsconsole.actions.deploy.host import HostDeploy
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome
from opsconsole.errors import ExitCode, OpsError
from opsconsole.human import counted


@dataclass
class Transaction:
    """One deploy's fixed facts, shared by the saga, the rolling switch and the failure paths.
    `release` is final: the saga builds this after it has made the release id unique."""

    env: str  # the environment's name
    release: str
    started: str
    emit: Emit
    # the journal record of a host: (part, started, outcome, **extra)
    record: Callable[..., dict[str, Any]]
    # restart a host's targets; returns the failures (empty: all restarted)
    restart: Callable[[HostDeploy, threading.Event], list[str]]


def fail_before_switch(
    deploy: Transaction, parts: list[HostDeploy], errors: dict[str, str], interrupted: bool
) -> Outcome:
    emit = deploy.emit
    created = any(p.created for p in parts)
    for part in parts:
        message = errors.get(part.name) or (
            "interrupted" if interrupted else "not switched: another host failed"
        )
        try:
            part.remove_release()
            part.journal(
                deploy.record(part, deploy.started, "interrupted" if interrupted else "failed", error=message)
            )
        except OpsError as exc:
            emit(
                Notice(
                    f"{part.name}: cleaning up after the failure failed too: {exc.message}; "
                    f"remove releases/{deploy.release} by hand (it is not current and never was)"
                )
            )
        emit(HostResult(part.name, False, message))
    first = next(iter(errors.values()))
    verb = "interrupted" if interrupted else "failed"
    removed = f" and releases/{deploy.release} was removed" if created else ""
    return Outcome(
        False,
        f"deploy {verb}: {first}. No host switched; current is untouched{removed}",
        ExitCode.FAILED,
        {p.name: f"still on {p.previous or 'no release'}" for p in parts},
    )


def fail_during_switch(
    deploy: Transaction,
    parts: list[HostDeploy],
    switched: list[HostDeploy],
    failed: HostDeploy,
    exc: OpsError,
) -> Outcome:
    """Switch failed on one host: put the switched hosts back, so every host runs one release."""
    switch_back(deploy, switched, restart=False)
    hosts = where(deploy, parts)
    for part in parts:
        try:
            part.journal(
                deploy.record(
                    part, deploy.started, "failed", error=f"switch failed on {failed.name}: {exc.message}"
                )
            )
        except OpsError:
            pass
    state = "; ".join(f"{h}: {s}" for h, s in hosts.items())
    return Outcome(
        False,
        f"deploy failed while switching: {exc.message}. Now: {state}. Retry the deploy, or roll back with `opsconsole rollback {deploy.env}`",
        ExitCode.FAILED,
        hosts,
    )


def stop_rolling(
    deploy: Transaction,
    parts: list[HostDeploy],
    switched: list[HostDeploy],
    failure: tuple[HostDeploy, str],
    tag: str,
) -> Outcome:
    emit = deploy.emit
    bad, reason = failure
    emit(Notice(f"{tag}: {bad.name}: {reason}; stopping and switching {counted(len(switched), 'hosts')} back"))
    switch_back(deploy, switched, restart=True)
    hosts = where(deploy, parts)
    error = f"rolling deploy stopped at {tag}: {bad.name}: {reason}"
    for part in parts:
        if not part.switched:
            try:
                part.remove_release()
            except OpsError:
                pass
        try:
            part.journal(deploy.record(part, deploy.started, "failed", error=error))
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


def switch_back(deploy: Transaction, switched: list[HostDeploy], restart: bool) -> None:
    """Point every switched host back at its previous release (and restart it when asked)."""
    emit = deploy.emit
    for part in switched:
        if not part.previous:
            emit(Notice(f"{part.name}: no earlier release to switch back to; it stays on {deploy.release}"))
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
            failures = deploy.restart(part, threading.Event())
            if failures:
                emit(Notice(f"{part.name}: switched back, but restarting failed: {'; '.join(failures)}"))


def where(deploy: Transaction, parts: list[HostDeploy]) -> dict[str, str]:
    return {
        p.name: f"runs releases/{deploy.release} (could not switch back)"
        if p.switched
        else f"runs {('releases/' + p.previous) if p.previous else 'no release'}"
        for p in parts
    }
