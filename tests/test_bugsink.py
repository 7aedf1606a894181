"""The Errors pane's second backend against a real Bugsink (its own venv, started by the harness) fed
real `sentry_sdk` events: open issues, new-in-release, the latest event's frames, resolve and ignore,
`status --json` under `bugsink`, and a profile may not name both Sentry and Bugsink."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from conftest import write_profile

SEND = textwrap.dedent(
    """
    import sys, sentry_sdk
    sentry_sdk.init(dsn=sys.argv[1], release=sys.argv[2], default_integrations=False)

    def divide(a, b):
        return a / b

    for kind in sys.argv[3:]:
        try:
            if kind == "zero":
                divide(1, 0)
            else:
                raise ValueError("bad value " + kind)
        except Exception as exc:
            sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(10)
    """
)


@pytest.fixture(scope="module")
def bugsink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        server = harness.start_bugsink(tmp_path_factory.mktemp("bugsink"))
    except harness.ServiceUnavailable as exc:
        pytest.skip(f"Bugsink is not available here: {exc}")
    yield server
    server.stop()


def send(server: Any, release: str, *kinds: str) -> None:
    """Real events from a real program (a file, so the SDK sends source context with its frames)."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "shop_app.py"
        script.write_text(SEND)
        subprocess.run([sys.executable, str(script), server.dsn, release, *kinds], check=True, timeout=60)


def client(server: Any) -> Any:
    from opsconsole.backends.bugsink import BugsinkClient
    from opsconsole.profiles import BugsinkConfig, SecretRef
    from opsconsole.secrets import Secret

    config = BugsinkConfig(url=server.url, project=server.project, token=SecretRef("bugsink-token"))
    return BugsinkClient(config, Secret("bugsink-token", server.token), 10)


def test_issues_events_resolve_and_ignore(bugsink: Any) -> None:
    send(bugsink, "shop@aaa", "zero")
    send(bugsink, "shop@bbb", "x1")
    api = client(bugsink)
    page = asyncio.run(api.issues())
    titles = {i.title: i for i in page.issues}
    zero = titles["ZeroDivisionError: division by zero"]
    assert zero.short_id.startswith("SHOP-") and zero.count == 1 and zero.status == "unresolved"
    assert zero.first_release == "shop@aaa"
    new = asyncio.run(api.issues(query="is:unresolved firstRelease:shop@bbb"))
    assert [i.title for i in new.issues] == ["ValueError: bad value x1"]

    event = asyncio.run(api.latest_event(zero.id))
    assert event.exceptions[-1].type == "ZeroDivisionError"
    functions = [f.function for f in event.exceptions[-1].frames]
    assert "divide" in functions and any(
        f.context_line and "a / b" in f.context_line for f in event.exceptions[-1].frames
    )

    resolved = asyncio.run(api.update(zero.id, {"status": "resolved"}))
    assert resolved.status == "resolved"
    other = titles["ValueError: bad value x1"]
    muted = asyncio.run(api.update(other.short_id, {"status": "ignored", "substatus": "archived_forever"}))
    assert muted.status == "ignored"
    assert asyncio.run(api.issues()).issues == []  # open issues only


def test_cli_status_json_resolve_and_the_one_tracker_rule(run_cli: Any, tmp_path: Path, bugsink: Any) -> None:
    send(bugsink, "shop@ccc", "cli")
    path = write_profile(
        tmp_path,
        f"""
[environments.staging]
[environments.staging.bugsink]
url = "{bugsink.url}"
project = {bugsink.project}
token = {{ secret = "bugsink-token" }}
""",
    )
    env = {
        "OPSCONSOLE_SECRET_BUGSINK_TOKEN": bugsink.token,
        "OPSCONSOLE_AUDIT_LOG": str(tmp_path / "a.jsonl"),
    }
    status = run_cli("--profile", str(path), "status", "--env", "staging", "--json", env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)["environments"]["staging"]
    assert "sentry" not in data and data["bugsink"]["error"] is None
    issue = next(i for i in data["bugsink"]["issues"] if i["title"] == "ValueError: bad value cli")
    assert set(issue) >= {
        "id",
        "short_id",
        "title",
        "level",
        "count",
        "first_seen",
        "last_seen",
        "first_release",
    }
    done = run_cli("--profile", str(path), "resolve", "staging", issue["short_id"], "--yes", env=env)
    assert done.returncode == 0 and "is now resolved" in done.stdout, done.stderr

    both = write_profile(
        tmp_path,
        path.read_text()
        + '[environments.staging.sentry]\norganization = "a"\nproject = "b"\ntoken = { secret = "t" }\n',
        name="both",
    )
    refused = run_cli("--profile", str(both), "profile", "validate", str(both))
    assert refused.returncode == 2 and "both [sentry] and [bugsink]" in refused.stderr
