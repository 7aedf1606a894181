"""Supervisor backend against a real supervisord: directly, over HTTP with auth, and through sshd."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness
from opsconsole.backends.clients import make_host
from opsconsole.backends.hosts import HostError
from opsconsole.backends.supervisor import SupervisorClient
from opsconsole.errors import UsageError
from opsconsole.profiles import Defaults, SupervisorConfig, parse_host


def local_client(sup: harness.Supervisord) -> SupervisorClient:
    return SupervisorClient(make_host(parse_host("local"), Defaults()), SupervisorConfig(url=sup.unix_url))


@pytest.fixture(params=["local-unix", "local-http", "ssh-unix", "ssh-http"])
def client(request: pytest.FixtureRequest, supervisord: harness.Supervisord) -> SupervisorClient:
    kind = request.param
    if kind.startswith("ssh"):
        defaults = request.getfixturevalue("ssh_defaults")
        host = make_host(parse_host(request.getfixturevalue("sshd").host), defaults)
    else:
        host = make_host(parse_host("local"), Defaults())
    if kind.endswith("unix"):
        return SupervisorClient(host, SupervisorConfig(url=supervisord.unix_url))
    return SupervisorClient(
        host, SupervisorConfig(url=supervisord.http_url, username="admin"), supervisord.password
    )


def test_reads_every_process(client: SupervisorClient) -> None:
    procs = {p.full_name: p for p in client.processes()}
    counter = procs["counter:counter"]
    assert counter.state == "RUNNING" and counter.pid > 0 and counter.uptime is not None
    assert counter.description.startswith("pid ") and counter.stdout_logfile.endswith("counter.out.log")
    idle = procs["idle:idle"]
    assert idle.state == "STOPPED" and idle.pid == 0 and idle.uptime is None
    assert procs["web:web_0"].group == "web"
    assert counter.to_json()["state"] == "RUNNING"


def test_wrong_password_is_a_clear_error(supervisord: harness.Supervisord) -> None:
    host = make_host(parse_host("local"), Defaults())
    bad = SupervisorClient(host, SupervisorConfig(url=supervisord.http_url, username="admin"), "wrong")
    with pytest.raises(HostError, match="authentication failed"):
        bad.processes()


def test_missing_socket_names_host_and_path(tmp_path: Path) -> None:
    client = SupervisorClient(
        make_host(parse_host("local"), Defaults()), SupervisorConfig(url=f"unix://{tmp_path}/none.sock")
    )
    with pytest.raises(
        HostError, match=r"^local: supervisor at unix://.*none.sock: .*none.sock does not exist"
    ):
        client.processes()


def test_a_server_that_refuses_socket_forwarding_is_read_through_the_bridge(
    tmp_path: Path, supervisord: harness.Supervisord
) -> None:
    """Where sshd refuses unix-socket forwarding, Supervisor is reached through a python3 bridge on
    the host, with the same answers, and a socket that is not there is named as such. Every session
    is given back: the host's session slots are all free afterwards."""
    server = harness.make_sshd(tmp_path / "sshd", streamlocal=False)
    server.start()
    try:
        defaults = Defaults(known_hosts=str(server.known_hosts), identity_file=str(server.client_key))
        host = make_host(parse_host(server.host), defaults)
        client = SupervisorClient(host, SupervisorConfig(url=supervisord.unix_url))
        for _ in range(3):
            procs = {p.full_name: p for p in client.processes()}
            assert procs["counter:counter"].state == "RUNNING"
        assert host._streamlocal is False  # type: ignore[attr-defined]
        missing = SupervisorClient(host, SupervisorConfig(url=f"unix://{tmp_path}/none.sock"))
        with pytest.raises(HostError, match=r"none.sock does not exist"):
            missing.processes()
        client.close()
        missing.close()
        deadline = time.monotonic() + 5
        while any(link.sessions for link in host._links) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert [link.sessions for link in host._links] == [0]  # type: ignore[attr-defined]
        host.close()
    finally:
        server.stop()


