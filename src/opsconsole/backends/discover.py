"""What runs on a host, read without changing anything: for `opsconsole profile init`.

One POSIX sh script per host (`DISCOVERY_SCRIPT`) prints marked sections over the host's one
connection; `parse_report` turns them into typed findings. Then the console's own clients ask the
Supervisor socket (when it needs no password) and the Docker Engine what they hold. Every command in
the script is bounded in time (`timeout` where the host has it, and the run's own timeout) and in
output (`head`); password values are cut on the host and never leave it.
"""

from __future__ import annotations

import configparser
import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from opsconsole.backends.hosts import Host
from opsconsole.backends.shell import quote
from opsconsole.errors import OpsError
from opsconsole.profiles import DockerConfig, SupervisorConfig
from opsconsole.sanitize import clean

MARK = "\x1eopsc:"
SCRIPT_TIMEOUT = 20.0  # seconds for the whole script on one host
STANDARD_CONFIGS = ("/etc/supervisor/supervisord.conf", "/etc/supervisord.conf")
DOCKER_SOCKET = "/var/run/docker.sock"
MAX_NAMES = 200  # programs, containers, server names kept per host

# Enabled systemd services are the links in /etc/systemd/system/*.wants/; one whose unit file lies
# outside /lib/systemd and /usr/lib/systemd was written for this host, not installed by a package.
# Read-only and POSIX: ps (-ww, where it exists, keeps long command lines whole), readlink, awk,
# sed, head and test. `set -f` keeps the process arguments from being globbed; globbing is switched on only around the layout and include patterns.
# The `[s]` in the awk patterns keeps this script's own command line from matching itself.
DISCOVERY_SCRIPT = r"""
set -f
m() { printf '\036opsc:%s\n' "$*"; }
b() { if command -v timeout >/dev/null 2>&1; then timeout 5 "$@"; else "$@"; fi; }
redact() { sed 's/^\([[:space:]]*password[[:space:]]*[=:]\).*$/\1 <not read>/'; }
conf() {
  m "$1" "$2" "$3"
  b head -c 65536 "$3" 2>/dev/null | redact
  dir=$(dirname "$3")
  for pat in $(b head -c 65536 "$3" 2>/dev/null | awk '/^\[/{s=($0 ~ /^\[include\]/)} s && /^[[:space:]]*files[[:space:]]*[=:]/{sub(/^[^=:]*[=:]/,""); print}' | head -n 20); do
    case "$pat" in /*) ;; *) pat="$dir/$pat";; esac
    set +f
    for f in $pat; do [ -f "$f" ] && { m include "$2" "$f"; b head -c 65536 "$f" 2>/dev/null | redact; }; done
    set -f
  done
}
m id
id -un 2>/dev/null || echo
printf '%s\n' "$HOME"
m procs
{ COLUMNS=65535 b ps -ww -eo pid=,args= 2>/dev/null || b ps -eo pid=,args= 2>/dev/null; } | awk '{for(i=2;i<=4&&i<=NF;i++) if ($i ~ /(^|\/)[s]upervisord$/ || $i ~ /^supervisor\.[s]upervisord$/) {print; break}}' | head -n 20 | while read -r pid args; do
  cfg=""; prev=""
  for a in $args; do
    case "$prev" in -c|--configuration) cfg="$a";; esac
    case "$a" in --configuration=*) cfg="${a#--configuration=}";; -c?*) cfg="${a#-c}";; esac
    prev="$a"
  done
  if [ -n "$cfg" ]; then
    case "$cfg" in /*) ;; *) cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null); [ -n "$cwd" ] && cfg="$cwd/$cfg";; esac
  else
    for c in /etc/supervisor/supervisord.conf /etc/supervisord.conf; do [ -r "$c" ] && { cfg="$c"; break; }; done
  fi
  m proc "$pid"
  printf '%s\n' "$args" | head -c 2000; echo
  if [ -n "$cfg" ] && [ -r "$cfg" ]; then conf config "$pid" "$cfg"; elif [ -n "$cfg" ]; then m unreadable "$pid" "$cfg"; fi
done
for c in /etc/supervisor/supervisord.conf /etc/supervisord.conf; do [ -r "$c" ] && { m standard; printf '%s\n' "$c"; }; done
m docker
[ -S /var/run/docker.sock ] && echo socket
m layouts
set +f
for d in /srv/* /var/www/* "$HOME"/*; do
  [ -L "$d/current" ] || continue
  t=$(readlink "$d/current" 2>/dev/null)
  case "$t" in releases/*|"$d"/releases/*) ;; *) continue;; esac
  j=no; [ -f "$d/.opsconsole/deploys.jsonl" ] && j=yes
  r=""
  for g in "$d/.opsconsole/repo.git/config" "$d/current/.git/config"; do
    [ -n "$r" ] || r=$(b head -c 65536 "$g" 2>/dev/null | awk '/^\[/{s=($0 ~ /^\[remote "origin"\]/)} s && /^[[:space:]]*url[[:space:]]*=/{sub(/^[^=]*=[[:space:]]*/,""); print; exit}')
  done
  printf '%s\t%s\t%s\t%s\n' "$d" "$t" "$j" "$r"
done 2>/dev/null | head -n 50
m systemd
for w in /etc/systemd/system/*.wants/*.service; do
  [ -e "$w" ] || continue
  t=$(readlink "$w" 2>/dev/null)
  case "$t" in /lib/systemd/*|/usr/lib/systemd/*) continue;; esac
  printf '%s\n' "${w##*/}"
done 2>/dev/null | head -n 200
m nginx
command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || echo
for f in /etc/nginx/nginx.conf /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/*; do [ -f "$f" ] && [ -r "$f" ] && b head -c 262144 "$f"; done 2>/dev/null | head -c 1048576 | awk '$1=="server_name"{for(i=2;i<=NF;i++){gsub(/;/,"",$i); if($i!="") print "name " $i}} $1=="listen" && /ssl|443/{print "tls"} ($1=="access_log" || $1=="error_log") && NF>=2 {v=$2; gsub(/;/,"",v); print $1 " " v}' | head -n 200
set -f
m end
"""


