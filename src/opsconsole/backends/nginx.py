"""Nginx on a host, over the host's connection: the config test, the master and its workers, the
`stub_status` page and the last minutes of the access and error logs.

One shell script per read (`read_nginx`) runs `nginx -T` (the test, and the config it loaded, for
its `pid` path), reads the master pid and its age, and each log's last LOG_CAP bytes (`tail -c`,
never the whole file). Its sections are told apart by a marker line with a random token, so no log
line can fake one. `stub_status` is fetched through the host's own TCP channel (`Host.open_tcp`: an
SSH direct-tcpip channel, or a local socket): it needs no curl, wget or python3 on the host, and it
reaches a status location that allows only 127.0.0.1, as the server sees the request from there.
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from opsconsole.backends.hosts import Host
from opsconsole.backends.log_window import Parser, Window, Windows
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import OpsError
from opsconsole.profiles.model import NginxConfig
from opsconsole.sanitize import clean

LOG_CAP = 1024 * 1024  # bytes read from the end of each log
STATUS_CAP = 8192  # bytes of the stub_status answer read
TEST_LINES = 20  # lines of `nginx -t` output kept
TOP = 5
DEFAULT_PID = "/run/nginx.pid"  # Debian's compiled-in pid path

# Nginx's default `combined` format; nginx escapes `"` in a request as \x22, so [^"]* holds.
COMBINED = (
    r'^(?P<addr>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<bytes>\S+)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
ERROR_LINE = re.compile(r"^(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<level>\w+)\] (?P<rest>.*)$")
UPSTREAM_FIELD = re.compile(r', upstream: "(?P<url>[^"]*)"')
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
LOCAL_TIME = re.compile(r"(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


@dataclass(frozen=True)
class StubStatus:
    active: int
    accepts: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int


@dataclass(frozen=True)
class UpstreamErrors:
    """Error-log lines naming one upstream address in the window: how many, the most common reason
    ("connect() failed (111: Connection refused)") and what serves it per the profile."""

    upstream: str
    count: int
    reason: str
    last: str  # the last such line's time, as the log wrote it
    target: str | None = None  # "supervisor:shop-web"


@dataclass(frozen=True)
class FailingPath:
    path: str
    status: int
    count: int


@dataclass
class NginxStatus:
    host: str
    config_ok: bool
    test_output: str  # `nginx -t`'s own lines (its error text when it fails)
    master_pid: int | None = None
    master_since: float | None = None  # epoch seconds
    workers: tuple[int, ...] = ()
    stub_status: StubStatus | None = None
    stub_status_error: str | None = None
    status_counts: dict[str, int] = field(default_factory=dict)
    top_failing: list[FailingPath] = field(default_factory=list)
    upstream_errors: list[UpstreamErrors] = field(default_factory=list)
    window: float = 5.0
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
    last_5xx: float | None = None  # epoch seconds of the newest 5xx in the window (a timed format)

    @property
    def error(self) -> str | None:
        """What is wrong with Nginx itself: the failing test's last lines, or no master."""
        if not self.config_ok:
            lines = self.test_output.splitlines()
            told = [line for line in lines if "[emerg]" in line or "[alert]" in line] or lines[-2:]
            return "config test failed: " + " | ".join(told[:3])
        if self.master_pid is None:
            return "no master process running"
        return None

    @property
    def fives(self) -> int:
        return self.status_counts.get("5xx", 0)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = self.error
        data["workers"] = list(self.workers)
        return data


def nginx_args(config: NginxConfig) -> str:
    """`-p PREFIX -c CONFIG` as the profile sets them (each quoted)."""
    parts = []
    if config.prefix:
        parts += ["-p", quote_path(config.prefix)]
    if config.config:
        parts += ["-c", quote_path(config.config)]
    return " ".join(parts)


def binary_word(config: NginxConfig) -> str:
    # /usr/sbin is not on a non-root SSH user's PATH on Debian: the default falls back to it
    if config.binary == "nginx":
        return '"$(command -v nginx || echo /usr/sbin/nginx)"'
    return quote_path(config.binary)


def test_command(config: NginxConfig) -> str:
    return f"{binary_word(config)} -t {nginx_args(config)}".rstrip()


