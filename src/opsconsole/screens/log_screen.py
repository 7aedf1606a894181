"""The log viewer: a followed log (process, container, file) through the shared `logs` action."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from opsconsole.actions.events import Event, Outcome, OutputLines, describe
from opsconsole.messages import RunBatch
from opsconsole.paths import saved_logs_dir
from opsconsole.sanitize import clean
from opsconsole.widgets.log_view import LogView

if TYPE_CHECKING:
    from opsconsole.actions.runs import RunState
    from opsconsole.ui import Console

FLUSH_INTERVAL = 0.1


class LogScreen(Screen[None]):
    DEFAULT_CSS = """
    LogScreen #log-title { height: 1; background: $panel; }
    LogScreen #log-status { height: 1; color: $text-muted; }
    LogScreen Input { display: none; }
    LogScreen Input.-visible { display: block; }
    LogScreen LogView { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="log_close", tooltip="Close the log (stops following)"),
        Binding("end", "follow", "Follow", id="log_follow", tooltip="Resume following"),
        Binding(
            "home",
            "oldest",
            "Oldest",
            show=False,
            id="log_oldest",
            tooltip="The oldest line kept (pauses following)",
        ),
        Binding("slash", "search", "Search", id="log_search", tooltip="Search"),
        Binding("n", "next_match", "Next", id="log_next", tooltip="Next match"),
        Binding("N", "previous_match", "Prev", id="log_previous", tooltip="Previous match"),
        Binding("f", "filter", "Filter", id="log_filter", tooltip="Show only lines that match"),
        Binding("w", "wrap", "Wrap", id="log_wrap", tooltip="Wrap long lines"),
        Binding("t", "timestamps", "Time", id="log_timestamps", tooltip="Show when each line arrived"),
        Binding("ctrl+s", "save", "Save", id="log_save", tooltip="Save the lines shown to a file"),
    ]

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state
        self.run_id = state.id
        self._pending: list[tuple[str | tuple[str, str | None], str]] = []
        self._lock = threading.Lock()
        self._mode = "search"
        self._replacing: Path | None = None  # the existing file a "replace? y/N" answer is about
        self.ended: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Text(
                f"log: {clean(self.state.action.target_label)} ({self.state.action.env.name})", style="bold"
            ),
            id="log-title",
        )
        yield Input(id="log-input")
        yield LogView(max_lines=self.ops.log_lines, show_host=len(self.state.action.hosts) > 1)
        yield Static(id="log-status")
        yield Footer()

    @property
    def ops(self) -> Console:
        return cast("Console", self.app)

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.set_interval(FLUSH_INTERVAL, self._flush)
        self.view.focus()
        self._status()

    def on_run_batch(self, message: RunBatch) -> None:
        if message.run_id != self.run_id:
            return
        for event in message.events:
            self.on_run_event(event)

    def on_run_event(self, event: Event) -> None:
        if isinstance(event, OutputLines) and event.shown is not None:  # made safe by the follower
            self._pending.extend((shown, event.host) for shown in event.shown)
            return
        seen = describe(event)
        if seen is not None and seen.lines:
            self._pending.extend((line, seen.host) for line in seen.lines)
        elif seen is not None and (seen.notice or seen.status == "FAILED"):
            self._pending.append((f"[opsconsole] {seen.text.lstrip('! ')}", seen.host))
        elif isinstance(event, Outcome):
            self._flush()
            self.ended = event.message if not event.ok else "the log ended"
            self._status()

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.view.append_many(batch)
        self._status()

    def _status(self) -> None:
        view = self.view
        parts = [f"{len(view.lines)} lines (last {view.max_lines} kept)"]
        parts.append("following" if view.follow else "PAUSED: end resumes")
        if view.filter_text:
            parts.append(f"filter '{clean(view.filter_text)}': {len(view.visible_indices())} shown")
        position = view.match_position()
        if position is not None:
            n, total = position
            parts.append(
                f"search '{clean(view.search_text)}' {n}/{total}"
                if total
                else f"search '{clean(view.search_text)}': no match"
            )
        if view.timestamps:
            parts.append("times: the line's own, else arrival (↓)")
        if view.wrap:
            parts.append("wrap")
        status = Text(" · ".join(parts))
        if self.ended:
            status.append(
                f" · {clean(self.ended)}", style="bold red" if self.ended != "the log ended" else ""
            )
        if status != getattr(self, "_shown_status", None):  # an update lays the screen out again
            self._shown_status = status
            self.query_one("#log-status", Static).update(status)

    def on_log_view_follow_changed(self, _event: LogView.FollowChanged) -> None:
        self._status()

    # ------------------------------------------------------------- keys

    def _ask(self, mode: str, placeholder: str, value: str) -> None:
        self._mode = mode
        box = self.query_one(Input)
        box.placeholder = placeholder
        box.value = value
        box.add_class("-visible")
        box.focus()

    def action_search(self) -> None:
        self._ask("search", "search (enter: find, n/N: next/previous, esc: close)", self.view.search_text)

    def action_filter(self) -> None:
        self._ask("filter", "show only lines containing… (empty: all)", self.view.filter_text)

    def _default_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.state.action.target_label)[:60]
        return f"opsconsole-{safe}-{stamp}.log"

    def action_save(self) -> None:
        if self.ops.saves_to_browser:  # served: a download, no path asked, nothing written here
            self._save(Path(self._default_name()))
            return
        self._ask("save", "save to file", str(saved_logs_dir() / self._default_name()))

    def _save(self, path: Path, *, overwrite: bool = False) -> None:
        from opsconsole.errors import OpsError
        from opsconsole.saving import SaveExists

        text = "\n".join(self.view.plain_lines()) + "\n"
        count = len(self.view.visible_indices())
        if not self.ops.saves_to_browser and path.parent == saved_logs_dir():
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                self.notify(f"could not create {path.parent}: {exc.strerror or exc}", severity="error")
                return
        try:
            where = self.ops.save_text(path, text, overwrite=overwrite)
        except SaveExists as exc:
            self._replacing = exc.path
            self._ask("replace", f"{clean(str(exc.path))} exists: replace it? y/N", "")
            return
        except OpsError as exc:
            self.notify(exc.message, title=exc.title, severity="error")
            return
        except OSError as exc:
            self.notify(f"could not save to {path}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"{count} lines {where}", timeout=4)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        box = self.query_one(Input)
        box.remove_class("-visible")
        if self._mode == "search":
            if event.value and not self.view.search(event.value):
                self.notify(f"'{event.value}' not found", severity="warning", timeout=3)
        elif self._mode == "filter":
            self.view.set_filter(event.value)
        elif self._mode == "save" and event.value.strip():
            self._save(Path(event.value.strip()).expanduser())
        elif self._mode == "replace" and self._replacing is not None:
            path, self._replacing = self._replacing, None
            if event.value.strip().lower() in ("y", "yes"):
                self._save(path, overwrite=True)
            else:
                self.notify(f"not saved: {path} is unchanged", timeout=4)
        if not box.has_class("-visible"):
            self.view.focus()
        self._status()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one(Input)
        if event.key == "escape" and box.has_class("-visible"):
            event.stop()
            box.remove_class("-visible")
            if self._mode == "replace" and self._replacing is not None:
                self.notify(f"not saved: {self._replacing} is unchanged", timeout=4)
                self._replacing = None
            self.view.focus()

    def action_next_match(self) -> None:
        if self.view.search_text:
            self.view.search(self.view.search_text, forward=True)
            self._status()

    def action_previous_match(self) -> None:
        if self.view.search_text:
            self.view.search(self.view.search_text, forward=False)
            self._status()

    def action_oldest(self) -> None:
        self.view.action_scroll_home()  # pauses following, wherever the focus is
        self._status()

    def action_follow(self) -> None:
        self.view.resume_follow()
        self._status()

    def action_wrap(self) -> None:
        self.view.wrap = not self.view.wrap
        self._status()

    def action_timestamps(self) -> None:
        self.view.timestamps = not self.view.timestamps

    def action_close(self) -> None:
        self.state.run.cancel()
        self.dismiss(None)
