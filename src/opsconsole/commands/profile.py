"""`opsconsole profile list|show|validate|init`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tomli_w

from opsconsole import paths
from opsconsole.atomic import write_atomic
from opsconsole.errors import ExitCode, OpsError, ProfileError, UsageError
from opsconsole.profiles import (
    Environment,
    Profile,
    SecretRef,
    check_keymap,
    display_path,
    list_profiles,
    load,
    load_profile,
    parse_host,
    parse_profile_text,
    resolve_profile_path,
)
from opsconsole.record import is_record


def register(sub: Any) -> None:
    parser = sub.add_parser("profile", help="list, show, validate and create profiles")
    psub = parser.add_subparsers(dest="profile_command", metavar="ACTION", required=True)

    p = psub.add_parser("list", help="profiles discovery can see")
    p.set_defaults(handler=cmd_list)

    p = psub.add_parser("show", help="the resolved profile, secrets masked")
    p.add_argument("name", nargs="?", help="profile name or path (default: discovery)")
    p.set_defaults(handler=cmd_show)

    p = psub.add_parser("validate", help="check profiles; exit 0 when valid, 2 otherwise")
    p.add_argument("paths", nargs="*", help="profile files (default: the discovered profile)")
    p.set_defaults(handler=cmd_validate)

    p = psub.add_parser("init", help="write a new profile (prompts for what flags leave out)")
    p.add_argument("name", help="profile name")
    p.add_argument("--output", "-o", help="file to write (default: the user config dir)")
    p.add_argument("--project", help="project name (default: NAME)")
    p.add_argument("--env", dest="env_name", help="first environment's name (default: staging)")
    p.add_argument("--host", dest="hosts", action="append", help="host of that environment (repeatable)")
    p.add_argument("--user", help="default SSH user")
    p.add_argument("--supervisor-url", help="supervisord URL on each host (unix:// or http://)")
    p.add_argument("--docker-url", help="Docker URL on each host (unix://)")
    p.add_argument("--health", action="append", help="health URL (repeatable)")
    p.add_argument("--protected", action="store_true", help="mark the environment protected")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=cmd_init)


def cmd_list(args: argparse.Namespace) -> int:
    found = list_profiles()
    if not found:
        print("no profiles found in ./profiles or " + str(paths.config_dir()))
        return ExitCode.OK
    for path in found:
        try:
            profile = load_profile(path)
            envs = ", ".join(profile.environments) or "no environments"
            print(f"{path.stem:<16} {display_path(path)}  ({envs})")
        except OpsError as exc:
            first = exc.message.splitlines()[0]
            print(f"{path.stem:<16} {display_path(path)}  INVALID: {first}")
    return ExitCode.OK


def _secret_view(ref: SecretRef) -> str:
    from opsconsole.secrets import lookup

    found, _ = lookup(ref.name)
    where = f"from {found.source}" if found.source else "NOT SET"
    return f"<secret {ref.name}: {where}>"


def _table(value: Any) -> dict[str, Any]:
    """A config record as TOML: secrets shown by name and source, nested tables as tables."""
    table: dict[str, Any] = {}
    for key, item in vars(value).items():
        if item is None:
            continue
        if isinstance(item, SecretRef):
            table[key] = _secret_view(item)
        elif isinstance(item, tuple):
            table[key] = list(item)
        elif is_record(item):
            table[key] = _table(item)
        else:
            table[key] = item
    return table


def _env_dict(env: Environment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hosts": [h.raw for h in env.hosts],
        "protected": env.protected,
        "read_only": env.read_only,
    }
    if env.color:
        out["color"] = env.color
    if env.health:
        out["health"] = list(env.health)
    for section in ("supervisor", "docker", "sentry", "ci", "deploy", "cache", "logs"):
        value = getattr(env, section)
        out[section] = "not configured" if value is None else _table(value)
    if env.actions:
        out["actions"] = [
            {"name": a.name, "title": a.label, "command": a.command, "confirm": a.confirm}
            for a in env.actions
        ]
    return out


def profile_dict(profile: Profile) -> dict[str, Any]:
    defaults = {k: v for k, v in vars(profile.defaults).items() if v is not None}
    return {
        "project": {
            "name": profile.project_name,
            **({"description": profile.description} if profile.description else {}),
        },
        "defaults": defaults,
        "environments": {name: _env_dict(env) for name, env in profile.environments.items()},
        "keymap": dict(profile.keymap),
    }


def cmd_show(args: argparse.Namespace) -> int:
    profile = load(args.name or args.profile)
    print(f"# profile {profile.name} from {display_path(profile.path)}")
    sys.stdout.write(tomli_w.dumps(profile_dict(profile)))
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    targets = [Path(p) for p in args.paths] or [resolve_profile_path(args.profile)]
    status = ExitCode.OK
    for path in targets:
        try:
            profile = load_profile(path)
            if profile.keymap:
                from opsconsole.screens.keymap import binding_ids

                check_keymap(profile, binding_ids())
        except OpsError as exc:
            print(exc.message, file=sys.stderr)
            status = ExitCode.USAGE
            continue
        envs = ", ".join(profile.environments) or "no environments"
        print(f"{display_path(path)}: valid ({envs})")
    return status


def _ask(prompt: str, default: str | None = None) -> str:
    suffix = f" [{default}]" if default else ""
    answer = input(f"{prompt}{suffix}: ").strip()
    return answer or (default or "")


def cmd_init(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    target = Path(args.output) if args.output else paths.config_dir() / f"{args.name}.toml"
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it", "Profile exists")
    env_name = args.env_name or (_ask("First environment", "staging") if interactive else "staging")
    hosts = args.hosts or (
        [
            h.strip()
            for h in _ask("Hosts (comma separated, 'local' for this machine)", "local").split(",")
            if h.strip()
        ]
        if interactive
        else ["local"]
    )
    for host in hosts:
        try:
            parse_host(host)
        except ValueError as exc:
            raise UsageError(str(exc), "Bad host") from None
    supervisor_url = args.supervisor_url or (
        _ask("supervisord URL on each host (empty: none)", "unix:///var/run/supervisor.sock")
        if interactive
        else None
    )
    env: dict[str, Any] = {"hosts": hosts}
    if args.health:
        env["health"] = args.health
    if args.protected:
        env["protected"] = True
    if supervisor_url:
        env["supervisor"] = {"url": supervisor_url}
    if args.docker_url:
        env["docker"] = {"url": args.docker_url}
    data: dict[str, Any] = {"project": {"name": args.project or args.name}}
    if args.user:
        data["defaults"] = {"user": args.user}
    data["environments"] = {env_name: env}
    text = tomli_w.dumps(data)
    try:
        parse_profile_text(text, target, args.name)
    except ProfileError as exc:
        raise UsageError("the profile would be invalid:\n" + exc.message, "Invalid profile") from None
    write_atomic(target, text.encode("utf-8"))
    print(f"wrote {target}")
    return ExitCode.OK
