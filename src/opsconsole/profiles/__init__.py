"""Profiles: one TOML file per project, strictly validated into typed, immutable data.

Errors name the file, the line and the key path (`profiles/x.toml:12: unknown key ...`), with a
suggestion for near-misses. Every section is optional; a missing section is "not configured".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from pathlib import Path

from opsconsole import paths
from opsconsole.errors import OpsError, ProfileError, UsageError
from opsconsole.profiles.convert import Problems, parse_host
from opsconsole.profiles.locate import _line_for, locate_lines
from opsconsole.profiles.model import (
    LOCAL,
    BugsinkConfig,
    CacheConfig,
    CiConfig,
    CustomAction,
    Defaults,
    DeployConfig,
    DockerConfig,
    Environment,
    HostSpec,
    LogsConfig,
    PathKey,
    Profile,
    PrometheusConfig,
    SecretRef,
    SentryConfig,
    SupervisorConfig,
    VerifyConfig,
    suggest,
)
from opsconsole.profiles.schema import _convert_profile
from opsconsole.profiles.trust import ensure_trusted

__all__ = [
    "LOCAL",
    "PathKey",
    "SecretRef",
    "HostSpec",
    "Defaults",
    "SupervisorConfig",
    "DockerConfig",
    "SentryConfig",
    "DeployConfig",
    "CiConfig",
    "BugsinkConfig",
    "PrometheusConfig",
    "VerifyConfig",
    "CacheConfig",
    "LogsConfig",
    "CustomAction",
    "Environment",
    "Profile",
    "suggest",
    "parse_host",
    "parse_profile_text",
    "load_profile",
    "read_profile",
    "load",
    "load_all",
    "all_profile_dirs",
    "ProfileEntry",
    "check_keymap",
    "display_path",
    "list_profiles",
    "resolve_profile_path",
    "running_demos",
    "demo_alive",
    "DEMO_LOCK",
    "search_dirs",
    "locate_lines",
]


# --------------------------------------------------------------------------- loading


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_profile_text(text: str, source: Path, name: str | None = None) -> Profile:
    """Validate TOML text into a Profile; raises ProfileError with file:line messages."""
    shown = display_path(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            reason = message[: match.start()].strip()
            raise ProfileError(
                [f"{shown}:{match.group(1)}:{match.group(2)}: invalid TOML: {reason}"]
            ) from None
        raise ProfileError([f"{shown}:1: invalid TOML: {message}"]) from None
    problems = Problems()
    profile = _convert_profile(data, name or source.stem, source, problems)
    if profile is None:
        index = locate_lines(text)
        lines = sorted((_line_for(path, index), message) for path, message in problems.items)
        raise ProfileError([f"{shown}:{line}: {message}" for line, message in lines])
    return profile


def check_keymap(profile: Profile, known: Collection[str]) -> None:
    """Every `[keymap]` id must be a binding of the console (ids come from its screens, so this is
    called by the console and `profile validate`); ProfileError with file:line otherwise."""
    unknown = [b for b in profile.keymap if b not in known]
    if not unknown:
        return
    try:
        index = locate_lines(profile.path.read_text())
    except OSError:
        index = {}
    shown = display_path(profile.path)
    raise ProfileError(
        [
            f"{shown}:{_line_for(('keymap', b), index)}: unknown binding id 'keymap.{b}'{suggest(b, sorted(known))}"
            " (the ids are listed by `?` in the console and in README's key table)"
            for b in unknown
        ]
    )


def read_profile(path: Path) -> tuple[Profile, bytes]:
    """The profile at `path` and the exact bytes it was parsed from (what trust is checked against)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"profile file {path} does not exist", "No such profile") from None
    except IsADirectoryError:
        raise UsageError(f"profile {path} is a folder, not a profile file", "Not a profile file") from None
    except OSError as exc:
        raise UsageError(f"cannot read profile {path}: {exc.strerror or exc}", "Unreadable profile") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProfileError([f"{display_path(path)}:{line}: the file is not valid UTF-8"]) from None
    return parse_profile_text(text, path), raw


def load_profile(path: Path) -> Profile:
    """The profile at `path`, validated but NOT checked for trust: for `profile validate|show|list`
    and for profiles the console made itself (the demo's). Everything that contacts hosts or
    services loads through `load()`."""
    return read_profile(path)[0]


def search_dirs() -> list[Path]:
    return [Path.cwd() / "profiles", paths.config_dir()]


def list_profiles() -> list[Path]:
    """Every profile file that discovery can see, project folder first."""
    found: list[Path] = []
    for folder in search_dirs():
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.toml")))
    return found


DEMO_LOCK = "alive.lock"  # in a demo's sandbox folder: flocked by its console for as long as it runs


def demo_registry() -> Path:
    """`<data dir>/demos/<id>.toml`: a symlink to each running demo's generated profile."""
    return paths.data_dir() / "demos"


def demo_alive(root: Path) -> bool:
    """Whether the demo sandbox in `root` is alive: its console holds an exclusive flock on
    `root/alive.lock` while it runs, which the kernel releases however it dies (kill -9 included).
    Another user's sandbox (unreadable) counts as alive: it is not ours to judge."""
    import fcntl

    try:
        fd = os.open(root / DEMO_LOCK, os.O_RDONLY)
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def running_demos() -> list[Path]:
    """The generated profiles of this user's live demos, newest first."""
    found: list[tuple[float, Path]] = []
    folder = demo_registry()
    for link in folder.glob("*.toml") if folder.is_dir() else ():
        try:
            target = link.resolve(strict=True)
            started = link.lstat().st_mtime
        except OSError:
            continue
        if demo_alive(target.parent):
            found.append((started, target))
    return [path for _, path in sorted(found, reverse=True)]


