"""Bugsink for the demo (and the tests): a self-hosted error tracker the Errors pane can show.

Bugsink (PyPI `bugsink`, PolyForm Shield licence: installed, never vendored) pins its dependencies
tightly, so it gets a venv of its own, made on first use and kept (`.cache/bugsink-venv` in a
checkout, else the user cache folder). It runs on loopback with SQLite, events digested inside the
ingest request, `PHONEHOME` off and its storage in the given folder. The recipe follows Bugsink's
documented single-server set-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsconsole.errors import OpsError

CHECKOUT = Path(__file__).resolve().parents[3]


def venv_path() -> Path:
    if (CHECKOUT / "pyproject.toml").exists():
        return CHECKOUT / ".cache" / "bugsink-venv"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("opsconsole")) / "bugsink-venv"


def ensure_venv(venv: Path | None = None, log: Callable[[str], None] = lambda _m: None) -> Path:
    venv = venv or venv_path()
    if (venv / "bin" / "bugsink-manage").exists():
        return venv
    log(f"installing Bugsink into {venv} (once; about a minute)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "bugsink>=2.6,<3"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        import shutil

        shutil.rmtree(venv, ignore_errors=True)
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[-400:]
        raise OpsError(f"Bugsink could not be installed from PyPI: {detail or exc}", "Bugsink") from None
    return venv


@dataclass
class Bugsink:
    url: str
    token: str
    project: int
    dsn: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start(
    root: Path,
    port: int,
    token: str,
    venv: Path | None = None,
    preexec: Callable[[], None] | None = None,
    before_listen: Callable[[], None] = lambda: None,
) -> Bugsink:
    """Configure, migrate, add `token` (40 hex) as a full-access token, serve on 127.0.0.1:port,
    and make team `ops` with project `shop` (the first project: id 1)."""
    venv = ensure_venv(venv)
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root)}

    def run(*args: str) -> None:
        subprocess.run(
            [str(venv / "bin" / args[0]), *args[1:]], cwd=root, env=env, check=True, capture_output=True
        )

    try:
        run("bugsink-create-conf", "--template=local", "--host=127.0.0.1", f"--port={port}")
        with (root / "bugsink_conf.py").open("a") as conf:
            conf.write(
                f'\nBUGSINK["INGEST_STORE_BASE_DIR"] = "{root}/ingestion"\nBUGSINK["PHONEHOME"] = False\n'
            )
        run("bugsink-manage", "migrate", "-v0")
        run("bugsink-manage", "migrate", "snappea", "--database=snappea", "-v0")
        run(
            "bugsink-manage",
            "shell",
            "-c",
            f"from bsmain.models import AuthToken; AuthToken.create_full_access(token={token!r})",
        )
    except subprocess.CalledProcessError as exc:
        raise OpsError(f"Bugsink set-up failed: {(exc.stderr or b'').decode()[-400:]}", "Bugsink") from None
    before_listen()
    proc = subprocess.Popen(
        [str(venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "bugsink.wsgi"],
        cwd=root,
        env=env,
        stdout=open(root / "server.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        preexec_fn=preexec,  # noqa: PLW1509
    )
    url = f"http://127.0.0.1:{port}"
    server = Bugsink(url, token, 0, "", proc)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise OpsError("Bugsink exited: " + (root / "server.log").read_text()[-1000:], "Bugsink")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise OpsError(f"Bugsink did not answer on {url} within 30 s", "Bugsink")
        time.sleep(0.1)

    def api(path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{url}/api/canonical/0/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    try:
        team = api("teams/", {"name": "ops"})["id"]
        server.project = int(api("projects/", {"name": "shop", "team": team})["id"])
        server.dsn = str(api(f"projects/{server.project}/")["dsn"])
    except OSError as exc:
        server.stop()
        raise OpsError(f"Bugsink's API refused the set-up: {exc}", "Bugsink") from None
    return server
