"""SSH hosts over asyncssh (one event loop thread for every connection), with host keys verified
against known_hosts."""

from __future__ import annotations

import getpass
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsconsole.backends.hosts import (
    CommandResult,
    Host,
    HostError,
    LineCallback,
    OutputTail,
    Stream,
)
from opsconsole.backends.remote_scripts import (
    guarded_command,
    tagged_command,
    unix_bridge_command,
)
from opsconsole.backends.ssh.channels import (
    BridgeChannel,
    ChannelSocket,
    GroupMark,
    LineSplitter,
    bridge,
    collect,
    kill_group,
)
from opsconsole.backends.ssh.config import (
    KnownHosts,
    default_known_hosts,
    encrypted_keys,
    jump_hosts,
    load_known_hosts,
    needs_passphrase,
    passphrase_error,
    ssh_config,
)
from opsconsole.backends.ssh.loop import LOOP
from opsconsole.backends.ssh.shared import Link as _Link
from opsconsole.backends.ssh.shared import LinkSet, ShareKey, config_items, join, leave
from opsconsole.profiles import Defaults, HostSpec


class SshHost(Host):
    """An SSH target over one asyncssh connection (more when its sessions are all busy), host keys
    verified against known_hosts. Every SSH connection of the process lives on one event loop
    thread (`Loop`): a host costs no thread of its own. Callers stay blocking and get real sockets.

    The connections belong to a LinkSet (backends/ssh/shared.py) that every host of the process
    with the same ShareKey uses: two projects naming the same server, with the same known_hosts and
    keys, share its connections and its session budget. The set is joined at first use (the key
    reads ssh_config, which start-up does not wait for) and left by close(). Timeouts, and the host
    named in messages, stay this host's own."""

    def __init__(self, spec: HostSpec, defaults: Defaults, timeout: float) -> None:
        self.spec = spec
        self.defaults = defaults
        self.timeout = timeout
        self.max_sessions = max(1, min(defaults.max_sessions, 100))  # this host's share of the budget
        self._joining = threading.Lock()  # guards _shared (held while the key is worked out)
        self._shared: LinkSet | None = None

    def _set(self) -> LinkSet:
        """The LinkSet this host uses, joined on first use."""
        shared = self._shared
        if shared is not None:
            return shared
        with self._joining:
            if self._shared is None:
                self._shared = join(self._share_key(), self)
            return self._shared

    def _share_key(self) -> ShareKey:
        """What another host must match to share this one's connections (see ShareKey)."""
        config = ssh_config(self.spec.hostname, self.spec.port)
        hostname, port, user = self._target(config)
        jumps = jump_hosts(config.get("ProxyJump"))
        identity = self.defaults.identity_file
        return ShareKey(
            hostname=hostname,
            port=port or 22,
            user=user or str(config.get("User") or getpass.getuser()),
            known_hosts=os.path.realpath(self.known_hosts),
            identity_file=os.path.realpath(os.path.expanduser(identity)) if identity else None,
            agent=os.environ.get("SSH_AUTH_SOCK"),
            config=config_items(config.get_options(False), "Hostname", "Port", "User"),
            jumps=tuple(
                (jump, config_items(ssh_config(jump_host, jump_port).get_options(False)))
                for jump, jump_host, jump_port, _user in jumps
            ),
            jump_user=self.defaults.user if jumps else None,
        )

    @property
    def _links(self) -> list[_Link]:
        """The open connections (of every host sharing them)."""
        shared = self._shared
        return shared.links if shared is not None else []

    @property
    def _connection(self) -> Any:
        """The first open connection's link (tests cut its socket to simulate a dropped link)."""
        links = self._links
        return links[0] if links else None

    @property
    def opened(self) -> list[str]:
        """Why the connections were opened (first use, lost, all busy): the last few."""
        shared = self._shared
        return shared.opened if shared is not None else []

    @property
    def _streamlocal(self) -> bool | None:
        """Whether the server forwards unix sockets (None: not known yet)."""
        shared = self._shared
        return shared.streamlocal if shared is not None else None

    def _named(self, error: HostError, named: str) -> HostError:
        """`error`, which names host `named` (another project's name for the server), naming this one."""
        prefix = f"{named}: "
        if named == self.name or not error.message.startswith(prefix):
            return error
        return HostError(f"{self.name}: {error.message[len(prefix) :]}", error.title)

    @property
    def known_hosts(self) -> Path:
        return Path(os.path.expanduser(self.defaults.known_hosts or "~/.ssh/known_hosts"))

    def _target(self, config: Any = None) -> tuple[str, int | None, str | None]:
        """Host name, port and user as ~/.ssh/config resolves them (a `Host` alias, its HostName,
        Port and User: asyncssh reads the same file when it connects), with defaults.user where
        neither the profile nor ssh_config names one."""
        if config is None:
            config = ssh_config(self.spec.hostname, self.spec.port)
        user = self.spec.user
        if user is None and config.get("User") is None:
            user = self.defaults.user
        port = self.spec.port or config.get("Port")
        return str(config.get("Hostname") or self.spec.hostname), int(port) if port else None, user

    def _connect(self) -> Any:
        """A connection to the host, through its ProxyJump hosts (from ~/.ssh/config) if it has any:
        every hop's host key is checked against the profile's known_hosts, by name (KnownHosts)."""
        hostname, port, user = self._target()
        known = self.known_hosts
        trusted = KnownHosts(load_known_hosts(known))
        config = ssh_config(self.spec.hostname, self.spec.port)
        jumps = jump_hosts(config.get("ProxyJump"))
        options: dict[str, Any] = {
            "known_hosts": trusted.match,
            "connect_timeout": self.timeout,
            "login_timeout": self.timeout,
            "keepalive_interval": 15,
        }
        if user:
            options["username"] = user
        keys, locked = self._client_keys()
        if keys is not None:
            options["client_keys"] = keys
        try:
            return LOOP.call(
                self._connect_via(jumps, options, trusted, known), (self.timeout + 1) * (len(jumps) + 1)
            )
        except HostError:
            raise
        except Exception as exc:
            raise self._connect_error(exc, hostname, port, trusted, known, locked) from None

    async def _connect_via(
        self,
        jumps: list[tuple[str, str, int | None, str | None]],
        options: dict[str, Any],
        trusted: KnownHosts,
        known: Path,
    ) -> Any:
        """The connection, each jump host opened through the one before (as `ssh -J a,b` does)."""
        import asyncssh

        tunnel: Any = None
        try:
            for jump, jump_host, jump_port, jump_user in jumps:
                hop: dict[str, Any] = {
                    "known_hosts": trusted.match,
                    "connect_timeout": self.timeout,
                    "login_timeout": self.timeout,
                    "tunnel": tunnel,  # None for the first: its own ProxyJump is not followed
                }
                hop_config = ssh_config(jump_host, jump_port)
                if jump_user or self.defaults.user and hop_config.get("User") is None:
                    hop["username"] = jump_user or self.defaults.user
                keys, locked = (None, []) if hop_config.get("IdentityFile") else self._client_keys()
                if keys is not None:
                    hop["client_keys"] = keys
                try:
                    connection = await asyncssh.connect(jump_host, jump_port or (), **hop)
                except Exception as exc:
                    name = str(hop_config.get("Hostname") or jump_host)
                    raise self._connect_error(
                        exc, name, jump_port or hop_config.get("Port"), trusted, known, locked, jump=jump
                    ) from None
                if tunnel is not None:
                    connection.set_tunnel(tunnel)  # closed with the connection made through it
                tunnel = connection
            if tunnel is not None:
                options = {**options, "tunnel": tunnel}
            connection = await asyncssh.connect(self.spec.hostname, self.spec.port or (), **options)
            if tunnel is not None:
                connection.set_tunnel(tunnel)
            return connection
        except BaseException:
            if tunnel is not None:
                tunnel.close()
            raise

    def _client_keys(self) -> tuple[list[str] | None, list[str]]:
        """The profile's identity_file (None: asyncssh's own choice, ssh_config's IdentityFile, the
        default keys and the agent); a jump host uses it where ssh_config names no IdentityFile for
        it. A key file that needs a passphrase is left to the agent (opsconsole never asks for one):
        with no agent, or an agent that holds no key the host takes, the error names the file and
        says `ssh-add FILE`. Returns the keys to use and the key files left to the agent."""
        if not self.defaults.identity_file:
            return None, []
        path = os.path.expanduser(self.defaults.identity_file)
        if needs_passphrase(path):
            if not os.environ.get("SSH_AUTH_SOCK"):
                raise passphrase_error(self.name, [path])
            return None, [path]
        return [path], []

    def _connect_error(
        self,
        exc: BaseException,
        hostname: str,
        port: Any,
        trusted: KnownHosts,
        known: Path,
        locked: list[str],
        jump: str | None = None,
    ) -> HostError:
        """What went wrong connecting to the host, or to its jump host `jump`, and what to do."""
        import asyncssh

        port = int(port) if port else None
        name = hostname if port in (None, 22) else f"[{hostname}]:{port}"
        which = "the jump host" if jump else "the host"
        prefix = f"{self.name}: ssh: " + (f"jump host {jump} (ProxyJump): " if jump else "")
        if isinstance(exc, HostError):
            return exc
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            found = trusted.lookup(hostname, port)
            if "revoked" in str(exc).lower():
                return HostError(
                    f"{prefix}the host key is marked @revoked in {known}: refusing to connect. A revoked "
                    "key is never to be trusted again (not even after ssh-keygen -R): ask whoever runs "
                    f"{which} which key it should have now",
                    "Revoked host key",
                )
            if found[0] or found[1]:
                key = (found[0] or found[1])[0].export_public_key("openssh").split()
                remove = f"ssh-keygen -R {name}" + (f" -f {known}" if known != default_known_hosts() else "")
                return HostError(
                    f"{prefix}the host key does not match known_hosts (expected {key[0].decode()} "
                    f"{key[1].decode()[:16]}…): refusing to connect. If {which} was rebuilt, verify its "
                    f"new key, then remove the old one with `{remove}`",
                    "Changed host key",
                )
            target = hostname if port in (None, 22) else f"-p {port} {hostname}"
            return HostError(
                f"{prefix}unknown host key (not in {known}); refusing to connect. Verify {which}'s "
                f"fingerprint, then trust it with: ssh-keyscan {target} >> {known}",
                "Unknown host key",
            )
        if isinstance(exc, TimeoutError):
            return HostError(
                f"{prefix}timed out after {self.timeout:g} s connecting (no answer from {which}, or from "
                "its SSH server)",
                "Unreachable",
            )
        if isinstance(exc, asyncssh.KeyImportError) and "passphrase" in str(exc).lower():
            return passphrase_error(self.name, locked or encrypted_keys())
        if isinstance(exc, asyncssh.PermissionDenied):
            locked = locked or encrypted_keys()
            if locked:  # a key left to the agent, which did not hold it
                return passphrase_error(self.name, locked, denied=True)
        error = self.error("ssh", exc)
        if jump:
            return HostError(error.message.replace(f"{self.name}: ssh: ", prefix, 1), error.title)
        return error

    def _open_link(self, shared: LinkSet) -> _Link:
        """A new connection (under the set's lock). Callers that queued behind a failed attempt (of
        any host of the set) get its error at once instead of each waiting out another timeout; a
        fresh attempt is made once the failure is `timeout` old."""
        if shared.failure is not None and time.monotonic() - shared.failure[0] < self.timeout:
            raise self._named(shared.failure[1], shared.failure[2])
        try:
            link = _Link(self._connect(), shared.free)
        except HostError as exc:
            shared.failure = (time.monotonic(), exc, self.name)
            raise
        except Exception as exc:
            error = self.error("ssh", exc)
            shared.failure = (time.monotonic(), error, self.name)
            raise error from None
        shared.failure = None
        if shared.closed:  # every user closed while this connected: nobody is left to close it
            link.close()
            raise HostError(f"{self.name}: ssh: closed while connecting", "Unreachable")
        shared.links.append(link)
        return link

    @staticmethod
    def _note_opened(shared: LinkSet, why: str) -> None:
        """Keep the reason, and only the last few: a console that runs for weeks against a host that
        keeps dropping must not grow a list without end."""
        shared.opened.append(why)
        del shared.opened[:-OPENED_KEPT]

    def _lease(self) -> _Link:
        """A session slot on a connection: every user (commands, the Supervisor bridge, Docker's
        dial-stdio, log followers, of every project sharing the connections) shares the set's
        `max_sessions` per connection, kept below sshd's MaxSessions; when every connection is full
        a second one is opened (up to MAX_LINKS), else the caller waits for a slot (up to its own
        timeout)."""
        shared = self._set()
        deadline = time.monotonic() + self.timeout
        with shared.free:
            while True:
                if shared.closed:
                    raise HostError(f"{self.name}: ssh: the connection was closed", "Unreachable")
                for link in list(shared.links):
                    if not link.alive and link.sessions == 0:
                        link.close()
                        shared.links.remove(link)
                        self._note_opened(shared, "the connection was lost")
                budget = shared.max_sessions
                for link in shared.links:
                    if link.alive and link.sessions < budget:
                        link.sessions += 1
                        return link
                if sum(1 for link in shared.links if link.alive) < MAX_LINKS:
                    why = "all sessions busy" if shared.links else "first use"
                    link = self._open_link(shared)
                    self._note_opened(shared, why)
                    link.sessions += 1
                    return link
                left = deadline - time.monotonic()
                if left <= 0:
                    others = (
                        f", shared by {shared.users} hosts of this process naming this server"
                        if shared.users > 1
                        else ""
                    )
                    raise HostError(
                        f"{self.name}: ssh: all {budget * MAX_LINKS} sessions ({budget} on each "
                        f"of {MAX_LINKS} connections{others}) stayed busy for {self.timeout:g} s; raise "
                        "defaults.max_sessions if the server's MaxSessions allows it",
                        "SSH busy",
                    )
                shared.free.wait(left)

    def _release(self, link: _Link) -> None:
        with link.free:
            link.sessions -= 1
            link.free.notify()

    def _refused(self, what: str, exc: BaseException) -> HostError:
        import asyncssh

        if isinstance(exc, asyncssh.ChannelOpenError) and exc.code == asyncssh.OPEN_CONNECT_FAILED:
            return HostError(
                f"{self.name}: {what}: sshd refused a new session (MaxSessions, 10 by default, is reached); "
                "opsconsole keeps below defaults.max_sessions (8): lower it to fit the server's MaxSessions",
                "SSH busy",
            )
        if isinstance(exc, HostError):
            return exc
        return self.error(what, exc)

    def _open_process(self, link: _Link, command: str) -> Any:
        if not link.alive:
            raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
        try:
            return LOOP.call(link.connection.create_process(command, encoding=None), self.timeout)
        except Exception as exc:
            raise self._refused("ssh", exc) from None

    def open_exec(self, command: str) -> ChannelSocket:
        """A socket to a command's stdin and stdout, on a leased session slot; closing it closes
        the channel and gives the slot back. Its stderr and exit status are kept (`.process`)."""
        link = self._lease()
        try:
            process = self._open_process(link, command)
        except BaseException:
            self._release(link)
            raise
        sock = bridge(process.stdout, process.stdin, lambda: self._release(link))
        sock.process = process
        return sock

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
        check: bool = False,
    ) -> CommandResult:
        link = self._lease()
        try:
            return self._run_on(link, command, timeout, on_line, cancel, check)
        finally:
            self._release(link)

    def _run_on(
        self,
        link: _Link,
        command: str,
        timeout: float | None,
        on_line: LineCallback | None,
        cancel: threading.Event | None,
        check: bool,
    ) -> CommandResult:
        """The command on its own exec channel; its output arrives on the SSH loop and is read here
        as it comes, so `on_line` runs on the caller's thread, never on the loop. Cancel and the
        deadline are checked between pieces of output however fast it comes; the SSH loop stops
        reading while QUEUED pieces wait here (the channel's window then holds the command back), and
        the result keeps the tail of each stream (OutputTail). A cancelled or timed-out command is
        killed on the host by its process group (tagged_command), and its channel closed."""
        import codecs
        import queue

        # with `cancel`, guarded too: the command dies when its channel closes (cancel or a dropped
        # connection), since sshd signals nothing to a session without a pty
        guarded = cancel is not None
        process = self._open_process(link, tagged_command(guarded_command(command) if guarded else command))
        chunks: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        done = threading.Event()  # set when this side stops reading (the pump then stops waiting)
        LOOP.submit(collect(process, chunks, done, close_stdin=not guarded))
        callback = on_line or (lambda _s, _l: None)
        streams: dict[str, tuple[LineSplitter, Any, OutputTail]] = {
            name: (
                LineSplitter(name, callback),
                codecs.getincrementaldecoder("utf-8")("replace"),
                OutputTail(),
            )
            for name in ("out", "err")
        }
        group = GroupMark()
        deadline = None if timeout is None else time.monotonic() + timeout

        def stopped() -> str | None:
            if cancel is not None and cancel.is_set():
                return "cancelled"
            if deadline is not None and time.monotonic() > deadline:
                return "timeout"
            return None

        def take(name: str, data: bytes, final: bool = False) -> str | None:
            splitter, decoder, sink = streams[name]
            if name == "err":
                data = group.strip(data, final)
            for at in range(0, max(len(data), 1), PIECE):  # a stop is noticed between pieces
                text = decoder.decode(data[at : at + PIECE], final and at + PIECE >= len(data))
                if text:
                    sink.add(text)
                    splitter.write(text)
                if not final and (why := stopped()):
                    return why
            return None

        reason: str | None = None
        exited: int | None = None
        try:
            while (reason := stopped()) is None:
                try:
                    kind, value = chunks.get(timeout=0.05)
                except queue.Empty:
                    continue
                if kind == "end":
                    exited = value
                    break
                if reason := take(kind, value):
                    break
        finally:
            done.set()
        if reason:
            LOOP.call_soon(process.close)  # a guarded command dies with its channel
            if group.pgid is not None:
                LOOP.submit(kill_group(link.connection, group.pgid))
        for name in streams:
            take(name, b"", final=True)
            streams[name][0].finish()
        self._raise_if_stopped(reason, command, timeout)
        if exited is None:  # no exit status: killed by a signal, or the connection went down
            if not link.alive:
                raise HostError(f"{self.name}: ssh: connection lost while running `{command}`", "Unreachable")
            exited = -1
        stdout, stderr = (streams[name][2].text() for name in ("out", "err"))
        cut = streams["out"][2].dropped + streams["err"][2].dropped
        return self._checked(command, CommandResult(int(exited), stdout, stderr, cut), check)

    def open_unix(self, path: str) -> Stream:
        """A stream to a unix socket on the host: OpenSSH's streamlocal forwarding (no process on the
        host, no shell start-up per connection); where the server refuses it, or the socket cannot be
        reached that way, a python3 bridge over an exec channel, whose errors say exactly why."""
        shared = self._set()
        if shared.streamlocal is not False:
            try:
                sock = self._channel(lambda connection: connection.open_unix_connection(path), "ssh")
            except Exception:  # noqa: BLE001 - refused (or no such socket): the bridge tells which
                pass
            else:
                shared.streamlocal = True
                return sock
        bridge = BridgeChannel(self.open_exec(unix_bridge_command(path)), self.name, path)
        bridge.settimeout(self.timeout)
        if shared.streamlocal is None:
            shared.streamlocal = False  # the bridge answered where streamlocal did not: the server refuses it
        return bridge

    def open_tcp(self, host: str, port: int) -> Stream:
        return self._channel(
            lambda connection: connection.open_connection(host, port), f"ssh tunnel to {host}:{port}"
        )

    def _channel(self, open_streams: Callable[[Any], Any], what: str) -> ChannelSocket:
        """A socket to the channel `open_streams(connection)` opens, on a leased session slot."""
        link = self._lease()
        try:
            if not link.alive:
                raise HostError(f"{self.name}: ssh: connection lost", "Unreachable")
            reader, writer = LOOP.call(open_streams(link.connection), self.timeout)
        except Exception as exc:
            self._release(link)
            raise exc if isinstance(exc, HostError) else self.error(what, exc) from None
        sock = bridge(reader, writer, lambda: self._release(link))
        sock.settimeout(self.timeout)
        return sock

    def close(self) -> None:
        """Stop using the shared connections; the last host using them closes them (without waiting
        for a connect in progress). A later use joins again."""
        with self._joining:
            shared, self._shared = self._shared, None
        if shared is not None:
            leave(shared, self)


OPENED_KEPT = 16  # reasons kept in SshHost.opened

PIECE = 16384  # bytes handled between two checks of cancel and the deadline

MAX_LINKS = 4  # connections per server (LinkSet) at most; each carries up to `max_sessions` sessions