def reload_command(config: NginxConfig) -> str:
    return config.reload or f"{binary_word(config)} -s reload {nginx_args(config)}".rstrip()


# The master: from the pid file the loaded config names (Debian's when it names none); a config that
# does not parse names none, and a stale pid file names a dead process: then ps finds it, the one
# started with this config (-c), or the only one (-ww: whole command lines, where ps has it).
# Prints "MARK pidfile PATH VIA". Builtins where they do (`read`, `case`): each fork is ~2 ms of an
# idle console's CPU on every refresh.
FIND_MASTER = r"""[ -n "$pf" ] || [ "$rc" != 0 ] || pf=$D
case $pf in /*|"") ;; *) pf="${P:-/usr/share/nginx}/$pf";; esac
pid=; [ -n "$pf" ] && { read -r pid < "$pf"; } 2>/dev/null
case $pid in *[!0-9]*) pid=;; esac
via=pidfile
if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then
  via=ps
  ml=$( (ps -ww -eo pid=,args= 2>/dev/null || ps -eo pid=,args= 2>/dev/null) \
    | sed -n 's/^ *\([0-9][0-9]*\) \(nginx: master process\)/\1 \2/p')
  if [ -n "$C" ]; then
    m2=$(printf '%s\n' "$ml" | grep -F -- "$C")
    if [ -n "$m2" ]; then ml=$m2; elif [ "$(printf '%s\n' "$ml" | grep -c .)" != 1 ]; then ml=; fi
  fi
  pid=$(printf '%s\n' "$ml" | sed -n 's/^\([0-9][0-9]*\) .*/\1/p' | head -n 1)
fi"""

# The test's own lines ("nginx: ..." and, once an error_log is open, "2026/12/03 12:26:56 [emerg] ...")
# and the first `pid` directive of the config it dumped (as "@pid PATH"), in one sed.
SELECT_TEST = (
    "sed -n -e '/^nginx: /p' -e '/^[0-9]\\{4\\}\\/[0-9/]* [0-9:]* \\[/p' "
    "-e 's/^[[:space:]]*pid[[:space:]][[:space:]]*\\([^;]*\\);.*/@pid \\1/p'"
)


def _script(config: NginxConfig, mark: str, windows: dict[str, Window] | None) -> str:
    prefix = quote_path(config.prefix) if config.prefix else "''"
    lines = [
        f"M={quote(mark)}",
        f"B={binary_word(config)}",
        f"P={prefix}",
        'echo "$M now $(date \'+%s %z\')"',
        f'out=$("$B" -T {nginx_args(config)} 2>&1); rc=$?',
        'echo "$M test $rc"',
        f"sel=$(printf '%s\\n' \"$out\" | {SELECT_TEST})",
        # the selected lines are few: a here-document of them needs no fork
        "pf=; while IFS= read -r l; do case $l in '@pid '*) [ -n \"$pf\" ] || pf=${l#@pid };; "
        "?*) printf '%s\\n' \"$l\";; esac; done <<OPSC_EOF\n$sel\nOPSC_EOF",
        "[ $rc = 127 ] && printf '%s\\n' \"$out\" | tail -n 3",
        f"C={quote(config.config or '')}",
        f"D={DEFAULT_PID}",
        FIND_MASTER,
        'echo "$M pidfile $pf $via"',
        # the master's age and its workers from one ps (a ps without etimes: the workers only)
        'if [ -n "$pid" ]; then echo "$M master $pid"; '
        '{ ps -eo pid=,ppid=,etimes= 2>/dev/null || ps -eo pid=,ppid= 2>/dev/null; } | awk -v p="$pid" '
        '-v m="$M" \'$1==p && $3!=""{a=$3} $2==p{w=w $1 " "} END{if(a!="")print m " age " a; '
        'print m " workers " w}\'; fi',
    ]
    for name, path in (("access", config.access_log), ("error", config.error_log)):
        if windows is not None:
            lines.append(windows[name].fragment(name, path, LOG_CAP))
    lines.append('echo "$M end"')
    return "\n".join(lines)


