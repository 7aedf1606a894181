"""The deploy state's one awk over the journal gives what `tail` and `grep -F | tail` gave: the
journal's last lines and its success and mark_bad records, too-long lines marked, in order."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from opsconsole.backends.releases import HISTORY_TAIL, JOURNAL_TAIL, MAX_RECORD, journal_awk, mark_lines


def pipelines(path: Path) -> str:
    return (
        f"tail -n {JOURNAL_TAIL} {path} | {mark_lines('@journal')}; "
        f"grep -F -e '\"event\": \"mark_bad\"' -e '\"outcome\": \"success\"' {path} "
        f"| tail -n {HISTORY_TAIL} | {mark_lines('@history')}"
    )


@pytest.mark.parametrize("count", [0, 1, JOURNAL_TAIL - 1, JOURNAL_TAIL, JOURNAL_TAIL + 1, HISTORY_TAIL + 700])
def test_one_awk_reads_the_journal_as_tail_and_grep_did(tmp_path: Path, count: int) -> None:
    rng = random.Random(count)
    records = []
    for i in range(count):
        kind = rng.choice(["ok", "failed", "mark_bad", "verify", "long", "junk"])
        if kind == "ok":
            records.append(json.dumps({"event": "deploy", "outcome": "success", "release": str(i)}))
        elif kind == "failed":
            records.append(json.dumps({"event": "deploy", "outcome": "failed", "release": str(i)}))
        elif kind == "mark_bad":
            records.append(json.dumps({"event": "mark_bad", "release": str(i)}))
        elif kind == "verify":
            records.append(json.dumps({"event": "verify", "release": str(i)}))
        elif kind == "long":
            records.append(json.dumps({"event": "deploy", "outcome": "success", "x": "y" * (MAX_RECORD + 1)}))
        else:
            records.append('not json "outcome": "success" ' + str(i))
    journal = tmp_path / "deploys.jsonl"
    # the last record without its newline, as a writer cut short leaves it
    journal.write_text("\n".join(records))
    before = subprocess.run(["sh", "-c", pipelines(journal)], capture_output=True, text=True, check=True)
    after = subprocess.run(["sh", "-c", f"{journal_awk()} {journal}"], capture_output=True, text=True, check=True)
    assert after.stdout == before.stdout
    assert after.stderr == ""
