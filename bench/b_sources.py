"""The sources issues 29-33 added, idle (issue 34): the console on a profile with an Nginx (its
config test, master, `stub_status` and the last minutes of its access and error logs), an
Alertmanager 0.25, a deploy journal with run logs, the Timeline merged from them, and systemd units
over SSH, against a minimal poller doing the same reads at the same interval, parsed, drawing nothing.

Every service is real and on loopback: Nginx in a temp prefix (tests/nginx_harness.py), Alertmanager
(tests/alertmanager_harness.py) holding two firing alerts, systemd as PID 1 in a container
(tests/systemd_harness.py; left out, and said so, when Docker or its image is missing or it takes
over a minute). Nothing changes during the window: no request reaches Nginx's proxy (its logs hold
lines written before the start, inside and outside the window), the alert list is fixed, the units
are ones that do not restart.

The interval: the console polls every `refresh` seconds and stretches that to 4x while nothing
changes (sources/schedule.py), per environment. The poller is started once the console has settled
and is given its measured period per environment (Nginx reads are counted from `stub_status` hits,
which this Nginx logs to a log of its own with each caller's User-Agent; systemd reads from a
`systemctl` shim in the container that logs each `show` with its caller). The window is a whole
number of the console's periods, from half-way between two refreshes to half-way between two
others; each side's reads in it are in the note, so a ratio rests on the same reads.

CPU is the whole process tree's, children that have exited included (`cutime`/`cstime`): the
console reads a local host through `sh` scripts (and `nginx -T`), whose processes are gone before
any sample; `Terminal.cpu_seconds` (live processes only) is given in the note too.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
from bench.b_projects import Screen
from bench.common import ANSI, OPSCONSOLE, PYTHON, Config, Result
from bench.terminal import Terminal, tree_pids, tree_rss_kib

SIZE = (120, 40)
UNITS = ("demo", "worker", "shop-web")  # the image's units that never restart by themselves
ALERTS = (
    ({"alertname": "HighErrorRate", "env": "production", "severity": "critical"}, "5xx above 2 %"),
    ({"alertname": "DiskFilling", "env": "production", "severity": "warning"}, "/srv 85 % full"),
    ({"alertname": "OtherTeam", "env": "staging", "severity": "warning"}, "not this environment's"),
)
MATCHERS = ['env="production"']


# ------------------------------------------------------------------------ CPU, counted whole


def tree_cpu_all(pid: int) -> float:
    """User + system CPU of `pid` and its live descendants, with what each has reaped of its
    children (`cutime` + `cstime`): a short `sh` a refresh ran counts once it has exited."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for one in tree_pids(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])
    return total / ticks


# ------------------------------------------------------------------------ what the services hold


def _nginx_config(base: str, prefix: Path, status_port: int) -> str:
    """The demo's config, with the `stub_status` server logging to status.log (msec and
    User-Agent) instead of the access log the console counts: the pollers' own requests are
    counted there, and the access log's window does not change."""
    head = "http {\n"
    server = f"    server {{\n        listen 127.0.0.1:{status_port};\n"
    assert head in base and server in base, "nginx_front.config_text changed: update bench/b_sources.py"
    text = base.replace(head, head + "    log_format hits '$msec \"$http_user_agent\"';\n", 1)
    return text.replace(server, server + f"        access_log {prefix}/logs/status.log hits;\n", 1)


def _access_line(when: datetime, status: int, path: str) -> str:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    return (
        f'127.0.0.1 - - [{stamp}] "GET {path} HTTP/1.1" {status} 612 "-" '
        '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"\n'
    )


def _error_line(when: datetime, upstream: int, path: str) -> str:
    return (
        f"{when.strftime('%Y/%m/%d %H:%M:%S')} [error] 4242#4242: *17 connect() failed (111: Connection "
        f'refused) while connecting to upstream, client: 127.0.0.1, server: , request: "GET {path} '
        f'HTTP/1.1", upstream: "http://127.0.0.1:{upstream}{path}", host: "shop.example.com"\n'
    )


