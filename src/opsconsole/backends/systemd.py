"""systemd units over the host's connection: `systemctl` and `journalctl`, as isd does (no D-Bus).
Globs are expanded with `list-units --plain --no-legend` (every version prints it; the JSON output
needs v246+ and would add nothing here).

One read per host and refresh: one remote command that expands the profile's globs (`list-units`
and `list-unit-files`), then runs one `systemctl show UNIT… -p …` and prints `Key=Value` blocks
separated by blank lines (`show` has no JSON before ~v256). `--timestamp=unix` (v251+) gives epoch
seconds; an older systemctl refuses the option, and the command runs again without it, reading the
`*Monotonic` fields (µs since boot) against the host's uptime. Changes are `[sudo -n] systemctl
[--user] VERB -- UNIT`; the journal is `journalctl -u UNIT -o json`, followed from its cursor.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from opsconsole.backends.hosts import Host, HostError
from opsconsole.backends.shell import quote
from opsconsole.errors import OpsError
from opsconsole.profiles.model import SystemdConfig
from opsconsole.profiles.systemd_keys import is_glob, normalise

PROPERTIES = (
    "Id",
    "Description",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "MainPID",
    "NRestarts",
    "ExecMainStartTimestamp",
    "ExecMainStartTimestampMonotonic",
    "ActiveEnterTimestamp",
    "ActiveEnterTimestampMonotonic",
    "MemoryCurrent",
    "UnitFileState",
)
READ_CAP = 1024 * 1024  # bytes of `systemctl show` output read at most per host
MAX_EXPANDED = 500  # units a host's globs expand to at most
VERBS = ("start", "stop", "restart")
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
NO_SYSTEMD = "@@no-systemd"
SUDO_PASSWORD = ("a password is required", "a terminal is required", "no tty present")
FAILING_SUBSTATES = {"auto-restart"}
MISSING_LOADS = {"not-found", "bad-setting", "error", "masked"}


class SystemdError(OpsError):
    pass


@dataclass(frozen=True, slots=True)
class UnitInfo:
    host: str
    unit: str
    description: str
    load: str
    active: str
    sub: str
    result: str
    pid: int
    restarts: int | None
    since: int | None  # epoch seconds the main process started (or the unit became active)
    memory: int | None  # bytes; None without memory accounting
    file_state: str

    @property
    def name(self) -> str:
        return self.unit

    @property
    def missing(self) -> bool:
        return self.load in MISSING_LOADS

    @property
    def failed(self) -> bool:
        """Failed, missing, or crashing and being restarted: shown first and marked."""
        return self.active == "failed" or self.missing or self.sub in FAILING_SUBSTATES

    @property
    def state(self) -> str:
        """What the console's start/stop key reads (`operate.is_running`)."""
        return "running" if self.active in ("active", "activating", "reloading") else self.active

    @property
    def problem(self) -> str:
        if self.load == "not-found":
            return "no such unit on this host"
        if self.missing:
            return f"unit {self.load}"
        if self.active == "failed":
            return f"failed ({self.result})" if self.result and self.result != "success" else "failed"
        if self.sub in FAILING_SUBSTATES:
            return f"crashing: restarted {self.restarts or 0} times"
        return ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = self.failed
        data["problem"] = self.problem
        return data


@dataclass
class UnitsReport:
    host: str
    units: list[UnitInfo]
    version: int | None = None
    notes: list[str] = field(default_factory=list)
    monotonic: bool = False  # systemctl refused --timestamp=unix: times from the *Monotonic fields

    def to_json(self) -> dict[str, Any]:
        return {
            "units": [u.to_json() for u in self.units],
            "version": self.version,
            "notes": list(self.notes),
            "monotonic_timestamps": self.monotonic,
        }


def systemctl(config: SystemdConfig, *, change: bool = False) -> str:
    """`systemctl [--user]`, prefixed with `sudo -n` for a change when the profile asks for it."""
    base = "systemctl --user" if config.user else "systemctl"
    return f"sudo -n {base}" if change and config.sudo else base


