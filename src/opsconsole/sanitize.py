"""Neutralise text from outside (logs, Sentry titles, names) before it is shown.

Everything that could reach the terminal as a control sequence is made visible and inert:
ESC, CSI/OSC/DCS sequences, C0/C1 controls (except tab), DEL. Invalid UTF-8 is replaced.
Markup is never parsed by callers: they build `rich.text.Text`/`Content` from plain strings.
"""

from __future__ import annotations

import re

# CSI ... final byte; OSC ... (BEL | ST); DCS/SOS/PM/APC ... ST; two-byte ESC sequences.
_ESCAPE_RE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]          # CSI
  | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)? # OSC (incl. OSC 52, titles)
  | \x1b[PX^_][^\x1b]*(?:\x1b\\)?      # DCS, SOS, PM, APC
  | \x1b[@-Z\\-_]                      # other Fe sequences
  | \x1b.?                             # lone ESC
  | \x9b[0-?]*[ -/]*[@-~]              # 8-bit CSI
  | [\x90\x98\x9d\x9e\x9f][^\x9c]*\x9c? # 8-bit DCS/SOS/OSC/PM/APC
    """,
    re.VERBOSE,
)
_SGR_RE = re.compile(r"\x1b\[([0-9;]*)m")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _control_picture(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ␁ ... visible control pictures
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def to_text(data: bytes | str) -> str:
    """Decode bytes as UTF-8 with replacement."""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data


def strip_escapes(text: str) -> str:
    """Remove every escape sequence and make remaining control characters visible."""
    text = _ESCAPE_RE.sub("", text)
    return _CONTROL_RE.sub(_control_picture, text)


def clean(data: bytes | str, max_len: int | None = None) -> str:
    """Plain, inert, single-line text: what any pane may display."""
    text = strip_escapes(to_text(data).replace("\r\n", "\n").rstrip("\n"))
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "\u2026"
    return text


def split_sgr(text: str) -> list[tuple[str, str | None]]:
    """Split a line into (plain text, SGR parameters) runs, keeping only SGR colour codes.

    The parameters are validated digits and semicolons; every other sequence is removed. Callers
    map SGR parameters to styles themselves (no markup parsing).
    """
    runs: list[tuple[str, str | None]] = []
    current: str | None = None
    pos = 0
    for match in _SGR_RE.finditer(text):
        if match.start() > pos:
            runs.append((strip_escapes(text[pos : match.start()]), current))
        params = match.group(1)
        current = None if params in ("", "0") else params
        pos = match.end()
    if pos < len(text):
        runs.append((strip_escapes(text[pos:]), current))
    return [(t, s) for t, s in runs if t]


def display_line(raw: str) -> tuple[str, str | None]:
    """A log line made safe to show: (its plain text, its SGR-coloured form or None). Done where
    lines arrive (a follower's thread), not on the screen's thread."""
    runs = split_sgr(raw) if "\x1b[" in raw else None
    text = "".join(t for t, _ in runs) if runs is not None else strip_escapes(raw)
    sgr = None
    if runs and any(style for _, style in runs):
        sgr = "".join((f"\x1b[{style}m" if style else "\x1b[0m") + chunk for chunk, style in runs) + "\x1b[0m"
    return text, sgr
