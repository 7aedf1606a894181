"""The TOML line locator: which line of the file holds a key path (for `file:line` errors)."""

from __future__ import annotations

import re
import tomllib

from opsconsole.profiles.model import PathKey

# --------------------------------------------------------------------------- line locator


_KEY_ATOM = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_ATOM}(?:\s*\.\s*{_KEY_ATOM})*"
_HEADER_ARRAY_RE = re.compile(rf"^\[\[\s*({_DOTTED})\s*\]\]")
_HEADER_RE = re.compile(rf"^\[\s*({_DOTTED})\s*\]")
_KEYVAL_RE = re.compile(rf"^({_DOTTED})\s*=(.*)$")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(_KEY_ATOM, text)
    out = []
    for part in parts:
        if part.startswith('"'):
            try:
                out.append(tomllib.loads(f"x = {part}")["x"])
            except tomllib.TOMLDecodeError:
                out.append(part.strip('"'))
        elif part.startswith("'"):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


def _bracket_delta(value: str) -> tuple[int, str | None]:
    """Net open brackets in a value outside strings, and an unclosed multi-line string opener."""
    depth = 0
    i = 0
    while i < len(value):
        for triple in ('"""', "'''"):
            if value.startswith(triple, i):
                end = value.find(triple, i + 3)
                if end < 0:
                    return depth, triple
                i = end + 3
                break
        else:
            char = value[i]
            if char == "#":
                break
            if char in "\"'":
                end = i + 1
                while end < len(value) and value[end] != char:
                    end += 2 if char == '"' and value[end] == "\\" else 1
                i = end + 1
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            i += 1
    return depth, None


def locate_lines(text: str) -> dict[PathKey, int]:
    """Map key paths to the line that defines them (best effort, never raises)."""
    index: dict[PathKey, int] = {}
    table: PathKey = ()
    array_counts: dict[PathKey, int] = {}
    depth = 0
    open_string: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if open_string:
            if open_string in line:
                open_string = None
            continue
        if depth > 0:
            delta, open_string = _bracket_delta(line)
            depth = max(0, depth + delta)
            continue
        if not line or line.startswith("#"):
            continue
        if match := _HEADER_ARRAY_RE.match(line):
            parts: PathKey = tuple(_split_dotted(match.group(1)))
            count = array_counts.get(parts, 0)
            array_counts[parts] = count + 1
            table = (*parts, count)
            index.setdefault(parts, lineno)
            index.setdefault(table, lineno)
        elif match := _HEADER_RE.match(line):
            table = tuple(_split_dotted(match.group(1)))
            for n in range(1, len(table) + 1):
                index.setdefault(table[:n], lineno)
        elif match := _KEYVAL_RE.match(line):
            keys = _split_dotted(match.group(1))
            for n in range(1, len(keys) + 1):
                index.setdefault((*table, *keys[:n]), lineno)
            delta, open_string = _bracket_delta(match.group(2))
            depth = max(0, delta)
            if depth and "[" in match.group(2):
                # record the line of each array item that starts on its own line later on
                pass
    return index


def _line_for(path: PathKey, index: dict[PathKey, int]) -> int:
    for n in range(len(path), 0, -1):
        line = index.get(path[:n])
        if line is not None:
            return line
    return 1