def _is_demo_template(path: Path) -> bool:
    try:
        return "{{SANDBOX}}" in path.read_text(errors="replace")
    except OSError:
        return False


def _running_demo() -> Path:
    """`--profile demo`: the newest live demo of this user (saying which when several run)."""
    import sys

    demos = running_demos()
    if not demos:
        raise UsageError(
            "no demo is running: start one with `opsconsole demo` (another terminal then "
            "reaches it with `opsconsole --profile demo`)",
            "No demo running",
        )
    if len(demos) > 1:
        others = ", ".join(str(p.parent) for p in demos[1:])
        print(
            f"opsconsole: {len(demos)} demos are running; --profile demo is the newest, in "
            f"{demos[0].parent} (the others: {others}; name one by its path)",
            file=sys.stderr,
        )
    return demos[0]


def resolve_profile_path(selector: str | None) -> Path:
    """`--profile NAME|PATH`, else $OPSCONSOLE_PROFILE, else ./profiles/*.toml, else the config dir.

    The name `demo` is the user's own `demo.toml` in the config dir when there is one, else the
    running demo's generated profile (never the demo's template in a checkout's ./profiles)."""
    selector = selector or os.environ.get("OPSCONSOLE_PROFILE") or None
    if selector:
        candidate = Path(selector).expanduser()
        if candidate.is_dir():
            raise UsageError(
                f"profile {selector} is a folder, not a profile file: pass the .toml file inside it",
                "Not a profile file",
            )
        if candidate.suffix == ".toml" or os.sep in selector or candidate.is_file():
            if not candidate.is_file():
                raise UsageError(f"profile file {selector} does not exist", "No such profile")
            return candidate
        # a name is looked up in the user's own config dir first: a checkout's ./profiles/NAME.toml
        # never shadows the user's profile of the same name
        for folder in reversed(search_dirs()):
            path = folder / f"{selector}.toml"
            if path.is_file() and not (selector == "demo" and _is_demo_template(path)):
                return path
        if selector == "demo":
            return _running_demo()
        names = sorted({p.stem for p in list_profiles()})
        hint = suggest(selector, names)
        known = ", ".join(names) or "none"
        raise UsageError(
            f"no profile named '{selector}'{hint}; looked in "
            + ", ".join(str(d) for d in search_dirs())
            + f" (profiles found: {known})",
            "No such profile",
        )
    for folder in search_dirs():
        if not folder.is_dir():
            continue
        candidates = sorted(folder.glob("*.toml"))
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            default = folder / "default.toml"
            if default.is_file():
                return default
            listed = ", ".join(p.stem for p in candidates)
            demo = " (a demo is running: --profile demo reaches it)" if running_demos() else ""
            raise UsageError(
                f"several profiles in {folder} ({listed}): choose one with --profile NAME "
                f"or OPSCONSOLE_PROFILE, or name one default.toml{demo}",
                "Which profile?",
            )
    raise UsageError(
        "no profile found: pass --profile PATH, set OPSCONSOLE_PROFILE, put one in ./profiles/, "
        f"or create one with `opsconsole profile init [USER@]HOST` (it goes to {paths.config_dir()})",
        "No profile",
    )


def load(selector: str | None) -> Profile:
    """The profile discovery picks, once it is trusted (raises trust.UntrustedProfile otherwise):
    nothing in an untrusted profile is contacted, resolved or run."""
    profile, raw = read_profile(resolve_profile_path(selector))
    ensure_trusted(profile, raw)
    return profile


# --------------------------------------------------------------------------- every project (--all)

ENV_PROFILES_DIR = "OPSCONSOLE_PROFILES_DIR"


class ProfileEntry:
    """One project of `--all`: its profile once loaded and trusted, else why not (an invalid or
    untrusted file is one failed project, never the end of the overview)."""

    def __init__(self, name: str, path: Path, profile: Profile | None, error: OpsError | None) -> None:
        self.name = name
        self.path = path
        self.profile = profile
        self.error = error


def all_profile_dirs() -> list[Path]:
    """The user's config dir, then `$OPSCONSOLE_PROFILES_DIR` (colon-separated folders) when set."""
    dirs = [paths.config_dir()]
    for part in os.environ.get(ENV_PROFILES_DIR, "").split(os.pathsep):
        if part.strip():
            folder = Path(part.strip()).expanduser()
            if folder not in dirs:
                dirs.append(folder)
    return dirs


def load_all() -> list[ProfileEntry]:
    """Every profile of `all_profile_dirs()`, by name (a name found twice: the first folder's),
    each loaded and checked for trust as `load` does."""
    seen: dict[str, ProfileEntry] = {}
    for folder in all_profile_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            if path.stem in seen:
                continue
            try:
                profile, raw = read_profile(path)
                ensure_trusted(profile, raw)
                seen[path.stem] = ProfileEntry(path.stem, path, profile, None)
            except OpsError as exc:
                seen[path.stem] = ProfileEntry(path.stem, path, None, exc)
    if not seen:
        raise UsageError(
            "--all found no profile: looked in " + ", ".join(str(d) for d in all_profile_dirs())
            + f" (set {ENV_PROFILES_DIR} to a folder of profiles, or create one with "
            "`opsconsole profile init [USER@]HOST`)",
            "No profile",
        )
    return list(seen.values())
