"""Many projects (`--all`, issue 32): the overview of 20 projects × 3 environments against the largest
single project, and the overview's idle cost against a minimal poller doing the same reads.

Every project is its own profile in one folder (`OPSCONSOLE_CONFIG_DIR`); their hosts are the
fleet's supervisords, reached locally or through the one loopback sshd (many projects on one SSH
server, as teams share servers). The largest project (`proj-00`) is one of the twenty: five hosts
over its three environments and the Docker Engine, where every other project has three hosts.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.b_resources import POLLER
from bench.common import ANSI, OPSCONSOLE, PYTHON, Config, Result
from bench.fleet import Fleet
from bench.terminal import Terminal

ENVS = ("dev", "staging", "prod")
POLL = 5.0  # the overview's poll interval with these profiles (screens/overview.py POLL_FLOOR)
SIZE = (120, 40)

# ------------------------------------------------------------------------ profiles


def _hosts(fleet: Fleet, project: int, env: int) -> tuple[list[str], int, bool]:
    """The hosts of one environment, the supervisord they reach and whether it has Docker."""
    sup = (project * len(ENVS) + env) % len(fleet.sups)
    ssh = fleet.env_names()[sup] in fleet.ssh_names
    if project == 0 and env > 0:  # the largest project: two hosts each on staging and prod
        return ["local", fleet.sshd.host], sup, False
    return [fleet.sshd.host if ssh else "local"], sup, project == 0 and fleet.docker is not None


def write_projects(fleet: Fleet, folder: Path, count: int, timeout: float) -> Path:
    """`count` profiles in `folder`; returns the largest one's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for project in range(count):
        lines = [
            "[project]",
            f'name = "team-{project:02d}"',
            "[defaults]",
            f'known_hosts = "{fleet.sshd.known_hosts}"',
            f'identity_file = "{fleet.sshd.client_key}"',
            f"timeout = {timeout}",
            f"refresh = {POLL}",
        ]
        for env, name in enumerate(ENVS):
            hosts, sup, docker = _hosts(fleet, project, env)
            lines += [
                f"[environments.{name}]",
                f"hosts = {json.dumps(hosts)}",
                f"[environments.{name}.supervisor]",
                f'url = "{fleet.sups[sup].unix_url}"',
            ]
            if docker:
                lines += [f"[environments.{name}.docker]", 'url = "unix:///var/run/docker.sock"']
        (folder / f"proj-{project:02d}.toml").write_text("\n".join(lines) + "\n")
    return folder / "proj-00.toml"


def _reads(fleet: Fleet, count: int) -> tuple[list[str], list[str], bool]:
    """What one poll of every project reads: supervisord sockets read locally, supervisord sockets
    read through the sshd, and whether the Docker Engine is read."""
    local: list[str] = []
    remote: list[str] = []
    docker = False
    for project in range(count):
        for env in range(len(ENVS)):
            hosts, sup, with_docker = _hosts(fleet, project, env)
            docker = docker or with_docker
            for host in hosts:
                if host == "local":
                    local.append(fleet.sups[sup].unix_url)
                else:
                    remote.append(
                        f"{PYTHON} -m supervisor.supervisorctl -s {fleet.sups[sup].unix_url} status"
                    )
    return local, remote, docker


# ------------------------------------------------------------------------ a screen from the pty

_SEQUENCE = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|([^\x1b\r\n]+)|(\r)|(\n)"
)
_INCOMPLETE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?\Z")  # a sequence cut off at the end


