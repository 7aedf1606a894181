"""Profiles: one TOML file per project, strictly validated into typed, immutable data.

Errors name the file, the line and the key path (`profiles/x.toml:12: unknown key ...`), with a
suggestion for near-misses. Every section is optional; a missing section is "not configured".
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconsole import paths
from opsconsole.errors import ProfileError, UsageError

LOCAL = "local"
PathKey = tuple[str | int, ...]


# --------------------------------------------------------------------------- typed profile


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret by name; the value comes from the environment or the keyring."""

    name: str

    def __str__(self) -> str:
        return f"<secret {self.name}>"


@dataclass(frozen=True)
class HostSpec:
    """`local`, or an SSH target `[user@]host[:port]` (user and port fall back to defaults/ssh_config)."""

    raw: str
    hostname: str
    user: str | None = None
    port: int | None = None

    @property
    def is_local(self) -> bool:
        return self.raw == LOCAL

    @property
    def label(self) -> str:
        return self.raw


@dataclass(frozen=True)
class Defaults:
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    timeout: float = 5.0
    refresh: float = 5.0


@dataclass(frozen=True)
class SupervisorConfig:
    url: str = "unix:///var/run/supervisor.sock"
    username: str | None = None
    password: SecretRef | None = None


@dataclass(frozen=True)
class DockerConfig:
    url: str = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class SentryConfig:
    organization: str
    project: str
    token: SecretRef
    url: str = "https://sentry.io"
    environment: str | None = None


@dataclass(frozen=True)
class DeployConfig:
    path: str
    repo: str
    branch: str = "main"
    keep_releases: int = 5
    shared: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheConfig:
    purge: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogsConfig:
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomAction:
    name: str
    command: str
    title: str = ""
    confirm: bool = True

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class Environment:
    name: str
    hosts: tuple[HostSpec, ...] = ()
    color: str | None = None
    description: str | None = None
    protected: bool = False
    read_only: bool = False
    health: tuple[str, ...] = ()
    supervisor: SupervisorConfig | None = None
    docker: DockerConfig | None = None
    sentry: SentryConfig | None = None
    deploy: DeployConfig | None = None
    cache: CacheConfig | None = None
    logs: LogsConfig | None = None
    actions: tuple[CustomAction, ...] = ()

    def host(self, raw: str) -> HostSpec:
        for host in self.hosts:
            if raw in (host.raw, host.hostname):
                return host
        known = ", ".join(h.raw for h in self.hosts) or "none"
        raise UsageError(f"environment '{self.name}' has no host '{raw}' (hosts: {known})", "Unknown host")

    def action(self, name: str) -> CustomAction:
        for action in self.actions:
            if action.name == name:
                return action
        known = ", ".join(a.name for a in self.actions) or "none"
        raise UsageError(
            f"environment '{self.name}' has no custom action '{name}' (actions: {known})", "Unknown action"
        )


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    project_name: str
    description: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    environments: Mapping[str, Environment] = field(default_factory=dict)
    keymap: Mapping[str, str] = field(default_factory=dict)

    def env(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            hint = _suggest(name, list(self.environments))
            raise UsageError(
                f"profile '{self.name}' has no environment '{name}'{hint} (environments: {known})",
                "Unknown environment",
            ) from None

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret the profile names, with the key path that names it."""
        refs: list[tuple[str, SecretRef]] = []
        for env in self.environments.values():
            if env.supervisor and env.supervisor.password:
                refs.append((f"environments.{env.name}.supervisor.password", env.supervisor.password))
            if env.sentry:
                refs.append((f"environments.{env.name}.sentry.token", env.sentry.token))
        return refs


# --------------------------------------------------------------------------- schema

Converter = Callable[[Any, PathKey, "Problems"], Any]


class Problems:
    """Collects validation problems with their key paths; rendered with file:line at the end."""

    def __init__(self) -> None:
        self.items: list[tuple[PathKey, str]] = []

    def add(self, path: PathKey, message: str) -> None:
        self.items.append((path, message))


def dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


_TYPE_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "true or false", list: "an array"}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _str(value: Any, path: PathKey, problems: Problems) -> str | None:
    if isinstance(value, str):
        return value
    problems.add(path, f"'{dotted(path)}' must be a string, not {_type_name(value)}")
    return None


def _nonempty_str(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = _str(value, path, problems)
    if text is not None and not text.strip():
        problems.add(path, f"'{dotted(path)}' must not be empty")
        return None
    return text


MAX_SECONDS = 3600.0
MAX_COUNT = 10_000


def _positive_float(value: Any, path: PathKey, problems: Problems) -> float | None:
    """Seconds: finite, 0 < t <= 3600 (inf would overflow timers, nan would disable every timeout)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"'{dotted(path)}' must be a number of seconds, not {_type_name(value)}")
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        problems.add(
            path,
            f"'{dotted(path)}' must be a number of seconds above 0 and at most {MAX_SECONDS:g} (got {value})",
        )
        return None
    return float(value)