@dataclass
class Supervisord:
    """One running supervisord: where it was started from and what it serves."""

    pid: int
    command: str
    config: str | None = None  # its config file (-c, else the first standard path that exists)
    url: str | None = None  # unix:///path or http://host:port, from the config
    username: str | None = None  # the server section's username (its password stays on the host)
    config_programs: list[str] = field(default_factory=list)  # from [program:x]/[group:g]
    programs: list[str] = field(default_factory=list)  # as supervisord itself lists them
    problem: str | None = None  # why supervisord could not be asked or its config read

    @property
    def names(self) -> list[str]:
        return self.programs or self.config_programs


@dataclass
class Layout:
    """A deploy folder: `current` links into `releases/`."""

    path: str
    current: str
    journal: bool  # `.opsconsole/deploys.jsonl` is there: opsconsole deployed here already
    repo: str | None = None


@dataclass
class Findings:
    """What one host runs, and what could not be read (`notes`)."""

    host: str
    user: str = ""
    home: str = ""
    supervisords: list[Supervisord] = field(default_factory=list)
    standard_configs: list[str] = field(default_factory=list)
    docker_socket: bool = False
    containers: list[str] = field(default_factory=list)
    compose_projects: dict[str, int] = field(default_factory=dict)  # project -> containers
    docker_problem: str | None = None
    layouts: list[Layout] = field(default_factory=list)
    units: list[str] = field(default_factory=list)  # enabled services whose unit file is not a package's
    nginx: str | None = None  # the binary's path
    server_names: list[str] = field(default_factory=list)
    tls: bool = False
    access_logs: list[str] = field(default_factory=list)  # from access_log/error_log, in config order
    error_logs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sections(text: str) -> list[tuple[list[str], list[str]]]:
    """The script's output as (marker words, body lines), in order."""
    out: list[tuple[list[str], list[str]]] = []
    for line in text.split("\n"):
        if line.startswith(MARK):
            out.append((line[len(MARK) :].split(" ", 2), []))
        elif out:
            out[-1][1].append(line)
    return out


