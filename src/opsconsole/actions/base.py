"""The action layer's types: plans, events, the context an action runs in, and the Action base.

An action has an id, a title, a scope and says whether it changes anything. `plan()` returns exactly
what will run per host; `execute()` does it, emitting events; `ActionRun` (in runner.py) wraps it
with the policies (read-only, protected environments, confirmation, audit) and cancellation.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

from opsconsole.actions.events import Emit, Outcome
from opsconsole.backends.clients import Backends
from opsconsole.profiles import Environment, HostSpec, Profile

Scope = Literal["environment", "host", "process", "container", "file", "sentry_issue"]
Viewer = Literal["run", "log"]
StepKind = Literal["command", "rpc", "api", "note"]


@dataclass(frozen=True)
class PlanStep:
    host: str
    kind: StepKind
    text: str


@dataclass(frozen=True)
class Plan:
    """What an action will do: a summary a person decides on, and the exact steps per host."""

    action: str
    env: str
    target: str
    steps: tuple[PlanStep, ...]
    changes: bool
    destructive: bool = False
    summary_lines: tuple[str, ...] = ()

    def by_host(self) -> dict[str, list[PlanStep]]:
        out: dict[str, list[PlanStep]] = {}
        for step in self.steps:
            out.setdefault(step.host, []).append(step)
        return out

    def summary(self) -> str:
        hosts = self.by_host()
        return f"{self.action} {self.target} on {', '.join(hosts) or 'no host'}: {len(self.steps)} steps"

    def headline(self) -> str:
        return f"Plan: {self.action} {self.target} in {self.env}" + (
            " (DESTRUCTIVE)" if self.destructive else ""
        )

    def render_summary(self) -> str:
        """The headline and what a person decides on (hosts, from what to what, builds, restarts)."""
        return "\n".join([self.headline(), *(f"  {line}" for line in self.summary_lines)])

    def render(self) -> str:
        """The summary, then every exact command, call and request per host."""
        lines = [self.render_summary(), "Exact steps:" if self.summary_lines else ""]
        lines = [line for line in lines if line]
        for host, step in self.step_lines():
            lines.append(f"  {host}:" if step is None else f"    {MARKERS[step.kind]} {step.text}")
        return "\n".join(lines)

    def step_lines(self) -> list[tuple[str, PlanStep | None]]:
        """Per host: a heading (step None), then its steps; both renderings walk this."""
        out: list[tuple[str, PlanStep | None]] = []
        for host, steps in self.by_host().items():
            out.append((host, None))
            out.extend((host, step) for step in steps)
        return out


MARKERS = {"command": "$", "rpc": "rpc", "api": "api", "note": "#"}


class FollowUp(Protocol):
    """Work that follows a finished run: `run` blocks until it has a verdict (calling `on_update`
    with its status as it goes); setting `cancel` stops it without one."""

    cancel: threading.Event

    def run(self, on_update: Callable[[Any], None] = ...) -> Any: ...


def whoami() -> str:
    """`user@machine`, as the audit log and deploy journal record it."""
    user = os.environ.get("OPSCONSOLE_USER")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no passwd entry in some containers
            user = "unknown"
    return f"{user}@{socket.gethostname()}"


def new_run_id() -> str:
    """A sortable, unique id for one run of an action: it links the audit records, lock and journal."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Known(Protocol):
    """What the console already holds from its last refresh (the read model's FleetState): a plan
    starts from it instead of reading every host again, and says how old it is."""

    def deploy_state(self, env: str, host: str) -> tuple[Any, float] | None:
        """The host's DeployState and when it was read (time.time()), or None."""
        ...


@dataclass
class ActionContext:
    profile: Profile
    backends: Backends
    read_only: bool = False
    user: str = field(default_factory=whoami)
    cancel: threading.Event = field(default_factory=threading.Event)
    run_id: str = field(default_factory=new_run_id)
    via: str | None = None  # how the run was started when not from a local terminal (e.g. "serve")
    remote: str | None = None  # with via "serve": the browser's address
    known: Known | None = None  # the console's read model; None (the CLI): plans read the hosts


