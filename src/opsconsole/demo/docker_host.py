"""Where the demo finds a Docker Engine: the places Docker Desktop, colima and Linux put it.

In order: `DOCKER_HOST`; the endpoint of the current `docker context` (read from
`~/.docker/config.json` and the context's meta.json, as the docker CLI does, without running it);
Docker Desktop's `~/.docker/run/docker.sock`; colima's `~/.colima/default/docker.sock`; then
`/var/run/docker.sock`. The first that answers a ping wins; when none does, the note names every
place tried and why each failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsconsole.errors import OpsError

IMAGE = "opsconsole-demo/busybox:latest"


@dataclass(frozen=True)
class Candidate:
    url: str
    source: str


def docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def context_endpoint(config_dir: Path) -> tuple[str, str] | None:
    """(url, context name) of the current docker context, when one other than `default` is set."""
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((config_dir / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError, AttributeError):
            return None
    if not name or name == "default":
        return None
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (str(host), str(name)) if host else None


def candidates() -> list[Candidate]:
    found: list[Candidate] = []
    if os.environ.get("DOCKER_HOST"):
        found.append(Candidate(os.environ["DOCKER_HOST"], "DOCKER_HOST"))
    config_dir = docker_config_dir()
    context = context_endpoint(config_dir)
    if context is not None:
        found.append(Candidate(context[0], f"docker context '{context[1]}'"))
    home = Path.home()
    for path, source in (
        (config_dir / "run" / "docker.sock", "Docker Desktop"),
        (home / ".colima" / "default" / "docker.sock", "colima"),
        (Path("/var/run/docker.sock"), "the system socket"),
    ):
        found.append(Candidate(f"unix://{path}", source))
    unique: list[Candidate] = []
    for candidate in found:
        if candidate.url not in {c.url for c in unique}:
            unique.append(candidate)
    return unique


def find_engine(ping: Callable[[str], None]) -> tuple[str | None, str]:
    """(the first URL whose ping succeeds, a note): the note says which places were tried."""
    tried: list[str] = []
    for candidate in candidates():
        if candidate.url.startswith("unix://") and not Path(candidate.url[7:]).exists():
            tried.append(f"{candidate.url} ({candidate.source}: no such socket)")
            continue
        try:
            ping(candidate.url)
        except Exception as exc:  # noqa: BLE001 - every failure is named in the note
            tried.append(f"{candidate.url} ({candidate.source}: {type(exc).__name__})")
            continue
        return candidate.url, f"Docker Engine at {candidate.url} ({candidate.source})"
    return None, "no Docker Engine answered; tried " + "; ".join(tried)


def ensure_image(client: Any) -> None:
    """The demo's image, imported from a busybox rootfs (no registry needed)."""
    import docker

    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        raise OpsError("busybox is not installed (apt-get install busybox-static)", "No busybox")
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "www").mkdir()
        (rootfs / "tmp").mkdir()
        (rootfs / "www" / "index.html").write_text("<h1>demo static</h1>\n")
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in ("sh", "sleep", "echo", "httpd", "wget", "cat", "ls"):
            os.symlink("busybox", rootfs / "bin" / applet)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        client.api.import_image_from_data(archive.read_bytes(), repository=IMAGE.split(":")[0], tag="latest")
