"""`status --json`: the state of the chosen environments, each source written by its catalog entry."""

from __future__ import annotations

from typing import Any

from opsconsole.profiles import Profile
from opsconsole.sources.catalog import JsonPlace, is_on, sources
from opsconsole.sources.state import FleetState


def snapshot_json(state: FleetState, profile: Profile, env_names: list[str]) -> dict[str, Any]:
    """Per environment: `hosts` (each host's per-host sources), then the environment's own sources.
    A source the profile leaves out is written as not configured (or not at all, as it decides)."""
    envs: dict[str, Any] = {}
    for name in env_names:
        env = profile.env(name)
        results = state.of(name)
        stats = state.stats.get(name, {})
        hosted = [s for s in sources() if s.per_host and s.to_json is not None]
        shared = [s for s in sources() if not s.per_host and s.to_json is not None]
        hosts: dict[str, Any] = {}
        for spec in env.hosts:
            target: dict[str, Any] = {}
            for src in hosted:
                result = results.get((src.name, spec.raw)) if is_on(env, src) else None
                assert src.to_json is not None
                src.to_json(result, JsonPlace(env, target, spec.raw, stats))
            hosts[spec.raw] = target
        out: dict[str, Any] = {"hosts": hosts}
        for src in sorted(shared, key=lambda s: s.name not in ("sentry", "health")):
            result = results.get((src.name,)) if is_on(env, src) else None
            assert src.to_json is not None
            src.to_json(result, JsonPlace(env, out, None, stats))
        envs[name] = out
    return {"environments": envs}

