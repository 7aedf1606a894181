"""The demo sandbox: real services on this machine, in a temp folder, on free loopback ports.

- supervisord (the `supervisor` package) running the web app (from the deploy's `current`), a worker
  that logs steadily (some lines in ANSI colours) and a flaky program that crashes now and then;
- a git repository with a few commits, released by the real deploy action into `srv/shop`;
- Redis for the cache purge when redis-server is installed, else the web app's own cache;
- containers when a Docker Engine answers (image imported from a busybox rootfs, as the tests do).

A demo owns only what it made. Its id is its folder's suffix; its containers carry the labels
`opsconsole.demo` (its folder), `opsconsole.demo.sandbox` (its id) and `opsconsole.demo.host`; its
console holds a flock on `<folder>/alive.lock` for as long as it runs (`profiles.demo_alive`). At
start a demo removes only the containers and leftovers of demos that are dead by that test, never a
live one's. While it runs, `<data dir>/demos/<id>.toml` links to its generated profile (trusted, so
`opsconsole --profile demo` reaches it from any terminal) and its Bugsink token is the secret file
`<data dir>/secrets/demo-<id>-bugsink-token` (0600).

Everything is torn down on exit, on Ctrl+C, on SIGTERM, and when the console process dies however it
dies: its services through PR_SET_PDEATHSIG on Linux, and on every system a small watchdog process
(its own session) that polls the console's pid, then stops the services, removes the containers,
the registry link, the token, the trust record and the folder.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconsole.demo.docker_host import IMAGE, ensure_image
from opsconsole.errors import OpsError
from opsconsole.profiles import DEMO_LOCK, demo_alive
from opsconsole.profiles import demo_registry as registry

DEMO_LABEL = "opsconsole.demo"  # value: the sandbox folder; on every demo container
SANDBOX_LABEL = "opsconsole.demo.sandbox"  # value: the sandbox's id
HOST_LABEL = "opsconsole.demo.host"  # value: the machine whose process table and /tmp judge liveness

FILES = Path(__file__).parent / "files"
TEMPLATE = Path(__file__).resolve().parents[3] / "profiles" / "demo.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the console process dies, however it dies.

    PR_SET_PDEATHSIG is Linux-only; on macOS and other systems `Sandbox.start` runs a watchdog
    process instead (see `_start_watchdog`)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    os.setsid()


# argv: the console's pid, the sandbox folder, process groups. Polls the pid every 0.5 s; when it is
# gone, SIGTERMs the groups (those of argv and of `<folder>/groups`, one pid a line), waits up to
# 3 s for them, runs the teardown of $OPSCONSOLE_DEMO_WATCHDOG (JSON: `docker` url and `label` of the
# containers to remove, `untrust` a profile path, `remove` paths), then removes the folder.
_WATCHDOG = """
import json, os, shutil, signal, sys, time
parent, root, groups = int(sys.argv[1]), sys.argv[2], [int(g) for g in sys.argv[3:]]
todo = json.loads(os.environ.get("OPSCONSOLE_DEMO_WATCHDOG") or "{}")
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
try:
    with open(os.path.join(root, "groups")) as listed:
        groups += [int(line) for line in listed if line.strip()]
except (OSError, ValueError):
    pass
for group in groups:
    try:
        os.killpg(group, signal.SIGTERM)
    except OSError:
        pass
deadline = time.monotonic() + 3
for group in groups:
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except OSError:
            break
        time.sleep(0.1)
if todo.get("docker"):
    try:
        import docker
        client = docker.DockerClient(base_url=todo["docker"], timeout=20)
        for container in client.containers.list(all=True, filters={"label": todo["label"]}):
            container.remove(force=True)
        client.close()
    except Exception:
        pass
if todo.get("untrust"):
    try:
        from opsconsole.profiles.trust import revoke_trust
        from pathlib import Path
        revoke_trust(Path(todo["untrust"]))
    except Exception:
        pass
