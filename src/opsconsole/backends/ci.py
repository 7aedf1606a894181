"""The CI gate's one provider dispatch: the client for `ci.provider`, and what the plan says it asks.

Both clients answer with `backends.github.CiState`, so the gate, `pending`, the plan, the Deploys
pane, `status` and the audit are the same for every provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.profiles import CiConfig
from opsconsole.secrets import Secret

if TYPE_CHECKING:
    from opsconsole.backends.github import CiClient


def make_client(config: CiConfig, token: Secret | None, timeout: float) -> CiClient:
    """The client of the profile's provider (validated: github or gitlab)."""
    if config.provider == "gitlab":
        from opsconsole.backends.gitlab import GitLabJobs

        return GitLabJobs(config, token, timeout)
    from opsconsole.backends.github import GitHubChecks

    return GitHubChecks(config, token, timeout)


def plan_request(config: CiConfig) -> str:
    """The plan's line for the gate's read (the commit is not known yet when the plan is shown)."""
    if config.provider == "gitlab":
        from urllib.parse import quote

        base = config.url.rstrip("/").removesuffix("/api/v4")
        project = quote(config.project, safe="")
        return f"GET {base}/api/v4/projects/{project}/repository/commits/<sha>/statuses (every page)"
    return f"GET {config.url}/repos/{config.repository}/commits/<sha>/check-runs and /status"
