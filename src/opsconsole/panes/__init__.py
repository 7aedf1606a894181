"""One `PaneSpec` per pane of the main screen: the built-in panes in their order (their number keys
are 1 to 6), then the optional panes a profile configures (Nginx, Units...), then one for each catalog
source whose pane is none of them (7, 8, ... in that order)."""

from __future__ import annotations

from opsconsole.panes import (
    alerts,
    containers,
    deploys,
    errors,
    health,
    metrics,
    nginx,
    processes,
    timeline,
    units,
)
from opsconsole.panes.generic import generic_spec
from opsconsole.panes.spec import PaneData, PaneSpec
from opsconsole.profiles import Profile
from opsconsole.sources import catalog

BUILTIN: tuple[PaneSpec, ...] = (
    processes.SPEC,
    containers.SPEC,
    deploys.SPEC,
    errors.SPEC,
    health.SPEC,
    metrics.SPEC,
)

# shown only when some environment of the profile configures one of their sources: 80 columns hold
# the six built-in tabs and All, not every pane a source could bring
OPTIONAL: tuple[PaneSpec, ...] = (
    nginx.SPEC,
    units.SPEC,
    timeline.SPEC,
    alerts.SPEC,
)


def pane_specs(profile: Profile | None = None) -> list[PaneSpec]:
    """The built-in specs, the optional ones (those `profile` configures somewhere; every one without
    a profile), then a generic one per pane that only registered sources name (in catalog order);
    sources in no pane (`pane=""`) get none."""
    specs = list(BUILTIN)
    for spec in OPTIONAL:
        if profile is None or any(catalog.pane_configured(env, spec.id) for env in profile.environments.values()):
            specs.append(spec)
    known = {spec.id for spec in (*BUILTIN, *OPTIONAL)}
    for src in catalog.sources():
        if src.pane and src.pane not in known:
            known.add(src.pane)
            specs.append(generic_spec(src.pane, src))
    return specs


__all__ = ["BUILTIN", "OPTIONAL", "PaneData", "PaneSpec", "pane_specs"]
