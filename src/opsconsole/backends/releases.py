"""The release layout under `deploy.path` on each host, and reading it (one remote command per host).

PATH/releases/<UTC timestamp>/     one folder per release
PATH/current -> releases/<id>      switched atomically (new symlink, then rename over `current`)
PATH/shared/                       linked into every release
PATH/.opsconsole/lock              JSON: who, when, why, run (present while a deploy holds the lock)
PATH/.opsconsole/lock.beat         epoch seconds, renewed by the running deploy at least every 10 s
PATH/.opsconsole/deploys.jsonl     the journal: one JSON record per attempt and per rollback

`deploy.path` may start with `~/`: it is expanded on each host, for that host's SSH user (see `backends.shell.quote_path`).
Commands here use only what POSIX, GNU, BusyBox and BSD userlands share (userland notes beside them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from opsconsole.backends.hosts import Host
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import OpsError
from opsconsole.human import duration, parse_stamp
from opsconsole.profiles import DeployConfig

STATE_DIR = ".opsconsole"
LOCK = f"{STATE_DIR}/lock"
BEAT = f"{STATE_DIR}/lock.beat"
JOURNAL = f"{STATE_DIR}/deploys.jsonl"
JOURNAL_TAIL = 200
HISTORY_TAIL = 5000  # success and mark_bad records read for pruning and rollback, however old
MAX_RECORD = 64 * 1024
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60


@dataclass(frozen=True)
class LockInfo:
    who: str
    when: str
    why: str
    raw: str = ""
    run: str | None = None
    heartbeat_age: float | None = None  # seconds since the holder last renewed it (host's clock)

    @property
    def stale(self) -> bool:
        return self.heartbeat_age is not None and self.heartbeat_age > STALE_SECONDS

    def describe(self) -> str:
        text = f"held by {self.who} since {self.when}" + (f" ({self.why})" if self.why else "")
        if self.stale and self.heartbeat_age is not None:
            text += (
                f"; STALE: no heartbeat for {duration(self.heartbeat_age)}, the deploy that took it "
                "is most likely dead"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stale"] = self.stale
        return data


@dataclass
class DeployState:
    host: str
    path: str
    exists: bool
    current: str | None
    releases: list[str] = field(default_factory=list)
    lock: LockInfo | None = None
    journal: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # success + mark_bad, whole journal
    warnings: list[str] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)  # first host only: RunInfo of running actions
    recent_runs: list[Any] = field(default_factory=list)  # first host only: RunInfo of the newest runs

    @property
    def bad_releases(self) -> set[str]:
        return {str(r["release"]) for r in self.history + self.journal if r.get("event") == "mark_bad"}

    @property
    def deployed_releases(self) -> set[str]:
        """Releases with a successful deploy record (whether or not still on disk or marked bad)."""
        return {
            str(r["release"])
            for r in self.history + self.journal
            if r.get("event") == "deploy" and r.get("outcome") == "success"
        }

    @property
    def successful_releases(self) -> list[str]:
        """Releases that deployed successfully, oldest first, still present, not marked bad."""
        deployed, bad = self.deployed_releases, self.bad_releases
        return [r for r in self.releases if r in deployed and r not in bad]

    def record_for(self, release: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for record in self.history + self.journal:
            if record.get("event") == "deploy" and record.get("release") == release:
                found = record
        return found

    def current_commit(self) -> str | None:
        """The commit the current release was deployed from, as its journal record names it."""
        if not self.current:
            return None
        commit = self.record_for(self.current).get("commit")
        return str(commit) if commit else None

    def previous_good_commit(self) -> str | None:
        """The commit of the newest release with a successful deploy record that is not marked bad."""
        for release in reversed(self.successful_releases):
            commit = self.record_for(release).get("commit")
            if commit:
                return str(commit)
        return None

    def recent(self, count: int = 10) -> list[dict[str, Any]]:
        return [r for r in self.journal if r.get("event") in ("deploy", "rollback")][-count:][::-1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lock"] = self.lock.to_json() if self.lock else None
        data["journal"] = self.journal[-20:]
        del data["history"]
        del data["recent_runs"]  # the timeline's, not the host's state
        return data


def mark_lines(tag: str) -> str:
    """awk (POSIX) tagging each journal line `TAG\tline`, or `TAG!\tN` for a line over MAX_RECORD,
    which is then not sent at all."""
    return f'awk \'{{ if (length($0) > {MAX_RECORD}) print "{tag}!\\t" NR; else print "{tag}\\t" $0 }}\''


def journal_awk() -> str:
    """One awk (POSIX) over the journal for both of what a state read takes of it: its last
    JOURNAL_TAIL lines as `@journal`, and its last HISTORY_TAIL success and mark_bad records as
    `@history` (as `tail` and `grep -F | tail` would give them, in one process: each fork is
    milliseconds of an idle console's CPU at every refresh)."""
    out = (
        f'function out(tag, line, k) {{ if (length(line) > {MAX_RECORD}) print tag "!\\t" k; '
        'else print tag "\\t" line } '
    )
    keep = (
        f'{{ j[NR % {JOURNAL_TAIL}] = $0 }} '
        'index($0, "\\"event\\": \\"mark_bad\\"") || index($0, "\\"outcome\\": \\"success\\"") '
        f'{{ h[++n % {HISTORY_TAIL}] = $0 }} '
    )
    end = (
        f"END {{ s = NR > {JOURNAL_TAIL} ? NR - {JOURNAL_TAIL} : 0; "
        f'for (i = s + 1; i <= NR; i++) out("@journal", j[i % {JOURNAL_TAIL}], i - s); '
        f"s = n > {HISTORY_TAIL} ? n - {HISTORY_TAIL} : 0; "
        f'for (i = s + 1; i <= n; i++) out("@history", h[i % {HISTORY_TAIL}], i - s) }}'
    )
    return "awk " + quote(out + keep + end)


def read_command(path: str) -> str:
    p = quote_path(path)
    # `date +%s` and `head -c` are not POSIX but GNU, BusyBox and BSD all have them; `tr -dc` and
    # awk's `index` are POSIX.
    return (
        f"cd {p} 2>/dev/null || {{ echo '@missing'; exit 0; }}; "
        "printf '@now\\t%s\\n' \"$(date +%s)\"; "
        "printf '@current\\t%s\\n' \"$(readlink current 2>/dev/null)\"; "  # plain readlink: GNU/BusyBox/BSD
        'if [ -d releases ]; then for r in releases/*; do [ -d "$r" ] && printf \'@release\\t%s\\n\' "${r#releases/}"; done; fi; '
        f"if [ -f {LOCK} ]; then printf '@lock\\t'; head -c {MAX_RECORD} {LOCK} | tr -d '\\n'; echo; "
        f"printf '@beat\\t%s\\n' \"$(head -c 32 {BEAT} 2>/dev/null | tr -dc 0-9)\"; fi; "
        f"if [ -f {JOURNAL} ]; then {journal_awk()} {JOURNAL}; fi; true"
    )


def parse_lock(text: str, now: int | None = None, beat: int | None = None) -> LockInfo:
    info = LockInfo(text.strip()[:200] or "unknown", "?", "", text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        run = data.get("run")
        info = LockInfo(
            str(data.get("who", "?")),
            str(data.get("when", "?")),
            str(data.get("why", "")),
            text,
            str(run) if run else None,
        )
    if now is None:
        return info
    if beat is None:  # a lock without heartbeat (older opsconsole): its age is its heartbeat
        try:
            taken = parse_stamp(info.when)
            beat = int(taken.timestamp())
        except ValueError:
            return info
    return LockInfo(info.who, info.when, info.why, info.raw, info.run, float(max(0, now - beat)))


_REQUIRED = {
    "deploy": ("release", "outcome"),
    "rollback": ("release", "outcome"),
    "mark_bad": ("release",),
    "verify": ("release",),
}


def parse_record(value: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) or (None, why it was skipped)."""
    if len(value) > MAX_RECORD:
        return None, f"a record over {MAX_RECORD // 1024} KiB"
    try:
        record = json.loads(value)
    except RecursionError:
        return None, "a record nested too deeply to read"
    except ValueError:
        return None, f"an unreadable line ({value[:60]!r})"
    if not isinstance(record, dict):
        return None, f"a line that is not a record ({value[:60]!r})"
    event = record.get("event")
    missing = [k for k in _REQUIRED.get(str(event), ()) if not isinstance(record.get(k), str)]
    if not isinstance(event, str) or missing:
        what = f"'{event}' record without {', '.join(missing)}" if missing else "record without an event"
        return None, f"an incomplete {what}"
    return record, None


def parse_state(host: str, path: str, output: str) -> DeployState:
    lines = output.splitlines()
    if lines and lines[0].strip() == "@missing":
        return DeployState(host, path, False, None)
    state = DeployState(host, path, True, None)
    now: int | None = None
    beat: int | None = None
    lock_text: str | None = None
    skipped: dict[str, int] = {}
    for line in lines:
        tag, _, value = line.partition("\t")
        if tag == "@now" and value.isdigit():
            now = int(value)
        elif tag == "@current":
            state.current = value.rsplit("/", 1)[-1] if value else None
        elif tag == "@release":
            state.releases.append(value)
        elif tag == "@lock":
            lock_text = value
        elif tag == "@beat" and value.isdigit():
            beat = int(value)
        elif tag == "@journal!":  # awk's mark for a record too long to send
            too_long = f"a record over {MAX_RECORD // 1024} KiB"
            skipped[too_long] = skipped.get(too_long, 0) + 1
        elif tag in ("@journal", "@history"):
            record, why = parse_record(value)
            if record is None:
                if tag == "@journal" and why:
                    skipped[why] = skipped.get(why, 0) + 1
                continue
            (state.journal if tag == "@journal" else state.history).append(record)
    if lock_text is not None:
        state.lock = parse_lock(lock_text, now, beat)
    for why, count in skipped.items():
        times = f" ({count} lines)" if count > 1 else ""
        state.warnings.append(f"{host}: journal {path}/{JOURNAL}: skipped {why}{times}")
    state.releases.sort()
    return state


def read_state(host: Host, config: DeployConfig) -> DeployState:
    result = host.run(read_command(config.path), timeout=host.timeout)
    if not result.ok:
        raise OpsError(
            f"{host.name}: reading {config.path} failed: {result.stderr.strip()[:200]}", "Deploy state"
        )
    return parse_state(host.name, config.path, result.stdout)


def read_journal(host: Host, config: DeployConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable record of the host's journal (for delivery metrics) and warnings for the rest."""
    journal = quote_path(f"{config.path}/{JOURNAL}")
    command = f"if [ -f {journal} ]; then {mark_lines('@journal')} < {journal}; fi"
    result = host.run(command, timeout=max(host.timeout, 30.0))
    if not result.ok:
        raise OpsError(f"{host.name}: reading the journal failed: {result.stderr.strip()[:200]}", "Journal")
    state = parse_state(host.name, config.path, result.stdout)  # the same reading as the Deploys pane's
    return state.journal, state.warnings


def prune_candidates(state: DeployState, keep: int, ours: str | None = None) -> list[str]:
    """Release folders to remove: all but the `keep` newest good ones, `current`, the previous good one
    and `ours`. Good = a successful deploy record and not marked bad; failed, interrupted and
    unjournalled leftovers and bad releases beyond that set go."""
    good = state.successful_releases
    kept = set(good[-keep:])
    if state.current:
        kept.add(state.current)
        earlier = [r for r in good if r < state.current]
        if earlier:
            kept.add(earlier[-1])
    if ours:
        kept.add(ours)
    return [r for r in state.releases if r not in kept]
