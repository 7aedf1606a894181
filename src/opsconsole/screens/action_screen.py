"""A running action: per-host status, live output, elapsed time, cancel, and the final summary."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Static

from opsconsole.actions.events import Event, Outcome, StepFinished, StepStarted, describe
from opsconsole.messages import RunBatch
from opsconsole.sanitize import clean
from opsconsole.widgets.log_view import LogView

if TYPE_CHECKING:
    from opsconsole.actions.runs import RunState
    from opsconsole.ui import Console


HOST_STYLES = {"running": "yellow", "failed": "bold red", "done": "green", "FAILED": "bold red"}


class ActionScreen(Screen[None]):
    DEFAULT_CSS = """
    ActionScreen #run-title { height: 1; text-style: bold; background: $panel; }
    ActionScreen #hosts { height: auto; max-height: 10; }
    ActionScreen LogView { height: 1fr; border: round $panel-lighten-2; }
    ActionScreen #summary { height: auto; padding: 0 1; }
    ActionScreen #summary.-ok { color: $success; text-style: bold; }
    ActionScreen #summary.-failed { color: $error; text-style: bold; }
    ActionScreen #buttons { height: 3; align: right middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Cancel action", id="action_cancel", tooltip="Cancel the running action"),
        # one id for both: a `[keymap]` remap of action_close moves both (Textual drops a key's whole
        # list when one of its bindings is remapped); check_action shows the one that applies
        Binding("escape", "back", "Back (keeps running)", id="action_close", tooltip="Back to the console"),
        Binding("escape,q", "close", "Close", id="action_close", tooltip="Close this finished run's screen"),
    ]

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state
        self.run_id = state.id
        self.host_steps: dict[str, str] = {}
        self._ready = False  # set by on_mount, which replays what arrived before it

    def compose(self) -> ComposeResult:
        with Vertical():
            self._title = self.state.title
            yield Static(Text(clean(self._title)), id="run-title")
            table: DataTable[Text] = DataTable(id="hosts", cursor_type="none")
            table.add_columns("host", "status", "step")
            yield table
            yield LogView(max_lines=20_000, show_host=len(self.state.action.hosts) > 1)
            yield Static(Text("running…"), id="summary")
            with Horizontal(id="buttons"):
                yield Button("Cancel action", id="cancel-run", variant="error")
                yield Button("OK", id="ok", variant="primary", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#hosts", DataTable)
        for spec in self.state.action.hosts:
            table.add_row(Text(spec.raw), Text("waiting", style="dim"), Text(""), key=spec.raw)
        for event in list(self.state.events):
            self.on_run_event(event)
        if self.state.outcome is not None:
            self.on_run_event(self.state.outcome)
        self._ready = True
        self._timer = self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.state.outcome is not None:
            self._timer.stop()
            return
        elapsed = time.monotonic() - self.state.started
        self.query_one("#summary", Static).update(Text(f"running… {elapsed:.0f}s (c cancels)"))

    def _set_host(self, host: str, status: Text | None, step: str | None = None) -> None:
        """Update a host's row (status None: unchanged); a host not listed yet gets one."""
        table = self.query_one("#hosts", DataTable)
        if host not in [str(k.value) for k in table.rows]:
            shown = status or Text("running", style=HOST_STYLES["running"])
            table.add_row(Text(clean(host)), shown, Text(clean(step or "")), key=host)
            return
        columns = list(table.columns)
        if status is not None:
            table.update_cell(host, columns[1], status, update_width=True)
        if step is not None:
            table.update_cell(host, columns[2], Text(clean(step, 80)), update_width=True)

    def _mark_step(self, event: StepStarted | StepFinished) -> None:
        """The host's step column: ▶ the step running, ✓ / ✗ one that ended (as `watch` prints)."""
        if isinstance(event, StepStarted):
            mark = "▶"
        else:
            mark = "✓" if event.ok else "✗"
        self._set_host(event.host, None, f"{mark} {event.step}")

    def on_run_batch(self, message: RunBatch) -> None:
        if message.run_id != self.run_id or not self._ready:
            return  # another run's, or on_mount replays the run's events (recorded before delivery)
        lines: list[tuple[str, str]] = []  # consecutive output goes to the log in one call
        for event in message.events:
            seen = describe(event)
            if seen is not None and seen.lines:
                lines.extend((line, seen.host) for line in seen.lines)
                continue
            if lines:
                self.query_one(LogView).append_many(lines)
                lines = []
            self.on_run_event(event)
        if lines:
            self.query_one(LogView).append_many(lines)
        if self.state.title != self._title:  # a watched run names its holder once its log is read
            self._title = self.state.title
            self.query_one("#run-title", Static).update(Text(clean(self._title)))

    def on_run_event(self, event: Event) -> None:
        log = self.query_one(LogView)
        seen = describe(event)
        if seen is not None:
            if seen.lines:
                log.append_many([(line, seen.host) for line in seen.lines])
            elif seen.text:  # "▶ build" when a step starts, "✓ build" / "✗ build: …" when it ends
                log.append(seen.text, seen.host)
            if seen.status is not None:
                self._set_host(seen.host, Text(seen.status, style=HOST_STYLES[seen.status]), seen.step)
            if isinstance(event, StepStarted | StepFinished):
                self._mark_step(event)
        if isinstance(event, Outcome):
            summary = self.query_one("#summary", Static)
            elapsed = (self.state.finished or time.monotonic()) - self.state.started
            summary.update(Text(f"{'✓' if event.ok else '✗'} {clean(event.message, 2000)} ({elapsed:.1f}s)"))
            summary.set_class(event.ok, "-ok")
            summary.set_class(not event.ok, "-failed")
            self.query_one("#ok", Button).disabled = False
            self.query_one("#cancel-run", Button).display = False  # nothing left to cancel
            self.query_one("#ok", Button).focus()
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Running: c cancels, esc goes back and the run goes on. Ended: esc and q close. False
        hides a binding from the footer and lets its key fall through to the next one."""
        ended = self.state.outcome is not None
        if action in ("cancel_run", "back"):
            return not ended
        if action == "close":
            return ended
        return True

    def action_cancel_run(self) -> None:
        if self.state.outcome is None:
            self.state.run.cancel()
            self.notify("cancelling: the current step is stopped, nothing is switched", timeout=4)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel-run":
            self.action_cancel_run()
        else:
            self.dismiss(None)

    @property
    def ops(self) -> Console:
        return cast("Console", self.app)
