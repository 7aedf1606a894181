"""The live state of a profile's environments: the latest result of every source, with listeners.

One owner for what the console shows and `status` prints. Results arrive on worker threads; each
update replaces its environment's mapping (copy on write), so a reader iterating a mapping it took
never sees it change, and listeners are told after the update, outside the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opsconsole.profiles import Profile
from opsconsole.sources.catalog import CATALOG, SourceKey, visible
from opsconsole.sources.fanout import SourceResult

Listener = Callable[[str, SourceKey], None]  # (environment, key): that result changed


class FleetState:
    """Per environment: its results by source key, its containers' stats by host, the release whose
    new issues the Errors pane shows (absent: all open issues), and its latest deploy's verification."""

    def __init__(self, profile: Profile) -> None:
        self.results: dict[str, dict[SourceKey, SourceResult[Any]]] = {n: {} for n in profile.environments}
        self.stats: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in profile.environments}
        self.issues_release: dict[str, str] = {}
        self.verifications: dict[str, Any] = {}  # env -> VerifyStatus
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(env, key)` after each change (on the thread that made it); returns the
        unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def put(self, env: str, key: SourceKey, result: SourceResult[Any]) -> bool:
        """Store a result; False when it shows nothing new (the stored one is only made fresh)."""
        with self._lock:
            current = self.results.get(env, {})
            previous = current.get(key)
            src = CATALOG.get(key[0])
            if (
                src is not None
                and src.quiet_when_unchanged
                and previous is not None
                and previous.ok
                and result.ok
                and visible(key, previous.data) == visible(key, result.data)
            ):
                previous.fetched_at, previous.elapsed = result.fetched_at, result.elapsed
                return False
            self.results[env] = {**current, key: result}
            listeners = list(self._listeners)
        for listener in listeners:
            listener(env, key)
        return True

    def put_stats(self, env: str, host: str, sample: dict[str, Any]) -> None:
        """Store a host's container stats; listeners hear of it as that host's `docker` result."""
        with self._lock:
            self.stats[env] = {**self.stats.get(env, {}), host: sample}
            listeners = list(self._listeners)
        for listener in listeners:
            listener(env, ("docker", host))

    def deploy_state(self, env: str, host: str) -> tuple[Any, float] | None:
        """The host's deploy state from the last refresh and when it was read (actions.base.Known)."""
        result = self.results.get(env, {}).get(("deploys", host))
        if result is None or not result.ok or result.data is None:
            return None
        return result.data, result.fetched_at

    def of(self, env: str) -> dict[SourceKey, SourceResult[Any]]:
        return self.results.get(env, {})
