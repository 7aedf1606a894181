"""The action runs a console tracks (several at once), as plain Python: no Textual.

A worker thread drives each run and buffers its events; the UI thread takes the buffered events in
batches (ten times a second at most for output lines, at once for steps and outcomes) and hands
them to the screens as `RunBatch` messages.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the action layer loads with the first action, after the console's first frame
    from opsconsole.actions.base import Action
    from opsconsole.actions.events import Event, Outcome
    from opsconsole.actions.runner import ActionRun


@dataclass
class RunState:
    """One action run as the console tracks it."""

    id: int
    action: Action
    run: ActionRun
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    outcome: Outcome | None = None
    finished: float | None = None
    pending: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def title(self) -> str:
        return f"{self.action.headline} ({self.action.env.name})"

    @property
    def running(self) -> bool:
        return self.outcome is None


class Runs:
    def __init__(self) -> None:
        self._by_id: dict[int, RunState] = {}
        self._ids = itertools.count(1)

    def add(self, run: ActionRun) -> RunState:
        state = RunState(next(self._ids), run.action, run)
        self._by_id[state.id] = state
        return state

    def __getitem__(self, run_id: int) -> RunState:
        return self._by_id[run_id]

    def __iter__(self) -> Iterator[RunState]:
        return iter(list(self._by_id.values()))

    def values(self) -> list[RunState]:
        return list(self._by_id.values())

    def running(self) -> list[RunState]:
        return [s for s in self._by_id.values() if s.outcome is None]

    @staticmethod
    def drive(state: RunState, wake: Callable[[], None]) -> None:
        """In a worker thread: run to the end, buffering events; `wake` for events that should show
        at once (steps, results, the outcome), while output lines wait for the next batch."""
        from opsconsole.actions.events import OutputLine, OutputLines

        for event in state.run.events():
            with state.lock:
                state.pending.append(event)
            if not isinstance(event, OutputLine | OutputLines):
                wake()
        wake()

    def take(self) -> list[tuple[RunState, list[Event]]]:
        """On the UI thread: every run's buffered events, recorded in its history (outcome included)."""
        from opsconsole.actions.events import Outcome

        batches = []
        for state in self:
            with state.lock:
                batch, state.pending = state.pending, []
            if not batch:
                continue
            for event in batch:
                if isinstance(event, Outcome):
                    state.outcome = event
                    state.finished = time.monotonic()
                elif state.action.viewer != "log":  # a log viewer keeps its own ring buffer
                    state.events.append(event)
            batches.append((state, batch))
        return batches

    def cancel_all(self) -> None:
        for state in self.running():
            state.run.cancel()

    def wait(self, timeout: float) -> list[RunState]:
        """Wait for runs to finish cleaning up; returns those still going at the deadline."""
        deadline = time.monotonic() + timeout
        for state in self:
            state.run.done.wait(max(0.0, deadline - time.monotonic()))
        return [s for s in self if not s.run.done.is_set()]
