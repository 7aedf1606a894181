"""`opsconsole serve` in a real browser: Debian's chromium driven by Playwright (the system browser,
no download), against the server on loopback: the token, the Origin check, local fonts, read-only."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import harness
from conftest import write_profile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def png_colours(data: bytes) -> int:
    """How many distinct pixels an 8-bit RGB(A) PNG has in its first rows (no imaging library here)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, channels = 8, b"", 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", body[:4])[0]
            channels = {2: 3, 6: 4}[body[9]]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    seen: set[bytes] = set()
    previous = bytearray(stride - 1)
    for row in range(min(len(raw) // stride, 400)):
        line = bytearray(raw[row * stride + 1 : (row + 1) * stride])
        kind = raw[row * stride]
        for i in range(len(line)):  # undo the PNG filters (None, Sub, Up, Average, Paeth)
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        seen.update(bytes(line[i : i + channels]) for i in range(0, len(line), channels * 7))
        previous = line
    return len(seen)


@pytest.fixture
def served(tmp_path: Path, supervisord: harness.Supervisord) -> Iterator[dict[str, Any]]:
    path = write_profile(
        tmp_path,
        f"""
[project]
name = "shop"
[defaults]
timeout = 5
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
[environments.staging.deploy]
path = "{tmp_path}/srv/shop"
repo = "{tmp_path}/no-repo"
[environments.production]
hosts = ["local"]
protected = true
[environments.production.supervisor]
url = "{supervisord.unix_url}"
""",
    )
    port = harness.free_port()
    env = {**os.environ, "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--profile", str(path), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not url:
        line = proc.stdout.readline()
        if m := re.search(r"Open: (http://\S+)", line):
            url = m.group(1)
    assert url, "opsconsole serve printed no URL"
    harness.wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/").status_code == 403, 10, "serve")
    yield {"url": url, "base": f"http://127.0.0.1:{port}", "port": port, "tmp": tmp_path}
    harness.stop_process(proc)


def test_without_the_token_or_from_another_origin_is_403(served: dict[str, Any]) -> None:
    base, url = served["base"], served["url"]
    assert httpx.get(base + "/").status_code == 403
    assert httpx.get(base + "/?token=wrong").status_code == 403
    page = httpx.get(url)
    assert page.status_code == 200 and "googleapis" not in page.text and "fonts/RobotoMono" in page.text
    token = url.split("token=", 1)[1]
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    assert httpx.get(f"{base}/ws/wrong", headers={**upgrade, "Origin": base}).status_code == 403
    evil = httpx.get(f"{base}/ws/{token}", headers={**upgrade, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "another origin" in evil.text
    assert httpx.get(f"{base}/ws/{token}", headers=upgrade).status_code == 403  # no Origin at all


def test_the_console_renders_in_chromium_read_only(served: dict[str, Any]) -> None:
    if not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install chromium)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from playwright.sync_api import sync_playwright

    frames: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on(
                "request",
                lambda r: (
                    outside.append(r.url)
                    if not r.url.startswith((served["base"], "ws://127.0.0.1"))
                    else None
                ),
            )

            def on_socket(ws: Any) -> None:
                ws.on(
                    "framereceived",
                    lambda payload: frames.append(
                        payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
                    ),
                )

            page.on("websocket", on_socket)
            page.goto(served["url"])
            page.wait_for_selector("body.-first-byte", timeout=20_000)

            def seen(*words: str) -> bool:
                text = "".join(frames)
                return all(w in text for w in words)

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not seen("staging", "production", "READ-ONLY"):
                page.wait_for_timeout(200)
            assert seen("staging", "production", "READ-ONLY"), "the console never drew its environments"
            page.wait_for_timeout(500)
            shot = page.screenshot()
            assert png_colours(shot) > 8  # not a blank page: the panes are drawn
            (served["tmp"] / "serve.png").write_bytes(shot)

            before = len(frames)
            page.locator(".textual-terminal").click()
            page.keyboard.press("D")

            def after() -> str:  # the text drawn since, escape sequences taken out
                return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", " ", "".join(frames[before:]))

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "refused" not in after():
                page.wait_for_timeout(200)
            # the change key is refused, for the reason that holds (no --read-only was passed)
            assert "refused" in after() and "read-only" in after() and "served" in after(), after()[-2000:]
            assert "(--read-only)" not in after()
        finally:
            browser.close()
    assert outside == []  # nothing loaded from outside (fonts come from the server)
    assert not (served["tmp"] / "audit.jsonl").exists()  # nothing ran


def test_serve_consoles_audit_via_and_the_browsers_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from opsconsole.actions.runner import ActionRun
    from opsconsole.app import make_app
    from opsconsole.profiles import load_profile

    path = write_profile(
        tmp_path,
        f'[environments.staging]\nhosts = ["local"]\n[[environments.staging.actions]]\nname = "touch"\n'
        f'command = "touch {tmp_path}/ran"\nconfirm = false\n',
    )
    monkeypatch.setenv("OPSCONSOLE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    app = make_app(load_profile(path), via="serve", remote="127.0.0.9")
    run = ActionRun(app.make_action("run", "staging", name="touch"), approved=True)
    assert run.run_to_end().ok
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert record["via"] == "serve" and record["remote"] == "127.0.0.9"
    app.backends.close()
