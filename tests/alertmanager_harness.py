"""A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) for the tests: one process on a
free loopback port, its config and storage in a temp dir, clustering off
(`--cluster.listen-address=` empty: no :9094 gossip port). Alerts are posted and resolved through
its own API v2, as Prometheus would."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ServiceUnavailable, free_port, stop_process, wait_for

CONFIG = (
    'route:\n  receiver: "null"\n  group_wait: 1s\n  group_by: ["alertname"]\nreceivers:\n  - name: "null"\n'
)


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        raise ServiceUnavailable(
            "prometheus-alertmanager is not installed (scripts/with-services.sh installs it as root)"
        )
    return found


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Alertmanager:
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "am.yml").write_text(CONFIG)
        log = (self.root / "am.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary(),
                f"--config.file={self.root / 'am.yml'}",
                f"--storage.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServiceUnavailable(f"alertmanager exited: {(self.root / 'am.log').read_text()[-500:]}")
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        wait_for(ready, 15, "alertmanager ready")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def fire(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        """Post one firing alert (ends in an hour unless resolved)."""
        now = datetime.now(UTC)
        self.request(
            "POST",
            "/api/v2/alerts",
            [
                {
                    "labels": labels,
                    "annotations": annotations or {},
                    "startsAt": _stamp(now - timedelta(minutes=3)),
                    "endsAt": _stamp(now + timedelta(hours=1)),
                }
            ],
        )

    def resolve(self, labels: dict[str, str]) -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        self.request("POST", "/api/v2/alerts", [{"labels": labels, "endsAt": _stamp(past)}])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v2/alerts") or [])

    def silences(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v2/silences") or [])


def make(root: Path) -> Alertmanager:
    binary()
    return Alertmanager(root, free_port())
