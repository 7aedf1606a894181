"""The Nginx logs followed from one read to the next (`backends/log_window.py`): a read sends only
what a log gained, and counts exactly what a whole read of the same log would have counted.

Real files, the real shell script on the local host (`stat`, `tail`, `head`); Nginx itself need not
run for the logs (its binary is `/bin/false`, so the config test fails, as it says)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from opsconsole.backends.hosts import CommandResult, LocalHost
from opsconsole.backends.log_window import Windows
from opsconsole.backends.nginx import LOG_CAP, read_nginx
from opsconsole.profiles.model import HostSpec, NginxConfig


class CountingHost(LocalHost):
    """The local host, noting how many characters each command printed."""

    def __init__(self) -> None:
        super().__init__(HostSpec("local", "local"), 10.0)
        self.printed: list[int] = []

    def run(self, command: str, **kwargs: Any) -> CommandResult:
        result = super().run(command, **kwargs)
        self.printed.append(len(result.stdout))
        return result


def access_line(when: float, status: int, path: str) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(when))
    return f'127.0.0.1 - - [{stamp}] "GET {path} HTTP/1.1" {status} 5 "-" "t"\n'


def error_line(when: float, port: int) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(when))
    return (
        f"{stamp} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to "
        f'upstream, client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: '
        f'"http://127.0.0.1:{port}/", host: "x"\n'
    )


def seen(status: Any) -> Any:
    """What a person sees of a read's logs."""
    return (
        status.status_counts,
        status.top_failing,
        status.last_5xx,
        [(u.upstream, u.count, u.reason) for u in status.upstream_errors],
        [n for n in status.notes if "log" in n],
    )


def config(tmp_path: Path) -> NginxConfig:
    return NginxConfig(
        binary="/bin/false", access_log=str(tmp_path / "access.log"), error_log=str(tmp_path / "error.log")
    )


def started(tmp_path: Path, first: str) -> tuple[NginxConfig, Path, CountingHost, Windows]:
    """An access log holding `first`, an empty error log, a host and its windows."""
    cfg = config(tmp_path)
    access = Path(cfg.access_log)
    Path(cfg.error_log).write_text("")
    access.write_text(first)
    return cfg, access, CountingHost(), Windows()


