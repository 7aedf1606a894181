"""The Alerts source (Alertmanager, once per environment): how it fetches, what of it a person sees
change, its badge ("2 alerts": the firing ones, not the silenced or inhibited) and its place in
`status --json` (`catalog.py` declares it with these). Its result's data is a list of
`backends.alertmanager.Alert`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconsole.sources.fetch import Fetch, JsonPlace, Summary

if TYPE_CHECKING:
    from opsconsole.backends.alertmanager import Alert
    from opsconsole.sources.fanout import SourceResult

NOT_CONFIGURED = (
    'Alerts are not configured for this environment: add [environments.ENV.alerts] url = "http://alertmanager:9093" '
    'and matchers = [\'env="ENV"\'] (optional: token or basic = { secret = "..." }, silence_default = "1h")'
)
BADGE = "{n} alerts"


def fetch(f: Fetch) -> Any:
    assert f.env.alerts is not None
    return f.clients.alertmanager(f.env).alerts()  # the client is kept from refresh to refresh


def visible(alerts: list[Alert]) -> Any:
    return tuple(
        (
            a.fingerprint,
            a.state,
            a.silenced_by,
            a.inhibited_by,
            a.starts_at,
            tuple(sorted(a.annotations.items())),
        )
        for a in alerts
    )


def firing(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.firing]


def summarise(alerts: list[Alert]) -> Summary:
    n = len(firing(alerts))
    return {"badges": {BADGE if n > 1 else BADGE[:-1]: n}} if n else {}


def to_json(result: SourceResult[Any] | None, place: JsonPlace) -> None:
    if result is None:
        return
    alerts = result.data or []
    place.target["alerts"] = {
        "firing": len(firing(alerts)) if result.data is not None else None,
        "alerts": [a.to_json() for a in alerts],
        "error": result.error,
    }


def status_line(alerts: list[Alert] | None) -> str:
    if alerts is None:
        return "no answer"
    muted = len(alerts) - len(firing(alerts))
    return f"{len(firing(alerts))} firing" + (f", {muted} silenced or inhibited" if muted else "")
