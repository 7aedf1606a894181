"""Silences in Alertmanager: `silence` (matchers, for a while, with a comment), `ack` (a short
silence on the selected alert, as karma's ACK) and `unsilence` (expire one by id).

Every silence is also limited to the environment: its `[alerts] matchers` are added to the ones
given, so a silence made from one environment never mutes another's alerts sharing the same
Alertmanager. `createdBy` is the person as the audit log names them (`ctx.user`). Alertmanager
gives a new id to a silence whose matchers change: the outcome shows the id it returned.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Option, Plan, PlanStep, Scope
from opsconsole.actions.events import Emit, Notice, Outcome, StepFinished, StepStarted
from opsconsole.errors import ExitCode, OpsError, UsageError
from opsconsole.profiles.alerts_keys import matcher_text, parse_duration, parse_matcher
from opsconsole.profiles.model import AlertsConfig

HOST = "alertmanager"  # the plan's and the events' "host": the environment's Alertmanager
_TOKEN_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^\s"]*)')


def split_matchers(text: str) -> list[str]:
    """Matchers from the CLI's words or a selected alert: `NAME=VALUE` (amtool's unquoted form, no
    spaces) or Alertmanager's quoted `NAME="VALUE"`, any of =, !=, =~, !~; returned quoted."""
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise UsageError(
                f"'{text[pos:].strip()}' is not a matcher: write NAME=VALUE (or NAME=\"VALUE\", !=, =~, !~)",
                "Bad matcher",
            )
        name, op, value = match.groups()
        quoted = value if value.startswith('"') else matcher_text(name, op, value)[len(name) + len(op) :]
        parsed = parse_matcher(f"{name}{op}{quoted}")
        if isinstance(parsed, str):
            raise UsageError(parsed, "Bad matcher")
        out.append(matcher_text(*parsed))
        pos = match.end()
    return out


def one_matcher(word: str) -> list[str]:
    """One CLI word: `NAME=VALUE` whose unquoted value may hold spaces (the shell kept it one word)."""
    match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)", word, re.S)
    if match is not None and not match.group(3).lstrip().startswith('"'):
        name, op, value = match.groups()
        return split_matchers(matcher_text(name, op, value))
    return split_matchers(word)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


class _AlertsAction(Action):
    scope: ClassVar[Scope] = "environment"
    changes: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.env.alerts is None:
            raise UsageError(
                f"environment '{self.env.name}' has no [alerts] section: add url and matchers",
                "Not configured",
            )
        self.config: AlertsConfig = self.env.alerts

    @property
    def hosts(self) -> list[Any]:
        return []  # Alertmanager is no host of the environment's: nothing runs over SSH

    def client(self) -> Any:
        from opsconsole.backends.alertmanager import make_client

        return make_client(self.config, self.ctx.profile.defaults.timeout)


