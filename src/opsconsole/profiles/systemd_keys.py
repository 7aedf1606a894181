"""Converters of `[environments.E.systemd]`'s own keys: the unit names and globs."""

from __future__ import annotations

import re
from typing import Any

from opsconsole.profiles.convert import Problems, dotted, str_list
from opsconsole.profiles.model import PathKey

# what systemd allows in a unit name (`unit_name_is_valid`: letters, digits, ":-_.\@"), plus the
# glob characters `systemctl list-units PATTERN` takes
UNIT_RE = re.compile(r"[A-Za-z0-9:_.\\@*?\[\]-]+")
UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".timer", ".mount", ".automount", ".path", ".slice", ".scope",
    ".swap", ".device",
)  # fmt: skip
MAX_UNITS = 200


def is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def normalise(name: str) -> str:
    """`shop-web` -> `shop-web.service` (what systemctl itself assumes); globs and suffixed names as given."""
    return name if is_glob(name) or name.endswith(UNIT_SUFFIXES) else f"{name}.service"


def units(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    """`["shop-*.service", "redis-server"]`: unit names or globs, a `.service` suffix assumed."""
    items = str_list(value, path, problems)
    if items is None:
        return None
    if not items:
        problems.add(path, f"'{dotted(path)}' must name at least one unit (a name or a glob like 'shop-*')")
        return None
    if len(items) > MAX_UNITS:
        problems.add(path, f"'{dotted(path)}' names {len(items)} units: at most {MAX_UNITS}")
        return None
    out = []
    for index, item in enumerate(items):
        if item.startswith("-") or not UNIT_RE.fullmatch(item):
            problems.add(
                (*path, index),
                f"'{dotted((*path, index))}': '{item}' is not a unit name or glob "
                "(letters, digits and :-_.\\@ with * ? [ ] for globs)",
            )
            return None
        out.append(normalise(item))
    return tuple(dict.fromkeys(out))
