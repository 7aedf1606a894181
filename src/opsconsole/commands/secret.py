"""`opsconsole secret set|delete|check`: never prints a secret's value."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from opsconsole import secrets
from opsconsole.errors import ExitCode, UsageError
from opsconsole.profiles import load


def register(sub: Any) -> None:
    parser = sub.add_parser("secret", help="store, delete and check secrets (OS keyring)")
    ssub = parser.add_subparsers(dest="secret_command", metavar="ACTION", required=True)
    p = ssub.add_parser("set", help="store a secret (hidden prompt, or stdin when not a terminal)")
    p.add_argument("name", help="the secret's name, as profiles name it ({ secret = \"NAME\" })")
    p.set_defaults(handler=cmd_set)
    p = ssub.add_parser("delete", help="remove a secret from the keyring")
    p.add_argument("name", help="the secret's name, as profiles name it ({ secret = \"NAME\" })")
    p.set_defaults(handler=cmd_delete)
    p = ssub.add_parser("check", help="which secrets the profile names resolve, and from where")
    p.set_defaults(handler=cmd_check)


def cmd_set(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        value = getpass.getpass(f"Value for secret '{args.name}' (hidden): ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError("no value given; nothing stored", "Empty secret")
    backend = secrets.store(args.name, value)
    print(f"stored secret '{args.name}' in the keyring ({backend})")
    return ExitCode.OK


def cmd_delete(args: argparse.Namespace) -> int:
    secrets.delete(args.name)
    print(f"deleted secret '{args.name}' from the keyring")
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    refs = profile.secret_refs()
    if not refs:
        print(f"profile {profile.name} names no secrets")
        return ExitCode.OK
    status = ExitCode.OK
    for key, ref in refs:
        found, _ = secrets.lookup(ref.name)
        if found.source:
            print(f"ok       {ref.name:<24} from {found.source:<11} ({key})")
        else:
            print(f"MISSING  {ref.name:<24} ({key}): {found.problem}")
            status = ExitCode.USAGE
    return status
