"""The rolling switch: batch by batch, switch, restart, wait for the host's health URL. A failing
batch stops the deploy and every switched host is switched back (recover.stop_rolling)."""

from __future__ import annotations

import threading

from opsconsole.actions.deploy.host import HostDeploy
from opsconsole.actions.deploy.recover import Transaction, stop_rolling
from opsconsole.actions.events import Outcome
from opsconsole.errors import OpsError
from opsconsole.profiles import DeployConfig, HostSpec


def batches(config: DeployConfig, hosts: list[HostSpec]) -> list[list[HostSpec]]:
    """Rolling: the hosts in switch order, `deploy.batch` at a time; all at once: one batch."""
    if config.strategy != "rolling":
        return [list(hosts)]
    size = config.batch
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def roll(
    deploy: Transaction,
    config: DeployConfig,
    parts: list[HostDeploy],
    order: list[list[HostSpec]],
    cancel: threading.Event,
) -> Outcome | None:
    """Batch by batch (`order`, from `batches`): switch, restart, wait for the host's health URL. On a
    failure: stop, and switch every switched host back (and restart it), so every host runs one
    release. None when every batch switched."""
    by_name = {p.name: p for p in parts}
    batched = [[by_name[h.raw] for h in batch] for batch in order]
    switched: list[HostDeploy] = []
    for number, batch in enumerate(batched, 1):
        tag = f"batch {number}/{len(batched)}"
        failure: tuple[HostDeploy, str] | None = None
        for part in batch:
            try:
                part.step(
                    f"{tag}: switch current -> releases/{deploy.release}",
                    part.switch_command(deploy.release),
                    timeout=part.host.timeout,
                )
            except OpsError as exc:
                failure = (part, f"switching failed: {exc.message}")
                break
            part.switched = True
            switched.append(part)
        if failure is None:
            for part in batch:
                failures = deploy.restart(part, cancel)
                if failures:
                    failure = (part, "restart failed: " + "; ".join(failures))
                    break
        if failure is None and config.host_health:
            for part in batch:
                url, wait = config.host_health, config.host_health_timeout
                try:
                    part.step(f"{tag}: health {url}", part.health_command(url, wait), timeout=wait + 15)
                except OpsError as exc:
                    failure = (part, f"health check {url} failed: {exc.message.rsplit(': ', 1)[-1]}")
                    break
        if failure is not None:
            return stop_rolling(deploy, parts, switched, failure, tag)
    return None