class Screen:
    """The characters on screen, kept from what a program wrote to its terminal: cursor moves (CUP),
    erases (EL, ED) and text; every other sequence is ignored. Enough for Textual, which places each
    changed line with an absolute cursor move."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.width, self.height = size
        self.rows = [[" "] * self.width for _ in range(self.height)]
        self.x = self.y = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = ""

    def feed(self, data: bytes) -> None:
        text = self._held + self._decoder.decode(data)
        held = _INCOMPLETE.search(text)
        cut = held.start() if held is not None else len(text)
        self._held = text[cut:]
        for match in _SEQUENCE.finditer(text, 0, cut):
            params, final, chars, cr, lf = match.groups()
            if chars is not None:
                self._write(chars)
            elif cr is not None:
                self.x = 0
            elif lf is not None:
                self.y = min(self.y + 1, self.height - 1)
            elif final == "H":
                parts = (params or "").split(";")
                self.y = min(max(int(parts[0] or 1) - 1, 0), self.height - 1)
                self.x = min(max(int(parts[1] or 1) - 1 if len(parts) > 1 else 0, 0), self.width - 1)
            elif final == "K":
                self.rows[self.y][self.x :] = [" "] * (self.width - self.x)
            elif final == "J" and params == "2":
                self.rows = [[" "] * self.width for _ in range(self.height)]

    def _write(self, chars: str) -> None:
        row = self.rows[self.y]
        for char in chars:
            if self.x < self.width:
                row[self.x] = char
            self.x += 1

    def line(self, y: int) -> str:
        return "".join(self.rows[y]).rstrip()

    def text(self) -> str:
        return "\n".join(self.line(y) for y in range(self.height))


def overview_complete(projects: int) -> Callable[[Screen], bool]:
    """The overview's status line counts every row and no longer says "N still loading…"."""
    rows = f"{projects * len(ENVS)} rows · enter opens"

    def done(screen: Screen) -> bool:
        return f"{projects} projects" in screen.line(0) and rows in screen.line(1)

    return done


def project_complete(screen: Screen) -> bool:
    """The console's environment list: every environment has answered ("all good", no "loading…"),
    and the processes pane shows the current environment's."""
    text = screen.text()
    return text.count("all good") == len(ENVS) and "loading…" not in text and "app:p00" in text


def until(term: Terminal, screen: Screen, done: Callable[[Screen], bool], timeout: float = 60.0) -> float:
    """Seconds from the program's start until `done(screen)` holds."""
    seen = 0
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with term._lock:  # noqa: SLF001 (the reader thread appends under it)
            data = bytes(term.output[seen:])
        seen += len(data)
        screen.feed(data)
        if done(screen):
            return time.perf_counter() - term.started
        time.sleep(0.005)
    raise TimeoutError(f"not complete after {timeout} s; on screen:\n{screen.text()}")


def _console(argv: list[str], env: dict[str, str], done: Callable[[Screen], bool]) -> float:
    term = Terminal(argv, env=env, size=SIZE)
    try:
        return until(term, Screen(SIZE), done)
    finally:
        term.close()


