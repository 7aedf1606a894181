"""The Nginx source: how it fetches per host, what of it a person sees change, how it counts in the
environment's summary and how `status --json` writes it (`catalog.py` declares it with these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconsole.sources.fetch import Fetch, JsonPlace, Summary

if TYPE_CHECKING:
    from opsconsole.backends.nginx import NginxStatus
    from opsconsole.sources.fanout import SourceResult

NOT_CONFIGURED = (
    "Nginx is not configured for this environment: add [environments.ENV.nginx] (optional: config, "
    'prefix, access_log, error_log, status_url = "http://127.0.0.1/nginx_status", upstreams)'
)
FIVES_BADGE = "nginx: {n} 5xx in {window:g} min"
CONFIG_BADGE = "nginx: config test failing on {n} host(s)"
DOWN_BADGE = "nginx: no master on {n} host(s)"


def fetch(f: Fetch) -> Any:
    from opsconsole.backends.nginx import read_nginx

    assert f.env.nginx is not None
    return read_nginx(f.clients.host(f.spec), f.env.nginx, windows=f.clients.nginx_logs(f.env, f.spec))


def visible(s: NginxStatus) -> Any:
    stub = s.stub_status
    return (
        s.config_ok,
        s.test_output if not s.config_ok else "",
        s.master_pid,
        s.workers,
        (stub.active, stub.reading, stub.writing, stub.waiting) if stub else s.stub_status_error,
        tuple(sorted(s.status_counts.items())),
        tuple(s.top_failing),
        tuple((u.upstream, u.count, u.reason) for u in s.upstream_errors),
        tuple(s.notes),
    )


def summarise(s: NginxStatus) -> Summary:
    """Causes the environment list and the header name: a failing config, no master, 5xx in the window
    (`badges`: a text with `{n}` per cause, its counts summed over the hosts)."""
    badges: dict[str, int] = {}
    if not s.config_ok:
        badges[CONFIG_BADGE] = 1
    elif s.master_pid is None:
        badges[DOWN_BADGE] = 1
    if s.fives:
        badges[FIVES_BADGE.replace("{window:g}", f"{s.window:g}")] = s.fives
    return {"badges": badges} if badges else {}


def _target_state(target: str | None, host: dict[str, Any]) -> str | None:
    """The state `status --json` reported for the upstream's target on this host, when it did."""
    if not target:
        return None
    kind, _, name = target.partition(":")
    if kind == "supervisor":
        for proc in host.get("supervisor", {}).get("processes", []):
            if name in (proc.get("name"), proc.get("full_name"), proc.get("group")):
                return str(proc.get("state"))
    elif kind == "docker":
        for container in host.get("docker", {}).get("containers", []):
            if container.get("name") == name:
                return str(container.get("state"))
    return None


def to_json(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is None:
        return
    if result.data is None:
        place.target["nginx"] = {
            "config_ok": None,
            "error": result.error,
            "master_pid": None,
            "stub_status": None,
            "status_counts": {},
            "upstream_errors": [],
        }
        return
    data = result.data.to_json()
    for upstream in data["upstream_errors"]:
        upstream["target_state"] = _target_state(upstream["target"], place.target)
    place.target["nginx"] = data


def status_lines(s: NginxStatus | None) -> list[str]:
    """`status`'s text for one host: a headline, then what is wrong (each already made inert)."""
    from opsconsole.sanitize import clean

    if s is None:
        return ["no answer"]
    head = "config ok" if s.config_ok else "CONFIG TEST FAILED"
    head += f", master {s.master_pid}" if s.master_pid else ", NO MASTER"
    counts = s.status_counts
    if counts:
        head += f", last {s.window:g} min: " + " ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    lines = [head]
    if not s.config_ok:
        lines += [f"      {clean(line, 200)}" for line in s.test_output.splitlines()[-3:]]
    if s.stub_status is not None:
        st = s.stub_status
        lines.append(f"      stub_status: {st.active} active, {st.requests} requests")
    elif s.stub_status_error:
        lines.append(f"      {clean(s.stub_status_error, 200)}")
    for failing in s.top_failing:
        lines.append(f"      {failing.status} x{failing.count:<5} {clean(failing.path, 80)}")
    for up in s.upstream_errors:
        target = f" -> {clean(up.target)}" if up.target else ""
        lines.append(f"      upstream {clean(up.upstream)}{target}: {up.count}x {clean(up.reason, 120)}")
    lines += [f"      note: {clean(note, 200)}" for note in s.notes]
    return lines
