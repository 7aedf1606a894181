"""Saving text a person asked for (the log viewer's ctrl+s) to a file on this machine.

What holds: an existing file is never replaced unless the caller says `overwrite` (the console asks
first), and a file appearing between the question and the write is not replaced either (the new file
is linked into place, which fails if the name exists); the path is resolved (symlinks followed) and
a path that is, or leads to, the audit log is refused, as is anything but a regular file.
"""

from __future__ import annotations

import os
from pathlib import Path

from opsconsole import paths
from opsconsole.atomic import write_atomic
from opsconsole.errors import RefusedError


class SaveExists(RefusedError):
    """The file exists and the caller did not say to replace it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists; it is replaced only when you confirm", "File exists")
        self.path = path


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # a hard link to the audit log is the audit log
    except OSError:
        return False


def check_target(path: Path, audit_log: Path | None = None) -> Path:
    """The resolved path a save would write, or RefusedError saying why it may not."""
    target = path.expanduser().resolve()
    audit = (audit_log or paths.audit_log_path()).expanduser().resolve()
    if _same(target, audit):
        shown = f"{path} (the audit log {audit})" if target != path else f"{path} (the audit log)"
        raise RefusedError(
            f"refused: {shown} is never written by a save; choose another file", "Not the audit log"
        )
    if target.exists() and not target.is_file():
        raise RefusedError(f"refused: {path} is not a regular file; choose a file name", "Not a file")
    return target


def save_local(path: Path, data: bytes, *, overwrite: bool = False, audit_log: Path | None = None) -> Path:
    """Write `data` to `path` (0600, atomically) and return the file written. Raises SaveExists when
    the file exists and not `overwrite`, RefusedError for the audit log or a non-file, OSError else."""
    target = check_target(path, audit_log)
    if target.exists() and not overwrite:
        raise SaveExists(target)
    try:
        # exclusive: a file that appeared since the check is never replaced
        write_atomic(target, data, mode=0o600, exclusive=not overwrite)
    except FileExistsError:
        raise SaveExists(target) from None
    return target
