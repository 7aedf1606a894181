"""The end of a log a reader follows from one read to the next, as `tail -F` does.

A read sends only what the log gained since the last one (`script`): the host prints the log's
inode, size and the offset the bytes it sends start at, then those bytes (`tail -c +N | head -c`,
never more than `cap`). The log read again from its last `cap` bytes when it is new to the reader,
rotated (another inode), truncated (smaller than what was read) or grew by more than `cap`; an
unchanged log sends nothing and costs the host one `stat`. A last line not yet ended is carried to
the next read. Each line is parsed once, when it arrives (`Window.update`); what is kept are the
parsed records of at most the last `cap` characters, without those older than the window.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from opsconsole.backends.shell import quote, quote_path

CARRY_CAP = 65536  # characters of an unended last line kept for the next read

# Parses a line: (its time in epoch seconds, or None: untimed or unparsed; its record, whatever the
# reader counts, or None: a line that counts for nothing).
Parser = Callable[[str], tuple[float | None, Any]]


class Window:
    """One log's read position and the parsed records of its end."""

    def __init__(self, key: Any) -> None:
        self.key = key  # what the records were parsed with (a new one starts the log again)
        self.inode = ""
        self.offset = -1  # the size the log had at the last read (-1: never read)
        self.carry = ""
        self.records: deque[tuple[float | None, int, Any]] = deque()  # (when, chars, record)
        self.chars = 0
        self.from_start = False  # the records reach back to the log's first byte
        self.covered = False  # a record older than the window was seen: the window is whole
        self.last: float | None = None  # the time of the last timed line read
        self.lock = threading.Lock()  # held by a read from its script to its update

    def fragment(self, name: str, path: str, cap: int) -> str:
        """The shell lines printing `$M NAME SIZE INODE FROM` and the bytes from FROM to SIZE (or
        `$M NAME missing|unreadable`)."""
        f = quote_path(path)
        known = self.inode if self.offset >= 0 and self.inode != "-" else ""  # "-": no stat there
        offset = max(self.offset, 0)
        return (
            f'if [ ! -e {f} ]; then echo "$M {name} missing"; elif [ ! -r {f} ]; then '
            f'echo "$M {name} unreadable"; else '
            # GNU and BusyBox stat; without one, wc (and every read is a whole one)
            f"st=$(stat -L -c '%i %s' {f} 2>/dev/null) || st=; ino=${{st% *}}; sz=${{st#* }}; "
            f'[ -n "$st" ] || {{ ino=-; sz=$(($(wc -c < {f}))); }}; '
            f"from=$((sz > {cap} ? sz - {cap} : 0)); "
            f'[ "$ino" = {quote(known or "?")} ] && [ "$sz" -ge {offset} ] '
            f"&& [ $((sz - {offset})) -le {cap} ] && from={offset}; "
            f'echo "$M {name} $sz $ino $from"; '
            f'[ "$sz" -gt "$from" ] && tail -c +$((from + 1)) {f} | head -c $((sz - from)); echo; fi'
        )

    def update(self, header: str, lines: list[str], parse: Parser, since: float | None, cap: int) -> bool:
        """Takes one read: `header` is `SIZE INODE FROM`, `lines` the section's lines (the last
        one empty when what was sent ended a line). False when the header is not one."""
        parts = header.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            return False
        size, inode, start = int(parts[0]), parts[1], int(parts[2])
        ended = bool(lines) and lines[-1] == ""
        text = lines[:-1] if ended else list(lines)
        if not (self.offset >= 0 and inode == self.inode and start == self.offset and inode != "-"):
            # a new read of the log's end: what was kept is of another file, or of an older end
            self.records.clear()
            self.chars = 0
            self.carry = ""
            self.from_start = start == 0
            self.covered = False
            self.last = None
            if start > 0 and text:
                text = text[1:]  # the cap cut the first line
        elif text and self.carry:
            text[0] = self.carry + text[0]
            self.carry = ""
        if text and not ended and start < size:
            self.carry = text.pop()[-CARRY_CAP:]
        self.inode, self.offset = inode, size
        self.add(text, parse)
        self.prune(since, cap)
        return True

    def add(self, lines: list[str], parse: Parser) -> None:
        """Parses whole lines and keeps their records, after those already kept."""
        last = self.last
        for line in lines:
            if not line:
                continue
            when, record = parse(line)
            if when is None:
                when = last  # an untimed line is as old as the line before it
            else:
                last = when
            self.records.append((when, len(line) + 1, record))
            self.chars += len(line) + 1
        self.last = last

    def prune(self, since: float | None, cap: int) -> None:
        records = self.records
        if since is not None:
            while records and records[0][0] is not None and records[0][0] < since:
                self.chars -= records.popleft()[1]
                self.covered = True
        while records and self.chars > cap:
            self.chars -= records.popleft()[1]
            self.from_start = False
            self.covered = False

    @property
    def whole(self) -> bool:
        """The records reach back to the window's start, or to the log's first line."""
        return self.from_start or self.covered


class Windows:
    """A reader's windows, one per log name (`access`, `error`) and key; safe to share between
    threads (a host's reads do not overlap, but nothing here relies on it)."""

    def __init__(self) -> None:
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()

    def get(self, name: str, key: Any) -> Window:
        with self._lock:
            window = self._windows.get(name)
            if window is None or window.key != key:
                window = self._windows[name] = Window(key)
            return window
