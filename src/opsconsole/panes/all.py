"""The All pane (`0`): the processes, containers and open errors of every environment in one table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsconsole.human import counted
from opsconsole.panes.containers import rows_containers
from opsconsole.panes.errors import rows_errors
from opsconsole.panes.processes import rows_processes
from opsconsole.panes.spec import Results
from opsconsole.sources.catalog import SourceKey
from opsconsole.sources.fanout import SourceResult
from opsconsole.widgets.pane import Row, cell

ID = "all"
TITLE = "All"
COLUMNS = ("env", "kind", "host", "name", "state", "detail")


def rows_all(
    by_env: Mapping[str, Mapping[SourceKey, SourceResult[Any]]],
    stats: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> list[Row]:
    """`0`: the processes, containers and open errors of every environment in one table. Each row's
    data carries its environment, so the action keys act there; unreachable sources show too."""
    rows: list[Row] = []
    for env, results in by_env.items():
        items = list(results.items())

        def of(source: str, items: Results = items) -> Results:
            return [(k, r) for k, r in items if k[0] == source]

        picks = (
            ("process", rows_processes(of("supervisor")), (0, 1, 2, 5)),
            ("container", rows_containers(of("docker"), stats.get(env, {})), (0, 1, 2, 4)),
            ("issue", rows_errors(of("sentry")), (None, 0, 1, 2)),
        )
        for label, built, columns in picks:
            for row in built:
                kind, host, item = row.data
                shown = [cell("") if c is None else row.cells[c] for c in columns]
                rows.append(
                    Row(f"{env}|{row.key}", [cell(env, "bold"), cell(label), *shown], (kind, host, item, env))
                )
        for key, result in items:
            if result.error:
                host = key[1] if len(key) > 1 else ""
                rows.append(
                    Row(
                        f"{env}|error|{'|'.join(key)}",
                        [
                            cell(env, "bold"),
                            cell(key[0]),
                            cell(host),
                            cell(""),
                            cell("✗", "bold red"),
                            cell(result.error, "red", limit=160),
                        ],
                        ("error", host, result.error, env),
                    )
                )
    return rows


def status(rows: int, envs: int) -> str:
    return f"{counted(rows, 'rows')} across {counted(envs, 'environments')}: processes, containers, open errors"
