"""When to refresh an environment next: the profile's `refresh`, stretched while nothing changes.

Plain Python (no Textual): the console asks it after each refresh, and tells it when a person
touches a key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

IDLE_BACKOFF = 4


def stale_after(refresh: float, timeout: float) -> float:
    """How old a result is before it is called stale: the longest wait the schedule allows while
    idle, plus one timeout for the refresh itself, so an idle console never flips between stale
    and fresh."""
    return refresh * IDLE_BACKOFF + timeout + 1.0


def coarse_age(seconds: float) -> str:
    """An age that changes at most once a minute on screen: `<1m`, `4m`, `2h05m`, `3d4h`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "<1m"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 24 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes // 1440}d{(minutes % 1440) // 60}h"


class RefreshSchedule:
    """The interval doubles (up to IDLE_BACKOFF times `refresh`) for each refresh that changed
    nothing; any change, or any key or click, brings it back to `refresh`."""

    def __init__(self, refresh: float, backoff: int = IDLE_BACKOFF) -> None:
        self.refresh = refresh
        self.backoff = backoff
        self._fingerprints: dict[str, Any] = {}
        self._streaks: dict[str, int] = {}
        self._touched: set[str] = set()
        self._offsets: dict[str, float] = {}

    def spread(self, envs: Sequence[str]) -> None:
        """Offsets that spread the environments' refreshes evenly over one interval, as Prometheus
        spreads its scrapes. The first refresh of every environment runs at once (everything shows
        as soon as it can); from the second on, each keeps its own offset, so a fleet's answers never
        arrive in one burst."""
        count = len(envs)
        self._offsets = {env: index / count for index, env in enumerate(envs)} if count > 1 else {}

    def next_delay(self, env: str, results: Mapping[Any, Any]) -> float:
        from opsconsole.sources.summary import fingerprint

        now = fingerprint(results)
        same = self._fingerprints.get(env) == now and env not in self._touched
        self._touched.discard(env)
        self._fingerprints[env] = now
        self._streaks[env] = self._streaks.get(env, 0) + 1 if same else 0
        delay = float(self.refresh * min(2 ** self._streaks[env], self.backoff))
        return delay + self.refresh * self._offsets.pop(env, 0.0)  # the offset once, on the first

    @property
    def idle(self) -> bool:
        return any(self._streaks.values())

    def stretched(self, env: str) -> bool:
        """The environment's polling is stretched: nothing it showed changed since its last
        refresh, and nobody pressed a key since."""
        return self._streaks.get(env, 0) > 0

    def touched(self) -> None:
        """Someone is looking: the next refreshes come at the normal pace."""
        self._touched.update(self._streaks)
        self._streaks.clear()
