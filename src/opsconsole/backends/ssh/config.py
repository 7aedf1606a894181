"""ssh_config and known_hosts: jump hosts, client keys with passphrases, host keys by name."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from opsconsole.backends.hosts import (
    HostError,
)


class KnownHosts:
    """known_hosts matched as OpenSSH matches it: by the name connected to, `[name]:port` for a
    port other than 22 (plain, hashed `|1|…` or a pattern), never by the address the name resolved
    to (OpenSSH's CheckHostIP is off by default) nor by the name without its port. Markers
    (@cert-authority, @revoked) keep their meaning."""

    def __init__(self, keys: Any) -> None:
        self.keys = keys

    def lookup(self, host: str, port: int | None) -> Any:
        name = host if port in (None, 22) else f"[{host}]:{port}"
        return self.keys.match(name, "", None)

    def match(self, host: str, _addr: str, port: int | None) -> Any:
        """asyncssh's known_hosts callable: (host keys, CA keys, revoked keys, …) for `host`."""
        return self.lookup(host, port)


def default_known_hosts() -> Path:
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def jump_hosts(value: Any) -> list[tuple[str, str, int | None, str | None]]:
    """ProxyJump's hosts, in order, as written and as (host, port, user): `[user@]host[:port]`,
    comma-separated; `none` is none."""
    if not value or not isinstance(value, str) or value.strip().lower() == "none":
        return []
    hops: list[tuple[str, str, int | None, str | None]] = []
    for part in value.split(","):
        part = part.strip().removeprefix("ssh://")
        user, _, rest = part.rpartition("@")
        host, port = rest, None
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
        elif rest.count(":") == 1:
            host, _, number = rest.partition(":")
            port = int(number) if number.isdigit() else None
        hops.append((part, host, port, user or None))
    return hops


def needs_passphrase(path: str) -> bool:
    """Whether the private key file is encrypted (False where it cannot be read: asyncssh tells)."""
    import asyncssh

    try:
        asyncssh.read_private_key(path)
    except asyncssh.KeyImportError as exc:
        return "passphrase" in str(exc).lower()
    except Exception:  # noqa: BLE001 - a missing or unreadable file is reported when connecting
        return False
    return False


def encrypted_keys() -> list[str]:
    """The default key files (~/.ssh/id_*) that need a passphrase."""
    keys = [os.path.expanduser(f"~/.ssh/{name}") for name in ("id_ed25519", "id_ecdsa", "id_rsa")]
    return [path for path in keys if os.path.isfile(path) and needs_passphrase(path)]


def passphrase_error(host: str, paths: list[str], denied: bool = False) -> HostError:
    files = ", ".join(paths) or "the identity file"
    add = " ".join(paths) or "FILE"
    why = "the agent holds no key the host accepts, and " if denied else ""
    agent = "" if os.environ.get("SSH_AUTH_SOCK") else ' (start one first: eval "$(ssh-agent)")'
    return HostError(
        f"{host}: ssh: {why}the key {files} is protected by a passphrase, which opsconsole does not "
        f"ask for: add it to your ssh-agent{agent} with `ssh-add {add}`, then retry",
        "Key needs a passphrase",
    )


_KNOWN_HOSTS: dict[Path, tuple[tuple[int, int], Any]] = {}

_KNOWN_HOSTS_LOCK = threading.Lock()


def ssh_config(host: str, port: int | None) -> Any:
    """~/.ssh/config's settings for `host`, as asyncssh applies them when it connects."""
    import getpass

    from asyncssh.config import SSHClientConfig

    path = Path(os.path.expanduser("~/.ssh/config"))
    paths = [path] if path.is_file() else []
    return SSHClientConfig.load(None, paths, False, False, False, getpass.getuser(), (), host, port or ())


def load_known_hosts(path: Path) -> Any:
    """known_hosts parsed once per change of the file (not once per connection); a missing or empty
    file trusts no key (every host is then refused with how to trust it)."""
    import asyncssh

    try:
        stat = path.stat()
    except OSError:
        return asyncssh.import_known_hosts("")
    version = (stat.st_mtime_ns, stat.st_size)
    with _KNOWN_HOSTS_LOCK:
        cached = _KNOWN_HOSTS.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        keys = asyncssh.read_known_hosts(str(path))
        _KNOWN_HOSTS[path] = (version, keys)
        return keys
