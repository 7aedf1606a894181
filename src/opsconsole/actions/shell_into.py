"""A shell on the selected row, as k9s's `s` and lazydocker's `E`: `docker exec -it NAME sh` in a
container (through its host's SSH when the host is remote), or a login shell on the host of a
process or systemd unit, over SSH with the profile's user, port, identity and known_hosts, in its
working directory when one is known.

The shell takes the terminal until it exits: the CLI runs it in the foreground, the console
suspends itself while it runs (see console_flow). It can change anything, so it is a changing
action: read-only refuses it, a protected environment asks for its name, and the audit log gets its
start and end records. Nothing from a row reaches a shell unquoted: the local command is an argv,
and the command SSH hands the remote shell is built from `shlex.quote`d words.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import xmlrpc.client
from pathlib import Path
from typing import Any, ClassVar

from opsconsole.actions.base import Action, Plan, PlanStep, Scope
from opsconsole.actions.events import Emit, HostResult, Notice, Outcome
from opsconsole.actions.targets import parse_target
from opsconsole.backends.shell import quote, quote_path
from opsconsole.errors import ExitCode, OpsError, RefusedError, UsageError
from opsconsole.profiles import Defaults, HostSpec

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
LOGIN_SHELL = 'exec "$SHELL" -l'
SSH_FAILED = 255  # ssh's own exit code: it could not connect, or the connection dropped
DOCKER_FAILED = (125, 126, 127)  # docker exec: the daemon refused, sh cannot run, sh is not there


def ssh_argv(spec: HostSpec, defaults: Defaults, remote: str | None) -> list[str]:
    """`ssh -t` to `spec` as the console's own connections reach it: its port and user (the host's,
    else the profile's), the profile's identity, and host keys from the profile's known_hosts only
    (an unknown or changed key refuses, never asks). `remote` is one word: ssh hands it to the
    remote user's shell, so it must already be quoted for that shell."""
    argv = ["ssh", "-t"]
    if spec.port:
        argv += ["-p", str(spec.port)]
    user = spec.user or defaults.user
    if user:
        argv += ["-l", user]
    if defaults.identity_file:
        argv += ["-i", os.path.expanduser(defaults.identity_file)]
    known = os.path.expanduser(defaults.known_hosts or "~/.ssh/known_hosts")
    argv += [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f'UserKnownHostsFile="{known}"' if any(c.isspace() for c in known) else f"UserKnownHostsFile={known}",
        "-o",
        f"ConnectTimeout={max(1, round(defaults.timeout))}",
        "--",  # the host name is never read as an option
        spec.hostname,
    ]
    return [*argv, remote] if remote else argv


def terminal_fd() -> int:
    """The terminal the shell gets: opsconsole's stdin. Refuses when there is none."""
    if os.isatty(0):
        return 0
    raise RefusedError("refused: a shell needs a terminal, and stdin is not one", "No terminal")


def run_in_terminal(argv: list[str], cwd: str | None = None) -> int:
    """Run `argv` in the foreground of opsconsole's terminal, as a job-control shell runs a job: in
    a process group of its own that owns the terminal while it runs, so Ctrl+C and Ctrl+Z reach
    the shell and never opsconsole. Returns its exit code (128+N when killed by signal N)."""
    fd = terminal_fd()
    try:
        owner = os.tcgetpgrp(fd)
    except OSError:  # a terminal, but not ours to hand over: the shell shares our process group
        return _exit_code(subprocess.run(argv, cwd=cwd, check=False).returncode)
    proc = subprocess.Popen(argv, cwd=cwd, process_group=0)
    # SIGTTOU blocked in this thread only, after the fork (the shell must not inherit the mask): a
    # process group in the background may then take the terminal back
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        os.tcsetpgrp(fd, proc.pid)
        while True:
            _pid, status = os.waitpid(proc.pid, os.WUNTRACED)
            if os.WIFSTOPPED(status):
                # it touched the terminal before it was handed over (SIGTTIN/SIGTTOU), or was
                # stopped: it gets the terminal and goes on
                os.tcsetpgrp(fd, proc.pid)
                os.killpg(proc.pid, signal.SIGCONT)
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            return _exit_code(proc.returncode)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        try:
            os.tcsetpgrp(fd, owner)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