class SilenceAction(_AlertsAction):
    id: ClassVar[str] = "silence"
    title: ClassVar[str] = "Silence alerts"
    description: ClassVar[str] = (
        "Create an Alertmanager silence: matchers (NAME=VALUE, also !=, =~, !~), --for (default "
        "[alerts] silence_default, 1h) and a required --comment; the environment's own matchers are added"
    )
    target_arg: ClassVar[str | None] = "MATCHER"
    target_nargs: ClassVar[str] = "+"
    target_help: ClassVar[str] = 'NAME=VALUE ... (e.g. alertname=DiskFull instance="web 1")'
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "for", ("--for",), "how long, e.g. 30m, 2h (default: alerts.silence_default)", metavar="DURATION"
        ),
        Option("comment", ("--comment", "-m"), "why (required; the console asks for it)", metavar="TEXT"),
    )
    key: ClassVar[str | None] = "z"
    key_label: ClassVar[str] = "Silence"
    key_in_footer: ClassVar[bool] = False
    tooltip: ClassVar[str] = "Silence the selected alert's group (its group labels), asking for a comment"
    selection: ClassVar[tuple[str, ...]] = ("alert",)
    prompt_for: ClassVar[tuple[str, str]] = ("comment", "Why silence it? (the silence's comment)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        words = self.target.options.get("matchers")
        given = (
            [m for w in words for m in one_matcher(str(w))]
            if words
            else split_matchers(self.target.name or "")
        )
        if not given:
            raise UsageError("name at least one matcher, e.g. alertname=DiskFull", "Missing matcher")
        own = [m for m in self.config.matchers if m not in given]
        self.matchers: list[str] = [*given, *own]
        if not self.comment:
            raise UsageError(
                "a silence needs a comment: --comment TEXT (why, and for whom)", "Comment required"
            )
        self.seconds = self._seconds()
        self.starts = time.time()
        self.ends = self.starts + self.seconds

    def _seconds(self) -> float:
        text = self.target.options.get("for")
        if not text:
            return self.config.silence_default
        seconds = parse_duration(str(text))
        if isinstance(seconds, str):
            raise UsageError(f"--for: {seconds}", "Bad duration")
        return seconds

    @property
    def comment(self) -> str:
        return str(self.target.options.get("comment") or "").strip()

    @property
    def target_label(self) -> str:
        return " ".join(self.matchers)

    def summary(self) -> list[str]:
        return [
            f"Silence in {self.env.name}'s Alertmanager ({self.config.url}): a change",
            f"matchers: {' '.join(self.matchers)}",
            f"from {_when(self.starts)} until {_when(self.ends)} ({self.seconds / 60:g} min)",
            f"by {self.ctx.user}: {self.comment}",
        ]

    def plan(self) -> Plan:
        steps = [PlanStep(HOST, "api", f"POST {self.config.url.rstrip('/')}/api/v2/silences")]
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        # the silence starts now (not when the plan was made) and keeps the planned length
        self.starts = time.time()
        self.ends = self.starts + self.seconds
        client = self.client()
        emit(StepStarted(HOST, "create silence"))
        try:
            silence_id = client.create_silence(
                self.matchers, self.starts, self.ends, self.ctx.user, self.comment
            )
        except OpsError as exc:
            emit(StepFinished(HOST, "create silence", False, exc.message))
            return Outcome(False, exc.message, exc.exit_code)
        finally:
            client.close()
        emit(StepFinished(HOST, "create silence", True, f"silence {silence_id}"))
        emit(
            Notice(f"silence id: {silence_id} (opsconsole unsilence {self.env.name} {silence_id} expires it)")
        )
        return Outcome(
            True,
            f"silenced until {_when(self.ends)}: silence {silence_id} ({' '.join(self.matchers)})",
            ExitCode.OK,
            {HOST: silence_id},
        )


class AckAction(SilenceAction):
    id: ClassVar[str] = "ack"
    title: ClassVar[str] = "Ack alert"
    description: ClassVar[str] = (
        "Acknowledge an alert: a short silence ([alerts] ack, default 15 min) on exactly its labels, "
        "commented with who acked it"
    )
    key: ClassVar[str | None] = "A"
    key_label: ClassVar[str] = "Ack"
    tooltip: ClassVar[str] = "Ack the selected alert: a 15-minute silence on its labels"
    prompt_for: ClassVar[tuple[str, str]] = ("", "")

    def _seconds(self) -> float:
        text = self.target.options.get("for")
        return super()._seconds() if text else self.config.ack

    @property
    def comment(self) -> str:
        given = str(self.target.options.get("comment") or "").strip()
        return given or f"ACK by {self.ctx.user} from opsconsole"


class UnsilenceAction(_AlertsAction):
    id: ClassVar[str] = "unsilence"
    title: ClassVar[str] = "Expire silence"
    description: ClassVar[str] = "Expire an Alertmanager silence by its id (the alerts it muted show again)"
    target_arg: ClassVar[str | None] = "SILENCE_ID"
    target_help: ClassVar[str] = "the id `silence` printed (or the Alerts pane's state column)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.target.name or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.target.name):
            raise UsageError(
                "name the silence's id, e.g. 6ac7dc61-9f45-41f9-9c2b-a4723d35cc3b", "Bad silence id"
            )
        self.silence_id = self.target.name
        self.found: dict[str, Any] | None = None
        self.found_error = ""

    def summary(self) -> list[str]:
        lines = [
            f"Expire silence {self.silence_id} in {self.env.name}'s Alertmanager ({self.config.url}): a change"
        ]
        if self.found is not None:
            from opsconsole.sanitize import clean

            matchers = self.found.get("matchers")
            texts = [
                matcher_text(
                    str(m.get("name")),
                    ("=" if m.get("isEqual", True) else "!") + ("~" if m.get("isRegex") else ""),
                    str(m.get("value")),
                )
                .replace("!=~", "!~")
                .replace("==", "=")
                for m in (matchers if isinstance(matchers, list) else [])
                if isinstance(m, dict)
            ]
            status = self.found.get("status")
            state = status.get("state") if isinstance(status, dict) else "?"
            lines.append(
                clean(f"matchers: {' '.join(texts)} ({state}), by {self.found.get('createdBy')}", 300)
            )
            lines.append(clean(f"comment: {self.found.get('comment')}", 300))
        elif self.found_error:
            lines.append(f"could not read it: {self.found_error}")
        return lines

    def plan(self) -> Plan:
        client = self.client()
        try:
            self.found = client.silence(self.silence_id)
        except OpsError as exc:
            self.found_error = exc.message
        finally:
            client.close()
        steps = [
            PlanStep(HOST, "api", f"DELETE {self.config.url.rstrip('/')}/api/v2/silence/{self.silence_id}")
        ]
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        client = self.client()
        emit(StepStarted(HOST, "expire silence"))
        try:
            client.expire(self.silence_id)
            state = client.silence(self.silence_id).get("status", {}).get("state")
        except OpsError as exc:
            emit(StepFinished(HOST, "expire silence", False, exc.message))
            return Outcome(False, exc.message, exc.exit_code)
        finally:
            client.close()
        emit(StepFinished(HOST, "expire silence", True, f"state {state}"))
        return Outcome(
            True, f"silence {self.silence_id} expired (state {state})", ExitCode.OK, {HOST: "expired"}
        )
