"""The demo's web app: a page, /healthz, a page cache (Redis when REDIS_PORT is set) with /purge,
/boom (raises, answers 500) and /metrics (prometheus_client, when installed: requests by status and
a latency histogram)."""

import json
import os
import socket
import sqlite3
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = int(sys.argv[1])
REDIS_PORT = os.environ.get("REDIS_PORT")
VERSION = (HERE / "VERSION").read_text().strip() if (HERE / "VERSION").exists() else "dev"
# the commit this release was made from: the deploy writes it to REVISION
REVISION = (HERE / "REVISION").read_text().strip() if (HERE / "REVISION").exists() else ""
# the release its errors report, as the console names a deploy (bugsink.release_format's default,
# "{project}@{sha12}"), so that the Errors pane's `n` finds the issues new in the running release
RELEASE = f"demo-shop@{REVISION[:12]}" if REVISION else f"demo-shop@{VERSION}"
DB = HERE / "data" / "app.sqlite3"
_memory_cache: dict[str, str] = {}

try:
    from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

    REQUESTS = Counter("http_requests", "Requests by status", ["status"])
    LATENCY = Histogram("http_request_duration_seconds", "Request latency", buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1))
except ImportError:  # the page still works; /metrics answers 404
    REQUESTS = LATENCY = None


def redis(*args: str) -> str | None:
    """A tiny RESP client: enough for GET, SET and FLUSHDB."""
    with socket.create_connection(("127.0.0.1", int(REDIS_PORT)), timeout=2) as sock:
        sock.sendall(
            f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
        )
        data = sock.recv(65536)
    if data.startswith(b"$-1"):
        return None
    if data.startswith(b"$"):
        return data.split(b"\r\n", 2)[1].decode()
    return data.decode().strip()


def cache_get(key: str) -> str | None:
    return redis("GET", key) if REDIS_PORT else _memory_cache.get(key)


def cache_set(key: str, value: str) -> None:
    if REDIS_PORT:
        redis("SET", key, value)
    else:
        _memory_cache[key] = value


def render() -> str:
    visits = 0
    if DB.exists():
        with sqlite3.connect(DB) as db:
            db.execute("INSERT INTO visits (at) VALUES (?)", (time.time(),))
            visits = db.execute("SELECT COUNT(*) FROM visits").fetchone()[0]
    return f"<html><head><link rel=stylesheet href=/static/app.css></head><body><h1>Demo shop {VERSION}</h1><p>{visits} visits</p></body></html>"


_sentry = {"ready": False}


def report(exc: BaseException) -> None:
    """Send the exception to the demo's Bugsink with sentry_sdk, once Bugsink has given a DSN."""
    dsn_file = os.environ.get("BUGSINK_DSN_FILE")
    if not dsn_file:
        return
    try:
        import sentry_sdk
    except ImportError:
        return
    if not _sentry["ready"]:
        if not os.path.exists(dsn_file):
            return  # Bugsink is still starting
        sentry_sdk.init(dsn=Path(dsn_file).read_text().strip(), release=RELEASE, default_integrations=False)
        _sentry["ready"] = True
    sentry_sdk.capture_exception(exc)


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: str, kind: str = "text/html") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/metrics":
            if REQUESTS is None:
                self._send(404, "prometheus_client is not installed\n", "text/plain")
            else:
                self._send(200, generate_latest().decode(), CONTENT_TYPE_LATEST)
            return
        started = time.perf_counter()
        status = 200
        try:
            self._get()
        except Exception as exc:  # noqa: BLE001 - a 500, as a web framework would answer
            status = 500
            report(exc)
            self._send(500, f"internal error: {type(exc).__name__}\n", "text/plain")
        finally:
            if REQUESTS is not None and LATENCY is not None:
                REQUESTS.labels(status=str(status)).inc()
                LATENCY.observe(time.perf_counter() - started)

    def _get(self) -> None:
        if self.path == "/boom":
            raise ZeroDivisionError("division by zero (the demo's /boom route)")
        if self.path == "/healthz":
            self._send(200, json.dumps({"ok": True, "version": VERSION}), "application/json")
            return
        cached = cache_get(f"page:{self.path}")
        if cached is None:
            cached = render()
            cache_set(f"page:{self.path}", cached)
        self._send(200, cached)

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/purge":
            _memory_cache.clear()
            self._send(200, "purged\n", "text/plain")
        else:
            self._send(404, "not found\n", "text/plain")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"{self.address_string()} {format % args}", flush=True)


if __name__ == "__main__":
    print(f"demo shop {VERSION} listening on 127.0.0.1:{PORT}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
