"""What goes out: the commits between the running release and a ref, read from the deploy mirror.

Capistrano's `deploy:pending`, for every deploy: on the first host the mirror is fetched (the same
fetch a deploy does), the ref resolved, and `git log` run over current-commit..target. The result
leads the deploy's plan and `opsconsole pending ENV`; the same log (with committer times) goes into
every successful deploy's journal record as `commits`, so delivery metrics never need git.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.actions.deploy.host import HostDeploy, require_deploy, resolve_ref
from opsconsole.actions.deploy.shell import MIRROR
from opsconsole.backends.clients import Backends
from opsconsole.backends.github import CiState
from opsconsole.backends.hosts import Host
from opsconsole.backends.releases import DeployState, read_state
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import OpsError
from opsconsole.human import counted, duration, parse_time
from opsconsole.profiles import DeployConfig, Environment

SHOWN = 50  # commits listed in a plan
JOURNALLED = 500  # commits kept in a deploy record
_SEP = "\x1f"  # unit separator: never in a sha, a date or a name; subjects are cut at it


@dataclass(frozen=True)
class Commit:
    sha: str
    time: str  # committer time, ISO 8601
    author: str
    subject: str

    def line(self, now: datetime | None = None) -> str:
        when = parse_time(self.time)
        age = ""
        if when is not None:
            age = ", " + duration(((now or datetime.now(UTC)) - when).total_seconds()) + " ago"
        return f"{self.sha[:12]} {self.subject} ({self.author}{age})"

    def record(self) -> list[str]:
        return [self.sha, self.time, self.subject]


@dataclass
class Outgoing:
    """The range current..target on one host's mirror, or why it could not be read (`error`)."""

    host: str
    ref: str
    sha: str | None = None
    commit_time: str | None = None
    current_release: str | None = None
    current_commit: str | None = None
    commits: list[Commit] = field(default_factory=list)
    total: int = 0  # commits in the range (commits holds at most SHOWN or JOURNALLED)
    behind: int = 0  # commits in current that the target lacks (a ref older than what runs)
    migrations: list[str] = field(default_factory=list)
    error: str | None = None
    note: str | None = None

    def lines(self, shown: int = SHOWN) -> list[str]:
        """The plan's "what goes out" block."""
        if self.error:
            return [f"Pending commits: unknown ({self.error})"]
        current = (
            f"releases/{self.current_release} ({(self.current_commit or '?')[:12]})"
            if self.current_release
            else "no release yet"
        )
        out = [f"What goes out ({self.host}): {current} -> {self.ref} ({(self.sha or '?')[:12]})"]
        if self.note:
            out.append(f"  {self.note}")
        if self.sha and self.sha == self.current_commit:
            out.append("  no new commits: the target is the commit that runs now (a redeploy)")
        elif self.total:
            out.append(f"  {counted(self.total, 'pending commits')}, newest first:")
        elif self.behind:
            out.append(f"  no new commits: {self.ref} is older than what runs now")
        elif not self.note:
            out.append("  no new commits: the running release already has all of the target's")
        now = datetime.now(UTC)
        out += [f"    {c.line(now)}" for c in self.commits[:shown]]
        if self.total > shown:
            out.append(f"    … and {self.total - shown} more")
        if self.behind:
            out.append(
                f"  WARNING: {self.ref} lacks {counted(self.behind, 'commits')} of the running release: "
                "this deploy goes backwards"
            )
        if self.migrations:
            names = ", ".join(self.migrations[:5]) + (" …" if len(self.migrations) > 5 else "")
            out.append(f"  MIGRATIONS: the range touches {counted(len(self.migrations), 'files')}: {names}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ref": self.ref,
            "commit": self.sha,
            "commit_time": self.commit_time,
            "current_release": self.current_release,
            "current_commit": self.current_commit,
            "total": self.total,
            "behind": self.behind,
            "commits": [
                {"sha": c.sha, "time": c.time, "author": c.author, "subject": c.subject} for c in self.commits
            ],
            "migrations": self.migrations,
            "note": self.note,
            "error": self.error,
        }


def _git(config: DeployConfig) -> str:
    return f"git --git-dir={quote_path(config.path + '/' + MIRROR)}"


