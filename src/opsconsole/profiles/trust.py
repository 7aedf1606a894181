"""Trust of profiles: a profile is code, so one from outside the user's config dir is used only once
the user has trusted that exact content (as `direnv allow` and `mise trust` do).

Trusted are: profiles in the user's config dir; profiles below a folder of `$OPSCONSOLE_TRUSTED_PATHS`
(colon-separated absolute folders, read from the environment only: for CI and tests); and profiles
whose content hash was recorded by `opsconsole profile trust PATH` for that path. A recorded profile
that changes is untrusted again. The record lives in the user's data dir (`trusted-profiles.json`,
mode 0600). Until a profile is trusted nothing is contacted, no secret is resolved, no command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole import paths
from opsconsole.errors import OpsError, UsageError

# hashlib, json, getpass, the atomic writer and the sanitizer load on first use: a profile in a
# trusted folder (the common case) is checked by its path alone, before the console's first frame

if TYPE_CHECKING:  # the profile package imports this module: no import back at run time
    from opsconsole.profiles.model import Profile

ENV_TRUSTED_PATHS = "OPSCONSOLE_TRUSTED_PATHS"
STORE_NAME = "trusted-profiles.json"
STORE_MAX_BYTES = 4 * 1024 * 1024  # a store larger than this is not ours: it is refused, not parsed


class UntrustedProfile(OpsError):
    """The profile is not trusted yet; carries what it would reach, for the prompt or the message."""

    exit_code = UsageError.exit_code

    def __init__(self, profile: Profile, content: bytes, why: str) -> None:
        self.profile = profile
        self.content = content
        self.why = why
        shown = str(profile.path)
        super().__init__(
            f"profile {shown} is not trusted: {why}. A profile is code: it chooses the hosts your SSH "
            "keys and agent are offered to, the URLs your tokens are sent to and the commands that run, "
            "so nothing in it is used until you trust it. Read it (`opsconsole profile show "
            f"{shown}`), then run `opsconsole profile trust {shown}`",
            "Untrusted profile",
        )


def digest(content: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(content).hexdigest()


def store_path() -> Path:
    return paths.data_dir() / STORE_NAME


def _key(path: Path) -> str:
    return str(path.expanduser().resolve())


def _below(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def trusted_folders() -> list[tuple[Path, str]]:
    """Folders whose profiles are trusted by place, each with the reason shown to the user."""
    folders = [(paths.config_dir().expanduser().resolve(), "it is in your config dir")]
    for entry in os.environ.get(ENV_TRUSTED_PATHS, "").split(os.pathsep):
        entry = entry.strip()
        if entry and os.path.isabs(entry):  # a relative entry would trust whatever folder you stand in
            folders.append((Path(entry).resolve(), f"it is below {entry} (${ENV_TRUSTED_PATHS})"))
    return folders


def _read_store() -> dict[str, dict[str, str]]:
    import json

    path = store_path()
    try:
        with path.open("rb") as handle:
            raw = handle.read(STORE_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(
            f"cannot read the trusted-profiles record {path}: {exc.strerror or exc}", "Trust record unreadable"
        ) from None
    if len(raw) > STORE_MAX_BYTES:
        raise UsageError(
            f"the trusted-profiles record {path} is over {STORE_MAX_BYTES // 1024 // 1024} MiB: "
            "remove it and trust your profiles again",
            "Trust record unreadable",
        )
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(
            f"the trusted-profiles record {path} is not valid JSON: remove it and trust your profiles again",
            "Trust record unreadable",
        ) from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict):
        return {}
    kept: dict[str, dict[str, str]] = {}
    for key, entry in profiles.items():
        if isinstance(key, str) and isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            kept[key] = {k: v for k, v in entry.items() if isinstance(k, str) and isinstance(v, str)}
    return kept


def _write_store(entries: dict[str, dict[str, str]]) -> None:
    import json

    from opsconsole.atomic import write_atomic

    # entries whose file is gone (a demo's temp profile, a deleted checkout) are dropped on each write
    kept = {key: entry for key, entry in entries.items() if Path(key).is_file()}
    data = json.dumps({"version": 1, "profiles": kept}, indent=2, sort_keys=True) + "\n"
    write_atomic(store_path(), data.encode("utf-8"), mode=0o600)


def trust_reason(path: Path, content: bytes) -> str | None:
    """Why this content at this path is trusted, or None when it is not."""
    resolved = path.expanduser().resolve()
    for folder, reason in trusted_folders():
        if _below(resolved, folder):
            return reason
    entry = _read_store().get(_key(path))
    if entry is not None and entry.get("sha256") == digest(content):
        return f"you trusted it on {entry.get('trusted_at', '?')}"
    return None


def untrusted_why(path: Path) -> str:
    """What the user is told about an untrusted profile: never seen, or changed since trusted."""
    try:
        entry = _read_store().get(_key(path))
    except OpsError:
        entry = None
    if entry is not None:
        return f"it changed since you trusted it on {entry.get('trusted_at', '?')}"
    return "it is outside your config dir (" + str(paths.config_dir()) + ") and you have not trusted it"


def ensure_trusted(profile: Profile, content: bytes) -> None:
    """Raise UntrustedProfile unless `content` (the bytes `profile` was parsed from) is trusted."""
    if trust_reason(profile.path, content) is None:
        raise UntrustedProfile(profile, content, untrusted_why(profile.path))


def record_trust(path: Path, content: bytes) -> None:
    """Trust this exact content at this path (the bytes that were shown and parsed, not a re-read)."""
    import getpass
    import socket

    from opsconsole.human import utc_stamp

    entries = _read_store()
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        who = "unknown"
    entries[_key(path)] = {
        "sha256": digest(content),
        "trusted_at": utc_stamp(),
        "by": who,
    }
    _write_store(entries)


def revoke_trust(path: Path) -> bool:
    """Forget a recorded trust; False when there was none."""
    entries = _read_store()
    if entries.pop(_key(path), None) is None:
        return False
    _write_store(entries)
    return True


def _urls_of(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        if "://" in value:
            found.append(value)
    elif isinstance(value, tuple):
        for item in value:
            _urls_of(item, found)


def reach(profile: Profile) -> list[str]:
    """What the profile would make the console reach, one line each: hosts, URLs, secrets, commands,
    key files. Shown before a profile is trusted; reads nothing but the profile."""
    lines: list[str] = []
    defaults = profile.defaults
    if defaults.known_hosts:
        lines.append(f"host keys checked against: {defaults.known_hosts}")
    if defaults.identity_file:
        lines.append(f"SSH key offered: {defaults.identity_file}")
    secrets = sorted({ref.name for _, ref in profile.secret_refs()})
    for env in profile.environments.values():
        where = f"[{env.name}]"
        hosts = [h.raw for h in env.hosts]
        if hosts:
            lines.append(f"{where} SSH to: {', '.join(hosts)}" + ("" if hosts != ["local"] else " (this machine)"))
        urls: list[str] = list(env.health)
        for section in (env.supervisor, env.docker, env.sentry, env.bugsink, env.ci, env.prometheus):
            if section is not None:
                for item in vars(section).values():
                    _urls_of(item, urls)
        if urls:
            lines.append(f"{where} URLs contacted: {', '.join(dict.fromkeys(urls))}")
        env_secrets = sorted(
            {ref.name for key, ref in profile.secret_refs() if key.startswith(f"environments.{env.name}.")}
        )
        if env_secrets:
            lines.append(f"{where} secrets sent: {', '.join(env_secrets)}")
        commands: list[str] = []
        if env.deploy is not None:
            commands.append(f"git clone/fetch {env.deploy.repo} into {env.deploy.path}")
            commands.extend(env.deploy.build)
            commands.extend(f"restart {r}" for r in env.deploy.restart)
            if env.deploy.host_health:
                commands.append(f"health {env.deploy.host_health}")
        if env.cache is not None:
            commands.extend(env.cache.purge)
        commands.extend(f"{a.name}: {a.command}" for a in env.actions)
        if env.logs is not None:
            commands.extend(f"tail {f}" for f in env.logs.files)
        for command in commands:
            lines.append(f"{where} runs: {command}")
    if not secrets and not lines:
        lines.append("nothing: the profile names no host, URL, secret or command")
    from opsconsole.sanitize import clean

    # the profile is not trusted yet: what it says is shown with its control characters neutralised
    return [clean(line, 400) for line in lines]
