"""The demo's Alertmanager (Debian's `prometheus-alertmanager`, when it is installed): one process on
a loopback port, clustering off, its config and storage in the sandbox. The load loop
(files/loadgen.py) fires and resolves one alert on it, so the Alerts pane is live."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

CONFIG = (
    'route:\n  receiver: "null"\n  group_wait: 1s\n  group_by: ["alertname"]\nreceivers:\n  - name: "null"\n'
)


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def start(folder: Path, port: int, log: Path, preexec: Callable[[], None]) -> subprocess.Popen[bytes] | None:
    found = binary()
    if found is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "am.yml").write_text(CONFIG)
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                found,
                f"--config.file={folder / 'am.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,  # noqa: PLW1509 - only async-signal-safe calls
        )


def profile_section(env: str, port: int) -> str:
    return (
        f'\n[environments.{env}.alerts]\nurl = "http://127.0.0.1:{port}"\n'
        f'matchers = [\'env="{env}"\']\nsilence_default = "1h"\n'
    )