def log(
    host: Host, config: DeployConfig, since: str | None, until: str, limit: int
) -> tuple[list[Commit], int]:
    """Commits in since..until (all of until's history when since is None), newest first, merges
    left out (as Four Keys counts changes): at most `limit`, and how many there are."""
    git = _git(config)
    span = f"{quote(since)}..{quote(until)}" if since else quote(until)
    fmt = quote(_SEP.join(["%H", "%cI", "%an", "%s"]))
    result = host.run(
        f"{git} rev-list --count --no-merges {span} && "
        f"{git} log --no-merges -n {int(limit)} --format={fmt} {span}",
        timeout=max(host.timeout, 30.0),
    )
    if not result.ok:
        raise OpsError(
            f"{host.name}: git log {since or ''}..{until} failed: {result.stderr.strip()[:200]}",
            "Pending commits",
        )
    lines = result.stdout.splitlines()
    total = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
    commits = []
    for line in lines[1:]:
        parts = line.split(_SEP)
        if len(parts) >= 4:
            commits.append(Commit(parts[0], parts[1], parts[2], _SEP.join(parts[3:])))
    return commits, total


def has_commit(host: Host, config: DeployConfig, sha: str) -> bool:
    result = host.run(f"{_git(config)} cat-file -e {quote(sha + '^{commit}')}", timeout=host.timeout)
    return result.ok


def changed_files(host: Host, config: DeployConfig, since: str, until: str) -> list[str]:
    result = host.run(
        f"{_git(config)} diff --name-only {quote(since)} {quote(until)}", timeout=max(host.timeout, 30.0)
    )
    return result.stdout.splitlines() if result.ok else []


def matching(paths: list[str], patterns: tuple[str, ...]) -> list[str]:
    """Paths matching any pattern; `*/migrations/*` also matches a top-level `migrations/…`."""
    return [
        p for p in paths if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch("/" + p, pat) for pat in patterns)
    ]


def outgoing(
    host: Host,
    config: DeployConfig,
    state: DeployState,
    ref: str,
    sha: str,
    commit_time: str,
    limit: int = SHOWN,
) -> Outgoing:
    """The range from what runs on this host to `sha` (the mirror is already fetched)."""
    out = Outgoing(host.name, ref, sha, commit_time, state.current, state.current_commit())
    since = out.current_commit
    if since and not has_commit(host, config, since):
        out.note = f"the running commit {since[:12]} is no longer in {config.repo} (history rewritten?)"
        since = None
        return out
    if since is None:
        out.note = (
            "first deploy: every commit of the ref goes out"
            if not state.current
            else ("the running release has no journal record naming its commit")
        )
        if state.current:
            return out
    try:
        out.commits, out.total = log(host, config, since, sha, limit)
        if since:
            _, out.behind = log(host, config, sha, since, 0)
            out.migrations = matching(changed_files(host, config, since, sha), config.migrations)
    except OpsError as exc:
        out.error = exc.message
    return out


def journal_commits(
    host: Host, config: DeployConfig, state: DeployState, sha: str, commit_time: str
) -> list[list[str]]:
    """`commits` for a successful deploy record: previous-good-commit..sha (at most JOURNALLED);
    just the deployed commit for a first deploy, or when the previous commit is gone."""
    since = state.previous_good_commit()
    if since == sha:
        return []
    if since and has_commit(host, config, since):
        try:
            commits, _ = log(host, config, since, sha, JOURNALLED)
            return [c.record() for c in commits]
        except OpsError:
            pass
    subject = host.run(f"{_git(config)} log -1 --format=%s {quote(sha)}", timeout=host.timeout).stdout.strip()
    return [[sha, commit_time, subject]]


def _first_deploy(
    backends: Backends, env: Environment, host: Host, config: DeployConfig, ref: str
) -> tuple[Outgoing, CiState | OpsError | None]:
    """No mirror yet: nothing is created before the deploy runs; the ref is resolved with
    `git ls-remote` (a full sha is taken as is) so CI can still be read."""
    found = Outgoing(host.name, ref, note="first deploy on this host: the repository is cloned by the deploy")
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        found.sha = ref
    else:
        run = host.run(f"git ls-remote -- {quote(config.repo)} {quote(ref)}", timeout=max(host.timeout, 60.0))
        if not run.ok:
            found.error = f"{host.name}: git ls-remote {config.repo} failed: {run.stderr.strip()[:300]}"
            return found, None
        refs: dict[str, str] = {}
        for line in run.stdout.splitlines():
            sha, _, name = line.partition("\t")
            refs[name.strip()] = sha.strip()
        for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
            if name in refs:
                found.sha = refs[name]
                break
        if found.sha is None:
            found.note = (
                f"{found.note}; '{ref}' is not a branch or tag there (a short sha resolves during the deploy)"
            )
            return found, None
    ci: CiState | OpsError | None = None
    if env.ci is not None:
        try:
            ci = backends.ci(env).state(found.sha)
        except OpsError as exc:
            ci = exc
    return found, ci


