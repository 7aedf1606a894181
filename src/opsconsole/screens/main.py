"""The main screen: environments, a header with freshness, and five panes for the selected environment."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from opsconsole.keys import KEYS
from opsconsole.profiles import Environment
from opsconsole.sanitize import clean
from opsconsole.snapshot import SourceResult, has_sources
from opsconsole.summary import summarize
from opsconsole.widgets.pane import Pane, Row, age, cell, coarse_age

if TYPE_CHECKING:
    from opsconsole.app import OpsConsoleApp
    from opsconsole.backends.docker_engine import ContainerInfo
    from opsconsole.backends.health import HealthResult
    from opsconsole.backends.releases import DeployState
    from opsconsole.backends.sentry import IssuePage, SentryIssue
    from opsconsole.backends.supervisor import ProcessInfo

PANES = (
    ("processes", "Processes", ("host", "process", "state", "pid", "uptime", "description")),
    ("containers", "Containers", ("host", "name", "state", "health", "image", "CPU%", "memory")),
    ("deploys", "Deploys", ("host", "release", "event", "ref", "who", "outcome", "when")),
    ("errors", "Errors", ("issue", "level", "title", "count", "users", "last seen")),
    ("health", "Health", ("url", "status", "latency", "error")),
)
PANE_SOURCES = {
    "processes": "supervisor",
    "containers": "docker",
    "deploys": "deploys",
    "errors": "sentry",
    "health": "health",
}
STATE_STYLES = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "STOPPED": "dim",
    "STOPPING": "yellow",
    "BACKOFF": "bold red",
    "FATAL": "bold red",
    "EXITED": "red",
    "UNKNOWN": "red",
    "running": "green",
    "exited": "red",
    "restarting": "bold red",
    "dead": "bold red",
    "healthy": "green",
    "unhealthy": "bold red",
    "starting": "yellow",
}
NOT_CONFIGURED_HELP = {
    "supervisor": 'Supervisor is not configured for this environment: add [environments.ENV.supervisor] url = "unix:///var/run/supervisor.sock"',
    "docker": 'Docker is not configured for this environment: add [environments.ENV.docker] url = "unix:///var/run/docker.sock"',
    "deploys": "Deploys are not configured: add [environments.ENV.deploy] with path, repo, build and restart",
    "sentry": (
        "Sentry is not connected: add [environments.ENV.sentry] with url, organization, project and "
        'token = { secret = "sentry-token" }, then `opsconsole secret set sentry-token` '
        "(or set OPSCONSOLE_SECRET_SENTRY_TOKEN)"
    ),
    "health": 'No health checks: add health = ["https://.../healthz"] to the environment',
}


def fmt_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def main_bindings() -> list[BindingType]:
    return [
        Binding(s.keys, s.id, s.description, show=s.show, tooltip=s.tooltip, id=s.id)
        for s in KEYS
        if s.id != "palette"
    ]


class Panes(Vertical):
    """The five panes, mounted just after the first frame (which shows the environments at once)."""

    DEFAULT_CSS = "Panes { height: 1fr; }"

    def compose(self) -> ComposeResult:
        with TabbedContent(id="panes"):
            for index, (pane_id, title, columns) in enumerate(PANES):
                with TabPane(f"{index + 1} {title}", id=f"tab-{pane_id}"):
                    yield Pane(pane_id, columns)


class EnvList(OptionList, can_focus=False):
    """Environments: click one, or press `e` (no focus, so arrow keys always move the pane's rows)."""


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    BINDINGS: ClassVar[list[BindingType]] = main_bindings()

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Environments", classes="sidebar-title")
                yield EnvList(id="envs")
            yield Vertical(id="panes-holder")
        yield Footer()

    @property
    def ops(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    @property
    def env(self) -> Environment | None:
        name = self.ops.current_env
        return self.ops.profile.env(name) if name else None

    def on_mount(self) -> None:
        self._fill_envs()
        self.render_header()
        self.call_after_refresh(self._mount_panes)
        if self.env is None:
            self.query_one("#header", Static).update(
                Text(
                    "This profile has no environments: add [environments.NAME] with hosts = [...]",
                    style="bold",
                )
            )
        self.set_interval(max(self.ops.profile.defaults.refresh, 1.0) * 3, self._check_stale)

    def _fill_envs(self) -> None:
        envs = self.query_one("#envs", OptionList)
        highlighted = envs.highlighted
        envs.clear_options()
        for name, env in self.ops.profile.environments.items():
            envs.add_option(Option(self._env_label(env), id=name))
        names = list(self.ops.profile.environments)
        if self.ops.current_env in names:
            envs.highlighted = names.index(self.ops.current_env)
        elif highlighted is not None:
            envs.highlighted = highlighted

    def _env_label(self, env: Environment) -> Text:
        summary = summarize(self.ops.results.get(env.name, {}))
        color = env.color or "white"
        label = Text("● ", style=color)
        label.append(env.name, style="bold")
        if env.protected:
            label.append(" [protected]", style="yellow")
        if env.read_only or self.ops.read_only:
            label.append(" [ro]", style="cyan")
        if not has_sources(env):
            label.append("\n  no sources configured", style="dim")
        elif summary.loaded:
            badges = summary.badges()
            label.append(
                "\n  " + (", ".join(badges) if badges else "all good"), style="red" if badges else "green"
            )
        else:
            label.append("\n  loading…", style="dim")
        return label

    def _mount_panes(self) -> None:
        self.query_one("#panes-holder").mount(Panes())

    def on_resize(self, event: events.Resize) -> None:
        # the environment list hides below 110 columns (`e` picks an environment there); toggling one
        # widget is much cheaper than a screen-wide breakpoint class that restyles every node
        self.query_one("#sidebar").display = event.size.width >= 110

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.select_env(event.option.id)

    def select_env(self, name: str) -> None:
        self.ops.current_env = name
        self._fill_envs()
        self.render_all()
        if self.ops.live:
            self.ops.refresh_env(name)

    # ---------------------------------------------------------------- rendering

    def source_updated(self, env: str, key: tuple[str, ...]) -> None:
        """Results arrive in bursts (every source of every environment): redraw at most every 0.2 s."""
        if not self.is_mounted or self.query_one_optional("#envs") is None:
            return  # not composed yet, or closing: on_mount renders everything there is
        dirty = self.__dict__.setdefault("_dirty", {"envs": set(), "panes": set()})
        dirty["envs"].add(env)
        if env == self.ops.current_env:
            dirty["panes"].update(p for p, source in PANE_SOURCES.items() if key[0] == source)
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
        envs = self.query_one("#envs", OptionList)
        names = list(self.ops.profile.environments)
        if name not in names:
            return
        label = self._env_label(self.ops.profile.env(name))
        shown: dict[str, Text] = self.__dict__.setdefault("_labels", {})
        if shown.get(name) == label:
            return  # unchanged: the list is not redrawn
        shown[name] = label
        envs.replace_option_prompt_at_index(names.index(name), label)

    def render_all(self) -> None:
        self.render_header()
        for pane_id, _title, _columns in PANES:
            self.render_pane(pane_id)

    def _check_stale(self) -> None:
        self.render_header()
        for pane_id, _title, _columns in PANES:
            self.render_pane(pane_id)

    def _results(self, source: str) -> list[tuple[tuple[str, ...], SourceResult[Any]]]:
        env = self.ops.current_env
        if env is None:
            return []
        return [(k, v) for k, v in self.ops.results.get(env, {}).items() if k[0] == source]

    def render_header(self) -> None:
        env = self.env
        text = Text()
        text.append(" opsconsole ", style="bold reverse")
        text.append(f" {clean(self.ops.profile.project_name)} ", style="bold")
        if env is None:
            self.query_one("#header", Static).update(text)
            return
        text.append(" ▸ ")
        text.append(f" {env.name} ", style=f"bold reverse {env.color}" if env.color else "bold reverse")
        if self.ops.read_only or env.read_only:
            text.append("  READ-ONLY ", style="bold black on cyan")
        if env.protected:
            text.append("  PROTECTED ", style="bold black on yellow")
        refresh = self.ops.profile.defaults.refresh
        now = self.ops.clock()
        for source in ("supervisor", "docker", "deploys", "sentry", "health"):
            results = self._results(source)
            if not results:
                continue
            errors = sum(1 for _, r in results if r.error)
            oldest = min(r.fetched_at for _, r in results)
            stale = now - oldest > refresh * 3
            # freshness as a state, not a clock: nothing on screen changes while nothing changes
            if errors:
                text.append(f"  {source} ✗{errors}", style="red")
            elif stale:
                text.append(f"  {source} {age(now - oldest)} old", style="yellow")
            else:
                text.append(f"  {source} ✓", style="green")
        self._set_header(text)

    def _set_header(self, text: Text) -> None:
        if getattr(self, "_header_text", None) != text:
            self._header_text = text
            self.query_one("#header", Static).update(text)

    def render_pane(self, pane_id: str) -> None:
        pane = self.query_one_optional(f"#{pane_id}", Pane)
        if pane is None or not pane.is_mounted:
            return  # not built yet (see compose): it renders itself when mounted
        env = self.env
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
        rows: list[Row] = getattr(self, f"_rows_{pane_id}")(results)
        newest = max(r.fetched_at for _, r in results)
        status = Text(f"{len(rows)} {pane_id if pane_id != 'errors' else 'issues'} · live")
        if self.ops.clock() - newest > self.ops.profile.defaults.refresh * 3:
            status.append(f" · STALE ({age(self.ops.clock() - newest)} old)", style="yellow")
        for _, result in results:
            if result.data is not None and hasattr(result.data, "notes"):
                for note in cast("IssuePage", result.data).notes:
                    status.append("\n" + clean(note), style="yellow")
        for error in errors:
            status.append("\n✗ " + clean(error or ""), style="bold red")
        if not rows and not errors:
            status.append(" · nothing here")
        pane.set_status(status, error=bool(errors) and not rows)
        pane.set_rows(rows)

    def _configured(self, env: Environment, source: str) -> bool:
        return {
            "supervisor": env.supervisor is not None,
            "docker": env.docker is not None,
            "deploys": env.deploy is not None,
            "sentry": env.sentry is not None,
            "health": bool(env.health),
        }[source]

    def _rows_processes(self, results: list[tuple[tuple[str, ...], SourceResult[Any]]]) -> list[Row]:
        rows = []
        for key, result in results:
            for proc in cast("list[ProcessInfo]", result.data or []):
                uptime = coarse_age(proc.uptime) if proc.uptime is not None else ""
                # supervisord's description repeats pid and uptime ("pid 12, uptime 0:05:01"), which
                # would change every refresh: show it only when it says something else
                detail = proc.spawnerr or ("" if proc.description.startswith("pid ") else proc.description)
                rows.append(
                    Row(
                        f"{key[1]}|{proc.full_name}",
                        [
                            cell(key[1]),
                            cell(proc.full_name),
                            cell(proc.state, STATE_STYLES.get(proc.state, "")),
                            cell(proc.pid or ""),
                            cell(uptime),
                            cell(detail, limit=80),
                        ],
                        ("process", key[1], proc),
                    )
                )
        return rows

    def _rows_containers(self, results: list[tuple[tuple[str, ...], SourceResult[Any]]]) -> list[Row]:
        rows = []
        env = self.ops.current_env or ""
        for key, result in results:
            stats = self.ops.stats.get(env, {}).get(key[1], {})
            for container in cast("list[ContainerInfo]", result.data or []):
                sample = stats.get(container.name)
                measured = None if isinstance(sample, str) else sample  # a str says why there is none
                cpu = (
                    f"{measured.cpu_percent:.1f}"
                    if measured is not None
                    else ("…" if container.state == "running" else "")
                )
                mem = fmt_bytes(measured.memory_bytes) if measured is not None else ""
                rows.append(
                    Row(
                        f"{key[1]}|{container.name}",
                        [
                            cell(key[1]),
                            cell(container.name),
                            cell(container.state, STATE_STYLES.get(container.state, "")),
                            cell(container.health, STATE_STYLES.get(container.health, "")),
                            cell(container.image, limit=40),
                            cell(cpu),
                            cell(mem),
                        ],
                        ("container", key[1], container),
                    )
                )
        return rows

    def _rows_deploys(self, results: list[tuple[tuple[str, ...], SourceResult[Any]]]) -> list[Row]:
        rows = []
        for key, result in results:
            state = cast("DeployState | None", result.data)
            if state is None:
                continue
            lock = ""
            if state.lock:
                lock = f"LOCKED by {state.lock.who} ({state.lock.why})"
                if state.lock.stale and state.lock.heartbeat_age is not None:
                    lock = f"STALE lock ({age(state.lock.heartbeat_age)} silent): {state.lock.who}; unlock it from the palette"
            rows.append(
                Row(
                    f"{key[1]}|current",
                    [
                        cell(key[1], "bold"),
                        cell(state.current or ("no deploys yet" if not state.exists else "none")),
                        cell("current", "bold"),
                        cell(""),
                        cell(""),
                        cell(lock, "bold red" if lock else ""),
                        cell(""),
                    ],
                    ("deploy", key[1], state),
                )
            )
            for n, warning in enumerate(state.warnings):
                rows.append(
                    Row(
                        f"{key[1]}|warning|{n}",
                        [
                            cell(key[1], "dim"),
                            cell("⚠ journal", "yellow"),
                            cell(""),
                            cell(""),
                            cell(""),
                            cell(warning.split(": skipped ", 1)[-1], "yellow"),
                            cell(""),
                        ],
                        ("warning", key[1], warning),
                    )
                )
            bad = state.bad_releases
            for n, record in enumerate(state.recent(10)):
                when = str(record.get("finished") or record.get("started") or "")
                duration = ""
                try:
                    start = datetime.fromisoformat(str(record["started"]).replace("Z", "+00:00"))
                    end = datetime.fromisoformat(str(record["finished"]).replace("Z", "+00:00"))
                    duration = f" ({age((end - start).total_seconds())})"
                except (KeyError, ValueError):
                    pass
                outcome = str(record.get("outcome", ""))
                if record.get("event") == "deploy" and outcome == "success" and record.get("release") in bad:
                    outcome = "success, marked bad"
                rows.append(
                    Row(
                        f"{key[1]}|{n}|{record.get('release')}|{record.get('event')}",
                        [
                            cell(key[1], "dim"),
                            cell(record.get("release")),
                            cell(record.get("event")),
                            cell(record.get("ref") or record.get("to") or ""),
                            cell(record.get("who")),
                            cell(outcome, "green" if outcome == "success" else "red"),
                            cell(when.replace("T", " ")[:19] + duration),
                        ],
                        ("journal", key[1], record),
                    )
                )
        return rows

    def _rows_errors(self, results: list[tuple[tuple[str, ...], SourceResult[Any]]]) -> list[Row]:
        rows = []
        for _key, result in results:
            page = cast("IssuePage | None", result.data)
            for issue in page.issues if page else []:
                level_style = {"fatal": "bold red", "error": "red", "warning": "yellow"}.get(issue.level, "")
                rows.append(
                    Row(
                        issue.id,
                        [
                            cell(issue.short_id),
                            cell(issue.level, level_style),
                            cell(issue.title, limit=90),
                            cell(issue.count),
                            cell(issue.users),
                            cell((issue.last_seen or "").replace("T", " ")[:19]),
                        ],
                        ("issue", "sentry", issue),
                    )
                )
        return rows

    def _rows_health(self, results: list[tuple[tuple[str, ...], SourceResult[Any]]]) -> list[Row]:
        rows = []
        for _key, result in results:
            for check in cast("list[HealthResult]", result.data or []):
                latency = f"{check.latency_ms:.0f} ms" if check.latency_ms is not None else ""
                rows.append(
                    Row(
                        check.url,
                        [
                            cell(check.url, limit=80),
                            cell(check.status or "", "green" if check.ok else "red"),
                            cell(latency),
                            cell(check.error or "", "red"),
                        ],
                        ("health", "", check),
                    )
                )
        return rows

    # ---------------------------------------------------------------- selection helpers

    def focused_pane(self) -> Pane:
        tabs = self.query_one_optional(TabbedContent)
        active = (tabs.active if tabs is not None else None) or "tab-processes"
        return self.query_one(f"#{active[len('tab-') :]}", Pane)

    def selection(self) -> tuple[str, str, Any] | None:
        data = self.focused_pane().selected()
        return cast("tuple[str, str, Any] | None", data)

    def _need_env(self) -> Environment | None:
        env = self.env
        if env is None:
            self.notify("no environment selected", severity="warning")
        return env

    # ---------------------------------------------------------------- key actions

    def action_deploy(self) -> None:
        if env := self._need_env():
            self.ops.request_action("deploy", env.name)

    def action_rollback(self) -> None:
        if env := self._need_env():
            self.ops.request_action("rollback", env.name)

    def action_purge(self) -> None:
        if env := self._need_env():
            self.ops.request_action("purge", env.name)

    def _target_of_selection(self) -> tuple[str, str, Any] | None:
        selected = self.selection()
        if selected is None or selected[0] not in ("process", "container"):
            self.notify("select a process (1) or a container (2) first", severity="warning")
            return None
        kind, host, item = selected
        name = f"supervisor:{item.full_name}" if kind == "process" else f"docker:{item.name}"
        return name, host, item

    def action_restart(self) -> None:
        env = self._need_env()
        target = self._target_of_selection()
        if env and target:
            self.ops.request_action("restart", env.name, target[0], host=target[1])

    def action_start_stop(self) -> None:
        env = self._need_env()
        target = self._target_of_selection()
        if env and target:
            item = target[2]
            running = item.state in ("RUNNING", "STARTING", "BACKOFF", "running", "restarting")
            self.ops.request_action("stop" if running else "start", env.name, target[0], host=target[1])

    def action_logs(self) -> None:
        env = self._need_env()
        if env is None:
            return
        selected = self.selection()
        if selected and selected[0] in ("process", "container"):
            kind, host, item = selected
            name = f"supervisor:{item.full_name}" if kind == "process" else f"docker:{item.name}"
            self.ops.request_action("logs", env.name, name, host=host, lines=200, follow=True)
            return
        files = env.logs.files if env.logs else ()
        if not files:
            self.notify(
                "select a process or container, or add [logs] files = [...] to the environment",
                severity="warning",
            )
            return
        from opsconsole.screens.pick import PickScreen

        def picked(path: str | None) -> None:
            if path:
                self.ops.request_action("logs", env.name, f"file:{path}", lines=200, follow=True)

        self.app.push_screen(PickScreen("Log file to follow", [(p, p) for p in files]), picked)

    def _sentry_issue(self) -> SentryIssue | None:
        selected = self.selection()
        if selected is None or selected[0] != "issue":
            self.notify("select a Sentry issue in the Errors pane (4) first", severity="warning")
            return None
        return cast("SentryIssue", selected[2])

    def action_resolve(self) -> None:
        env = self._need_env()
        issue = self._sentry_issue()
        if env and issue:
            self.ops.request_action("resolve", env.name, issue.id)

    def action_ignore(self) -> None:
        env = self._need_env()
        issue = self._sentry_issue()
        if env and issue:
            self.ops.request_action("ignore", env.name, issue.id)

    def action_details(self) -> None:
        selected = self.selection()
        env = self.env
        if selected is None or env is None:
            return
        from opsconsole.screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(env, selected))

    def action_filter(self) -> None:
        self.focused_pane().open_filter()

    def action_switch_env(self) -> None:
        from opsconsole.screens.pick import PickScreen

        options = [(name, self._env_label(env)) for name, env in self.ops.profile.environments.items()]
        if not options:
            return

        def picked(name: str | None) -> None:
            if name:
                self.select_env(name)

        self.app.push_screen(PickScreen("Switch environment", options), picked)

    def _show_pane(self, index: int) -> None:
        tabs = self.query_one_optional(TabbedContent)
        if tabs is not None:
            tabs.active = f"tab-{PANES[index][0]}"

    def action_pane_1(self) -> None:
        self._show_pane(0)

    def action_pane_2(self) -> None:
        self._show_pane(1)

    def action_pane_3(self) -> None:
        self._show_pane(2)

    def action_pane_4(self) -> None:
        self._show_pane(3)

    def action_pane_5(self) -> None:
        self._show_pane(4)

    def action_next_pane(self) -> None:
        tabs = self.query_one_optional(TabbedContent)
        active = (tabs.active if tabs is not None else None) or "tab-processes"
        ids = [f"tab-{p[0]}" for p in PANES]
        self._show_pane((ids.index(active) + 1) % len(ids))

    def action_refresh(self) -> None:
        self.ops.action_refresh()

    def action_help(self) -> None:
        from opsconsole.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_quit(self) -> None:
        self.app.exit()

    def action_cursor(self, where: str) -> None:
        """Cursor keys move the visible pane's table (tables take no focus; see PaneTable)."""
        table = self.focused_pane().table
        {
            "up": table.action_cursor_up,
            "down": table.action_cursor_down,
            "page_up": table.action_page_up,
            "page_down": table.action_page_down,
            "top": table.action_scroll_top,
            "bottom": table.action_scroll_bottom,
        }[where]()
