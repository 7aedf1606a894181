"""The refresh loop of a profile's environments: each re-armed after its refresh completes.

One timer per environment, so refreshes never stack and a slow host never delays another
environment. The interval stretches while nothing changes (`RefreshSchedule`) and snaps back when a
person touches a key (`touched`). Container stats of the focused environment are sampled after its
refresh, on workers of their own. Plain Python: the console only tells it what is focused and when
a key is pressed.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from opsconsole.sources.model import ReadModel
from opsconsole.sources.schedule import RefreshSchedule


class Ticker:
    """Calls each key's callback once its time comes, on one daemon thread; a key has at most one
    pending call (arming it again replaces the old one)."""

    def __init__(self, name: str = "ticker") -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._calls: dict[str, tuple[int, Callable[[], None]]] = {}
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def call_later(self, delay: float, key: str, callback: Callable[[], None]) -> None:
        with self._wake:
            if self._stopped:
                return
            order = next(self._order)
            self._calls[key] = (order, callback)
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), order, key))
            self._wake.notify()

    def cancel(self, key: str) -> bool:
        """Drop the key's pending call; False when it had none."""
        with self._wake:
            return self._calls.pop(key, None) is not None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._calls.clear()
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _when, order, key = heapq.heappop(self._heap)
                        pending = self._calls.get(key)
                        if pending is not None and pending[0] == order:
                            del self._calls[key]
                            callback = pending[1]
                            break
                        continue  # replaced or cancelled
                    self._wake.wait(self._heap[0][0] - now if self._heap else None)
                else:
                    return
            try:
                callback()
            except Exception:  # noqa: BLE001 - a refresh reports its own failures; the ticker goes on
                pass


class Refresher:
    """Keeps every environment of the model refreshed while `live`."""

    def __init__(self, model: ReadModel, *, live: bool = True) -> None:
        self.model = model
        self.live = live
        self.schedule = RefreshSchedule(model.profile.defaults.refresh)
        self.schedule.spread(list(model.profile.environments))
        self.focus: str | None = None  # the environment on screen: its container stats are sampled
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ticker: Ticker | None = None

    def start(self) -> None:
        for env in self.model.profile.environments:
            self.refresh(env)

    def refresh(self, env_name: str) -> None:
        """Refresh one environment now (returns at once); the next one is armed when it completes."""
        if self._closed.is_set():
            return
        with self._lock:
            self._refreshing.add(env_name)
        self.model.refresh(env_name, lambda: self._done(env_name))

    def refreshing(self, env_name: str) -> bool:
        with self._lock:
            return env_name in self._refreshing

    def _done(self, env_name: str) -> None:
        env = self.model.profile.env(env_name)
        if env_name == self.focus and env.docker is not None and not self._closed.is_set():
            self.model.sample_stats(env_name)
        with self._lock:
            self._refreshing.discard(env_name)
            if not self.live or self._closed.is_set():
                return
            delay = self.schedule.next_delay(env_name, self.model.state.of(env_name))
        self._timers().call_later(delay, env_name, lambda: self.refresh(env_name))

    def touched(self) -> None:
        """A key or a click: the normal pace again, and a stretched wait of the focused environment
        ends now."""
        with self._lock:
            if not self.schedule.idle:
                return
            self.schedule.touched()
            env = self.focus
            busy = env is None or env in self._refreshing
        if env is not None and self.live and not busy and self._timers().cancel(env):
            self.refresh(env)

    def _timers(self) -> Ticker:
        with self._lock:
            if self._ticker is None:
                self._ticker = Ticker("refresh-timer")
            return self._ticker

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            ticker = self._ticker
        if ticker is not None:
            ticker.stop()