@dataclass(frozen=True)
class Target:
    """What an action is aimed at: an environment, optionally one host, a name and options."""

    env: str
    name: str | None = None
    host: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """An option an action takes (the CLI makes flags of these; the console prompts for them)."""

    key: str
    flags: tuple[str, ...]
    help: str
    kind: Literal["str", "int", "flag"] = "str"
    default: Any = None
    metavar: str | None = None


class Action(ABC):
    """One operation a person can trigger. Subclasses set the class attributes and two methods."""

    id: ClassVar[str]
    title: ClassVar[str]
    scope: ClassVar[Scope]
    changes: ClassVar[bool]
    destructive: ClassVar[bool] = False
    description: ClassVar[str] = ""
    target_arg: ClassVar[str | None] = None  # the positional argument after ENV, if any
    target_help: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # In the console: the default key (None: palette only), its footer label and tooltip, the
    # binding id (actions sharing one, like start/stop, are told apart by `applies_to`), and the
    # kinds of selected row it acts on ("process", "container", "issue"); `selection_optional`
    # actions also run without a selection (logs: then a log file is picked).
    key: ClassVar[str | None] = None
    key_label: ClassVar[str] = ""
    key_id: ClassVar[str | None] = None
    key_in_footer: ClassVar[bool] = True  # the footer is short at 80 columns: the key still works
    tooltip: ClassVar[str] = ""
    selection: ClassVar[tuple[str, ...]] = ()
    selection_optional: ClassVar[bool] = False
    # Which viewer shows a run: "run", the action stream (its events are kept, its end announced);
    # "log", the log viewer (it keeps its own ring buffer, a run that ends well is not announced, it
    # is no operation the header counts, and the CLI prints the lines themselves).
    viewer: ClassVar[Viewer] = "run"
    # The options the console's keys and `:` commands start it with (the CLI takes its flags').
    default_options: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def applies_to(cls, item: Any) -> bool:
        """Whether this action is the one its key means for the selected item (see StartAction)."""
        return True

    def __init__(self, ctx: ActionContext, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.env: Environment = ctx.profile.env(target.env)

    @property
    def hosts(self) -> list[HostSpec]:
        if self.target.host:
            return [self.env.host(self.target.host)]
        return list(self.env.hosts)

    @property
    def target_label(self) -> str:
        return self.target.name or self.env.name

    @property
    def needs_confirmation(self) -> bool:
        return self.changes

    @abstractmethod
    def plan(self) -> Plan: ...

    @abstractmethod
    def execute(self, emit: Emit) -> Outcome: ...

    @property
    def headline(self) -> str:
        """The title and what it acts on, the target left out where it only repeats the title or the
        environment ("Purge cache", "Watch", "Restart supervisor:web")."""
        label = self.target_label
        if not label or label == self.env.name or label.lower() in self.title.lower().split():
            return self.title
        return f"{self.title} {label}"

    def summary(self) -> list[str]:
        """What a person decides on, in a few lines; actions say more where there is more to say."""
        hosts = ", ".join(h.raw for h in self.hosts) or "no host"
        return [f"{self.headline} in {self.env.name} on {hosts}"]

    def idle_message(self) -> str | None:
        """Read once before the console opens a run's screen (off the UI thread): when the action has
        nothing to do (a watch with nothing running), what to say instead; None: run it."""
        return None

    def follow_up(self, outcome: Outcome) -> FollowUp | None:
        """What follows this run's outcome, for the front end to run and show (a successful deploy's
        verification); None: nothing follows. Every front end asks here, so they follow up alike."""
        return None

    def make_plan(self, steps: list[PlanStep], summary: list[str] | None = None) -> Plan:
        return Plan(
            action=self.id,
            env=self.env.name,
            target=self.target_label,
            steps=tuple(steps),
            changes=self.changes,
            destructive=self.destructive,
            summary_lines=tuple(summary if summary is not None else self.summary()),
        )
