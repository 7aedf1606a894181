"""`opsconsole profile init [USER@]HOST[:PORT]...`: a first profile from what the hosts run.

Each host is read with `backends.discover` over the console's own connection (same host-key
rules as everything else); the findings become one commented TOML profile, checked with the
profile parser before it is written. An existing file is never replaced.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from opsconsole import paths
from opsconsole.atomic import write_atomic
from opsconsole.backends.discover import Findings, Layout, Supervisord
from opsconsole.errors import ExitCode, OpsError, ProfileError, UsageError
from opsconsole.profiles import Defaults, HostSpec, parse_host, parse_profile_text

MAX_HOSTS = 64


def register(psub: Any) -> None:
    p = psub.add_parser(
        "init",
        help="write a first profile from what the hosts run (read-only discovery over SSH)",
        description="Connects to each host (host keys checked against known_hosts), reads what runs "
        "there without changing anything, and writes one commented profile that validates.",
    )
    p.add_argument(
        "hosts", nargs="+", metavar="[USER@]HOST[:PORT]", help="hosts to read ('local': this machine)"
    )
    p.add_argument(
        "--name", metavar="PROJECT", help="project name (default: the deploy folder or compose project found)"
    )
    p.add_argument(
        "--env",
        dest="env_name",
        metavar="NAME",
        default="production",
        help="environment name (default: production)",
    )
    p.add_argument(
        "--output", "-o", metavar="PATH", help="file to write (default: the user config dir, PROJECT.toml)"
    )
    p.add_argument("--identity-file", metavar="F", help="SSH private key (written to [defaults])")
    p.add_argument("--known-hosts", metavar="F", help="known_hosts file (written to [defaults])")
    p.add_argument(
        "--supervisor-config",
        metavar="PATH",
        help="when a host runs several supervisords: the one started with this config",
    )
    p.add_argument("--dry-run", action="store_true", help="print the profile instead of writing it")
    p.set_defaults(handler=cmd_init)


# ----------------------------------------------------------------------------- TOML text


def value(item: str | list[str]) -> str:
    """`item` as a TOML value on one line (so it can be offered commented out); tomli_w quotes
    each string."""
    if isinstance(item, list):
        return "[" + ", ".join(value(text) for text in item) + "]"
    return tomli_w.dumps({"v": item})[4:].rstrip("\n")


def comment(text: str) -> str:
    """Text from a host made safe for one comment line (no line breaks or control characters)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "?", text)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _ident(text: str, fallback: str) -> str:
    """A name the profile accepts for environments and secrets."""
    out = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")
    return out[:60] if out and out[0].isalnum() else fallback


# ----------------------------------------------------------------------------- choosing


@dataclass
class HostPlan:
    """What one reached host contributes: the chosen supervisord and layout, and notes."""

    spec: HostSpec
    found: Findings
    supervisord: Supervisord | None = None
    layout: Layout | None = None
    undecided: list[str] = field(default_factory=list)

    def signature(self) -> tuple[Any, ...]:
        sup = self.supervisord
        return (
            (sup.url, sup.username is not None, tuple(sorted(sup.names))) if sup else None,
            self.found.docker_socket and self.found.docker_problem is None,
            tuple(sorted(self.found.compose_projects)),
            self.layout.path if self.layout else None,
        )


