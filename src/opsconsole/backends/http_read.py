"""Bounded HTTP reads for the HTTP backends, and the scrubbing of every message built from a response.

A body is read in chunks up to `MAX_BODY` bytes (decoded, so a gzip bomb stops at the cap too), within
one overall deadline for the whole request, headers included: httpx's timeouts count per read, so a
server that keeps sending a byte now and then would otherwise never time out. `arequest` holds the
deadline with `asyncio.timeout`; blocking callers use `BoundedClient`, which runs the same coroutine
on its own event-loop thread (a blocking socket read cannot be interrupted from outside). Both return
a plain `httpx.Response` whose body is already read.

A deadline overrun raises `httpx.ReadTimeout` (callers already say "timed out after N s"); a body
over the cap raises `BodyTooLarge`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opsconsole.sanitize import clean
from opsconsole.secrets import redact

if TYPE_CHECKING:  # httpx loads with the first client (the CI gate's module is imported at start-up)
    import httpx

MAX_BODY = 8 * 1024 * 1024  # bytes: a page of 100 issues or check runs, or one large event, fits
_DROPPED = {"content-encoding", "content-length", "transfer-encoding"}


class BodyTooLarge(Exception):
    """The answer's body passed the byte cap; the message says by how much and what to do."""


def _response(response: httpx.Response, chunks: list[bytes]) -> httpx.Response:
    import httpx

    # the body is already decoded: the copy drops the encoding headers so it is not decoded twice
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROPPED]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks), request=response.request
    )


def _too_large(cap: int) -> BodyTooLarge:
    return BodyTooLarge(f"the answer is larger than {cap // (1024 * 1024) or 1} MiB and was not read further")


async def arequest(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    seconds: float,
    cap: int = MAX_BODY,
    body: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """One request, headers and body (up to `cap` bytes) within `seconds` overall. With body=False
    only the status and headers are read (a health check needs no body) and the body is dropped."""
    import httpx

    try:
        async with asyncio.timeout(seconds):
            async with client.stream(method, url, **kwargs) as response:
                chunks: list[bytes] = []
                size = 0
                if body:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise _too_large(cap)
                        chunks.append(chunk)
                return _response(response, chunks)
    except TimeoutError:
        raise httpx.ReadTimeout(f"no complete answer within {seconds:g} s") from None


class BoundedClient:
    """A blocking HTTP client (thread-safe) whose every request holds `arequest`'s overall deadline
    and byte cap: requests run on a private event-loop thread, started with the first request, on
    one pooled `httpx.AsyncClient`; the calling thread blocks for the answer."""

    def __init__(
        self, headers: dict[str, str], timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = (headers, timeout, transport)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
        import httpx

        with self._lock:
            if self._loop is None or self._client is None:
                headers, timeout, transport = self._settings
                self._client = httpx.AsyncClient(
                    headers=headers,
                    timeout=httpx.Timeout(timeout),
                    transport=transport,
                    follow_redirects=False,
                )
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
                self._thread.start()
            return self._loop, self._client

    def request(
        self, method: str, url: str, *, seconds: float, cap: int = MAX_BODY, **kwargs: Any
    ) -> httpx.Response:
        import httpx

        loop, client = self._started()
        future = asyncio.run_coroutine_threadsafe(
            arequest(client, method, url, seconds=seconds, cap=cap, **kwargs), loop
        )
        try:
            return future.result(seconds + 1.0)  # arequest holds the deadline; this is a guard only
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout(f"no complete answer within {seconds:g} s") from None

    def close(self) -> None:
        with self._lock:
            loop, client, thread = self._loop, self._client, self._thread
            self._loop = self._client = self._thread = None
        if loop is None or client is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(5)
        except Exception:  # noqa: BLE001 - closing: a connection that fails to close is dropped anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()


# Credential-shaped text a proxy or server may echo back (`Authorization: Bearer X`, `Basic X`,
# `token=X`, `user:password@` in a URL). Known secret values are replaced first (redact); these
# patterns catch what this process never resolved itself.
_VALUE = r"[A-Za-z0-9._~+/=-]{4,}"
_CREDENTIAL_RE = re.compile(
    rf"(?i)\b(?:(bearer|basic|digest)\s+|(authorization|token|api[_-]?key|password|secret)(\s*[:=]\s*"
    rf"(?:(?:bearer|basic|digest|token)\s+)?)){_VALUE}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+@"
)


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)} ***"
    if match.group(2):
        return f"{match.group(2)}{match.group(3)}***"
    return "***@"


def scrub(text: str, max_len: int | None = None) -> str:
    """Text from a response (an error body, a header), safe to show and to log: known secrets and
    anything shaped like a credential replaced by `***`, control sequences neutralised."""
    return clean(_CREDENTIAL_RE.sub(_mask, redact(text)), max_len)


def detail(response: httpx.Response, keys: Iterable[str], limit: int = 200) -> str:
    """The server's own explanation from a JSON error body (the first of `keys` that is set), or
    the start of the text body; scrubbed."""
    try:
        body = response.json()
    except ValueError:
        return scrub(response.text[:limit], limit)
    if isinstance(body, dict):
        for key in keys:
            if body.get(key):
                return scrub(str(body[key]), limit)
    return ""


def origin(url: str) -> str:
    """scheme://host:port of a URL, default ports made explicit."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except Exception:  # noqa: BLE001 - an unparseable URL is no origin of ours
        return "?"
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{parsed.host}:{port}"


def same_origin(url: str, base: str) -> bool:
    """A Link URL is followed only on the configured origin (scheme, host and port); relative URLs
    resolve against it."""
    if url.startswith("/") and not url.startswith("//"):
        return True
    return origin(url) == origin(base)
