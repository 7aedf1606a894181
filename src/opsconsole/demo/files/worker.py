"""The demo's worker: logs steadily, some lines in ANSI colours."""

import itertools
import random
import time

COLOURS = {"INFO": "\x1b[32m", "WARN": "\x1b[33m", "ERROR": "\x1b[31m"}
for n in itertools.count(1):
    level = random.choices(["INFO", "WARN", "ERROR"], [90, 8, 2])[0]
    job = random.choice(["send-email", "resize-image", "sync-stock", "charge-card"])
    print(
        f"{time.strftime('%H:%M:%S')} {COLOURS[level]}{level}\x1b[0m job #{n} {job} done in {random.randint(5, 900)} ms",
        flush=True,
    )
    time.sleep(0.5)
