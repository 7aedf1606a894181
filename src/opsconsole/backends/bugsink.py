"""Bugsink (a self-hosted error tracker) behind the same interface as the Sentry client.

Bugsink's own API (`/api/canonical/0/`, Bearer token, cursor pages of 250) is not Sentry's, so this
adapter maps it: open issues (`state=open`, Sentry's `is:unresolved`), the latest event of an issue
(its raw Sentry payload, whose `exception.values[].stacktrace.frames` are read), resolve (POST
`…/resolve/`) and ignore (POST `…/mute/`). Issues carry no level in Bugsink: they show as `error`.
An issue's first release is the first of its `events_at` (the releases its events came with, in the
order Bugsink first saw each; "" for events without one); Sentry's `firstRelease:V` is matched
against it here, since Bugsink's API has no such filter.

A Bugsink that does not answer is an error, except while the one who starts it says it is starting:
the demo writes a marker (`starting_marker(url)`: its pid, then what it is doing) from before its
port answers until its project exists, and removes it then or when the start fails. While the marker
is there and its process alive, a refused connection or an error answer raises BugsinkStarting (the
source reports "starting", not an error); a marker whose process is gone counts for nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from opsconsole.backends.http_read import BodyTooLarge, arequest, detail, same_origin
from opsconsole.backends.sentry import (
    ExceptionValue,
    Frame,
    IssuePage,
    SentryEvent,
    SentryIssue,
)
from opsconsole.errors import OpsError, StartingError, UnreachableError
from opsconsole.paths import data_dir
from opsconsole.profiles import BugsinkConfig
from opsconsole.secrets import Secret, redact

MAX_PAGES = 4


class BugsinkError(OpsError):
    pass


class BugsinkStarting(BugsinkError, StartingError):
    """Bugsink is starting, as its starter's marker says: no answer yet, and no error either."""


def starting_marker(url: str) -> Path:
    """Where the starter of the Bugsink at `url` says it is starting (one file per host and port)."""
    parts = urlsplit(url)
    host = (parts.hostname or "unknown").replace(":", "_")
    return data_dir() / "starting" / f"bugsink-{host}-{parts.port or 80}"


def starting_detail(url: str) -> str | None:
    """What the starter of the Bugsink at `url` is doing, or None when nothing (alive) is starting it."""
    try:
        pid_line, _, detail = starting_marker(url).read_text().partition("\n")
        os.kill(int(pid_line), 0)  # signal 0: only asks whether the process is there
    except (OSError, ValueError):
        return None  # no marker, a bad one, or its process is gone (PermissionError: not ours)
    return detail.strip() or "starting Bugsink…"


def parse_issue(raw: dict[str, Any], base: str) -> SentryIssue:
    kind = str(raw.get("calculated_type") or "")
    value = str(raw.get("calculated_value") or "")
    releases = raw.get("events_at") or []
    resolved = bool(raw.get("is_resolved"))
    return SentryIssue(
        id=str(raw.get("id", "")),
        short_id=str(raw.get("friendly_id") or raw.get("id") or ""),
        title=f"{kind}: {value}" if kind and value else (kind or value or "(no title)"),
        culprit=str(raw.get("transaction") or ""),
        level="error",
        count=int(raw.get("digested_event_count") or 0),
        users=0,
        first_seen=raw.get("first_seen"),
        last_seen=raw.get("last_seen"),
        permalink=f"{base}/issues/issue/{raw.get('id')}/event/last/",
        status="resolved" if resolved else ("ignored" if raw.get("is_muted") else "unresolved"),
        substatus=None,
        first_release=str(releases[0]) if isinstance(releases, list) and releases else None,
    )


def parse_event(raw: dict[str, Any]) -> SentryEvent:
    """A Bugsink event: `data` is the raw Sentry payload the SDK sent."""
    data = raw.get("data") or {}
    exceptions = []
    values = (data.get("exception") or {}).get("values") or [] if isinstance(data, dict) else []
    for value in values:
        frames = []
        for frame in (value.get("stacktrace") or {}).get("frames") or []:
            line = frame.get("lineno")
            frames.append(
                Frame(
                    filename=str(
                        frame.get("filename") or frame.get("abs_path") or frame.get("module") or "?"
                    ),
                    function=str(frame.get("function") or "?"),
                    line=line if isinstance(line, int) else None,
                    in_app=bool(frame.get("in_app")),
                    context_line=frame.get("context_line"),
                )
            )
        exceptions.append(
            ExceptionValue(
                type=str(value.get("type") or "?"), value=str(value.get("value") or ""), frames=tuple(frames)
            )
        )
    title = f"{exceptions[-1].type}: {exceptions[-1].value}" if exceptions else str(data.get("message") or "")
    tags = data.get("tags") if isinstance(data, dict) else None
    return SentryEvent(
        id=str(raw.get("id") or raw.get("event_id") or ""),
        title=title,
        date=raw.get("timestamp") or raw.get("ingested_at"),
        exceptions=tuple(exceptions),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )


