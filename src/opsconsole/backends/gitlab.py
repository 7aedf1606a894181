"""The CI gate on GitLab: the commit statuses (the jobs) of a commit or a branch head.

`GET /api/v4/projects/:id/repository/commits/:sha/statuses` (GitLab's doc/api/commits.md, "List the
statuses of a commit"); `:id` is the numeric id or the URL-encoded path (`group%2Fapp`). Without
`all`, GitLab returns only the latest status of each job name per pipeline, so a retried job that
passed replaces its failed first try, while two pipelines of one commit (a branch pipeline and a
merge-request one) can each report a job of the same name: any failing or pending one decides.
No `ref` is sent: it only narrows the statuses to one branch's pipelines.

The verdict is the GitHub gate's (`backends.github.combine`, `CiState`): failed and canceled are
red; success and skipped are green; created, waiting_for_resource, preparing, pending, running,
manual, scheduled and any status this module does not know are pending (never green); a job with
`allow_failure` never blocks. Every page is followed by its `x-next-page` header, which GitLab
sends even above 10,000 rows where `x-total` and `x-total-pages` are left out; the next page is a
number on the same URL, so the token goes nowhere but the configured origin. A list cut by the
page cap, or shorter than an `x-total` GitLab did send, is pending, never green.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.backends.github import Check, CiError, CiState, State, ci_get, combine
from opsconsole.backends.http_read import BoundedClient, detail, scrub
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles import CiConfig
from opsconsole.sanitize import clean
from opsconsole.secrets import Secret, redact

if TYPE_CHECKING:  # httpx loads with the first client
    import httpx

GREEN = ("success", "skipped")
RED = ("failed", "canceled")
PER_PAGE = 100  # GitLab's maximum
MAX_PAGES = 20
# A status is ~1 KiB (its author object included): a page of 100 is ~100 KiB; 4 MiB leaves room for
# long descriptions and still stops a service that is not GitLab from filling memory.
MAX_PAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Job(Check):
    """One GitLab commit status: `status` is GitLab's own, `conclusion` the same once finished."""

    allow_failure: bool = False

    @property
    def state(self) -> State:
        if self.status in GREEN or self.allow_failure:
            return "success"
        return "failure" if self.status in RED else "pending"

    def describe(self) -> str:
        what = self.status.replace("_", " ")
        if self.allow_failure and self.status not in GREEN:
            what += ", allowed to fail"
        return f"{self.name}: {what}" + (f" ({self.url})" if self.url else "")


def _text(value: Any, limit: int = 200) -> str:
    return clean(value, limit) if isinstance(value, str) else ""


def job(item: dict[str, Any]) -> Job:
    """A status item as GitLab documents it, every field type-checked (a wrong type is absent)."""
    status = _text(item.get("status"), 40) or "pending"
    return Job(
        _text(item.get("name")) or "?",
        status,
        status if status in GREEN + RED else None,
        scrub(item["target_url"], 300) if isinstance(item.get("target_url"), str) else "",
        item.get("allow_failure") is True,
    )


class GitLabJobs:
    """The commit statuses of one GitLab project; safe to share between threads."""

    provider = "gitlab"

    def __init__(
        self,
        config: CiConfig,
        token: Secret | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.base = config.url.rstrip("/").removesuffix("/api/v4")  # ci.url may name the API root
        headers = {"Accept": "application/json", "User-Agent": "opsconsole"}
        if token is not None:
            headers["PRIVATE-TOKEN"] = token.reveal()
        self._client = BoundedClient(headers, timeout, transport)

    @property
    def label(self) -> str:
        return f"GitLab CI {self.config.project}"

    def close(self) -> None:
        self._client.close()

    def _secret(self) -> str:
        return f"the secret '{self.config.token.name}' (ci.token)" if self.config.token else "ci.token"

    def _get(self, url: str) -> tuple[Any, httpx.Headers]:
        response = ci_get(self._client, url, self.label, self.base, self.timeout, MAX_PAGE_BYTES, "a GitLab")
        if response.status_code >= 400:
            raise self._http_error(response)
        try:
            return response.json(), response.headers
        except ValueError:
            raise CiError(
                f"{self.label}: HTTP {response.status_code} with a body that is not JSON "
                "(is ci.url the GitLab instance's address?)",
                "CI error",
            ) from None

    def _http_error(self, response: httpx.Response) -> OpsError:
        said = detail(response, ("message", "error"))
        status = response.status_code
        anonymous = self.config.token is None
        if status == 401:
            hint = (
                'no token is set: add token = { secret = "gitlab-token" } to [ci] (a token with scope read_api)'
                if anonymous
                else f"the token in {self._secret()} is invalid, expired or revoked"
            )
        elif status == 403:
            hint = f"the token in {self._secret()} lacks the read_api scope or access to the project"
        elif status == 404:
            hint = "no such project or commit, or it is private" + (
                ": a private project needs ci.token" if anonymous else f" and {self._secret()} cannot see it"
            )
            hint += "; check ci.project"
        elif status == 429:
            hint = "rate limited by GitLab; try again in a minute"
        else:
            hint = ""
        text = f"{self.label}: HTTP {status}" + (f": {said}" if said else "") + (f" ({hint})" if hint else "")
        return (UnreachableError if status >= 500 else CiError)(redact(text), "CI error")

    def _statuses(self, ref: str) -> tuple[list[dict[str, Any]], str | None]:
        """Every status of the commit, and why the list is not whole (None when it is)."""
        from urllib.parse import quote

        url = (
            f"{self.base}/api/v4/projects/{quote(self.config.project, safe='')}/repository/commits/"
            f"{quote(ref, safe='')}/statuses?per_page={PER_PAGE}"
        )
        out: list[dict[str, Any]] = []
        total: int | None = None
        page = 1
        for _ in range(MAX_PAGES):
            body, headers = self._get(f"{url}&page={page}")
            if not isinstance(body, list):
                raise CiError(f"{self.label}: unexpected answer (not a list of statuses)", "CI error")
            out.extend(item for item in body if isinstance(item, dict))
            said_total = headers.get("x-total", "").strip()
            if said_total.isdigit():
                total = int(said_total)
            nxt = headers.get("x-next-page", "").strip()
            if not nxt:
                break
            if not nxt.isdigit() or int(nxt) <= page:
                raise CiError(
                    f"{self.label}: unexpected x-next-page {scrub(nxt, 40)!r} after page {page}", "CI error"
                )
            page = int(nxt)
        else:
            return out, f"statuses: stopped after {MAX_PAGES} pages ({len(out)} of {total or 'more'} read)"
        if total is not None and len(out) < total:
            return out, f"statuses: {len(out)} of {total} read (the list ended early)"
        return out, None

    def state(self, ref: str) -> CiState:
        """The gate's verdict for a commit sha or a branch name."""
        items, cut = self._statuses(ref)
        verdict = combine(ref, [job(item) for item in items], [], self.config.checks, (cut,) if cut else ())
        return CiState(
            verdict.ref, verdict.state, verdict.checks, verdict.missing, verdict.incomplete, self.provider
        )