def test_a_grown_log_sends_only_what_it_gained_and_counts_as_a_whole_read(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    access, error = Path(cfg.access_log), Path(cfg.error_log)
    now = time.time()
    access.write_text(access_line(now - 3600, 500, "/old") * 50 + access_line(now - 60, 200, "/") * 400)
    error.write_text(error_line(now - 30, 8000))
    host, windows = CountingHost(), Windows()

    first = read_nginx(host, cfg, windows=windows)
    assert first.status_counts["2xx"] == 400 and first.status_counts["5xx"] == 0
    assert [(u.upstream, u.count) for u in first.upstream_errors] == [("127.0.0.1:8000", 1)]
    whole = host.printed[-1]

    # nothing new: the logs are not sent again, and the counts hold
    again = read_nginx(host, cfg, windows=windows)
    assert seen(again) == seen(first)
    assert host.printed[-1] < whole - access.stat().st_size + 200, host.printed

    # grown: only the new lines travel; the counts are those of a whole read
    with access.open("a") as f:
        f.write(access_line(now - 5, 502, "/api?x=1") * 3 + access_line(now - 4, 404, "/nope"))
    with error.open("a") as f:
        f.write(error_line(now - 3, 8000) + error_line(now - 2, 9000))
    grown = read_nginx(host, cfg, windows=windows)
    assert host.printed[-1] < whole // 10
    assert seen(grown) == seen(read_nginx(LocalHost(HostSpec("local", "local"), 10.0), cfg))
    assert grown.status_counts["5xx"] == 3 and grown.top_failing[0].path == "/api"
    assert {(u.upstream, u.count) for u in grown.upstream_errors} == {("127.0.0.1:8000", 2), ("127.0.0.1:9000", 1)}


def test_an_unended_line_waits_for_its_end(tmp_path: Path) -> None:
    now = time.time()
    line = access_line(now - 10, 503, "/half")
    # a writer in the middle of a line
    cfg, access, host, windows = started(tmp_path, access_line(now - 20, 200, "/") + line[:30])
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts["2xx"] == 1 and status.status_counts["5xx"] == 0
    assert not any("expected format" in n for n in status.notes), status.notes
    with access.open("a") as f:
        f.write(line[30:])
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts["5xx"] == 1 and status.top_failing[0].path == "/half"
    assert not any("expected format" in n for n in status.notes), status.notes


def test_a_rotated_or_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    now = time.time()
    cfg, access, host, windows = started(tmp_path, access_line(now - 30, 500, "/before") * 20)
    assert read_nginx(host, cfg, windows=windows).status_counts["5xx"] == 20

    # logrotate's create: the old file moves away, a new one (another inode) takes its name
    os.rename(access, tmp_path / "access.log.1")
    access.write_text(access_line(now - 2, 502, "/after") * 2)
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts["5xx"] == 2 and [f.path for f in status.top_failing] == ["/after"]

    # copytruncate: the same inode, smaller than what was read
    with access.open("r+") as f:
        f.truncate(0)
        f.write(access_line(now - 1, 404, "/small"))
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts == {"2xx": 0, "3xx": 0, "4xx": 1, "5xx": 0}

    # gone, then back
    access.unlink()
    status = read_nginx(host, cfg, windows=windows)
    assert any("access log" in n and "missing" in n for n in status.notes)
    access.write_text(access_line(now, 200, "/") * 3)
    assert read_nginx(host, cfg, windows=windows).status_counts["2xx"] == 3


def test_more_than_the_cap_at_once_is_read_from_the_end_and_says_how_far_back(tmp_path: Path) -> None:
    now = time.time()
    cfg, access, host, windows = started(tmp_path, access_line(now - 10, 200, "/"))
    assert read_nginx(host, cfg, windows=windows).status_counts["2xx"] == 1
    filler = access_line(now - 120, 200, "/fill")
    with access.open("a") as f:
        f.write(filler * ((LOG_CAP + LOG_CAP // 2) // len(filler)) + access_line(now - 1, 503, "/api"))
    status = read_nginx(host, cfg, windows=windows)
    assert host.printed[-1] <= LOG_CAP + 4096
    assert status.status_counts["5xx"] == 1
    assert status.status_counts["2xx"] <= LOG_CAP // len(filler) + 1
    assert any(f"only its last {LOG_CAP // 1024} KiB were read" in n for n in status.notes)
    assert seen(status) == seen(read_nginx(LocalHost(HostSpec("local", "local"), 10.0), cfg))


def test_lines_leave_the_window_as_time_passes_without_the_log_changing(tmp_path: Path) -> None:
    cfg = NginxConfig(
        binary="/bin/false",
        access_log=str(tmp_path / "access.log"),
        error_log=str(tmp_path / "error.log"),
        window=0.05,  # 3 s
    )
    Path(cfg.error_log).write_text("")
    now = time.time()
    Path(cfg.access_log).write_text(access_line(now - 60, 500, "/gone") + access_line(now + 1, 502, "/soon-gone"))
    host, windows = CountingHost(), Windows()
    assert read_nginx(host, cfg, windows=windows).status_counts["5xx"] == 1
    time.sleep(5.2)  # the host says its time in whole seconds: 2 s of margin
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts["5xx"] == 0 and status.top_failing == []
    assert not any("KiB were read" in n for n in status.notes)


def test_random_appends_count_as_whole_reads(tmp_path: Path) -> None:
    """Appends of random sizes (lines cut anywhere, a line in a bad format now and then): after
    each, the followed read shows what a whole read shows."""
    cfg = config(tmp_path)
    access, error = Path(cfg.access_log), Path(cfg.error_log)
    access.write_text("")
    error.write_text("")
    rng = random.Random(34)
    now = time.time()
    pending_a, pending_e = "", ""
    host, windows = CountingHost(), Windows()
    fresh = LocalHost(HostSpec("local", "local"), 10.0)
    for round_ in range(12):
        for _ in range(rng.randint(0, 40)):
            when = now - rng.uniform(0, 600)
            pending_a += (
                "not a log line\n"
                if rng.random() < 0.05
                else access_line(when, rng.choice([200, 200, 301, 404, 500, 502]), rng.choice(["/a", "/b?q=1", "/c"]))
            )
            if rng.random() < 0.3:
                pending_e += error_line(when, rng.choice([8000, 8001]))
        cut_a, cut_e = rng.randint(0, len(pending_a)), rng.randint(0, len(pending_e))
        with access.open("a") as f:
            f.write(pending_a[:cut_a])
        with error.open("a") as f:
            f.write(pending_e[:cut_e])
        pending_a, pending_e = pending_a[cut_a:], pending_e[cut_e:]
        followed = read_nginx(host, cfg, windows=windows)
        whole = read_nginx(fresh, cfg)
        assert seen(followed) == seen(whole), round_


def test_a_host_without_stat_reads_each_time_whole(tmp_path: Path, monkeypatch: Any) -> None:
    """No `stat` on the host's PATH (a minimal image): every read is a whole one, and right."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("date", "sed", "tail", "head", "wc", "ps", "awk", "grep", "cat", "tr"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    now = time.time()
    cfg, access, host, windows = started(tmp_path, access_line(now - 5, 502, "/x"))
    assert read_nginx(host, cfg, windows=windows).status_counts["5xx"] == 1
    with access.open("a") as f:
        f.write(access_line(now - 1, 503, "/y"))
    status = read_nginx(host, cfg, windows=windows)
    assert status.status_counts["5xx"] == 2, status.notes
    assert {f.path for f in status.top_failing} == {"/x", "/y"}
