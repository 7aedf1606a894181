"""The main screen: environments, a header with freshness, and a tab per pane spec for the selected
environment, then All (every environment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from opsconsole.human import counted
from opsconsole.messages import SourceChanged, VerifyChanged
from opsconsole.panes import BUILTIN, PaneData, pane_specs
from opsconsole.panes import all as all_pane
from opsconsole.panes.env_label import env_label, others_summary
from opsconsole.panes.header import header_text
from opsconsole.profiles import Environment
from opsconsole.sanitize import clean
from opsconsole.screens.bindings import SCREEN_BINDINGS, main_bindings
from opsconsole.screens.main_keys import MainKeys
from opsconsole.sources import catalog
from opsconsole.sources.catalog import SourceKey
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.schedule import coarse_age, stale_after
from opsconsole.widgets.env_list import EnvList
from opsconsole.widgets.pane import Pane, Row

SIDEBAR_WIDTH = 28  # the environment list's columns, as app.tcss sets `#sidebar { width: 28 }`

if TYPE_CHECKING:
    from opsconsole.backends.sentry import IssuePage
    from opsconsole.ui import Console

Results = list[tuple[SourceKey, SourceResult[Any]]]


class MainScreen(MainKeys, Screen[None]):
    # its rules are in app.tcss: a screen CSS_PATH of its own re-parses the whole stylesheet on load
    # the action keys (D, R, r, s...) join these after the first frame: see add_action_bindings
    BINDINGS: ClassVar[list[BindingType]] = SCREEN_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self._hidden_stale: set[str] = set()  # panes whose data changed while another was shown
        self._actions_bound = False
        self._panes_mounted = False
        # the panes, fixed for the screen's life: sources registered later show on a new screen
        self._specs = {spec.id: spec for spec in pane_specs(self.ops.profile)}
        self._narrow: bool | None = None  # below 110 columns (None until the first resize)
        self._width = 0  # the screen's columns, as of the last resize
        self._header_text: Text | None = None  # what the header shows (an update lays out again)
        self._verify_text: Text | None = None  # what the verification banner shows
        self._dirty_envs: set[str] = set()  # environments whose results changed since the last redraw
        self._dirty_panes: set[str] = set()
        self._redraw_pending = False

    def after_first_frame(self) -> None:
        """Called by the app once the first frame is on screen: the action keys, the panes and the
        footer (mounted now, it is built once, with every key, instead of twice)."""
        self.add_action_bindings()
        if not self._panes_mounted:
            self._panes_mounted = True
            from opsconsole.screens.main_tabs import Panes

            self.query_one("#panes-holder").mount(Panes(list(self._specs.values())))
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
        for key, bindings in BindingsMap(
            main_bindings(self.ops.read_only) + self._extra_pane_bindings()
        ).key_to_bindings.items():
            merged.key_to_bindings[key] = list(bindings)
        self._bindings = merged
        self.refresh_bindings()

    def _extra_pane_bindings(self) -> list[BindingType]:
        """Number keys for the panes after the built-in ones (7, 8, ...: those have theirs)."""
        specs = list(self._specs.values())
        return [
            Binding(
                str(n),
                f"pane({n - 1})",
                spec.title,
                show=False,
                id=f"pane_{n}",
                tooltip=f"Show the {spec.title} pane",
            )
            for n, spec in enumerate(specs, start=1)
            if spec not in BUILTIN and n <= 9
        ]

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="verify")  # one line (app.tcss): cut at the right edge with "…"
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
        return env_label(env, self.ops.results.get(env.name, {}), self.ops.read_only, self._own_runs())

    def on_resize(self, event: events.Resize) -> None:
        # the environment list hides below 110 columns (`e` picks an environment there); toggling one
        # widget is much cheaper than a screen-wide breakpoint class that restyles every node
        self.query_one("#sidebar").display = event.size.width >= 110
        narrow = event.size.width < 110
        self._width = event.size.width
        if narrow != self._narrow:
            self._narrow = narrow
            self.render_header()
        self.label_tabs()

    def _tab_titles(self) -> list[tuple[str, str]]:
        titled = [(spec.id, f"{n} {spec.title}") for n, spec in enumerate(self._specs.values(), start=1)]
        return [*titled, (all_pane.ID, f"0 {all_pane.TITLE}")]

    def _short_tabs(self) -> bool:
        """Below 110 columns, or when every title does not fit beside the environment list (a
        profile with the optional panes has ten tabs)."""
        if self._narrow:
            return True
        room = self._width - SIDEBAR_WIDTH
        return sum(len(title) + 2 for _id, title in self._tab_titles()) > room

    def label_tabs(self) -> None:
        """When the titles do not all fit (below 110 columns, or many panes) only the shown tab has
        its title and the others their number key, so every pane's tab stays in sight; else every
        tab has its title."""
        tabs = self.pane_tabs()
        if tabs is None or not tabs.active:
            return
        short = self._short_tabs()
        for pane_id, title in self._tab_titles():
            tab_id = f"tab-{pane_id}"
            label = title if not short or tab_id == tabs.active else title.split(" ", 1)[0]
            tab = tabs.get_tab(tab_id)
            if tab.label.plain != label:
                tab.label = Content(label)

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
        self._dirty_envs.add(env)
        src = catalog.source(key[0])
        if env == self.ops.current_env and src is not None and src.pane in self._specs:
            self._dirty_panes.add(src.pane)
        if env == self.ops.current_env:  # panes whose rows also read this source (Nginx: Supervisor)
            self._dirty_panes.update(pane_id for pane_id, spec in self._specs.items() if key[0] in spec.also)
        self._dirty_panes.add(all_pane.ID)  # every environment's rows (rendered only while shown)
        if not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(0.2, self._redraw_dirty)

    def _redraw_dirty(self) -> None:
        self._redraw_pending = False
        envs, panes = set(self._dirty_envs), set(self._dirty_panes)
        self._dirty_envs.clear()
        self._dirty_panes.clear()
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
        for pane_id in self._specs:
            self.render_pane(pane_id)
        self.render_pane(all_pane.ID)

    def _check_stale(self) -> None:
        self.render_all()

    def _results(self, *names: str) -> Results:
        """The current environment's results of the sources `names`, in the order they are stored."""
        env = self.ops.current_env
        if env is None:
            return []
        return [(k, v) for k, v in self.ops.results.get(env, {}).items() if k[0] in names]

    def _own_runs(self) -> frozenset[str]:
        return frozenset(state.action.ctx.run_id for state in self.ops.runs.values())

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
        text = Text(clean(status.line()))
        if status.verdict == "fail":  # the key first: a long reason is what the edge cuts
            text = Text.assemble((" R: roll back ", "bold reverse"), " ", text)
        banner.set_classes(f"verify-{status.verdict or 'running'}")
        if self._verify_text != text:  # an update lays the screen out again
            self._verify_text = text
            banner.update(text)

    def render_header(self) -> None:
        self.render_verify()
        env = self.env
        narrow = bool(self._narrow)
        text = header_text(
            self.ops.profile.project_name,
            env,
            self.ops.results.get(env.name, {}) if env is not None else {},
            list(self._specs.values()),
            self.ops.profile.defaults,
            self.ops.clock(),
            narrow=narrow,
            read_only=self.ops.read_only,
            running=len(self._running_actions()),
            others=self._others_summary(env.name) if env is not None and narrow else None,
        )
        if env is None:
            self.query_one("#header", Static).update(text)
            return
        if self._header_text != text:
            self._header_text = text
            self.query_one("#header", Static).update(text)

    def _others_summary(self, current: str) -> tuple[str, str] | None:
        """`  2 others: 1 ✗` when the environment list is hidden (below 110 columns)."""
        return others_summary(self.ops.results, [n for n in self.ops.profile.environments if n != current])

    def render_pane(self, pane_id: str) -> None:
        pane = self.query_one_optional(f"#{pane_id}", Pane)
        if pane is None or not pane.is_mounted:
            return  # not built yet (see compose): it renders itself when mounted
        hidden = self.shown_pane_id() != pane_id
        # a hidden pane is rendered while it has no rows yet (so the first switch to it only shows
        # it), then not again until its tab is opened; All (every environment's rows) never hidden:
        # at 200 hosts it would hold 4,000 rows (~43 KiB an environment) that nobody sees
        if hidden and (pane.rows or pane_id == all_pane.ID):
            self._hidden_stale.add(pane_id)
            return
        self._hidden_stale.discard(pane_id)
        env = self.env
        if pane_id == all_pane.ID:
            rows = all_pane.rows_all(self.ops.results, self.ops.stats)
            pane.set_status(
                all_pane.status(len(rows), len(self.ops.profile.environments))
                + self._filter_note(pane_id, rows)
            )
            pane.set_rows(rows)
            return
        if env is None:
            pane.set_status("no environment")
            pane.set_rows([])
            return
        spec = self._specs[pane_id]
        if not catalog.pane_configured(env, pane_id):
            pane.set_status(spec.help(env.name))
            pane.set_rows([])
            return
        # the status line counts, waits for and reports the errors of the pane's counted sources;
        # the rows come from all of its sources
        results = self._results(*spec.counted_names)
        if not results:
            pane.set_status("loading…")
            pane.set_rows([])
            return
        errors = [r.error for _, r in results if r.error]
        data = PaneData(
            self._results(*spec.names, *spec.also),
            self.ops.stats.get(env.name, {}),
            self._own_runs(),
            self.ops.clock(),
            self.ops.state.issues_release.get(env.name),
        )
        rows = spec.rows(data)
        newest = max(r.fetched_at for _, r in results)
        expected = len(catalog.expected_keys(env, pane_id))
        answered = len(results) - len(errors)
        noun = spec.status_noun
        if errors and not rows:
            status = Text("")  # never "0 issues · live" above its own error
        elif answered < expected:
            status = Text(f"{counted(spec.count(rows), noun)} · {answered} of {expected} hosts")
            if len(results) < expected:
                status.append(f" · waiting for {expected - len(results)}…", style="dim")
        else:
            status = Text(f"{counted(spec.count(rows), noun)} · live")
        note = spec.note(data) if spec.note is not None else ""
        if note:
            status.append(note, style="cyan")
        if spec.selected_note is not None:
            picked = spec.selected_note(data, pane.selected())
            if picked:
                status.append(picked, style="bold yellow")
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

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """A pane whose status speaks of the selected row (the Timeline) is drawn again."""
        pane_id = self.shown_pane_id()
        spec = self._specs.get(pane_id)
        if spec is not None and spec.selected_note is not None:
            self.render_pane(pane_id)

    def _filter_note(self, pane_id: str, rows: list[Row]) -> str:
        """`· 1 of 4 shown, filter "work"` while a filter is on (escape clears it)."""
        pane = self.query_one_optional(f"#{pane_id}", Pane)
        if pane is None or not pane.filter_text:
            return ""
        return f' · {pane.shown_count} of {len(rows)} shown, filter "{clean(pane.filter_text, 40)}" (escape clears)'

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
