"""Runs `fab` inside the Python that has the team's Fabric, with the console's promises added; it
is executed as a script by that Python (never imported by opsconsole), so it imports only Fabric.

Environment it reads:
  OPSCONSOLE_FAB_KNOWN_HOSTS  the profile's known_hosts: the only host keys accepted; an unknown or
                              changed key refuses the connection before any command runs there
  OPSCONSOLE_FAB_PREFIX       "1": every remote output line starts with `[host] ` (Fabric 2+ does not
                              prefix; Fabric 1 always does)

Fabric 2+: every `Connection` rejects unknown host keys (Fabric's own default is AutoAddPolicy) and
loads only that file; remote commands run with a pty, so sshd hangs them up when `fab` is killed;
stdin is not mirrored. Fabric 1 (fab-classic): paramiko loads only that file as its known hosts, and
`--reject-unknown-hosts` (given on the command line by the console) refuses the rest.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _fabric2(known: str, prefix: bool) -> int:
    import paramiko
    from fabric import Config
    from fabric import connection as fabric_connection
    from fabric.main import program
    from fabric.runners import Remote

    original_init = fabric_connection.Connection.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if known:
            self.client.load_host_keys(known)

    fabric_connection.Connection.__init__ = init

    class PrefixedRemote(Remote):  # type: ignore[misc]
        """Whole lines, each led by the host as the console named it (`-H`)."""

        def _label(self) -> str:
            return str(self.context.original_host or self.context.host)

        def write_our_output(self, stream: Any, string: str) -> None:
            pending: dict[int, tuple[Any, str]] = self.__dict__.setdefault("_opsconsole_pending", {})
            lines = (pending.get(id(stream), (stream, ""))[1] + string).split("\n")
            pending[id(stream)] = (stream, lines.pop())
            for line in lines:
                stream.write(f"[{self._label()}] {line}\n")
            stream.flush()

        def stop(self) -> None:
            # the output threads have ended: what is pending is a last line without its newline
            pending: dict[int, tuple[Any, str]] = self.__dict__.get("_opsconsole_pending", {})
            for stream, rest in pending.values():
                if rest:
                    stream.write(f"[{self._label()}] {rest}\n")
                    stream.flush()
            pending.clear()
            super().stop()

    original_defaults = Config.global_defaults

    def global_defaults() -> dict[str, Any]:
        defaults: dict[str, Any] = original_defaults()
        defaults["run"]["pty"] = True
        defaults["run"]["in_stream"] = False
        if prefix:
            defaults["runners"]["remote"] = PrefixedRemote
        return defaults

    Config.global_defaults = staticmethod(global_defaults)
    try:
        program.run(["fab", *sys.argv[1:]], exit=True)
    except (paramiko.SSHException, OSError) as exc:
        # a refused host key or an unreachable host: one line that says so, not a traceback
        hint = f" (the profile's known_hosts is {known})" if "known_hosts" in str(exc) else ""
        print(f"fab: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    return 0


def _fabric1(known: str) -> int:
    import paramiko
    from fabric.main import main

    original_load = paramiko.SSHClient.load_system_host_keys

    def load_system_host_keys(self: Any, filename: str | None = None) -> None:
        if known:
            original_load(self, known)

    paramiko.SSHClient.load_system_host_keys = load_system_host_keys
    sys.argv = ["fab", *sys.argv[1:]]
    main()
    return 0


def run() -> int:
    known = os.environ.get("OPSCONSOLE_FAB_KNOWN_HOSTS", "")
    prefix = os.environ.get("OPSCONSOLE_FAB_PREFIX") == "1"
    try:
        from fabric import Connection  # noqa: F401 - present in Fabric 2+ only
    except ImportError:
        return _fabric1(known)
    return _fabric2(known, prefix)


if __name__ == "__main__":
    sys.exit(run())