def change_command(config: SystemdConfig, verb: str, unit: str) -> str:
    """The exact command a start/stop/restart runs (the plan shows it)."""
    assert verb in VERBS
    return f"{systemctl(config, change=True)} {verb} -- {quote(normalise(unit))}"


def _read_script(config: SystemdConfig) -> str:
    """The one remote command of a read. Prints `@@version N`, `@@now S`, `@@uptime S`, the names
    its globs matched (`@@match GLOB NAME…`), `@@plain` when `--timestamp=unix` was refused, then
    the `show` blocks; `@@no-systemd` alone on a host whose PID 1 is not systemd."""
    sc = systemctl(config)
    names = [normalise(u) for u in config.units]
    plain = " ".join(quote(n) for n in names if not is_glob(n))
    globs = [n for n in names if is_glob(n)]
    props = ",".join(PROPERTIES)
    lines = [
        # sd_booted(): /run/systemd/system exists only when systemd is PID 1
        f"if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then echo {NO_SYSTEMD}; exit 0; fi",
        f'echo "@@version $({sc} --version 2>/dev/null | head -n 1)"',
        'echo "@@now $(date +%s)"',
        'echo "@@uptime $(cut -d" " -f1 /proc/uptime 2>/dev/null)"',
        f"set -- {plain}",
    ]
    for glob in globs:
        g = quote(glob)
        lines += [
            f"m=$({{ {sc} list-units --all --plain --no-legend --full -- {g}; "
            f"{sc} list-unit-files --plain --no-legend --full -- {g}; }} 2>/dev/null "
            f'| awk \'{{u=$1; if (u=="●" || u=="*") u=$2; print u}}\' | sort -u | head -n {MAX_EXPANDED})',
            f'echo "@@match {glob} "$m',
            'for u in $m; do set -- "$@" "$u"; done',
        ]
    lines += [
        "if [ $# -eq 0 ]; then exit 0; fi",
        f'out=$({sc} show -p {props} --timestamp=unix -- "$@" 2>&1) || '
        f'{{ echo @@plain; out=$({sc} show -p {props} -- "$@" 2>&1) || {{ echo "$out" >&2; exit 3; }}; }}',
        f'printf "%s\\n" "$out" | head -c {READ_CAP}',
    ]
    return "\n".join(lines)


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def _epoch(block: dict[str, str], key: str, plain: bool, now: float, uptime: float | None) -> int | None:
    if not plain:
        value = block.get(key, "")
        return int(value[1:]) if value.startswith("@") and value[1:].isdigit() else None
    mono = _int(block.get(key + "Monotonic"))
    if not mono or uptime is None:
        return None
    return int(now - (uptime - mono / 1_000_000))


def parse_show(
    text: str, host: str, *, plain: bool = False, now: float | None = None, uptime: float | None = None
) -> list[UnitInfo]:
    """`systemctl show` output: `Key=Value` lines, one block per unit, blocks separated by blank
    lines (keys in systemd's order, not the `-p` order)."""
    now = time.time() if now is None else now
    units = []
    for chunk in text.split("\n\n"):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                block[key.strip()] = value
        if "Id" not in block:
            continue
        since = _epoch(block, "ExecMainStartTimestamp", plain, now, uptime) or _epoch(
            block, "ActiveEnterTimestamp", plain, now, uptime
        )
        units.append(
            UnitInfo(
                host=host,
                unit=block["Id"],
                description=block.get("Description", ""),
                load=block.get("LoadState", ""),
                active=block.get("ActiveState", ""),
                sub=block.get("SubState", ""),
                result=block.get("Result", ""),
                pid=_int(block.get("MainPID")) or 0,
                restarts=_int(block.get("NRestarts")),
                since=since if since and block.get("ActiveState") != "inactive" else None,
                # `[not set]` without accounting; 2^64-1 ("infinity") on some versions
                memory=m if (m := _int(block.get("MemoryCurrent"))) is not None and m < 2**63 else None,
                file_state=block.get("UnitFileState", ""),
            )
        )
    return units


