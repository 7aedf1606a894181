"""A real Nginx for the tests: a reverse proxy in a temp prefix, on loopback ports, with a
`stub_status` location, in front of one upstream port (served by whatever the test starts there);
its config is the demo's (opsconsole/demo/nginx_front.py).

Debian compiles in `/run/nginx.pid` and `/var/lib/nginx/*`: the config written here overrides every
such path, so nothing outside the prefix is touched. The master runs in the foreground
(`daemon off`) as the fixture's child, and is stopped with `nginx -s quit`, then signals.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness import ServiceUnavailable, free_port, stop_process, wait_for
from opsconsole.demo.nginx_front import config_text, nginx_binary


@dataclass
class Nginx:
    binary: str
    prefix: Path
    listen: int
    status: int
    upstream: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status}/nginx_status"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def args(self, *more: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), *more]

    def write_config(self, text: str | None = None) -> None:
        self.conf.write_text(text or config_text(self.prefix, self.listen, self.status, self.upstream))

    def break_config(self) -> None:
        """A syntax error `nginx -t` names (the running server keeps its loaded config)."""
        self.conf.write_text(self.conf.read_text().replace("worker_processes 1;", "worker_processes 1"))

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args("-g", "daemon off;"),
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "nginx.stderr", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceUnavailable(
                    "nginx exited: " + (self.prefix / "nginx.stderr").read_text(errors="replace")[-2000:]
                )
            return bool(self.workers()) and get(self.status_url)[0] == 200

        wait_for(ready, 15, "nginx")

    @property
    def master(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers(self) -> list[int]:
        """The master's children (its workers), from /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.master and fields[0] != "Z":
                found.append(int(entry.name))
        return sorted(found)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(self.args("-s", "quit"), capture_output=True, timeout=10, check=False)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def make_nginx(prefix: Path, upstream: int) -> Nginx:
    """Nginx (not started) in `prefix`, proxying to 127.0.0.1:`upstream`."""
    binary = nginx_binary()
    if binary is None:
        raise ServiceUnavailable("nginx is not installed (scripts/with-services.sh installs it as root)")
    for sub in ("logs", "tmp", "html"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    server = Nginx(binary, prefix, free_port(), free_port(), upstream)
    server.write_config()
    return server


def wait_worker_change(server: Nginx, before: list[int], timeout: float = 10.0) -> list[int]:
    """The workers once none of `before` is left (a reload's old workers finish, then exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = server.workers()
        if now and not set(now) & set(before):
            return now
        time.sleep(0.05)
    raise AssertionError(f"nginx workers still {server.workers()} (before {before})")
