"""The demo's load: a few requests a second to the web app's page, and now and then to /boom (a 500),
so the Metrics pane's request rate, error ratio and p95 latency move."""

import sys
import time
import urllib.error
import urllib.request

PORT = int(sys.argv[1])
n = 0
while True:
    n += 1
    path = "/boom" if n % 12 == 0 else "/"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=2) as answer:
            answer.read()
    except (urllib.error.URLError, OSError):
        pass  # a 500, or the web app is not deployed yet: keep going
    time.sleep(0.25)
