"""Trust of profiles: a cloned repository's profile is not used (no host, URL, secret or command)
until the user trusts that exact content; the user's own profiles are never shadowed by a checkout's.

Each test here runs the installed `opsconsole` with no trusted folders but the user's config dir
(`OPSCONSOLE_TRUSTED_PATHS` empty), against a real HTTP server on loopback that records every request.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.faults

TOKEN = "sntrys_trust_test_token_4242"
NO_TRUST = {"OPSCONSOLE_TRUSTED_PATHS": "", "OPSCONSOLE_SECRET_SENTRY_TOKEN": TOKEN}


class Recorder:
    """An HTTP server on loopback that answers everything with an empty Prometheus vector and
    remembers each request's path and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                recorder.requests.append((self.path, dict(self.headers)))
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", harness.free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def tokens_seen(self) -> list[str]:
        return [h.get("Authorization", "") for _, h in self.requests if TOKEN in h.get("Authorization", "")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


def hostile_profile(url: str, marker: Path) -> str:
    return f"""
[project]
name = "client"

[environments.dev]
hosts = ["local"]
health = ["{url}/healthz"]

[environments.dev.prometheus]
url = "{url}"
token = {{ secret = "sentry-token" }}

[environments.dev.prometheus.queries]
up = "up"

[environments.dev.logs]
files = ["{marker}"]
"""


@pytest.fixture
def cloned_repo(tmp_path: Path, recorder: Recorder) -> Path:
    """A checkout whose profiles/default.toml points a token the user keeps at the repo's URL."""
    repo = tmp_path / "client-repo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "profiles" / "default.toml").write_text(hostile_profile(recorder.url, tmp_path / "marker.log"))
    return repo


def test_a_checkouts_profile_contacts_nothing_until_trusted(run_cli, cloned_repo: Path, recorder: Recorder) -> None:
    for args in (("status",), ("status", "--json"), ()):
        done = run_cli(*args, cwd=cloned_repo, env=NO_TRUST, timeout=60)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "not trusted" in done.stderr
        assert "opsconsole profile trust" in done.stderr
        assert TOKEN not in done.stdout + done.stderr
    time.sleep(0.3)
    assert recorder.requests == [], "an untrusted profile's URLs were contacted"

    # reading a profile never needs trust, and looks up none of the user's secrets
    shown = run_cli("profile", "show", cwd=cloned_repo, env=NO_TRUST)
    assert shown.returncode == 0, shown.stderr
    assert "NOT TRUSTED" in shown.stdout and "sentry-token" in shown.stdout
    assert "not looked up" in shown.stdout and "from environment" not in shown.stdout
    assert recorder.url in shown.stdout  # what it would reach is listed
    valid = run_cli("profile", "validate", cwd=cloned_repo, env=NO_TRUST)
    assert valid.returncode == 0, valid.stderr
    listed = run_cli("profile", "list", cwd=cloned_repo, env=NO_TRUST)
    assert "UNTRUSTED" in listed.stdout
    assert recorder.requests == []

    trusted = run_cli("profile", "trust", "profiles/default.toml", cwd=cloned_repo, env=NO_TRUST)
    assert trusted.returncode == 0, trusted.stderr
    assert recorder.url in trusted.stdout and "sentry-token" in trusted.stdout
    done = run_cli("status", "--json", cwd=cloned_repo, env=NO_TRUST, timeout=60)
    assert done.returncode in (0, 1, 4), done.stderr  # it ran: the server was asked
    assert recorder.requests, "a trusted profile's URLs were not contacted"
    assert recorder.tokens_seen()  # the token goes where the trusted profile says
    record = json.loads((Path(os.environ["OPSCONSOLE_DATA_DIR"]) / "trusted-profiles.json").read_text())
    assert str((cloned_repo / "profiles" / "default.toml").resolve()) in record["profiles"]
    assert (Path(os.environ["OPSCONSOLE_DATA_DIR"]) / "trusted-profiles.json").stat().st_mode & 0o077 == 0

    # a changed file is untrusted again, and says so
    count = len(recorder.requests)
    path = cloned_repo / "profiles" / "default.toml"
    path.write_text(path.read_text() + '\n[environments.dev.cache]\npurge = ["touch /tmp/owned"]\n')
    again = run_cli("status", cwd=cloned_repo, env=NO_TRUST, timeout=60)
    assert again.returncode == 2 and "changed since you trusted it" in again.stderr
    assert len(recorder.requests) == count

    # untrust forgets it
    path.write_text(hostile_profile(recorder.url, cloned_repo / "marker.log"))
    assert run_cli("profile", "trust", cwd=cloned_repo, env=NO_TRUST).returncode == 0
    assert run_cli("profile", "untrust", cwd=cloned_repo, env=NO_TRUST).returncode == 0
    assert run_cli("status", cwd=cloned_repo, env=NO_TRUST).returncode == 2


def test_a_named_profile_is_the_users_own_before_a_checkouts(run_cli, tmp_path: Path, recorder: Recorder) -> None:
    config = Path(os.environ["OPSCONSOLE_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "shop.toml").write_text('[project]\nname = "mine"\n\n[environments.mine]\nhosts = ["local"]\n')
    repo = tmp_path / "repo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "profiles" / "shop.toml").write_text(hostile_profile(recorder.url, tmp_path / "m.log"))
    done = run_cli("--profile", "shop", "status", "--json", cwd=repo, env=NO_TRUST, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["environments"]) == ["mine"]
    assert recorder.requests == []


def test_trusted_paths_come_from_absolute_folders_only(run_cli, cloned_repo: Path, recorder: Recorder) -> None:
    # a relative entry would trust whatever folder the user happens to stand in
    done = run_cli("status", cwd=cloned_repo, env={**NO_TRUST, "OPSCONSOLE_TRUSTED_PATHS": "profiles:."})
    assert done.returncode == 2 and "not trusted" in done.stderr
    done = run_cli(
        "status", "--json", cwd=cloned_repo, env={**NO_TRUST, "OPSCONSOLE_TRUSTED_PATHS": str(cloned_repo)}
    )
    assert done.returncode in (0, 1, 4), done.stderr
    assert recorder.requests


def test_an_unreadable_trust_record_is_said(run_cli, cloned_repo: Path) -> None:
    store = Path(os.environ["OPSCONSOLE_DATA_DIR"]) / "trusted-profiles.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("{not json")
    done = run_cli("status", cwd=cloned_repo, env=NO_TRUST)
    assert done.returncode == 2
    assert "trusted-profiles record" in done.stderr and "not valid JSON" in done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_console_in_a_terminal_shows_what_it_would_reach_and_asks(
    cloned_repo: Path, recorder: Recorder, tmp_path: Path
) -> None:
    from test_e2e_tmux import Tmux

    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("OPSCONSOLE_")},
        **NO_TRUST,
        "PATH": os.environ["PATH"],
    }
    command = ["sh", "-c", f"cd {cloned_repo} && {sys.executable} -m opsconsole; echo EXITED=$?; sleep 30"]
    term = Tmux(command, env, size=(120, 40))
    try:
        screen = term.wait_for("Trust this profile?")
        assert recorder.url in screen and "sentry-token" in screen and "SSH to: local" in screen
        assert recorder.requests == []
        term.keys("no", "Enter")
        screen = term.wait_for("EXITED=")
        assert "EXITED=2" in screen and "not trusted" in screen
    finally:
        term.kill()
    assert recorder.requests == []

    term = Tmux(command, env, size=(120, 40))
    try:
        term.wait_for("Trust this profile?")
        term.keys("yes", "Enter")
        term.wait_for("dev", timeout=30)
        deadline = time.monotonic() + 30
        while not recorder.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recorder.requests, "the trusted console did not start its refresh"
        term.keys("q")
        term.wait_for("EXITED=0", timeout=30)
    finally:
        term.kill()
