"""A local HTTP server shaped like GitLab's REST API for the statuses of a commit
(`GET /api/v4/projects/:id/repository/commits/:sha/statuses`), held to the fields GitLab documents
(`tests/data/gitlab-commit-statuses.schema.json`, see tests/data/README.md).

Every body it sends is validated against that schema and every query parameter against the
endpoint's documented ones (`per_page` at most 100); problems land in `violations` (the fixture
fails the test). It authenticates with `PRIVATE-TOKEN`, answers 401 as GitLab does, and pages
with GitLab's `x-*` headers; `omit_totals` leaves out `x-total` and `x-total-pages` as GitLab does
above 10,000 rows, keeping `x-next-page`.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jsonschema

SCHEMA = json.loads(
    (Path(__file__).resolve().parent / "data" / "gitlab-commit-statuses.schema.json").read_text()
)
# doc/api/commits.md "List the statuses of a commit", pagination's page/per_page, and the
# pipeline_id/order_by/sort of GitLab 17.8
QUERY = {"ref", "stage", "name", "all", "page", "per_page", "pipeline_id", "order_by", "sort"}
TOKEN = "glpat-test-token-1234567890"


@dataclass
class Job:
    name: str
    status: str = "success"
    allow_failure: bool = False


class GitLabServer:
    def __init__(self, project: str = "acme/shop", project_id: int = 42, token: str = TOKEN) -> None:
        self.project, self.project_id, self.token = project, project_id, token
        self.jobs: dict[str, list[Job]] = {}  # by sha or branch name
        self.shas: dict[str, str] = {}  # branch name -> the sha its statuses carry
        self.omit_totals = False
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> GitLabServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def set_jobs(self, ref: str, *jobs: Job) -> None:
        with self.lock:
            self.jobs[ref] = list(jobs)

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()
            self.requests.clear()
            self.omit_totals = False

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
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        # the raw path: the project's '/' must arrive URL-encoded as %2F
        raw_path, _, raw_query = handler.path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        with self.lock:
            self.requests.append({"path": raw_path, "query": query, "headers": dict(handler.headers)})
        if handler.headers.get("PRIVATE-TOKEN") != self.token:
            self._send(handler, 401, {"message": "401 Unauthorized"}, {})
            return
        ids = {quote(self.project, safe=""), str(self.project_id)}
        m = re.fullmatch(
            r"/api/v4/projects/([^/]+)/repository/commits/([^/]+)/statuses", urlsplit(raw_path).path
        )
        if not m or m.group(1) not in ids:
            self._send(handler, 404, {"message": "404 Project Not Found"}, {})
            return
        for key in query:
            if key not in QUERY:
                self.violations.append(f"GET statuses: undeclared query parameter {key!r}")
        per_page = int(query.get("per_page", ["20"])[0])
        if not 1 <= per_page <= 100:
            self.violations.append(f"GET statuses: per_page={per_page} (GitLab caps it at 100)")
        page = int(query.get("page", ["1"])[0])
        items = self._statuses(m.group(2))
        for error in list(jsonschema.Draft7Validator(SCHEMA).iter_errors(items))[:5]:
            self.violations.append(
                f"response violates the schema at {list(error.path)}: {error.message[:200]}"
            )
        pages = max(1, -(-len(items) // per_page))
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-next-page": str(page + 1) if page < pages else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        if not self.omit_totals:
            headers.update({"x-total": str(len(items)), "x-total-pages": str(pages)})
        self._send(handler, 200, items[(page - 1) * per_page : page * per_page], headers)

    def _statuses(self, ref: str) -> list[dict[str, Any]]:
        with self.lock:
            wanted = list(self.jobs.get(ref, []))
        sha = self.shas.get(ref, ref if re.fullmatch(r"[0-9a-f]{40}", ref) else "0" * 40)
        out = []
        for index, job in enumerate(wanted, 1):
            started = job.status not in ("created", "pending", "manual", "scheduled", "waiting_for_resource")
            finished = job.status in ("success", "failed", "canceled", "skipped")
            out.append(
                {
                    "id": 1000 + index,
                    "sha": sha,
                    "ref": "main",
                    "status": job.status,
                    "name": job.name,
                    "target_url": f"https://gitlab.example.com/{self.project}/-/jobs/{1000 + index}",
                    "description": None,
                    "created_at": "2026-12-03T10:00:00.000Z",
                    "started_at": "2026-12-03T10:00:05.000Z" if started else None,
                    "finished_at": "2026-12-03T10:04:00.000Z" if finished else None,
                    "allow_failure": job.allow_failure,
                    "coverage": None,
                    "author": {
                        "id": 28,
                        "username": "thedude",
                        "name": "Jeff Lebowski",
                        "state": "active",
                        "avatar_url": None,
                        "web_url": "https://gitlab.example.com/thedude",
                    },
                }
            )
        return out
