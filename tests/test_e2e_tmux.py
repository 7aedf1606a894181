"""The installed `opsconsole` in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness
from conftest import write_profile

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One program in its own tmux server (its own socket, no user config): a session killed by one
    test never leaves a server shutting down under the next test's `new-session`, as a shared default
    server did once in CI."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        size: tuple[int, int] = (120, 40),
        term: str = "screen-256color",
    ) -> None:
        self.name = f"opsc-{uuid.uuid4().hex[:8]}"
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        started = subprocess.run(
            [
                *self.tmux("-f", os.devnull, "new-session"),
                "-d",
                "-s",
                self.name,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                *env_args,
                "env",
                f"TERM={term}",
                *command,
            ],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise AssertionError(f"tmux new-session failed ({started.returncode}): {started.stderr.strip()}")

    def tmux(self, *args: str) -> list[str]:
        """A tmux command line for this session's own server."""
        return ["tmux", "-L", self.name, *args]

    def screen(self) -> str:
        done = subprocess.run(
            self.tmux("capture-pane", "-p", "-t", self.name), capture_output=True, text=True
        )
        return done.stdout

    def alive(self) -> bool:
        return subprocess.run(self.tmux("has-session", "-t", self.name), capture_output=True).returncode == 0

    def keys(self, *keys: str) -> None:
        subprocess.run(self.tmux("send-keys", "-t", self.name, *keys), check=True)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{screen}")

    def kill(self) -> None:
        subprocess.run(self.tmux("kill-server"), capture_output=True)

    def wait_gone(self, timeout: float = 10.0) -> bool:
        """True once the program has ended (its session closed) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self.alive()


@pytest.fixture
def tmux_console(tmp_path: Path, supervisord: harness.Supervisord) -> Iterator[Tmux]:
    profile = write_profile(
        tmp_path,
        f"""
