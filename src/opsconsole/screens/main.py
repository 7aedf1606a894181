"""The main screen: environments, a header with freshness, and five panes for the selected environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from opsconsole.messages import SourceChanged, VerifyChanged
from opsconsole.profiles import Environment
from opsconsole.refresh import coarse_age, stale_after
from opsconsole.sanitize import clean
from opsconsole.screens.env_label import env_label, others_summary
from opsconsole.screens.main_keys import MainKeys, action_keys
from opsconsole.screens.rows import (
    ALL_COLUMNS,
    EXTRA_SOURCES,
    NOT_CONFIGURED_HELP,
    PANE_SOURCES,
    PANES,
    Results,
    foreign_runs,
    rows_all,
    rows_ci,
    rows_containers,
    rows_deploys,
    rows_errors,
    rows_health,
    rows_metrics,
    rows_processes,
)
from opsconsole.snapshot import METRIC_SOURCES, SourceResult, configured, expected_keys
from opsconsole.widgets.env_list import EnvList
from opsconsole.widgets.pane import Pane, Row

if TYPE_CHECKING:
    from opsconsole.backends.sentry import IssuePage
    from opsconsole.ui import Console

# The screen's own keys; the action keys (D, R, r, s, l, p, x, i) come from the action registry.
SCREEN_BINDINGS: list[BindingType] = [
    Binding("enter", "details", "Details", show=False, id="details", tooltip="Details of the selection"),
    Binding("slash", "filter", "Filter", id="filter", tooltip="Filter the visible pane"),
    Binding("e", "switch_env", "Env", show=False, id="switch_env", tooltip="Switch environment"),
    Binding("ctrl+r", "refresh", "Refresh", show=False, id="refresh", tooltip="Refresh every source now"),
    *[
        Binding(str(n), f"pane({n - 1})", title, show=False, id=f"pane_{n}", tooltip=f"Show the {title} pane")
        for n, (_pane, title, _columns) in enumerate(PANES, start=1)
    ],
    Binding(
        "0",
        "pane_all",
        "All",
        show=False,
        id="pane_all",
        tooltip="Every environment at once: processes, containers and errors in one table",
    ),
    Binding("tab", "next_pane", "Next pane", show=False, id="next_pane", tooltip="Show the next pane"),
    Binding("down,j", "cursor('down')", "Down", show=False, id="cursor_down", tooltip="Next row"),
    Binding("up,k", "cursor('up')", "Up", show=False, id="cursor_up", tooltip="Previous row"),
    Binding(
        "pagedown,ctrl+d",
        "cursor('page_down')",
        "Page down",
        show=False,
        id="cursor_page_down",
        tooltip="A page of rows down",
    ),
    Binding(
        "pageup,ctrl+u",
        "cursor('page_up')",
        "Page up",
        show=False,
        id="cursor_page_up",
        tooltip="A page of rows up",
    ),
    Binding("home,g", "cursor('top')", "First row", show=False, id="cursor_top", tooltip="First row"),
    Binding("end,G", "cursor('bottom')", "Last row", show=False, id="cursor_bottom", tooltip="Last row"),
    Binding(
        "escape",
        "clear_filter",
        "Clear filter",
        show=False,
        id="clear_filter",
        tooltip="Clear the visible pane's filter",
    ),
    Binding(
        "n",
        "toggle_new_issues",
        "New in release",
        show=False,
        id="errors_new_in_release",
        tooltip="Errors: only issues first seen in the running release (Sentry firstRelease), or all open ones",
    ),
    Binding(
        "y",
        "copy_name",
        "Copy name",
        show=False,
        id="copy_name",
        tooltip="Copy the selected row's name (process, container, issue, release) to the clipboard",
    ),
    Binding(
        "colon",
        "command_line",
        "Command",
        show=False,
        id="command_line",
        tooltip="Command line, as in k9s: :ENV, :PANE, :deploy, :logs NAME, :restart NAME (tab completes)",
    ),
    Binding(
        "a",
        "show_runs",
        "Running",
        show=False,
        id="show_runs",
        tooltip="Reopen a running action's screen (its output, per-host status, cancel)",
    ),
    Binding("question_mark", "help", "Help", id="help", tooltip="Every key binding"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit opsconsole (asks first while an action runs)"),
]


def main_bindings() -> list[BindingType]:
    """Action keys from the registry (one generic dispatch), then the screen's own: every key of the
    console screen (help and `[keymap]` read these). The screen binds the action keys just after
    its first frame (`MainScreen.add_action_bindings`)."""
    return [
        Binding(k.keys, f"act('{k.id}')", k.label, id=k.id, tooltip=k.tooltip, show=k.footer)
        for k in action_keys()
    ] + SCREEN_BINDINGS


class Panes(Vertical):
    """The five panes, mounted just after the first frame (which shows the environments at once)."""

    DEFAULT_CSS = "Panes { height: 1fr; }"

    def compose(self) -> ComposeResult:
        with TabbedContent(id="panes"):
            for index, (pane_id, title, columns) in enumerate(PANES):
                with TabPane(f"{index + 1} {title}", id=f"tab-{pane_id}"):
                    yield Pane(pane_id, columns)
            with TabPane("0 All", id="tab-all"):
                yield Pane("all", ALL_COLUMNS)


class MainScreen(MainKeys, Screen[None]):
    # its rules are in app.tcss: a screen CSS_PATH of its own re-parses the whole stylesheet on load
    # the action keys (D, R, r, s...) join these after the first frame: see add_action_bindings
    BINDINGS: ClassVar[list[BindingType]] = SCREEN_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self._hidden_stale: set[str] = set()  # panes whose data changed while another was shown
        self._actions_bound = False
        self._panes_mounted = False

    def after_first_frame(self) -> None:
        """Called by the app once the first frame is on screen: the action keys, the panes and the
        footer (mounted now, it is built once, with every key, instead of twice)."""
        self.add_action_bindings()
        if not self._panes_mounted:
            self._panes_mounted = True
            self.query_one("#panes-holder").mount(Panes())
            self.mount(Footer(compact=True))

    def add_action_bindings(self) -> None:
        """The registry's action keys, bound once. Importing the registry loads every action module
        (~50 ms), so the first frame is drawn without it; a key typed before that frame binds them
        first (the app's on_event)."""
        if self._actions_bound:
            return
        self._actions_bound = True
        own = BindingsMap(SCREEN_BINDINGS).key_to_bindings
        # the order Textual would have merged them in: inherited keys, then this screen's
        merged = BindingsMap()
        for key, bindings in self._bindings.key_to_bindings.items():
            if key not in own:
                merged.key_to_bindings[key] = list(bindings)
        for key, bindings in BindingsMap(main_bindings()).key_to_bindings.items():
            merged.key_to_bindings[key] = list(bindings)
        self._bindings = merged
        self.refresh_bindings()

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="verify")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Environments", classes="sidebar-title")
                yield EnvList(id="envs")
            yield Vertical(id="panes-holder")

    @property
    def ops(self) -> Console:
        return cast("Console", self.app)

    @property
    def env(self) -> Environment | None:
        name = self.ops.current_env
        return self.ops.profile.env(name) if name else None

    def on_mount(self) -> None:
        self._fill_envs()
        self.render_header()
        if self.env is None:
            self.query_one("#header", Static).update(
                Text(
                    "This profile has no environments: add [environments.NAME] with hosts = [...]",
                    style="bold",
                )
            )
        self.set_interval(max(self.ops.profile.defaults.refresh, 1.0) * 3, self._check_stale)

    def _fill_envs(self) -> None:
        envs = self.query_one("#envs", EnvList)
        names = list(self.ops.profile.environments)
        labels = [self._env_label(env) for env in self.ops.profile.environments.values()]
        current = self.ops.current_env
        envs.set_envs(names, labels, names.index(current) if current in names else envs.highlighted)

    def _env_label(self, env: Environment) -> Text:
        label = env_label(env, self.ops.results.get(env.name, {}), self.ops.read_only)
        results = [(k, r) for k, r in self.ops.results.get(env.name, {}).items() if k[0] == "deploys"]
        own = {state.action.ctx.run_id for state in self.ops.runs.values()}
        for info in foreign_runs(results, own)[:1]:
            label.append(f"\n  ⟳ {info.what} by {info.who}", style="bold yellow")
        return label

    def on_resize(self, event: events.Resize) -> None:
        # the environment list hides below 110 columns (`e` picks an environment there); toggling one
        # widget is much cheaper than a screen-wide breakpoint class that restyles every node
        self.query_one("#sidebar").display = event.size.width >= 110
        narrow = event.size.width < 110
        if narrow != getattr(self, "_narrow", None):
            self._narrow = narrow
            self.render_header()

    def on_pane_ready(self, message: Pane.Ready) -> None:
        self.render_pane(message.pane_id)

    def on_env_list_selected(self, event: EnvList.Selected) -> None:
        self.select_env(event.name)

    def select_env(self, name: str) -> None:
        self.ops.current_env = name
        self._fill_envs()
        self.render_all()
        if self.ops.live:
            self.ops.refresh_env(name)

    # ---------------------------------------------------------------- rendering

    def on_source_changed(self, message: SourceChanged) -> None:
        """Results arrive in bursts (every source of every environment): redraw at most every 0.2 s."""
        env, key = message.env, message.key
        if not self.is_mounted or self.query_one_optional("#envs") is None:
            return  # not composed yet, or closing: on_mount renders everything there is
        dirty = self.__dict__.setdefault("_dirty", {"envs": set(), "panes": set()})
        dirty["envs"].add(env)
        if env == self.ops.current_env:
            dirty["panes"].update(
                p for p, source in PANE_SOURCES.items() if EXTRA_SOURCES.get(key[0], key[0]) == source
            )
        dirty["panes"].add("all")  # every environment's rows (rendered only while shown)
        if not self.__dict__.get("_redraw_pending"):
            self._redraw_pending = True
            self.set_timer(0.2, self._redraw_dirty)

    def _redraw_dirty(self) -> None:
        self._redraw_pending = False
        dirty = self.__dict__.get("_dirty", {"envs": set(), "panes": set()})
        envs, panes = set(dirty["envs"]), set(dirty["panes"])
        dirty["envs"].clear()
        dirty["panes"].clear()
        for env in envs:
            self._update_env_label(env)
        for pane_id in panes:
            self.render_pane(pane_id)
        if self.ops.current_env in envs:
            self.render_header()

    def _update_env_label(self, name: str) -> None:
        names = list(self.ops.profile.environments)
        if name in names:  # an unchanged label is not redrawn
            self.query_one("#envs", EnvList).set_label(
                names.index(name), self._env_label(self.ops.profile.env(name))
            )

    def render_all(self) -> None:
        self.render_header()
        for pane_id, _title, _columns in PANES:
            self.render_pane(pane_id)
        self.render_pane("all")

    def _check_stale(self) -> None:
        self.render_all()

    def _results(self, source: str) -> list[tuple[tuple[str, ...], SourceResult[Any]]]:
        env = self.ops.current_env
        if env is None:
            return []
        wanted = METRIC_SOURCES if source == "metrics" else (source,)
        return [(k, v) for k, v in self.ops.results.get(env, {}).items() if k[0] in wanted]

    def on_verify_changed(self, message: VerifyChanged) -> None:
        if message.env == self.ops.current_env and self.is_mounted:
            self.render_verify()

    def render_verify(self) -> None:
        """The verification banner of the current environment's latest deploy (hidden without one)."""
        banner = self.query_one_optional("#verify", Static)
        if banner is None:
            return
        status = self.ops.verifications.get(self.ops.current_env or "")
        if banner.display != (status is not None):
            banner.display = status is not None
        if status is None:
            return
        text = Text(clean(status.line()), no_wrap=True, overflow="ellipsis")
        if status.verdict == "fail":
            text.append("  R: roll back ", style="bold reverse")
        banner.set_classes(f"verify-{status.verdict or 'running'}")
        if getattr(banner, "_shown_text", None) != text:  # an update lays the screen out again
            banner._shown_text = text
            banner.update(text)

    def render_header(self) -> None:
        self.render_verify()
        env = self.env
        text = Text()
        text.append(" opsconsole ", style="bold reverse")
        text.append(f" {clean(self.ops.profile.project_name)} ", style="bold")
        if env is None:
            self.query_one("#header", Static).update(text)
            return
        if not getattr(self, "_narrow", False):
            text.append(" ▸ ")
        text.append(f" {env.name} ", style=f"bold reverse {env.color}" if env.color else "bold reverse")
        others = self._others_summary(env.name)
        if others:
            text.append(others[0], style=others[1])
        if self.ops.read_only or env.read_only:
            text.append("  READ-ONLY ", style="bold black on cyan")
        if env.protected:
            text.append("  PROTECTED ", style="bold black on yellow")
        running = len(self._running_actions())
        if running:
            text.append(f"  {running} running (a) ", style="bold black on yellow")
        defaults = self.ops.profile.defaults
        stale = stale_after(defaults.refresh, defaults.timeout)
        now = self.ops.clock()
        narrow = getattr(self, "_narrow", False)
        short = {"supervisor": "sup", "docker": "dock", "deploys": "dep", "sentry": "err", "health": "http"}
        gap = " " if narrow else "  "
        for source in ("supervisor", "docker", "deploys", "sentry", "health"):
            if not self._configured(env, source):
                continue
            label = short[source] if narrow else source
            results = self._results(source)
            expected = len(expected_keys(env, source))
            errors = sum(1 for _, r in results if r.error)
            # never green before everyone answered: pending is `…`, partial is "1/2"
            if errors:
                text.append(f"{gap}{label} ✗{errors}", style="red")
            elif not results:
                text.append(f"{gap}{label} …", style="dim")
            elif len(results) < expected:
                text.append(f"{gap}{label} {len(results)}/{expected}…", style="yellow")
            elif now - min(r.fetched_at for _, r in results) > stale:
                # freshness as a state, not a clock: nothing on screen changes while nothing changes
                oldest = min(r.fetched_at for _, r in results)
                text.append(f"{gap}{label} {coarse_age(now - oldest)} old", style="yellow")
            else:
                text.append(f"{gap}{label} ✓", style="green")
        self._set_header(text)

    def _others_summary(self, current: str) -> tuple[str, str] | None:
        """`  2 others: 1 ✗` when the environment list is hidden (below 110 columns)."""
        if not getattr(self, "_narrow", False):
            return None
        return others_summary(self.ops.results, [n for n in self.ops.profile.environments if n != current])

    def _set_header(self, text: Text) -> None:
        if getattr(self, "_header_text", None) != text:
            self._header_text = text
            self.query_one("#header", Static).update(text)

    def render_pane(self, pane_id: str) -> None:
        pane = self.query_one_optional(f"#{pane_id}", Pane)
        if pane is None or not pane.is_mounted:
            return  # not built yet (see compose): it renders itself when mounted
        hidden = self.shown_pane_id() != pane_id
        # a hidden pane is rendered while it has no rows yet (so the first switch to it only shows
        # it), then not again until its tab is opened; All (every environment's rows) never hidden:
        # at 200 hosts it would hold 4,000 rows (~43 KiB an environment) that nobody sees
        if hidden and (pane.rows or pane_id == "all"):
            self._hidden_stale.add(pane_id)
            return
        self._hidden_stale.discard(pane_id)
        env = self.env
        if pane_id == "all":
            rows = rows_all(self.ops.results, self.ops.stats)
            envs = len(self.ops.profile.environments)
            pane.set_status(
                f"{len(rows)} rows across {envs} environment(s): processes, containers, open errors"
                + self._filter_note("all", rows)
            )
            pane.set_rows(rows)
            return
        if env is None:
            pane.set_status("no environment")
            pane.set_rows([])
            return
        source = PANE_SOURCES[pane_id]
        configured = self._configured(env, source)
        if not configured:
            pane.set_status(NOT_CONFIGURED_HELP[source].replace("ENV", env.name))
            pane.set_rows([])
            return
        results = self._results(source)
        if not results:
            pane.set_status("loading…")
            pane.set_rows([])
            return
        errors = [r.error for _, r in results if r.error]
        rows = self._rows(pane_id, results)
        newest = max(r.fetched_at for _, r in results)
        expected = len(expected_keys(env, source))
        answered = len(results) - len(errors)
        noun = pane_id if pane_id != "errors" else "issues"
        if errors and not rows:
            status = Text("")  # never "0 issues · live" above its own error
        elif answered < expected:
            status = Text(f"{len(rows)} {noun} · {answered} of {expected} hosts")
            if len(results) < expected:
                status.append(f" · waiting for {expected - len(results)}…", style="dim")
        else:
            status = Text(f"{len(rows)} {noun} · live")
        release = self.ops.backends.issues_release.get(env.name) if pane_id == "errors" else None
        if release:
            status.append(f" · new in {clean(release, 80)} only (n: all open issues)", style="cyan")
        filtered = self._filter_note(pane_id, rows)
        if filtered:
            status.append(filtered, style="cyan")
        defaults = self.ops.profile.defaults
        if self.ops.clock() - newest > stale_after(defaults.refresh, defaults.timeout):
            status.append(f" · STALE ({coarse_age(self.ops.clock() - newest)} old)", style="yellow")
        for _, result in results:
            if result.data is not None and hasattr(result.data, "notes"):
                for note in cast("IssuePage", result.data).notes:
                    status.append("\n" + clean(note), style="yellow")
        for error in errors:
            status.append(("\n" if status.plain else "") + "✗ " + clean(error or ""), style="bold red")
        if not rows and not errors:
            status.append(" · nothing here")
        pane.set_status(status, error=bool(errors) and not rows)
        pane.set_rows(rows)

    def _filter_note(self, pane_id: str, rows: list[Row]) -> str:
        """`· 1 of 4 shown, filter "work"` while a filter is on (escape clears it)."""
        pane = self.query_one_optional(f"#{pane_id}", Pane)
        if pane is None or not pane.filter_text:
            return ""
        return f' · {pane.shown_count} of {len(rows)} shown, filter "{clean(pane.filter_text, 40)}" (escape clears)'

    def _rows(self, pane_id: str, results: Results) -> list[Row]:
        if pane_id == "containers":
            return rows_containers(results, self.ops.stats.get(self.ops.current_env or "", {}))
        if pane_id == "deploys":
            own = {state.action.ctx.run_id for state in self.ops.runs.values()}
            return rows_ci(self._results("ci")) + rows_deploys(results, own, self.ops.clock())
        builder = {
            "processes": rows_processes,
            "errors": rows_errors,
            "health": rows_health,
            "metrics": rows_metrics,
        }[pane_id]
        return builder(results)

    def _configured(self, env: Environment, source: str) -> bool:
        return configured(env, source)

    # ---------------------------------------------------------------- selection helpers

    def focused_pane(self) -> Pane:
        return self.query_one(f"#{self.shown_pane_id()}", Pane)

    def selection(self) -> tuple[str, str, Any] | None:
        data = self.focused_pane().selected()
        return None if data is None else cast("tuple[str, str, Any]", tuple(data[:3]))

    def selection_env(self) -> Environment | None:
        """The environment the selected row belongs to (the `0` view mixes them)."""
        data = self.focused_pane().selected()
        if isinstance(data, tuple) and len(data) == 4:
            return self.ops.profile.env(str(data[3]))
        return self.env

    def _need_env(self) -> Environment | None:
        env = self.env
        if env is None:
            self.notify("no environment selected", severity="warning")
        return env