def _sections(text: str, mark: str) -> dict[str, tuple[str, list[str]]]:
    """Marker line `MARK name rest` -> (rest, the lines up to the next marker)."""
    out: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith(mark + " "):
            name, _, rest = line[len(mark) + 1 :].partition(" ")
            current = []
            out[name] = (rest, current)
        elif current is not None:
            current.append(line)
    return out


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_local_time(text: str) -> float | None:
    """$time_local (`03/Dec/2026:12:30:01 +0000`) as epoch seconds."""
    m = LOCAL_TIME.match(text)
    if m is None or m.group(2) not in MONTHS:
        return None
    offset = (int(m.group(8)) * 60 + int(m.group(9))) * (1 if m.group(7) == "+" else -1)
    when = datetime(
        int(m.group(3)),
        MONTHS[m.group(2)],
        int(m.group(1)),
        int(m.group(4)),
        int(m.group(5)),
        int(m.group(6)),
        tzinfo=timezone(timedelta(minutes=offset)),
    )
    return when.timestamp()


def parse_error_time(text: str, tz: timezone) -> float | None:
    """The error log's `2026/12/03 12:30:01`, in the host's local zone."""
    try:
        return datetime.strptime(text, "%Y/%m/%d %H:%M:%S").replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


def _zone(text: str) -> timezone:
    m = re.fullmatch(r"([+-])(\d\d)(\d\d)", text.strip())
    if m is None:
        return UTC
    minutes = (int(m.group(2)) * 60 + int(m.group(3))) * (1 if m.group(1) == "+" else -1)
    return timezone(timedelta(minutes=minutes))


UNPARSED = "?"  # the record of an access-log line not in the expected format


def access_parser(pattern: re.Pattern[str]) -> Parser:
    """An access-log line -> (its time, (status, failing path or None)), or UNPARSED."""
    timed = "time" in pattern.groupindex

    def parse(line: str) -> tuple[float | None, Any]:
        m = pattern.match(line)
        if m is None:
            return None, UNPARSED
        when: float | None = None
        if timed:
            when = parse_local_time(m.group("time") or "")
            if when is None:
                return None, UNPARSED
        status = int(m.group("status"))
        path: str | None = None
        if status >= 400:
            path = m.groupdict().get("path") or ""
            if not path:
                parts = (m.groupdict().get("request") or "").split()
                path = parts[1] if len(parts) > 1 else "-"
            path = sys.intern(path.split("?", 1)[0])
        return when, (status, path)

    return parse


def count_access(
    lines: list[str], pattern: re.Pattern[str], since: float, cut: bool, window: float, notes: list[str]
) -> tuple[dict[str, int], list[FailingPath], float | None]:
    """Counts by class in the window, the most failing paths, and when the newest 5xx was logged
    (None: none, or a format without times), of `lines` (the log's end; `cut`: not from its start)."""
    held = Window(None)
    held.add(lines, access_parser(pattern))
    held.from_start = not cut
    return count_window(held, pattern, since, window, notes)


def count_window(
    held: Window, pattern: re.Pattern[str], since: float, window: float, notes: list[str]
) -> tuple[dict[str, int], list[FailingPath], float | None]:
    counts = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    newest_five: float | None = None
    failing: Counter[tuple[str, int]] = Counter()
    timed = "time" in pattern.groupindex
    unparsed = 0
    oldest: float | None = None
    for when, _chars, record in held.records:
        if record is UNPARSED:
            unparsed += 1
            continue
        if when is not None:
            oldest = when if oldest is None else min(oldest, when)
        if timed and (when is None or when < since):
            continue
        status, path = record
        klass = f"{status // 100}xx"
        if klass in counts:
            counts[klass] += 1
        if klass == "5xx" and when is not None:
            newest_five = when if newest_five is None else max(newest_five, when)
        if path is not None:
            failing[(path, status)] += 1
    if unparsed:
        notes.append(f"access log: {unparsed} line(s) not in the expected format")
    if not timed:
        notes.append("access log: the format has no time group: every line read is counted")
    elif not held.whole and oldest is not None and oldest > since:
        minutes = max(0.0, (since + window * 60 - oldest) / 60)  # since + window: the host's now
        notes.append(
            f"access log: only its last {LOG_CAP // 1024} KiB were read: they cover about "
            f"{minutes:.0f} of the {window:g} min"
        )
    top = sorted(failing.items(), key=lambda kv: (kv[0][1] < 500, -kv[1], kv[0]))[:TOP]
    return counts, [FailingPath(clean(path, 200), status, n) for (path, status), n in top], newest_five


