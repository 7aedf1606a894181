"""The main screen's keys: one generic dispatch for the registry's action keys, the `:` command
line, sorting, copying, panes, cursor, running actions and quitting. A mixin of MainScreen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opsconsole.actions.targets import SELECTION_HINTS, selection_target
from opsconsole.messages import RunsChanged
from opsconsole.panes import pane_specs
from opsconsole.screens.bindings import SORT_KEYS, action_keys, sort_column
from opsconsole.widgets.pane import Pane

if TYPE_CHECKING:
    from textual.widgets import TabbedContent

    from opsconsole.profiles import Environment
    from opsconsole.screens.command_line import Target
    from opsconsole.ui import Console


def row_name(kind: str, item: Any) -> str:
    """The name `y` copies: a process's group:name, a container's name, an issue's short id..."""
    if kind == "process":
        return str(item.full_name)
    if kind == "container":
        return str(item.name)
    if kind == "unit":
        return str(item.unit)
    if kind == "issue":
        return str(item.short_id)
    if kind == "journal":
        return str(item.get("release", ""))
    if kind == "deploy":
        return str(item.current or "")
    if kind == "health":
        return str(item.url)
    return str(item)


def _actions() -> dict[str, Any]:
    from opsconsole.actions.registry import ACTIONS

    return ACTIONS


