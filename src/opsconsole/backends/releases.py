"""The release layout under `deploy.path` on each host, and reading it (one remote command per host).

PATH/releases/<UTC timestamp>/     one folder per release
PATH/current -> releases/<id>      switched atomically (new symlink, then `mv -T`)
PATH/shared/                       linked into every release
PATH/.opsconsole/lock              JSON: who, when, why (present while a deploy holds the lock)
PATH/.opsconsole/deploys.jsonl     the journal: one JSON record per attempt and per rollback
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from opsconsole.backends.hosts import Host
from opsconsole.errors import OpsError
from opsconsole.profiles import DeployConfig

STATE_DIR = ".opsconsole"
LOCK = f"{STATE_DIR}/lock"
JOURNAL = f"{STATE_DIR}/deploys.jsonl"
JOURNAL_TAIL = 200


@dataclass(frozen=True)
class LockInfo:
    who: str
    when: str
    why: str
    raw: str = ""

    def describe(self) -> str:
        return f"held by {self.who} since {self.when}" + (f" ({self.why})" if self.why else "")


@dataclass
class DeployState:
    host: str
    path: str
    exists: bool
    current: str | None
    releases: list[str] = field(default_factory=list)
    lock: LockInfo | None = None
    journal: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def bad_releases(self) -> set[str]:
        return {str(r.get("release")) for r in self.journal if r.get("event") == "mark_bad"}

    @property
    def successful_releases(self) -> list[str]:
        """Releases that deployed successfully, oldest first, still present, not marked bad."""
        good = [
            str(r["release"])
            for r in self.journal
            if r.get("event") == "deploy" and r.get("outcome") == "success"
        ]
        bad = self.bad_releases
        seen: list[str] = []
        for release in good:
            if release in self.releases and release not in bad and release not in seen:
                seen.append(release)
        return seen

    def recent(self, count: int = 10) -> list[dict[str, Any]]:
        return [r for r in self.journal if r.get("event") in ("deploy", "rollback")][-count:][::-1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lock"] = asdict(self.lock) if self.lock else None
        data["journal"] = self.journal[-20:]
        return data


def read_command(path: str) -> str:
    q = shlex.quote(path)
    return (
        f"cd {q} 2>/dev/null || {{ echo '@missing'; exit 0; }}; "
        "printf '@current\\t%s\\n' \"$(readlink current 2>/dev/null)\"; "
        'if [ -d releases ]; then for r in releases/*; do [ -d "$r" ] && printf \'@release\\t%s\\n\' "${r#releases/}"; done; fi; '
        f"if [ -f {LOCK} ]; then printf '@lock\\t'; tr -d '\\n' < {LOCK}; echo; fi; "
        f"if [ -f {JOURNAL} ]; then tail -n {JOURNAL_TAIL} {JOURNAL} | sed 's/^/@journal\\t/'; fi; true"
    )


def parse_lock(text: str) -> LockInfo:
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return LockInfo(
                str(data.get("who", "?")), str(data.get("when", "?")), str(data.get("why", "")), text
            )
    except ValueError:
        pass
    return LockInfo(text.strip() or "unknown", "?", "", text)


def parse_state(host: str, path: str, output: str) -> DeployState:
    lines = output.splitlines()
    if lines and lines[0].strip() == "@missing":
        return DeployState(host, path, False, None)
    state = DeployState(host, path, True, None)
    for line in lines:
        tag, _, value = line.partition("\t")
        if tag == "@current":
            state.current = value.rsplit("/", 1)[-1] if value else None
        elif tag == "@release":
            state.releases.append(value)
        elif tag == "@lock":
            state.lock = parse_lock(value)
        elif tag == "@journal":
            try:
                record = json.loads(value)
            except ValueError:
                state.problems.append(f"unreadable journal line: {value[:80]}")
                continue
            if isinstance(record, dict):
                state.journal.append(record)
    state.releases.sort()
    return state


def read_state(host: Host, config: DeployConfig) -> DeployState:
    result = host.run(read_command(config.path), timeout=host.timeout)
    if not result.ok:
        raise OpsError(
            f"{host.name}: reading {config.path} failed: {result.stderr.strip()[:200]}", "Deploy state"
        )
    return parse_state(host.name, config.path, result.stdout)
