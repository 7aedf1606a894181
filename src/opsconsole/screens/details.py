"""`enter`: details of the selection: process info, container inspect, Sentry issue with its stack trace."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.console import Group
from rich.json import JSON
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from opsconsole.backends.sentry import SentryEvent
from opsconsole.errors import OpsError
from opsconsole.human import duration, parse_time
from opsconsole.profiles import Environment
from opsconsole.sanitize import clean
from opsconsole.screens.help import SIDE_PANEL_WIDTH

if TYPE_CHECKING:
    from opsconsole.ui import Console


TIME_KEYS = {"start", "stop", "now", "started", "finished", "first_seen", "last_seen", "started_at", "mtime"}


def show_time(value: Any, now: float | None = None) -> str:
    """`14:02:11, 45 min ago` (local time) for epoch seconds and ISO times; other values unchanged."""
    from datetime import UTC, datetime

    when: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1e9:
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        when = parse_time(value)
    if when is None:
        return str(value)
    seconds = (now if now is not None else time.time()) - when.timestamp()
    local = when.astimezone()
    day = "" if abs(seconds) < 20 * 3600 else local.strftime("%Y-%m-%d ")
    ago = "in the future" if seconds < 0 else f"{duration(seconds)} ago"
    return f"{day}{local.strftime('%H:%M:%S %Z')}, {ago}"


def fields_text(title: str, fields: list[tuple[str, Any]]) -> Text:
    text = Text(title + "\n\n", style="bold")
    for key, value in fields:
        if value is None:  # unknown or not given: no "substatus None" line
            continue
        text.append(f"{key:>16}  ", style="dim")
        shown = show_time(value) if key in TIME_KEYS and value else str(value)
        text.append(clean(shown, 500) + "\n")
    return text


def inert(data: Any) -> Any:
    """Every string in `data` neutralised (escape sequences, controls), for pretty-printing."""
    if isinstance(data, str):
        return clean(data, 2000)
    if isinstance(data, dict):
        return {clean(str(k), 200): inert(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [inert(v) for v in data]
    return data


def event_text(event: SentryEvent) -> Text:
    when = show_time(event.date) if event.date else "an unknown time"
    text = Text(f"latest event {clean(event.id)} at {clean(when)}\n", style="bold")
    for exc in event.exceptions:
        text.append(f"\n{clean(exc.type)}: {clean(exc.value, 500)}\n", style="bold red")
        if exc.frames:
            text.append("  stack, most recent call first (the crash site on top):\n", style="dim")
        for frame in reversed(exc.frames):  # newest (the crash site) first
            style = "" if frame.in_app else "dim"
            text.append(
                f"  {clean(frame.filename)}:{frame.line or '?'} in {clean(frame.function)}\n", style=style
            )
            if frame.context_line:
                text.append(f"      {clean(frame.context_line.strip(), 200)}\n", style="italic " + style)
    if not event.exceptions:
        text.append("(no exception in this event)\n", style="dim")
    return text


class DetailsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    DetailsScreen > VerticalScroll { width: 110; max-width: 98%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    DetailsScreen.-side { align: right top; background: $background 0%; }
    DetailsScreen.-side > VerticalScroll { width: 50%; height: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close", id="details_close")]

    def on_resize(self) -> None:
        self.set_class(self.app.size.width >= SIDE_PANEL_WIDTH, "-side")

    def __init__(self, env: Environment, selection: tuple[str, str, Any]) -> None:
        super().__init__()
        self.env = env
        self.selection = selection

    @property
    def ops(self) -> Console:
        return cast("Console", self.app)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._initial(), id="details-body")

    def _initial(self) -> Text:
        kind, host, item = self.selection
        if kind == "process":
            return fields_text(f"{item.full_name} on {host}", [(k, v) for k, v in item.to_json().items()])
        if kind == "container":
            return fields_text(f"{item.name} on {host}", list(item.to_json().items())) + Text(
                "\nloading docker inspect…", style="dim"
            )
        if kind == "issue":
            return fields_text(f"{item.short_id}: {item.title}", list(item.to_json().items())) + Text(
                "\nloading the latest event…", style="dim"
            )
        if kind == "journal":
            return fields_text(f"journal record on {host}", list(item.items()))
        if kind == "deploy":
            return fields_text(f"deploys on {host}", list(item.to_json().items()))
        if kind == "metric":  # the Metrics pane's row: its detail whole, which the pane may cut
            return fields_text(f"metric {item}", list(item.to_json().items()))
        return fields_text(str(kind), list(item.to_json().items()) if hasattr(item, "to_json") else [])

    def on_mount(self) -> None:
        self.set_class(self.app.size.width >= SIDE_PANEL_WIDTH, "-side")
        kind = self.selection[0]
        if kind in ("container", "issue"):
            self.load_more()

    @work(thread=True, exit_on_error=False)
    def load_more(self) -> None:
        kind, host, item = self.selection
        try:
            if kind == "container":
                data = self.ops.backends.docker(self.env, self.env.host(host)).inspect(item.name)
                pretty = JSON.from_data(inert(json.loads(json.dumps(data, default=str))), indent=2)
                self.app.call_from_thread(
                    self.query_one("#details-body", Static).update,
                    Group(self._initial_done(), Text("\ndocker inspect", style="bold"), pretty),
                )
                return
            else:
                event = asyncio.run(self.ops.backends.issues(self.env).latest_event(item.id))
                extra = Text("\n") + event_text(event)
        except OpsError as exc:
            extra = Text(f"\n{clean(exc.message)}", style="bold red")
        self.app.call_from_thread(
            self.query_one("#details-body", Static).update, self._initial_done() + extra
        )

    def _initial_done(self) -> Text:
        """The fields, without the "loading…" line."""
        base = self._initial()
        return base[: len(base.plain) - len(base.plain.split("\n")[-1])]

    def action_close(self) -> None:
        self.dismiss(None)
