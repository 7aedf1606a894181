"""Issue 26, the SSH layer against the loopback sshd: commands stop on time whatever their output
rate, keep a bounded tail of it and are killed on the host; host keys match by name as OpenSSH
does; ProxyJump hosts are checked against the profile's known_hosts; revoked keys, jump hosts and
passphrase-protected keys fail saying what they are."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness
from opsconsole.backends.clients import make_host
from opsconsole.backends.hosts import OUTPUT_KEPT, Cancelled, Host, HostError
from opsconsole.profiles import Defaults, parse_host

pytestmark = pytest.mark.faults


def _running(pattern: str) -> list[str]:
    done = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if "pgrep" not in line]


def _gone(pattern: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _running(pattern):
            return True
        time.sleep(0.1)
    return False


def _marker() -> str:
    """A number no other process has on its command line: `sleep 1000.<marker>` is findable."""
    return str(uuid.uuid4().int % 10**9)


@pytest.fixture(params=["ssh", "local"])
def any_host(request: pytest.FixtureRequest) -> Iterator[Host]:
    if request.param == "local":
        host = make_host(parse_host("local"), Defaults(timeout=5.0))
    else:
        sshd: harness.Sshd = request.getfixturevalue("sshd")
        defaults = Defaults(
            known_hosts=str(sshd.known_hosts), identity_file=str(sshd.client_key), timeout=5.0
        )
        host = make_host(parse_host(sshd.host), defaults)
    yield host
    host.close()


# ------------------------------------------------------------------ stopping on time


def test_a_chatty_command_honours_its_timeout_and_is_killed_on_the_host(any_host: Host) -> None:
    """A line every 10 ms used to hold the SSH reader past every deadline (34.9 s for a deploy)."""
    mark = _marker()
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(HostError, match="timed out after 1 s"):
        any_host.run(
            f"while :; do echo line; sleep 0.01; done & sleep 1000.{mark}",
            timeout=1,
            on_line=lambda _s, line: lines.append(line),
        )
    assert time.monotonic() - started < 1.5
    assert lines and set(lines) == {"line"}
    assert _gone(f"sleep 1000.{mark}"), _running(f"sleep 1000.{mark}")


def test_a_chatty_command_honours_cancel_within_half_a_second(any_host: Host) -> None:
    mark = _marker()
    cancel = threading.Event()
    set_at: list[float] = []

    def fire() -> None:
        set_at.append(time.monotonic())
        cancel.set()

    timer = threading.Timer(0.7, fire)
    timer.start()
    try:
        with pytest.raises(Cancelled):
            any_host.run(f"yes opsc-{mark} | while read -r l; do echo $l; done", timeout=30, cancel=cancel)
    finally:
        timer.cancel()
    assert set_at and time.monotonic() - set_at[0] < 0.5
    assert _gone(f"yes opsc-{mark}")


def test_yes_with_a_timeout_stops_and_keeps_little(any_host: Host) -> None:
    """`yes` with timeout=8 reached 2.5 GB in the SSH reader and kept running on the host."""
    mark = _marker()
    started = time.monotonic()
    with pytest.raises(HostError, match="timed out"):
        any_host.run(f"yes opsc-yes-{mark}", timeout=2)
    assert time.monotonic() - started < 2.5
    assert _gone(f"yes opsc-yes-{mark}")


def test_a_quiet_read_only_command_is_killed_on_the_host_at_its_timeout(any_host: Host) -> None:
    """Not only guarded (cancellable) commands: a plain read that hangs (a run log that is
    /dev/zero, read by `tail`) must not stay on the host at 100 % CPU after its timeout."""
    mark = _marker()
    with pytest.raises(HostError, match="timed out"):
        any_host.run(f"tail -n 5 /dev/zero | cat; sleep 1000.{mark}", timeout=1)
    assert _gone("tail -n 5 /dev/zero"), _running("tail -n 5 /dev/zero")
    with pytest.raises(HostError, match="timed out"):
        any_host.run(f"sleep 1000.{mark}", timeout=0.5)
    assert _gone(f"sleep 1000.{mark}")


def test_output_is_kept_as_a_bounded_tail_and_streamed_whole(any_host: Host) -> None:
    count = [0]
    last: list[str] = []

    def on_line(_stream: str, line: str) -> None:
        count[0] += 1
        last[:] = [line]

    # 50 MB in lines of 1,000 characters, numbered at the end of each line
    result = any_host.run(
        "head -c 50000000 /dev/zero | tr '\\0' x | fold -w 994 | awk '{printf \"%s%06d\\n\", $0, NR}'",
        timeout=60,
        on_line=on_line,
    )
    assert result.ok, result.stderr
    lines, rest = divmod(50_000_000, 994)
    final = "x" * rest + f"{lines + 1:06d}"
    assert count[0] == lines + 1 and last == [final]  # every line streamed
    assert len(result.stdout) <= OUTPUT_KEPT
    assert result.cut > 40_000_000
    assert result.stdout.endswith(f"{lines:06d}\n{final}\n")
    assert len(result.stdout.split("\n", 1)[0]) == 1000  # the tail starts at a whole line


def test_a_stream_without_newlines_is_bounded_too(any_host: Host) -> None:
    pieces: list[int] = []
    result = any_host.run(
        "head -c 20000000 /dev/zero | tr '\\0' y",
        timeout=60,
        on_line=lambda _s, line: pieces.append(len(line)),
    )
    assert result.ok
    assert sum(pieces) == 20_000_000 and max(pieces) <= 65536
    assert len(result.stdout) <= OUTPUT_KEPT and result.cut == 20_000_000 - len(result.stdout)


def test_ordinary_output_is_whole_and_uncut(any_host: Host) -> None:
    result = any_host.run("printf 'a\\nb\\n'; echo oops >&2; exit 2")
    assert (result.exit_code, result.stdout, result.stderr, result.cut) == (2, "a\nb\n", "oops\n", 0)


# ------------------------------------------------------------------ host keys by name


def _host_key(sshd: harness.Sshd) -> str:
    return " ".join(sshd.host_key.with_suffix(".pub").read_text().split()[:2])


def _connect(sshd: harness.Sshd, target: str, known: Path, identity: Path | None = None) -> str:
    """`echo ok` on `target` with `known` as the profile's known_hosts: its output, or the error."""
    defaults = Defaults(known_hosts=str(known), identity_file=str(identity or sshd.client_key), timeout=5.0)
    host = make_host(parse_host(target), defaults)
    try:
        return host.run("echo ok").stdout.strip()
    except HostError as exc:
        return exc.message
    finally:
        host.close()


