"""The Alerts pane: the environment's alerts as Alertmanager groups them (the group's labels first),
severity, summary or description, since when, and state: firing, silenced (with the silence that
mutes it) or inhibited. Silenced and inhibited alerts are hidden until `m` shows them; a row
then says how many are hidden. Its rows select an `alert`: `A` acks it (a short silence), `z`
silences it for the profile's default length, prompting for the comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsconsole.panes.spec import PaneData, PaneSpec
from opsconsole.widgets.pane import Row, age, cell

if TYPE_CHECKING:
    from opsconsole.backends.alertmanager import Alert

SEVERITY_STYLES = {
    "critical": "bold red",
    "page": "bold red",
    "error": "red",
    "warning": "yellow",
    "info": "cyan",
}
STATE_STYLES = {"active": "bold red", "silenced": "dim", "inhibited": "dim", "unprocessed": "yellow"}
# Whether silenced and inhibited alerts are shown (the screen's `m` flips it, for every environment)
SHOW_MUTED = {"on": False}


def group_label(alert: Alert) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(alert.group.items())) or "(ungrouped)"


def state_text(alert: Alert) -> str:
    if alert.silenced:
        return f"silenced by {alert.silenced_by[0][:8]}"
    if alert.inhibited:
        return "inhibited"
    return "firing" if alert.state == "active" else alert.state


def rows_alerts(data: PaneData) -> list[Row]:
    rows: list[Row] = []
    hidden = 0
    for _key, result in data.of("alerts"):
        alerts = cast("list[Alert]", result.data or [])
        for alert in sorted(alerts, key=lambda a: (group_label(a), a.starts_at)):
            if not alert.firing and alert.state != "unprocessed" and not SHOW_MUTED["on"]:
                hidden += 1
                continue
            shown = alert.shown_state
            cells = [
                cell(group_label(alert), limit=60),
                cell(alert.name, "bold" if alert.firing else "", limit=60),
                cell(alert.severity, SEVERITY_STYLES.get(alert.severity, "")),
                cell(state_text(alert), STATE_STYLES.get(shown, "")),
                cell(age(data.now - alert.starts_at)),
                cell(alert.summary, limit=160),
            ]
            rows.append(Row(f"alert|{alert.fingerprint}", cells, ("alert", "", alert)))
    if hidden:
        note = f"{hidden} silenced or inhibited hidden · m shows them"
        rows.append(
            Row("alert|hidden", [cell(""), cell(note, "dim"), cell(""), cell(""), cell(""), cell("")], None)
        )
    return rows


SPEC = PaneSpec(
    "alerts",
    "Alerts",
    ("group", "alert", "severity", "state", "since", "summary"),
    rows_alerts,
    noun="alerts",
    counted=("alerts",),
    badge="alr",
)
