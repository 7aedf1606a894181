"""What screens and widgets may use of the console app: a small protocol, so screens depend on
this and not on `OpsConsoleApp` (no app <-> screens import cycle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from textual.screen import Screen

    from opsconsole.actions.deploy.verify import VerifyStatus
    from opsconsole.actions.runs import Runs, RunState
    from opsconsole.backends.clients import Backends
    from opsconsole.profiles import Profile
    from opsconsole.sources.catalog import SourceKey
    from opsconsole.sources.fanout import SourceResult
    from opsconsole.sources.state import FleetState


class Console(Protocol):
    profile: Profile
    backends: Backends
    read_only: bool
    live: bool
    log_lines: int
    clock: Callable[[], float]
    state: FleetState
    runs: Runs
    current_env: str | None

    @property
    def results(self) -> dict[str, dict[SourceKey, SourceResult[Any]]]: ...

    @property
    def stats(self) -> dict[str, dict[str, dict[str, Any]]]: ...

    @property
    def verifications(self) -> dict[str, VerifyStatus]: ...

    @property
    def screen(self) -> Screen[Any]: ...

    def request_action(
        self, action_id: str, env: str, name: str | None = None, host: str | None = None, **options: Any
    ) -> None: ...

    def refresh_env(self, env_name: str) -> Any: ...

    def action_refresh(self) -> None: ...

    def show_run(self, state: RunState) -> None: ...

    @property
    def saves_to_browser(self) -> bool: ...

    def save_text(self, path: Path, text: str, *, overwrite: bool = False) -> str: ...

    def notify(self, message: str, **kwargs: Any) -> None: ...
