"""Converters of single profile values (strings, seconds, URLs, secrets, hosts, shared paths):
each checks one value and records problems with the key path."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from opsconsole.profiles.model import (
    LOCAL,
    HealthUrl,
    HostSpec,
    PathKey,
    SecretRef,
    suggest,
)

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


def type_name(value: Any) -> str:
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


def string(value: Any, path: PathKey, problems: Problems) -> str | None:
    if isinstance(value, str):
        return value
    problems.add(path, f"'{dotted(path)}' must be a string, not {type_name(value)}")
    return None


def nonempty_str(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = string(value, path, problems)
    if text is not None and not text.strip():
        problems.add(path, f"'{dotted(path)}' must not be empty")
        return None
    return text


MAX_SECONDS = 3600.0
MAX_COUNT = 10_000


def positive_float(value: Any, path: PathKey, problems: Problems) -> float | None:
    """Seconds: finite, 0 < t <= 3600 (inf would overflow timers, nan would disable every timeout)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"'{dotted(path)}' must be a number of seconds, not {type_name(value)}")
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        problems.add(
            path,
            f"'{dotted(path)}' must be a number of seconds above 0 and at most {MAX_SECONDS:g} (got {value})",
        )
        return None
    return float(value)


def positive_int(value: Any, path: PathKey, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"'{dotted(path)}' must be an integer, not {type_name(value)}")
        return None
    if not 1 <= value <= MAX_COUNT:
        problems.add(path, f"'{dotted(path)}' must be between 1 and {MAX_COUNT} (got {value})")
        return None
    return value


def count(value: Any, path: PathKey, problems: Problems) -> int | None:
    """A count that may be zero (e.g. how many new issues a verification tolerates)."""
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"'{dotted(path)}' must be an integer, not {type_name(value)}")
        return None
    if not 0 <= value <= MAX_COUNT:
        problems.add(path, f"'{dotted(path)}' must be between 0 and {MAX_COUNT} (got {value})")
        return None
    return value


def str_table(value: Any, path: PathKey, problems: Problems) -> tuple[tuple[str, str], ...] | None:
    """A table of non-empty strings (e.g. Prometheus queries by label), in the file's order."""
    if not isinstance(value, dict):
        problems.add(path, f"'{dotted(path)}' must be a table of strings, not {type_name(value)}")
        return None
    out = []
    for key, item in value.items():
        text = nonempty_str(item, (*path, key), problems)
        if text is None:
            return None
        out.append((str(key), text))
    return tuple(out)


def one_of(*choices: str) -> Converter:
    def convert(value: Any, path: PathKey, problems: Problems) -> str | None:
        text = string(value, path, problems)
        if text is not None and text not in choices:
            options = ", ".join(f"'{c}'" for c in choices)
            problems.add(path, f"'{dotted(path)}' must be one of {options} (got '{text}')")
            return None
        return text

    return convert


def repository(value: Any, path: PathKey, problems: Problems) -> str | None:
    """`owner/repo` as GitHub spells it."""
    text = nonempty_str(value, path, problems)
    if text is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", text):
        problems.add(path, f"'{dotted(path)}' must be 'owner/repo' (got '{text}')")
        return None
    return text


RELEASE_FIELDS = ("project", "env", "sha", "sha12", "release", "ref")


def release_format(value: Any, path: PathKey, problems: Problems) -> str | None:
    """A Sentry release name template: only known {fields}, and a result Sentry accepts."""
    text = nonempty_str(value, path, problems)
    if text is None:
        return None
    fields = re.findall(r"{([^{}]*)}", text)
    unknown = [f for f in fields if f not in RELEASE_FIELDS]
    if unknown or re.search(r"[/\\\s]", re.sub(r"{[^{}]*}", "", text)):
        known = ", ".join("{" + f + "}" for f in RELEASE_FIELDS)
        problems.add(
            path,
            f"'{dotted(path)}' may use {known} and no '/', '\\' or white space (got '{text}')",
        )
        return None
    return text