[project]
name = "e2e"
[defaults]
refresh = 2
[environments.staging]
hosts = ["local"]
color = "green"
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {"NO_COLOR": "1", "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "PATH": os.environ["PATH"]}
    session = Tmux([opsconsole, "--profile", str(profile)], env, size=(80, 24))
    yield session
    session.kill()


def test_console_in_tmux_shows_real_processes_and_answers_keys(tmux_console: Tmux) -> None:
    screen = tmux_console.wait_for("counter:counter")
    assert "staging" in screen and "RUNNING" in screen
    tmux_console.keys("?")
    tmux_console.wait_for("Keys, by screen")
    tmux_console.keys("Escape")
    time.sleep(0.5)  # a lone ESC is told from an escape sequence by the pause after it
    tmux_console.keys("2")
    tmux_console.wait_for("Docker is not configured")
    tmux_console.keys("1")
    tmux_console.wait_for("counter:counter")
    tmux_console.keys("q")
    assert tmux_console.wait_gone()


NAMES = ("burst", "counter", "idle", "sleeper", "web_0", "web_1")


def _row_order(screen: str) -> list[str]:
    order: list[str] = []
    for line in screen.splitlines():
        for name in NAMES:
            if f"{name}:" in line or f":{name}" in line:
                if name not in order:
                    order.append(name)
                break
    return order


def _wait_gone(session: Tmux, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text in session.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text not in session.screen(), session.screen()


def test_cursor_keys_move_the_selection_and_actions_use_it(tmux_console: Tmux) -> None:
    """In a real terminal: Down and j move the row cursor (also after 1, tab, and a closed modal),
    and `r` acts on the selected (third) row, not the first."""
    screen = tmux_console.wait_for("web:web_1")
    order = _row_order(screen)
    assert len(order) == 6, screen
    tmux_console.keys("?")
    tmux_console.wait_for("Keys, by screen")
    tmux_console.keys("Escape")
    _wait_gone(tmux_console, "Keys, by screen")
    tmux_console.keys("tab")
    tmux_console.keys("1")
    time.sleep(0.3)
    tmux_console.keys("Down")
    tmux_console.keys("j")
    time.sleep(0.3)
    tmux_console.keys("r")
    screen = tmux_console.wait_for("Restart supervisor:")
    third = order[2]
    assert f"Restart supervisor:{third}:{third}" in screen or f"Restart supervisor:web:{third}" in screen, (
        screen
    )
    tmux_console.keys("Escape")
    _wait_gone(tmux_console, "Restart supervisor:")
    tmux_console.keys("G")  # last row
    time.sleep(0.3)
    tmux_console.keys("r")
    screen = tmux_console.wait_for("Restart supervisor:")
    assert f"supervisor:web:{order[-1]}" in screen, screen
    tmux_console.keys("Escape")
    _wait_gone(tmux_console, "Restart supervisor:")
    tmux_console.keys("g")  # first row
    time.sleep(0.3)
    tmux_console.keys("r")
    screen = tmux_console.wait_for("Restart supervisor:")
    assert f"supervisor:{order[0]}:{order[0]}" in screen, screen
    tmux_console.keys("Escape")


def test_command_line_filter_and_sort_in_a_real_terminal(tmux_console: Tmux) -> None:
    """`:` with tab completion, `/` filter shown and cleared by escape, shift+S sorts: typed in tmux."""
    tmux_console.wait_for("web:web_1")
    tmux_console.keys("/")
    tmux_console.wait_for("filter (esc to close)")  # keys typed before the input is up go to the screen
    tmux_console.keys("counter")
    tmux_console.keys("Enter")
    tmux_console.wait_for('filter "counter"')
    tmux_console.keys("Escape")
    _wait_gone(tmux_console, 'filter "counter"')
    tmux_console.wait_for("web:web_1")  # every row is back
    tmux_console.keys("S")
    screen = tmux_console.wait_for("sorted by state")
    states = [
        w for line in screen.splitlines() for w in line.split() if w in ("RUNNING", "STOPPED", "EXITED")
    ]
    assert states == sorted(states), screen
    tmux_console.keys(":")
    tmux_console.wait_for("tab or → completes")
    tmux_console.keys("logs coun")
    tmux_console.wait_for("logs counter:counter")  # the completion is offered...
    tmux_console.keys("Tab")  # ...and taken
    tmux_console.keys("Enter")
    screen = tmux_console.wait_for("lines (last")  # the log viewer's status line
    assert "counter:counter" in screen
    tmux_console.keys("q")
    tmux_console.wait_for("web:web_1")


def test_no_color_sends_no_colour_to_the_terminal(tmp_path: Path, supervisord: harness.Supervisord) -> None:
    """With NO_COLOR, what reaches the terminal carries attributes (bold, reverse) but no colour:
    tmux's own capture with escapes shows no SGR colour parameter at all."""
    import re

    profile = write_profile(
        tmp_path,
        f'[environments.staging]\nhosts = ["local"]\ncolor = "green"\n'
        f'[environments.staging.supervisor]\nurl = "{supervisord.unix_url}"\n',
    )
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {"NO_COLOR": "1", "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"), "PATH": os.environ["PATH"]}
    session = Tmux([opsconsole, "--profile", str(profile), "console", "--theme", "nord"], env, size=(80, 24))
    try:
        session.wait_for("counter:counter")
        raw = subprocess.run(
            session.tmux("capture-pane", "-e", "-p", "-t", session.name), capture_output=True, text=True
        ).stdout
        colours = []
        for params in re.findall(r"\x1b\[([0-9;:]*)m", raw):
            codes = [int(p) for p in re.split("[;:]", params) if p.isdigit()]
            colours += [c for c in codes if 30 <= c <= 49 and c not in (39, 49) or 90 <= c <= 107]
        assert colours == [], f"colour codes reached the terminal: {sorted(set(colours))}"
        # what colour showed is shown by attributes: the row cursor is reverse video
        cursor_rows = [line for line in raw.splitlines() if "burst" in line or "counter:counter" in line]
        assert any(re.search(r"\x1b\[[0-9;]*\b7[;m]", line) for line in cursor_rows), cursor_rows
    finally:
        session.kill()

    # and without NO_COLOR the same capture does carry colour (the check above can fail)
    env.pop("NO_COLOR")
    session = Tmux([opsconsole, "--profile", str(profile)], env, size=(80, 24))
    try:
        session.wait_for("counter:counter")
        raw = subprocess.run(
            session.tmux("capture-pane", "-e", "-p", "-t", session.name), capture_output=True, text=True
        ).stdout
        assert re.search(r"\x1b\[[0-9;]*(3[0-8]|4[0-8]|9[0-7])[;m]", raw)
    finally:
        session.kill()


def test_palette_all_view_and_copy_in_a_real_terminal(tmux_console: Tmux) -> None:
    """ctrl+p finds an action by name, `0` shows every environment, `y` copies (OSC 52, which tmux
    keeps as its paste buffer)."""
    subprocess.run(
        tmux_console.tmux("set-option", "-t", tmux_console.name, "-s", "set-clipboard", "on"), check=True
    )
    tmux_console.wait_for("web:web_1")
    tmux_console.keys("C-p")
    tmux_console.wait_for("Search")
    tmux_console.keys("restart")
    tmux_console.wait_for("Restart selection")
    tmux_console.keys("Escape")
    _wait_gone(tmux_console, "Restart selection")
    tmux_console.keys("0")
    screen = tmux_console.wait_for("rows across 1 environment")
    assert "env" in screen and "staging" in screen
    tmux_console.keys("1")
    tmux_console.wait_for("processes ·")
    tmux_console.keys("g")
    tmux_console.keys("y")
    tmux_console.wait_for("copied ")
    deadline = time.monotonic() + 10
    buffer = ""
    while time.monotonic() < deadline:
        buffer = subprocess.run(tmux_console.tmux("show-buffer"), capture_output=True, text=True).stdout
        if ":" in buffer:
            break
        time.sleep(0.1)
    assert buffer.split(":")[0] in NAMES or buffer.split(":")[-1] in NAMES, buffer


def test_command_line_help_and_details_leave_the_table_in_sight(
    tmp_path: Path, supervisord: harness.Supervisord
) -> None:
    """`:` is a bar at the bottom over the table (k9s), and at 160 columns help and details open
    beside it: the row you are typing about stays readable."""
    profile = write_profile(
        tmp_path,
        f"""
[environments.staging]
hosts = ["local"]
[environments.staging.supervisor]
url = "{supervisord.unix_url}"
""",
    )
    opsconsole = str(Path(sys.executable).parent / "opsconsole")
    env = {
        "NO_COLOR": "1",
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "PATH": os.environ["PATH"],
        # Textual takes COLUMNS and LINES over the terminal's size: pytest's may be inherited
        "COLUMNS": "160",
        "LINES": "40",
    }
    session = Tmux([opsconsole, "--profile", str(profile)], env, size=(160, 40))
    try:
        session.wait_for("counter:counter")
        session.keys(":")
        screen = session.wait_for("tab or")
        lines = screen.splitlines()
        prompt = next(n for n, line in enumerate(lines) if "tab or" in line)
        assert prompt > len(lines) // 2, screen  # at the bottom
        assert "counter:counter" in screen, screen  # the table is still there
        session.keys("Escape")
        time.sleep(0.5)  # a lone ESC is told from an escape sequence by the pause after it
        session.keys("?")
        screen = session.wait_for("Keys, by screen")
        assert "counter:counter" in screen, screen
        session.keys("Escape")
        time.sleep(0.5)
        session.keys("Enter")  # details of the selected process
        screen = session.wait_for("description")
        assert "counter:counter" in screen.split("│")[0] or screen.count("counter") >= 2, screen
    finally:
        session.kill()
