"""How an environment is summed up: its line in the environment list, and "2 others: 1 ✗"."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from rich.text import Text

from opsconsole.panes.deploys import foreign_runs
from opsconsole.profiles import Environment
from opsconsole.sources.catalog import has_sources
from opsconsole.sources.summary import summarize


def env_label(
    env: Environment, results: Mapping[Any, Any], read_only: bool, own_runs: Set[str] = frozenset()
) -> Text:
    """Its name and flags, what is wrong (or "all good"), and an action someone else runs there
    (`own_runs`: the run ids this console started)."""
    summary = summarize(results)
    label = Text("● ", style=env.color or "white")
    label.append(env.name, style="bold")
    if env.protected:
        label.append(" [protected]", style="yellow")
    if env.read_only or read_only:
        label.append(" [ro]", style="cyan")
    if not has_sources(env):
        label.append("\n  no sources configured", style="dim")
    elif summary.loaded:
        badges = summary.badges()  # names the cause: "2 timed out", "secret missing"...
        label.append(
            "\n  " + (", ".join(badges) if badges else "all good"), style="red" if badges else "green"
        )
    else:
        label.append("\n  loading…", style="dim")
    deploys = [(k, r) for k, r in results.items() if k[0] == "deploys"]
    for info in foreign_runs(deploys, own_runs)[:1]:
        label.append(f"\n  ⟳ {info.what} by {info.who}", style="bold yellow")
    return label


def others_summary(results: Mapping[str, Mapping[Any, Any]], others: list[str]) -> tuple[str, str] | None:
    if not others:
        return None
    summaries = [summarize(results.get(n, {})) for n in others]
    bad = sum(1 for s in summaries if not s.ok)
    loaded = sum(1 for s in summaries if s.loaded)
    state = f"{bad} ✗" if bad else ("all ✓" if loaded == len(others) else "…")
    return f" {len(others)} other{'s' if len(others) > 1 else ''}: {state} ", "red" if bad else "dim"