def _server_url(parser: configparser.RawConfigParser, here: str) -> tuple[str | None, str | None]:
    """The URL supervisorctl would use: the unix socket first, else the inet server. `here` is
    the config's folder (supervisord expands `%(here)s` in the socket path)."""
    if parser.has_section("unix_http_server"):
        path = parser.get("unix_http_server", "file", fallback="").strip().replace("%(here)s", here)
        if path.startswith("/") and "%(" not in path:
            return f"unix://{path}", _username(parser, "unix_http_server")
    if parser.has_section("inet_http_server"):
        port = parser.get("inet_http_server", "port", fallback="").strip()
        host, _, number = port.rpartition(":")
        if number.isdigit() and 0 < int(number) < 65536:
            host = host.strip("[]")
            if host in ("", "*", "0.0.0.0", "::"):
                host = "127.0.0.1"
            return f"http://{host}:{number}", _username(parser, "inet_http_server")
    return None, None


def _username(parser: configparser.RawConfigParser, section: str) -> str | None:
    name = parser.get(section, "username", fallback="").strip()
    return name or None


def _config_programs(parser: configparser.RawConfigParser) -> list[str]:
    grouped: dict[str, str] = {}
    for section in parser.sections():
        if section.startswith("group:"):
            for program in parser.get(section, "programs", fallback="").split(","):
                if program.strip():
                    grouped[program.strip()] = section[6:]
    names = []
    for section in parser.sections():
        if section.startswith("program:"):
            name = section[8:]
            names.append(f"{grouped[name]}:{name}" if name in grouped else name)
    return names[:MAX_NAMES]