def what_goes_out(
    backends: Backends, env: Environment, ref: str, limit: int | None = None
) -> tuple[Outgoing, CiState | OpsError | None]:
    """Outgoing commits from the first host's mirror (fetched first, as a deploy does) and the CI
    state of the target commit (None without [ci]); each says why when it cannot be had."""
    config = require_deploy(env)
    spec = env.hosts[0]
    host = backends.host(spec)
    try:
        state = read_state(host, config)
        if not host.run(f"[ -d {quote_path(config.path + '/' + MIRROR)} ]", timeout=host.timeout).ok:
            return _first_deploy(backends, env, host, config, ref)
        fetch = HostDeploy(spec, host, config, "", ref, "", threading.Event()).fetch_command()
        run = host.run(fetch, timeout=max(host.timeout, 300.0))
        if not run.ok:
            raise OpsError(f"{spec.raw}: fetching {config.repo} failed: {run.stderr.strip()[:300]}")
        sha, when = resolve_ref(host, config, ref)
    except OpsError as exc:
        return Outgoing(spec.raw, ref, error=exc.message), None
    found = outgoing(host, config, state, ref, sha, when, limit or SHOWN)
    ci: CiState | OpsError | None = None
    if env.ci is not None:
        try:
            ci = backends.ci(env).state(sha)
        except OpsError as exc:
            ci = exc
    return found, ci


@dataclass(frozen=True)
class Fetched:
    """What goes out as read from the mirror at `at` (time.time()), with the target's CI state."""

    at: float
    found: Outgoing
    ci: CiState | OpsError | None


class MirrorCache:
    """What goes out, read off the UI's path: the console fetches the first host's mirror in the
    background (after a refresh of the environment shown, or on the first D), so a deploy's plan is
    on screen at once, from what was last read, and says how old it is. A deploy fetches and
    resolves the ref again itself and says so if the target moved since (saga.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str, str], Fetched] = {}
        self._running: dict[tuple[str, str, str, str], threading.Event] = {}

    @staticmethod
    def _key(env: Environment, ref: str) -> tuple[str, str, str, str]:
        config = require_deploy(env)
        return (env.name, config.path, env.hosts[0].raw if env.hosts else "", ref)

    def get(self, env: Environment, ref: str) -> Fetched | None:
        with self._lock:
            return self._entries.get(self._key(env, ref))

    def fetching(self, env: Environment, ref: str) -> threading.Event | None:
        """The event set when the fetch under way for (env, ref) ends; None when none is."""
        with self._lock:
            return self._running.get(self._key(env, ref))

    def wait_idle(self, env: Environment, timeout: float) -> None:
        """Wait for the background reads of this environment's mirror (any ref) to end: a deploy's
        own fetch never runs alongside one (two fetches into one mirror contend for its locks)."""
        key = self._key(env, "")
        with self._lock:
            running = [done for k, done in self._running.items() if k[:3] == key[:3]]
        for done in running:
            done.wait(timeout)

    def prefetch(self, backends: Backends, env: Environment, ref: str) -> threading.Event:
        """Read what goes out in a daemon thread (one at a time per environment and ref); the
        returned event is set once the result is stored."""
        import time

        key = self._key(env, ref)
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            done = self._running[key] = threading.Event()

        def fetch() -> None:
            try:
                found, ci = what_goes_out(backends, env, ref)
                with self._lock:
                    self._entries[key] = Fetched(time.time(), found, ci)
            except Exception as exc:  # noqa: BLE001 - kept as the reason the plan shows
                with self._lock:
                    self._entries[key] = Fetched(time.time(), Outgoing(env.hosts[0].raw, ref, error=str(exc)), None)
            finally:
                with self._lock:
                    self._running.pop(key, None)
                done.set()

        threading.Thread(target=fetch, name=f"mirror {env.name} {ref}", daemon=True).start()
        return done


MIRRORS = MirrorCache()