def read_units(host: Host, config: SystemdConfig) -> UnitsReport:
    """The profile's units on one host, failed ones first; a host without systemd is an error."""
    result = host.run(_read_script(config), timeout=host.timeout)
    out = result.stdout
    if out.strip() == NO_SYSTEMD:
        raise SystemdError(
            f"{host.name}: no systemd here (PID 1 is not systemd, or systemctl is missing): "
            "remove [systemd] from this environment or its host",
            "No systemd",
        )
    if not result.ok:
        detail = (result.stderr.strip() or out.strip()).splitlines()[-2:]
        raise SystemdError(f"{host.name}: systemctl show failed: {' | '.join(detail)[:300]}", "systemd")
    head: list[str] = []
    body: list[str] = []
    for line in out.splitlines():
        (head if line.startswith("@@") else body).append(line)
    version = now = uptime = None
    plain = False
    notes = []
    for line in head:
        word, _, rest = line[2:].partition(" ")
        if word == "version":
            parts = rest.split()
            version = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        elif word == "now" and rest.strip().isdigit():
            now = float(rest)
        elif word == "uptime":
            try:
                uptime = float(rest)
            except ValueError:
                uptime = None
        elif word == "plain":
            plain = True
        elif word == "match":
            glob, _, names = rest.partition(" ")
            if not names.strip():
                notes.append(f"no unit matches '{glob}'")
    units = parse_show("\n".join(body), host.name, plain=plain, now=now, uptime=uptime)
    if not units:  # only globs, and none matched: said as an error, never an empty "0 units"
        raise SystemdError(
            f"{host.name}: none of the profile's units is on this host ({'; '.join(notes)}): "
            "check [systemd] units",
            "No units",
        )
    order = {u.unit: i for i, u in enumerate(units)}
    units.sort(key=lambda u: (not u.failed, order[u.unit]))
    for unit in units:
        if unit.load == "not-found":
            notes.append(f"{unit.unit}: no such unit on this host")
    return UnitsReport(host.name, units, version, notes, monotonic=plain)


def change(host: Host, config: SystemdConfig, verb: str, unit: str) -> str:
    """start/stop/restart one unit; returns its state afterwards (`active/running, pid 105`)."""
    command = change_command(config, verb, unit)
    after = f"{systemctl(config)} show -p ActiveState,SubState,MainPID -- {quote(normalise(unit))}"
    result = host.run(f"{command} && {after}", timeout=max(host.timeout, 90.0))
    if not result.ok:
        err = result.stderr.strip()
        if config.sudo and any(text in err for text in SUDO_PASSWORD):
            raise SystemdError(
                f"{host.name}: sudo asks for a password for `{command}`: allow it without one "
                "(a NOPASSWD rule in sudoers for systemctl), or log in as a user who may run it",
                "sudo needs a password",
            )
        tail = " | ".join((err or result.stdout.strip()).splitlines()[-2:])[:300]
        raise SystemdError(
            f"{host.name}: `{command}` exited with {result.exit_code}: {tail}", "systemctl failed"
        )
    state = {k: v for k, _, v in (line.partition("=") for line in result.stdout.splitlines())}
    pid = state.get("MainPID", "0")
    return f"{state.get('ActiveState', '?')}/{state.get('SubState', '?')}" + (
        f", pid {pid}" if pid not in ("", "0") else ""
    )


# ---------------------------------------------------------------------------------- journal


