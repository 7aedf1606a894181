"""Issue 26, the HTTP backends: the CI gate cannot be fooled (same-named runs and statuses, short or
cut pagination, `next` links off the configured origin), every message built from a response is
scrubbed of secrets, bodies are read with a byte cap and one overall deadline, and health has one
rule (2xx, redirects not followed, or the URL's own `expect` list).

Against the GitHub-shaped server (held to GitHub's OpenAPI description) and a hostile HTTP server on
loopback that echoes credentials, trickles a body forever, or sends a huge one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import write_profile
from github_server import GitHubServer, Run

pytestmark = pytest.mark.faults

GH_TOKEN = "ghp_test_token_123"
PROXY_BASIC = "Basic cHJveHk6aHVudGVyMg=="  # a proxy's own credential, never resolved by opsconsole


# ------------------------------------------------------------------------ a hostile server


class Hostile:
    """Loopback HTTP server whose answer to every request is chosen by `mode`:
    echo4xx / echo5xx - a JSON error that quotes the request's Authorization header (and a proxy's);
    trickle - 200 with a body that sends one byte every 0.1 s, forever;
    slow-headers - a status line, then one header byte every 0.1 s, forever;
    huge - 200 with a 64 MiB body sent as fast as the socket takes it;
    redirect - 302 to /login (which answers 200)."""

    def __init__(self) -> None:
        self.mode = "echo4xx"
        self.seen: list[dict[str, str]] = []
        self.stop_event = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.answer(self)

            do_POST = do_PUT = do_GET  # noqa: N815

        return Handler

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        self.seen.append(dict(h.headers))
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        mode = self.mode
        try:
            if mode.startswith("echo"):
                said = f"denied: Authorization: {h.headers.get('Authorization')}; upstream {PROXY_BASIC}"
                body = json.dumps(
                    {
                        "status": "error",
                        "errorType": "bad_data",
                        "error": said,
                        "message": said,
                        "detail": said,
                    }
                ).encode()
                h.send_response(400 if mode == "echo4xx" else 502)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
            elif mode == "trickle":
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(10**9))
                h.end_headers()
                h.wfile.write(b"[")
                while not self.stop_event.wait(0.1):
                    h.wfile.write(b" ")
                    h.wfile.flush()
            elif mode == "slow-headers":
                h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.stop_event.wait(0.1):
                    h.wfile.write(b"x")
                    h.wfile.flush()
            elif mode == "huge":
                size = 64 * 1024 * 1024
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(size))
                h.end_headers()
                chunk = b" " * 65536
                for _ in range(size // len(chunk)):
                    h.wfile.write(chunk)
            elif mode == "redirect" and h.path != "/login":
                h.send_response(302)
                h.send_header("Location", "/login")
                h.send_header("Content-Length", "0")
                h.end_headers()
            else:
                h.send_response(200)
                h.send_header("Content-Length", "2")
                h.end_headers()
                h.wfile.write(b"ok")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


def bounded(call: Callable[[], Any], limit: float = 8.0) -> tuple[float, Any]:
    """(seconds taken, the result or the exception raised); fails if `call` runs past `limit` s."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # noqa: BLE001 - the test looks at what was raised
            out.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert out, f"still running after {limit:g} s: the request has no overall deadline"
    return time.monotonic() - started, out[0]


# ------------------------------------------------------------------------ the CI gate


def gate(server: GitHubServer | Hostile, checks: tuple[str, ...] = (), timeout: float = 5.0) -> Any:
    from opsconsole.backends.github import GitHubChecks
    from opsconsole.profiles import CiConfig
    from opsconsole.secrets import Secret

    return GitHubChecks(
        CiConfig(repository="acme/shop", url=server.url, checks=checks),
        Secret("github-token", GH_TOKEN),
        timeout,
    )


@pytest.mark.parametrize("checks", [("test",), ()])
def test_ci_two_runs_with_one_name_any_failing_one_is_red(github_server: GitHubServer, checks: Any) -> None:
    # two workflows, each with a job `test`: the first fails, the second passes
    github_server.set_runs("abc", Run("test", conclusion="failure"), Run("test"), Run("lint"))
    client = gate(github_server, checks)
    state = client.state("abc")
    assert state.state == "failure", state.summary()
    assert state.summary().startswith("red: test: failure")
    github_server.set_runs("def", Run("test", status="in_progress", conclusion=None), Run("test"))
    assert client.state("def").state == "pending"  # one still running: not green yet
    client.close()


def test_ci_a_failing_status_named_like_a_passing_check_run_is_red(github_server: GitHubServer) -> None:
    github_server.set_runs("abc", Run("test"))
    github_server.statuses["abc"] = [("test", "failure")]
    for checks in (("test",), ()):
        client = gate(github_server, checks)
        state = client.state("abc")
        assert state.state == "failure", state.summary()
        assert "test: failure (https://ci.example/1)" in state.summary()
        client.close()