class BugsinkClient:
    """The subset of SentryClient's interface the console uses: issues, latest_event, update."""

    def __init__(
        self,
        config: BugsinkConfig,
        token: Secret,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._token = token
        self._transport = transport
        self.base = config.url.rstrip("/")
        self.api = f"{self.base}/api/canonical/0"

    @property
    def label(self) -> str:
        return f"bugsink project {self.config.project}"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self._token.reveal()}", "Accept": "application/json"},
            timeout=httpx.Timeout(self.timeout),
            transport=self._transport,
            follow_redirects=False,
        )

    def _starting(self) -> None:
        """Raise BugsinkStarting while the starter's marker says Bugsink is starting."""
        detail = starting_detail(self.base)
        if detail is not None:
            raise BugsinkStarting(redact(f"{self.label}: {detail}"), "Bugsink starting")

    async def _request(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return await self._answer(client, method, url, **kwargs)
        except (BugsinkError, UnreachableError):
            self._starting()  # refused, or the demo's placeholder (503) or a project not made yet
            raise

    async def _answer(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await arequest(client, method, url, seconds=self.timeout, **kwargs)
        except BodyTooLarge as exc:
            raise BugsinkError(
                redact(f"{self.label}: {exc} (is bugsink.url right? another service may be answering)"),
                "Bugsink error",
            ) from None
        except httpx.TimeoutException:
            raise UnreachableError(
                f"{self.label}: timed out after {self.timeout:g} s", "Bugsink unreachable"
            ) from None
        except httpx.HTTPError as exc:
            raise UnreachableError(
                redact(f"{self.label}: cannot connect to {self.base} ({exc or type(exc).__name__})"),
                "Bugsink unreachable",
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            said = detail(response, ("detail",))
            hint = {
                401: "the token is invalid; create one with `bugsink-manage create_auth_token`",
                403: "the token lacks a capability (issues:read, events:read, issues:triage)",
                404: "no such project or issue; check bugsink.project",
            }.get(response.status_code, "")
            text = f"{self.label}: HTTP {response.status_code}: {said}"
            raise BugsinkError(redact(text + (f" ({hint})" if hint else "")), "Bugsink error")
        if body is None:
            raise BugsinkError(
                f"{self.label}: HTTP {response.status_code} with a body that is not JSON", "Bugsink error"
            )
        return body

    async def issues(self, limit: int = 100, query: str = "is:unresolved") -> IssuePage:
        """Open issues, newest first. `firstRelease:V` keeps the issues whose first release is V."""
        terms = query.split()
        first = next((t.split(":", 1)[1] for t in terms if t.startswith("firstRelease:")), None)
        state = "open" if "is:unresolved" in terms else "all"
        params = {"project": str(self.config.project), "state": state, "sort": "last_seen", "order": "desc"}
        out: list[SentryIssue] = []
        notes: list[str] = []
        async with self._client() as client:
            url: str | None = f"{self.api}/issues/"
            request_params: dict[str, str] | None = params
            for _ in range(MAX_PAGES):
                assert url is not None
                body = await self._request(client, "GET", url, params=request_params)
                results = body.get("results") if isinstance(body, dict) else None
                if not isinstance(results, list):
                    raise BugsinkError(f"{self.label}: unexpected answer (no results list)", "Bugsink error")
                page = [parse_issue(r, self.base) for r in results if isinstance(r, dict)]
                # new in a release: the matches fill `limit`, so older pages are read for them too
                out += [i for i in page if first is None or i.first_release == first]
                nxt = body.get("next")
                url = str(httpx.URL(self.api).join(nxt)) if isinstance(nxt, str) else None
                request_params = None
                if not url or len(out) >= limit:
                    break
                if not same_origin(url, self.base):
                    notes.append(f"{self.label}: the next page is on another origin; not followed")
                    break
        return IssuePage(out[:limit], notes)

    async def latest_event(self, issue: str) -> SentryEvent:
        async with self._client() as client:
            listing = await self._request(
                client, "GET", f"{self.api}/events/", params={"issue": issue, "order": "desc"}
            )
            results = listing.get("results") if isinstance(listing, dict) else None
            if not results:
                raise BugsinkError(f"{self.label}: issue {issue} has no stored event", "No event")
            event_id = quote(str(results[0].get("id")), safe="")
            return parse_event(await self._request(client, "GET", f"{self.api}/events/{event_id}/"))

    async def update(self, issue: str, body: dict[str, Any]) -> SentryIssue:
        """Sentry's update bodies mapped: resolved -> resolve/, ignored -> mute/."""
        action = {"resolved": "resolve", "ignored": "mute"}.get(str(body.get("status")))
        if action is None:
            raise BugsinkError(f"{self.label}: cannot set status {body.get('status')!r}", "Bugsink")
        async with self._client() as client:
            raw = await self._request(client, "POST", f"{self.api}/issues/{quote(issue, safe='')}/{action}/")
        return parse_issue(raw, self.base)
