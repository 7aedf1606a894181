"""The demo's flaky program: runs a few seconds, then crashes; supervisord restarts it."""

import random
import sys
import time

life = random.uniform(8, 25)
print(f"flaky: up, will crash in {life:.0f} s", flush=True)
time.sleep(life)
print("flaky: Traceback (most recent call last): RuntimeError: simulated crash", file=sys.stderr, flush=True)
sys.exit(3)
