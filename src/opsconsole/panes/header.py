"""The main screen's header: project, environment, its flags, running actions and one freshness
badge per pane source. A pure function of what it shows (no widget)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from opsconsole.panes.spec import PaneSpec
from opsconsole.profiles import Defaults, Environment
from opsconsole.sanitize import clean
from opsconsole.sources import catalog
from opsconsole.sources.catalog import SourceKey
from opsconsole.sources.fanout import SourceResult
from opsconsole.sources.schedule import coarse_age, stale_after
from opsconsole.sources.summary import source_badges


def header_text(
    project: str,
    env: Environment | None,
    results: Mapping[SourceKey, SourceResult[Any]],
    specs: Sequence[PaneSpec],
    defaults: Defaults,
    now: float,
    *,
    narrow: bool,
    read_only: bool = False,
    running: int = 0,
    others: tuple[str, str] | None = None,
) -> Text:
    """`others`: the summary of the other environments, shown while narrow (the list is hidden)."""
    text = Text()
    text.append(" opsconsole ", style="bold reverse")
    text.append(f" {clean(project)} ", style="bold")
    if env is None:
        return text
    if not narrow:
        text.append(" ▸ ")
    text.append(f" {env.name} ", style=f"bold reverse {env.color}" if env.color else "bold reverse")
    if others and narrow:
        text.append(others[0], style=others[1])
    if read_only or env.read_only:
        text.append("  READ-ONLY ", style="bold black on cyan")
    if env.protected:
        text.append("  PROTECTED ", style="bold black on yellow")
    if running:
        text.append(f"  {running} running (a) ", style="bold black on yellow")
    stale = stale_after(defaults.refresh, defaults.timeout)
    gap = " " if narrow else "  "
    for spec in specs:
        if not spec.badge or not catalog.pane_configured(env, spec.id):
            continue
        label = spec.badge if narrow else spec.badge_label
        counted = spec.counted_names
        # a service still starting counts as not answered yet (`…`), not as a failure
        shown = [r for k, r in results.items() if k[0] in counted and not r.starting]
        expected = len(catalog.expected_keys(env, spec.id))
        errors = sum(1 for r in shown if r.error)
        alarms = source_badges((k, r) for k, r in results.items() if k[0] in counted)
        # never green before everyone answered: pending is `…`, partial is "1/2"
        if errors:
            text.append(f"{gap}{label} ✗{errors}", style="red")
        elif alarms:
            text.append(f"{gap}{', '.join(alarms)}", style="bold red")
        elif not shown:
            text.append(f"{gap}{label} …", style="dim")
        elif len(shown) < expected:
            text.append(f"{gap}{label} {len(shown)}/{expected}…", style="yellow")
        elif now - min(r.fetched_at for r in shown) > stale:
            # freshness as a state, not a clock: nothing on screen changes while nothing changes
            oldest = min(r.fetched_at for r in shown)
            text.append(f"{gap}{label} {coarse_age(now - oldest)} old", style="yellow")
        else:
            text.append(f"{gap}{label} ✓", style="green")
    return text
