"""Sentry backend against the local Sentry-shaped server held to the real OpenAPI schema."""

from __future__ import annotations

import pytest

from opsconsole.backends.sentry import SentryClient, SentryError
from opsconsole.errors import UnreachableError
from opsconsole.profiles import SecretRef, SentryConfig
from opsconsole.secrets import Secret
from sentry_server import Forced, SentryServer, make_event


def client_for(
    server: SentryServer, token: str | None = None, environment: str | None = "staging", timeout: float = 5.0
) -> SentryClient:
    config = SentryConfig(
        organization=server.org,
        project=server.project,
        token=SecretRef("t"),
        url=server.url,
        environment=environment,
    )
    return SentryClient(config, Secret("t", token or server.token), timeout)


async def test_lists_unresolved_issues_through_org_endpoint(sentry_server: SentryServer) -> None:
    sentry_server.add_issue("ZeroDivisionError: division by zero", count=42, users=7)
    resolved = sentry_server.add_issue("KeyError: 'x'")
    resolved["status"] = "resolved"
    page = await client_for(sentry_server).issues()
    assert [i.title for i in page.issues] == ["ZeroDivisionError: division by zero"]
    issue = page.issues[0]
    assert (issue.short_id, issue.level, issue.count, issue.users) == ("SHOP-1", "error", 42, 7)
    assert issue.permalink.endswith("/issues/4001/") and issue.first_seen and issue.last_seen
    assert issue.culprit == "app.views in handler_1"
    request = sentry_server.requests[-1]
    assert request["path"] == "/api/0/organizations/acme/issues/"
    assert request["query"]["query"] == ["is:unresolved"] and request["query"]["environment"] == ["staging"]
    assert request["auth"] == f"Bearer {sentry_server.token}"


async def test_paginates_by_link_header(sentry_server: SentryServer) -> None:
    for n in range(230):
        sentry_server.add_issue(f"Error {n}")
    page = await client_for(sentry_server).issues(limit=500)
    assert len(page.issues) == 230 and len({i.id for i in page.issues}) == 230
    cursors = [r["query"].get("cursor") for r in sentry_server.requests]
    assert cursors == [None, ["0:100:0"], ["0:200:0"]]


async def test_backs_off_on_429_and_says_so(sentry_server: SentryServer) -> None:
    sentry_server.add_issue("Boom")
    sentry_server.force(Forced(429, b'{"detail": "slow down"}', {"Retry-After": "0.2"}))
    page = await client_for(sentry_server).issues()
    assert len(page.issues) == 1
    assert any("rate limited (429); backed off 0.2 s" in note for note in page.notes)


async def test_persistent_429_is_an_error_with_advice(sentry_server: SentryServer) -> None:
    sentry_server.force(*[Forced(429, b"{}", {"Retry-After": "0.1"})] * 4)
    with pytest.raises(SentryError, match="rate limited"):
        await client_for(sentry_server).issues()


@pytest.mark.parametrize(
    ("forced", "match"),
    [
        (Forced(500, b'{"detail": "Internal Error"}'), "HTTP 500: Internal Error"),
        (Forced(200, b"<html>not json"), "not JSON"),
        (Forced(404, b'{"detail": "The requested resource does not exist"}'), "check sentry.organization"),
    ],
)
async def test_server_errors_are_clear(sentry_server: SentryServer, forced: Forced, match: str) -> None:
    sentry_server.force(forced)
    with pytest.raises(SentryError, match=match):
        await client_for(sentry_server).issues()


async def test_timeout_and_bad_token(sentry_server: SentryServer) -> None:
    sentry_server.force(Forced(200, b"[]", delay=1.5))
    with pytest.raises(UnreachableError, match="timed out after 0.5 s"):
        await client_for(sentry_server, timeout=0.5).issues()
    with pytest.raises(SentryError, match="401.*token is invalid") as info:
        await client_for(sentry_server, token="wrong-token-value").issues()
    assert "wrong-token-value" not in str(info.value)


async def test_latest_event_with_frames_and_short_id(sentry_server: SentryServer) -> None:
    issue = sentry_server.add_issue("ValueError: bad input")
    sentry_server.events[issue["id"]] = make_event(
        issue, "ValueError", "bad input", [("app/views.py", "checkout", 40), ("app/models.py", "save", 12)]
    )
    event = await client_for(sentry_server).latest_event("SHOP-1")
    (exc,) = event.exceptions
    assert exc.type == "ValueError" and exc.value == "bad input"
    assert [(f.filename, f.function, f.line) for f in exc.frames] == [
        ("app/views.py", "checkout", 40),
        ("app/models.py", "save", 12),
    ]
    assert exc.frames[-1].context_line == "    save()"
    paths = [r["path"] for r in sentry_server.requests]
    assert paths == [
        "/api/0/organizations/acme/shortids/SHOP-1/",
        f"/api/0/organizations/acme/issues/{issue['id']}/events/latest/",
    ]


async def test_resolve_and_ignore(sentry_server: SentryServer) -> None:
    first = sentry_server.add_issue("A")
    second = sentry_server.add_issue("B")
    client = client_for(sentry_server)
    assert (await client.resolve(first["id"])).status == "resolved"
    ignored = await client.ignore("SHOP-2")
    assert ignored.status == "ignored" and second["substatus"] == "archived_forever"
    assert (await client.issues()).issues == []
