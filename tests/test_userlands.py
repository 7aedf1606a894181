"""The commands opsconsole sends work on every userland a host may have: GNU (the default here),
BSD/macOS (shims first on PATH that reject the GNU-only flags, as macOS's own tools do) and BusyBox
(its applets first on PATH). Each runs the local-host deploy, rollback, releases listing and log
follow through the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import write_profile
from test_actions import git

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

# Each shim rejects what its macOS namesake rejects (the flag and the message BSD tools print), records
# that it did, and otherwise runs the real tool.
SHIMS = {
    "mv": ("T", "mv: illegal option -- T\nusage: mv [-f | -i | -n] [-hv] source target"),
    "readlink": ("f", "readlink: illegal option -- f\nusage: readlink [-n] [file ...]"),
    "sed": ("i", "sed: -i may not be used without an extension on this BSD shim"),
    "stat": (
        "c",
        "stat: illegal option -- c\nusage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file ...]",
    ),
}


def _shim(folder: Path, name: str, flag: str, message: str, log: Path) -> None:
    real = shutil.which(name)
    assert real is not None
    script = f"""#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    --*) ;;
    -*{flag}*) echo "{name} $*" >> {log}; printf '%s\\n' "{message}" >&2; exit 64 ;;
  esac
done
"""
    if name == "mv":  # BSD mv -h: rename the link itself (GNU spells it -T)
        script += f"""if [ "$1" = -h ]; then shift; exec {real} -T "$@"; fi
"""
    if name == "stat":  # BSD stat: -f FORMAT with %z (size) and %m (mtime)
        script += f"""if [ "$1" = -f ]; then
  fmt=$2; shift 2; [ "$1" = -- ] && shift
  case "$fmt" in %z) exec {real} -c %s -- "$@" ;; %m) exec {real} -c %Y -- "$@" ;; esac
fi
"""
    script += f'exec {real} "$@"\n'
    path = folder / name
    path.write_text(script)
    path.chmod(0o755)


def _readline(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """One line of the process's output, or fail after `timeout` (never hang the suite)."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout)
    assert line, f"no output line within {timeout:g} s"
    return line[0]


@pytest.fixture(params=["bsd", "busybox"])
def userland(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    folder = tmp_path / f"{request.param}-bin"
    folder.mkdir()
    log = tmp_path / "rejected.log"
    log.touch()
    if request.param == "bsd":
        for name, (flag, message) in SHIMS.items():
            _shim(folder, name, flag, message, log)
    else:
        if not os.path.exists(BUSYBOX):
            reason = "busybox is not installed (apt-get install busybox-static)"
            pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
        applets = "mv ln readlink sed stat tail head date tr awk grep mkdir rm cat dirname tar cut wc".split()
        for applet in applets:
            (folder / applet).symlink_to(BUSYBOX)
    env = {"PATH": f"{folder}:{os.environ['PATH']}"}
    return request.param, env, log


def test_deploy_rollback_and_logs_on_each_userland(
    tmp_path: Path, userland: tuple[str, dict[str, str], Path]
) -> None:
    kind, env, rejected = userland
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for version in ("v1", "v2"):
        (repo / "app.py").write_text(f"print('{version}')\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", version)
        git(repo, "tag", version)
    log_file = tmp_path / "app.log"
    log_file.write_text("".join(f"line {n}\n" for n in range(20)))
    root = tmp_path / "srv" / "shop"
    profile = write_profile(
        tmp_path,
        f"""
[environments.staging]
hosts = ["local"]
[environments.staging.logs]
files = ["{log_file}"]
[environments.staging.deploy]
path = "{root}"
repo = "{repo}"
keep_releases = 2
shared = ["media"]
build = ["test -d media", "readlink media"]
""",
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", "--profile", str(profile), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
        )

    releases = []
    for ref in ("v1", "v2", "v1"):
        done = cli("deploy", "staging", "--yes", "--ref", ref)
        assert done.returncode == 0, f"{kind}: {done.stdout}{done.stderr}"
        releases.append(os.readlink(root / "current"))
    assert (root / "current").is_symlink() and (root / "current" / "app.py").read_text() == "print('v1')\n"
    back = cli("rollback", "staging", "--yes")
    assert back.returncode == 0, back.stderr
    assert os.readlink(root / "current") == releases[1]
    listing = cli("releases", "staging")
    assert listing.returncode == 0 and "BAD" in listing.stdout
    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"exists": true' in status.stdout  # the log file's size and mtime were read
    tail = cli("logs", "staging", f"file:{log_file}", "-n", "3")
    assert tail.returncode == 0 and tail.stdout.splitlines() == ["line 17", "line 18", "line 19"]
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--profile",
            str(profile),
            "logs",
            "staging",
            f"file:{log_file}",
            "-n",
            "1",
            "-f",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert _readline(follow) == "line 19\n"
        with log_file.open("a") as out:
            out.write("appended\n")
        assert _readline(follow) == "appended\n"
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=30)
    assert follow.returncode == 130
    if kind == "bsd":
        # the only GNU-only flag tried is the switch's `mv -T`, whose refusal picks `mv -h`
        tried = {line.split()[0] for line in rejected.read_text().splitlines()}
        assert "mv" in tried  # the shims were first on PATH, and `mv -T` was refused as on macOS
        assert tried <= {"mv", "stat"}, rejected.read_text()


