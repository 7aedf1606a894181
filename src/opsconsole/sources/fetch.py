"""What a source's declaration works with: the fetch context, the summary counts, the JSON place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import Environment, HostSpec


class Fetch:
    """What a source's fetch is given: the clients, the environment, its host (per-host sources and
    sources that run in a host's turn), and the read model's shared parts of this refresh."""

    def __init__(
        self,
        clients: Backends,
        env: Environment,
        host: HostSpec | None,
        context: Any,
    ) -> None:
        self.clients = clients
        self.env = env
        self.host = host
        self.context = context  # a sources.model.RefreshContext

    @property
    def spec(self) -> HostSpec:
        assert self.host is not None, "a per-host source is fetched with its host"
        return self.host


Summary = dict[str, Any]  # what a result adds to its environment's summary: counts add up, others replace


@dataclass
class JsonPlace:
    """Where a source writes itself in `status --json`: its host's object (per-host sources) or the
    environment's, plus the environment's container stats (host -> container -> sample)."""

    env: Environment
    target: dict[str, Any]
    host: str | None = None
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
