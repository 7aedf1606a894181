"""Messages the console's worker threads post to the UI (small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from opsconsole.actions.base import Event
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


@dataclass
class ActionEvent(Message):
    run_id: int
    event: Event
