"""How a transition is seen outside: an InfluxDB `alerts` point and an MQTT message."""

import orjson

from influx.line_protocol import encode_line
from models.timestamps import epoch_ms
from rules.evaluation.alerts import Transition

ALERTS_MEASUREMENT = "alerts"


def alert_topic(zone: str, device_id: str) -> str:
    return f"luxtel/alerts/{zone}/{device_id}"


def influx_line(transition: Transition) -> str:
    """The contract's `alerts` point: tags rule, severity, zone, device_id; fields state, value,
    summary; the transition's time."""
    alert = transition.alert
    return encode_line(
        ALERTS_MEASUREMENT,
        {
            "rule": alert.rule,
            "severity": alert.severity,
            "zone": alert.zone,
            "device_id": alert.device_id,
        },
        {"state": transition.kind, "value": float(alert.value), "summary": alert.summary},
        epoch_ms(transition.at),
    )


def mqtt_payload(transition: Transition) -> bytes:
    alert = transition.alert
    return orjson.dumps(
        {
            "id": alert.id,
            "rule": alert.rule,
            "severity": alert.severity,
            "state": transition.kind,
            "zone": alert.zone,
            "device_id": alert.device_id,
            "circuit": alert.circuit or None,
            "value": alert.value,
            "summary": alert.summary,
            "active_at": alert.active_at,
            "at": transition.at,
        }
    )
