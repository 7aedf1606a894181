"""The CI gate: GitHub check runs and the combined commit status of a commit (or a branch head).

Green = every required check run completed with success, neutral or skipped, and the combined status
is `success` or has no statuses at all (Actions posts check runs, not statuses). Responses are cached
with their ETag and revalidated with `If-None-Match`: a 304 costs no rate limit, so polling is free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import CiConfig
from opsconsole.sanitize import clean
from opsconsole.secrets import Secret, redact

if TYPE_CHECKING:  # httpx loads with the first client (the action layer imports CiState at start-up)
    import httpx

State = Literal["success", "failure", "pending"]
PASSING = ("success", "neutral", "skipped")
MAX_PAGES = 10


class CiError(OpsError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # queued, in_progress, completed (check runs); pending/success/failure/error (statuses)
    conclusion: str | None
    url: str

    @property
    def state(self) -> State:
        if self.status != "completed":
            return "pending"
        return "success" if self.conclusion in PASSING else "failure"

    def describe(self) -> str:
        what = self.conclusion if self.status == "completed" else self.status.replace("_", " ")
        return f"{self.name}: {what}" + (f" ({self.url})" if self.url else "")


@dataclass(frozen=True)
class CiState:
    ref: str
    state: State
    checks: tuple[Check, ...] = ()
    missing: tuple[str, ...] = ()  # required checks that have not reported for the commit

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.state == "failure"]

    @property
    def running(self) -> list[Check]:
        return [c for c in self.checks if c.state == "pending"]

    def summary(self) -> str:
        """`green (3 checks)`, `red: test: failure (URL)`, `pending: build: in progress (URL)`."""
        if self.state == "success":
            return f"green ({len(self.checks)} check(s))" if self.checks else "green (no checks reported)"
        if self.state == "failure":
            return "red: " + "; ".join(c.describe() for c in self.failing)
        waiting = [c.describe() for c in self.running] + [
            f"{name}: not reported yet" for name in self.missing
        ]
        return "pending: " + "; ".join(waiting or ["no check has reported yet"])

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "state": self.state,
            "checks": [
                {"name": c.name, "status": c.status, "conclusion": c.conclusion, "url": c.url}
                for c in self.checks
            ],
            "missing": list(self.missing),
        }


def combine(ref: str, runs: list[Check], statuses: list[Check], required: tuple[str, ...]) -> CiState:
    """The gate rule over check runs (latest per name) and commit statuses (latest per context)."""
    checks = {c.name: c for c in runs}
    for status in statuses:  # a name both posted as a check run and a status: the check run wins
        checks.setdefault(status.name, status)
    if required:
        missing = tuple(name for name in required if name not in checks)
        considered = [checks[name] for name in required if name in checks]
    else:
        missing = ()
        considered = list(checks.values())
    if any(c.state == "failure" for c in considered):
        state: State = "failure"
    elif missing or any(c.state == "pending" for c in considered) or (required == () and not considered):
        state = "pending"
    else:
        state = "success"
    return CiState(ref, state, tuple(considered), missing)


class GitHubChecks:
    """Check runs and statuses of one repository; safe to share between threads."""

    def __init__(
        self,
        config: CiConfig,
        token: Secret | None,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.base = config.url.rstrip("/")
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "opsconsole",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        import httpx

        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False
        )
        self._etags: dict[str, tuple[str, Any, dict[str, str]]] = {}
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"CI {self.config.repository}"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ HTTP

    def _get(self, url: str) -> tuple[Any, dict[str, str]]:
        """GET with ETag revalidation; returns the JSON body and the Link relations."""
        import httpx

        with self._lock:
            cached = self._etags.get(url)
        headers = {"If-None-Match": cached[0]} if cached else {}
        try:
            response = self._client.get(url, headers=headers)
        except httpx.TimeoutException:
            raise UnreachableError(
                f"{self.label}: timed out after {self.timeout:g} s", "CI unreachable"
            ) from None
        except httpx.HTTPError as exc:
            raise UnreachableError(
                redact(f"{self.label}: cannot reach {self.base} ({exc or type(exc).__name__})"),
                "CI unreachable",
            ) from None
        if response.status_code == 304 and cached:
            return cached[1], cached[2]
        if response.status_code >= 400:
            raise self._http_error(response)
        try:
            body = response.json()
        except ValueError:
            raise CiError(
                f"{self.label}: HTTP {response.status_code} with a body that is not JSON", "CI error"
            ) from None
        links = {str(rel): str(link["url"]) for rel, link in response.links.items() if rel and "url" in link}
        etag = response.headers.get("ETag")
        if etag:
            with self._lock:
                self._etags[url] = (etag, body, links)
        return body, links

    def _http_error(self, response: httpx.Response) -> OpsError:
        try:
            detail = str(response.json().get("message") or "")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        status = response.status_code
        remaining = response.headers.get("X-RateLimit-Remaining")
        if status in (403, 429) and remaining == "0":
            hint = "rate limit exhausted; a token raises it to 5,000 requests per hour"
        else:
            hint = {
                401: "the token is invalid or expired; check the ci.token secret",
                403: "the token lacks the 'Checks: read' or 'Commit statuses: read' permission",
                404: "no such repository or commit, or the token cannot see it; check ci.repository",
                422: "no such commit",
            }.get(status, "")
        text = (
            f"{self.label}: HTTP {status}"
            + (f": {clean(detail)}" if detail else "")
            + (f" ({hint})" if hint else "")
        )
        return (UnreachableError if status >= 500 else CiError)(redact(text), "CI error")

    def _paged(self, url: str, key: str) -> list[dict[str, Any]]:
        import httpx

        out: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            body, links = self._get(url)
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise CiError(f"{self.label}: unexpected answer (no '{key}' list)", "CI error")
            out.extend(item for item in body[key] if isinstance(item, dict))
            nxt = links.get("next")
            if not nxt or httpx.URL(nxt).host != httpx.URL(self.base).host:
                break
            url = nxt
        return out

    # ------------------------------------------------------------------ API

    def state(self, ref: str) -> CiState:
        """The gate's verdict for a commit sha or a branch name."""
        repo = "/".join(quote(part, safe="") for part in self.config.repository.split("/", 1))
        commit = f"{self.base}/repos/{repo}/commits/{quote(ref, safe='')}"
        runs = [
            Check(
                str(r.get("name") or "?"),
                str(r.get("status") or "queued"),
                r.get("conclusion"),
                str(r.get("html_url") or r.get("details_url") or ""),
            )
            for r in self._paged(f"{commit}/check-runs?filter=latest&per_page=100", "check_runs")
        ]
        latest: dict[str, Check] = {}
        for r in self._paged(f"{commit}/status?per_page=100", "statuses"):
            name = str(r.get("context") or "?")
            if name in latest:  # statuses come newest first
                continue
            value = str(r.get("state") or "pending")
            latest[name] = Check(
                name,
                "completed" if value != "pending" else "pending",
                {"success": "success", "failure": "failure", "error": "failure"}.get(value),
                str(r.get("target_url") or ""),
            )
        return combine(ref, runs, list(latest.values()), self.config.checks)


@dataclass(frozen=True)
class CiReport:
    """The Deploys pane's CI rows: the state of what runs (the first host's current release) and
    of the branch head; each part is a CiState or the reason it could not be read."""

    release: str | None
    commit: str | None
    current: CiState | str | None
    branch: str
    head: CiState | str

    def to_json(self) -> dict[str, Any]:
        def part(value: CiState | str | None) -> Any:
            if value is None or isinstance(value, CiState):
                return value.to_json() if value else None
            return {"error": value}

        return {
            "release": self.release,
            "commit": self.commit,
            "current": part(self.current),
            "branch": self.branch,
            "head": part(self.head),
        }


def ci_report(client: GitHubChecks, branch: str, release: str | None, commit: str | None) -> CiReport:
    def read(ref: str) -> CiState | str:
        try:
            return client.state(ref)
        except OpsError as exc:
            return exc.message

    current = read(commit) if commit else None
    return CiReport(release, commit, current, branch, read(branch))
