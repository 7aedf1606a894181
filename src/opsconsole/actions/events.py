"""What a running action reports: its events, and `describe`, the one place front ends tell them
apart."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from opsconsole.errors import ExitCode


@dataclass(frozen=True)
class StepStarted:
    host: str
    step: str


@dataclass(frozen=True)
class StepFinished:
    host: str
    step: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class OutputLine:
    host: str
    line: str
    stream: str = "out"


@dataclass(frozen=True)
class OutputLines:
    """Many lines at once (a log follower's chunk): one event instead of thousands."""

    host: str
    lines: tuple[str, ...]
    stream: str = "out"
    # each line as `sanitize.display_line` makes it, computed by the follower's thread so a
    # viewer at 20,000 lines/s only stores them
    shown: tuple[tuple[str, str | None], ...] | None = None


@dataclass(frozen=True)
class HostResult:
    host: str
    ok: bool
    message: str


@dataclass(frozen=True)
class Notice:
    message: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    exit_code: ExitCode
    hosts: Mapping[str, str] = field(default_factory=dict)


Event = StepStarted | StepFinished | OutputLine | OutputLines | HostResult | Notice | Outcome
Emit = Callable[[Event], None]


HostStatus = Literal["running", "failed", "done", "FAILED"]


@dataclass(frozen=True)
class Described:
    """An event as every front end shows it: output lines, or one line of text about a host (with the
    host's new status and step when it changes), or a notice. The one place events are told apart."""

    host: str = ""
    lines: tuple[str, ...] = ()  # output of the host's commands, as they came
    text: str = ""  # a line about the run ("▶ build", "✗ build: exit 2", "! lock broken")
    status: HostStatus | None = None
    step: str | None = None
    notice: bool = False


def describe(event: Event) -> Described | None:
    """None for the Outcome (each front end ends in its own way)."""
    if isinstance(event, OutputLines):
        return Described(event.host, lines=event.lines)
    if isinstance(event, OutputLine):
        return Described(event.host, lines=(event.line,))
    if isinstance(event, StepStarted):
        return Described(event.host, text=f"▶ {event.step}", status="running", step=event.step)
    if isinstance(event, StepFinished):
        if event.ok:
            return Described(
                event.host, text=f"✓ {event.step}" + (f": {event.detail}" if event.detail else "")
            )
        return Described(event.host, text=f"✗ {event.step}: {event.detail}", status="failed", step=event.step)
    if isinstance(event, HostResult):
        mark: HostStatus = "done" if event.ok else "FAILED"
        return Described(event.host, text=f"{mark}: {event.message}", status=mark, step=event.message)
    if isinstance(event, Notice):
        return Described(text=f"! {event.message}", notice=True)
    return None