@dataclass(frozen=True, slots=True)
class JournalEntry:
    cursor: str
    time: float  # epoch seconds
    priority: int | None
    message: str
    pid: str
    ident: str

    @property
    def urgent(self) -> bool:
        """emerg, alert, crit or err: shown as the viewer shows stderr."""
        return self.priority is not None and self.priority <= 3

    def line(self) -> str:
        """`12:00:01 err demo[61]: message` (the time in the host's local time of this machine)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time)) if self.time else "-"
        prio = PRIORITIES[self.priority] if self.priority is not None and 0 <= self.priority < 8 else "-"
        who = f"{self.ident}[{self.pid}]" if self.pid else self.ident
        return f"{stamp} {prio:<7} {who}: {self.message}"


def parse_entry(line: str) -> JournalEntry | None:
    """One `journalctl -o json` line; None when it is not a JSON object. Fields are type-checked:
    MESSAGE is a string, or an array of byte values when it is not UTF-8 (or null)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    raw = data.get("MESSAGE")
    if isinstance(raw, str):
        message = raw
    elif isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        message = bytes(raw).decode("utf-8", errors="replace")
    else:
        message = ""

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    stamp = text("__REALTIME_TIMESTAMP")
    prio = text("PRIORITY")
    return JournalEntry(
        cursor=text("__CURSOR"),
        time=int(stamp) / 1_000_000 if stamp.isdigit() else 0.0,
        priority=int(prio) if prio.isdigit() else None,
        message=message,
        pid=text("_PID"),
        ident=text("SYSLOG_IDENTIFIER") or text("_COMM") or text("_SYSTEMD_UNIT"),
    )


def journal_command(
    config: SystemdConfig, unit: str, *, lines: int, follow: bool, after_cursor: str | None = None
) -> str:
    who = f"--user-unit={quote(normalise(unit))}" if config.user else f"-u {quote(normalise(unit))}"
    start = f"--after-cursor={quote(after_cursor)} -n all" if after_cursor else f"-n {int(lines)}"
    return f"journalctl {who} -o json --no-pager {start}" + (" -f" if follow else "")


def follow_journal(
    host: Host,
    config: SystemdConfig,
    unit: str,
    on_entry: Callable[[JournalEntry], None],
    *,
    lines: int = 100,
    follow: bool = True,
    cancel: threading.Event | None = None,
    on_notice: Callable[[str], None] | None = None,
    retry_wait: float = 0.5,
) -> None:
    """The last `lines` entries of the unit's journal, then (with `follow`) each new one until
    cancelled. When the connection drops, the follow reconnects and resumes after the last entry's
    cursor, so nothing is lost or repeated."""
    event = cancel or threading.Event()
    cursor: list[str | None] = [None]
    errors: list[str] = []
    delivered = [False]  # an entry arrived since the last reconnect

    def route(stream: str, line: str) -> None:
        if stream != "out":
            errors.append(line)
            return
        entry = parse_entry(line)
        if entry is not None:
            if entry.cursor:
                cursor[0] = entry.cursor
            delivered[0] = True
            on_entry(entry)

    failures = 0

    def reconnect(why: str) -> None:
        """Wait before following again: at once after a follow that delivered, longer each time not."""
        nonlocal failures
        failures = 1 if delivered[0] else failures + 1
        delivered[0] = False
        if on_notice and failures == 1:
            on_notice(f"{why}; reconnecting to follow {unit} from its last entry")
        event.wait(min(5.0, retry_wait * failures))

    while not event.is_set():
        command = journal_command(config, unit, lines=lines, follow=follow, after_cursor=cursor[0])
        errors.clear()
        try:
            # a read ends; a follow runs until cancelled (or the connection drops)
            result = host.run(command, on_line=route, cancel=event, timeout=None if follow else host.timeout)
        except HostError as exc:
            if not follow:
                raise
            if event.is_set():
                return
            reconnect(exc.message)
            continue
        except OpsError:
            if event.is_set():
                return
            raise
        if event.is_set():
            return
        if not result.ok and (errors or not follow):  # journalctl's own error; else the session died
            detail = " | ".join(errors[-2:]) or f"exit {result.exit_code}"
            raise SystemdError(f"{host.name}: journalctl -u {unit}: {detail[:300]}", "journal")
        if not follow:
            return
        # journalctl -f ended without an error: its session went away (sshd killed, host rebooted)
        reconnect(f"{host.name}: the journal follow of {unit} ended")
