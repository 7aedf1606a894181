"""Messages the console's worker threads post to the UI (small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from opsconsole.snapshot import SourceResult


@dataclass
class SourceUpdated(Message):
    env: str
    key: tuple[str, ...]
    result: SourceResult[Any]


@dataclass
class StatsUpdated(Message):
    env: str
    host: str
    stats: dict[str, Any]


class RunsPending(Message):
    """Action events are waiting in their runs' buffers (coalesced: one in the queue is enough)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsPending)
