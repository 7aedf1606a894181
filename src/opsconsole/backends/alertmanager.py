"""Alertmanager API v2 (0.25 and later): the environment's alerts as Alertmanager groups them, and
silences created and expired.

`GET /api/v2/alerts/groups` with one `filter=` per matcher of the environment (active, silenced and
inhibited alike: the pane hides the muted ones behind a toggle); `POST /api/v2/silences` returns the
new silence's id (a silence whose matchers change is a new silence: the id returned is the one to
keep); `DELETE /api/v2/silence/{id}` expires one. Every request has the profile's timeout and the
byte cap of `http_read`; answers are type-checked field by field. Unreachable, 401/403 and a matcher
Alertmanager rejects (400) are errors whose message says the cause and what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from opsconsole.backends.http_read import BodyTooLarge, BoundedClient, scrub
from opsconsole.errors import OpsError, UnreachableError
from opsconsole.profiles.alerts_keys import parse_matcher
from opsconsole.profiles.model import AlertsConfig
from opsconsole.secrets import Secret, redact

TITLE = "Alertmanager"
STATES = ("active", "suppressed", "unprocessed")
_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time (Alertmanager writes nanoseconds; Python reads 6 digits)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(_FRACTION_RE.sub(r"\1", text.replace("Z", "+00:00"), count=1))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


@dataclass(frozen=True)
class Alert:
    """One alert of the environment. `state`: active, suppressed (silenced or inhibited: see
    `silenced_by` / `inhibited_by`) or unprocessed; times in epoch seconds (`ends_at`: when it
    resolves unless Prometheus re-sends it). `group`: the labels of the Alertmanager group that
    holds it (its `group_by` labels: the matchers that silence the group)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None
    state: str
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    group: dict[str, str] = field(default_factory=dict)
    receiver: str = ""
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.fingerprint)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description", "")

    @property
    def silenced(self) -> bool:
        return bool(self.silenced_by)

    @property
    def inhibited(self) -> bool:
        return bool(self.inhibited_by)

    @property
    def firing(self) -> bool:
        """Firing and not muted: what pages someone."""
        return self.state == "active"

    @property
    def shown_state(self) -> str:
        if self.silenced:
            return "silenced"
        if self.inhibited:
            return "inhibited"
        return self.state

    def matchers(self) -> list[str]:
        """Matchers that select exactly this alert: every one of its labels."""
        from opsconsole.profiles.alerts_keys import matcher_text

        return [matcher_text(k, "=", v) for k, v in sorted(self.labels.items())]

    def group_matchers(self) -> list[str]:
        """Matchers of its Alertmanager group (the `group_by` labels); its own labels when ungrouped."""
        from opsconsole.profiles.alerts_keys import matcher_text

        return [matcher_text(k, "=", v) for k, v in sorted((self.group or self.labels).items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at) if self.ends_at is not None else None,
            "state": self.state,
            "silencedBy": list(self.silenced_by),
            "inhibitedBy": list(self.inhibited_by),
            "group": dict(self.group),
            "receiver": self.receiver,
        }


def decode_alert(item: Any, group: dict[str, str], receiver: str) -> Alert | None:
    """An alert of a group, or None when the answer does not hold one."""
    if not isinstance(item, dict):
        return None
    fingerprint = item.get("fingerprint")
    starts = parse_time(item.get("startsAt"))
    status = item.get("status")
    if not isinstance(fingerprint, str) or starts is None or not isinstance(status, dict):
        return None
    state = status.get("state")
    return Alert(
        fingerprint=fingerprint,
        labels=_strings(item.get("labels")),
        annotations=_strings(item.get("annotations")),
        starts_at=starts,
        ends_at=parse_time(item.get("endsAt")),
        state=state if isinstance(state, str) and state in STATES else "unprocessed",
        silenced_by=_ids(status.get("silencedBy")),
        inhibited_by=_ids(status.get("inhibitedBy")),
        group=group,
        receiver=receiver,
        generator_url=item["generatorURL"] if isinstance(item.get("generatorURL"), str) else "",
    )


