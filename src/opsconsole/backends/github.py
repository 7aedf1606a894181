"""The CI gate: GitHub check runs and the combined commit status of a commit (or a branch head).

Green = every required name has reported, and every check run and commit status under a required
name (every one, when none are named) completed with success, neutral or skipped: when several runs
or statuses share a name (two workflows with a job `test`, a status named like a check run), any
failing one makes it red and any pending one keeps it pending. A list that was not read whole (fewer
items than its `total_count`, the page limit reached, a `next` link off the configured origin) is
pending, never green. Pages are followed only on the configured origin (scheme, host and port), so
the token goes nowhere else. Responses are cached
with their ETag and revalidated with `If-None-Match`: a 304 costs no rate limit, so polling is free.

`Check`, `CiState`, `combine` and `CiReport` are the gate's results for every provider
(backends.gitlab builds the same); backends.ci picks the client the profile's `ci.provider` names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from opsconsole.backends.http_read import BodyTooLarge, BoundedClient, detail, origin, same_origin, scrub
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import CiConfig
from opsconsole.sanitize import clean
from opsconsole.secrets import Secret, redact

if TYPE_CHECKING:  # httpx loads with the first client (the action layer imports CiState at start-up)
    import httpx

State = Literal["success", "failure", "pending"]
PASSING = ("success", "neutral", "skipped")
MAX_PAGES = 10
# A page of 100 check runs carries each run's output summary and text (up to 64 KiB each on GitHub),
# so a real page can pass the default cap: 32 MiB holds the worst case with room.
MAX_PAGE_BYTES = 32 * 1024 * 1024


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
    incomplete: tuple[str, ...] = ()  # why a list was not read whole (then never green)
    provider: str = "github"  # ci.provider of the client that read it

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
        waiting = (
            [c.describe() for c in self.running]
            + [f"{name}: not reported yet" for name in self.missing]
            + list(self.incomplete)
        )
        return "pending: " + "; ".join(waiting or ["no check has reported yet"])

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ref": self.ref,
            "state": self.state,
            "checks": [
                {"name": c.name, "status": c.status, "conclusion": c.conclusion, "url": c.url}
                for c in self.checks
            ],
            "missing": list(self.missing),
            "incomplete": list(self.incomplete),
        }


def combine(
    ref: str,
    runs: list[Check],
    statuses: list[Check],
    required: tuple[str, ...],
    incomplete: tuple[str, ...] = (),
) -> CiState:
    """The gate rule over check runs and commit statuses (latest per context): every run and status
    under a considered name counts, so one failing (or pending) among same-named ones decides."""
    named: dict[str, list[Check]] = {}
    for check in [*runs, *statuses]:
        named.setdefault(check.name, []).append(check)
    if required:
        missing = tuple(name for name in required if name not in named)
        considered = [c for name in dict.fromkeys(required) for c in named.get(name, [])]
    else:
        missing = ()
        considered = [c for group in named.values() for c in group]
    if any(c.state == "failure" for c in considered):
        state: State = "failure"
    elif (
        missing
        or incomplete
        or any(c.state == "pending" for c in considered)
        or (required == () and not considered)
    ):
        state = "pending"
    else:
        state = "success"
    return CiState(ref, state, tuple(considered), missing, incomplete)


def ci_get(
    client: BoundedClient,
    url: str,
    label: str,
    base: str,
    seconds: float,
    cap: int,
    service: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One GET of a CI provider's API, its failures as the gate's errors: a timeout or a connection
    failure is unreachable (exit 4: the deploy stops unless --skip-ci), a body over `cap` a CiError."""
    import httpx

    try:
        return client.request("GET", url, seconds=seconds, cap=cap, headers=headers or {})
    except httpx.TimeoutException:
        raise UnreachableError(f"{label}: timed out after {seconds:g} s", "CI unreachable") from None
    except BodyTooLarge as exc:
        raise CiError(
            redact(f"{label}: {exc} (is ci.url {service}? another service may be answering)"), "CI error"
        ) from None
    except httpx.HTTPError as exc:
        raise UnreachableError(
            redact(f"{label}: cannot reach {base} ({exc or type(exc).__name__})"), "CI unreachable"
        ) from None


class CiClient(Protocol):
    """What the gate, `pending`, the plan and the Deploys pane use of a CI provider's client
    (GitHubChecks, backends.gitlab.GitLabJobs); backends.ci makes the one the profile names."""

    @property
    def label(self) -> str: ...

    def state(self, ref: str) -> CiState: ...

    def close(self) -> None: ...