def test_a_key_listed_for_the_address_only_does_not_pass_for_a_name(
    sshd: harness.Sshd, tmp_path: Path
) -> None:
    """OpenSSH looks a host key up by the name connected to (CheckHostIP is off): a key listed
    for `[127.0.0.1]:PORT` does not pass for `localhost:PORT`, nor one listed without the port."""
    known = tmp_path / "known_hosts"
    log = sshd.root / "sshd.log"
    accepted = log.read_text().count("Accepted publickey")
    for listed in (f"[127.0.0.1]:{sshd.port}", "localhost"):
        known.write_text(f"{listed} {_host_key(sshd)}\n")
        message = _connect(sshd, f"root@localhost:{sshd.port}", known)
        assert "unknown host key" in message and f"ssh-keyscan -p {sshd.port} localhost" in message, message
    assert log.read_text().count("Accepted publickey") == accepted  # never authenticated


def test_names_hashed_entries_and_patterns_match_as_in_openssh(sshd: harness.Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = _host_key(sshd)
    for listed in (f"[localhost]:{sshd.port}", f"[l?calhost]:{sshd.port}", f"other,[local*]:{sshd.port}"):
        known.write_text(f"{listed} {key}\n")
        assert _connect(sshd, f"root@localhost:{sshd.port}", known) == "ok", listed
    known.write_text(f"[localhost]:{sshd.port} {key}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    assert _connect(sshd, f"root@localhost:{sshd.port}", known) == "ok"
    # a negated pattern excludes the name, as in OpenSSH
    known.write_text(f"[local*]:{sshd.port},![localhost]:{sshd.port} {key}\n")
    assert "unknown host key" in _connect(sshd, f"root@localhost:{sshd.port}", known)


def test_a_revoked_key_says_it_is_revoked(sshd: harness.Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = _host_key(sshd)
    known.write_text(f"@revoked [127.0.0.1]:{sshd.port} {key}\n[127.0.0.1]:{sshd.port} {key}\n")
    message = _connect(sshd, sshd.host, known)
    assert "@revoked" in message and "refusing to connect" in message, message
    assert "rebuilt" not in message and "ssh-keygen -R" not in message.replace(
        "not even after ssh-keygen -R", ""
    )


# ------------------------------------------------------------------ ProxyJump


@pytest.fixture
def behind_jump(
    tmp_path: Path, sshd: harness.Sshd, monkeypatch: pytest.MonkeyPatch
) -> Iterator[harness.Sshd]:
    """A second sshd reached as `opsc-behind` through the main one (ProxyJump in ~/.ssh/config, in
    a HOME of this test's own whose ~/.ssh/known_hosts is empty)."""
    server = harness.make_sshd(tmp_path / "behind-sshd")
    with (server.root / "authorized_keys").open("a") as keys:
        keys.write(sshd.client_key.with_suffix(".pub").read_text())
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("")
    (home / ".ssh" / "config").write_text(
        f"Host opsc-behind\n  HostName 127.0.0.1\n  Port {server.port}\n  ProxyJump root@127.0.0.1:{sshd.port}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_proxyjump_checks_the_jump_host_against_the_profiles_known_hosts(
    sshd: harness.Sshd, behind_jump: harness.Sshd, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts.read_text() + behind_jump.known_hosts.read_text())
    jump_log = sshd.root / "sshd.log"
    accepted = jump_log.read_text().count("Accepted publickey")
    assert _connect(sshd, "root@opsc-behind", known) == "ok"
    assert jump_log.read_text().count("Accepted publickey") == accepted + 1  # through the jump host


def test_a_jump_host_failure_says_it_is_the_jump_host(
    sshd: harness.Sshd, behind_jump: harness.Sshd, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(behind_jump.known_hosts.read_text())  # the target is trusted, its jump host not
    message = _connect(sshd, "root@opsc-behind", known)
    assert f"jump host root@127.0.0.1:{sshd.port} (ProxyJump)" in message, message
    assert "unknown host key" in message and f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in message
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known.write_text(behind_jump.known_hosts.read_text() + f"[127.0.0.1]:{sshd.port} {wrong}\n")
    message = _connect(sshd, "root@opsc-behind", known)
    assert "jump host" in message and "does not match known_hosts" in message, message
    assert f"ssh-keygen -R [127.0.0.1]:{sshd.port} -f {known}" in message
    assert f"{behind_jump.port}" not in message.split("(ProxyJump)", 1)[1]  # no advice about the target


# ------------------------------------------------------------------ passphrase-protected keys


@pytest.fixture
def locked_key(tmp_path: Path, sshd: harness.Sshd) -> Iterator[Path]:
    """A passphrase-protected key (passphrase "sesame") that the main sshd accepts."""
    key = tmp_path / "locked_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "sesame", "-f", str(key)], check=True)
    authorized = sshd.root / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + key.with_suffix(".pub").read_text())
    try:
        yield key
    finally:
        authorized.write_text(before)


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """A real ssh-agent of this test's own; calling it adds a key (its passphrase given by askpass)."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    harness.wait_for(sock.exists, 10, "ssh-agent")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho sesame\n")
    askpass.chmod(0o755)

    def add(key: Path) -> None:
        env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(
            ["ssh-add", str(key)], env=env, stdin=subprocess.DEVNULL, check=True, capture_output=True
        )

    try:
        yield add
    finally:
        proc.terminate()
        proc.wait(5)


def test_a_passphrase_protected_key_names_the_file_and_ssh_add(
    sshd: harness.Sshd, locked_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    message = _connect(sshd, sshd.host, sshd.known_hosts, identity=locked_key)
    assert f"the key {locked_key} is protected by a passphrase" in message, message
    assert f"`ssh-add {locked_key}`" in message and "ssh-agent" in message


def test_a_passphrase_protected_key_in_the_agent_connects(
    sshd: harness.Sshd, locked_key: Path, agent: Callable[[Path], None], tmp_path: Path
) -> None:
    message = _connect(sshd, sshd.host, sshd.known_hosts, identity=locked_key)
    assert f"`ssh-add {locked_key}`" in message, message  # the agent does not hold it yet
    agent(locked_key)
    assert _connect(sshd, sshd.host, sshd.known_hosts, identity=locked_key) == "ok"