def upstream_address(url: str) -> str:
    """`http://127.0.0.1:8000/x` -> `127.0.0.1:8000`; `http://unix:/run/app.sock:/x` -> `unix:/run/app.sock`."""
    rest = url.split("://", 1)[-1]
    if rest.startswith("unix:"):
        return "unix:" + rest[5:].split(":", 1)[0]
    return urlsplit(url).netloc or rest.split("/", 1)[0]


def upstream_parser(tz: timezone) -> Parser:
    """An error-log line -> (its time, (upstream address, reason, its time as written)), or None
    for a line naming no upstream."""

    def parse(line: str) -> tuple[float | None, Any]:
        m = ERROR_LINE.match(line)
        if m is None:
            return None, None
        when = parse_error_time(m.group("time"), tz)
        if m.group("level") not in ("error", "crit", "alert", "emerg", "warn"):
            return when, None
        up = UPSTREAM_FIELD.search(m.group("rest"))
        if up is None or when is None:
            return when, None
        # "30539#30539: *4 connect() failed (111: ...) while connecting to upstream, client: ..."
        message = re.sub(r"^\d+#\d+: (?:\*\d+ )?", "", m.group("rest"))
        reason = message.split(" while ", 1)[0].split(", client:", 1)[0]
        return when, (sys.intern(upstream_address(up.group("url"))), clean(reason, 160), m.group("time"))

    return parse


def count_upstreams(held: Window, since: float, mapped: dict[str, str]) -> list[UpstreamErrors]:
    seen: dict[str, tuple[int, Counter[str], str]] = {}
    for when, _chars, record in held.records:
        if record is None or when is None or when < since:
            continue
        address, reason, stamp = record
        count, reasons, _last = seen.get(address, (0, Counter(), ""))
        reasons[reason] += 1
        seen[address] = (count + 1, reasons, stamp)
    out = [
        UpstreamErrors(clean(address, 200), n, reasons.most_common(1)[0][0], last, mapped.get(address))
        for address, (n, reasons, last) in seen.items()
    ]
    return sorted(out, key=lambda u: -u.count)


def parse_stub_status(text: str) -> StubStatus:
    """`Active connections: 1 / server accepts handled requests / 4 4 4 / Reading: 0 Writing: 1 Waiting: 0`."""
    active = re.search(r"Active connections:\s*(\d+)", text)
    totals = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", text)
    rww = re.search(r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)", text)
    if not (active and totals and rww):
        raise OpsError(f"not a stub_status page: {clean(text, 120)!r}")
    return StubStatus(
        int(active.group(1)),
        int(totals.group(1)),
        int(totals.group(2)),
        int(totals.group(3)),
        int(rww.group(1)),
        int(rww.group(2)),
        int(rww.group(3)),
    )


