"""Snapshots of the main screen (80x24, 160x48), the confirmation modal and the log viewer."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from opsconsole.actions.runner import ActionRun
from opsconsole.app import RunState
from opsconsole.screens.confirm import ConfirmScreen
from opsconsole.screens.log_screen import LogScreen
from opsconsole.widgets.log_view import LogView
from snapshot_app import build


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Snapshots in UTC; the process's time zone is put back afterwards (tzset both ways)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


async def _settle(pilot: Any) -> None:
    pilot.app.screen.render_all()
    await pilot.pause()


def test_main_80x24(snap_compare: Any) -> None:
    assert snap_compare(build(), terminal_size=(80, 24), run_before=_settle)


def test_main_160x48(snap_compare: Any) -> None:
    assert snap_compare(build(), terminal_size=(160, 48), run_before=_settle)


def test_containers_pane_160x48(snap_compare: Any) -> None:
    assert snap_compare(build(), terminal_size=(160, 48), run_before=_settle, press=["2"])


def test_metrics_pane_80x24(snap_compare: Any) -> None:
    assert snap_compare(build(), terminal_size=(80, 24), run_before=_settle, press=["6"])


def test_metrics_pane_160x48(snap_compare: Any) -> None:
    assert snap_compare(build(), terminal_size=(160, 48), run_before=_settle, press=["6"])


def test_confirmation_modal_protected(snap_compare: Any) -> None:
    app = build()

    async def open_modal(pilot: Any) -> None:
        from unittest import mock

        from opsconsole.backends.releases import DeployState

        # what the hosts would answer (the snapshot asks no host, and no DNS)
        state = DeployState("web-3", "/srv/shop", True, "20251120T093000Z", ["20251120T093000Z"])
        state.history.append(
            {
                "event": "deploy",
                "release": "20251120T093000Z",
                "ref": "v1.4.2",
                "commit": "9f1c2d3e4b5a6978",
                "outcome": "success",
            }
        )
        from opsconsole.actions.deploy.pending import Commit, Outgoing

        going = Outgoing("web-3", "main", "77aa11bb22cc3344", "", "20251120T093000Z", "9f1c2d3e4b5a6978")
        going.commits = [
            Commit("77aa11bb22cc3344", "", "ann", "Migrate orders.total to decimal"),
            Commit("0c0ffee123456789", "", "bob", "Fix cart rounding"),
        ]
        going.total = 2
        going.migrations = ["shop/migrations/0042_total_decimal.py"]
        action = app.make_action("deploy", "production", release="20251126T100000Z")
        action.ctx.known = None  # the whole plan read at once (mocked below), not the console's partial one
        with (
            mock.patch("opsconsole.actions.deploy.plan.read_states", return_value={"web-3": state}),
            mock.patch("opsconsole.actions.deploy.plan.what_goes_out", return_value=(going, None)),
        ):
            plan = action.plan()
        app.push_screen(ConfirmScreen(action, plan))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_modal)


def test_log_viewer(snap_compare: Any) -> None:
    app = build()

    async def open_log(pilot: Any) -> None:
        action = app.make_action("logs", "staging", "file:/var/log/app.log")
        state = RunState(99, action, ActionRun(action))
        app.push_screen(LogScreen(state))
        await pilot.pause()
        view = app.screen.query_one(LogView)
        lines = [(f"line {n:04d} \x1b[32mOK\x1b[0m request served", "web-1") for n in range(60)]
        lines.append(("\x1b]0;pwned title\x07\x1b[2J[bold]not markup[/bold] \x00 end", "web-1"))
        lines.append(("x" * 5000, "web-1"))
        view.append_many(lines)
        view.search("0042")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=open_log)