def decode_groups(body: Any) -> list[Alert]:
    """The alerts of `/alerts/groups`, each once (an alert routed to two receivers is in two
    groups: the first one holds it), in Alertmanager's group order."""
    if not isinstance(body, list):
        raise UnreachableError(
            "alertmanager: the answer is not a list of groups (is this Alertmanager?)", TITLE
        )
    seen: set[str] = set()
    out: list[Alert] = []
    for group in body:
        if not isinstance(group, dict) or not isinstance(group.get("alerts"), list):
            continue
        labels = _strings(group.get("labels"))
        receiver = group.get("receiver")
        name = receiver.get("name") if isinstance(receiver, dict) else None
        for item in group["alerts"]:
            alert = decode_alert(item, labels, name if isinstance(name, str) else "")
            if alert is not None and alert.fingerprint not in seen:
                seen.add(alert.fingerprint)
                out.append(alert)
    return out


def api_matchers(texts: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Alertmanager's matcher objects for matcher texts (already validated: a bad one raises)."""
    out = []
    for text in texts:
        parsed = parse_matcher(text)
        if isinstance(parsed, str):
            raise OpsError(parsed, "Bad matcher")
        name, op, value = parsed
        out.append({"name": name, "value": value, "isRegex": "~" in op, "isEqual": not op.startswith("!")})
    return out


class AlertmanagerClient:
    def __init__(
        self,
        config: AlertsConfig,
        timeout: float,
        token: Secret | None = None,
        basic: Secret | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.base = config.url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        elif basic is not None:
            import base64

            headers["Authorization"] = "Basic " + base64.b64encode(basic.reveal().encode()).decode()
        self._client = BoundedClient(headers, timeout, transport)

    @property
    def label(self) -> str:
        return f"alertmanager {self.base}"

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(
                method, f"{self.base}/api/v2{path}", seconds=self.timeout, **kwargs
            )
        except BodyTooLarge as exc:
            raise UnreachableError(redact(f"{self.label}: {exc}"), TITLE) from None
        except httpx.TimeoutException:
            raise UnreachableError(f"{self.label}: timed out after {self.timeout:g} s", TITLE) from None
        except httpx.HTTPError as exc:
            raise UnreachableError(
                redact(
                    f"{self.label}: cannot connect ({exc or type(exc).__name__}): is Alertmanager running?"
                ),
                TITLE,
            ) from None
        code = response.status_code
        if code in (401, 403):
            raise UnreachableError(
                f"{self.label}: HTTP {code}: not allowed (check alerts.token or alerts.basic and its secret)",
                TITLE,
            )
        if code == 400:
            raise OpsError(
                f"{self.label} rejected the request: {self._detail(response)}", "Alertmanager refused"
            )
        if code >= 400:
            raise UnreachableError(f"{self.label}: HTTP {code} {self._detail(response)}".strip(), TITLE)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise UnreachableError(
                f"{self.label}: HTTP {code} with a body that is not JSON (is this Alertmanager?)", TITLE
            ) from None

    @staticmethod
    def _detail(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return scrub(response.text[:300], 300)
        if isinstance(body, dict):
            return scrub(str(body.get("message") or body.get("error") or ""), 300)
        return scrub(str(body), 300)

    def alerts(self) -> list[Alert]:
        """The environment's alerts (its matchers as `filter=`), grouped as Alertmanager groups them."""
        params = [("filter", m) for m in self.config.matchers]
        return decode_groups(self._call("GET", "/alerts/groups", params=params))

    def create_silence(
        self, matchers: list[str], starts: float, ends: float, created_by: str, comment: str
    ) -> str:
        body = {
            "matchers": api_matchers(matchers),
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = self._call("POST", "/silences", json=body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise UnreachableError(f"{self.label}: the silence was sent but no silenceID came back", TITLE)
        return silence_id

    def silence(self, silence_id: str) -> dict[str, Any]:
        answer = self._call("GET", f"/silence/{silence_id}")
        if not isinstance(answer, dict):
            raise UnreachableError(f"{self.label}: silence {silence_id}: unexpected answer", TITLE)
        return answer

    def expire(self, silence_id: str) -> None:
        self._call("DELETE", f"/silence/{silence_id}")


def make_client(config: AlertsConfig, timeout: float) -> AlertmanagerClient:
    from opsconsole.secrets import resolve

    return AlertmanagerClient(
        config,
        timeout,
        token=resolve(config.token) if config.token else None,
        basic=resolve(config.basic) if config.basic else None,
    )
