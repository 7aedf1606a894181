"""A source registered in the catalog, and nowhere else, shows in `status --json` and in a pane of
its own (its number key after the built-in panes)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import TabbedContent

from conftest import write_profile
from opsconsole.app import make_app
from opsconsole.commands.status import cmd_status
from opsconsole.panes import pane_specs
from opsconsole.profiles import load_profile
from opsconsole.sources import catalog
from opsconsole.sources.catalog import Fetch, JsonPlace, Source
from opsconsole.sources.fanout import SourceResult
from opsconsole.widgets.pane import Pane
from test_console import wait_until

PROFILE = """
[project]
name = "lab"

[environments.bench]
description = "no hosts: only environment-wide sources"
"""


def _fetch(_f: Fetch) -> Any:
    return {"ok": 3}


def _to_json(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    data = result.data if result is not None else None
    place.target["canary"] = {"ok": data["ok"] if data else None, "error": result.error if result else None}


@pytest.fixture
def canary() -> Iterator[Source]:
    src = catalog.register(
        Source(
            "canary",
            "Canary",
            "canary",
            lambda env: True,
            _fetch,
            per_host=False,
            to_json=_to_json,
            columns=("what", "value"),
            rows=lambda data: [("ok", ["ok", str(data["ok"])])],
        )
    )
    try:
        yield src
    finally:
        catalog.unregister("canary")


def test_registered_source_is_in_status_json(
    canary: Source, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = write_profile(tmp_path, PROFILE)
    args = argparse.Namespace(profile=str(profile), envs=None, json=True, stats=False)
    assert cmd_status(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["environments"]["bench"]["canary"] == {"ok": 3, "error": None}


async def test_registered_source_has_a_pane_and_a_number_key(canary: Source, tmp_path: Path) -> None:
    profile = load_profile(write_profile(tmp_path, PROFILE))
    specs = pane_specs(profile)
    assert [s.id for s in specs][-1] == "canary"  # after the built-in panes (the optional ones are not configured)
    key = str(len(specs))
    app = make_app(profile)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: app.screen.query_one_optional("#canary", Pane) is not None, what="panes"
        )
        await pilot.press(key)
        assert app.screen.query_one(TabbedContent).active == "tab-canary"
        pane = app.screen.query_one("#canary", Pane)
        await wait_until(pilot, lambda: pane.table.row_count == 1, what="the canary's row")
        assert [str(c) for c in pane.table.get_row_at(0)] == ["ok", "3"]
        assert "1 canary · live" in str(pane.status_text)


def test_unregistered_source_leaves_the_builtin_panes() -> None:
    assert "canary" not in [s.id for s in pane_specs()]
    assert [s.id for s in pane_specs()] == [
        "processes",
        "containers",
        "deploys",
        "errors",
        "health",
        "metrics",
        "nginx",
        "units",
        "timeline",
        "alerts",
    ]
