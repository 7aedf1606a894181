"""Issue 26, `opsconsole serve` and saving from the log viewer: a served (read-only) browser writes
nothing on the serving machine (a save is a download to the browser), a local save never replaces a
file without asking and never writes the audit log; no log line carries the token; `--public-url`
for a reverse proxy; `localhost` and `127.0.0.1` both work on loopback; each browser states a name
that the audit log records with `via: "serve"` and its address.

The served console is driven as a browser drives it: over its WebSocket (textual-serve's protocol:
`["stdin", keys]` in, terminal bytes and `["deliver_file_start", key]` out), against supervisord.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from textual.widgets import Input

import harness
from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.profiles import load_profile
from opsconsole.screens.log_screen import LogScreen
from opsconsole.widgets.log_view import LogView
from opsconsole.widgets.pane import Pane
from test_console import pane_keys, wait_until

pytestmark = pytest.mark.faults

ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def profile_text(tmp_path: Path, supervisord: harness.Supervisord) -> str:
    return f"""
[project]
name = "shop"
[defaults]
timeout = 5
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
[[environments.staging.actions]]
name = "touch"
title = "Touch the canary"
command = "touch {tmp_path}/custom-ran"
confirm = false
"""


class Served:
    """`opsconsole serve` as a process; every line it prints is kept (its logs)."""

    def __init__(self, tmp_path: Path, profile: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = harness.free_port()
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir(exist_ok=True)
        self.audit = tmp_path / "audit.jsonl"
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_DOWNLOAD_DIR": str(self.home / "Downloads"),
            "OPSCONSOLE_AUDIT_LOG": str(self.audit),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsconsole", "--profile", str(profile), "serve", "--port", str(self.port)]
            + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        self.lines: list[str] = []
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        harness.wait_for(lambda: bool(self.url) or self.proc.poll() is not None, 20, "the URL")
        assert self.url, "".join(self.lines)
        self.token = self.url.split("token=", 1)[1]
        self.base = f"http://127.0.0.1:{self.port}"
        harness.wait_for(lambda: httpx.get(self.base + "/").status_code == 403, 10, "serve")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if m := re.search(r"Open: (https?://\S+)", line):
                self.url = m.group(1)

    def stop(self) -> None:
        harness.stop_process(self.proc)


@pytest.fixture
def serve_profile(tmp_path: Path, supervisord: harness.Supervisord) -> Path:
    return write_profile(tmp_path, profile_text(tmp_path, supervisord))


@pytest.fixture
def served(tmp_path: Path, serve_profile: Path) -> Iterator[Served]:
    server = Served(tmp_path, serve_profile)
    yield server
    server.stop()


class Browser:
    """One browser's console over the WebSocket, as textual-serve's page script speaks it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.screen = ""
        self.messages: list[Any] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                self.screen += ANSI.sub(" ", message.data.decode("utf-8", "replace"))
            elif message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(message.data))

    async def keys(self, data: str, pause: float = 0.1) -> None:
        for char in data:
            await self.ws.send_str(json.dumps(["stdin", char]))
            await asyncio.sleep(pause)

    async def until(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen ends: {self.screen[-1500:]!r}")

    def drew(self, *words: str) -> bool:
        flat = " ".join(self.screen.split())
        return all(w in flat for w in words)


async def open_console(
    url: str, origin: str, size: tuple[int, int] = (120, 40)
) -> tuple[aiohttp.ClientSession, Browser]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"{url}?width={size[0]}&height={size[1]}", origin=origin)
    return session, Browser(ws)


