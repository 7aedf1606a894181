"""SSH connections shared by every project of the process: one set of connections (and one session
budget) per server, for all the hosts, of any profile, whose connections are interchangeable."""

from __future__ import annotations

import socket
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

from opsconsole.backends.hosts import HostError
from opsconsole.backends.ssh.loop import LOOP


@dataclass(frozen=True)
class ShareKey:
    """What makes two hosts' connections interchangeable. Security: an authenticated connection is
    handed only to a host that would have made the very same one itself: the same server (host name,
    port and user as resolved), trusted by the same known_hosts file, authenticated with the same
    keys (identity_file, ssh_config's IdentityFile and the rest of its settings for the host, the
    agent) through the same jump hosts. A profile with another known_hosts file (even a copy) or
    another key never gets this connection: it must pass its own host key check and its own login."""

    hostname: str
    port: int  # 22 where neither the profile nor ssh_config names one
    user: str  # the login name asyncssh uses (the profile's, ssh_config's, else the local user)
    known_hosts: str  # realpath
    identity_file: str | None  # realpath of defaults.identity_file; None: asyncssh's own choice
    agent: str | None  # SSH_AUTH_SOCK
    config: tuple[tuple[str, str], ...]  # ssh_config's other settings (IdentityFile, ProxyJump, …)
    jumps: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # each ProxyJump hop and its ssh_config
    jump_user: str | None  # defaults.user: the login on jump hosts that name none


def config_items(options: dict[str, Any], *skip: str) -> tuple[tuple[str, str], ...]:
    """ssh_config settings as a hashable, comparable value."""
    return tuple(sorted((name, repr(value)) for name, value in options.items() if name not in skip))


class User(Protocol):
    """A host using a LinkSet: its session budget counts towards the set's."""

    max_sessions: int


class Link:
    """One SSH connection, how many of its sessions are in use, and the condition that hands them
    out (its LinkSet's)."""

    def __init__(self, connection: Any, free: threading.Condition) -> None:
        self.connection = connection
        self.sessions = 0
        self.free = free

    @property
    def alive(self) -> bool:
        return not self.connection.is_closed()

    @property
    def sock(self) -> socket.socket:
        """The connection's TCP socket (tests cut it to simulate a dropped link)."""
        return self.connection.get_extra_info("socket")  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            LOOP.call_soon(self.connection.close)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class LinkSet:
    """The connections to one server under one ShareKey, shared by its users (SshHosts of any
    profile): the links and the lock and condition that hand out their sessions, the last failed
    connect (so queued callers get its error at once), whether the server forwards unix sockets, and
    why connections were opened. `links`, `failure`, `streamlocal` and `opened` change only under
    `lock`. The session budget per connection is the smallest of the users' max_sessions: the
    server's MaxSessions is per connection, whoever opens the sessions."""

    def __init__(self, key: ShareKey) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.free = threading.Condition(self.lock)
        self.links: list[Link] = []
        self.failure: tuple[float, HostError, str] | None = None  # (monotonic time, error, host it names)
        self.streamlocal: bool | None = None  # whether the server forwards unix sockets (unknown yet)
        self.opened: list[str] = []  # why connections were opened (first use, lost, all busy): the last few
        self.max_sessions = 1
        self.closed = False  # every user left: the set is out of the registry and opens nothing more
        self._users: weakref.WeakSet[Any] = weakref.WeakSet()  # under _SETS_LOCK

    @property
    def users(self) -> int:
        return len(self._users)

    def _budget(self) -> None:
        """(under _SETS_LOCK) A host collected without close() just stops counting."""
        budgets = [user.max_sessions for user in list(self._users)]
        if budgets:
            self.max_sessions = min(budgets)

    def close(self) -> None:
        # A connect in progress holds the lock until its timeout: don't wait for it (the host that
        # opens it closes it, the set being closed).
        if not self.lock.acquire(timeout=0.1):
            return
        try:
            for link in self.links:
                link.close()
            self.links = []
            self.free.notify_all()
        finally:
            self.lock.release()


_SETS: dict[ShareKey, LinkSet] = {}  # the open sets, one per key; a closed set is never in it

_SETS_LOCK = threading.Lock()


def join(key: ShareKey, user: User) -> LinkSet:
    """The set for `key` (a new one where none is open), with `user` counted among its users."""
    with _SETS_LOCK:
        shared = _SETS.get(key)
        if shared is None:
            shared = _SETS[key] = LinkSet(key)
        shared._users.add(user)
        shared._budget()
        return shared


def leave(shared: LinkSet, user: User) -> None:
    """`user` stops using the set; the last one out closes its connections."""
    with _SETS_LOCK:
        shared._users.discard(user)
        if shared._users:
            shared._budget()
            return
        shared.closed = True
        if _SETS.get(shared.key) is shared:
            del _SETS[shared.key]
    shared.close()


def open_sets() -> list[LinkSet]:
    """The sets in use now (for tests and diagnostics)."""
    with _SETS_LOCK:
        return list(_SETS.values())
