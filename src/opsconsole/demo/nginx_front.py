"""Nginx in front of the demo's web app, when an `nginx` binary is here: a reverse proxy in the
sandbox (its own prefix, pid, logs and temp paths: Debian's compiled-in `/run` and `/var/lib/nginx`
are never touched) on a loopback port, with a `stub_status` location on another. The tests' Nginx
(tests/nginx_harness.py) is built from the same config."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def config_text(prefix: Path, listen: int, status: int, upstream: int) -> str:
    """The whole config: no `daemon` directive (the master runs with `-g 'daemon off;'`)."""
    return f"""\
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path       {prefix}/tmp/proxy;
    fastcgi_temp_path     {prefix}/tmp/fastcgi;
    uwsgi_temp_path       {prefix}/tmp/uwsgi;
    scgi_temp_path        {prefix}/tmp/scgi;
    default_type application/octet-stream;
    upstream app {{ server 127.0.0.1:{upstream}; }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
        }}
    }}
    server {{
        listen 127.0.0.1:{status};
        location = /nginx_status {{ stub_status; allow 127.0.0.1; deny all; }}
    }}
}}
"""


@dataclass
class NginxFront:
    binary: str
    prefix: Path
    listen: int
    status: int
    upstream: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def write(self) -> None:
        for sub in ("logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(config_text(self.prefix, self.listen, self.status, self.upstream))

    def profile_section(self, env: str, upstream_target: str) -> str:
        return (
            f"\n[environments.{env}.nginx]\n"
            f'prefix = "{self.prefix}"\nconfig = "{self.conf}"\n'
            f'access_log = "{self.prefix}/logs/access.log"\nerror_log = "{self.prefix}/logs/error.log"\n'
            f'status_url = "http://127.0.0.1:{self.status}/nginx_status"\n'
            f'upstreams = {{ "127.0.0.1:{self.upstream}" = "{upstream_target}" }}\n'
        )

    def start(self, preexec: Callable[[], Any] | None = None) -> None:
        """Starts the master (in the foreground, as this process's child) and waits for its pid file."""
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "logs" / "nginx.stderr", "wb"),  # noqa: SIM115 - closed with it
            preexec_fn=preexec,  # noqa: PLW1509 - only async-signal-safe calls
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if (self.prefix / "nginx.pid").exists():
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish their requests
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