def test_ci_a_list_cut_by_the_page_limit_is_pending_not_green(github_server: GitHubServer) -> None:
    # 1,001 runs: ten pages of 100 are read, the failure is the 1,001st
    github_server.set_runs(
        "abc", *[Run(f"job-{n}") for n in range(1000)], Run("job-last", conclusion="failure")
    )
    client = gate(github_server)
    state = client.state("abc")
    assert state.state == "pending", state.summary()
    assert "stopped after 10 pages (1000 of 1001 read)" in state.summary()
    assert state.to_json()["incomplete"] == ["check runs: stopped after 10 pages (1000 of 1001 read)"]
    client.close()


def test_ci_fewer_runs_than_total_count_is_pending(github_server: GitHubServer) -> None:
    github_server.set_runs("abc", Run("test"), Run("lint"))
    github_server.claimed_total["abc"] = 3  # the list ends before the count says it should
    client = gate(github_server, ("test",))
    state = client.state("abc")
    assert state.state == "pending" and "check runs: 2 of 3 read (the list ended early)" in state.summary()
    client.close()


@pytest.mark.parametrize("change", ["port", "scheme"])
def test_ci_next_link_off_the_configured_origin_is_not_followed(
    github_server: GitHubServer, hostile: Hostile, change: str
) -> None:
    port = github_server.httpd.server_address[1]
    # another port on the same host (a server that records what it is sent), or https -> http's twin
    github_server.next_base = hostile.url if change == "port" else f"https://127.0.0.1:{port}"
    github_server.set_runs("abc", *[Run(f"job-{n}") for n in range(150)])
    client = gate(github_server)
    before = len(github_server.requests)
    state = client.state("abc")
    assert state.state == "pending", state.summary()
    assert "the next page is on another origin" in state.summary() and "100 read" in state.summary()
    assert hostile.seen == []  # the token went nowhere else
    assert len(github_server.requests) == before + 2  # the first page of runs, the statuses
    client.close()


def test_ci_check_names_from_the_api_are_inert(github_server: GitHubServer) -> None:
    github_server.set_runs("abc", Run("\x1b]52;c;ZWNobyBoaQ==\x07test\x1b[2J", conclusion="failure"))
    github_server.statuses["abc"] = [("deploy\x1b[31m", "failure")]
    client = gate(github_server)
    summary = client.state("abc").summary()
    assert "\x1b" not in summary and "\x07" not in summary and "test" in summary, summary
    client.close()


# ------------------------------------------------------------------------ redaction


def prom_profile(tmp_path: Path, url: str) -> Path:
    return write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
