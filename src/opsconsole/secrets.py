"""Secrets: named in profiles, resolved from the environment, then the OS keyring.

Values are wrapped in `Secret`, whose repr and str never show the value, and every resolved value is
registered with `redact()` so error messages and logs can be scrubbed of it.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Literal

from opsconsole.errors import SecretError
from opsconsole.profiles import SecretRef

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
                _known_values.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, '***')"

    __str__ = __repr__


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


Source = Literal["environment", "keyring"]


@dataclass(frozen=True)
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


def lookup(name: str) -> tuple[Lookup, Secret | None]:
    value = os.environ.get(env_var(name))
    if value:
        return Lookup(name, "environment"), Secret(name, value)
    stored, problem = _keyring_get(name)
    if stored:
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
