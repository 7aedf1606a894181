"""Deploy overhead: `opsconsole deploy` against the same remote work done by hand (issue 34).

One loopback SSH host, a tiny app repository, a 5-step build (each step a `python3 -c …` of ~0.1 s)
and a restart command. The console's `deploy ENV --yes` is timed as a whole process against two
baselines doing the same remote work: fetch into a bare mirror, export the commit into a new release,
the 5 build steps, switch `current`, restart, prune to `keep_releases`:
  - a shell loop with one `ssh host '…'` per step, as a person's deploy script would;
  - a Fabric 3 task (`fab -H host deploy`) running the same commands over its one connection.
`rollback ENV --yes` is timed against the shell loop's rollback (switch to the previous release, restart).
Each contender deploys to its own path on the host, and every round deploys a new commit.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import bench.common  # noqa: F401  (puts tests/ on the path for the harness)
import harness
from bench.common import PYTHON, Config, Result, git

KEEP_RELEASES = 3
# The build: five steps of ~0.1 s each (a python3 start plus a little work, padded by a sleep so that
# the steps weigh the same on any machine). Run in the new release's folder.
BUILD = [
    "python3 -c 'import compileall, sys, time; time.sleep(0.08); sys.exit(not compileall.compile_dir(\"app\", quiet=1))'",
    'python3 -c \'import shutil, time; time.sleep(0.08); shutil.copytree("assets", "static")\'',
    "python3 -c 'import hashlib, json, pathlib, time; time.sleep(0.08); "
    'm = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in pathlib.Path("static").iterdir()}; '
    'json.dump(m, open("static/manifest.json", "w"))\'',
    "python3 -c 'import json, os, time; time.sleep(0.08); "
    'json.dump({"release": os.path.basename(os.getcwd()), "debug": False}, open("settings.json", "w"))\'',
    'python3 -c \'import sys, time; time.sleep(0.08); sys.path.insert(0, "."); import app; print("app", app.VERSION)\'',
]
# Passenger-style restart: touch tmp/restart.txt in `current`.
RESTART = "mkdir -p tmp && touch tmp/restart.txt"

FABFILE = textwrap.dedent(
    """
    import json
    import paramiko
    from fabric import task

    @task
    def deploy(c, spec):
        spec = json.load(open(spec))
        # host keys checked as the console and the shell loop check them
        c.client.load_host_keys(spec["known_hosts"])
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        for command in spec["commands"]:
            c.run(command, hide=True)
    """
)


def _make_repo(repo: Path) -> None:
    """A tiny web app: a package, two static files, a requirements file."""
    (repo / "app").mkdir(parents=True)
    (repo / "assets").mkdir()
    (repo / "app" / "__init__.py").write_text("VERSION = 0\n")
    (repo / "app" / "views.py").write_text(
        "def index(request):\n    return {'status': 200, 'body': 'hello'}\n\n"
        "def health(request):\n    return {'status': 200, 'body': 'ok'}\n"
    )
    (repo / "assets" / "app.css").write_text("body { font-family: sans-serif; margin: 0 auto; }\n" * 20)
    (repo / "assets" / "app.js").write_text("document.addEventListener('DOMContentLoaded', () => {});\n" * 20)
    (repo / "requirements.txt").write_text("gunicorn==22.0.0\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "app v0")


def _new_commit(repo: Path, version: int) -> None:
    (repo / "app" / "__init__.py").write_text(f"VERSION = {version}\n")
    git(repo, "commit", "-q", "-am", f"app v{version}")


def _remote_steps(path: str, repo: Path, release: str) -> list[str]:
    """The hand-written deploy, one command per step (what the shell loop sends with one ssh each)."""
    q = shlex.quote
    mirror, rel = f"{path}/repo.git", f"{path}/releases/{release}"
    return [
        f"mkdir -p {q(path)}/releases {q(path)}/shared && if [ -d {q(mirror)} ]; then "
        f"git --git-dir={q(mirror)} fetch --prune --quiet origin; "
        f"else git clone --mirror --quiet {q(str(repo))} {q(mirror)}; fi",
        f"mkdir {q(rel)} && git --git-dir={q(mirror)} archive --format=tar main | tar -x -C {q(rel)}",
        *(f"cd {q(rel)} && {step}" for step in BUILD),
        f"cd {q(path)} && ln -sfn releases/{release} current.tmp && mv -T current.tmp current",
        f"cd {q(path)}/current && {RESTART}",
        f"cd {q(path)}/releases && ls -1 | head -n -{KEEP_RELEASES} | xargs -r rm -rf --",
    ]


def _rollback_steps(path: str) -> list[str]:
    q = shlex.quote
    return [
        f"cd {q(path)} && prev=$(ls -1 releases | tail -n 2 | head -n 1) && "
        'ln -sfn "releases/$prev" current.tmp && mv -T current.tmp current',
        f"cd {q(path)}/current && {RESTART}",
    ]


def _timed(argv: list[str], check: Callable[[subprocess.CompletedProcess[str]], None]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - started
    check(done)
    return elapsed


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, (done.args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])


def _check_release(path: Path, version: int) -> None:
    """`current` is a built release of commit `version`, restarted."""
    current = path / "current"
    assert (current / "app" / "__init__.py").read_text() == f"VERSION = {version}\n", current.resolve()
    for built in ("static/manifest.json", "settings.json", "tmp/restart.txt"):
        assert (current / built).exists(), (current.resolve(), built)


def bench_deploy(cfg: Config, tmp: Path) -> None:
    runs = 1 if cfg.smoke else 5
    root = tmp / "deploy"
    repo = root / "app-repo"
    _make_repo(repo)
    # One SSH host; like the fleet's, its sessions get a stock shell start-up (harness.SshFleet hides
    # this machine's ~/.bashrc, which starts pyenv for every SSH command, on both sides alike).
    fleet = harness.make_ssh_fleet(root / "sshd", 1)
    sshd, host = fleet.sshd, fleet.hosts[0]
    address = fleet.addresses[0]
    srv = root / "srv"
    paths = {name: srv / name for name in ("console", "loop", "fabric")}
    profile = root / "deploy.toml"
    profile.write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "shop"
            [defaults]
            known_hosts = {json.dumps(str(sshd.known_hosts))}
            identity_file = {json.dumps(str(sshd.client_key))}
            timeout = 10
            [environments.staging]
            hosts = [{json.dumps(host)}]
            [environments.staging.deploy]
            path = {json.dumps(str(paths["console"]))}
            repo = {json.dumps(str(repo))}
            branch = "main"
            keep_releases = {KEEP_RELEASES}
            build = {json.dumps(BUILD)}
            restart = [{json.dumps(RESTART)}]
            """
        )
    )
    ssh = (
        f"ssh -q -i {shlex.quote(str(sshd.client_key))} -o UserKnownHostsFile={shlex.quote(str(sshd.known_hosts))} "
        f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {sshd.port} root@{address}"
    )
    fabfile = root / "fab"
    fabfile.mkdir()
    (fabfile / "fabfile.py").write_text(FABFILE)
    fab = str(Path(PYTHON).parent / "fab")
    console = [PYTHON, "-m", "opsconsole", "--profile", str(profile)]
    seq = 0

    def release_id() -> str:
        nonlocal seq
        seq += 1
        return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{seq:03d}"

    def deploy_console() -> float:
        return _timed([*console, "deploy", "staging", "--yes"], _ok)

    def deploy_loop() -> float:
        script = root / "loop.sh"
        lines = [
            "set -e",
            *(f"{ssh} {shlex.quote(c)}" for c in _remote_steps(str(paths["loop"]), repo, release_id())),
        ]
        script.write_text("\n".join(lines) + "\n")
        return _timed(["bash", str(script)], _ok)

    def deploy_fabric() -> float:
        spec = root / "fabric.json"
        commands = _remote_steps(str(paths["fabric"]), repo, release_id())
        spec.write_text(json.dumps({"known_hosts": str(sshd.known_hosts), "commands": commands}))
        argv = [fab, "-r", str(fabfile), "-H", f"root@{address}:{sshd.port}", "-i", str(sshd.client_key)]
        return _timed([*argv, "deploy", "--spec", str(spec)], _ok)

    def rollback_console() -> float:
        return _timed([*console, "rollback", "staging", "--yes"], _ok)

    def rollback_loop() -> float:
        script = root / "rollback.sh"
        lines = ["set -e", *(f"{ssh} {shlex.quote(c)}" for c in _rollback_steps(str(paths["loop"])))]
        script.write_text("\n".join(lines) + "\n")
        return _timed(["bash", str(script)], _ok)

    deploys: dict[str, Callable[[], float]] = {
        "console": deploy_console,
        "loop": deploy_loop,
        "fabric": deploy_fabric,
    }
    times: dict[str, list[float]] = {name: [] for name in (*deploys, "rollback", "rollback_loop")}
    fleet.start()
    try:
        # Unmeasured first deploys: each clones its mirror (the measured ones fetch), caches warm.
        version = 1
        _new_commit(repo, version)
        for fn in deploys.values():
            fn()
        for r in range(runs):
            version += 1
            _new_commit(repo, version)
            names = list(deploys)
            names = names[r % 3 :] + names[: r % 3]  # rotate who goes first
            for name in names:
                times[name].append(deploys[name]())
                _check_release(paths[name], version)
            # rollback from the release just deployed, to the one before
            pair = [("rollback", rollback_console), ("rollback_loop", rollback_loop)]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                times[name].append(fn())
            assert (
                paths["console"] / "current" / "app" / "__init__.py"
            ).read_text() != f"VERSION = {version}\n"
    finally:
        fleet.stop()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ours, loop, fabric = med["console"], med["loop"], med["fabric"]
    detail = f"median of {runs}; {len(BUILD)} build steps of ~0.1 s, restart = touch, keep_releases {KEEP_RELEASES}"
    every = "; ".join(
        f"{n} " + ", ".join(f"{t:.2f}" for t in times[n]) for n in ("console", "loop", "fabric")
    )
    cfg.results.append(
        Result(
            "12a. deploy overhead vs ssh loop (5 build steps)",
            ours,
            loop,
            "s",
            "overhead <= 1 s",
            ours - loop <= 1.0,
            f"overhead {ours - loop:+.2f} s; {detail}; one ssh per step "
            f"({len(_remote_steps('', repo, ''))} ssh runs); runs: {every}",
        )
    )
    cfg.results.append(
        Result(
            "12b. deploy overhead vs a Fabric task",
            ours,
            fabric,
            "s",
            "overhead <= 1 s",
            ours - fabric <= 1.0,
            f"overhead {ours - fabric:+.2f} s; `fab -H host deploy`: the same commands over one connection",
        )
    )
    rollback = med["rollback"]
    cfg.results.append(
        Result(
            "12c. rollback",
            rollback,
            med["rollback_loop"],
            "s",
            "<= 2 s",
            rollback <= 2.0,
            f"median of {runs}; runs "
            + ", ".join(f"{t:.2f}" for t in times["rollback"])
            + "; baseline: ssh loop switching to the previous release and restarting (2 ssh runs)",
        )
    )
