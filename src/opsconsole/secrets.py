"""Secrets: named in profiles, resolved from the environment, then opsconsole's own secret files,
then the OS keyring.

The secret files (`<data dir>/secrets/NAME`, this user's, mode 0600) hold only what opsconsole made
for its own processes, such as a running demo's Bugsink token; people store theirs in the keyring.

Values are wrapped in `Secret`, whose repr and str never show the value, and every resolved value is
registered with `redact()` so error messages and logs can be scrubbed of it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Literal
from urllib.parse import quote, quote_plus

from opsconsole import paths
from opsconsole.errors import SecretError
from opsconsole.profiles import SecretRef
from opsconsole.record import frozen

SERVICE = "opsconsole"
ENV_PREFIX = "OPSCONSOLE_SECRET_"

_known_values: set[str] = set()
_known_lock = threading.Lock()


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value
        if len(value) >= 4:
            with _known_lock:
                _known_values.update(_forms(value))

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '***')"

    __str__ = __repr__


def _forms(value: str) -> set[str]:
    """The value as it may appear in text: raw, JSON/`repr`-escaped, bytes-repr, percent-encoded."""
    forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe=""), quote_plus(value)}
    forms.add(repr(value.encode("utf-8", "replace"))[2:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {f for f in forms if len(f) >= 4}


def problem_with(name: str, value: str, origin: str) -> str | None:
    """Why a resolved value cannot be used (never quoting the value), or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return (
            f"secret '{name}' (from {origin}) contains a control character such as a newline or carriage "
            "return, which would corrupt HTTP headers and leak into error messages; store it again without it"
        )
    if value != value.strip():
        return f"secret '{name}' (from {origin}) starts or ends with white space; store it again without it"
    return None


def redact(text: str) -> str:
    """Replace every secret value this process has resolved by `***`."""
    with _known_lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


def env_var(name: str) -> str:
    """OPSCONSOLE_SECRET_<NAME>, upper-cased, '-' and '.' to '_'."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


Source = Literal["environment", "file", "keyring"]


@frozen
class Lookup:
    name: str
    source: Source | None
    problem: str | None = None

    @property
    def found(self) -> bool:
        return self.source is not None


def _no_keyring_message(name: str, detail: str) -> str:
    return (
        f"secret '{name}' is not set and no OS keyring is usable here ({detail}). "
        f"Supply it with the environment variable {env_var(name)}, or install a keyring backend "
        "(a desktop Secret Service, or `pip install keyrings.alt` for a file store) and run "
        f"`opsconsole secret set {name}`"
    )


def _keyring_get(name: str) -> tuple[str | None, str | None]:
    """(value, problem) from the OS keyring; problem is set when no backend works."""
    try:
        import keyring
        import keyring.errors
    except ImportError:  # pragma: no cover - keyring is a hard dependency
        return None, "the keyring package is not installed"
    try:
        return keyring.get_password(SERVICE, name), None
    except keyring.errors.NoKeyringError as exc:
        return None, str(exc) or "no recommended backend"
    except keyring.errors.KeyringError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # backends raise their own errors (D-Bus, locked collections)
        return None, f"{type(exc).__name__}: {exc}"


def secret_file(name: str) -> Path:
    """Where opsconsole keeps a secret it made for its own processes (a running demo's token)."""
    return paths.data_dir() / "secrets" / name


def _file_get(name: str) -> str | None:
    """The value of `secret_file(name)` when it is a regular file of this user that nobody else
    may read (0600); else None, as if it were not there."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):
        return None
    try:
        fd = os.open(secret_file(name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        return os.read(fd, 4096).decode("utf-8", "replace") or None
    finally:
        os.close(fd)


def lookup(name: str) -> tuple[Lookup, Secret | None]:
    value = os.environ.get(env_var(name))
    if value:
        bad = problem_with(name, value, f"the environment variable {env_var(name)}")
        if bad:
            Secret(name, value)  # registered for redaction all the same
            return Lookup(name, None, bad), None
        return Lookup(name, "environment"), Secret(name, value)
    value = _file_get(name)
    if value:
        bad = problem_with(name, value, f"the file {secret_file(name)}")
        if bad:
            Secret(name, value)
            return Lookup(name, None, bad), None
        return Lookup(name, "file"), Secret(name, value)
    stored, problem = _keyring_get(name)
    if stored:
        bad = problem_with(name, stored, "the OS keyring")
        if bad:
            Secret(name, stored)
            return Lookup(name, None, bad), None
        return Lookup(name, "keyring"), Secret(name, stored)
    if problem:
        return Lookup(name, None, _no_keyring_message(name, problem)), None
    return (
        Lookup(
            name,
            None,
            f"secret '{name}' is not set: run `opsconsole secret set {name}` "
            f"or set the environment variable {env_var(name)}",
        ),
        None,
    )


def resolve(ref: SecretRef | str) -> Secret:
    """The secret's value, or SecretError saying exactly how to supply it."""
    name = ref.name if isinstance(ref, SecretRef) else ref
    found, secret = lookup(name)
    if secret is None:
        raise SecretError(found.problem or f"secret '{name}' is not set", "Missing secret")
    return secret


def store(name: str, value: str) -> str:
    """Store in the OS keyring; returns the backend's name."""
    import keyring
    import keyring.errors

    if not value:
        raise SecretError("refusing to store an empty secret", "Empty secret")
    bad = problem_with(name, value, "the value given")
    if bad:
        raise SecretError(bad.replace("store it again", "give it"), "Bad secret")
    try:
        keyring.set_password(SERVICE, name, value)
    except keyring.errors.NoKeyringError as exc:
        raise SecretError(_no_keyring_message(name, str(exc) or "no backend"), "No keyring") from None
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"the keyring refused to store '{name}': {exc}", "Keyring error") from None
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def delete(name: str) -> None:
    import keyring
    import keyring.errors

    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        raise SecretError(f"secret '{name}' is not in the keyring", "No such secret") from None
    except keyring.errors.NoKeyringError as exc:
        raise SecretError(_no_keyring_message(name, str(exc) or "no backend"), "No keyring") from None
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"the keyring refused to delete '{name}': {exc}", "Keyring error") from None
