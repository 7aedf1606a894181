"""How the built-in sources fetch, what of them a person sees change, and how `status --json`
writes them; `catalog.py` declares each with these."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.sources.fetch import Fetch, JsonPlace, Summary

if TYPE_CHECKING:
    from opsconsole.profiles import Environment, HostSpec
    from opsconsole.sources.fanout import SourceResult


def first_host(env: Environment) -> HostSpec | None:
    return env.hosts[0] if env.hosts else None


def processes(f: Fetch) -> Any:
    return f.clients.supervisor(f.env, f.spec).processes()


def containers(f: Fetch) -> Any:
    client = f.clients.docker(f.env, f.spec)
    found = client.containers()
    if f.context.with_stats:
        f.context.put_stats(f.spec.raw, client.stats([c.name for c in found if c.state == "running"]))
    return found


def deploys(f: Fetch) -> Any:
    from opsconsole.backends.releases import read_state

    env, spec = f.env, f.spec
    assert env.deploy is not None
    host = f.clients.host(spec)
    try:
        state = read_state(host, env.deploy)
    except BaseException as exc:
        f.context.deploy_state_failed(spec.raw, exc)
        raise
    if spec == env.hosts[0]:  # the run logs live on the first host: who is running what now
        from opsconsole.backends.runlogs import latest_runs

        try:
            # the same read keeps the newest finished runs too: the timeline's actions
            state.recent_runs = latest_runs(host, env, 10)
            state.runs = [r for r in state.recent_runs if r.running]
        except OpsError as exc:
            state.warnings.append(f"run logs: {exc.message}")
    f.context.deploy_state_read(spec.raw, state)
    f.context.read_journal_if_grown(spec, state)
    return state


def files(f: Fetch) -> Any:
    from opsconsole.backends.files import list_files

    assert f.env.logs is not None
    return list_files(f.clients.host(f.spec), f.env.logs.files)


def ci(f: Fetch) -> Any:
    """CI of what runs (the first host's current release, as its `deploys` read it in this turn)
    and of the branch head."""
    from opsconsole.backends.github import ci_report

    env = f.env
    assert env.deploy is not None
    state = f.context.deploy_state(f.spec.raw)
    assert env.ci is not None
    return ci_report(
        f.clients.ci(env), env.deploy.branch, state.current, state.current_commit(), env.ci.provider
    )


def issues(f: Fetch) -> Any:
    release = f.context.issues_release.get(f.env.name)
    query = f"is:unresolved firstRelease:{release}" if release else "is:unresolved"
    return asyncio.run(f.clients.issues(f.env).issues(query=query))


def health(f: Fetch) -> Any:
    from opsconsole.backends.health import check_all

    return asyncio.run(check_all(f.env.health, f.clients.profile.defaults.timeout))


def prometheus(f: Fetch) -> Any:
    return f.clients.prometheus(f.env).series(time.time())


def dora(f: Fetch) -> Any:
    return f.context.dora(f.env)


def visible_dora(data: Any) -> Any:
    """The delivery metrics as the pane shows them: their window's ends (to the second, new at every
    refresh) only by day, so an idle environment's fingerprint stays the same and its poll stretches."""
    if not isinstance(data, dict):
        return data
    day = str(data.get("until") or "")[:10]  # the date of utc_stamp (YYYY-MM-DD)
    return (day, *sorted((k, repr(v)) for k, v in data.items() if k not in ("since", "until")))


DOWN_STATES = {"FATAL", "BACKOFF", "EXITED", "UNKNOWN", "STOPPING"}


def visible_process(p: Any) -> Any:
    description = "" if p.description.startswith("pid ") else p.description  # shown when not pid/uptime
    return (p.host, p.group, p.name, p.state, p.pid, p.start, p.exitstatus, p.spawnerr, description)


def visible_list(item: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda items: tuple(item(x) for x in items)


def source_json(result: SourceResult[Any] | None, key: str, items: Callable[[Any], Any]) -> dict[str, Any]:
    if result is None:
        return {key: [], "error": None, "configured": False}
    return {key: items(result.data) if result.data is not None else [], "error": result.error}


def json_processes(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    place.target["supervisor"] = source_json(result, "processes", lambda ps: [p.to_json() for p in ps])


def json_containers(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    docker = source_json(result, "containers", lambda cs: [c.to_json() for c in cs])
    samples = place.stats.get(place.host or "", {})
    for container in docker["containers"]:
        sample = samples.get(container["name"])
        if sample is not None and not isinstance(sample, str):  # a str is why there is none
            container["cpu_percent"] = sample.cpu_percent
            container["memory_bytes"] = sample.memory_bytes
            container["memory_percent"] = sample.memory_percent
    place.target["docker"] = docker


def json_deploys(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is not None and result.data is not None:
        state = result.data
        place.target["deploys"] = {
            "current": state.current,
            "releases": state.releases,
            "lock": state.to_json()["lock"],
            "recent": state.recent(10),
            "path_exists": state.exists,
            "warnings": state.warnings,
            "error": None,
        }
        return
    deploys: dict[str, Any] = {
        "current": None,
        "releases": [],
        "lock": None,
        "recent": [],
        "warnings": [],
        "error": result.error if result is not None else None,
    }
    if result is None:
        deploys["configured"] = False
    place.target["deploys"] = deploys


def json_files(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    place.target["logs"] = source_json(result, "files", lambda fs: [f.to_json() for f in fs])


def json_issues(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    issues = source_json(result, "issues", lambda page: [i.to_json() for i in page.issues])
    if result is not None and result.data is not None:
        issues["notes"] = result.data.notes
    # a Bugsink-backed environment reports its issues under `bugsink`, in the same shape
    place.target["bugsink" if place.env.bugsink is not None else "sentry"] = issues


def json_health(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    data = result.data if result is not None else None
    place.target["health"] = [h.to_json() for h in data] if data else []
    if result is not None and result.error:
        place.target["health_error"] = result.error


def json_prometheus(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is None:
        return
    series = result.data.to_json()["series"] if result.data is not None else {}
    place.target["prometheus"] = {"series": series, "error": result.error}


def json_ci(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is None:
        return
    place.target["ci"] = {**(result.data.to_json() if result.data is not None else {}), "error": result.error}


def count(name: str, test: Callable[[Any], bool]) -> Callable[[Any], Summary]:
    """A summary that counts the items of a list result that pass `test`."""
    return lambda items: {name: sum(1 for x in items if test(x))}
