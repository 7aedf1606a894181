"""The deploy lock on every host of an environment: all or nothing, with a heartbeat."""

from __future__ import annotations

import threading

from opsconsole.actions.deploy.shell import (
    heartbeat_command,
    lock_command,
    lock_record,
    parse_held,
    unlock_command,
)
from opsconsole.actions.events import Emit, Notice, StepFinished, StepStarted
from opsconsole.backends.hosts import Host
from opsconsole.backends.releases import (
    HEARTBEAT_SECONDS,
)
from opsconsole.errors import OpsError, RefusedError
from opsconsole.profiles import HostSpec


class Locks:
    """The deploy lock on every host: all or nothing."""

    def __init__(
        self,
        hosts: list[tuple[HostSpec, Host]],
        path: str,
        user: str,
        why: str,
        emit: Emit,
        run: str | None = None,
        env: str = "ENV",
    ) -> None:
        self.hosts = hosts
        self.path = path
        self.record = lock_record(user, why, run)
        self.emit = emit
        self.env = env
        self.taken: list[tuple[HostSpec, Host]] = []
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def _heartbeat(self) -> None:
        """Renew the heartbeat on every held lock, so a SIGKILLed deploy's lock shows as stale."""
        lost: set[str] = set()
        while not self._stop.wait(HEARTBEAT_SECONDS):
            for spec, host in list(self.taken):
                try:
                    result = host.run(heartbeat_command(self.path, self.record), timeout=host.timeout)
                except OpsError:
                    continue  # the next beat tries again; staleness needs 60 s of silence
                if "@lost" in result.stdout and spec.raw not in lost:
                    lost.add(spec.raw)
                    self.emit(
                        Notice(f"{spec.raw}: the deploy lock was broken by someone else while this ran")
                    )

    def acquire(self) -> None:
        for spec, host in self.hosts:
            self.emit(StepStarted(spec.raw, "lock"))
            try:
                result = host.run(lock_command(self.path, self.record), timeout=host.timeout)
            except OpsError:
                self.release()
                raise
            first = result.stdout.splitlines()[0] if result.stdout else ""
            if first == "@acquired":
                self.taken.append((spec, host))
                self.emit(StepFinished(spec.raw, "lock", True))
                continue
            self.release()
            if first.startswith("@held"):
                holder = parse_held(first)
                self.emit(StepFinished(spec.raw, "lock", False, holder.describe()))
                advice = (
                    f"it is stale: break it with `opsconsole unlock {self.env}`"
                    if holder.stale
                    else f"if that deploy is dead, break the lock with `opsconsole unlock {self.env}`"
                )
                raise RefusedError(
                    f"refused: {spec.raw}: the deploy lock is {holder.describe()}; {advice}",
                    "Deploy locked",
                )
            raise OpsError(
                f"{spec.raw}: could not take the deploy lock: {result.stderr.strip()[:200]}", "Lock failed"
            )
        self._beats = threading.Thread(target=self._heartbeat, daemon=True, name="lock-heartbeat")
        self._beats.start()

    def release(self) -> None:
        self._stop.set()
        if self._beats is not None and self._beats is not threading.current_thread():
            self._beats.join(max((h.timeout for _s, h in self.taken), default=5.0) + 1)
        for spec, host in self.taken:
            try:
                host.run(unlock_command(self.path, self.record), timeout=host.timeout)
            except OpsError as exc:
                self.emit(
                    Notice(
                        f"{spec.raw}: could not release the deploy lock ({exc.message}); clear it with `opsconsole unlock`"
                    )
                )
        self.taken = []
