"""A local HTTP server shaped like Sentry's Web API, held to the real OpenAPI schema.

Every response body it sends is validated against `tests/data/sentry-openapi-subset.json` (the real
schema's operations that opsconsole uses; see tests/data/README.md), the operation's 200 schema, and every request it receives is checked: the path, the query parameters
the operation declares, the request body schema, and the `Authorization: Bearer` header.
Problems are collected in `violations`; the fixture fails the test when any were seen.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jsonschema

SPEC_PATH = Path(__file__).resolve().parent / "data" / "sentry-openapi-subset.json"
_spec_cache: dict[str, Any] = {}


def spec() -> dict[str, Any]:
    if "spec" not in _spec_cache:
        _spec_cache["spec"] = json.loads(SPEC_PATH.read_text())
    return _spec_cache["spec"]


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (nullable becomes a null alternative)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: to_json_schema(v)
        for k, v in node.items()
        if k not in ("nullable", "example", "examples", "discriminator", "xml", "externalDocs")
    }
    if node.get("nullable"):
        if "type" in out and isinstance(out["type"], str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def operation(path: str, method: str) -> dict[str, Any]:
    return spec()["paths"][path][method]


def response_schema(path: str, method: str) -> dict[str, Any]:
    return to_json_schema(
        operation(path, method)["responses"]["200"]["content"]["application/json"]["schema"]
    )


def request_schema(path: str, method: str) -> dict[str, Any] | None:
    body = operation(path, method).get("requestBody")
    if not body:
        return None
    return to_json_schema(body["content"]["application/json"]["schema"])


def minimal(schema: dict[str, Any]) -> Any:
    """The smallest instance of a schema: required keys filled, nullable ones null."""
    if "anyOf" in schema:
        return minimal(schema["anyOf"][0])
    if "oneOf" in schema:
        return minimal(schema["oneOf"][0])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = minimal(part)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            return None
        kind = kind[0]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: minimal(props.get(key, {})) for key in schema.get("required", [])}
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}.get(kind or "", {})


ISSUES = "/api/0/organizations/{organization_id_or_slug}/issues/"
ISSUE = "/api/0/organizations/{organization_id_or_slug}/issues/{issue_id}/"
EVENT = "/api/0/organizations/{organization_id_or_slug}/issues/{issue_id}/events/{event_id}/"
SHORTID = "/api/0/organizations/{organization_id_or_slug}/shortids/{issue_id}/"
RELEASES = "/api/0/organizations/{organization_id_or_slug}/releases/"
DEPLOYS = "/api/0/organizations/{organization_id_or_slug}/releases/{version}/deploys/"


def make_issue(
    org: str, project: str, number: int, title: str, level: str = "error", count: int = 1, users: int = 1
) -> dict[str, Any]:
    issue = minimal(response_schema(ISSUES, "get")["items"])
    short = f"{project.upper()}-{number:X}"
    issue.update(
        id=str(4000 + number),
        shortId=short,
        title=title,
        culprit=f"app.views in handler_{number}",
        permalink=f"https://{org}.sentry.io/issues/{4000 + number}/",
        level=level,
        status="unresolved",
        substatus="ongoing",
        count=str(count),
        userCount=users,
        firstSeen="2026-11-20T10:00:00Z",
        lastSeen=f"2026-11-26T09:{number % 60:02d}:00Z",
        platform="python",
        logger=None,
        type="error",
        issueType="error",
        issueCategory="error",
        priority="high",
    )
    issue["project"] = {
        **(issue.get("project") or {}),
        "id": "1",
        "name": project,
        "slug": project,
        "platform": "python",
    }
    issue["metadata"] = {**(issue.get("metadata") or {}), "type": title.split(":")[0], "value": title}
    return issue


def make_event(
    issue: dict[str, Any], exc_type: str, value: str, frames: list[tuple[str, str, int]]
) -> dict[str, Any]:
    event = minimal(response_schema(EVENT, "get"))
    event.update(
        id="e" * 32,
        eventID="e" * 32,
        groupID=issue["id"],
        projectID="1",
        title=issue["title"],
        platform="python",
        type="error",
        dateCreated="2026-11-26T09:00:00Z",
        tags=[{"key": "environment", "value": "staging"}],
        entries=[
            {
                "type": "exception",
                "data": {
                    "values": [
                        {
                            "type": exc_type,
                            "value": value,
                            "module": None,
                            "stacktrace": {
                                "frames": [
                                    {
                                        "filename": fn,
                                        "absPath": fn,
                                        "function": func,
                                        "module": None,
                                        "lineNo": line,
                                        "colNo": None,
                                        "inApp": True,
                                        "context": [[line, f"    {func}()"]],
                                    }
                                    for fn, func, line in frames
                                ]
                            },
                        }
                    ],
                    "hasSystemFrames": False,
                    "excOmitted": None,
                },
            }
        ],
    )
    return event


@dataclass
class Forced:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class SentryServer:
    def __init__(
        self, org: str = "acme", project: str = "shop", token: str = "sntrys_test_token_123456"
    ) -> None:
        self.org = org
        self.project = project
        self.token = token
        self.issues: list[dict[str, Any]] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.forced: list[Forced] = []
        self.first_release: dict[str, str] = {}  # issue id -> version (not in the list's body)
        self.releases: dict[str, dict[str, Any]] = {}  # version -> the create body
        self.deploys: list[tuple[str, dict[str, Any]]] = []  # (version, body)
        self.tokens: set[str] = set()  # more tokens accepted besides `token` (e.g. a release token)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign] # a client that left
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> SentryServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_issue(self, title: str, **kwargs: Any) -> dict[str, Any]:
        issue = make_issue(self.org, self.project, len(self.issues) + 1, title, **kwargs)
        self.issues.append(issue)
        return issue

    def force(self, *responses: Forced) -> None:
        with self.lock:
            self.forced.extend(responses)

    # ------------------------------------------------------------------ handler

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.handle(self, "get")

            def do_PUT(self) -> None:  # noqa: N802
                server.handle(self, "put")

            def do_POST(self) -> None:  # noqa: N802
                server.handle(self, "post")

        return Handler

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-Sentry-Rate-Limit-Limit", "40")
        handler.send_header("X-Sentry-Rate-Limit-Remaining", "39")
        handler.send_header("X-Sentry-Rate-Limit-Reset", str(int(time.time()) + 1))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _ok(
        self,
        handler: BaseHTTPRequestHandler,
        op: tuple[str, str],
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        schema = response_schema(*op)
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        for error in errors[:5]:
            self.violations.append(
                f"response of {op[1].upper()} {op[0]} violates the schema at {list(error.path)}: {error.message[:200]}"
            )
        self._send(handler, 200, body, headers)

    def _check_query(self, op: tuple[str, str], query: dict[str, list[str]]) -> None:
        allowed = {p["name"] for p in operation(*op).get("parameters", []) if p["in"] == "query"}
        for key in query:
            if key not in allowed:
                self.violations.append(f"{op[1].upper()} {op[0]}: undeclared query parameter {key!r}")

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        record = {
            "method": method.upper(),
            "path": parts.path,
            "query": query,
            "auth": handler.headers.get("Authorization"),
            "body": raw_body,
        }
        with self.lock:
            self.requests.append(record)
            forced = self.forced.pop(0) if self.forced else None
        if handler.headers.get("Authorization") not in {f"Bearer {t}" for t in {self.token, *self.tokens}}:
            self._send(handler, 401, {"detail": "Invalid token"})
            return
        if forced is not None:
            if forced.delay:
                time.sleep(forced.delay)
            self._send(handler, forced.status, None, forced.headers, raw=forced.body)
            return
        org = re.escape(self.org)
        if method == "post":
            self._post(handler, parts.path, raw_body)
        elif m := re.fullmatch(rf"/api/0/organizations/{org}/issues/", parts.path):
            self._list_issues(handler, query)
        elif m := re.fullmatch(rf"/api/0/organizations/{org}/shortids/([^/]+)/", parts.path):
            self._check_query((SHORTID, "get"), query)
            issue = next((i for i in self.issues if i["shortId"] == m.group(1)), None)
            if issue is None:
                self._send(handler, 404, {"detail": "Short ID not found"})
                return
            body = minimal(response_schema(SHORTID, "get"))
            body.update(
                organizationSlug=self.org,
                projectSlug=self.project,
                groupId=issue["id"],
                shortId=issue["shortId"],
                group=copy.deepcopy(issue),
            )
            self._ok(handler, (SHORTID, "get"), body)
        elif m := re.fullmatch(rf"/api/0/organizations/{org}/issues/(\d+)/events/latest/", parts.path):
            self._check_query((EVENT, "get"), query)
            event = self.events.get(m.group(1))
            if event is None:
                self._send(handler, 404, {"detail": "Event not found"})
                return
            self._ok(handler, (EVENT, "get"), event)
        elif (
            m := re.fullmatch(rf"/api/0/organizations/{org}/issues/(\d+)/", parts.path)
        ) and method == "put":
            self._update(handler, m.group(1), raw_body)
        else:
            self.violations.append(f"unexpected request {method.upper()} {parts.path}")
            self._send(handler, 404, {"detail": "Not found"})

    def _post(self, handler: BaseHTTPRequestHandler, path: str, raw_body: bytes) -> None:
        org = re.escape(self.org)
        try:
            body = json.loads(raw_body or b"{}")
        except ValueError:
            self.violations.append(f"POST {path}: body is not JSON")
            self._send(handler, 400, {"detail": "bad json"})
            return
        if re.fullmatch(rf"/api/0/organizations/{org}/releases/", path):
            op = (RELEASES, "post")
        elif m := re.fullmatch(rf"/api/0/organizations/{org}/releases/([^/]+)/deploys/", path):
            op = (DEPLOYS, "post")
        else:
            self.violations.append(f"unexpected request POST {path}")
            self._send(handler, 404, {"detail": "Not found"})
            return
        schema = request_schema(*op)
        assert schema is not None
        for error in jsonschema.Draft7Validator(
            schema, format_checker=jsonschema.FormatChecker()
        ).iter_errors(body):
            self.violations.append(f"POST {op[0]} body violates the schema: {error.message[:200]}")
        responses = operation(*op)["responses"]
        if op[0] == RELEASES:
            version = body.get("version", "")
            if re.search(r"[/\\\n\t]", version) or len(version) > 200:
                self._send(handler, 400, {"version": ["Release names may not contain slashes"]})
                return
            existed = version in self.releases
            self.releases.setdefault(version, body)
            out = minimal(to_json_schema(responses["201"]["content"]["application/json"]["schema"]))
            out.update(version=version, shortVersion=version, commitCount=len(body.get("commits", [])))
            self._send(handler, 208 if existed else 201, out)
            return
        assert m is not None
        version = unquote(m.group(1))
        if version not in self.releases:
            self._send(handler, 404, {"detail": "Release not found"})
            return
        self.deploys.append((version, body))
        out = minimal(to_json_schema(responses["201"]["content"]["application/json"]["schema"]))
        out.update(
            id=str(len(self.deploys)),
            environment=body["environment"],
            dateFinished=body.get("dateFinished") or "",
        )
        self._send(handler, 201, out)

    def _matches(self, issue: dict[str, Any], terms: list[str]) -> bool:
        """Sentry's search terms used by opsconsole: is:unresolved, is:regressed, firstRelease:V."""
        for term in terms:
            key, _, value = term.partition(":")
            if key == "is" and value == "unresolved" and issue["status"] != "unresolved":
                return False
            if key == "is" and value == "regressed" and issue.get("substatus") != "regressed":
                return False
            if key == "firstRelease" and self.first_release.get(issue["id"]) != value:
                return False
            if key not in ("is", "firstRelease"):
                self.violations.append(f"unsupported search term {term!r}")
        return True

    def _list_issues(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        op = (ISSUES, "get")
        self._check_query(op, query)
        if query.get("project") != [self.project]:
            self.violations.append(f"issues listed without project={self.project}: {query.get('project')}")
        limit = int(query.get("limit", ["100"])[0])
        if limit > 100:
            self.violations.append(f"limit {limit} is over Sentry's maximum of 100")
        wanted = query.get("query", ["is:unresolved"])[0].split()
        items = [i for i in self.issues if self._matches(i, wanted)]
        offset = int(query.get("cursor", ["0:0:0"])[0].split(":")[1])
        page = items[offset : offset + limit]
        more = offset + limit < len(items)
        base = f"{self.url}/api/0/organizations/{self.org}/issues/"
        keep = {k: v for k, v in query.items() if k != "cursor"}
        nxt = f"0:{offset + limit}:0"
        prev = f"0:{max(0, offset - limit)}:1"
        link = (
            f'<{base}?{urlencode({**keep, "cursor": prev}, doseq=True)}>; rel="previous"; results="{str(offset > 0).lower()}"; cursor="{prev}", '
            f'<{base}?{urlencode({**keep, "cursor": nxt}, doseq=True)}>; rel="next"; results="{str(more).lower()}"; cursor="{nxt}"'
        )
        self._ok(handler, op, page, {"Link": link})

    def _update(self, handler: BaseHTTPRequestHandler, issue_id: str, raw_body: bytes) -> None:
        op = (ISSUE, "put")
        try:
            body = json.loads(raw_body or b"{}")
        except ValueError:
            self.violations.append("PUT body is not JSON")
            self._send(handler, 400, {"detail": "bad json"})
            return
        schema = request_schema(*op)
        if schema is not None:
            # The spec (generated from a serializer) lists every field as required, but the API takes
            # partial updates ("only the fields you send change"): check the types of what is sent.
            schema = {**schema, "required": []}
            for error in jsonschema.Draft7Validator(schema).iter_errors(body):
                self.violations.append(f"PUT body violates the schema: {error.message[:200]}")
        issue = next((i for i in self.issues if i["id"] == issue_id), None)
        if issue is None:
            self._send(handler, 404, {"detail": "Issue not found"})
            return
        issue["status"] = body.get("status", issue["status"])
        if "substatus" in body:
            issue["substatus"] = body["substatus"]
        elif issue["status"] == "resolved":
            issue["substatus"] = None
        update = minimal(response_schema(*op))
        update.update(
            {
                k: v
                for k, v in issue.items()
                if k in update or k in ("count", "userCount", "firstSeen", "lastSeen")
            }
        )
        self._ok(handler, op, update)
