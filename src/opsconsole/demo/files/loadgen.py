"""The demo's load: a few requests a second to the web app's page, and now and then to /boom (a 500),
so the Metrics pane's request rate, error ratio and p95 latency move. With an Alertmanager port (not
0) it also fires an alert for a minute, then resolves it for a minute, so the Alerts pane is live."""

import json
import sys
import time
import urllib.error
import urllib.request

PORT = int(sys.argv[1])
ALERTMANAGER = int(sys.argv[2]) if len(sys.argv) > 2 else 0
LABELS = {"alertname": "DemoErrorRate", "env": "sandbox", "severity": "warning", "service": "web"}
ANNOTATIONS = {"summary": "error ratio above 5% on web", "description": "/boom answers 500"}
CYCLE = 480  # iterations of 0.25 s: fired for the first half, resolved for the second


def stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


fired_at = 0.0  # when the alert began to fire, sent with every repeat (and the resolve) as Prometheus does
was_firing = False


def alert(firing: bool) -> None:
    # startsAt always: without it Alertmanager takes endsAt (five minutes ahead) as the start
    global fired_at, was_firing
    now = time.time()
    if firing and not was_firing:
        fired_at = now
    was_firing = firing
    starts = fired_at or now - 1
    ends = now + 300 if firing else now - 1
    body = [{"labels": LABELS, "annotations": ANNOTATIONS, "startsAt": stamp(starts), "endsAt": stamp(ends)}]
    request = urllib.request.Request(
        f"http://127.0.0.1:{ALERTMANAGER}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            answer.read()
    except (urllib.error.URLError, OSError):
        pass  # Alertmanager not up yet: the next round sends it again


n = 0
while True:
    n += 1
    path = "/boom" if n % 12 == 0 else "/"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=2) as answer:
            answer.read()
    except (urllib.error.URLError, OSError):
        pass  # a 500, or the web app is not deployed yet: keep going
    if ALERTMANAGER and n % 40 == 1:  # every 10 s: Prometheus re-sends a firing alert the same way
        alert(n % CYCLE < CYCLE // 2)
    time.sleep(0.25)
