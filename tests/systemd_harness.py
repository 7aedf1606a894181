"""A real systemd for the tests: PID 1 in a docker container (image `opsc-test/systemd:bookworm`,
built by `scripts/build-systemd-image.sh` from tests/systemd/), with sshd on a loopback port.

One container per test session. Its host key is pinned into a temp known_hosts (ssh-keyscan), the
test client key is installed as root's authorized_keys, and the container is removed afterwards.
Units in the image: demo (logs "demo tick N" every 5 s), worker, flaky (exits 1 every ~10 s,
restarted), broken (fails at once, not restarted), shop-web (idle; restart and deploy target).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness import ServiceUnavailable, free_port

IMAGE = "opsc-test/systemd:bookworm"
REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "scripts" / "build-systemd-image.sh"


def _docker(
    *args: str, timeout: float = 60, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout, check=False)


@dataclass
class SystemdHost:
    name: str  # the container's name
    port: int
    client_key: Path
    known_hosts: Path

    @property
    def host(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def exec(self, command: str, timeout: float = 30) -> str:
        """A shell command inside the container, as root (test set-up and faults only)."""
        done = _docker("exec", self.name, "sh", "-c", command, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker exec {command!r}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def show(self, unit: str, prop: str) -> str:
        return self.exec(f"systemctl show -p {prop} --value {unit}").strip()

    def copy_in(self, source: Path, dest: str) -> None:
        """A folder of this machine into the container (root-owned there, as a deploy user's repo)."""
        done = _docker("cp", str(source), f"{self.name}:{dest}")
        if done.returncode != 0:
            raise RuntimeError(f"docker cp {source}: {done.stderr.decode(errors='replace')}")
        self.exec(f"chown -R root:root {dest}")

    def drop_ssh(self) -> None:
        """Kill every sshd of the container (the listener and each session with what it runs),
        then start sshd again: every SSH connection to this host drops, as when a link fails."""
        self.exec(
            "systemctl kill --signal=KILL ssh.service; systemctl reset-failed ssh.service; "
            "systemctl start ssh.service"
        )

    def stop(self) -> None:
        _docker("rm", "-f", self.name, timeout=60)


def ensure_image() -> None:
    """The image, built when missing (scripts/with-services.sh builds it before pytest, so a run
    normally finds it)."""
    if shutil.which("docker") is None:
        raise ServiceUnavailable("docker is not installed")
    # the script returns at once when the image was built from this recipe (its label says so)
    done = subprocess.run(["sh", str(BUILD)], capture_output=True, timeout=600, check=False)
    if done.returncode != 0 or _docker("image", "inspect", IMAGE).returncode != 0:
        raise ServiceUnavailable(
            f"the systemd test image {IMAGE} is missing and could not be built (run "
            f"scripts/build-systemd-image.sh as root): {done.stderr.decode(errors='replace')[-500:]}"
        )


def start_systemd(root: Path) -> SystemdHost:
    ensure_image()
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ServiceUnavailable("ssh-keygen is not installed (apt-get install openssh-client)")
    root.mkdir(parents=True, exist_ok=True)
    key = root / "client_ed25519"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = free_port()
    name = f"opsc-test-systemd-{uuid.uuid4().hex[:8]}"
    started = _docker(
        "run", "-d", "--name", name, "--hostname", "opsc-systemd",
        "--cgroupns=private", "--cap-add", "SYS_ADMIN",
        "--tmpfs", "/run", "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3",
        "--label", "opsconsole.systemd-test=1",  # not harness.TEST_LABEL: the docker fixture removes those
        "-p", f"127.0.0.1:{port}:22", IMAGE,
    )  # fmt: skip
    if started.returncode != 0:
        raise ServiceUnavailable(f"docker run {IMAGE}: {started.stderr.decode(errors='replace')}")
    server = SystemdHost(name, port, key, root / "known_hosts")
    try:
        installed = _docker(
            "exec", "-i", name, "sh", "-c",
            "umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys",
            stdin=(root / "client_ed25519.pub").read_bytes(),
        )  # fmt: skip
        if installed.returncode != 0:
            raise ServiceUnavailable(
                f"installing the client key: {installed.stderr.decode(errors='replace')}"
            )
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            probe = _docker("exec", name, "systemctl", "is-system-running", timeout=10)
            state = probe.stdout.decode().strip()
            if state in ("running", "degraded"):  # degraded: `broken` failed, as it should
                keys = subprocess.run(
                    ["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                    capture_output=True, timeout=10, check=False,
                )  # fmt: skip
                if keys.returncode == 0 and keys.stdout.strip():
                    server.known_hosts.write_bytes(keys.stdout)
                    return server
            time.sleep(0.2)
        logs = _docker("logs", name).stdout.decode(errors="replace")[-1000:]
        raise ServiceUnavailable(f"systemd in {name} did not come up (state {state!r}): {logs}")
    except BaseException:
        server.stop()
        raise