async def get(url: str, cookies: dict[str, str] | None = None, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient(cookies=cookies) as client:
        return await client.get(url, **options)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ saving from a served console


async def test_a_served_save_is_a_download_and_writes_nothing_on_the_server(served: Served) -> None:
    bashrc = served.home / ".bashrc"
    bashrc.write_text("# the user's own\n")
    served.audit.write_text('{"earlier": "record"}\n')
    before = files_under(served.home) | files_under(served.cwd)
    page = await get(served.url)
    assert page.status_code == 200
    cookies = dict(page.cookies)
    socket = re.search(r'data-session-websocket-url="([^"]+)"', page.text)
    assert socket is not None
    session, browser = await open_console(socket.group(1), served.base)
    try:
        await browser.until(lambda: browser.drew("staging", "counter"), 30, "the processes")
        await browser.keys("/counter\r")  # the processes pane filtered to the one that prints
        await asyncio.sleep(0.5)
        await browser.keys("l")
        await browser.until(lambda: browser.drew("log:", "héllo"), 20, "the log viewer with lines")
        await browser.keys("\x13")  # ctrl+s
        await browser.until(
            lambda: any(m[0] == "deliver_file_start" for m in browser.messages), 10, "a download"
        )
        key = next(m[1] for m in browser.messages if m[0] == "deliver_file_start")
        await browser.keys("~/.bashrc\r")  # what the attacker typed next, before
        async with httpx.AsyncClient(cookies=cookies) as client:
            got = await client.get(f"{served.base}/download/{key}")
            again = await client.get(f"{served.base}/download/{key}")
        assert got.status_code == 200, got.text
        assert "héllo" in got.text and got.text.count("\n") >= 1
        assert got.headers["content-disposition"].startswith('attachment; filename="opsconsole-')
        assert again.status_code == 404  # each download is fetched once
        no_cookie = await get(f"{served.base}/download/{key}")
        assert no_cookie.status_code == 403
        await asyncio.sleep(1.0)
    finally:
        await browser.ws.close()
        await session.close()
    assert bashrc.read_text() == "# the user's own\n"
    assert served.audit.read_text() == '{"earlier": "record"}\n'
    assert files_under(served.home) | files_under(served.cwd) == before  # nothing written here


# ------------------------------------------------------------------ saving locally


@pytest.fixture
def log_profile(tmp_path: Path, supervisord: harness.Supervisord) -> Path:
    return write_profile(
        tmp_path,
        f"""
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )


async def open_log(app: Any, pilot: Any) -> LogView:
    await wait_until(pilot, lambda: "local|counter:counter" in pane_keys(app, "processes"), what="processes")
    table = app.screen.query_one("#processes", Pane).table
    table.move_cursor(row=pane_keys(app, "processes").index("local|counter:counter"))
    await pilot.press("l")
    await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), what="log screen")
    view: LogView = app.screen.query_one(LogView)
    await wait_until(pilot, lambda: len(view.lines) > 3, what="log lines")
    return view


async def save_as(pilot: Any, app: Any, path: Path) -> None:
    await pilot.press("ctrl+s")
    box = app.screen.query_one("#log-input")
    box.value = str(path)
    await pilot.press("enter")
    await pilot.pause(0.2)


def toasts(app: Any) -> str:
    return " | ".join(str(n.message) for n in app._notifications)


async def test_a_local_save_asks_before_replacing_a_file(
    tmp_path: Path, log_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("# the user's own\n")
    app = make_app(load_profile(log_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_log(app, pilot)
        await save_as(pilot, app, bashrc)
        box = app.screen.query_one("#log-input", Input)
        assert box.has_class("-visible") and "exists: replace it? y/N" in str(box.placeholder)
        assert bashrc.read_text() == "# the user's own\n"
        await pilot.press("n", "enter")
        await pilot.pause(0.2)
        assert bashrc.read_text() == "# the user's own\n" and "is unchanged" in toasts(app)
        await save_as(pilot, app, bashrc)
        await pilot.press("escape")  # escape keeps it too
        await pilot.pause(0.2)
        assert bashrc.read_text() == "# the user's own\n"
        await save_as(pilot, app, bashrc)
        await pilot.press("y", "enter")
        await wait_until(pilot, lambda: "héllo" in bashrc.read_text(), what="the confirmed replace")
        fresh = tmp_path / "new.log"
        await save_as(pilot, app, fresh)  # a new file is written without a question
        await wait_until(pilot, fresh.exists, what="the new file")
        assert "héllo" in fresh.read_text() and oct(fresh.stat().st_mode & 0o777) == "0o600"
        await pilot.press("escape")


async def test_a_local_save_never_writes_the_audit_log(
    tmp_path: Path, log_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "data" / "audit.jsonl"
    audit.parent.mkdir()
    audit.write_text('{"earlier": "record"}\n')
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(audit))
    link = tmp_path / "innocent.log"
    link.symlink_to(audit)
    hard = tmp_path / "hard.log"
    os.link(audit, hard)
    app = make_app(load_profile(log_profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_log(app, pilot)
        for path in (audit, link, hard, tmp_path / "data" / ".." / "data" / "audit.jsonl"):
            await save_as(pilot, app, path)
            box = app.screen.query_one("#log-input")
            assert not box.has_class("-visible")  # refused outright: no replace question
            await pilot.press("y", "enter")
            await pilot.pause(0.2)
            assert audit.read_text() == '{"earlier": "record"}\n', path
        assert "is never written by a save" in toasts(app) and "the audit log" in toasts(app)
        await pilot.press("escape")
    assert link.is_symlink()


def test_a_file_that_appears_before_the_write_is_not_replaced(tmp_path: Path) -> None:
    from opsconsole.saving import SaveExists, save_local

    target = tmp_path / "x.log"
    audit = tmp_path / "audit.jsonl"
    assert save_local(target, b"one\n", audit_log=audit) == target
    with pytest.raises(SaveExists):
        save_local(target, b"two\n", audit_log=audit)
    assert target.read_text() == "one\n"
    save_local(target, b"two\n", overwrite=True, audit_log=audit)
    assert target.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.log"]  # no temp file left behind


# ------------------------------------------------------------------ serve: logs, origins, names


async def test_no_log_line_carries_the_token(served: Served) -> None:
    page = await get(served.url)
    socket = re.search(r'data-session-websocket-url="([^"]+)"', page.text)
    assert socket is not None
    await get(f"{served.base}/?token={served.token}&fontsize=12")
    await get(f"{served.base}/download/{'a' * 32}", cookies=dict(page.cookies))
    session, browser = await open_console(socket.group(1), served.base)
    try:
        await browser.until(lambda: browser.drew("staging"), 30, "the console")
    finally:
        await browser.ws.close()
        await session.close()
    harness.wait_for(lambda: any('"GET /ws/<token>' in line for line in served.lines), 10, "the ws log")
    served.stop()
    logged = [line for line in served.lines if not line.startswith("Open: ")]
    assert any('"GET /"' in line for line in logged), logged  # the access log is on, shows requests
    assert any('"GET /download/<key>"' in line for line in logged)
    flat = re.sub(r"\s", "", "".join(logged))  # the log wraps long lines: a token may be cut in two
    assert served.token not in flat


async def test_localhost_and_127_0_0_1_both_work_on_loopback(served: Served) -> None:
    for host in ("localhost", "127.0.0.1"):
        origin = f"http://{host}:{served.port}"
        page = await get(f"{origin}/?token={served.token}")
        assert page.status_code == 200
        socket = re.search(r'data-session-websocket-url="([^"]+)"', page.text)
        assert socket is not None and socket.group(1) == f"ws://{host}:{served.port}/ws/{served.token}"
        session, browser = await open_console(socket.group(1), origin)
        try:
            await browser.until(lambda b=browser: b.drew("staging"), 30, f"the console on {host}")
        finally:
            await browser.ws.close()
            await session.close()
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    for evil in ("http://localhost.evil.example:1", f"http://localhost:{served.port + 1}", "null"):
        refused = await get(f"{served.base}/ws/{served.token}", headers={**upgrade, "Origin": evil})
        assert refused.status_code == 403, evil


async def test_public_url_is_the_origin_and_the_websocket_url(tmp_path: Path, serve_profile: Path) -> None:
    server = Served(tmp_path, serve_profile, "--public-url", "https://Ops.Example.test/")
    try:
        assert server.url == f"https://ops.example.test/?token={server.token}"
        page = await get(f"{server.base}/?token={server.token}")  # as the proxy forwards it
        assert f'data-session-websocket-url="wss://ops.example.test/ws/{server.token}"' in page.text
        assert 'href="https://ops.example.test/static/' in page.text
        assert "Secure" in page.headers["set-cookie"]
        upgrade = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        local = await get(f"{server.base}/ws/{server.token}", headers={**upgrade, "Origin": server.base})
        assert local.status_code == 403  # with a public URL, only its origin opens a console
        session, browser = await open_console(
            f"ws://127.0.0.1:{server.port}/ws/{server.token}", "https://ops.example.test"
        )
        try:
            await browser.until(lambda: browser.drew("staging"), 30, "the console through the proxy")
        finally:
            await browser.ws.close()
            await session.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bind", "0.0.0.0"], "--public-url"),
        (["--public-url", "https://ops.example.test/console"], "root of its host"),
        (["--public-url", "ftp://ops.example.test"], "http(s)://HOST"),
    ],
)
def test_serve_refuses_a_url_browsers_cannot_use(serve_profile: Path, args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--profile", str(serve_profile), "serve", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and says in done.stderr, done.stderr + done.stdout


async def test_each_browser_states_a_name_that_the_audit_log_records(
    tmp_path: Path, serve_profile: Path
) -> None:
    server = Served(tmp_path, serve_profile, "--allow-changes", env={"OPSCONSOLE_USER": "serve-owner"})
    try:
        form = await get(server.url)
        assert form.status_code == 200 and 'name="name"' in form.text and "textual-terminal" not in form.text
        bad = await get(f"{server.base}/", params={"token": server.token, "name": "ann\x1b[31m"})
        assert bad.status_code == 400 and "textual-terminal" not in bad.text
        upgrade = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        nameless = await get(f"{server.base}/ws/{server.token}", headers={**upgrade, "Origin": server.base})
        assert nameless.status_code == 403 and "state your name" in nameless.text
        page = await get(f"{server.base}/", params={"token": server.token, "name": "Ann Example"})
        socket = re.search(r'data-session-websocket-url="([^"]+)"', page.text)
        assert socket is not None and socket.group(1).endswith(f"/ws/{server.token}/Ann%20Example")
        session, browser = await open_console(socket.group(1), server.base)
        try:
            await browser.until(lambda: browser.drew("staging"), 30, "the console")
            await browser.keys("\x10")  # ctrl+p
            await asyncio.sleep(0.5)
            await browser.keys("Touch the canary", pause=0.05)
            await asyncio.sleep(1.0)
            await browser.keys("\r")
            await browser.until((tmp_path / "custom-ran").exists, 20, "the custom action")
            await browser.until(
                lambda: server.audit.exists() and '"phase": "end"' in server.audit.read_text(), 20, "audit"
            )
        finally:
            await browser.ws.close()
            await session.close()
    finally:
        server.stop()
    record = json.loads(server.audit.read_text().splitlines()[-1])
    assert record["user"].startswith("Ann Example@")
    assert record["via"] == "serve" and record["remote"] == "127.0.0.1"


def test_in_chromium_a_save_lands_in_the_browsers_downloads(served: Served) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        message = "chromium is not installed (apt-get install chromium)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from playwright.sync_api import sync_playwright

    before = files_under(served.home) | files_under(served.cwd)
    downloads: list[Any] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})

            def got(download: Any) -> None:
                downloads.append(download)

            context.on("page", lambda popup: popup.on("download", got))
            page = context.new_page()
            page.on("download", got)
            frames: list[str] = []
            page.on(
                "websocket",
                lambda ws: ws.on(
                    "framereceived",
                    lambda data: frames.append(
                        ANSI.sub(" ", data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
                    ),
                ),
            )
            page.goto(served.url)
            page.wait_for_selector("body.-first-byte", timeout=20_000)

            def drew(*words: str) -> bool:
                flat = " ".join("".join(frames).split())
                return all(w in flat for w in words)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not drew("counter"):
                page.wait_for_timeout(200)
            assert drew("counter"), "".join(frames)[-1500:]
            page.locator(".textual-terminal").click()
            page.keyboard.press("/")
            page.wait_for_timeout(300)
            page.keyboard.type("counter", delay=100)
            page.wait_for_timeout(300)
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            page.keyboard.press("l")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not drew("log:", "héllo"):
                page.wait_for_timeout(200)
            assert drew("log:", "héllo"), "".join(frames)[-1500:]
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not downloads:
                page.wait_for_timeout(200)
            assert downloads, "no download reached the browser"
            saved = Path(downloads[0].path())
            assert downloads[0].suggested_filename.startswith("opsconsole-")
            assert "héllo" in saved.read_text()
        finally:
            browser.close()
    assert files_under(served.home) | files_under(served.cwd) == before
