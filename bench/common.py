"""What every benchmark shares: paths, the bare Textual baseline, results and sizes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


PYTHON = sys.executable
OPSCONSOLE = str(Path(PYTHON).parent / "opsconsole")

ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
BARE_APP = textwrap.dedent(
    """
    import sys
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header

    class Bare(App):
        def compose(self):
            yield Header()
            yield DataTable()
            yield Footer()

        def on_mount(self):
            table = self.query_one(DataTable)
            table.add_columns("environment", "hosts", "state")
            for n in range(int(sys.argv[1])):
                table.add_row(f"env-{n}", "1", "ok")

    Bare().run()
    """
)


def git(repo: Path, *args: str) -> None:
    """git in `repo` as a bench's fixed author (the benchmarks' tiny app repositories)."""
    names = ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")
    mails = ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
    env = {**os.environ, **dict.fromkeys(names, "bench"), **dict.fromkeys(mails, "bench@example.com")}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@dataclass
class Result:
    name: str
    figure: float
    baseline: float
    unit: str
    budget: str
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else float("inf")


@dataclass
class Config:
    smoke: bool
    hosts: int = 30
    ssh_hosts: int = 10
    programs: int = 20
    containers: int = 30
    dead: int = 5
    startup_runs: int = 11  # start-up times here move by ±30 % from run to run: 7 gave medians 1.29-1.69x apart
    firehose_rate: int = 20_000
    firehose_seconds: float = 10.0
    idle_seconds: float = 60.0
    memory_seconds: float = 300.0
    timeout: float = 3.0
    scale_hosts: int = 200
    scale_small: int = 10
    results: list[Result] = field(default_factory=list)

    @classmethod
    def make(cls, smoke: bool) -> Config:
        if not smoke:
            return cls(smoke=False)
        return cls(
            smoke=True,
            hosts=4,
            ssh_hosts=2,
            programs=3,
            containers=3,
            dead=1,
            startup_runs=1,
            firehose_rate=2000,
            firehose_seconds=2.0,
            idle_seconds=4.0,
            memory_seconds=5.0,
            timeout=2.0,
            scale_hosts=12,
            scale_small=4,
        )