def write_logs(prefix: Path, upstream: int, old_lines: int, now: datetime) -> int:
    """Access and error logs as a busy site leaves them: `old_lines` from an hour or two ago
    (read and parsed, outside the window) and 60 from the last minute (counted), statuses mixed.
    The window is 5 minutes: the recent lines stay in it for 4 minutes, longer than a run.
    Returns the access log's size."""
    logs = prefix / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    local = now.astimezone()
    paths = ("/", "/cart", "/checkout", "/api/products?page=2", "/static/app.css", "/account")
    statuses = (200, 200, 200, 304, 200, 404, 200, 502)
    access, errors = [], []
    for n in range(old_lines):
        when = local - timedelta(hours=2) + timedelta(seconds=n * 3600 / max(old_lines, 1))
        access.append(_access_line(when, statuses[n % len(statuses)], paths[n % len(paths)]))
        if n % 40 == 0:
            errors.append(_error_line(when, upstream, paths[n % len(paths)]))
    for n in range(60):
        when = local - timedelta(seconds=60 - n)
        status = statuses[n % len(statuses)]
        access.append(_access_line(when, status, paths[n % len(paths)]))
        if status == 502:
            errors.append(_error_line(when, upstream, paths[n % len(paths)]))
    (logs / "access.log").write_text("".join(access))
    (logs / "error.log").write_text("".join(errors))
    return (logs / "access.log").stat().st_size