def _positive_int(value: Any, path: PathKey, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"'{dotted(path)}' must be an integer, not {_type_name(value)}")
        return None
    if not 1 <= value <= MAX_COUNT:
        problems.add(path, f"'{dotted(path)}' must be between 1 and {MAX_COUNT} (got {value})")
        return None
    return value


def _shared(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    """Paths linked from `shared/` into each release: relative, inside the release, once each."""
    items = _str_list(value, path, problems)
    if items is None:
        return None
    out: list[str] = []
    ok = True
    for index, item in enumerate(items):
        where = f"'{dotted((*path, index))}'"
        parts = [p for p in item.strip().split("/") if p not in ("", ".")]
        if item.startswith("/") or item.startswith("~"):
            problems.add(
                (*path, index), f"{where}: '{item}' must be a path relative to the release, not absolute"
            )
            ok = False
        elif ".." in parts:
            problems.add((*path, index), f"{where}: '{item}' must stay inside the release (no '..')")
            ok = False
        elif not parts or any(c in item for c in "\n\r\t\0"):
            problems.add((*path, index), f"{where}: '{item}' is not a file or folder name inside the release")
            ok = False
        elif parts[0] in ("REVISION", ".opsconsole"):
            problems.add((*path, index), f"{where}: '{item}' is reserved by opsconsole")
            ok = False
        else:
            normal = "/".join(parts)
            if normal in out:
                problems.add((*path, index), f"{where}: '{normal}' is listed twice")
                ok = False
            out.append(normal)
    for a in out:  # "media" and "media/uploads": the second would be linked inside the first link
        for b in out:
            if b.startswith(a + "/"):
                problems.add(path, f"'{dotted(path)}': '{b}' lies inside '{a}', which is already shared")
                ok = False
    return tuple(out) if ok else None


def _deploy_path(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = _nonempty_str(value, path, problems)
    if text is None:
        return None
    if any(c in text for c in "\n\r\0"):
        problems.add(path, f"'{dotted(path)}' must be one line")
        return None
    if not (text.startswith("/") or text.startswith("~/")):
        problems.add(
            path,
            f"'{dotted(path)}' must be absolute or start with '~/' (the SSH user's home on each host), "
            f"got '{text}'",
        )
        return None
    stripped = text.rstrip("/")
    if stripped in ("", "~") or ".." in stripped.split("/"):
        problems.add(path, f"'{dotted(path)}' must name a folder of its own (got '{text}')")
        return None
    return stripped


def _bool(value: Any, path: PathKey, problems: Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(path, f"'{dotted(path)}' must be true or false, not {_type_name(value)}")
    return None


def _str_list(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.add(path, f"'{dotted(path)}' must be an array of strings, not {_type_name(value)}")
        return None
    out: list[str] = []
    for index, item in enumerate(value):
        text = _nonempty_str(item, (*path, index), problems)
        if text is not None:
            out.append(text)
    return tuple(out)


def _secret(value: Any, path: PathKey, problems: Problems) -> SecretRef | None:
    if isinstance(value, str):
        problems.add(
            path,
            f"'{dotted(path)}' must name a secret, not hold one: write "
            f'{{ secret = "NAME" }} and supply it with `opsconsole secret set NAME` '
            "or the environment variable OPSCONSOLE_SECRET_NAME",
        )
        return None
    if not isinstance(value, dict):
        problems.add(path, f"'{dotted(path)}' must be {{ secret = \"NAME\" }}, not {_type_name(value)}")
        return None
    for key in value:
        if key != "secret":
            problems.add((*path, key), f"unknown key '{dotted((*path, key))}'{_suggest(key, ['secret'])}")
    name = value.get("secret")
    if name is None:
        problems.add(path, f"'{dotted(path)}' must be {{ secret = \"NAME\" }}")
        return None
    text = _nonempty_str(name, (*path, "secret"), problems)
    if text is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", text):
        problems.add(
            (*path, "secret"), f"secret name '{text}' may hold only letters, digits, '-', '_' and '.'"
        )
        return None
    return SecretRef(text)


def _url(schemes: tuple[str, ...]) -> Converter:
    def convert(value: Any, path: PathKey, problems: Problems) -> str | None:
        text = _nonempty_str(value, path, problems)
        if text is None:
            return None
        if not any(text.startswith(f"{scheme}://") for scheme in schemes):
            allowed = ", ".join(f"{s}://" for s in schemes)
            problems.add(
                path, f"'{dotted(path)}' must start with {allowed} (got '{_without_credentials(text)}')"
            )
            return None
        if _has_credentials(text):
            problems.add(
                path,
                f"'{dotted(path)}' carries credentials (user:password@): a profile never holds secrets. "
                f"Remove them from the URL and name a secret instead ({_secret_hint(path)})",
            )
            return None
        return text

    return convert


_SECRET_HINT = {
    "url": 'e.g. supervisor.username plus supervisor.password = { secret = "NAME" }, or sentry.token = { secret = "NAME" }',
    "health": "health URLs take no credentials: expose an unauthenticated health endpoint",
    "*": 'e.g. password = { secret = "NAME" }',
}


def _secret_hint(path: PathKey) -> str:
    key = next((str(p) for p in reversed(path) if isinstance(p, str)), "*")
    return _SECRET_HINT.get(key, _SECRET_HINT["*"])


def _has_credentials(url: str) -> bool:
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return "@" in authority


def _without_credentials(url: str) -> str:
    """The URL with any user:password@ cut out, for messages."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/?#@]*@", r"\1***@", url)


def _url_list(schemes: tuple[str, ...]) -> Converter:
    one = _url(schemes)

    def convert(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            problems.add(path, f"'{dotted(path)}' must be an array of URLs, not {_type_name(value)}")
            return None
        out = [one(item, (*path, i), problems) for i, item in enumerate(value)]
        return tuple(x for x in out if x is not None)

    return convert


_HOST_RE = re.compile(
    r"^(?:(?P<user>[^@\s/]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?$"
)


def parse_host(raw: str) -> HostSpec:
    """Parse `local` or `[user@]host[:port]`; raises ValueError with the reason."""
    if raw == LOCAL:
        return HostSpec(raw=LOCAL, hostname=LOCAL)
    match = _HOST_RE.match(raw)
    if not match:
        raise ValueError(f'\'{raw}\' is not a host: use "local" or "[user@]host[:port]"')
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} in '{raw}' is out of range")
    hostname = match.group("host").strip("[]")
    return HostSpec(raw=raw, hostname=hostname, user=match.group("user"), port=port)


def _hosts(value: Any, path: PathKey, problems: Problems) -> tuple[HostSpec, ...] | None:
    items = _str_list(value, path, problems)
    if items is None:
        return None
    hosts: list[HostSpec] = []
    seen: dict[tuple[str, str | None, int | None], str] = {}
    for index, raw in enumerate(items):
        try:
            spec = parse_host(raw)
        except ValueError as exc:
            problems.add((*path, index), f"'{dotted((*path, index))}': {exc}")
            continue
        key = (spec.hostname.lower(), spec.user, spec.port)
        if key in seen:
            problems.add(
                (*path, index),
                f"'{dotted((*path, index))}': '{raw}' is the same host as '{seen[key]}' (each host once per "
                "environment: a deploy would be refused by its own lock)",
            )
            continue
        seen[key] = raw
        hosts.append(spec)
    return tuple(hosts)


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _restart(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    items = _str_list(value, path, problems)
    if items is None:
        return None
    for index, item in enumerate(items):
        kind, sep, name = item.partition(":")
        if (
            sep
            and kind in ("supervisor", "docker")
            and not _NAME_RE.match(name.replace(":", "").replace("*", "x"))
        ):
            problems.add((*path, index), f"'{dotted((*path, index))}': '{name}' is not a valid {kind} name")
    return items


@dataclass(frozen=True)
class Key:
    convert: Converter
    required: bool = False


@dataclass(frozen=True)
class Table:
    keys: Mapping[str, Key | Table | TableArray]
    build: Callable[..., Any]
    required: bool = False


@dataclass(frozen=True)
class TableArray:
    item: Table
    required: bool = False


_SCHEMES_SUPERVISOR = ("unix", "http", "https")
_SCHEMES_DOCKER = ("unix", "tcp", "http", "https")
_SCHEMES_HTTP = ("http", "https")

SUPERVISOR = Table(
    {"url": Key(_url(_SCHEMES_SUPERVISOR)), "username": Key(_nonempty_str), "password": Key(_secret)},
    SupervisorConfig,
)
DOCKER = Table({"url": Key(_url(_SCHEMES_DOCKER))}, DockerConfig)
SENTRY = Table(
    {
        "url": Key(_url(_SCHEMES_HTTP)),
        "organization": Key(_nonempty_str, required=True),
        "project": Key(_nonempty_str, required=True),
        "environment": Key(_nonempty_str),
        "token": Key(_secret, required=True),
    },
    SentryConfig,
)
DEPLOY = Table(
    {
        "path": Key(_deploy_path, required=True),
        "repo": Key(_nonempty_str, required=True),
        "branch": Key(_nonempty_str),
        "keep_releases": Key(_positive_int),
        "shared": Key(_shared),
        "build": Key(_str_list),
        "restart": Key(_restart),
    },
    DeployConfig,
)
CACHE = Table({"purge": Key(_str_list)}, CacheConfig)
LOGS = Table({"files": Key(_str_list)}, LogsConfig)


def _action_name(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = _nonempty_str(value, path, problems)
    if text is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", text):
        problems.add(
            path, f"'{dotted(path)}': action names use lower-case letters, digits, '-' and '_' (got '{text}')"
        )
        return None
    return text


ACTION = Table(
    {
        "name": Key(_action_name, required=True),
        "title": Key(_str),
        "command": Key(_nonempty_str, required=True),
        "confirm": Key(_bool),
    },
    CustomAction,
)
ENVIRONMENT = Table(
    {
        "hosts": Key(_hosts),
        "color": Key(_nonempty_str),
        "description": Key(_str),
        "protected": Key(_bool),
        "read_only": Key(_bool),
        "health": Key(_url_list(_SCHEMES_HTTP)),
        "supervisor": SUPERVISOR,
        "docker": DOCKER,
        "sentry": SENTRY,
        "deploy": DEPLOY,
        "cache": CACHE,
        "logs": LOGS,
        "actions": TableArray(ACTION),
    },
    Environment,
)
PROJECT = Table({"name": Key(_nonempty_str), "description": Key(_str)}, dict)
DEFAULTS = Table(
    {
        "user": Key(_nonempty_str),
        "identity_file": Key(_nonempty_str),
        "known_hosts": Key(_nonempty_str),
        "timeout": Key(_positive_float),
        "refresh": Key(_positive_float),
    },
    Defaults,
)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _convert_table(data: Any, schema: Table, path: PathKey, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        problems.add(path, f"'{dotted(path)}' must be a table, not {_type_name(data)}")
        return None
    out: dict[str, Any] = {}
    ok = True
    for key, value in data.items():
        spec = schema.keys.get(key)
        key_path = (*path, key)
        if spec is None:
            problems.add(key_path, f"unknown key '{dotted(key_path)}'{_suggest(key, list(schema.keys))}")
            ok = False
            continue
        if isinstance(spec, Key):
            converted = spec.convert(value, key_path, problems)
        elif isinstance(spec, Table):
            table = _convert_table(value, spec, key_path, problems)
            converted = None if table is None else spec.build(**table)
        else:
            converted = _convert_array(value, spec, key_path, problems)
        if converted is None:
            ok = False
        else:
            out[key] = converted
    for key, spec in schema.keys.items():
        if spec.required and key not in data:
            problems.add(path, f"'{dotted(path)}' is missing the required key '{key}'")
            ok = False
    return out if ok else None


def _convert_array(data: Any, spec: TableArray, path: PathKey, problems: Problems) -> tuple[Any, ...] | None:
    if not isinstance(data, list):
        problems.add(path, f"'{dotted(path)}' must be an array of tables ([[{dotted(path)}]])")
        return None
    items = []
    for index, item in enumerate(data):
        table = _convert_table(item, spec.item, (*path, index), problems)
        if table is not None:
            items.append(spec.item.build(**table))
    return tuple(items) if len(items) == len(data) else None


def _convert_environment(name: str, data: Any, problems: Problems) -> Environment | None:
    path: PathKey = ("environments", name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        problems.add(path, f"environment name '{name}' may hold only letters, digits, '-' and '_'")
        return None
    table = _convert_table(data, ENVIRONMENT, path, problems)
    if table is None:
        return None
    seen: set[str] = set()
    for index, action in enumerate(table.get("actions", ())):
        if action.name in seen:
            problems.add((*path, "actions", index, "name"), f"custom action '{action.name}' is defined twice")
            return None
        seen.add(action.name)
    return Environment(name=name, **table)


def _convert_profile(data: dict[str, Any], name: str, source: Path, problems: Problems) -> Profile | None:
    allowed = ["project", "defaults", "environments", "keymap"]
    for key in data:
        if key not in allowed:
            problems.add((key,), f"unknown key '{key}'{_suggest(key, allowed)}")
    project = _convert_table(data.get("project", {}), PROJECT, ("project",), problems) or {}
    defaults_table = _convert_table(data.get("defaults", {}), DEFAULTS, ("defaults",), problems)
    defaults = Defaults(**defaults_table) if defaults_table is not None else Defaults()
    environments: dict[str, Environment] = {}
    envs = data.get("environments", {})
    if not isinstance(envs, dict):
        problems.add(("environments",), f"'environments' must be a table, not {_type_name(envs)}")
    else:
        for env_name, env_data in envs.items():
            env = _convert_environment(env_name, env_data, problems)
            if env is not None:
                environments[env_name] = env
    keymap: dict[str, str] = {}
    raw_keymap = data.get("keymap", {})
    if not isinstance(raw_keymap, dict):
        problems.add(("keymap",), f"'keymap' must be a table, not {_type_name(raw_keymap)}")
    else:
        # which ids exist is the console's to say (its screens' bindings): see check_keymap
        for binding, keys in raw_keymap.items():
            text = _nonempty_str(keys, ("keymap", binding), problems)
            if text is not None:
                keymap[binding] = text
    if problems.items:
        return None
    return Profile(
        name=name,
        path=source,
        project_name=project.get("name", name),
        description=project.get("description"),
        defaults=defaults,
        environments=environments,
        keymap=keymap,
    )


# --------------------------------------------------------------------------- line locator


_KEY_ATOM = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_ATOM}(?:\s*\.\s*{_KEY_ATOM})*"
_HEADER_ARRAY_RE = re.compile(rf"^\[\[\s*({_DOTTED})\s*\]\]")
_HEADER_RE = re.compile(rf"^\[\s*({_DOTTED})\s*\]")
_KEYVAL_RE = re.compile(rf"^({_DOTTED})\s*=(.*)$")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(_KEY_ATOM, text)
    out = []
    for part in parts:
        if part.startswith('"'):
            try:
                out.append(tomllib.loads(f"x = {part}")["x"])
            except tomllib.TOMLDecodeError:
                out.append(part.strip('"'))
        elif part.startswith("'"):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


def _bracket_delta(value: str) -> tuple[int, str | None]:
    """Net open brackets in a value outside strings, and an unclosed multi-line string opener."""
    depth = 0
    i = 0
    while i < len(value):
        for triple in ('"""', "'''"):
            if value.startswith(triple, i):
                end = value.find(triple, i + 3)
                if end < 0:
                    return depth, triple
                i = end + 3
                break
        else:
            char = value[i]
            if char == "#":
                break
            if char in "\"'":
                end = i + 1
                while end < len(value) and value[end] != char:
                    end += 2 if char == '"' and value[end] == "\\" else 1
                i = end + 1
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            i += 1
    return depth, None


def locate_lines(text: str) -> dict[PathKey, int]:
    """Map key paths to the line that defines them (best effort, never raises)."""
    index: dict[PathKey, int] = {}
    table: PathKey = ()
    array_counts: dict[PathKey, int] = {}
    depth = 0
    open_string: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if open_string:
            if open_string in line:
                open_string = None
            continue
        if depth > 0:
            delta, open_string = _bracket_delta(line)
            depth = max(0, depth + delta)
            continue
        if not line or line.startswith("#"):
            continue
        if match := _HEADER_ARRAY_RE.match(line):
            parts: PathKey = tuple(_split_dotted(match.group(1)))
            count = array_counts.get(parts, 0)
            array_counts[parts] = count + 1
            table = (*parts, count)
            index.setdefault(parts, lineno)
            index.setdefault(table, lineno)
        elif match := _HEADER_RE.match(line):
            table = tuple(_split_dotted(match.group(1)))
            for n in range(1, len(table) + 1):
                index.setdefault(table[:n], lineno)
        elif match := _KEYVAL_RE.match(line):
            keys = _split_dotted(match.group(1))
            for n in range(1, len(keys) + 1):
                index.setdefault((*table, *keys[:n]), lineno)
            delta, open_string = _bracket_delta(match.group(2))
            depth = max(0, delta)
            if depth and "[" in match.group(2):
                # record the line of each array item that starts on its own line later on
                pass
    return index


def _line_for(path: PathKey, index: dict[PathKey, int]) -> int:
    for n in range(len(path), 0, -1):
        line = index.get(path[:n])
        if line is not None:
            return line
    return 1


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
            f"{shown}:{_line_for(('keymap', b), index)}: unknown binding id 'keymap.{b}'{_suggest(b, sorted(known))}"
            " (the ids are listed by `?` in the console and in README's key table)"
            for b in unknown
        ]
    )


def load_profile(path: Path) -> Profile:
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
    return parse_profile_text(text, path)


def search_dirs() -> list[Path]:
    return [Path.cwd() / "profiles", paths.config_dir()]


def list_profiles() -> list[Path]:
    """Every profile file that discovery can see, project folder first."""
    found: list[Path] = []
    for folder in search_dirs():
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.toml")))
    return found


def resolve_profile_path(selector: str | None) -> Path:
    """`--profile NAME|PATH`, else $OPSCONSOLE_PROFILE, else ./profiles/*.toml, else the config dir."""
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
        for folder in search_dirs():
            path = folder / f"{selector}.toml"
            if path.is_file():
                return path
        names = sorted({p.stem for p in list_profiles()})
        hint = _suggest(selector, names)
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
            raise UsageError(
                f"several profiles in {folder} ({listed}): choose one with --profile NAME "
                "or OPSCONSOLE_PROFILE, or name one default.toml",
                "Which profile?",
            )
    raise UsageError(
        "no profile found: pass --profile PATH, set OPSCONSOLE_PROFILE, put one in ./profiles/, "
        f"or create one with `opsconsole profile init NAME` (it goes to {paths.config_dir()})",
        "No profile",
    )


def load(selector: str | None) -> Profile:
    return load_profile(resolve_profile_path(selector))
