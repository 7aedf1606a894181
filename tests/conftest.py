"""Fixtures: isolated user dirs, and REAL services (supervisord, sshd, dockerd, Redis) on loopback.

When a service cannot start, its tests are skipped, except under CI (`CI` set), where the run fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _unavailable(exc: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"service unavailable under CI: {exc}")
    pytest.skip(str(exc))


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config/data dirs and audit log; nothing touches the real home."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("OPSCONSOLE_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("OPSCONSOLE_DATA_DIR", str(base / "data"))
    monkeypatch.delenv("OPSCONSOLE_AUDIT_LOG", raising=False)
    monkeypatch.delenv("OPSCONSOLE_PROFILE", raising=False)
    monkeypatch.delenv("OPSCONSOLE_READ_ONLY", raising=False)
    # the profiles tests write (in pytest's temp folders) and the repository's examples are trusted;
    # tests of trust itself set their own OPSCONSOLE_TRUSTED_PATHS
    monkeypatch.setenv(
        "OPSCONSOLE_TRUSTED_PATHS",
        os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(REPO / "profiles")]),
    )
    for key in list(os.environ):
        if key.startswith("OPSCONSOLE_SECRET_"):
            monkeypatch.delenv(key)
    return base


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A real keyring backend (keyrings.alt's file store) in a temp XDG data dir.

    Returns the environment a subprocess needs to use the same store.
    """
    import keyring
    import keyring.core

    data_home = tmp_path / "xdg-data"
    env = {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", "XDG_DATA_HOME": str(data_home)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    previous = keyring.get_keyring()
    keyring.core.set_keyring(
        keyring.core.load_env() or keyring.core.load_keyring(env["PYTHON_KEYRING_BACKEND"])
    )
    yield env
    keyring.set_keyring(previous)


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the installed `opsconsole` as a user would; returns CompletedProcess."""

    def run(
        *args: str,
        input: str | None = None,  # noqa: A002 - mirrors subprocess.run
        env: dict[str, str] | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd or tmp_path,
        )

    return run


# ------------------------------------------------------------------------ real services


@pytest.fixture(scope="session")
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Supervisord]:
    root = tmp_path_factory.mktemp("supervisord")
    sup = harness.make_supervisord(root, harness.DEFAULT_PROGRAMS)
    try:
        sup.start()
        sup.wait_running(["counter:counter", "sleeper:sleeper", "web:web_0", "web:web_1"])
    except harness.ServiceUnavailable as exc:
        sup.stop()
        _unavailable(exc)
    yield sup
    sup.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Sshd]:
    root = tmp_path_factory.mktemp("sshd")
    try:
        server = harness.make_sshd(root)
        server.start()
    except (harness.ServiceUnavailable, subprocess.CalledProcessError) as exc:
        _unavailable(exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Redis]:
    try:
        server = harness.start_redis(tmp_path_factory.mktemp("redis"))
    except harness.ServiceUnavailable as exc:
        _unavailable(exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    """A client of the real dockerd, with the busybox test image; test containers are removed after."""
    try:
        client = harness.docker_client()
        harness.build_busybox_image(client)
    except harness.ServiceUnavailable as exc:
        _unavailable(exc)
    yield client
    for container in client.containers.list(all=True, filters={"label": harness.TEST_LABEL}):
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
    client.close()


@pytest.fixture
def ssh_defaults(sshd: harness.Sshd):  # type: ignore[no-untyped-def]
    from opsconsole.profiles import Defaults

    return Defaults(known_hosts=str(sshd.known_hosts), identity_file=str(sshd.client_key), timeout=5.0)


@pytest.fixture
def blackhole() -> Iterator[harness.Blackhole]:
    hole = harness.Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def sentry_server() -> Iterator[Any]:
    from sentry_server import SentryServer

    server = SentryServer().start()
    yield server
    server.stop()
    assert server.violations == [], "the Sentry-shaped server saw requests or sent bodies off the schema"


@pytest.fixture
def github_server() -> Iterator[Any]:
    from github_server import GitHubServer

    server = GitHubServer().start()
    yield server
    server.stop()
    assert server.violations == [], "the GitHub-shaped server saw requests or sent bodies off the schema"


def write_profile(folder: Path, text: str, name: str = "test") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port known to refuse connections for the whole test."""
    with harness.closed_port() as port:
        yield port


@pytest.fixture(autouse=True)
def shared_programs_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests may stop, start or restart the shared supervisord's programs: each test leaves them as
    it found them, so the suite passes in any order."""
    if "supervisord" not in request.fixturenames:
        yield
        return
    sup: harness.Supervisord = request.getfixturevalue("supervisord")
    proxy = sup.proxy().supervisor
    before = {f"{p['group']}:{p['name']}": p["statename"] for p in proxy.getAllProcessInfo()}
    yield
    try:
        now = {
            f"{p['group']}:{p['name']}": p["statename"] for p in sup.proxy().supervisor.getAllProcessInfo()
        }
    except Exception:  # noqa: BLE001 - a test that broke supervisord fails on its own
        return
    for name, state in before.items():
        running = now.get(name) in ("RUNNING", "STARTING", "BACKOFF")
        if state == "RUNNING" and not running:
            sup.proxy().supervisor.startProcess(name, True)
        elif state == "STOPPED" and running:
            sup.proxy().supervisor.stopProcess(name, True)
