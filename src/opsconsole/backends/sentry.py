"""Sentry Web API (async httpx): unresolved issues, the latest event, resolve and ignore.

Issues come from the organization issues endpoint (the per-project one is deprecated), paged by the
`Link` header. On 429 the client backs off (Retry-After / X-Sentry-Rate-Limit-Reset) and says so.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from opsconsole.backends.http_read import BodyTooLarge, arequest, detail, origin, same_origin, scrub
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import SentryConfig
from opsconsole.secrets import Secret, redact

MAX_PAGES = 5
MAX_RETRIES = 3
MAX_BACKOFF = 10.0


class SentryError(OpsError):
    pass


@dataclass(frozen=True)
class SentryIssue:
    id: str
    short_id: str
    title: str
    culprit: str
    level: str
    count: int
    users: int
    first_seen: str | None
    last_seen: str | None
    permalink: str
    status: str
    substatus: str | None = None  # "regressed", "new", "ongoing", "escalating"...
    first_release: str | None = None  # when Sentry returns it

    @property
    def regressed(self) -> bool:
        return self.substatus == "regressed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Frame:
    filename: str
    function: str
    line: int | None
    in_app: bool
    context_line: str | None


@dataclass(frozen=True)
class ExceptionValue:
    type: str
    value: str
    frames: tuple[Frame, ...]


@dataclass(frozen=True)
class SentryEvent:
    id: str
    title: str
    date: str | None
    exceptions: tuple[ExceptionValue, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class IssuePage:
    issues: list[SentryIssue]
    notes: list[str]  # e.g. rate-limit back-offs, truncation


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_issue(raw: dict[str, Any]) -> SentryIssue:
    return SentryIssue(
        id=str(raw.get("id", "")),
        short_id=str(raw.get("shortId", "")),
        title=str(raw.get("title", "")),
        culprit=str(raw.get("culprit") or ""),
        level=str(raw.get("level", "")),
        count=_int(raw.get("count")),
        users=_int(raw.get("userCount")),
        first_seen=raw.get("firstSeen"),
        last_seen=raw.get("lastSeen"),
        permalink=str(raw.get("permalink", "")),
        status=str(raw.get("status", "")),
        substatus=raw.get("substatus") if isinstance(raw.get("substatus"), str) else None,
        first_release=_first_release(raw.get("firstRelease")),
    )


def _first_release(value: Any) -> str | None:
    if isinstance(value, dict):
        version = value.get("version") or value.get("shortVersion")
        return str(version) if version else None
    return str(value) if isinstance(value, str) and value else None


def parse_event(raw: dict[str, Any]) -> SentryEvent:
    exceptions: list[ExceptionValue] = []
    for entry in raw.get("entries") or []:
        if entry.get("type") not in ("exception", "threads"):
            continue
        data = entry.get("data") or {}
        for value in data.get("values") or []:
            stack = value.get("stacktrace") or {}
            frames = []
            for frame in stack.get("frames") or []:
                context = None
                line = frame.get("lineNo")
                for number, text in frame.get("context") or []:
                    if number == line:
                        context = text
                frames.append(
                    Frame(
                        filename=str(
                            frame.get("filename") or frame.get("absPath") or frame.get("module") or "?"
                        ),
                        function=str(frame.get("function") or "?"),
                        line=line if isinstance(line, int) else None,
                        in_app=bool(frame.get("inApp")),
                        context_line=context,
                    )
                )
            if entry.get("type") == "threads" and not frames:
                continue
            exceptions.append(
                ExceptionValue(
                    type=str(value.get("type") or entry.get("type")),
                    value=str(value.get("value") or ""),
                    frames=tuple(frames),
                )
            )
    tags = {str(t.get("key")): str(t.get("value")) for t in raw.get("tags") or [] if isinstance(t, dict)}
    return SentryEvent(
        id=str(raw.get("eventID") or raw.get("id") or ""),
        title=str(raw.get("title", "")),
        date=raw.get("dateCreated"),
        exceptions=tuple(exceptions),
        tags=tags,
    )


class SentryClient:
    def __init__(
        self,
        config: SentryConfig,
        token: Secret,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._token = token
        self._transport = transport
        base = config.url.rstrip("/")
        if base.endswith("/api/0"):
            base = base[: -len("/api/0")]
        self.base = base
        self.org = quote(config.organization, safe="")

    @property
    def label(self) -> str:
        return f"sentry {self.config.organization}/{self.config.project}"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self._token.reveal()}", "Accept": "application/json"},
            timeout=httpx.Timeout(self.timeout),
            transport=self._transport,
            follow_redirects=False,
        )

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"{self.label}: timed out after {self.timeout:g} s"
        if isinstance(exc, httpx.ConnectError):
            text = str(exc)
            if (
                "Name or service not known" in text
                or "nodename nor servname" in text
                or "getaddrinfo" in text
            ):
                return f"{self.label}: cannot resolve {httpx.URL(self.base).host}"
            if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
                return f"{self.label}: TLS error: {text}"
            return f"{self.label}: cannot connect to {self.base} ({text or 'connection refused'})"
        return f"{self.label}: {type(exc).__name__}: {exc}"

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        notes: list[str],
        **kwargs: Any,
    ) -> httpx.Response:
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = await arequest(client, method, url, seconds=self.timeout, **kwargs)
            except BodyTooLarge as exc:
                raise SentryError(
                    redact(f"{self.label}: {exc} (is sentry.url right? another service may be answering)"),
                    "Sentry error",
                ) from None
            except httpx.HTTPError as exc:
                raise UnreachableError(redact(self._describe(exc)), "Sentry unreachable") from None
            if response.status_code == 429 and attempt < MAX_RETRIES:
                wait = self._backoff(response, attempt)
                notes.append(f"{self.label}: rate limited (429); backed off {wait:.1f} s")
                await asyncio.sleep(wait)
                continue
            if response.status_code == 429:
                wait = self._backoff(response, attempt)
                raise SentryError(
                    f"{self.label}: rate limited (429) after {MAX_RETRIES} retries; try again in {wait:.0f} s",
                    "Sentry rate limit",
                )
            if response.status_code >= 400:
                raise SentryError(self._http_error(response), "Sentry error")
            return response
        raise AssertionError("unreachable")

    def _backoff(self, response: httpx.Response, attempt: int) -> float:
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return min(MAX_BACKOFF, max(0.1, float(retry_after)))
            except ValueError:
                pass
        reset = response.headers.get("X-Sentry-Rate-Limit-Reset")
        if reset:
            try:
                return float(min(MAX_BACKOFF, max(0.1, float(reset) - time.time())))
            except ValueError:
                pass
        return float(min(MAX_BACKOFF, 0.5 * 2.0**attempt))

    def _http_error(self, response: httpx.Response) -> str:
        said = detail(response, ("detail",))
        hint = {
            401: "the token is invalid or expired; check the token secret",
            403: "the token lacks a scope (event:read to list, event:write to resolve or ignore, project:releases to create releases)",
            404: "no such organization, project or issue; check sentry.organization and sentry.project",
        }.get(response.status_code, "")
        text = f"{self.label}: HTTP {response.status_code}"
        if said:
            text += f": {said}"
        if hint:
            text += f" ({hint})"
        return redact(text)

    @staticmethod
    def _json(response: httpx.Response, label: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SentryError(
                f"{label}: the server answered HTTP {response.status_code} with a body that is not JSON "
                f"({scrub(response.headers.get('content-type', 'no content type'), 80)})",
                "Sentry error",
            ) from None

    async def issues(self, limit: int = 100, query: str = "is:unresolved") -> IssuePage:
        """Issues matching a Sentry search (`is:unresolved`, `firstRelease:VERSION`, `is:regressed`...)."""
        notes: list[str] = []
        params: list[tuple[str, str]] = [
            ("query", query),
            ("project", self.config.project),
            ("limit", str(min(100, limit))),
            ("sort", "date"),
            ("statsPeriod", "14d"),
        ]
        if self.config.environment:
            params.append(("environment", self.config.environment))
        out: list[SentryIssue] = []
        async with self._client() as client:
            url: str = f"/api/0/organizations/{self.org}/issues/"
            request_params: list[tuple[str, str]] | None = params
            for page in range(MAX_PAGES):
                response = await self._request(client, "GET", url, notes, params=request_params)
                body = self._json(response, self.label)
                if not isinstance(body, list):
                    raise SentryError(
                        f"{self.label}: expected a list of issues, got {type(body).__name__}", "Sentry error"
                    )
                out.extend(parse_issue(item) for item in body if isinstance(item, dict))
                nxt = response.links.get("next")
                if not nxt or nxt.get("results") != "true" or len(out) >= limit:
                    break
                if page == MAX_PAGES - 1:
                    notes.append(f"{self.label}: showing the first {len(out)} issues")
                if not same_origin(nxt["url"], self.base):
                    # the token is sent only to the configured Sentry: a Link elsewhere is not followed
                    notes.append(
                        f"{self.label}: showing the first {len(out)} issues; the next page is on another "
                        f"origin ({origin(nxt['url'])}), not followed so the token stays with {origin(self.base)}"
                    )
                    break
                url, request_params = nxt["url"], None
        return IssuePage(out[:limit], notes)

    async def resolve_id(self, issue: str) -> str:
        """A numeric issue id from an id or a short id (`SHOP-1A`)."""
        if issue.isdigit():
            return issue
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", issue):
            raise SentryError(f"'{issue}' is not a Sentry issue id or short id", "Bad issue id")
        async with self._client() as client:
            response = await self._request(
                client, "GET", f"/api/0/organizations/{self.org}/shortids/{quote(issue, safe='')}/", []
            )
        body = self._json(response, self.label)
        return str(body.get("groupId"))

    async def latest_event(self, issue: str) -> SentryEvent:
        issue_id = await self.resolve_id(issue)
        params = {"environment": self.config.environment} if self.config.environment else None
        async with self._client() as client:
            response = await self._request(
                client,
                "GET",
                f"/api/0/organizations/{self.org}/issues/{issue_id}/events/latest/",
                [],
                params=params,
            )
        return parse_event(self._json(response, self.label))

    async def update(self, issue: str, body: dict[str, Any]) -> SentryIssue:
        issue_id = await self.resolve_id(issue)
        async with self._client() as client:
            response = await self._request(
                client, "PUT", f"/api/0/organizations/{self.org}/issues/{issue_id}/", [], json=body
            )
        return parse_issue(self._json(response, self.label))

    async def resolve(self, issue: str) -> SentryIssue:
        return await self.update(issue, self.resolve_body())

    async def ignore(self, issue: str) -> SentryIssue:
        return await self.update(issue, self.ignore_body())

    async def create_release(
        self, version: str, commits: list[list[str]], ref: str, repository: str, released: str
    ) -> str:
        """Create the release with its commits (201), or accept that it exists (208). Returns
        "created" or "existed"."""
        body = {
            "version": version,
            "projects": [self.config.project],
            "ref": ref[:200],
            "dateReleased": released,
            "commits": [
                {
                    "id": sha,
                    "repository": repository[:64],
                    "message": subject,
                    "timestamp": when,
                }
                for sha, when, subject, *_ in commits
            ],
        }
        async with self._client() as client:
            response = await self._request(
                client, "POST", f"/api/0/organizations/{self.org}/releases/", [], json=body
            )
        return "existed" if response.status_code == 208 else "created"

    async def create_deploy(self, version: str, environment: str, started: str, finished: str) -> None:
        body = {
            "environment": environment[:64],
            "dateStarted": started,
            "dateFinished": finished,
            "projects": [self.config.project],
        }
        async with self._client() as client:
            await self._request(
                client,
                "POST",
                f"/api/0/organizations/{self.org}/releases/{quote(version, safe='')}/deploys/",
                [],
                json=body,
            )

    @staticmethod
    def resolve_body() -> dict[str, Any]:
        return {"status": "resolved"}

    @staticmethod
    def ignore_body() -> dict[str, Any]:
        return {"status": "ignored", "substatus": "archived_forever"}