def _choose(spec: HostSpec, found: Findings, supervisor_config: str | None) -> HostPlan:
    plan = HostPlan(spec, found)
    sups = [s for s in found.supervisords if s.url is not None]
    if supervisor_config:
        chosen = [s for s in found.supervisords if s.config == supervisor_config]
        if not chosen:
            seen = ", ".join(s.config or f"pid {s.pid}" for s in found.supervisords) or "none"
            plan.undecided.append(
                f"{spec.raw}: no supervisord runs with --supervisor-config {supervisor_config} (found: {seen})"
            )
        sups = [s for s in chosen if s.url is not None]
    if sups:
        plan.supervisord = sups[0]
        if len(sups) > 1:
            others = ", ".join(f"pid {s.pid} ({s.config})" for s in sups[1:])
            plan.undecided.append(
                f"{spec.raw}: {len(sups)} supervisords run; the profile takes pid {sups[0].pid} "
                f"({sups[0].config}); the others: {others} (choose with --supervisor-config PATH)"
            )
    for sup in found.supervisords:
        if sup.problem:
            plan.undecided.append(f"{spec.raw}: supervisord pid {sup.pid}: {sup.problem}")
    if not found.supervisords and found.standard_configs:
        plan.undecided.append(
            f"{spec.raw}: {', '.join(found.standard_configs)} exists but no supervisord runs: left out"
        )
    if found.layouts:
        with_journal = [layout for layout in found.layouts if layout.journal]
        plan.layout = (with_journal or found.layouts)[0]
        if len(found.layouts) > 1:
            plan.undecided.append(
                f"{spec.raw}: {len(found.layouts)} deploy folders ({', '.join(x.path for x in found.layouts)}); "
                f"the profile offers {plan.layout.path}"
            )
        if plan.layout.repo is None:
            plan.undecided.append(
                f"{spec.raw}: the git repository deployed to {plan.layout.path} is unknown: "
                "its [deploy] block is commented out, fill in repo to use it"
            )
    if found.docker_socket and found.docker_problem:
        plan.undecided.append(f"{spec.raw}: Docker: {found.docker_problem}: left out")
    if plan.supervisord is None and not found.docker_socket and not found.layouts and not found.units:
        plan.undecided.append(
            f"{spec.raw}: no supervisord, Docker socket, systemd service or deploy folder found: its "
            "environment lists the host only"
        )
    plan.undecided += found.notes
    return plan


@dataclass
class EnvPlan:
    name: str
    hosts: list[HostPlan]

    @property
    def first(self) -> HostPlan:
        return self.hosts[0]


def group(plans: list[HostPlan], env_name: str) -> list[EnvPlan]:
    """Hosts that run the same programs share an environment; the first group takes `env_name`,
    each other one `env_name-HOST`."""
    groups: dict[tuple[Any, ...], list[HostPlan]] = {}
    for plan in plans:
        groups.setdefault(plan.signature(), []).append(plan)
    envs: list[EnvPlan] = []
    taken: set[str] = set()
    for index, members in enumerate(groups.values()):
        name = (
            env_name
            if index == 0
            else _ident(f"{env_name}-{members[0].spec.hostname}", f"{env_name}-{index + 1}")
        )
        while name in taken:
            name = f"{name}-{index + 1}"
        taken.add(name)
        envs.append(EnvPlan(name, members))
    return envs


def project_name(explicit: str | None, plans: list[HostPlan]) -> tuple[str, str]:
    """The project's name and where it came from."""
    if explicit:
        return explicit, "--name"
    layouts = {Path(p.layout.path).name for p in plans if p.layout}
    if len(layouts) == 1:
        return layouts.pop(), "the deploy folder"
    projects = {name for p in plans for name in p.found.compose_projects}
    if len(projects) == 1:
        return projects.pop(), "the compose project"
    return _ident(Path.cwd().name, "app"), "the current folder (pass --name to choose)"


# ----------------------------------------------------------------------------- writing


def _supervisor_lines(env: EnvPlan, project: str, secrets: list[str]) -> list[str]:
    sup = env.first.supervisord
    if sup is None or sup.url is None:  # _choose takes only supervisords with a URL
        return []
    names = sup.names
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    source = "as supervisord lists them" if sup.programs else "from its config"
    lines = [
        "",
        f"[environments.{env.name}.supervisor]",
        comment(f"# supervisord pid {sup.pid} on {env.first.spec.raw}, config {sup.config}"),
        comment(f"# programs ({source}): {shown or 'none'}"),
        f"url = {value(sup.url)}",
    ]
    if sup.username is not None:
        secret = _ident(f"{project}-{env.name}-supervisor", f"{env.name}-supervisor")
        secrets.append(secret)
        lines += [
            f"username = {value(sup.username)}",
            "# its password stays where it is: store it with `opsconsole secret set " + secret + "`",
            f"password = {{ secret = {value(secret)} }}",
        ]
    return lines


def _docker_lines(env: EnvPlan) -> list[str]:
    found = env.first.found
    if not found.docker_socket or found.docker_problem is not None:
        return []
    projects = ", ".join(f"{name} ({n})" for name, n in sorted(found.compose_projects.items())) or "none"
    return [
        "",
        f"[environments.{env.name}.docker]",
        comment(f"# {_count(len(found.containers), 'container')}; compose projects: {projects}"),
        'url = "unix:///var/run/docker.sock"',
    ]


