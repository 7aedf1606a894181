"""The shell commands a deploy sends to a host: refs, release ids, the `current` switch, the
journal append and the lock. Each uses only what POSIX, GNU, BusyBox and BSD (macOS) userlands share,
or picks the variant the host has; a note beside each names what is not plain POSIX.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from opsconsole.backends.releases import (
    BEAT,
    JOURNAL,
    LOCK,
    STATE_DIR,
    parse_lock,
)
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import UsageError
from opsconsole.human import utc_stamp

MIRROR = f"{STATE_DIR}/repo.git"
_REF_RE = re.compile(r"^[A-Za-z0-9._/@{}^~+-]+$")


def validate_ref(ref: str) -> str:
    """A git ref, branch, tag or sha; never an option, never shell syntax."""
    if not ref or ref.startswith("-") or not _REF_RE.match(ref) or ".." in ref:
        raise UsageError(
            f"'{ref}' is not a valid git ref (letters, digits and . _ / @ ^ ~ + - only, not starting with '-')",
            "Bad ref",
        )
    return ref


def release_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def switch_command(path: str, release: str) -> str:
    """Point `current` at releases/RELEASE atomically: a new symlink renamed over the old one.

    rename(2) of a symlink is atomic everywhere; the flag that makes `mv` rename the link itself
    rather than move into the folder it points at differs: GNU and BusyBox `mv -T`, BSD/macOS
    `mv -h`; python3's os.replace is the fallback. `ln -sfn`: GNU, BusyBox and BSD."""
    tmp = quote(f".current.tmp-{release}")
    return (
        f"cd {quote_path(path)} && ln -sfn {quote('releases/' + release)} {tmp} && "
        f"{{ mv -T {tmp} current 2>/dev/null || mv -h {tmp} current 2>/dev/null || "
        f"python3 -c 'import os,sys; os.replace(sys.argv[1], sys.argv[2])' {tmp} current; }}"
    )


def state_dir_command(path: str) -> str:
    """Make the console's own folder on a host (lock, journal, run logs, mirror) private to the SSH
    user, and every file the rest of the command creates: `umask` holds for the rest of the shell."""
    folder = quote_path(path + "/" + STATE_DIR)
    return f"umask 077 && mkdir -p {folder} && {{ chmod go-rwx {folder} 2>/dev/null || true; }}"


def journal_command(path: str, record: dict[str, Any]) -> str:
    """Append one record; it always starts on a fresh line, even after a truncated last line."""
    line = json.dumps(record, sort_keys=True)
    journal = quote_path(f"{path}/{JOURNAL}")
    # `tail -c`: POSIX
    return (
        f"{state_dir_command(path)} && "
        f'{{ if [ -s {journal} ] && [ -n "$(tail -c 1 {journal})" ]; then echo; fi; '
        f"printf '%s\\n' {quote(line)}; }} >> {journal}"
    )


# ------------------------------------------------------------------------ locks


def lock_record(user: str, why: str, run: str | None = None) -> str:
    record = {"who": user, "when": utc_stamp(), "why": why}
    if run:
        record["run"] = run
    return json.dumps(record)


def lock_command(path: str, record: str) -> str:
    """Take the lock atomically (`set -C`: POSIX noclobber) and start its heartbeat; or say who holds it
    with the host's clock and the holder's last heartbeat (`date +%s`: GNU, BusyBox, BSD)."""
    lock, beat = quote_path(f"{path}/{LOCK}"), quote_path(f"{path}/{BEAT}")
    return (
        f"{state_dir_command(path)} && "
        f"if ( set -C; printf '%s\\n' {quote(record)} > {lock} ) 2>/dev/null; then date +%s > {beat}; echo @acquired; "
        f"else printf '@held\\t'; tr -d '\\n' < {lock}; "
        f'printf \'\\t%s\\t%s\\n\' "$(date +%s)" "$(tr -dc 0-9 < {beat} 2>/dev/null)"; fi'
    )


def heartbeat_command(path: str, record: str) -> str:
    """Renew the heartbeat while the lock is still ours; `@lost` when someone broke it."""
    lock, beat = quote_path(f"{path}/{LOCK}"), quote_path(f"{path}/{BEAT}")
    return f'umask 077; if [ "$(cat {lock} 2>/dev/null)" = {quote(record)} ]; then date +%s > {beat}; else echo @lost; fi'


def unlock_command(path: str, record: str | None = None) -> str:
    """Remove the lock; with `record`, only if it is still ours."""
    lock, beat = quote_path(f"{path}/{LOCK}"), quote_path(f"{path}/{BEAT}")
    if record is None:
        return (
            f"if [ -f {lock} ]; then printf '@was\\t'; tr -d '\\n' < {lock}; "
            f'printf \'\\t%s\\t%s\\n\' "$(date +%s)" "$(tr -dc 0-9 < {beat} 2>/dev/null)"; '
            f"rm -f {lock} {beat}; else echo @none; fi"
        )
    return f'if [ "$(cat {lock} 2>/dev/null)" = {quote(record)} ]; then rm -f {lock} {beat}; fi'


def parse_held(line: str) -> Any:
    """The LockInfo from `@held\tLOCK\tNOW\tBEAT` (or `@was…`)."""
    fields = line.split("\t")
    text = fields[1] if len(fields) > 1 else ""
    now = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    beat = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None
    return parse_lock(text, now, beat)
