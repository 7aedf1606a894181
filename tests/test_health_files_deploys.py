"""Health checks, remote log files and the deploy history reader, against real endpoints and hosts."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

import harness
from opsconsole.backends.clients import make_host
from opsconsole.backends.files import follow_file, list_files
from opsconsole.backends.health import check_all
from opsconsole.backends.hosts import Host
from opsconsole.backends.releases import read_state
from opsconsole.profiles import Defaults, DeployConfig, parse_host


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status = 200 if self.path == "/healthz" else 500
        body = b"ok" if status == 200 else b"broken"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS endpoint with a self-signed certificate (untrusted by design)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_health_status_latency_and_reasons(
    http_server: HTTPServer, tls_server: int, blackhole: harness.Blackhole
) -> None:
    port = http_server.server_address[1]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    urls = [
        f"http://127.0.0.1:{port}/healthz",
        f"http://127.0.0.1:{port}/broken",
        f"http://127.0.0.1:{closed}/healthz",
        f"https://localhost:{tls_server}/healthz",
        f"http://127.0.0.1:{blackhole.port}/healthz",
    ]
    started = time.monotonic()
    ok, broken, refused, tls, hung = asyncio.run(check_all(urls, 1.0))
    assert time.monotonic() - started < 2.5  # checked concurrently
    assert ok.ok and ok.status == 200 and ok.latency_ms is not None and ok.error is None
    assert not broken.ok and broken.status == 500 and broken.error == "HTTP 500"
    assert refused.error == "connection refused"
    assert tls.error is not None and tls.error.startswith("TLS: certificate not trusted")
    assert hung.error == "timed out after 1 s"


def test_health_dns_failure_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # No resolver traffic leaves this machine: the OS lookup itself is made to fail as a dead DNS would.
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    (result,) = asyncio.run(check_all(["http://app.example.invalid/healthz"], 1.0))
    assert result.error == "DNS: cannot resolve the host name"


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest) -> Host:
    if request.param == "ssh":
        return make_host(
            parse_host(request.getfixturevalue("sshd").host), request.getfixturevalue("ssh_defaults")
        )
    return make_host(parse_host("local"), Defaults())


def test_list_and_follow_files(host: Host, tmp_path: Path) -> None:
    log = tmp_path / "app log.txt"  # a space: the path must be quoted
    log.write_text("".join(f"old {n}\n" for n in range(10)))
    missing = tmp_path / "missing.log"
    present, absent = list_files(host, [str(log), str(missing)])
    assert present.exists and present.size == log.stat().st_size and present.readable
    assert not absent.exists and absent.size is None
    lines: list[str] = []
    cancel = threading.Event()
    thread = threading.Thread(
        target=follow_file, args=(host, str(log), lines.append), kwargs={"lines": 3, "cancel": cancel}
    )
    thread.start()
    deadline = time.monotonic() + 30
    while len(lines) < 3 and time.monotonic() < deadline:  # the tail arrived: tail -F is watching
        time.sleep(0.05)
    with log.open("a") as handle:
        for n in range(5):
            handle.write(f"new {n}\n")
    while len(lines) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    cancel.set()
    thread.join(10)
    assert not thread.is_alive()
    assert lines == ["old 7", "old 8", "old 9", "new 0", "new 1", "new 2", "new 3", "new 4"]


def test_deploy_history_reader(host: Host, tmp_path: Path) -> None:
    root = tmp_path / "srv"
    config = DeployConfig(path=str(root), repo="unused")
    assert not read_state(host, config).exists
    for release in ("20261101T000000Z", "20261102T000000Z"):
        (root / "releases" / release).mkdir(parents=True)
    (root / "current").symlink_to("releases/20261102T000000Z")
    (root / ".opsconsole").mkdir()
    records = [
        {
            "event": "deploy",
            "release": "20261101T000000Z",
            "outcome": "success",
            "who": "ann@box",
            "ref": "main",
        },
        {
            "event": "deploy",
            "release": "20261102T000000Z",
            "outcome": "success",
            "who": "bob@box",
            "ref": "v2",
        },
    ]
    (root / ".opsconsole" / "deploys.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / ".opsconsole" / "lock").write_text(
        json.dumps({"who": "cy@laptop", "when": "2026-11-26T10:00:00Z", "why": "release 2"})
    )
    state = read_state(host, config)
    assert state.exists and state.current == "20261102T000000Z"
    assert state.releases == ["20261101T000000Z", "20261102T000000Z"]
    assert state.lock is not None and state.lock.who == "cy@laptop" and "release 2" in state.lock.describe()
    assert [r["who"] for r in state.recent()] == ["bob@box", "ann@box"]
    assert state.successful_releases == ["20261101T000000Z", "20261102T000000Z"]
