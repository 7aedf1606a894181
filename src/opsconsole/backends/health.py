"""Health checks: each URL's status code and latency, or a clear reason (DNS, refused, TLS, timeout)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx


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


async def check_one(client: httpx.AsyncClient, url: str, seconds: float) -> HealthResult:
    started = time.perf_counter()
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return HealthResult(url, False, None, None, _reason(exc, seconds))
    latency = round((time.perf_counter() - started) * 1000, 1)
    ok = 200 <= response.status_code < 400
    error = None if ok else f"HTTP {response.status_code}"
    return HealthResult(url, ok, response.status_code, latency, error)


async def check_all(urls: list[str] | tuple[str, ...], seconds: float) -> list[HealthResult]:
    if not urls:
        return []
    async with httpx.AsyncClient(timeout=httpx.Timeout(seconds), follow_redirects=False) as client:
        return list(await asyncio.gather(*(check_one(client, url, seconds) for url in urls)))