# ------------------------------------------------------------------------ the demo on a Mac


def test_demo_finds_docker_where_desktop_colima_and_contexts_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import json
    import socket as socketlib

    from opsconsole.demo.docker_host import candidates, find_engine

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    urls = [c.url for c in candidates()]
    assert urls == [
        f"unix://{home}/.docker/run/docker.sock",
        f"unix://{home}/.colima/default/docker.sock",
        "unix:///var/run/docker.sock",
    ]
    # a docker context (as `docker context use colima` leaves it) comes first, DOCKER_HOST before it
    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(b"colima").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "colima", "Endpoints": {"docker": {"Host": f"unix://{home}/ctx.sock"}}})
    )
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    found = candidates()
    assert [c.source for c in found[:2]] == ["DOCKER_HOST", "docker context 'colima'"]
    # only a live socket answers: the one Docker Desktop would create
    desktop = home / ".docker" / "run" / "docker.sock"
    desktop.parent.mkdir(parents=True)
    server = socketlib.socket(socketlib.AF_UNIX)
    server.bind(str(desktop))
    pinged: list[str] = []

    def ping(url: str) -> None:
        pinged.append(url)
        if url != f"unix://{desktop}":
            raise ConnectionRefusedError(111, "refused")

    try:
        url, note = find_engine(ping)
    finally:
        server.close()
    assert url == f"unix://{desktop}" and "Docker Desktop" in note
    missing_url, missing_note = find_engine(lambda _u: (_ for _ in ()).throw(ConnectionRefusedError()))
    assert missing_url is None
    for place in (
        "tcp://127.0.0.1:1 (DOCKER_HOST",
        "ctx.sock (docker context 'colima': no such socket)",
        ".colima/default/docker.sock",
    ):
        assert place in missing_note, missing_note


def test_the_demo_watchdog_stops_the_sandbox_when_the_console_dies(tmp_path: Path) -> None:
    """Where PR_SET_PDEATHSIG does not exist (macOS), a watchdog polls the console's pid."""
    from opsconsole.demo.sandbox import _WATCHDOG

    root = tmp_path / "sandbox"
    root.mkdir()
    console = subprocess.Popen(["sleep", "2"])
    service = subprocess.Popen(["sleep", "300"], start_new_session=True)
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(console.pid), str(root), str(service.pid)]
    )
    try:
        console.wait(10)
        assert service.wait(20) == -signal.SIGTERM
        watchdog.wait(20)
        assert not root.exists()
    finally:
        for proc in (service, watchdog):
            if proc.poll() is None:
                proc.kill()