def shared(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    """Paths linked from `shared/` into each release: relative, inside the release, once each."""
    items = str_list(value, path, problems)
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


def deploy_path(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = nonempty_str(value, path, problems)
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


def boolean(value: Any, path: PathKey, problems: Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(path, f"'{dotted(path)}' must be true or false, not {type_name(value)}")
    return None


def str_list(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.add(path, f"'{dotted(path)}' must be an array of strings, not {type_name(value)}")
        return None
    out: list[str] = []
    for index, item in enumerate(value):
        text = nonempty_str(item, (*path, index), problems)
        if text is not None:
            out.append(text)
    return tuple(out)


def secret(value: Any, path: PathKey, problems: Problems) -> SecretRef | None:
    if isinstance(value, str):
        problems.add(
            path,
            f"'{dotted(path)}' must name a secret, not hold one: write "
            f'{{ secret = "NAME" }} and supply it with `opsconsole secret set NAME` '
            "or the environment variable OPSCONSOLE_SECRET_NAME",
        )
        return None
    if not isinstance(value, dict):
        problems.add(path, f"'{dotted(path)}' must be {{ secret = \"NAME\" }}, not {type_name(value)}")
        return None
    for key in value:
        if key != "secret":
            problems.add((*path, key), f"unknown key '{dotted((*path, key))}'{suggest(key, ['secret'])}")
    name = value.get("secret")
    if name is None:
        problems.add(path, f"'{dotted(path)}' must be {{ secret = \"NAME\" }}")
        return None
    text = nonempty_str(name, (*path, "secret"), problems)
    if text is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", text):
        problems.add(
            (*path, "secret"), f"secret name '{text}' may hold only letters, digits, '-', '_' and '.'"
        )
        return None
    return SecretRef(text)


def url(schemes: tuple[str, ...]) -> Converter:
    def convert(value: Any, path: PathKey, problems: Problems) -> str | None:
        text = nonempty_str(value, path, problems)
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


def health_list(schemes: tuple[str, ...]) -> Converter:
    """`health = ["https://x/healthz", { url = "https://x/login", expect = [200, 302] }]`: a URL is
    healthy on any 2xx, or on one of the statuses its table names."""
    one = url(schemes)

    def item(value: Any, path: PathKey, problems: Problems) -> HealthUrl | None:
        if not isinstance(value, dict):
            text = one(value, path, problems)
            return None if text is None else HealthUrl(text)
        for key in value:
            if key not in ("url", "expect"):
                problems.add(
                    (*path, key), f"unknown key '{dotted((*path, key))}' (a health entry has url, expect)"
                )
        if "url" not in value:
            problems.add(path, f"'{dotted(path)}' needs a url")
            return None
        text = one(value["url"], (*path, "url"), problems)
        statuses = value.get("expect", [])
        where = (*path, "expect")
        if not isinstance(statuses, list) or not statuses:
            problems.add(
                where, f"'{dotted(where)}' must be a non-empty array of HTTP statuses, e.g. [200, 302]"
            )
            return None
        expect: list[int] = []
        for i, status in enumerate(statuses):
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                problems.add(
                    (*where, i),
                    f"'{dotted((*where, i))}' must be an HTTP status from 100 to 599, not {status!r}",
                )
            else:
                expect.append(status)
        if text is None or len(expect) != len(statuses):
            return None
        return HealthUrl(text, tuple(dict.fromkeys(expect)))

    def convert(value: Any, path: PathKey, problems: Problems) -> tuple[HealthUrl, ...] | None:
        if not isinstance(value, list):
            problems.add(path, f"'{dotted(path)}' must be an array of URLs, not {type_name(value)}")
            return None
        out = [item(entry, (*path, i), problems) for i, entry in enumerate(value)]
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


def hosts(value: Any, path: PathKey, problems: Problems) -> tuple[HostSpec, ...] | None:
    items = str_list(value, path, problems)
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


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\\-]*$")  # a systemd unit (`app@1.service`)


def restart(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    items = str_list(value, path, problems)
    if items is None:
        return None
    for index, item in enumerate(items):
        kind, sep, name = item.partition(":")
        if (
            sep
            and kind in ("supervisor", "docker", "systemd")
            and not (UNIT_NAME_RE if kind == "systemd" else NAME_RE).match(
                name.replace(":", "").replace("*", "x")
            )
        ):
            problems.add((*path, index), f"'{dotted((*path, index))}': '{name}' is not a valid {kind} name")
    return items