_FABRIC = [
    "# a fabfile.py is in the folder this profile was made in: once opsconsole has the",
    "# fabric strategy, deploys can call it instead:",
    '# strategy = "fabric"',
]


def _deploy_lines(env: EnvPlan, fabfile: bool, project: str) -> list[str]:
    layout = env.first.layout
    if layout is None:
        if not fabfile:
            return []
        return [
            "",
            "# no deploy folder (current -> releases/) was found; to deploy with opsconsole:",
            f"# [environments.{env.name}.deploy]",
            f"# path = {value('/srv/' + project)}",
            f"# repo = {value('git@example.com:you/' + project + '.git')}",
            *_FABRIC,
        ]
    journal = "it has a deploy journal (.opsconsole/deploys.jsonl)" if layout.journal else "no journal yet"
    restart = [
        f"supervisor:{n.split(':', 1)[0]}"
        for n in (env.first.supervisord.names if env.first.supervisord else [])
    ]
    body = [
        f"path = {value(layout.path)}",
        f"repo = {value(layout.repo or 'git@example.com:you/' + Path(layout.path).name + '.git')}",
    ]
    if restart:
        body.append(f"# restart = {value(sorted(set(restart))[:5])}")
    lines = ["", comment(f"# {layout.path}: current -> {layout.current}; {journal}")]
    if layout.repo is None:
        lines.append("# fill in repo (the git URL each host fetches), then uncomment:")
        lines += [
            f"# [environments.{env.name}.deploy]",
            *[f"# {line}" if not line.startswith("#") else line for line in body],
        ]
    else:
        lines += [f"[environments.{env.name}.deploy]", *body]
    if fabfile:
        lines += _FABRIC
    return lines


def schema_keys(section: str) -> dict[str, bool]:
    """The keys this opsconsole accepts in `[environments.E.SECTION]`, each with whether it is
    required (empty: the schema has no such section)."""
    from opsconsole.profiles.schema import ENVIRONMENT, Table

    spec = ENVIRONMENT.keys.get(section)
    if not isinstance(spec, Table):
        return {}
    return {key: item.required for key, item in spec.keys.items()}


def _section(
    env: EnvPlan, section: str, notes: list[str], values: list[tuple[str, str, list[str]]]
) -> list[str]:
    """`[environments.E.SECTION]` with the (key, TOML value, comments) the schema accepts; the
    whole block commented out when the schema requires a key discovery cannot fill."""
    keys = schema_keys(section)
    body: list[str] = []
    for key, text, comments in values:
        if key in keys:
            body += [f"{key} = {text}", *comments]
    written = {key for key, _, _ in values if key in keys}
    missing = [key for key, required in keys.items() if required and key not in written]
    lines = ["", *(comment(note) for note in notes)]
    if not missing:
        return [*lines, f"[environments.{env.name}.{section}]", *body]
    lines.append(f"# fill in {', '.join(missing)}, then uncomment:")
    lines.append(f"# [environments.{env.name}.{section}]")
    return lines + [line if line.startswith("#") else f"# {line}" for line in body]


def _systemd_lines(env: EnvPlan) -> list[str]:
    """The enabled services that are not a package's, offered as the list to keep."""
    units = env.first.found.units
    if not units or not schema_keys("systemd"):
        return []
    found = comment(f"# found: {', '.join(units[:50])}")
    notes = ["# enabled services not installed by a package: keep those of your app", found]
    return _section(env, "systemd", notes, [("units", value(units[:50]), [])])


def _nginx_lines(env: EnvPlan) -> list[str]:
    found = env.first.found
    if found.nginx is None or not schema_keys("nginx"):
        return []
    notes = [f"# {found.nginx}: its config test (`nginx -t`) was not run, it may create missing log files"]
    values: list[tuple[str, str, list[str]]] = [("binary", value(found.nginx), [])]
    for key, logs in (("access_log", found.access_logs), ("error_log", found.error_logs)):
        if logs:
            also = [comment(f"# also named in its config: {', '.join(logs[1:6])}")] if len(logs) > 1 else []
            values.append((key, value(logs[0]), also))
    return _section(env, "nginx", notes, values)


