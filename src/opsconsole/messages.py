"""Messages the console's worker threads post to the UI (small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class SourceUpdated(Message):
    """From the read model's listener (any thread): the state holds a new result for (env, key)."""

    env: str
    key: tuple[str, ...]


@dataclass
class SourceChanged(Message, bubble=False):
    """To screens: the state holds a new result for (env, key); redraw what shows it."""

    env: str
    key: tuple[str, ...]


@dataclass
class RunBatch(Message, bubble=False):
    """To screens: events of run `run_id`, in order (the screen showing that run handles it)."""

    run_id: int
    events: list[Any]


class RunsChanged(Message, bubble=False):
    """To screens: a run started or ended (the header counts running actions)."""


class RunsPending(Message):
    """Action events are waiting in their runs' buffers (coalesced: one in the queue is enough)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsPending)


@dataclass
class VerifyChanged(Message, bubble=False):
    """To screens: the verification of a deploy in `env` progressed or ended."""

    env: str
