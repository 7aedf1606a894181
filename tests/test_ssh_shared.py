"""Many projects at once: projects (profiles, each with its own Backends) that name the same SSH
server, with the same known_hosts and key, share one connection and its session budget; another
known_hosts file or key gets a connection of its own; a dead host of one project leaves the others be."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness
from conftest import _unavailable, write_profile
from opsconsole.backends.clients import Backends
from opsconsole.backends.hosts import Host, HostError
from opsconsole.backends.ssh.shared import open_sets
from opsconsole.profiles import load_profile, parse_host


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.Sshd]:
    """An sshd of the test's own: its log counts only this test's connections."""
    try:
        sshd = harness.make_sshd(tmp_path / "sshd")
        sshd.start()
    except harness.ServiceUnavailable as exc:
        _unavailable(exc)
    yield sshd
    sshd.stop()


def accepted(sshd: harness.Sshd) -> int:
    """SSH connections the server accepted so far (logins, from its log)."""
    return (sshd.root / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def established(port: int) -> int:
    """This process's established TCP connections to `port` on loopback (/proc/net/tcp: a socket
    whose inode is one of our file descriptors)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == port and inode in ours:
                count += 1
    return count


def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def project(
    tmp_path: Path,
    name: str,
    hosts: list[str],
    known_hosts: Path,
    key: Path,
    extra: str = "",
    timeout: float = 5,
) -> Backends:
    listed = ", ".join(f'"{host}"' for host in hosts)
    path = write_profile(
        tmp_path,
        f'[project]\nname = "{name}"\n'
        f'[defaults]\nknown_hosts = "{known_hosts}"\nidentity_file = "{key}"\ntimeout = {timeout}\n{extra}'
        f"[environments.prod]\nhosts = [{listed}]\n",
        name=name,
    )
    return Backends(load_profile(path))


def on(backends: Backends, host: str) -> Host:
    return backends.host(parse_host(host))


def test_two_projects_on_one_server_share_one_connection_and_its_budget(
    tmp_path: Path, server: harness.Sshd
) -> None:
    shop = project(
        tmp_path, "shop", [server.host], server.known_hosts, server.client_key, "max_sessions = 2\n"
    )
    blog = project(tmp_path, "blog", [server.host], server.known_hosts, server.client_key)
    shop_host, blog_host = on(shop, server.host), on(blog, server.host)
    assert shop_host is not blog_host
    try:
        assert shop_host.run("echo shop").stdout == "shop\n"
        assert blog_host.run("echo blog").stdout == "blog\n"
        links = shop_host._links  # type: ignore[attr-defined]
        assert len(links) == 1 and blog_host._links is links  # type: ignore[attr-defined]
        assert blog_host._connection is shop_host._connection  # type: ignore[attr-defined]
        assert accepted(server) == 1 and established(server.port) == 1
        assert shop_host.opened == blog_host.opened == ["first use"]  # type: ignore[attr-defined]

        # the budget is the smaller one (shop's 2), whichever project opens the sessions: three
        # commands at once from blog need a second connection
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(blog_host.run("sleep 0.5; echo ok").stdout))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert results == ["ok\n"] * 3
        assert len(links) == 2 and accepted(server) == 2
        assert shop_host.opened == ["first use", "all sessions busy"]  # type: ignore[attr-defined]

        # one project closing leaves the other on the same connection
        first = links[0]
        shop.close()
        assert blog_host.run("echo still").stdout == "still\n"
        assert blog_host._connection is first and first.alive  # type: ignore[attr-defined]
        assert accepted(server) == 2
    finally:
        shop.close()
        blog.close()
    # the last one out closes the connections, and the shared set is gone
    eventually(lambda: established(server.port) == 0, "the connections to close")
    assert not [s for s in open_sets() if s.key.port == server.port]


def test_another_known_hosts_file_or_key_gets_a_connection_of_its_own(
    tmp_path: Path, server: harness.Sshd
) -> None:
    """An authenticated connection is never handed to a project that trusts the server through
    another known_hosts file, or logs in with another key file, even a copy: it connects itself."""
    known_copy = tmp_path / "known_hosts.copy"
    shutil.copy(server.known_hosts, known_copy)
    key_copy = tmp_path / "client_key.copy"
    shutil.copy(server.client_key, key_copy)
    key_copy.chmod(0o600)
    shop = project(tmp_path, "shop", [server.host], server.known_hosts, server.client_key)
    blog = project(tmp_path, "blog", [server.host], known_copy, server.client_key)
    wiki = project(tmp_path, "wiki", [server.host], server.known_hosts, key_copy)
    hosts = [on(backends, server.host) for backends in (shop, blog, wiki)]
    try:
        for host in hosts:
            assert host.run("echo hi").stdout == "hi\n"
        connections = [host._connection for host in hosts]  # type: ignore[attr-defined]
        assert len({id(link) for link in connections}) == 3
        assert accepted(server) == 3 and established(server.port) == 3
        blog.close()
        eventually(lambda: established(server.port) == 2, "blog's own connection to close")
        assert hosts[0].run("echo hi").stdout == "hi\n" and hosts[2].run("echo hi").stdout == "hi\n"
    finally:
        for backends in (shop, blog, wiki):
            backends.close()


def test_a_dead_host_in_one_project_leaves_the_other_project_working(
    tmp_path: Path, server: harness.Sshd, blackhole: harness.Blackhole
) -> None:
    """shop's dead host hangs its connect until the timeout: blog, on the live server, is not held
    up meanwhile; each project's error names its own host, even where both name the dead one."""
    dead = f"root@127.0.0.1:{blackhole.port}"
    dead_too = f"127.0.0.1:{blackhole.port}"  # blog's name for the same dead server (user from defaults)
    shop = project(tmp_path, "shop", [server.host, dead], server.known_hosts, server.client_key, timeout=2)
    blog = project(
        tmp_path, "blog", [server.host, dead_too], server.known_hosts, server.client_key, 'user = "root"\n'
    )
    errors: list[HostError] = []

    def connect_dead() -> None:
        try:
            on(shop, dead).run("true")
        except HostError as exc:
            errors.append(exc)

    try:
        assert on(shop, server.host).run("echo up").stdout == "up\n"
        thread = threading.Thread(target=connect_dead)
        thread.start()
        time.sleep(0.2)  # shop's connect to the dead host is under way
        started = time.monotonic()
        assert on(blog, server.host).run("echo blog").stdout == "blog\n"
        assert time.monotonic() - started < 1.0
        assert thread.is_alive()  # still waiting for the dead host
        # blog queues behind shop's connect to their common dead server and gets its error at once,
        # naming blog's own host
        with pytest.raises(HostError, match=rf"^{dead_too}: ssh: ") as info:
            on(blog, dead_too).run("true")
        thread.join(10)
        assert len(errors) == 1 and errors[0].message.startswith(f"{dead}: ssh: ")
        assert "timed out" in errors[0].message and "timed out" in info.value.message
        assert on(shop, server.host).run("echo up").stdout == "up\n"
        assert on(blog, server.host).run("echo up").stdout == "up\n"
        assert accepted(server) == 1
    finally:
        shop.close()
        blog.close()