def fetch_stub_status(host: Host, url: str) -> StubStatus:
    """GET the status URL through the host's TCP channel (HTTP/1.0, at most STATUS_CAP bytes)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise OpsError(f"stub_status: only http:// URLs are read through the host (got {clean(url, 120)})")
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream = host.open_tcp(parts.hostname, port)
    try:
        stream.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while len(data) < STATUS_CAP:
            chunk = stream.recv(STATUS_CAP - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        stream.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    status = status_line.split()[1] if len(status_line.split()) > 1 else "?"
    if status != "200":
        raise OpsError(f"stub_status: {url} answered {clean(status_line, 80) or 'nothing'}")
    return parse_stub_status(body.decode("utf-8", errors="replace"))


def read_nginx(
    host: Host, config: NginxConfig, *, logs: bool = True, windows: Windows | None = None
) -> NginxStatus:
    """Everything the Nginx pane shows of one host (one script over the host's connection, and the
    status page through its TCP channel). With `windows` (what the last read of this host's logs
    kept), only what the logs gained since is sent."""
    mark = "@@nginx-" + secrets.token_hex(8)
    pattern = re.compile(config.log_format or COMBINED)
    held: dict[str, Window] | None = None
    locked: list[Window] = []
    if logs:
        held = {}
        for name, key in (("access", (config.access_log, pattern.pattern)), ("error", (config.error_log,))):
            window = windows.get(name, key) if windows is not None else None
            if window is not None and window.lock.acquire(blocking=False):
                locked.append(window)
            else:  # no windows, or another read of this host under way: this one reads the whole end
                window = Window(key)
            held[name] = window
    try:
        result = host.run(_script(config, mark, held), timeout=host.timeout)
        return _parse(host, config, mark, result.stdout, result.stderr, pattern, held)
    finally:
        for window in locked:
            window.lock.release()


def _parse(
    host: Host,
    config: NginxConfig,
    mark: str,
    stdout: str,
    stderr: str,
    pattern: re.Pattern[str],
    held: dict[str, Window] | None,
) -> NginxStatus:
    found = _sections(stdout, mark)
    if "end" not in found:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        raise OpsError(f"{host.name}: nginx: the read did not finish: {clean(' | '.join(tail), 300)}")
    now_rest = found["now"][0].split()
    remote_now = float(now_rest[0]) if now_rest and now_rest[0].isdigit() else time.time()
    tz = _zone(now_rest[1] if len(now_rest) > 1 else "")
    rc_text, test_lines = found["test"]
    rc = _int(rc_text)
    test_output = "\n".join([clean(line, 500) for line in test_lines if line.strip()][-TEST_LINES:])
    status = NginxStatus(host.name, rc == 0, test_output, window=config.window)
    if rc == 127:
        status.test_output = f"{config.binary}: not found on {host.name} (set nginx.binary)"
    elif rc != 0 and not test_output:
        status.test_output = f"{clean(config.binary, 200)} -T exited with {rc_text.strip()} and said nothing"
    if "master" in found:
        status.master_pid = _int(found["master"][0])
        age = _int(found.get("age", ("", []))[0])
        if age is not None:
            status.master_since = remote_now - age
        status.workers = tuple(int(w) for w in found.get("workers", ("", []))[0].split() if w.isdigit())
        pidfile = found.get("pidfile", ("", []))[0].split()
        if len(pidfile) == 2 and pidfile[1] == "ps":
            status.notes.append(
                f"pid file {clean(pidfile[0], 200)} names no running master: found it with ps"
            )
        elif len(pidfile) == 1 and pidfile[0] == "ps":
            status.notes.append("the config does not parse (so no pid file is known): master found with ps")
    if held is None:
        return status
    if config.status_url:
        try:
            status.stub_status = fetch_stub_status(host, config.status_url)
        except OpsError as exc:
            status.stub_status_error = exc.message
        except OSError as exc:
            status.stub_status_error = f"stub_status: {host.error('stub_status', exc).message}"
    since = remote_now - config.window * 60
    # the error log's times are the host's wall clock: kept as if UTC, the window moved to match
    local_since = since + (tz.utcoffset(None) or timedelta()).total_seconds()
    logs = (
        ("access", config.access_log, access_parser(pattern), since),
        ("error", config.error_log, upstream_parser(UTC), local_since),
    )
    for name, path, parser, start in logs:
        header, lines = found.get(name, ("missing", []))
        window = held[name]
        if header in ("missing", "unreadable") or not window.update(header, lines, parser, start, LOG_CAP):
            window.offset = -1  # read it whole when it is back
            told = header if header in ("missing", "unreadable") else "its size could not be read"
            status.notes.append(f"{name} log {clean(path, 200)}: {told}")
        elif name == "access":
            status.status_counts, status.top_failing, status.last_5xx = count_window(
                window, pattern, since, config.window, status.notes
            )
        else:
            status.upstream_errors = count_upstreams(window, local_since, dict(config.upstreams))
    return status


def workers(host: Host, config: NginxConfig) -> tuple[int | None, tuple[int, ...]]:
    """The master pid and its workers now (no logs read)."""
    status = read_nginx(host, config, logs=False)
    return status.master_pid, status.workers