class ShellAction(Action):
    id: ClassVar[str] = "shell"
    title: ClassVar[str] = "Shell"
    scope: ClassVar[Scope] = "host"
    changes: ClassVar[bool] = True  # whatever is typed in it can change anything
    description: ClassVar[str] = (
        "Open a shell: in a container (docker exec -it NAME sh), or a login shell on the host of a "
        "process or systemd unit, in its working directory; runs in the foreground of this terminal"
    )
    target_arg: ClassVar[str | None] = "TARGET"
    target_help: ClassVar[str] = "docker:NAME, supervisor:NAME or systemd:UNIT"
    key: ClassVar[str | None] = "x"  # the same key as `resolve`: the selected row's kind tells them apart
    key_label: ClassVar[str] = "Shell"
    tooltip: ClassVar[str] = "Shell in the selected container, or on the host of the selected process or unit"
    selection: ClassVar[tuple[str, ...]] = ("process", "container", "unit")
    key_in_footer: ClassVar[bool] = False  # the footer is full at 80 columns: `?` lists it
    # the terminal is the action's while it runs: the console suspends itself (console_flow)
    foreground: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.ctx.via:
            raise RefusedError(
                f"refused: a shell needs the terminal opsconsole runs in; it cannot be opened from {self.ctx.via}",
                "No terminal",
            )
        self.kind, self.name = parse_target(self.target.name, ("docker", "supervisor", "systemd"))
        if self.name.startswith("-"):
            raise UsageError(f"'{self.name}' is not a name (it starts with '-')", "Bad target")
        if self.kind == "docker" and self.env.docker is None:
            raise UsageError(f"environment '{self.env.name}' has no [docker] section", "Not configured")
        if self.kind == "systemd" and self.env.systemd is None:
            raise UsageError(f"environment '{self.env.name}' has no [systemd] section", "Not configured")
        if self.target.host:
            self.spec = self.env.host(self.target.host)
        elif len(self.env.hosts) == 1:
            self.spec = self.env.hosts[0]
        else:
            known = ", ".join(h.raw for h in self.env.hosts) or "none"
            raise UsageError(
                f"which host? environment '{self.env.name}' has {len(self.env.hosts)}: pass --host ({known})",
                "Missing host",
            )
        self.command: tuple[list[str], str | None] | None = None  # argv and local directory, from plan()
        self.where = ""  # what the summary says: where the shell runs (set by build)
        self.why = ""  # and why there

    @property
    def hosts(self) -> list[HostSpec]:
        return [self.spec]

    @property
    def needs_confirmation(self) -> bool:
        return False  # no y/N for every shell; a protected environment still asks for its name

    # ---------------------------------------------------------------- the command

    def _directory(self) -> tuple[str | None, str]:
        """Where a host shell starts, and why: the process's own directory (Supervisor's config), the
        unit's WorkingDirectory, else the deploy path's `current` when it is there, else None (home)."""
        found, why = None, ""
        try:
            if self.kind == "supervisor":
                found = self._supervisor_directory()
            elif self.kind == "systemd":
                found = self._unit_directory()
        except (OpsError, xmlrpc.client.Fault) as exc:
            why = f"; its working directory could not be read: {getattr(exc, 'message', None) or exc}"
        if found:
            return found, f"the working directory of {self.kind}:{self.name}"
        deploy = self.env.deploy
        if deploy is not None:
            current = f"{deploy.path.rstrip('/')}/current"
            if self._is_dir(current):
                return current, f"the current release of {self.kind}:{self.name}'s environment{why}"
        return None, f"for {self.kind}:{self.name}{why}"

    def _supervisor_directory(self) -> str | None:
        if self.env.supervisor is None:
            return None
        client = self.ctx.backends.supervisor(self.env, self.spec)
        for info in client.call("supervisor.getAllConfigInfo"):
            full = f"{info.get('group')}:{info.get('name')}"
            if self.name in (full, info.get("name")) and info.get("directory"):
                return str(info["directory"])
        return None

    def _unit_directory(self) -> str | None:
        from opsconsole.backends.systemd import systemctl

        assert self.env.systemd is not None
        host = self.ctx.backends.host(self.spec)
        result = host.run(
            f"{systemctl(self.env.systemd)} show -p WorkingDirectory --value -- {quote(self.name)}",
            timeout=self.ctx.profile.defaults.timeout,
        )
        value = result.stdout.strip().lstrip("-!")  # `-`: may be missing, `!`: no user switch
        if value == "~":
            return None
        return value if result.ok and value.startswith("/") else None

    def _is_dir(self, path: str) -> bool:
        if self.spec.is_local:
            return os.path.isdir(os.path.expanduser(path))
        try:
            result = self.ctx.backends.host(self.spec).run(
                f"test -d {quote_path(path)}", timeout=self.ctx.profile.defaults.timeout
            )
        except OpsError:
            return False
        return result.ok

    def build(self) -> tuple[list[str], str | None]:
        """The argv to run here, and (for a local shell) the directory it starts in."""
        defaults = self.ctx.profile.defaults
        if self.kind == "docker":
            assert self.env.docker is not None
            url = self.env.docker.url
            docker = [
                "docker",
                *(["-H", url] if url != DEFAULT_DOCKER_URL else []),
                "exec",
                "-it",
                self.name,
                "sh",
            ]
            self.where, self.why = f"in container {self.name} on {self.spec.raw}", ""
            if self.spec.is_local:
                return docker, None
            return ssh_argv(self.spec, defaults, shlex.join(docker)), None
        directory, self.why = self._directory()
        self.where = f"on {self.spec.raw} in " + (directory or "the home directory")
        if self.spec.is_local:
            shell = os.environ.get("SHELL") or "/bin/sh"
            return [shell], os.path.expanduser(directory) if directory else str(Path.home())
        remote = f"cd {quote_path(directory)} && {LOGIN_SHELL}" if directory else None
        return ssh_argv(self.spec, defaults, remote), None

    def summary(self) -> list[str]:
        return [f"Shell {self.where} ({self.env.name})", *([self.why] if self.why else [])]

    def plan(self) -> Plan:
        self.command = argv, cwd = self.build()
        steps = [PlanStep(self.spec.raw, "command", shlex.join(argv))]
        if cwd is not None:
            steps.insert(0, PlanStep(self.spec.raw, "note", f"in {cwd}"))
        return self.make_plan(steps)

    def execute(self, emit: Emit) -> Outcome:
        argv, cwd = self.command or self.build()
        emit(Notice(f"shell {self.where}: `exit` comes back"))
        try:
            code = run_in_terminal(argv, cwd)
        except FileNotFoundError:
            raise OpsError(
                f"{argv[0]} is not installed here (it is needed for a shell)", "Not installed"
            ) from None
        remote = not self.spec.is_local
        if remote and code == SSH_FAILED:
            message = f"{self.spec.raw}: ssh could not connect, or the connection dropped (exit 255)"
            result = Outcome(False, message, ExitCode.UNREACHABLE)
        elif self.kind == "docker" and code in DOCKER_FAILED:
            message = f"docker exec in {self.name} on {self.spec.raw} failed (exit {code})"
            result = Outcome(False, message, ExitCode.FAILED)
        else:
            # an interactive shell exits with its last command's status: no verdict on anything
            result = Outcome(True, f"shell {self.where} closed (exit {code})", ExitCode.OK)
        emit(HostResult(self.spec.raw, result.ok, result.message))
        return result
