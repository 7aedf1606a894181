"""The profile's `logs.files` on a host: list them, and follow one (tail over SSH, or locally)."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from opsconsole.backends.hosts import Host
from opsconsole.errors import OpsError


@dataclass(frozen=True)
class FileInfo:
    host: str
    path: str
    exists: bool
    size: int | None
    mtime: int | None
    readable: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_files(host: Host, paths: tuple[str, ...] | list[str]) -> list[FileInfo]:
    if not paths:
        return []
    # size and mtime: `stat -c` (GNU, BusyBox) or `stat -f` (BSD/macOS), whichever the host has
    script = (
        'for f in "$@"; do '
        'if [ -e "$f" ]; then r=0; [ -r "$f" ] && r=1; '
        's=$(stat -c %s -- "$f" 2>/dev/null || stat -f %z -- "$f"); '
        'm=$(stat -c %Y -- "$f" 2>/dev/null || stat -f %m -- "$f"); '
        'printf "ok\\t%s\\t%s\\t%s\\n" "$s" "$m" "$r"; '
        'else printf "missing\\t\\t\\t0\\n"; fi; done'
    )
    command = f"sh -c {shlex.quote(script)} sh " + " ".join(shlex.quote(p) for p in paths)
    result = host.run(command, timeout=host.timeout, check=True)
    out = []
    for path, line in zip(paths, result.stdout.splitlines(), strict=False):
        kind, size, mtime, readable = (line.split("\t") + ["", "", "", "0"])[:4]
        exists = kind == "ok"
        out.append(
            FileInfo(
                host=host.name,
                path=path,
                exists=exists,
                size=int(size) if exists and size.isdigit() else None,
                mtime=int(mtime) if exists and mtime.isdigit() else None,
                readable=readable == "1",
            )
        )
    return out


def follow_file(
    host: Host,
    path: str,
    on_line: Callable[[str], None],
    *,
    lines: int = 100,
    follow: bool = True,
    cancel: threading.Event | None = None,
) -> None:
    """The last `lines` lines, then (with `follow`) new lines until cancelled; survives rotation (-F)."""
    flag = " -F" if follow else ""
    # `tail -n N -F`: GNU, BusyBox and BSD/macOS all have -F (follow by name, through rotation)
    command = f"tail -n {int(lines)}{flag} -- {shlex.quote(path)}"
    errors: list[str] = []

    def route(stream: str, line: str) -> None:
        if stream == "out":
            on_line(line)
        else:
            errors.append(line)

    try:
        result = host.run(command, on_line=route, cancel=cancel)
    except OpsError as exc:
        if cancel is not None and cancel.is_set():
            return
        raise exc from None
    if not result.ok and not (cancel is not None and cancel.is_set()):
        detail = "; ".join(errors[-2:]) or f"exit {result.exit_code}"
        raise OpsError(f"{host.name}: cannot read {path}: {detail}", "Log file")
