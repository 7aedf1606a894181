"""The overview of every project (`opsconsole --all`): one row per project and environment, those
that need someone first; `enter` opens that project on that environment in the normal console.

What a row says comes from the core (`sources.overview`); this screen only shows it, filters it and
polls the projects on a timer. Every project's answers redraw the table (at most five times a second).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from opsconsole.human import counted
from opsconsole.sanitize import clean
from opsconsole.screens.bindings import OVERVIEW_BINDINGS
from opsconsole.sources.overview import OverviewRow, sorted_rows
from opsconsole.sources.schedule import IDLE_BACKOFF

if TYPE_CHECKING:
    from opsconsole.sources.overview import Projects

COLUMNS = ("project", "env", "sources", "alerts", "running", "release", "errors", "why")
POLL_FLOOR = 5.0  # seconds between two polls at least, whatever the profiles' refresh says


class ProjectsConsole(Protocol):
    """What the overview uses of the app (`ProjectsApp`)."""

    projects: Projects

    def open_project(self, name: str, env: str | None = None) -> str | None: ...

    def action_refresh_all(self) -> None: ...

    def notify(self, message: str, **kwargs: Any) -> None: ...

    def exit(self, *args: Any, **kwargs: Any) -> None: ...


class ProjectsChanged(Message):
    """Some project's results changed (posted from worker threads)."""


def sources_text(row: OverviewRow) -> Text:
    """✓ when every source answered, the failing ones by name, else how many have answered."""
    failing = [name for name, mark in row.marks if mark == "✗"]
    if failing:
        return Text("✗ " + ", ".join(failing), style="bold red")
    pending = sum(1 for _name, mark in row.marks if mark == "…")
    if pending or not row.marks:
        return Text(f"… {len(row.marks) - pending}/{len(row.marks)}", style="dim")
    return Text(f"✓ {len(row.marks)}", style="green")


def row_cells(row: OverviewRow, now: float) -> list[Text]:
    if row.failure:
        return [
            Text(clean(row.project, 24), style="bold"),
            Text("-"),
            Text("✗ not loaded", style="bold red"),
            Text(""),
            Text(""),
            Text(""),
            Text(""),
            Text(clean(row.failure, 160), style="red"),
        ]
    env = Text(clean(row.env, 20), style="bold")
    if row.protected:
        env.append(" ⚑", style="bold yellow")
    alerts = Text("" if row.alerts is None else str(row.alerts), style="bold red" if row.alerts else "")
    errors = Text("" if row.errors is None else str(row.errors), style="yellow" if row.errors else "")
    return [
        Text(clean(row.project, 24), style="bold"),
        env,
        sources_text(row),
        alerts,
        Text(clean("; ".join(row.running), 60), style="bold yellow" if row.running else ""),
        Text(clean(row.release_text(now), 40)),
        errors,
        Text(clean(", ".join(row.problems), 80), style="red" if row.problems else ""),
    ]


def _look(cell: Text) -> tuple[str, Any, str]:
    """What a cell shows (text, spans, style): equal looks need no redraw."""
    return (cell.plain, cell.spans, str(cell.style))


def matches(row: OverviewRow, needle: str) -> bool:
    fields = (row.project, row.title, row.env, row.failure or "", *row.running, *row.problems, row.release or "")
    return any(needle in f.lower() for f in fields)


class OverviewScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = list(OVERVIEW_BINDINGS)
    DEFAULT_CSS = """
    OverviewScreen #overview-header { height: 1; background: $panel; }
    OverviewScreen #overview-status { height: 1; }
    OverviewScreen #overview-table { height: 1fr; }
    OverviewScreen #overview-filter { display: none; height: 3; }
    OverviewScreen #overview-filter.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.needs_only = False
        self.shown: list[OverviewRow] = []
        self._pending = False
        self._unsubscribe: list[Any] = []
        self._drawn: list[Any] = []  # what the table shows, row by row: nothing new, nothing redrawn
        self._texts: tuple[Any, Any] | None = None  # the header's and status line's last texts
        self._base_interval = POLL_FLOOR
        self._interval = POLL_FLOOR
        self._changed_since_poll = True
        self._poll_timer: Any = None

    @property
    def ops(self) -> ProjectsConsole:
        return cast("ProjectsConsole", self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="overview-header")
        yield Static(id="overview-status")
        table: DataTable[Text] = DataTable(id="overview-table", cursor_type="row", zebra_stripes=False)
        yield table
        yield Input(placeholder="filter every project (esc clears)", id="overview-filter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        projects = self.ops.projects
        for project in projects.projects:
            if project.model is not None:
                self._unsubscribe.append(project.model.state.subscribe(self._changed))
        refresh = [p.profile.defaults.refresh for p in projects.projects if p.profile is not None]
        self._base_interval = self._interval = max(POLL_FLOOR, min(refresh, default=POLL_FLOOR))
        self.render_rows()
        table.focus()

    def after_first_frame(self) -> None:
        """The app's first frame is on screen: the first poll of every project."""
        self._poll()

    def on_unmount(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def on_screen_resume(self) -> None:
        self.render_rows()

    def _poll(self) -> None:
        """Poll every project, then again after the interval: doubled (up to IDLE_BACKOFF times) for
        each poll that changed nothing, as the console's own refresh stretches; a key resets it."""
        if not getattr(self.app, "live", True):
            return
        self._interval = (
            self._base_interval
            if self._changed_since_poll
            else min(self._interval * 2, self._base_interval * IDLE_BACKOFF)
        )
        self._changed_since_poll = False
        self.ops.projects.poll()
        self._arm(self._interval)

    def _arm(self, delay: float) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._poll_timer = self.set_timer(delay, self._poll)

    def on_key(self) -> None:
        if self._interval > self._base_interval:  # someone is looking: the normal pace, now
            self._interval = self._base_interval
            self._changed_since_poll = True
            self._arm(0)

    def _changed(self, _env: str, _key: Any) -> None:
        """A result arrived (on a worker thread)."""
        self.post_message(ProjectsChanged())

    def on_projects_changed(self, _message: ProjectsChanged) -> None:
        if not self._pending:
            self._pending = True
            self.set_timer(0.2, self._redraw)

    def _redraw(self) -> None:
        self._pending = False
        if self.is_current:
            self.render_rows()

    # ---------------------------------------------------------------- rendering

    def rows(self, every: list[OverviewRow] | None = None) -> list[OverviewRow]:
        """The rows shown: `every` row (default: the projects' now), sorted, then filtered."""
        rows = sorted_rows(every if every is not None else self.ops.projects.rows())
        if self.needs_only:
            rows = [r for r in rows if r.needs_me]
        if self.filter_text:
            needle = self.filter_text.lower()
            rows = [r for r in rows if matches(r, needle)]
        return rows

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        all_rows = self.ops.projects.rows()
        rows = self.rows(all_rows)
        now = time.time()
        selected = self.selected()
        # a row picked below the top stays picked as rows move; the top row stays the top one (the
        # most urgent, once everything has answered)
        keep = (selected.project, selected.env) if selected is not None and table.cursor_row > 0 else None
        drawn = [(f"{row.project}|{row.env}", row_cells(row, now)) for row in rows]
        seen = [(key, [_look(c) for c in cells]) for key, cells in drawn]
        if seen != self._drawn:
            self._draw(table, drawn, seen)
            self._changed_since_poll = True  # something a person sees changed: keep the normal pace
        self.shown = rows
        if keep is not None:
            for index, row in enumerate(rows):
                if (row.project, row.env) == keep:
                    table.move_cursor(row=index)
                    break
        projects = len(self.ops.projects.projects)
        needing = sum(1 for r in all_rows if r.needs_me)
        header = Text()
        header.append(" opsconsole ", style="bold reverse")
        header.append(f" {counted(projects, 'projects')} · {counted(len(all_rows), 'environments')} ")
        if needing:
            header.append(f" {needing} need attention ", style="bold black on red")
        else:
            header.append(" all fine ", style="green")
        if self._texts is None or self._texts[0] != header:
            self.query_one("#overview-header", Static).update(header)
        status = Text(f"{counted(len(rows), 'rows')}", style="dim")
        if self.needs_only:
            status.append(" · only what needs me (n: all)", style="cyan")
        if self.filter_text:
            status.append(f" · filter '{self.filter_text}' (esc clears)", style="cyan")
        loading = sum(1 for r in all_rows if not r.loaded and not r.failure)
        if loading:
            status.append(f" · {loading} still loading…", style="dim")
        status.append(" · enter opens · backspace or :projects comes back", style="dim")
        if self._texts is None or self._texts[1] != status:
            self.query_one("#overview-status", Static).update(status)
        self._texts = (header, status)

    def _draw(self, table: DataTable[Text], drawn: list[tuple[str, list[Text]]], seen: list[Any]) -> None:
        """The rows again (`seen`: how each cell looks): cell by cell where the order is the same,
        else the whole table."""
        if [key for key, _looks in seen] == [key for key, _looks in self._drawn]:
            for (key, cells), (_key, looks), (_old_key, before) in zip(drawn, seen, self._drawn, strict=True):
                for column, (cell, look, old) in enumerate(zip(cells, looks, before, strict=True)):
                    if look != old:
                        table.update_cell(key, COLUMNS[column], cell)
        else:
            table.clear()
            for key, cells in drawn:
                table.add_row(*cells, key=key)
        self._drawn = seen

    def selected(self) -> OverviewRow | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    # ---------------------------------------------------------------- keys

    def action_open(self) -> None:
        row = self.selected()
        if row is None:
            self.ops.notify("No project here: clear the filter (esc) or wait for the first answers", severity="warning")
            return
        self.open(row.project, row.env or None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def open(self, name: str, env: str | None = None) -> None:
        why = self.ops.open_project(name, env)
        if why is not None:
            self.ops.notify(why, severity="warning", timeout=8)

    def action_cursor(self, where: str) -> None:
        table = self.query_one(DataTable)
        table.action_cursor_down() if where == "down" else table.action_cursor_up()

    def action_filter(self) -> None:
        box = self.query_one("#overview-filter", Input)
        box.add_class("-shown")
        box.value = self.filter_text
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#overview-filter", Input)
        box.remove_class("-shown")
        self.filter_text = ""
        box.value = ""
        self.query_one(DataTable).focus()
        self.render_rows()

    def action_needs_me(self) -> None:
        self.needs_only = not self.needs_only
        self.render_rows()

    def action_refresh(self) -> None:
        self.ops.action_refresh_all()
        self.ops.notify("reading every project", timeout=2)

    def action_command_line(self) -> None:
        from opsconsole.screens.command_line import CommandLine

        names = self.ops.projects.names()
        words = [*(f"project {n}" for n in names), *names, "quit", "help"]
        self.app.push_screen(CommandLine(words), self.run_command)

    def run_command(self, line: str | None) -> None:
        """`:project NAME` (or just `:NAME`) opens it; `:quit`, `:help`."""
        if not line:
            return
        word, _, arg = line.strip().lstrip(":").partition(" ")
        names = self.ops.projects.names()
        if word in ("q", "quit"):
            self.action_quit()
        elif word == "help":
            self.action_help()
        elif word == "projects":
            return
        elif word == "project" and arg.strip():
            self.open(arg.strip())
        elif word in names:
            self.open(word)
        else:
            self.ops.notify(f"unknown command ':{line}' (:project NAME; the projects: {', '.join(names)})", severity="warning")

    def action_help(self) -> None:
        from opsconsole.screens.help import HelpScreen
        from opsconsole.screens.keymap import screens

        self.app.push_screen(HelpScreen(screens()))

    def action_quit(self) -> None:
        self.ops.exit()
