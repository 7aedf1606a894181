"""fab-classic (Fabric 1 on Python 3) in a venv of its own, for the Fabric 1 fabfile test.

scripts/with-services.sh builds it in /opt/opsconsole-fab-classic (`python tests/fabric_harness.py
/opt/opsconsole-fab-classic`); without it the tests build it once in /tmp/opsconsole-fab-classic
(pip, from the package index), built in a temp folder and renamed, so a half-built venv is never used.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

FAB_CLASSIC = "fab-classic==1.21.0"
PLACES = (Path("/opt/opsconsole-fab-classic"), Path("/tmp/opsconsole-fab-classic"))


def build(target: Path) -> Path:
    """The venv at `target` with fab-classic installed; returns its `fab`."""
    fab = target / "bin" / "fab"
    if fab.exists():
        return fab
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(work)], check=True, capture_output=True)
        # a venv's scripts name its own path: build it at a temp path, then fix them when moved
        subprocess.run(
            [str(work / "bin" / "python"), "-m", "pip", "install", "-q", FAB_CLASSIC],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for script in (work / "bin").iterdir():
            if script.is_file() and not script.is_symlink():
                text = script.read_bytes()
                if text.startswith(b"#!") and str(work).encode() in text[:512]:
                    script.write_bytes(text.replace(str(work).encode(), str(target).encode(), 1))
        (work / "pyvenv.cfg").write_text((work / "pyvenv.cfg").read_text().replace(str(work), str(target)))
        try:
            work.rename(target)
        except OSError:
            if not fab.exists():  # not another run's finished venv: a real failure
                raise
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise harness.ServiceUnavailable(
            f"fab-classic could not be installed: {exc} {detail[-500:]}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return fab


def fab_classic() -> Path:
    for place in PLACES:
        if (place / "bin" / "fab").exists():
            return place / "bin" / "fab"
    return build(PLACES[1])


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else PLACES[1]))
