"""`opsconsole profile list|show|validate|trust|untrust|init` (init: commands/profile_init.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tomli_w

from opsconsole import paths
from opsconsole.commands import profile_init
from opsconsole.errors import ExitCode, OpsError
from opsconsole.profiles import (
    Environment,
    Profile,
    SecretRef,
    check_keymap,
    display_path,
    list_profiles,
    load_profile,
    read_profile,
    resolve_profile_path,
)
from opsconsole.profiles.model import HealthUrl
from opsconsole.profiles.trust import digest, reach, record_trust, revoke_trust, trust_reason, untrusted_why
from opsconsole.record import is_record
from opsconsole.sanitize import clean


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

    p = psub.add_parser("trust", help="trust a profile from outside the config dir (records its hash)")
    p.add_argument("name", nargs="?", help="profile name or path (default: discovery)")
    p.set_defaults(handler=cmd_trust)

    p = psub.add_parser("untrust", help="forget that a profile was trusted")
    p.add_argument("name", nargs="?", help="profile name or path (default: discovery)")
    p.set_defaults(handler=cmd_untrust)

    profile_init.register(psub)


def cmd_list(args: argparse.Namespace) -> int:
    found = list_profiles()
    if not found:
        print("no profiles found in ./profiles or " + str(paths.config_dir()))
        return ExitCode.OK
    for path in found:
        try:
            profile, raw = read_profile(path)
            envs = ", ".join(profile.environments) or "no environments"
            mark = "" if trust_reason(path, raw) else "  UNTRUSTED (opsconsole profile trust PATH)"
            print(f"{path.stem:<16} {display_path(path)}  ({envs}){mark}")
        except OpsError as exc:
            first = exc.message.splitlines()[0]
            print(f"{path.stem:<16} {display_path(path)}  INVALID: {first}")
    return ExitCode.OK


def _secret_view(ref: SecretRef, trusted: bool = True) -> str:
    from opsconsole.secrets import lookup

    if not trusted:  # an untrusted profile gets no answer about the user's secrets
        return f"<secret {ref.name}: not looked up, the profile is not trusted>"
    found, _ = lookup(ref.name)
    where = f"from {found.source}" if found.source else "NOT SET"
    return f"<secret {ref.name}: {where}>"


def _table(value: Any, trusted: bool = True) -> dict[str, Any]:
    """A config record as TOML: secrets shown by name and source, nested tables as tables."""
    table: dict[str, Any] = {}
    for key, item in vars(value).items():
        if item is None:
            continue
        if isinstance(item, SecretRef):
            table[key] = _secret_view(item, trusted)
        elif isinstance(item, tuple):
            table[key] = list(item)
        elif is_record(item):
            table[key] = _table(item, trusted)
        else:
            table[key] = item
    return table


def _env_dict(env: Environment, trusted: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hosts": [h.raw for h in env.hosts],
        "protected": env.protected,
        "read_only": env.read_only,
    }
    if env.color:
        out["color"] = env.color
    if env.health:
        out["health"] = [
            {"url": str(u), "expect": list(u.expect)} if isinstance(u, HealthUrl) and u.expect else str(u)
            for u in env.health
        ]
    for section in ("supervisor", "docker", "sentry", "bugsink", "ci", "prometheus", "deploy", "cache", "logs"):
        value = getattr(env, section)
        out[section] = "not configured" if value is None else _table(value, trusted)
    if env.actions:
        out["actions"] = [
            {"name": a.name, "title": a.label, "command": a.command, "confirm": a.confirm}
            for a in env.actions
        ]
    return out


def profile_dict(profile: Profile, trusted: bool = True) -> dict[str, Any]:
    defaults = {k: v for k, v in vars(profile.defaults).items() if v is not None}
    return {
        "project": {
            "name": profile.project_name,
            **({"description": profile.description} if profile.description else {}),
        },
        "defaults": defaults,
        "environments": {name: _env_dict(env, trusted) for name, env in profile.environments.items()},
        "keymap": dict(profile.keymap),
    }


def cmd_show(args: argparse.Namespace) -> int:
    """Shows any profile, trusted or not (reading it is how you decide to trust it); for an
    untrusted one, secrets are not looked up and what it would reach is listed first."""
    profile, raw = read_profile(resolve_profile_path(args.name or args.profile))
    trusted = trust_reason(profile.path, raw) is not None
    print(f"# profile {profile.name} from {clean(display_path(profile.path))}")
    if not trusted:
        print(f"# NOT TRUSTED: {untrusted_why(profile.path)}; it would reach:")
        for line in reach(profile):
            print(f"#   {line}")
    sys.stdout.write(tomli_w.dumps(profile_dict(profile, trusted)))
    return ExitCode.OK


def cmd_trust(args: argparse.Namespace) -> int:
    path = resolve_profile_path(args.name or args.profile)
    profile, raw = read_profile(path)  # an invalid profile is refused here, before it is trusted
    reason = trust_reason(path, raw)
    if reason is not None and not reason.startswith("you trusted"):
        print(f"{display_path(path)} is trusted already: {reason}")
        return ExitCode.OK
    record_trust(path, raw)
    print(f"trusted {display_path(path)} ({digest(raw)[:19]}…); it may now reach:")
    for line in reach(profile):
        print(f"  {line}")
    print("a change to the file makes it untrusted again")
    return ExitCode.OK


def cmd_untrust(args: argparse.Namespace) -> int:
    path = resolve_profile_path(args.name or args.profile)
    if revoke_trust(path):
        print(f"{display_path(path)} is no longer trusted")
    else:
        print(f"{display_path(path)} was not trusted with `opsconsole profile trust`")
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
            from opsconsole.actions.fabric_deploy import check_fabric

            check_fabric(profile)
        except OpsError as exc:
            print(exc.message, file=sys.stderr)
            status = ExitCode.USAGE
            continue
        envs = ", ".join(profile.environments) or "no environments"
        print(f"{display_path(path)}: valid ({envs})")
    return status
