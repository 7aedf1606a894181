"""`[environments.E.ci]` beyond single keys: GitLab's `project`, and the rules across keys that
depend on `provider` (which key names the code, the default API URL)."""

from __future__ import annotations

import re
from typing import Any

from opsconsole.profiles.convert import Problems, dotted, type_name
from opsconsole.profiles.model import CiConfig, PathKey

PROVIDERS = ("github", "gitlab")
DEFAULT_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}
# what names the code at each provider: the key, and how it is written
NAMED_BY = {"github": ("repository", "'owner/repo'"), "gitlab": ("project", "'group/app' or a numeric id")}
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"


def project(value: Any, path: PathKey, problems: Problems) -> str | None:
    """A GitLab project: its path with its namespace (`group/app`, `group/sub/app`) or its numeric id
    (an integer or a string of digits); returned as text either way."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return str(value)
        problems.add(path, f"'{dotted(path)}' must be a project id of 1 or more (got {value})")
        return None
    if not isinstance(value, str):
        problems.add(path, f"'{dotted(path)}' must be a string or an integer, not {type_name(value)}")
        return None
    if re.fullmatch(r"[1-9][0-9]*", value) or re.fullmatch(rf"{_SEGMENT}(/{_SEGMENT})+", value):
        return value
    problems.add(
        path,
        f"'{dotted(path)}' must be the project's path with its group ('group/app', 'group/sub/app') "
        f"or its numeric id (got '{value}')",
    )
    return None


def build(**keys: Any) -> CiConfig:
    """The [ci] record; `url` defaults to the provider's public API."""
    keys.setdefault("url", DEFAULT_URLS[keys.get("provider", "github")])
    return CiConfig(**keys)


def check_ci(ci: CiConfig, path: PathKey, problems: Problems) -> bool:
    """The key naming the code is the provider's own, and present (converted keys are never empty)."""
    wanted, shape = NAMED_BY[ci.provider]
    for other, (key, _shape) in NAMED_BY.items():
        if other != ci.provider and getattr(ci, key):
            problems.add(
                (*path, key),
                f"'{dotted((*path, key))}' is for provider = \"{other}\"; with provider = "
                f'"{ci.provider}" name the code with {wanted} = {shape}',
            )
            return False
    if not getattr(ci, wanted):
        hint = (
            ' (for GitLab: provider = "gitlab" and project = "group/app")' if ci.provider == "github" else ""
        )
        problems.add(path, f"'{dotted(path)}' is missing the required key '{wanted}' ({shape}){hint}")
        return False
    return True