def _status(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    elapsed = time.perf_counter() - started
    data = json.loads(done.stdout)
    errors = [
        source["error"]
        for project in (data["projects"].values() if "projects" in data else [data])
        for environment in project["environments"].values()
        for host in environment["hosts"].values()
        for source in host.values()
        if isinstance(source, dict) and source.get("error")
    ]
    if done.returncode != 0 or errors:
        raise RuntimeError(f"{argv[1:]} exited {done.returncode}: {errors[:3]} {done.stderr[-1000:]}")
    return elapsed


def _paired(
    runs: int, many: Callable[[], float], one: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """`runs` pairs, interleaved and each pair in alternating order (ABBA…), after one of each unmeasured."""
    many()
    one()
    ours: list[float] = []
    base: list[float] = []
    for n in range(runs):
        if n % 2 == 0:
            ours.append(many())
            base.append(one())
        else:
            base.append(one())
            ours.append(many())
    return ours, base


def _spread(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


# ------------------------------------------------------------------------ benchmarks


def bench_projects(cfg: Config, fleet: Fleet, tmp: Path) -> None:
    count = 4 if cfg.smoke else 20
    runs = 1 if cfg.smoke else 7
    folder = tmp / "projects"
    largest = write_projects(fleet, folder, count, cfg.timeout)
    env = {"OPSCONSOLE_CONFIG_DIR": str(folder), "OPSCONSOLE_PROFILES_DIR": ""}
    setup = (
        f"{count} projects × {len(ENVS)} environments on {len(fleet.sups)} supervisords "
        f"({len(fleet.ssh_names)} through one sshd); the largest: proj-00, 5 hosts"
        + (" + Docker" if fleet.docker is not None else "")
    )

    # 10a: the console, as a person waits for it, in a pty
    ours, base = _paired(
        runs,
        lambda: _console([OPSCONSOLE, "--all"], env, overview_complete(count)),
        lambda: _console([OPSCONSOLE, "--profile", str(largest)], env, project_complete),
    )
    ratios = [a / b for a, b in zip(ours, base, strict=True)]
    ratio = statistics.median(ratios)
    cfg.results.append(
        Result(
            f"10a. overview of {count} projects x 3 envs vs the largest single project (console)",
            statistics.median(ours),
            statistics.median(base),
            "s",
            "ratio <= 2.0",
            ratio <= 2.0,
            f"real pty: start until `opsconsole --all` shows every row loaded vs `--profile proj-00` until "
            f"every environment says all good; median of {runs} interleaved pairs, pair ratios "
            f"{_spread(ratios)} (median {ratio:.2f}); {setup}",
        )
    )

    # 10b: the same through `status --json`, whole processes
    ours, base = _paired(
        runs,
        lambda: _status([OPSCONSOLE, "status", "--all", "--json"], env),
        lambda: _status([OPSCONSOLE, "--profile", str(largest), "status", "--json"], env),
    )
    ratios = [a / b for a, b in zip(ours, base, strict=True)]
    ratio = statistics.median(ratios)
    cfg.results.append(
        Result(
            f"10b. status --all of {count} projects x 3 envs vs the largest single project",
            statistics.median(ours),
            statistics.median(base),
            "s",
            "ratio <= 2.0",
            ratio <= 2.0,
            f"whole processes: `status --all --json` vs `--profile proj-00 status --json`; median of {runs} "
            f"interleaved pairs, pair ratios {_spread(ratios)} (median {ratio:.2f})",
        )
    )
    bench_projects_idle(cfg, fleet, tmp, count, env)


def bench_projects_idle(cfg: Config, fleet: Fleet, tmp: Path, count: int, env: dict[str, str]) -> None:
    seconds = min(cfg.idle_seconds, 20.0)
    local, remote, docker = _reads(fleet, count)
    spec = {
        "local": local,
        "remote": remote,
        "port": fleet.sshd.port,
        "key": str(fleet.sshd.client_key),
        "known_hosts": str(fleet.sshd.known_hosts),
        "docker": docker,
        "interval": POLL,
    }
    (tmp / "projects-poller.json").write_text(json.dumps(spec))
    (tmp / "projects-poller.py").write_text(POLLER)
    ours = Terminal([OPSCONSOLE, "--all"], env=env, size=SIZE)
    poller = Terminal([PYTHON, str(tmp / "projects-poller.py"), str(tmp / "projects-poller.json")])
    try:
        until(ours, Screen(SIZE), overview_complete(count))
        time.sleep(2 * POLL if not cfg.smoke else 1.0)  # past the first polls
        cpu0, poll_cpu0, bytes0 = ours.cpu_seconds(), poller.cpu_seconds(), ours.bytes_read
        mark = ours.mark()
        time.sleep(seconds)
        cpu, poll_cpu = ours.cpu_seconds() - cpu0, poller.cpu_seconds() - poll_cpu0
        written = ours.bytes_read - bytes0
        sample = ANSI.sub(b"", bytes(ours.output[mark : mark + 4000])).decode("utf-8", "replace")
    finally:
        ours.close()
        poller.close()
    floor = 0.01  # clock ticks: below this a process reads as 0
    reads = f"{len(local)} supervisord reads locally, {len(remote)} through the sshd" + (
        ", the Docker Engine" if docker else ""
    )
    cfg.results.append(
        Result(
            f"11a. idle overview of {count} projects: CPU seconds over {seconds:.0f} s vs a minimal poller",
            cpu,
            max(poll_cpu, floor),
            "s",
            "ratio <= 1.2",
            cpu <= 1.2 * max(poll_cpu, floor),
            f"`opsconsole --all` once every row loaded; the poller: {reads} every {POLL:g} s over one "
            "kept-open connection, parsed, nothing drawn",
        )
    )
    cfg.results.append(
        Result(
            f"11b. idle overview of {count} projects: bytes written to the terminal over {seconds:.0f} s",
            written,
            1000 * seconds / 60,
            "B",
            "<= 1 KB a minute",
            written <= 1000 * seconds / 60,
            f"nothing changes meanwhile; what was drawn: {' '.join(sample.split())[:160]!r}",
        )
    )
