"""A local HTTP server shaped like GitHub's REST API for check runs and commit statuses, held to
GitHub's own OpenAPI description (`tests/data/github-openapi-subset.json`, see tests/data/README.md).

Every body it sends is validated against the operation's 200 schema and every query parameter
against the operation's declared ones; problems land in `violations` (the fixture fails the test).
It pages with `Link` headers, answers `If-None-Match` with 304, and counts the requests that would
cost rate limit (`charged`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jsonschema

from sentry_server import minimal, to_json_schema

SPEC = json.loads((Path(__file__).resolve().parent / "data" / "github-openapi-subset.json").read_text())
CHECK_RUNS = "/repos/{owner}/{repo}/commits/{ref}/check-runs"
STATUS = "/repos/{owner}/{repo}/commits/{ref}/status"


def _schema(path: str) -> dict[str, Any]:
    return to_json_schema(
        SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    )


@dataclass
class Run:
    name: str
    status: str = "completed"  # queued, in_progress, completed
    conclusion: str | None = "success"


class GitHubServer:
    def __init__(self, owner: str = "acme", repo: str = "shop", token: str = "ghp_test_token_123") -> None:
        self.owner, self.repo, self.token = owner, repo, token
        self.runs: dict[str, list[Run]] = {}  # by sha or branch name
        self.statuses: dict[str, list[tuple[str, str]]] = {}  # (context, state), newest first
        self.claimed_total: dict[str, int] = {}  # a total_count larger than the runs served (by ref)
        self.next_base: str | None = None  # where `next` links point (default: this server)
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.charged = 0
        self.not_modified = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> GitHubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def set_runs(self, ref: str, *runs: Run) -> None:
        with self.lock:
            self.runs[ref] = list(runs)

    # ------------------------------------------------------------------ handling

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.handle(self)

        return Handler

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append({"path": parts.path, "query": query, "headers": dict(handler.headers)})
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(handler, 401, {"message": "Bad credentials"}, {})
            return
        if handler.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            self.violations.append("request without X-GitHub-Api-Version: 2022-11-28")
        base = rf"/repos/{re.escape(self.owner)}/{re.escape(self.repo)}/commits/([^/]+)"
        headers: dict[str, str]
        if m := re.fullmatch(base + "/check-runs", parts.path):
            op, body = CHECK_RUNS, self._check_runs(m.group(1), query)
        elif m := re.fullmatch(base + "/status", parts.path):
            op, body = STATUS, self._status(m.group(1))
        else:
            self._send(handler, 404, {"message": "Not Found"}, {})
            return
        allowed = {p["name"] for p in SPEC["paths"][op]["get"]["parameters"] if p["in"] == "query"}
        for key in query:
            if key not in allowed:
                self.violations.append(f"GET {op}: undeclared query parameter {key!r}")
        for error in list(jsonschema.Draft7Validator(_schema(op)).iter_errors(body))[:5]:
            self.violations.append(
                f"response of {op} violates the schema at {list(error.path)}: {error.message[:200]}"
            )
        body, headers = self._page(op, body, query, parts.path)
        etag = '"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
        headers["ETag"] = etag
        if handler.headers.get("If-None-Match") == etag:
            with self.lock:
                self.not_modified += 1
            self._send(handler, 304, None, {"ETag": etag})
            return
        with self.lock:
            self.charged += 1
        self._send(handler, 200, body, headers)

    def _page(
        self, op: str, body: dict[str, Any], query: dict[str, list[str]], path: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        if op != CHECK_RUNS:
            return body, {}
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        items = body["check_runs"]
        body = {**body, "check_runs": items[(page - 1) * per_page : page * per_page]}
        headers: dict[str, str] = {}
        if page * per_page < len(items):
            keep = {k: v for k, v in query.items() if k != "page"}
            nxt = f"{self.next_base or self.url}{path}?{urlencode({**keep, 'page': page + 1}, doseq=True)}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return body, headers

    def _check_runs(self, ref: str, query: dict[str, list[str]]) -> dict[str, Any]:
        schema = _schema(CHECK_RUNS)
        item_schema = schema["properties"]["check_runs"]["items"]
        runs = []
        with self.lock:
            wanted = list(self.runs.get(ref, []))
        for index, run in enumerate(wanted, 1):
            item = minimal(item_schema)
            item.update(
                id=index,
                name=run.name,
                head_sha=ref,
                status=run.status,
                conclusion=run.conclusion if run.status == "completed" else None,
                html_url=f"https://github.com/{self.owner}/{self.repo}/runs/{index}",
                started_at="2026-11-26T10:00:00Z",
                completed_at="2026-11-26T10:05:00Z" if run.status == "completed" else None,
            )
            runs.append(item)
        return {"total_count": self.claimed_total.get(ref, len(runs)), "check_runs": runs}

    def _status(self, ref: str) -> dict[str, Any]:
        schema = _schema(STATUS)
        body = minimal(schema)
        with self.lock:
            statuses = list(self.statuses.get(ref, []))
        items = []
        for index, (context, state) in enumerate(statuses, 1):
            item = minimal(schema["properties"]["statuses"]["items"])
            item.update(id=index, context=context, state=state, target_url=f"https://ci.example/{index}")
            items.append(item)
        states = [s for _, s in statuses]
        combined = (
            "failure"
            if any(s in ("failure", "error") for s in states)
            else "pending"
            if not states or "pending" in states
            else "success"
        )
        body.update(state=combined, statuses=items, total_count=len(items), sha=ref)
        return body