for path in todo.get("remove", []):
    try:
        os.unlink(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
shutil.rmtree(root, ignore_errors=True)
"""


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo Dev",
        "GIT_AUTHOR_EMAIL": "dev@demo.invalid",
        "GIT_COMMITTER_NAME": "Demo Dev",
        "GIT_COMMITTER_EMAIL": "dev@demo.invalid",
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def template_text() -> str:
    if TEMPLATE.is_file():
        return TEMPLATE.read_text()
    packaged = FILES / "demo.toml"
    return packaged.read_text()


def _toml_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


def _hostname() -> str:
    return socket.gethostname()


@dataclass
class Sandbox:
    root: Path
    web_port: int = field(default_factory=free_port)
    redis_port: int | None = None
    supervisord: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    prometheus: subprocess.Popen[bytes] | None = None
    prometheus_port: int | None = None
    alertmanager: subprocess.Popen[bytes] | None = None
    alertmanager_port: int | None = None
    bugsink_port: int | None = None
    bugsink: Any = None
    _bugsink_placeholder: Any = None
    _bugsink_done: threading.Event = field(default_factory=threading.Event)
    containers: list[str] = field(default_factory=list)
    docker_note: str | None = None
    docker_url: str | None = None
    watchdog: subprocess.Popen[bytes] | None = None
    profile_path: Path | None = None
    nginx: Any = None  # a demo.nginx_front.NginxFront in front of the web app, when nginx is here
    log: Callable[[str], None] = print
    _socket_dir: Path | None = None
    _lock_fd: int | None = None

    @property
    def sandbox_id(self) -> str:
        return self.root.name.removeprefix("opsconsole-demo-")

    @property
    def token_name(self) -> str:
        """The secret the profile names for Bugsink: one per demo, so two demos never share it."""
        return f"demo-{self.sandbox_id}-bugsink-token"

    @property
    def registry_link(self) -> Path:
        return registry() / f"{self.sandbox_id}.toml"

    @property
    def socket_path(self) -> Path:
        path = self.root / "supervisor.sock"
        if len(str(path)) < 100:
            return path
        # a unix socket path is limited to 107 bytes: a long TMPDIR gets a short side folder
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="opsc-", dir="/tmp"))
        return self._socket_dir / "supervisor.sock"

    # ------------------------------------------------------------- start

    def start(self) -> Path:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        # alive from here on: the flock says so to other demos and to `--profile demo` (the kernel
        # drops it however this process ends), and the watchdog tears down whatever follows
        self._lock_fd = os.open(self.root / DEMO_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())
        self._find_docker()
        _ = self.socket_path  # makes the short side folder, if any, before the watchdog is told of it
        self._start_watchdog()
        self._prune_dead_demos()
        self._make_repo()
        self._start_redis()
        self._start_prometheus()
        self._start_alertmanager()
        self._start_bugsink()
        self._plan_nginx()
        self._write_profile()
        if self.nginx is not None:
            self.nginx.start(_die_with_parent)  # before the load: it goes through Nginx
            self._note_group(self.nginx.proc)
        self._start_supervisord()
        self._start_containers()
        self._register()
        assert self.profile_path is not None
        return self.profile_path

    def _note_group(self, proc: subprocess.Popen[bytes] | None) -> None:
        """A service's process group, for the watchdog (each service is a session of its own)."""
        if proc is not None:
            with open(self.root / "groups", "a") as listed:
                listed.write(f"{proc.pid}\n")

    def _start_watchdog(self) -> None:
        from opsconsole.secrets import secret_file

        remove = [str(self.registry_link), str(secret_file(self.token_name))]
        if self._socket_dir is not None:
            remove.append(str(self._socket_dir))
        todo = {
            "docker": self.docker_url,
            "label": f"{SANDBOX_LABEL}={self.sandbox_id}",
            "untrust": str(self.root / "demo.toml"),
            "remove": remove,
        }
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "OPSCONSOLE_DEMO_WATCHDOG": json.dumps(todo)},
        )

    def _register(self) -> None:
        """Trust the generated profile and link it from the user's data dir: `--profile demo`."""
        from opsconsole.profiles.trust import record_trust

        assert self.profile_path is not None
        record_trust(self.profile_path, self.profile_path.read_bytes())
        link = self.registry_link
        link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = link.with_name(f".{link.name}.tmp")
        temp.unlink(missing_ok=True)
        temp.symlink_to(self.profile_path)
        os.replace(temp, link)

    def _prune_dead_demos(self) -> None:
        """What dead demos of this user left (their console and watchdog both killed): registry
        links, tokens, trust records and folders. Their containers go in `_start_containers`."""
        from opsconsole.profiles.trust import revoke_trust
        from opsconsole.secrets import secret_file

        folder = registry()
        for link in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            target = Path(os.readlink(link)) if link.is_symlink() else None
            if target is not None and demo_alive(target.parent):
                continue
            if target is not None:
                revoke_trust(target)
                if target.parent.name.startswith("opsconsole-demo-"):
                    shutil.rmtree(target.parent, ignore_errors=True)
            secret_file(f"demo-{link.stem}-bugsink-token").unlink(missing_ok=True)
            link.unlink(missing_ok=True)

    def _find_docker(self) -> None:
        from opsconsole.demo.docker_host import find_engine

        def ping(url: str) -> None:
            import docker

            client = docker.DockerClient(base_url=url, timeout=5)
            try:
                client.ping()
            finally:
                client.close()

        self.docker_url, note = find_engine(ping)
        if self.docker_url is None:
            self.docker_note = note

    def _make_repo(self) -> None:
        work = self.root / "shop-src"
        shutil.copytree(FILES / "app", work)
        _git(work, "init", "-q", "-b", "main")
        for version, message in (
            ("1.0.0", "First shop"),
            ("1.1.0", "Add visit counter"),
            ("1.2.0", "Faster pages"),
        ):
            (work / "VERSION").write_text(version + "\n")
            (work / "assets" / "base.css").write_text(
                (FILES / "app" / "assets" / "base.css").read_text()
                + f"/* {version} */\nh1 {{ color: #{abs(hash(version)) % 0xFFFFFF:06x}; }}\n"
            )
            _git(work, "add", "-A")
            _git(work, "commit", "-q", "-m", message)
            _git(work, "tag", f"v{version}")
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(work), str(self.root / "shop.git")],
            check=True,
            capture_output=True,
        )

    def _start_redis(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            return
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            [
                server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only async-signal-safe calls
        )
        self._note_group(self.redis)

    def _plan_nginx(self) -> None:
        """Nginx in front of the web app (the Nginx pane), when the binary is here; else said so."""
        from opsconsole.demo.nginx_front import NginxFront, nginx_binary

        binary = nginx_binary()
        if binary is None:
            self.log(
                "nginx not found: the demo's web app runs without Nginx in front (no Nginx pane). "
                "For it: apt-get install nginx (or `make test`, which installs it)"
            )
            return
        self.nginx = NginxFront(binary, self.root / "nginx", free_port(), free_port(), self.web_port)
        self.nginx.write()

    @property
    def front_port(self) -> int:
        """Where the load goes: Nginx when it is in front, else the web app itself."""
        return int(self.nginx.listen) if self.nginx is not None else self.web_port

    def _start_alertmanager(self) -> None:
        """Alertmanager for the Alerts pane, when the binary is here; the load loop fires its alert."""
        from opsconsole.demo import alertmanager

        port = free_port()
        self.alertmanager = alertmanager.start(
            self.root / "alertmanager", port, self.root / "logs" / "alertmanager.log", _die_with_parent
        )
        self._note_group(self.alertmanager)
        if self.alertmanager is None:
            self.log(
                "prometheus-alertmanager not found: no Alerts pane (apt-get install prometheus-alertmanager)"
            )
            return
        self.alertmanager_port = port

    def _start_prometheus(self) -> None:
        """Prometheus scraping the web app's /metrics, when the binary is here (Debian's `prometheus`)."""
        binary = shutil.which("prometheus") or "/opt/opsconsole-prometheus/usr/bin/prometheus"
        if not os.path.exists(binary):
            self.log(
                "prometheus not found: the Metrics pane shows delivery metrics only. For live service "
                "metrics: apt-get install prometheus (or `make test`, which unpacks it)"
            )
            return
        folder = self.root / "prometheus"
        folder.mkdir(exist_ok=True)
        (folder / "prom.yml").write_text(
            "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
            "scrape_configs:\n  - job_name: shop\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.web_port}']}}]\n"
        )
        self.prometheus_port = free_port()
        self.prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prom.yml'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                f"--storage.tsdb.path={folder / 'data'}",
            ],
            stdout=open(self.root / "logs" / "prometheus.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only async-signal-safe calls
        )
        self._note_group(self.prometheus)

    def _start_bugsink(self) -> None:
        """Bugsink in the background (the console starts at once): until it answers, its port serves
        a 503 that the Errors pane shows as "starting Bugsink…". Off with OPSCONSOLE_DEMO_BUGSINK=0,
        and when a real Sentry is configured for the demo."""
        if os.environ.get("OPSCONSOLE_DEMO_BUGSINK") == "0" or self._sentry_env():
            return
        import secrets
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opsconsole.secrets import env_var

        self.bugsink_port = free_port()
        token = secrets.token_hex(20)
        # the profile names this secret: this process reads it from its environment, other terminals
        # from the secret file (removed at teardown)
        os.environ[env_var(self.token_name)] = token
        self._write_token(token)
        state = {
            "detail": "starting Bugsink… (the first start installs it into its own venv: about a minute)"
        }
        self._mark_bugsink_starting(state["detail"])

        class Placeholder(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps({"detail": state["detail"]}).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        placeholder = ThreadingHTTPServer(("127.0.0.1", self.bugsink_port), Placeholder)
        placeholder.daemon_threads = True
        self._bugsink_placeholder = placeholder
        threading.Thread(target=placeholder.serve_forever, daemon=True).start()

        def free_the_port() -> None:
            placeholder.shutdown()
            placeholder.server_close()

        def boot() -> None:
            from opsconsole.demo import bugsink

            try:
                self.bugsink = bugsink.start(
                    self.root / "bugsink",
                    self.bugsink_port or 0,
                    token,
                    preexec=_die_with_parent,
                    before_listen=free_the_port,
                )
            except OpsError as exc:
                state["detail"] = f"Bugsink could not start: {exc.message}"
                self._unmark_bugsink_starting()  # from now on, what the placeholder says is an error
                self.log(f"opsconsole demo: {state['detail']}")
                return
            self._note_group(self.bugsink.proc)
            (self.root / "bugsink.dsn").write_text(self.bugsink.dsn)
            self._unmark_bugsink_starting()  # it answers, with its project: no longer starting
            # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: this one stays
            # until the sandbox stops, so Bugsink still dies with the console, and only then
            self._bugsink_done.wait()

        threading.Thread(target=boot, daemon=True, name="bugsink").start()

    def _mark_bugsink_starting(self, detail: str) -> None:
        """Tell every console reading this Bugsink that it is starting (backends.bugsink's marker):
        from before its port answers (the placeholder's 503, then refused while gunicorn binds)
        until its project exists. The marker names this process: it counts for nothing once we die."""
        from opsconsole.atomic import write_atomic
        from opsconsole.backends.bugsink import starting_marker

        marker = starting_marker(f"http://127.0.0.1:{self.bugsink_port}")
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(marker, f"{os.getpid()}\n{detail}\n".encode())

    def _unmark_bugsink_starting(self) -> None:
        from opsconsole.backends.bugsink import starting_marker

        if self.bugsink_port is not None:
            starting_marker(f"http://127.0.0.1:{self.bugsink_port}").unlink(missing_ok=True)

    def _write_token(self, token: str) -> None:
        from opsconsole.secrets import secret_file

        path = secret_file(self.token_name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f".{path.name}.tmp")
        temp.unlink(missing_ok=True)
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, token.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)

    @staticmethod
    def _sentry_env() -> bool:
        return bool(
            os.environ.get("OPSCONSOLE_SECRET_SENTRY_TOKEN")
            and os.environ.get("OPSCONSOLE_DEMO_SENTRY_ORG")
            and os.environ.get("OPSCONSOLE_DEMO_SENTRY_PROJECT")
        )

    def bugsink_section(self) -> str:
        if self.bugsink_port is None:
            return ""
        return (
            f'\n[environments.sandbox.bugsink]\nurl = "http://127.0.0.1:{self.bugsink_port}"\n'
            f'project = 1\ntoken = {{ secret = "{self.token_name}" }}\n'
        )

    def prometheus_section(self) -> str:
        if self.prometheus_port is None:
            return ""
        queries = {
            "requests/s": "sum(rate(http_requests_total[30s]))",
            "error ratio": 'sum(rate(http_requests_total{status=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))',
            "p95 latency s": "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[30s])))",
        }
        lines = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in queries.items())
        return (
            f'\n[environments.sandbox.prometheus]\nurl = "http://127.0.0.1:{self.prometheus_port}"\n'
            f"[environments.sandbox.prometheus.queries]\n{lines}"
        )

    def purge_command(self) -> str:
        if self.redis_port is not None and shutil.which("redis-cli"):
            return f"redis-cli -p {self.redis_port} FLUSHALL"
        return f"{sys.executable} -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{self.web_port}/purge', data=b'').read().decode())\""

    def _write_profile(self) -> None:
        values = {
            "SANDBOX": str(self.root),
            "SOCKET": str(self.socket_path),
            "WEB_PORT": str(self.web_port),
            "PYTHON": sys.executable,
            "PURGE_COMMAND": self.purge_command(),
            "DOCKER_URL": self.docker_url or "unix:///var/run/docker.sock",
        }
        text = template_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", _toml_escape(value))
        # the Containers pane lists, and its actions reach, this demo's containers only
        text = text.replace(
            "[environments.sandbox.docker]\n",
            f'[environments.sandbox.docker]\nlabels = ["{SANDBOX_LABEL}={self.sandbox_id}"]\n',
            1,
        )
        org = os.environ.get("OPSCONSOLE_DEMO_SENTRY_ORG")
        project = os.environ.get("OPSCONSOLE_DEMO_SENTRY_PROJECT")
        if os.environ.get("OPSCONSOLE_SECRET_SENTRY_TOKEN") and org and project:
            url = os.environ.get("OPSCONSOLE_DEMO_SENTRY_URL", "https://sentry.io")
            text += (
                f'\n[environments.sandbox.sentry]\nurl = "{_toml_escape(url)}"\norganization = "{_toml_escape(org)}"\n'
                f'project = "{_toml_escape(project)}"\ntoken = {{ secret = "sentry-token" }}\n'
            )
        text += self.prometheus_section() + self.bugsink_section()
        if self.alertmanager_port is not None:
            from opsconsole.demo.alertmanager import profile_section

            text += profile_section("sandbox", self.alertmanager_port)
        if self.nginx is not None:
            text += self.nginx.profile_section("sandbox", "supervisor:web")
        self.profile_path = self.root / "demo.toml"
        self.profile_path.write_text(text)

    def _start_supervisord(self) -> None:
        try:
            import supervisor  # noqa: F401
        except ImportError:
            raise OpsError(
                "the demo needs the `supervisor` package: pip install 'opsconsole[demo]' (make demo does this)",
                "Missing supervisor",
            ) from None
        env_line = ",".join(
            x
            for x in (
                f'REDIS_PORT="{self.redis_port}"' if self.redis_port else "",
                f'BUGSINK_DSN_FILE="{self.root / "bugsink.dsn"}"' if self.bugsink_port else "",
            )
            if x
        )
        current = self.root / "srv" / "shop" / "current"
        programs = {
            "web": (
                f"{sys.executable} {current}/web.py {self.web_port}",
                f"directory = {current}\n" + (f"environment = {env_line}\n" if env_line else ""),
            ),
            "worker": (f"{sys.executable} -u {FILES / 'worker.py'}", ""),
            "flaky": (f"{sys.executable} -u {FILES / 'crasher.py'}", "startsecs = 2\n"),
            "load": (
                f"{sys.executable} -u {FILES / 'loadgen.py'} {self.front_port} {self.alertmanager_port or 0}",
                "",
            ),
        }
        lines = [
            "[unix_http_server]",
            f"file = {self.socket_path}",
            "chmod = 0700",
            "",
            "[supervisord]",
            f"logfile = {self.root}/logs/supervisord.log",
            f"pidfile = {self.root}/supervisord.pid",
            f"childlogdir = {self.root}/logs",
            "nodaemon = true",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        for name, (command, extra) in programs.items():
            lines += [
                f"[program:{name}]",
                f"command = {command}",
                f"autostart = {'false' if name == 'web' else 'true'}",
                "autorestart = true",
                "stopasgroup = true",
                "killasgroup = true",
                "stopwaitsecs = 5",
                f"stdout_logfile = {self.root}/logs/{name}.log",
                f"stderr_logfile = {self.root}/logs/{name}.err.log",
                "stdout_logfile_maxbytes = 20MB",
            ]
            lines += [x for x in extra.splitlines() if x]
            lines.append("")
        conf = self.root / "supervisord.conf"
        conf.write_text("\n".join(lines))
        self.supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        self._note_group(self.supervisord)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.socket_path.exists():
                return
            if self.supervisord.poll() is not None:
                break
            time.sleep(0.1)
        raise OpsError(f"supervisord did not start (see {self.root}/logs/supervisord.log)", "Demo failed")

    def _start_containers(self) -> None:
        if self.docker_url is None:
            return
        try:
            import docker

            client = docker.DockerClient(base_url=self.docker_url, timeout=10)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - no engine: the pane says why
            self.docker_note = f"no Docker Engine reachable at {self.docker_url} ({type(exc).__name__}); the Containers pane shows why"
            return
        try:
            self._remove_dead_demo_containers(client)
            ensure_image(client)
            labels = {
                DEMO_LABEL: str(self.root),
                SANDBOX_LABEL: self.sandbox_id,
                HOST_LABEL: _hostname(),
                "com.docker.compose.project": "demo-shop",
            }
            web = client.containers.run(
                IMAGE,
                ["httpd", "-f", "-p", "80", "-h", "/www"],
                detach=True,
                name=f"demo-static-{self.sandbox_id}",
                labels={**labels, "com.docker.compose.service": "static"},
                ports={"80/tcp": ("127.0.0.1", None)},
                healthcheck={
                    "test": ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1/"],
                    "interval": 2_000_000_000,
                },
            )
            ticker = client.containers.run(
                IMAGE,
                [
                    "sh",
                    "-c",
                    "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 1; done",
                ],
                detach=True,
                name=f"demo-ticker-{self.sandbox_id}",
                labels={**labels, "com.docker.compose.service": "ticker"},
            )
            self.containers = [web.id, ticker.id]
        except Exception as exc:  # noqa: BLE001 - reported, the rest of the demo goes on
            self.docker_note = f"could not start the demo containers: {exc}"
        finally:
            client.close()

    def _remove_dead_demo_containers(self, client: Any) -> None:
        """Containers of demos that are dead (their folder's lock is free or gone), never a live
        one's; a container made on another machine is left alone (its liveness cannot be seen)."""
        for container in client.containers.list(all=True, filters={"label": DEMO_LABEL}):
            labels = container.labels or {}
            if labels.get(HOST_LABEL, _hostname()) != _hostname():
                continue
            root = labels.get(DEMO_LABEL, "")
            if root and demo_alive(Path(root)):
                continue
            self.log(f"opsconsole demo: removing {container.name}, left by a demo that is gone ({root})")
            try:
                container.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - removed in between, or by its own watchdog
                self.log(f"opsconsole demo: could not remove {container.name}: {exc}")

    def start_web(self) -> None:
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(str(self.socket_path)))
        try:
            proxy.supervisor.startProcess("web", True)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise

    # ------------------------------------------------------------- stop

    def stop(self) -> None:
        if self.supervisord is not None and self.supervisord.poll() is None:
            try:
                proxy = xmlrpc.client.ServerProxy(
                    "http://localhost", transport=_UnixTransport(str(self.socket_path))
                )
                proxy.supervisor.shutdown()
                self.supervisord.wait(15)
            except Exception:  # noqa: BLE001 - fall back to signals
                pass
            if self.supervisord.poll() is None:
                os.killpg(self.supervisord.pid, signal.SIGTERM)
                try:
                    self.supervisord.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.supervisord.pid, signal.SIGKILL)
        if self.nginx is not None:
            self.nginx.stop()
        self._bugsink_done.set()
        self._unmark_bugsink_starting()
        if self.bugsink is not None:
            self.bugsink.stop()
        if self._bugsink_placeholder is not None:
            try:
                self._bugsink_placeholder.shutdown()
                self._bugsink_placeholder.server_close()
            except OSError:
                pass
        for server in (self.redis, self.prometheus, self.alertmanager):
            if server is not None and server.poll() is None:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
        if self.containers:
            try:
                import docker

                client = docker.DockerClient(
                    base_url=self.docker_url or "unix:///var/run/docker.sock", timeout=20
                )
                for container_id in self.containers:
                    try:
                        client.containers.get(container_id).remove(force=True)
                    except docker.errors.NotFound:
                        pass
                client.close()
            except Exception as exc:  # noqa: BLE001
                self.log(
                    f"opsconsole demo: could not remove the demo containers ({exc}); remove them with "
                    f"docker rm -f $(docker ps -aq --filter label={SANDBOX_LABEL}={self.sandbox_id})"
                )
        self._unregister()
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.terminate()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _unregister(self) -> None:
        from opsconsole.profiles.trust import revoke_trust
        from opsconsole.secrets import secret_file

        self.registry_link.unlink(missing_ok=True)
        secret_file(self.token_name).unlink(missing_ok=True)
        if self.profile_path is not None:
            try:
                revoke_trust(self.profile_path)
            except OSError:
                pass


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: Any) -> Any:
        import http.client

        path = self.path

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(20)
                sock.connect(path)
                self.sock = sock

        return Connection("localhost", timeout=20)
