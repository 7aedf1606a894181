"""The Nginx pane: per host, the config test, the master, stub_status, the window's status counts,
its top failing paths and its upstream errors, each upstream with what serves it and that target's
state from the Supervisor or Docker results ("502s: shop-web (supervisor) is STOPPED"). An upstream
row of a known process or container selects it: `r` restarts it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opsconsole.panes.spec import PaneData, PaneSpec, Results
from opsconsole.widgets.pane import Row, cell, start_time

if TYPE_CHECKING:
    from opsconsole.backends.nginx import NginxStatus, UpstreamErrors

UP_STATES = ("RUNNING", "running")


def _targets(results: Results) -> dict[tuple[str, str, str], tuple[str, Any]]:
    """(host, kind, name) -> (the selection kind, the process or container), from the pane's other
    sources' results."""
    out: dict[tuple[str, str, str], tuple[str, Any]] = {}
    for key, result in results:
        if key[0] == "supervisor":
            for proc in result.data or []:
                for name in {proc.name, proc.full_name, proc.group}:
                    out.setdefault((key[1], "supervisor", name), ("process", proc))
        elif key[0] == "docker":
            for container in result.data or []:
                out[(key[1], "docker", container.name)] = ("container", container)
    return out


def answered(reason: str) -> str:
    """What the clients got for an upstream error of this kind."""
    if "timed out" in reason:
        return "504s"
    if "connect() failed" in reason or "closed" in reason or "reset" in reason:
        return "502s"
    return "5xx"


def upstream_line(up: UpstreamErrors, found: tuple[str, Any] | None) -> tuple[str, str, bool]:
    """(what it says, its style, whether the target is down): "shop-web (supervisor) is STOPPED"."""
    if not up.target:
        return f"{up.reason} (map it: nginx.upstreams)", "red", False
    kind, _, name = up.target.partition(":")
    if found is None:
        return f"{name} ({kind}): state unknown here", "yellow", False
    state = str(found[1].state)
    down = state not in UP_STATES
    text = f"{name} ({kind}) is {state}" + (" · r restarts it" if down else f" · {up.reason}")
    return text, "bold red" if down else "yellow", down


def rows_nginx(data: PaneData) -> list[Row]:
    rows: list[Row] = []
    targets = _targets(data.results)
    for key, result in data.results:
        if key[0] != "nginx" or result.data is None:
            continue
        host = key[1]
        s = cast("NginxStatus", result.data)

        def add(
            what: str, state: str, style: str, detail: str, item: Any = None, host: str = host, s: Any = s
        ) -> None:
            cells = [cell(host), cell(what), cell(state, style), cell(detail, limit=160)]
            rows.append(Row(f"{host}|{what}", cells, item or ("nginx", host, s)))

        if s.config_ok:
            add("config", "ok", "green", s.test_output.splitlines()[-1] if s.test_output else "")
        else:
            add("config", "FAILED", "bold red", s.error or "")
        if s.master_pid is None:
            add("master", "DOWN", "bold red", "no master process (pid file and ps)")
        else:
            since = f"since {start_time(s.master_since, data.now)}" if s.master_since else ""
            workers = f"workers {', '.join(map(str, s.workers))}" if s.workers else "no workers"
            add("master", str(s.master_pid), "green", " · ".join(p for p in (since, workers) if p))
        if s.stub_status is not None:
            st = s.stub_status
            add(
                "stub_status",
                f"{st.active} active",
                "",
                f"reading {st.reading} · writing {st.writing} · waiting {st.waiting} · {st.requests} requests",
            )
        elif s.stub_status_error:
            add("stub_status", "error", "red", s.stub_status_error)
        if s.status_counts:
            counts = " · ".join(f"{k} {v}" for k, v in sorted(s.status_counts.items()))
            style = "bold red" if s.fives else "green"
            add(f"last {s.window:g} min", f"{s.fives} 5xx", style, counts)
        for failing in s.top_failing:
            style = "red" if failing.status >= 500 else "yellow"
            add(f"{failing.status} {failing.path}", f"{failing.count}×", style, "failing path")
        for up in s.upstream_errors:
            kind, _, name = (up.target or "").partition(":")
            found = targets.get((host, kind, name)) if up.target else None
            text, style, _down = upstream_line(up, found)
            item = (found[0], host, found[1]) if found is not None else None
            add(
                f"upstream {up.upstream}", f"{up.count} errors", style, f"{answered(up.reason)}: {text}", item
            )
        for index, note in enumerate(s.notes):
            add(f"note {index + 1}", "", "yellow", note)
    return rows


SPEC = PaneSpec(
    "nginx",
    "Nginx",
    ("host", "what", "state", "detail"),
    rows_nginx,
    noun="rows",
    counted=("nginx",),
    badge="ngx",
    also=("supervisor", "docker"),
)