def write_deploys(path: Path, now: datetime) -> None:
    """A deploy path as the console leaves it: five releases, `current`, a journal of 30 deploys
    (one a day, two failed), a rollback, and three run logs of actions."""
    state = path / ".opsconsole"
    (state / "runs").mkdir(parents=True, exist_ok=True)
    (path / "shared").mkdir(exist_ok=True)
    records: list[dict[str, Any]] = []
    releases: list[str] = []
    for day in range(30, 0, -1):
        started = now - timedelta(days=day, hours=1)
        release = started.strftime("%Y%m%d-%H%M%S")
        outcome = "failed" if day in (11, 23) else "success"
        records.append(
            {
                "event": "deploy",
                "release": release,
                "ref": "main",
                "commit": f"{day:02d}" + "ab12cd34ef56" * 3,
                "who": "ana@example.com" if day % 2 else "bo@example.com",
                "run": f"run-{day:02d}",
                "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "finished": (started + timedelta(seconds=95)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "outcome": outcome,
            }
        )
        if outcome == "success":
            releases.append(release)
    rolled = now - timedelta(days=1, hours=-2)
    records.append(
        {
            "event": "rollback",
            "release": releases[-2],
            "from": releases[-1],
            "who": "bo@example.com",
            "run": "run-rb",
            "started": rolled.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": (rolled + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "outcome": "success",
        }
    )
    (state / "deploys.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for release in releases[-5:]:
        (path / "releases" / release).mkdir(parents=True, exist_ok=True)
    os.symlink(f"releases/{releases[-2]}", path / "current")
    for n, (action, target) in enumerate(
        (("restart", "systemd:shop-web"), ("purge", ""), ("restart", "systemd:worker"))
    ):
        started = now - timedelta(hours=6 - n)
        run = started.strftime("%Y%m%d-%H%M%S") + f"-{n}"
        lines = [
            {
                "run": run,
                "action": action,
                "target": target,
                "env": "production",
                "who": "ana@example.com",
                "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            {"type": "StepStarted", "step": action, "host": "local"},
            {"type": "end", "ok": True, "exit_code": 0},
        ]
        log = state / "runs" / f"{run}.jsonl"
        log.write_text("".join(json.dumps(line) + "\n" for line in lines))
        stamp = started.timestamp() + 5
        os.utime(log, (stamp, stamp))


# ------------------------------------------------------------------------ the poller

# The job itself, every `interval` s: Nginx's config test (`nginx -T`), its master (pid file) and
# workers (/proc), `stub_status`, the last MiB of each log parsed for the window (status classes,
# top failing paths, upstream errors); Alertmanager's alert groups for the environment's matchers
# (kept-open connection); the deploy path (current, releases, lock, the journal's last 200 records
# and its history, the newest run logs' first and last records); and, when given, one
# `systemctl show` of the units over a kept-open SSH connection. Everything parsed, nothing drawn.
POLLER = r"""
import http.client, json, os, re, subprocess, sys, time, urllib.parse
from collections import Counter
from datetime import datetime

spec = json.load(open(sys.argv[1]))
ng, am, dep, sd = spec["nginx"], spec["alerts"], spec["deploy"], spec.get("systemd")
COMBINED = re.compile(spec["combined"])
ERROR = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (.*)$")
UPSTREAM = re.compile(r', upstream: "([^"]*)"')
CAP = 1024 * 1024
status = urllib.parse.urlsplit(ng["status_url"])
groups = "/api/v2/alerts/groups?" + urllib.parse.urlencode([("filter", m) for m in am["matchers"]])
amurl = urllib.parse.urlsplit(am["url"])
amconn = http.client.HTTPConnection(amurl.hostname, amurl.port, timeout=5)
ssh = None
if sd:
    import paramiko
    ssh = paramiko.SSHClient()
    ssh.load_host_keys(sd["known_hosts"])
    ssh.connect("127.0.0.1", port=sd["port"], username="root", key_filename=sd["key"])

def tail(path):
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - CAP))
        lines = f.read().decode("utf-8", "replace").split("\n")
    return [l for l in (lines[1:] if size > CAP else lines) if l]

def read_nginx():
    test = subprocess.run([ng["binary"], "-T", "-p", ng["prefix"], "-c", ng["conf"]], capture_output=True)
    pid = int(open(ng["pidfile"]).read())
    age = os.stat(f"/proc/{pid}").st_mtime
    workers = open(f"/proc/{pid}/task/{pid}/children").read().split()
    conn = http.client.HTTPConnection(status.hostname, status.port, timeout=5)
    conn.request("GET", status.path, headers={"User-Agent": "poller"})
    body = conn.getresponse().read().decode()
    conn.close()
    stub = [int(n) for n in re.findall(r"\d+", body)]
    since = time.time() - ng["window"] * 60
    counts, failing = Counter(), Counter()
    for line in tail(ng["access_log"]):
        m = COMBINED.match(line)
        if m is None or datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp() < since:
            continue
        code = int(m["status"])
        counts[f"{code // 100}xx"] += 1
        if code >= 400:
            failing[(m["request"].split()[1].split("?")[0], code)] += 1
    upstreams = Counter()
    for line in tail(ng["error_log"]):
        m = ERROR.match(line)
        u = UPSTREAM.search(m[3]) if m else None
        if u and time.mktime(time.strptime(m[1], "%Y/%m/%d %H:%M:%S")) >= since:
            upstreams[(u[1].split("://")[1].split("/")[0], m[3].split(" while ")[0])] += 1
    return test.returncode, pid, age, workers, stub, counts, failing.most_common(5), upstreams

def read_alerts():
    amconn.request("GET", groups, headers={"Accept": "application/json"})
    data = json.loads(amconn.getresponse().read())
    return [(g["labels"], a["fingerprint"], a["status"]["state"], a["startsAt"], a["annotations"])
            for g in data for a in g["alerts"]]

def read_deploys():
    path = dep["path"]
    current = os.readlink(path + "/current")
    releases = sorted(os.listdir(path + "/releases"))
    lock = os.path.exists(path + "/.opsconsole/lock")
    with open(path + "/.opsconsole/deploys.jsonl") as f:
        lines = f.read().splitlines()
    journal = [json.loads(l) for l in lines[-200:]]
    history = [json.loads(l) for l in lines if '"outcome": "success"' in l or '"event": "mark_bad"' in l]
    runs = []
    folder = path + "/.opsconsole/runs"
    for name in sorted(os.listdir(folder), reverse=True)[:10]:
        with open(folder + "/" + name) as f:
            records = f.read().splitlines()
        runs.append((json.loads(records[0]), json.loads(records[-1]), os.stat(folder + "/" + name).st_mtime))
    return current, releases, lock, journal, history, runs

def read_units():
    _, out, _ = ssh.exec_command("OPSC_POLLER=poller " + sd["command"])
    blocks = []
    for chunk in out.read().decode().split("\n\n"):
        block = dict(line.split("=", 1) for line in chunk.splitlines() if "=" in line)
        if "Id" in block:
            blocks.append(block)
    return blocks

interval, units_interval = spec["interval"], spec["units_interval"]
next_main = next_units = time.monotonic()
while True:
    if time.monotonic() >= next_main:
        read_nginx(); read_alerts(); read_deploys()
        next_main += interval
    if ssh is not None and time.monotonic() >= next_units:
        read_units()
        next_units += units_interval
    time.sleep(max(0.0, min(next_main, next_units if ssh is not None else next_main) - time.monotonic()))
"""


# ------------------------------------------------------------------------ the run

# In the container, `systemctl show` is logged with its caller (the console, or the poller, which
# says so in OPSC_POLLER) before it runs: each side's systemd reads are counted, as stub_status
# hits count their Nginx reads.
SHOW_SHIM = """#!/bin/sh
[ "$1" = show ] && echo "$(date +%s.%N) ${OPSC_POLLER:-console}" >> /run/opsc-show.log
exec /usr/bin/systemctl "$@"
"""


@dataclass
class Setup:
    profile: Path
    poller: Path
    spec: dict[str, Any]
    status_log: Path
    box: Any  # systemd_harness.SystemdHost, or None
    systemd_note: str
    access_bytes: int


def _systemd(stack: ExitStack, root: Path) -> tuple[Any, str]:
    """A systemd container, or None and why not (no Docker, no image, over a minute to start)."""
    try:
        from systemd_harness import start_systemd

        started = time.perf_counter()
        host = start_systemd(root)
    except Exception as exc:  # noqa: BLE001 - left out and said why, as the brief allows
        return None, f"systemd left out: {type(exc).__name__}: {str(exc)[:160]}"
    stack.callback(host.stop)
    took = time.perf_counter() - started
    if took > 60:
        return None, f"systemd left out: its container took {took:.0f} s to start"
    host.exec(f"cat > /usr/local/sbin/systemctl <<'EOF'\n{SHOW_SHIM}EOF\nchmod 755 /usr/local/sbin/systemctl")
    return host, f"systemd: {len(UNITS)} units in a container over SSH (up in {took:.1f} s)"


def _setup(cfg: Config, tmp: Path, stack: ExitStack, refresh: float) -> Setup:
    import alertmanager_harness
    import nginx_harness
    from harness import free_port
    from opsconsole.backends.nginx import COMBINED
    from opsconsole.backends.systemd import PROPERTIES
    from opsconsole.demo.nginx_front import config_text

    now = datetime.now(UTC)
    tmp.mkdir(parents=True, exist_ok=True)

    upstream = free_port()  # nothing listens there: no request is ever proxied
    nginx = nginx_harness.make_nginx(tmp / "nginx", upstream)
    base = config_text(nginx.prefix, nginx.listen, nginx.status, upstream)
    nginx.write_config(_nginx_config(base, nginx.prefix, nginx.status))
    access_bytes = write_logs(nginx.prefix, upstream, 1000 if cfg.smoke else 8000, now)
    nginx.start()
    stack.callback(nginx.stop)

    am = alertmanager_harness.make(tmp / "alertmanager")
    am.start()
    stack.callback(am.stop)
    for labels, summary in ALERTS:
        am.fire(labels, {"summary": summary})

    deploy = tmp / "srv" / "shop"
    write_deploys(deploy, now)

    box, systemd_note = _systemd(stack, tmp / "systemd")

    lines = ["[project]", 'name = "shop"', "[defaults]", f"timeout = {cfg.timeout}", f"refresh = {refresh}"]
    if box is not None:
        lines += [f'known_hosts = "{box.known_hosts}"', f'identity_file = "{box.client_key}"']
    lines += [
        "[environments.production]",
        'hosts = ["local"]',
        "[environments.production.deploy]",
        f'path = "{deploy}"',
        'repo = "https://git.example.com/acme/shop.git"',
        "[environments.production.nginx]",
        f'prefix = "{nginx.prefix}"',
        f'config = "{nginx.conf}"',
        f'access_log = "{nginx.access_log}"',
        f'error_log = "{nginx.error_log}"',
        f'status_url = "{nginx.status_url}"',
        f'upstreams = {{ "127.0.0.1:{upstream}" = "systemd:shop-web" }}',
        "[environments.production.alerts]",
        f'url = "{am.url}"',
        f"matchers = {json.dumps(MATCHERS)}",
    ]
    if box is not None:
        lines += [
            "[environments.units]",
            f'hosts = ["{box.host}"]',
            "[environments.units.systemd]",
            f"units = {json.dumps(list(UNITS))}",
        ]
    profile = tmp / "sources.toml"
    profile.write_text("\n".join(lines) + "\n")

    spec: dict[str, Any] = {
        "nginx": {
            "binary": nginx.binary,
            "prefix": str(nginx.prefix),
            "conf": str(nginx.conf),
            "pidfile": str(nginx.prefix / "nginx.pid"),
            "access_log": str(nginx.access_log),
            "error_log": str(nginx.error_log),
            "status_url": nginx.status_url,
            "window": 5.0,
        },
        "alerts": {"url": am.url, "matchers": MATCHERS},
        "deploy": {"path": str(deploy)},
        "combined": COMBINED,
    }
    if box is not None:
        units = " ".join(f"{u}.service" for u in UNITS)
        spec["systemd"] = {
            "port": box.port,
            "key": str(box.client_key),
            "known_hosts": str(box.known_hosts),
            "command": f"systemctl show -p {','.join(PROPERTIES)} --timestamp=unix -- {units}",
        }
    (tmp / "poller.py").write_text(POLLER)
    status_log = nginx.prefix / "logs" / "status.log"
    return Setup(profile, tmp / "poller.py", spec, status_log, box, systemd_note, access_bytes)


def _split(lines: list[tuple[float, str]]) -> tuple[list[float], list[float]]:
    """(the console's times, the poller's times) of logged reads."""
    ours = [t for t, who in lines if who != "poller"]
    return ours, [t for t, who in lines if who == "poller"]


def _nginx_reads(setup: Setup) -> tuple[list[float], list[float]]:
    """Each side's `stub_status` requests so far (one per read of Nginx)."""
    if not setup.status_log.exists():
        return [], []
    lines = []
    for line in setup.status_log.read_text().splitlines():
        stamp, _, agent = line.partition(" ")
        lines.append((float(stamp), "poller" if agent == '"poller"' else "console"))
    return _split(lines)


def _units_reads(setup: Setup) -> tuple[list[float], list[float]]:
    """Each side's `systemctl show` runs so far (one per read of the units)."""
    if setup.box is None:
        return [], []
    text = setup.box.exec("cat /run/opsc-show.log 2>/dev/null; true")
    lines = [(float(t), who) for t, _, who in (line.partition(" ") for line in text.splitlines())]
    return _split(lines)


def _period(times: list[float], idle: float) -> float | None:
    """The steady interval between reads, once there is one: a gap as long as the idle stretch,
    or three gaps within 10 % of each other (a schedule that does not stretch)."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    if gaps and gaps[-1] >= 0.9 * idle:
        return gaps[-1]
    last = gaps[-3:]
    if len(last) == 3 and max(last) <= 1.1 * min(last):
        return sorted(last)[1]
    return None


def _feed(term: Terminal, screen: Screen, seen: int) -> int:
    with term._lock:  # noqa: SLF001 (the reader thread appends under it)
        data = bytes(term.output[seen:])
    screen.feed(data)
    return seen + len(data)


def _show_timeline(term: Terminal, screen: Screen, units: bool) -> int:
    """The Timeline pane on screen once every source answered (tabs past 6 are numbered in the
    order the profile's sources give them: each number is tried until the Timeline's tab is lit)."""
    deadline = time.perf_counter() + 30
    seen = 0
    while time.perf_counter() < deadline:
        seen = _feed(term, screen, seen)
        loaded = "2 alerts" in screen.line(0) and "…" not in screen.line(0)
        if loaded and (not units or "all good" in screen.text()):  # `units`: its environment answered
            break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"the console did not finish loading; on screen:\n{screen.text()}")
    for key in ("7", "8", "9"):
        term.send(key)
        shown = time.perf_counter() + 2
        while time.perf_counter() < shown:
            seen = _feed(term, screen, seen)
            if "Timeline" in screen.line(1) and "deploy " in screen.text():
                return seen
            time.sleep(0.05)
    raise TimeoutError(f"the Timeline pane did not show; on screen:\n{screen.text()}")


def _wait(what: str, check: Any, timeout: float, poll: float = 0.1) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(poll)
    raise TimeoutError(what)


def _gaps(times: list[float], start: float, end: float) -> str:
    inside = [t for t in times if start <= t < end]
    gaps = [b - a for a, b in zip(inside, inside[1:], strict=False)]
    if not gaps:
        return "-"
    return f"{min(gaps):.1f}-{max(gaps):.1f} s" if max(gaps) - min(gaps) >= 0.1 else f"{gaps[0]:.1f} s"


def bench_sources_idle(cfg: Config, tmp: Path) -> None:
    refresh = 1.0 if cfg.smoke else 5.0
    idle = 4 * refresh  # sources/schedule.py: IDLE_BACKOFF x refresh while nothing changes
    with ExitStack() as stack:
        setup = _setup(cfg, tmp, stack, refresh)
        ours = Terminal([OPSCONSOLE, "--profile", str(setup.profile)], size=SIZE)
        stack.callback(ours.close)
        screen = Screen(SIZE)
        seen = _show_timeline(ours, screen, setup.box is not None)

        # the console's pace once it has settled, per environment; the poller is given the same
        warm = 12 * refresh + 20
        main = _wait(
            "the console's Nginx reads never settled", lambda: _period(_nginx_reads(setup)[0], idle), warm
        )
        units = None
        if setup.box is not None:
            units = _wait(
                "the console's systemd reads never settled",
                lambda: _period(_units_reads(setup)[0], idle),
                warm,
                poll=1.0,
            )
        setup.spec["interval"], setup.spec["units_interval"] = main, units or main
        spec_path = setup.poller.with_name("poller.json")
        spec_path.write_text(json.dumps(setup.spec))
        poller = Terminal([PYTHON, str(setup.poller), str(spec_path)])
        stack.callback(poller.close)
        _wait("the poller never read Nginx", lambda: _nginx_reads(setup)[1] or None, 30)

        # from half-way between two console reads to half-way between two others, whole periods later
        cycles = max(1, round(cfg.idle_seconds / main))
        last = _nginx_reads(setup)[0][-1]
        time.sleep(max(0.0, last + main / 2 - time.time()))
        start = time.time()
        cpu0, live0, poll0 = tree_cpu_all(ours.pid), ours.cpu_seconds(), tree_cpu_all(poller.pid)
        bytes0, mark = ours.bytes_read, ours.mark()
        seen = _feed(ours, screen, seen)
        before = screen.text().splitlines()
        time.sleep(cycles * main)
        end = time.time()
        cpu, live = tree_cpu_all(ours.pid) - cpu0, ours.cpu_seconds() - live0
        poll_cpu = tree_cpu_all(poller.pid) - poll0
        written = ours.bytes_read - bytes0
        drawn = ANSI.sub(b"", bytes(ours.output[mark : mark + 4000])).decode("utf-8", "replace")
        _feed(ours, screen, seen)
        after = screen.text().splitlines()
        rss = tree_rss_kib(ours.pid) / 1024
        nginx_ours, nginx_theirs = _nginx_reads(setup)
        units_ours, units_theirs = _units_reads(setup)

    def count(times: list[float]) -> int:
        return sum(1 for t in times if start <= t < end)

    seconds = end - start
    changed = sum(1 for a, b in zip(before, after, strict=True) if a != b)
    floor = 0.01  # clock ticks: below this a process reads as 0
    reads = (
        f"reads in the window, console/poller: Nginx {count(nginx_ours)}/{count(nginx_theirs)} (every "
        f"{_gaps(nginx_ours, start, end)}; Alertmanager and the journal with them)"
    )
    if setup.box is not None:
        reads += (
            f", systemd {count(units_ours)}/{count(units_theirs)} (every {_gaps(units_ours, start, end)})"
        )
    cfg.results.append(
        Result(
            f"14a. idle new sources: CPU seconds over {seconds:.0f} s vs a minimal poller",
            cpu,
            max(poll_cpu, floor),
            "s",
            "ratio <= 1.2",
            cpu <= 1.2 * max(poll_cpu, floor),
            f"Nginx (nginx -T, master, stub_status, {setup.access_bytes // 1024} KiB access log: the poller "
            "parses its last 1 MiB at every poll, the console once, then what it gains; error log), Alertmanager 0.25 (2 of 3 alerts match), a deploy journal "
            f"(31 records, 3 run logs), the Timeline; {setup.systemd_note}. refresh = {refresh:g} s; {reads}. "
            f"CPU of each process tree with its exited children (the console's sh scripts, nginx -T); "
            f"live processes only (Terminal.cpu_seconds): console {live:.2f} s. Console RSS {rss:.0f} MiB",
        )
    )
    cfg.results.append(
        Result(
            f"14b. idle new sources: bytes written to the terminal over {seconds:.0f} s",
            written,
            1000 * seconds / 60,
            "B",
            "<= 1 KB a minute",
            written <= 1000 * seconds / 60,
            f"the Timeline pane on screen, nothing changes; {changed} of {SIZE[1]} screen lines differ after "
            f"the window; what was drawn: {' '.join(drawn.split())[:160]!r}",
        )
    )
