"""Health checks: each URL's status code and latency, or a clear reason (DNS, refused, TLS, timeout).

One rule for healthy, here and in the rolling deploy's `host_health`: the answer's own status is
2xx (redirects are not followed, so a 302 to a login page is not healthy), unless the profile gives
the URL its own `expect` list (`{ url = "...", expect = [200, 302] }`), which then is the rule for
that URL. Only the status line and headers are read, within one overall deadline per URL.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from opsconsole.backends.http_read import arequest, scrub


@dataclass(frozen=True)
class HealthResult:
    url: str
    ok: bool
    status: int | None
    latency_ms: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "DNS: cannot resolve the host name"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: certificate not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if isinstance(exc, httpx.ConnectError):
        lowered = text.lower()
        if (
            "name or service not known" in lowered
            or "name resolution" in lowered
            or "nodename" in lowered
            or "getaddrinfo" in lowered
        ):
            return "DNS: cannot resolve the host name"
        if "refused" in lowered:
            return "connection refused"
        if "ssl" in lowered or "certificate" in lowered:
            return f"TLS: {text}"
        return f"cannot connect: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def healthy(status: int, expect: tuple[int, ...] = ()) -> bool:
    """The one rule: a status in `expect` when the URL names statuses, else any 2xx."""
    return status in expect if expect else 200 <= status < 300


def expected(expect: tuple[int, ...] = ()) -> str:
    return " or ".join(str(s) for s in expect) if expect else "2xx"


async def check_one(client: httpx.AsyncClient, url: str, seconds: float) -> HealthResult:
    expect: tuple[int, ...] = getattr(url, "expect", ())  # a profile's HealthUrl carries its own list
    started = time.perf_counter()
    try:
        response = await arequest(client, "GET", url, seconds=seconds, body=False)
    except httpx.HTTPError as exc:
        return HealthResult(str(url), False, None, None, scrub(_reason(exc, seconds), 300))
    latency = round((time.perf_counter() - started) * 1000, 1)
    status = response.status_code
    ok = healthy(status, expect)
    error = None
    if not ok:
        where = response.headers.get("Location") if 300 <= status < 400 else None
        error = f"HTTP {status}"
        if where:
            error += f" to {scrub(where, 200)} (redirects are not followed; healthy is {expected(expect)})"
        elif expect:
            error += f" (expected {expected(expect)})"
    return HealthResult(str(url), ok, status, latency, error)


async def check_all(urls: list[str] | tuple[str, ...], seconds: float) -> list[HealthResult]:
    if not urls:
        return []
    async with httpx.AsyncClient(timeout=httpx.Timeout(seconds), follow_redirects=False) as client:
        return list(await asyncio.gather(*(check_one(client, url, seconds) for url in urls)))