def test_restart_changes_pid_and_start_stop(client: SupervisorClient) -> None:
    before = client.process("sleeper").pid
    client.restart("sleeper")
    after = client.process("sleeper:sleeper")
    assert after.state == "RUNNING" and after.pid not in (0, before)
    client.stop("sleeper")
    assert client.process("sleeper").state == "STOPPED"
    assert client.stop("sleeper") == ["sleeper:sleeper: was not running"]
    client.start("sleeper")
    assert client.process("sleeper").state == "RUNNING"


def test_group_restart_and_signal(client: SupervisorClient) -> None:
    pids = {p.full_name: p.pid for p in client.processes() if p.group == "web"}
    out = client.restart("web")
    assert len(out) == 2
    new = {p.full_name: p.pid for p in client.processes() if p.group == "web"}
    assert all(new[name] != pid for name, pid in pids.items())
    assert client.signal("web:web_0", "USR1") == ["web:web_0: ok"]
    deadline = time.monotonic() + 10
    while "got SIGUSR1" not in "\n".join(client.tail_lines("web:web_0", 5)[0]):
        assert time.monotonic() < deadline, "the program never saw the signal"
        time.sleep(0.1)


def test_unknown_name_is_a_usage_error(client: SupervisorClient) -> None:
    with pytest.raises(UsageError, match="no process or group 'nope'"):
        client.restart("nope")


def _numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]


@pytest.mark.parametrize("via", ["local", "ssh"])
def test_follow_log_loses_and_repeats_nothing_while_writing_fast(
    via: str, supervisord: harness.Supervisord, request: pytest.FixtureRequest
) -> None:
    if via == "ssh":
        host = make_host(
            parse_host(request.getfixturevalue("sshd").host), request.getfixturevalue("ssh_defaults")
        )
    else:
        host = make_host(parse_host("local"), Defaults())
    client = SupervisorClient(host, SupervisorConfig(url=supervisord.unix_url))
    control = local_client(supervisord)
    control.stop("burst")
    logfile = supervisord.root / "burst.out.log"
    logfile.write_text("")  # start from an empty log
    chunks: list[str] = []
    cancel = threading.Event()
    follower = threading.Thread(
        target=client.follow_log,
        args=("burst", chunks.append),
        kwargs={"cancel": cancel, "start_offset": 0, "poll": 0.1, "chunk": 7919},
    )
    follower.start()
    control.start("burst")
    deadline = time.monotonic() + 30
    while logfile.stat().st_size < 200_000 and time.monotonic() < deadline:  # a few thousand lines
        time.sleep(0.1)
    control.stop("burst")
    while "".join(chunks) != logfile.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the follower catches up with everything written (or the test fails)
    cancel.set()
    follower.join(10)
    assert not follower.is_alive()
    got = "".join(chunks)
    written = logfile.read_text()
    assert got == written  # byte for byte: nothing lost, nothing repeated
    numbers = _numbers(got)
    assert len(numbers) > 1000
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


# ---------------------------------------------------------------- the fast XML-RPC decoder

_xml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_xml_values)
def test_fast_decoder_reads_what_xmlrpc_reads(value: Any) -> None:
    """supervisord answers are decoded by ElementTree's C parser: the same values as the
    standard XML-RPC parser, for anything Python's marshaller can write."""
    import xmlrpc.client

    from opsconsole.backends.supervisor import _decode_response

    data = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()
    assert _decode_response(data) == xmlrpc.client.loads(data)[0]


def test_fast_decoder_faults_and_the_unusual() -> None:
    import xmlrpc.client

    from opsconsole.backends.supervisor import _decode_response, _Unusual

    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(10, "BAD_NAME: web"), methodresponse=True).encode()
    with pytest.raises(xmlrpc.client.Fault) as raised:
        _decode_response(fault)
    assert (raised.value.faultCode, raised.value.faultString) == (10, "BAD_NAME: web")
    untyped = b"<?xml version='1.0'?><methodResponse><params><param><value>plain</value></param></params></methodResponse>"
    assert _decode_response(untyped) == ("plain",)
    # base64, dates and broken XML go to the standard parser
    for odd in (
        xmlrpc.client.dumps((xmlrpc.client.Binary(b"\x00\x01"),), methodresponse=True).encode(),
        xmlrpc.client.dumps((xmlrpc.client.DateTime(0),), methodresponse=True).encode(),
        b"<methodResponse><params>",
    ):
        with pytest.raises(_Unusual):
            _decode_response(odd)
