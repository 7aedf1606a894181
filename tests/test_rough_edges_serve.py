"""Rough edges of issue 33: a read-only console's footer offers only keys that work; a served page
takes keys without a click first; the demo's Bugsink that is only starting is not an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from opsconsole.app import make_app
from opsconsole.profiles import load_profile
from opsconsole.screens.help import HelpScreen
from test_console import audit_env, console_profile, wait_until  # noqa: F401 - fixtures
from test_serve import CHROMIUM, served  # noqa: F401 - the served console fixture

CHANGE_LABELS = {"Deploy", "Rollback", "Restart", "Start/stop", "Purge", "Resolve", "Ignore"}


def footer_labels(app: Any) -> set[str]:
    from textual.widgets._footer import FooterKey

    return {str(key.description) for key in app.screen.query(FooterKey)}


@pytest.mark.parametrize("read_only", [False, True])
async def test_a_read_only_footer_offers_no_key_that_is_refused(
    console_profile: Path,  # noqa: F811
    audit_env: Path,  # noqa: F811
    tmp_path: Path,
    read_only: bool,
) -> None:
    app = make_app(load_profile(console_profile), read_only=read_only)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_until(pilot, lambda: "Logs" in footer_labels(app), timeout=10, what="the footer")
        shown = footer_labels(app)
        assert "Logs" in shown and "Filter" in shown  # reads stay offered
        if not read_only:
            assert {"Deploy", "Restart"} <= shown
            return
        assert not (CHANGE_LABELS & shown), shown
        # still bound: help lists them, and a press says why it is refused
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        listed = {b.id for _, items in app.screen.sections for b in items}  # type: ignore[attr-defined]
        assert {"deploy", "restart", "start_stop"} <= listed
        await pilot.press("escape")
        await pilot.press("r")
        await wait_until(
            pilot, lambda: any("read-only" in n.message for n in app._notifications), what="the refusal"
        )
        assert not audit_env.exists()


def test_the_served_page_takes_keys_without_a_click(served: dict[str, Any]) -> None:  # noqa: F811
    if not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install chromium)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from playwright.sync_api import sync_playwright

    frames: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})

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
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "staging" not in "".join(frames):
                page.wait_for_timeout(200)
            assert page.evaluate("document.activeElement.classList.contains('xterm-helper-textarea')")
            before = len(frames)

            def after() -> str:  # the text drawn since, escape sequences taken out
                return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", " ", "".join(frames[before:]))

            page.keyboard.press("?")  # no click first
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "Keys, by screen" not in after():
                page.wait_for_timeout(200)
            assert "Keys, by screen" in after(), after()[-2000:]
        finally:
            browser.close()


def test_a_bugsink_is_starting_only_while_its_starter_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from opsconsole.backends.bugsink import BugsinkClient, BugsinkStarting, starting_marker
    from opsconsole.demo.sandbox import Sandbox
    from opsconsole.errors import UnreachableError
    from opsconsole.profiles import BugsinkConfig
    from opsconsole.profiles.model import SecretRef
    from opsconsole.secrets import Secret

    monkeypatch.setenv("OPSCONSOLE_DATA_DIR", str(tmp_path / "data"))
    port = harness.free_port()  # nothing listens: connections are refused
    url = f"http://127.0.0.1:{port}"
    client = BugsinkClient(
        BugsinkConfig(url=url, project=1, token=SecretRef("bugsink")), Secret("bugsink", "t" * 40), 2.0
    )

    def fetch() -> None:
        asyncio.run(client.issues())

    with pytest.raises(UnreachableError) as refused:  # nobody says it is starting: an error
        fetch()
    assert not isinstance(refused.value, BugsinkStarting)

    sandbox = Sandbox(root=tmp_path / "opsconsole-demo-x", bugsink_port=port)
    sandbox._mark_bugsink_starting("starting Bugsink… (about a minute)")  # noqa: SLF001
    with pytest.raises(BugsinkStarting, match="starting Bugsink"):
        fetch()

    sandbox._unmark_bugsink_starting()  # noqa: SLF001 - it answers now, or it failed to start
    with pytest.raises(UnreachableError) as again:
        fetch()
    assert not isinstance(again.value, BugsinkStarting)

    # a marker left by a demo that died counts for nothing
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    starting_marker(url).write_text(f"{dead.stdout.strip()}\nstarting Bugsink…\n")
    with pytest.raises(UnreachableError) as stale:
        fetch()
    assert not isinstance(stale.value, BugsinkStarting)


def test_a_starting_bugsink_is_pending_in_the_header_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's header showed `sentry ✗1` for ~16 s while its Bugsink was only starting."""
    from opsconsole.backends.clients import Backends
    from opsconsole.demo.sandbox import Sandbox
    from opsconsole.panes import pane_specs
    from opsconsole.panes.header import header_text
    from opsconsole.profiles import parse_profile_text
    from opsconsole.sources.model import ReadModel
    from opsconsole.sources.summary import summarize

    monkeypatch.setenv("OPSCONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPSCONSOLE_SECRET_BUGSINK", "t" * 40)
    port = harness.free_port()
    profile = parse_profile_text(
        f'[environments.sandbox]\nhosts = []\n[environments.sandbox.bugsink]\nurl = "http://127.0.0.1:{port}"\n'
        'project = 1\ntoken = { secret = "bugsink" }\n',
        tmp_path / "p.toml",
    )
    env = profile.env("sandbox")

    def header() -> str:
        backends = Backends(profile)
        model = ReadModel(backends)
        try:
            results = model.collect(["sandbox"]).of("sandbox")
        finally:
            model.close()
            backends.close()
        text = header_text("p", env, results, pane_specs(profile), profile.defaults, time.time(), narrow=False)
        return text.plain + " | " + ", ".join(summarize(results).badges())

    sandbox = Sandbox(root=tmp_path / "opsconsole-demo-x", bugsink_port=port)
    sandbox._mark_bugsink_starting("starting Bugsink… (about a minute)")  # noqa: SLF001
    starting = header()
    assert "✗" not in starting and "…" in starting and "unreachable" not in starting, starting
    sandbox._unmark_bugsink_starting()  # noqa: SLF001
    down = header()
    assert "✗1" in down, down  # a Bugsink that is down, with nobody starting it, is a failure