def parse_config(text: str, sup: Supervisord) -> None:
    """Fill the URL, username and programs of `sup` from its (redacted) config and includes."""
    parser = configparser.RawConfigParser(strict=False, inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        sup.problem = f"its config {sup.config} could not be parsed ({clean(str(exc).splitlines()[0], 200)})"
        return
    sup.url, sup.username = _server_url(parser, posixpath.dirname(sup.config or "/"))
    sup.config_programs = _config_programs(parser)
    if sup.url is None:
        sup.problem = (
            f"its config {sup.config} has neither [unix_http_server] file= nor [inet_http_server] port="
        )


def _word(text: str, limit: int = 4096) -> str:
    return clean(text.strip(), limit)


def without_credentials(url: str) -> str:
    """A repository URL without a user's password or token (`https://user:token@host/…`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


_UNIT_RE = re.compile(
    r"[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,199}\.service"
)  # systemd's unit name characters
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def parse_report(host: str, text: str) -> Findings:
    """The script's output as Findings; anything malformed is left out and noted."""
    found = Findings(host=host)
    configs: dict[int, list[str]] = {}
    by_pid: dict[int, Supervisord] = {}
    for words, body in _sections(text):
        kind = words[0]
        if kind == "id" and len(body) >= 2:
            found.user, found.home = _word(body[0], 200), _word(body[1])
        elif kind == "proc" and len(words) >= 2 and words[1].isdigit():
            pid = int(words[1])
            sup = Supervisord(pid=pid, command=_word(body[0] if body else "", 2000))
            by_pid[pid] = sup
            found.supervisords.append(sup)
        elif kind in ("config", "include") and len(words) == 3 and words[1].isdigit():
            pid = int(words[1])
            if kind == "config" and pid in by_pid:
                by_pid[pid].config = _word(words[2])
            configs.setdefault(pid, []).append("\n".join(body))
        elif kind == "unreadable" and len(words) == 3 and words[1].isdigit() and int(words[1]) in by_pid:
            sup = by_pid[int(words[1])]
            sup.config = _word(words[2])
            sup.problem = f"its config {sup.config} is not readable by {found.user or 'the SSH user'}"
        elif kind == "standard":
            found.standard_configs += [_word(b) for b in body if b.strip()]
        elif kind == "docker":
            found.docker_socket = "socket" in (b.strip() for b in body)
        elif kind == "layouts":
            for line in body:
                parts = line.split("\t")
                if len(parts) != 4 or not parts[0].startswith("/"):
                    continue
                repo = without_credentials(parts[3].strip()) or None
                if any(layout.path == parts[0] for layout in found.layouts):
                    continue  # `$HOME/*` may be `/srv/*` again
                found.layouts.append(
                    Layout(_word(parts[0]), _word(parts[1]), parts[2] == "yes", _word(repo) if repo else None)
                )
        elif kind == "systemd":
            for line in body:
                unit = line.strip()
                if _UNIT_RE.fullmatch(unit) and unit not in found.units and len(found.units) < MAX_NAMES:
                    found.units.append(unit)
        elif kind == "nginx":
            if body and body[0].strip().startswith("/"):
                found.nginx = _word(body[0])
            for line in body[1:]:
                if line == "tls":
                    found.tls = True
                elif line.startswith(("access_log /", "error_log /")):
                    kind_of, path = line.split(" ", 1)
                    logs = found.access_logs if kind_of == "access_log" else found.error_logs
                    if path not in logs and len(logs) < MAX_NAMES:
                        logs.append(_word(path))
                elif line.startswith("name "):
                    name = line[5:].strip().lower()
                    if _NAME_RE.fullmatch(name) and "." in name and name not in found.server_names:
                        found.server_names.append(name)
    found.server_names = found.server_names[:MAX_NAMES]
    for sup in found.supervisords:
        if sup.problem is not None:
            continue
        if sup.config is None:
            sup.problem = (
                "no config found: it was started without -c and none of "
                + ", ".join(STANDARD_CONFIGS)
                + " is readable"
            )
            continue
        parse_config("\n".join(configs.get(sup.pid, [])), sup)
    if not any(words[0] == "end" for words, _ in _sections(text)):
        found.notes.append(f"{host}: the discovery script stopped early; what it printed before is used")
    return found


def _ask_supervisor(host: Host, sup: Supervisord) -> None:
    """The programs as supervisord lists them (only when it needs no password: its value stays
    on the host)."""
    if sup.url is None or sup.username is not None:
        return
    from opsconsole.backends.supervisor import SupervisorClient

    client = SupervisorClient(host, SupervisorConfig(url=sup.url))
    try:
        sup.programs = [p.full_name for p in client.processes()][:MAX_NAMES]
    except OpsError as exc:
        sup.problem = f"asking it at {sup.url} failed: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - any failure is told, not raised
        sup.problem = f"asking it at {sup.url} failed: {type(exc).__name__}: {clean(str(exc), 300)}"
    finally:
        client.close()


def _ask_docker(host: Host, found: Findings) -> None:
    from opsconsole.backends.docker_engine import DockerClient

    client = DockerClient(host, DockerConfig(url=f"unix://{DOCKER_SOCKET}"))
    try:
        containers = client.containers()
    except OpsError as exc:
        found.docker_problem = exc.message
        return
    except Exception as exc:  # noqa: BLE001 - any failure is told, not raised
        found.docker_problem = f"{type(exc).__name__}: {clean(str(exc), 300)}"
        return
    finally:
        client.close()
    found.containers = [clean(c.name, 200) for c in containers][:MAX_NAMES]
    for container in containers:
        if container.compose_project:
            project = clean(container.compose_project, 200)
            found.compose_projects[project] = found.compose_projects.get(project, 0) + 1


def discover(host: Host) -> Findings:
    """What `host` runs. Raises HostError when the host cannot be reached at all; everything
    after that fails into `notes` and the findings' `problem` fields."""
    # through sh: the SSH user's login shell may not be a POSIX one
    result = host.run(f"sh -c {quote(DISCOVERY_SCRIPT)}", timeout=SCRIPT_TIMEOUT)
    found = parse_report(host.name, result.stdout)
    for sup in found.supervisords:
        _ask_supervisor(host, sup)
    if found.docker_socket:
        _ask_docker(host, found)
    return found
