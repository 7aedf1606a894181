"""Converters for the Fabric keys ([fabric], and the fabric strategy's keys of [deploy]): task names
become `fab` arguments, so each is one word that cannot be read as an option."""

from __future__ import annotations

import re
from typing import Any

from opsconsole.profiles.convert import Problems, dotted, nonempty_str, str_list
from opsconsole.profiles.model import PathKey

# a task, optionally Fabric 1 style arguments (`deploy:branch=main`); never an option (`-…`)
_TASK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:=,-]*")


def is_task_name(text: str) -> bool:
    return bool(_TASK.fullmatch(text))


def task(value: Any, path: PathKey, problems: Problems) -> str | None:
    text = nonempty_str(value, path, problems)
    if text is not None and not _TASK.fullmatch(text):
        problems.add(
            path,
            f"'{dotted(path)}': a task name holds letters, digits and '_.:=,-' and starts with a "
            f"letter, digit or '_' (got '{text}')",
        )
        return None
    return text


def tasks(value: Any, path: PathKey, problems: Problems) -> tuple[str, ...] | None:
    items = str_list(value, path, problems)
    if items is None:
        return None
    if not items:
        problems.add(path, f"'{dotted(path)}' must name at least one task")
        return None
    checked = [task(item, (*path, index), problems) for index, item in enumerate(items)]
    return None if any(c is None for c in checked) else tuple(c for c in checked if c is not None)
