"""Quoting for the POSIX shell commands opsconsole sends to hosts."""

from __future__ import annotations

import shlex


def quote(text: str) -> str:
    """`text` as one shell word."""
    return shlex.quote(text)


def quote_path(path: str) -> str:
    """`path` as one shell word; a leading `~/` becomes "$HOME"/… so it expands on the host, for
    its user."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
