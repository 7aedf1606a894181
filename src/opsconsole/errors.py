"""Errors with a title and a message, and the CLI's documented exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every `opsconsole` command (documented in README.md)."""

    OK = 0
    FAILED = 1  # the action ran and failed
    USAGE = 2  # usage or profile error
    REFUSED = 3  # read-only, lock held, confirmation missing
    UNREACHABLE = 4  # a host or service could not be reached


class OpsError(Exception):
    """An error a person can act on: a short title and a message saying what to do."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__(message)
        self.title = title
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OpsError):
    exit_code = ExitCode.USAGE


class ProfileError(OpsError):
    """One or more problems in a profile; each line names file:line and the key path."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[str], title: str = "Invalid profile") -> None:
        super().__init__("\n".join(problems), title)
        self.problems = problems


class SecretError(OpsError):
    exit_code = ExitCode.USAGE


class RefusedError(OpsError):
    exit_code = ExitCode.REFUSED


class UnreachableError(OpsError):
    exit_code = ExitCode.UNREACHABLE


class StartingError(OpsError):
    """A service that is still starting (its starter says so): shown as pending, not as a failure."""