class GitHubChecks:
    """Check runs and statuses of one repository; safe to share between threads."""

    provider = "github"

    def __init__(
        self,
        config: CiConfig,
        token: Secret | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._client = BoundedClient(headers, timeout, transport)
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

        with self._lock:
            cached = self._etags.get(url)
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = ci_get(
            self._client, url, self.label, self.base, self.timeout, MAX_PAGE_BYTES, "a GitHub API", headers
        )
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
        said = detail(response, ("message",))
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
        text = f"{self.label}: HTTP {status}" + (f": {said}" if said else "") + (f" ({hint})" if hint else "")
        return (UnreachableError if status >= 500 else CiError)(redact(text), "CI error")

    def _paged(self, url: str, key: str) -> tuple[list[dict[str, Any]], str | None]:
        """Every item of a paged list, and why the list is not whole (None when it is): fewer
        items than `total_count`, the page limit, or a `next` link off the configured origin."""
        import httpx

        out: list[dict[str, Any]] = []
        total: int | None = None
        what = key.replace("_", " ")
        for page in range(MAX_PAGES):
            body, links = self._get(url)
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise CiError(f"{self.label}: unexpected answer (no '{key}' list)", "CI error")
            count = body.get("total_count")
            if isinstance(count, int) and not isinstance(count, bool):
                total = max(total or 0, count)
            out.extend(item for item in body[key] if isinstance(item, dict))
            nxt = links.get("next")
            if not nxt:
                break
            nxt = str(httpx.URL(url).join(nxt))
            if not same_origin(nxt, self.base):
                # the token is sent only to the configured origin: a Link elsewhere is not followed
                return out, (
                    f"{what}: the next page is on another origin ({origin(nxt)}), not followed so the "
                    f"token stays with {origin(self.base)}; {len(out)} read"
                )
            if page == MAX_PAGES - 1:
                return out, f"{what}: stopped after {MAX_PAGES} pages ({len(out)} of {total or 'more'} read)"
            url = nxt
        if total is not None and len(out) < total:
            return out, f"{what}: {len(out)} of {total} read (the list ended early)"
        return out, None

    # ------------------------------------------------------------------ API

    def state(self, ref: str) -> CiState:
        """The gate's verdict for a commit sha or a branch name."""
        repo = "/".join(quote(part, safe="") for part in self.config.repository.split("/", 1))
        commit = f"{self.base}/repos/{repo}/commits/{quote(ref, safe='')}"
        run_items, runs_cut = self._paged(f"{commit}/check-runs?filter=latest&per_page=100", "check_runs")
        status_items, statuses_cut = self._paged(f"{commit}/status?per_page=100", "statuses")
        runs = [
            Check(
                clean(str(r.get("name") or "?")),
                clean(str(r.get("status") or "queued"), 40),
                clean(r["conclusion"], 40) if isinstance(r.get("conclusion"), str) else None,
                scrub(str(r.get("html_url") or r.get("details_url") or ""), 300),
            )
            for r in run_items
        ]
        latest: dict[str, Check] = {}
        for r in status_items:
            name = clean(str(r.get("context") or "?"))
            if name in latest:  # statuses come newest first: a newer one replaces an older one
                continue
            value = str(r.get("state") or "pending")
            latest[name] = Check(
                name,
                "completed" if value != "pending" else "pending",
                {"success": "success", "failure": "failure", "error": "failure"}.get(value),
                scrub(str(r.get("target_url") or ""), 300),
            )
        incomplete = tuple(cut for cut in (runs_cut, statuses_cut) if cut)
        return combine(ref, runs, list(latest.values()), self.config.checks, incomplete)


@dataclass(frozen=True)
class CiReport:
    """The Deploys pane's CI rows: the state of what runs (the first host's current release) and
    of the branch head; each part is a CiState or the reason it could not be read."""

    release: str | None
    commit: str | None
    current: CiState | str | None
    branch: str
    head: CiState | str
    provider: str = "github"

    @property
    def title(self) -> str:
        """`GitHub CI`, `GitLab CI`: the pane's and status's name of the rows."""
        return {"github": "GitHub", "gitlab": "GitLab"}.get(self.provider, self.provider) + " CI"

    def to_json(self) -> dict[str, Any]:
        def part(value: CiState | str | None) -> Any:
            if value is None or isinstance(value, CiState):
                return value.to_json() if value else None
            return {"error": value}

        return {
            "provider": self.provider,
            "release": self.release,
            "commit": self.commit,
            "current": part(self.current),
            "branch": self.branch,
            "head": part(self.head),
        }


def ci_report(
    client: CiClient, branch: str, release: str | None, commit: str | None, provider: str = "github"
) -> CiReport:
    def read(ref: str) -> CiState | str:
        try:
            return client.state(ref)
        except OpsError as exc:
            return exc.message

    current = read(commit) if commit else None
    return CiReport(release, commit, current, branch, read(branch), provider)