class MainKeys:
    """Needs from the screen: `ops`, `env`, `selection()`, `focused_pane()`, `select_env()`,
    `render_header()`, and Textual's `app`, `notify`, `query_one_optional`."""

    if TYPE_CHECKING:
        app: Any

        @property
        def ops(self) -> Console: ...
        @property
        def env(self) -> Environment | None: ...
        def _need_env(self) -> Environment | None: ...
        def _env_label(self, env: Environment) -> Any: ...
        def label_tabs(self) -> None: ...
        def selection(self) -> tuple[str, str, Any] | None: ...
        def selection_env(self) -> Environment | None: ...
        def focused_pane(self) -> Pane: ...
        def select_env(self, name: str) -> None: ...
        def render_header(self) -> None: ...
        def render_pane(self, pane_id: str) -> None: ...

        _hidden_stale: set[str]

        def _results(self, source: str) -> list[tuple[tuple[str, ...], Any]]: ...
        def refresh_bindings(self) -> None: ...
        def notify(self, message: str, **kwargs: Any) -> None: ...
        def query_one_optional(self, selector: Any, expect_type: Any = None) -> Any: ...

    def pane_tabs(self) -> TabbedContent | None:
        """The pane tabs (main_tabs.py), None until they mount just after the first frame.
        Found by id: Textual's tab widgets load with them, not before the first frame."""
        return cast("TabbedContent | None", self.query_one_optional("#panes"))

    def shown_pane_id(self) -> str:
        """The pane whose tab is shown: processes until the tabs have mounted and say otherwise."""
        tabs = self.pane_tabs()
        return str((tabs.active if tabs is not None else "") or "tab-processes")[len("tab-") :]

    # ---------------------------------------------------------------- key actions

    def on_tabbed_content_tab_activated(self, _event: TabbedContent.TabActivated) -> None:
        self.label_tabs()
        pane_id = self.focused_pane().pane_id
        offered = self._offered_keys(pane_id)
        if offered != getattr(self, "_footer_keys", None):
            # the footer offers the keys that act on this pane's rows; rebuilding it is half the cost
            # of a pane switch, so only when they differ from the last pane's
            self._footer_keys = offered
            self.refresh_bindings()
        if pane_id in self._hidden_stale:
            self.render_pane(pane_id)  # hidden panes are not redrawn: this one is shown now

    @staticmethod
    def _offered_keys(pane_id: str) -> frozenset[str]:
        """The action keys the footer shows on a pane (see check_action)."""
        kinds = {
            "processes": "process",
            "containers": "container",
            "errors": "issue",
            "units": "unit",
            "alerts": "alert",
        }
        return frozenset(
            k.id
            for k in action_keys()
            if not k.selection
            or k.selection_optional
            or pane_id == "all"
            or kinds.get(pane_id) in k.selection
            # the Nginx pane's upstream rows select the process or container that serves them
            or (pane_id == "nginx" and bool({"process", "container"} & set(k.selection)))
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer shows the keys that apply to the visible pane (like k9s); they still work
        everywhere else and say what to select."""
        if action != "act" or not parameters:
            return True
        key = next((k for k in action_keys() if k.id == parameters[0]), None)
        if key is None or not key.selection or key.selection_optional:
            return True
        pane_id = self.shown_pane_id()
        if key.id not in self._offered_keys(pane_id):
            return False  # False hides it
        if pane_id == "all" and self._shares_its_key(key):
            # `0` mixes kinds of rows: of the keys on one key (`x`: resolve an issue, shell on a
            # process or container), the one for the selected row acts (Textual tries the next)
            selected = self.selection()
            return selected is None or selected[0] in key.selection
        return True

    def _shares_its_key(self, key: Any) -> bool:
        """Whether another action key is on one of this one's keys, as `[keymap]` has them."""
        keymap = self.ops.profile.keymap

        def keys(k: Any) -> set[str]:
            return {part.strip() for part in keymap.get(k.id, k.keys).split(",")}

        return any(k.id != key.id and keys(k) & keys(key) for k in action_keys())

    def action_act(self, key_id: str) -> None:
        """Every action key: the registry says which action(s) it means and what it needs selected."""
        key = next((k for k in action_keys() if k.id == key_id), None)
        env = self._need_env()
        if key is None or env is None:
            return
        if not key.selection:
            self.ops.request_action(key.actions[0], env.name, **self._rollback_from(key.actions[0], env))
            return
        selected = self.selection()
        if selected is None or selected[0] not in key.selection:
            if key.selection_optional:
                self._pick_log_file(env, key.actions[0])
                return
            where = " or ".join(SELECTION_HINTS[kind] for kind in key.selection)
            self.notify(f"select {where} first", severity="warning")
            return
        kind, host, item = selected
        action_id = key.pick(item)
        options = dict(_actions()[action_id].default_options)
        home = self.selection_env() or env  # in the `0` view, the row's own environment
        ask = getattr(_actions()[action_id], "prompt_for", ("", ""))  # an option the console asks for
        if ask[0] and not options.get(ask[0]):
            from opsconsole.screens.prompt import PromptScreen

            def answered(text: str | None) -> None:
                if text:
                    target = selection_target(kind, item)
                    chosen = {**options, ask[0]: text}
                    self.ops.request_action(action_id, home.name, target, host=host or None, **chosen)

            self.app.push_screen(PromptScreen(ask[1]), answered)
            return
        self.ops.request_action(
            action_id, home.name, selection_target(kind, item), host=host or None, **options
        )

    def _rollback_from(self, action_id: str, env: Environment) -> dict[str, str]:
        """After a FAILED verification, a rollback goes back only from the release that failed, and
        only while it is still current (checked under the deploy lock): never from someone else's."""
        status = self.ops.verifications.get(env.name)
        if action_id == "rollback" and status is not None and status.verdict == "fail":
            return {"from": status.release}
        return {}

    def _pick_log_file(self, env: Environment, action_id: str) -> None:
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
                self.ops.request_action(action_id, env.name, f"file:{path}", **_actions()[action_id].default_options)

        self.app.push_screen(PickScreen("Log file to follow", [(p, p) for p in files]), picked)

    def action_details(self) -> None:
        selected = self.selection()
        env = self.env
        if selected is None or env is None:
            return
        if selected[0] == "run":  # someone else's running action: watch it
            self.ops.request_action("watch", env.name, run=selected[2].run)
            return
        from opsconsole.screens.details import DetailsScreen

        self.app.push_screen(DetailsScreen(env, selected))

    def action_copy_name(self) -> None:
        selected = self.selection()
        if selected is None:
            self.notify("nothing selected", severity="warning")
            return
        kind, _host, item = selected
        name = row_name(kind, item)
        self.app.copy_to_clipboard(name)
        self.notify(f"copied {name}", timeout=2)

    def action_sort(self, binding_id: str) -> None:
        """A sort key (bindings.SORT_KEYS): the visible pane by that key's column (again: the other
        way); its header shows ▲ or ▼."""
        pane = self.focused_pane()
        index = sort_column(binding_id, pane.columns)
        if index is None:
            what = next((w for _k, i, w, _c in SORT_KEYS if i == binding_id), binding_id)
            self.notify(f"this pane has no {what.split(' (')[0]} column", severity="warning", timeout=2)
            return
        self.notify(f"sorted by {pane.sort_by(index)}", timeout=2)

    def action_command_line(self) -> None:
        from opsconsole.screens.command_line import CommandLine

        self.app.push_screen(CommandLine(self.command_words()), self.run_command)

    def _named_rows(self) -> list[tuple[str, Target]]:
        """The visible environment's processes and containers, by the names `:` knows them by."""
        from opsconsole.screens.command_line import row_names

        rows = []
        for pane_id in ("processes", "containers"):
            pane = self.query_one_optional(f"#{pane_id}", Pane)
            rows += [row.data for row in (pane.rows if pane is not None else [])]
        return row_names(rows)

    def command_words(self) -> list[str]:
        """What `:` completes (see command_line.completions); with --all, the projects too."""
        from opsconsole.screens.command_line import completions

        words = completions(
            self.ops.profile.environments,
            [spec.id for spec in pane_specs(self.ops.profile)],
            [a for k in action_keys() for a in k.actions],
            [name for name, _target in self._named_rows()],
        )
        projects = getattr(self.app, "projects", None)
        if projects is not None:
            words += ["projects", *(f"project {n}" for n in projects.names())]
        return words

    def _project_command(self, word: str, arg: str) -> bool:
        """`:projects` back to the overview, `:project NAME` to another project (with --all)."""
        if getattr(self.app, "projects", None) is None:
            self.notify(f":{word} needs the overview of every project: start with `opsconsole --all`", severity="warning")
            return True
        if word == "projects" or not arg:
            self.action_projects()
            return True
        why = self.app.open_project(arg)
        if why is not None:
            self.notify(why, severity="warning", timeout=8)
        return True

    def action_projects(self) -> None:
        """Back to the overview of every project (`opsconsole --all` only)."""
        show = getattr(self.app, "show_projects", None)
        if show is None:
            self.notify(
                "This console shows one project: `opsconsole --all` opens the overview of every project",
                severity="warning",
            )
            return
        show()

    def run_command(self, line: str | None) -> None:
        """`:prod`, `:errors`, `:deploy`, `:logs worker`, `:restart web:web_0`, `:quit`."""
        if not line:
            return
        word, _, arg = line.strip().lstrip(":").partition(" ")
        if word in ("projects", "project") and self._project_command(word, arg.strip()):
            return
        from opsconsole.screens.command_line import parse

        env = self.env
        command = parse(
            line,
            list(self.ops.profile.environments),
            [spec.id for spec in pane_specs(self.ops.profile)],
            _actions() if env is not None else (),
        )
        if command.kind == "pane":
            self.action_pane(command.pane)
        elif command.kind == "all":
            self.action_pane_all()
        elif command.kind == "env":
            self.select_env(command.word)
        elif command.kind == "quit":
            self.action_quit()
        elif command.kind == "help":
            self.action_help()
        elif command.kind == "action" and env is not None:
            self._run_named(command.word, command.arg, env)
        else:
            self.notify(f"unknown command ':{line}' (tab completes; ? lists keys)", severity="warning")

    def _run_named(self, action_id: str, arg: str, env: Environment) -> None:
        """`:ACTION` on the environment, or `:ACTION NAME` on the row of that name."""
        if not arg:
            if _actions()[action_id].target_arg:
                self.notify(f":{action_id} needs a name, e.g. :{action_id} worker", severity="warning")
                return
            self.ops.request_action(action_id, env.name)
            return
        from opsconsole.screens.command_line import find_target

        target = find_target(arg, self._named_rows())
        if target is None:
            self.notify(f"no process or container matches '{arg}' here", severity="warning")
            return
        kind, host, item = target
        options = dict(_actions()[action_id].default_options)
        self.ops.request_action(action_id, env.name, selection_target(kind, item), host=host, **options)

    def action_toggle_muted_alerts(self) -> None:
        """Alerts pane: silenced and inhibited alerts shown too, or hidden (the default)."""
        from opsconsole.panes.alerts import SHOW_MUTED

        SHOW_MUTED["on"] = not SHOW_MUTED["on"]
        shown = "shown" if SHOW_MUTED["on"] else "hidden"
        self.ops.notify(f"Alerts: silenced and inhibited {shown}", timeout=3)
        self.render_pane("alerts")

    def action_toggle_new_issues(self) -> None:
        """Errors pane: issues first seen in the running release (Sentry's `firstRelease:`, Bugsink's
        first release of an issue), named by the tracker's `release_format`, or all open issues."""
        env = self.env
        if env is None or env.errors is None:
            self.ops.notify("No error tracker (Sentry or Bugsink) is connected here", severity="warning")
            return
        chosen = self.ops.state.issues_release
        if env.name in chosen:
            del chosen[env.name]
            self.ops.notify("Errors: every open issue", timeout=3)
        else:
            version = self._running_version(env)
            if version is None:
                self.ops.notify(
                    "No running release with a known commit yet (the Deploys pane shows none): "
                    "deploy once, then try again",
                    severity="warning",
                )
                return
            chosen[env.name] = version
            self.ops.notify(f"Errors: only issues new in {version}", timeout=3)
        self.action_pane([spec.id for spec in pane_specs(self.ops.profile)].index("errors"))
        self.ops.refresh_env(env.name)

    def _running_version(self, env: Environment) -> str | None:
        """The error tracker's release name of what the first host runs, from the Deploys pane's data."""
        from opsconsole.actions.deploy.verify import running_version

        if not env.hosts:
            return None
        first = dict(self._results("deploys")).get(("deploys", env.hosts[0].raw))
        state = first.data if first is not None else None
        return running_version(env, self.ops.profile.project_name, state)

    def action_clear_filter(self) -> None:
        self.focused_pane().clear_filter()

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

    def action_pane(self, index: int) -> None:
        tabs = self.pane_tabs()
        if tabs is not None:
            tabs.active = f"tab-{pane_specs(self.ops.profile)[index].id}"

    def action_next_pane(self) -> None:
        active = f"tab-{self.shown_pane_id()}"
        ids = [f"tab-{spec.id}" for spec in pane_specs(self.ops.profile)] + ["tab-all"]
        following = ids[(ids.index(active) + 1) % len(ids)] if active in ids else ids[0]
        if following == "tab-all":
            self.action_pane_all()
        else:
            self.action_pane(ids.index(following))

    def action_pane_all(self) -> None:
        tabs = self.pane_tabs()
        if tabs is not None:
            tabs.active = "tab-all"

    def action_refresh(self) -> None:
        self.ops.action_refresh()

    def action_help(self) -> None:
        from opsconsole.screens.help import HelpScreen
        from opsconsole.screens.keymap import screens

        self.app.push_screen(HelpScreen(screens()))

    def on_runs_changed(self, _message: RunsChanged) -> None:
        self.render_header()

    def _running_actions(self) -> list[Any]:
        return [s for s in self.ops.runs.running() if s.action.viewer != "log"]

    def action_show_runs(self) -> None:
        running = self._running_actions() or list(self.ops.runs)[-1:]
        if not running:
            self.notify("no action has run yet", severity="warning")
            return
        if len(running) == 1:
            self.ops.show_run(running[0])
            return
        from opsconsole.screens.pick import PickScreen

        def picked(run_id: str | None) -> None:
            if run_id:
                self.ops.show_run(self.ops.runs[int(run_id)])

        self.app.push_screen(PickScreen("Running actions", [(str(s.id), s.title) for s in running]), picked)

    def action_quit(self) -> None:
        changing = [s for s in self._running_actions() if s.action.changes]
        if not changing:
            self.app.exit()
            return
        from opsconsole.screens.pick import PickScreen

        what = changing[0].title if len(changing) == 1 else f"{len(changing)} actions"

        def picked(answer: str | None) -> None:
            if answer == "quit":
                self.app.exit()  # run_console cancels them and waits for their clean-up

        self.app.push_screen(
            PickScreen(
                f"{what} is running: quitting cancels it (its clean-up runs first).",
                [("stay", "Stay (keep it running)"), ("quit", "Quit and cancel it")],
            ),
            picked,
        )

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