def render(
    project: str,
    envs: list[EnvPlan],
    defaults: Defaults,
    unreachable: dict[str, str],
    command: str,
    fabfile: bool,
) -> tuple[str, list[str]]:
    """The commented profile text, and the secrets it names."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    secrets: list[str] = []
    lines = [
        comment(f"# Written by `{command}` on {stamp}, from what the hosts run."),
        "# Check it with `opsconsole profile validate FILE`; lines starting with '# ' are offers.",
    ]
    for raw, why in unreachable.items():
        lines.append(comment(f"# NOT REACHED, left out: {raw}: {why}"))
    lines += ["", "[project]", f"name = {value(project)}"]
    kept = {"identity_file": defaults.identity_file, "known_hosts": defaults.known_hosts}
    if any(kept.values()):
        lines += ["", "[defaults]"] + [f"{k} = {value(v)}" for k, v in kept.items() if v]
    for env in envs:
        found = env.first.found
        names = [h.spec.raw for h in env.hosts]
        lines += [""]
        if len(names) > 1:
            lines.append(comment(f"# {', '.join(names)} run the same programs: one environment"))
        lines += [
            f"[environments.{env.name}]",
            f"hosts = {value(names)}",
            f"protected = {'true' if 'prod' in env.name else 'false'}  # true: actions need the environment's name typed",
        ]
        if found.server_names:
            scheme = "https" if found.tls else "http"
            urls = [f"{scheme}://{name}/" for name in found.server_names[:5]]
            lines.append(
                comment(f"# from Nginx server_name ({found.nginx or 'its config'}); the path is a guess:")
            )
            lines.append(f"# health = {value(urls)}")
        lines += _supervisor_lines(env, project, secrets)
        lines += _docker_lines(env)
        lines += _systemd_lines(env)
        lines += _nginx_lines(env)
        lines += _deploy_lines(env, fabfile and env is envs[0], project)
    return "\n".join(lines) + "\n", secrets


# ----------------------------------------------------------------------------- the command


def _discover(spec: HostSpec, defaults: Defaults) -> Findings:
    from opsconsole.backends.clients import make_host
    from opsconsole.backends.discover import discover

    host = make_host(spec, defaults)
    try:
        return discover(host)
    finally:
        host.close()


def _report(plan: HostPlan) -> list[str]:
    found = plan.found
    out = [f"{plan.spec.raw}: reached ({found.user or '?'})"]
    for sup in found.supervisords:
        mark = "  <- in the profile" if sup is plan.supervisord else ""
        out.append(f"  supervisord pid {sup.pid}: config {sup.config or '?'}, {sup.url or 'no URL'}{mark}")
        if sup.names:
            out.append(f"    programs: {', '.join(sup.names[:20])}")
    if found.docker_socket:
        projects = ", ".join(sorted(found.compose_projects)) or "none"
        out.append(f"  docker: {_count(len(found.containers), 'container')}, compose projects: {projects}")
    for layout in found.layouts:
        out.append(
            f"  deploy folder {layout.path} (current -> {layout.current}, journal: {'yes' if layout.journal else 'no'})"
        )
    if found.units:
        shown = "" if schema_keys("systemd") else " (this opsconsole has no [systemd] section: left out)"
        out.append(f"  systemd services not from a package: {', '.join(found.units[:20])}{shown}")
    if found.nginx:
        logs = ", ".join([*found.access_logs[:1], *found.error_logs[:1]]) or "no log paths in its config"
        shown = "" if schema_keys("nginx") else " (this opsconsole has no [nginx] section: left out)"
        out.append(f"  nginx: {found.nginx}, {logs}{shown}")
    if found.server_names:
        out.append(
            f"  nginx server names: {', '.join(found.server_names[:10])} (offered as health URLs, commented out)"
        )
    return out


def _file(path: str | None) -> str | None:
    """A file flag as the profile keeps it: `~/…` as given (expanded where it is used), any
    other path absolute (the profile may be used from another folder)."""
    if not path:
        return None
    return path if path.startswith("~") else os.path.abspath(path)


def cmd_init(args: argparse.Namespace) -> int:
    from opsconsole.sanitize import clean

    raws = list(dict.fromkeys(args.hosts))
    if len(raws) > MAX_HOSTS:
        raise UsageError(f"at most {MAX_HOSTS} hosts at once (got {len(raws)})", "Too many hosts")
    specs: list[HostSpec] = []
    for raw in raws:
        try:
            specs.append(parse_host(raw))
        except ValueError as exc:
            raise UsageError(str(exc), "Bad host") from None
    env_name = _ident(args.env_name, "")
    if env_name != args.env_name:
        raise UsageError(
            f"environment name '{args.env_name}' may hold only letters, digits, '-' and '_'", "Bad name"
        )
    explicit = Path(args.output) if args.output else None
    if explicit is not None and explicit.exists() and not args.dry_run:
        raise UsageError(
            f"{explicit} exists: profile init never overwrites a file; pass another --output",
            "Profile exists",
        )
    defaults = Defaults(
        identity_file=_file(args.identity_file),
        known_hosts=_file(args.known_hosts),
    )
    out = sys.stderr if args.dry_run else sys.stdout
    with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
        futures = [(spec, pool.submit(_discover, spec, defaults)) for spec in specs]
    plans: list[HostPlan] = []
    unreachable: dict[str, str] = {}
    for spec, future in futures:
        try:
            found = future.result()
        except OpsError as exc:
            message = exc.message.removeprefix(f"{spec.raw}: ")  # the line names the host already
            unreachable[spec.raw] = clean(message, 600)
            continue
        except Exception as exc:  # noqa: BLE001 - one host's failure never stops the others
            unreachable[spec.raw] = clean(f"{type(exc).__name__}: {exc}", 600)
            continue
        plans.append(_choose(spec, found, args.supervisor_config))
    for raw, why in unreachable.items():
        print(f"{raw}: NOT REACHED: {why}", file=out)
    if not plans:
        print("no host could be reached: nothing written", file=out)
        return ExitCode.UNREACHABLE
    project, source = project_name(args.name, plans)
    target = explicit or paths.config_dir() / f"{_ident(project, 'app')}.toml"
    if target.exists() and not args.dry_run:
        raise UsageError(
            f"{target} exists: profile init never overwrites a file; pass --output", "Profile exists"
        )
    envs = group(plans, env_name)
    fabfile = Path("fabfile.py").is_file()
    command = "opsconsole profile init " + " ".join(raws)
    text, secrets = render(project, envs, defaults, unreachable, command, fabfile)
    try:
        parse_profile_text(text, target, target.stem)
    except ProfileError as exc:  # what discovery read made an invalid profile: say so, write nothing
        raise UsageError(
            "the discovered profile would be invalid:\n" + exc.message, "Invalid profile"
        ) from None
    for plan in plans:
        for line in _report(plan):
            print(line, file=out)
    print(f"project name: {project} (from {source})", file=out)
    for env in envs:
        names = ", ".join(h.spec.raw for h in env.hosts)
        why = "they run the same programs" if len(env.hosts) > 1 else "one host"
        print(f"environment {env.name}: {names} ({why})", file=out)
    if len(envs) > 1:
        print(
            "hosts that run different programs got environments of their own: merge them if they belong together",
            file=out,
        )
    undecided = [line for plan in plans for line in plan.undecided]
    if fabfile:
        undecided.append('fabfile.py found here: offered as a commented `strategy = "fabric"` line')
    if undecided:
        print("could not decide:", file=out)
        for line in undecided:
            print(f"  {line}", file=out)
    for secret in secrets:
        print(f"store the Supervisor password with: opsconsole secret set {secret}", file=out)
    if args.dry_run:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        write_atomic(target, text.encode("utf-8"), exclusive=True)
    except FileExistsError:
        raise UsageError(f"{target} exists: profile init never overwrites a file", "Profile exists") from None
    record_trust_if_needed(target, text.encode("utf-8"))
    print(f"wrote {target}", file=out)
    return ExitCode.OK


def record_trust_if_needed(target: Path, data: bytes) -> None:
    """The file was made here and now from what the user asked for: it is theirs."""
    from opsconsole.profiles.trust import record_trust, trust_reason

    if trust_reason(target, data) is None:
        record_trust(target, data)