timeout = 3
[environments.staging.prometheus]
url = "{url}"
token = {{ secret = "prom-token" }}
[environments.staging.prometheus.queries]
requests = "sum(rate(http_requests_total[5m]))"
""",
    )


@pytest.mark.parametrize("mode", ["echo4xx", "echo5xx"])
def test_prometheus_errors_that_echo_the_token_are_redacted(
    run_cli: Any, tmp_path: Path, hostile: Hostile, mode: str
) -> None:
    hostile.mode = mode
    token = "prom_s3cret_value_42"
    env = {"OPSCONSOLE_SECRET_PROM_TOKEN": token, "OPSCONSOLE_TRUSTED_PATHS": str(tmp_path)}
    path = prom_profile(tmp_path, hostile.url)
    for extra in (["--json"], []):
        done = run_cli("--profile", str(path), "status", "--env", "staging", *extra, env=env)
        shown = done.stdout + done.stderr
        assert "denied" in shown, shown  # the server's explanation is still shown
        assert token not in shown and "hunter2" not in shown and "cHJveHk6aHVudGVyMg" not in shown, shown
    assert hostile.seen and hostile.seen[-1]["Authorization"] == f"Bearer {token}"  # it was sent, then echoed


def test_every_backend_scrubs_an_echoed_credential(hostile: Hostile) -> None:
    """A credential opsconsole never resolved (a proxy's own Basic auth) is scrubbed too."""
    from opsconsole.errors import OpsError

    hostile.mode = "echo4xx"
    messages: list[str] = []
    for name, call in backend_calls(hostile).items():
        _took, result = bounded(call)
        assert isinstance(result, OpsError), (name, result)
        messages.append(result.message)
    hostile.mode = "echo5xx"
    messages += [bounded(call)[1].message for call in backend_calls(hostile).values()]
    for message in messages:
        assert "denied" in message and "cHJveHk6aHVudGVyMg" not in message and "tok_" not in message, message


# ------------------------------------------------------------------------ byte cap and deadline


def backend_calls(server: Hostile) -> dict[str, Callable[[], Any]]:
    from opsconsole.backends.bugsink import BugsinkClient
    from opsconsole.backends.prometheus import PrometheusClient
    from opsconsole.backends.sentry import SentryClient
    from opsconsole.profiles import BugsinkConfig, PrometheusConfig, SecretRef, SentryConfig
    from opsconsole.secrets import Secret

    ref = SecretRef("t")
    ci = gate(server, timeout=1.0)
    prom = PrometheusClient(
        PrometheusConfig(url=server.url, token=ref, queries=(("q", "up"),)), Secret("prom", "tok_prom_1"), 1.0
    )
    sentry = SentryClient(
        SentryConfig(organization="acme", project="shop", token=ref, url=server.url),
        Secret("s", "tok_sentry"),
        1.0,
    )
    bugsink = BugsinkClient(
        BugsinkConfig(url=server.url, project=1, token=ref), Secret("b", "tok_bugsink"), 1.0
    )

    def prom_call() -> Any:
        report = prom.series(time.time())
        error = report.series["q"].error  # a 4xx is the query's own error
        from opsconsole.errors import OpsError

        raise OpsError(error or "no error", "PromQL")

    return {
        "github": lambda: ci.state("abc"),
        "prometheus": prom_call,
        "sentry": lambda: asyncio.run(sentry.issues()),
        "bugsink": lambda: asyncio.run(bugsink.issues()),
    }


@pytest.mark.parametrize("mode", ["trickle", "slow-headers"])
@pytest.mark.parametrize("backend", ["github", "prometheus", "sentry", "bugsink"])
def test_an_answer_that_trickles_forever_stops_at_the_deadline(
    hostile: Hostile, backend: str, mode: str
) -> None:
    from opsconsole.errors import OpsError

    hostile.mode = mode  # a byte every 0.1 s: no single read ever waits the 1 s timeout
    took, result = bounded(backend_calls(hostile)[backend])
    assert isinstance(result, OpsError), result
    assert "timed out after 1 s" in str(result.message), result.message
    assert took < 1.8, took


@pytest.mark.parametrize("backend", ["github", "prometheus", "sentry", "bugsink"])
def test_a_huge_body_stops_at_the_byte_cap(hostile: Hostile, backend: str) -> None:
    from opsconsole.errors import OpsError

    hostile.mode = "huge"  # 64 MiB
    _took, result = bounded(backend_calls(hostile)[backend])
    assert isinstance(result, OpsError), result
    cap = "32 MiB" if backend == "github" else "8 MiB"  # a GitHub page of runs carries their outputs
    assert f"larger than {cap} and was not read further" in result.message, result.message


def test_health_reads_no_body_and_holds_its_deadline(hostile: Hostile) -> None:
    from opsconsole.backends.health import check_all

    for mode in ("trickle", "huge"):
        hostile.mode = mode
        took, result = bounded(lambda: asyncio.run(check_all([f"{hostile.url}/healthz"], 1.0)))
        assert took < 1.5, (mode, took)
        (one,) = result
        assert one.ok and one.status == 200, (mode, one)
    hostile.mode = "slow-headers"
    took, (one,) = bounded(lambda: asyncio.run(check_all([f"{hostile.url}/healthz"], 1.0)))
    assert took < 1.5 and not one.ok and one.error == "timed out after 1 s", (took, one)


# ------------------------------------------------------------------------ health: one rule


def test_health_a_redirect_is_not_healthy(hostile: Hostile) -> None:
    from opsconsole.backends.health import check_all

    hostile.mode = "redirect"
    (one,) = asyncio.run(check_all([f"{hostile.url}/healthz"], 2.0))
    assert not one.ok and one.status == 302
    assert one.error == "HTTP 302 to /login (redirects are not followed; healthy is 2xx)"


def test_rolling_host_health_uses_the_same_rule(hostile: Hostile) -> None:
    from opsconsole.actions.deploy.host import health_command

    hostile.mode = "redirect"
    done = subprocess.run(
        ["sh", "-c", health_command(f"{hostile.url}/healthz", 0.5)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1 and done.stdout.strip() == "HTTP 302", done
    hostile.mode = "ok"
    done = subprocess.run(
        ["sh", "-c", health_command(f"{hostile.url}/healthz", 0.5)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0 and done.stdout.strip() == "HTTP 200", done


def test_health_expect_lists_in_the_profile(tmp_path: Path, hostile: Hostile) -> None:
    from opsconsole.backends.health import check_all
    from opsconsole.errors import ProfileError
    from opsconsole.profiles import load_profile

    hostile.mode = "redirect"
    path = write_profile(
        tmp_path,
        f"""
[environments.dev]
health = ["{hostile.url}/healthz", {{ url = "{hostile.url}/healthz", expect = [200, 302] }}]
""",
    )
    health = load_profile(path).environments["dev"].health
    assert list(health) == [f"{hostile.url}/healthz"] * 2
    strict, lenient = asyncio.run(check_all(health, 2.0))
    assert not strict.ok and lenient.ok and lenient.status == 302 and lenient.error is None

    bad = write_profile(
        tmp_path,
        """
[environments.dev]
health = [
  { url = "http://x/login", expect = [200, 700], extra = 1 },
  { expect = [200] },
  { url = "http://x/a", expect = [] },
]
""",
        name="bad",
    )
    with pytest.raises(ProfileError) as raised:
        load_profile(bad)
    text = str(raised.value)
    assert "bad.toml:3: 'environments.dev.health[0].expect[1]' must be an HTTP status from 100 to 599" in text
    assert "unknown key 'environments.dev.health[0].extra'" in text
    assert "'environments.dev.health[1]' needs a url" in text
    assert "'environments.dev.health[2].expect' must be a non-empty array of HTTP statuses" in text
