"""The fan-out engine: every source of a refresh at once, each with a deadline, on reused workers.

A source that has not answered by its deadline reports "timed out", so one dead host never delays
the others; hosts take turns (`defaults.concurrency` at once) and a host's sources share its turn.
Each result carries either data or an error string naming the host, the source and the cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from opsconsole.errors import OpsError, StartingError
from opsconsole.secrets import redact

T = TypeVar("T")
DEADLINE_MARGIN = 0.3  # the whole snapshot stays within timeout + 0.5 s


@dataclass
class SourceResult(Generic[T]):
    """Data or an error, never both; `configured` is False when the profile leaves the source out."""

    data: T | None = None
    error: str | None = None
    configured: bool = True
    fetched_at: float = field(default_factory=time.time)
    elapsed: float = 0.0
    starting: bool = False  # the error is a service still starting (StartingError): pending, not failed

    @property
    def ok(self) -> bool:
        return self.error is None


def run_with_deadline(
    tasks: dict[Any, Callable[[], Any]],
    deadline: float,
    describe_timeout: Callable[[Any], str],
    on_result: Callable[[Any, SourceResult[Any]], None] | None = None,
    start: Callable[[Callable[[], None]], None] | None = None,
) -> dict[Any, SourceResult[Any]]:
    """Run each task in its own daemon thread (or on `start`'s workers); whatever has not finished by
    `deadline` times out.

    `on_result(key, result)` is called as each result arrives (timeouts included), so a caller can
    show fast sources at once while slow ones are still waiting.
    """
    results: dict[Any, SourceResult[Any]] = {}
    lock = threading.Lock()
    done = threading.Event()
    remaining = [len(tasks)]

    def runner(key: Any, task: Callable[[], Any]) -> None:
        result = attempt(task)
        with lock:
            fresh = key not in results
            results.setdefault(key, result)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        if fresh and on_result is not None:
            on_result(key, result)

    if not tasks:
        return results
    for key, task in tasks.items():
        if start is not None:
            start(partial(runner, key, task))
        else:
            threading.Thread(target=runner, args=(key, task), daemon=True, name=f"source-{key}").start()
    done.wait(max(0.0, deadline - time.monotonic()))
    late: list[tuple[Any, SourceResult[Any]]] = []
    with lock:
        for key in tasks:
            if key not in results:
                results[key] = SourceResult(error=describe_timeout(key))
                late.append((key, results[key]))
        out = dict(results)
    if on_result is not None:
        for key, result in late:
            on_result(key, result)
    return out


class Workers:
    """A pool of reusable daemon threads (a stuck source never holds up the process's exit, unlike
    ThreadPoolExecutor's): a thread is started only when none is idle, up to `size`."""

    def __init__(self, size: int, name: str) -> None:
        import queue

        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0 and self._threads < self.size
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # an idle worker takes it (or it waits for the first free one)
        self._queue.put(job)
        if start:
            threading.Thread(target=self._work, daemon=True, name=f"{self.name}-{self._threads}").start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - jobs report their own errors; a worker never dies of one
                pass
            # an idle worker must not keep its last job alive (and with it that refresh's results)
            job = None
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)


class SourcePools:
    """Long-lived workers for the sources: `concurrency` host workers (a host's turn: its sources
    start together over its one connection) and the workers its sources run on. Threads are reused,
    never made per source and refresh."""

    SOURCES_PER_HOST = 4  # supervisor, docker, deploys, files

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self.hosts = Workers(self.concurrency, "host")
        # room for sources still waiting on a host that did not answer in its turn
        self.sources = Workers(self.concurrency * self.SOURCES_PER_HOST * 2, "source")

    def close(self) -> None:
        self.hosts.close()
        self.sources.close()


def fan_out(
    tasks: dict[Any, Callable[[], Any]],
    budget: float,
    describe_timeout: Callable[[Any], str],
    on_result: Callable[[Any, SourceResult[Any]], None] | None = None,
    *,
    host_of: Callable[[Any], str | None] = lambda _key: None,
    pools: SourcePools,
    on_done: Callable[[dict[Any, SourceResult[Any]]], None] | None = None,
) -> dict[Any, SourceResult[Any]] | None:
    """Every task with `budget` seconds, at most `pools.concurrency` hosts at once.

    The sources of one host (`host_of(key)`) start together when the host's turn comes (hosts wait
    in order), share its one connection, and have `budget` seconds from then: a host that does not
    answer holds its turn for at most that long. Sources of no host (Sentry, health URLs...) start
    at once. Blocks and returns the results; with `on_done`, returns at once and hands the results
    to `on_done` (on a worker thread) when every host has had its turn.
    """
    groups: dict[str | None, dict[Any, Callable[[], Any]]] = {}
    for key, task in tasks.items():
        groups.setdefault(host_of(key), {})[key] = task
    results: dict[Any, SourceResult[Any]] = {}
    lock = threading.Lock()
    ungrouped = groups.pop(None, None)
    turns_left = [len(groups) + (1 if ungrouped else 0)]
    finished = threading.Event()

    def merge(out: dict[Any, SourceResult[Any]]) -> None:
        with lock:
            results.update(out)
            turns_left[0] -= 1
            last = turns_left[0] == 0
        if last:
            finished.set()
            if on_done is not None:
                on_done(dict(results))

    if turns_left[0] == 0:
        if on_done is None:
            return {}
        on_done({})
        return None
    if ungrouped:
        batch = ungrouped
        threading.Thread(
            target=lambda: merge(
                run_with_deadline(batch, time.monotonic() + budget, describe_timeout, on_result)
            ),
            daemon=True,
            name="env-sources",
        ).start()
    for batch in groups.values():

        def turn(batch: dict[Any, Callable[[], Any]] = batch) -> None:
            out: dict[Any, SourceResult[Any]] = {}
            try:
                out = run_with_deadline(
                    batch, time.monotonic() + budget, describe_timeout, on_result, start=pools.sources.submit
                )
            finally:
                merge(out)

        pools.hosts.submit(turn)
    if on_done is not None:
        return None
    finished.wait()
    return results


def attempt(task: Callable[[], Any]) -> SourceResult[Any]:
    started = time.monotonic()
    try:
        result: SourceResult[Any] = SourceResult(data=task())
    except OpsError as exc:
        result = SourceResult(error=redact(exc.message), starting=isinstance(exc, StartingError))
    except Exception as exc:  # noqa: BLE001 - a bug in one source must not hide the others
        result = SourceResult(error=redact(f"{type(exc).__name__}: {exc}"))
    result.elapsed = time.monotonic() - started
    return result
