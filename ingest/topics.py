"""Topic parsing: `{root}/{zone}/{id}/{kind}` and nothing else under the root.

Anything under the root that is not one of the three contract forms is rejected, never guessed at:
the zone and id become InfluxDB tags, so they must be plain identifiers.
"""

from dataclasses import dataclass
from enum import StrEnum

from models import Reason, is_identifier


class Kind(StrEnum):
    """The three things a luminaire or gateway publishes."""

    TELEMETRY = "telemetry"
    BATCH = "batch"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic. `source_id` is the device, or for `batch` the gateway."""

    zone: str
    source_id: str
    kind: Kind


class TopicError(ValueError):
    """A topic that is not one of the contract's forms, with the reason for the dead letter."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_KINDS = {kind.value: kind for kind in Kind}
_SHOWN = 120  # characters of a hostile topic quoted back in a detail sentence


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def parse_topic(topic: str, root: str) -> Topic:
    """Parse a topic under `root` (itself possibly several levels, e.g. `city/lighting`)."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(
            Reason.TOPIC_MALFORMED, f"topic {_shown(topic)} is not under the root {root!r}"
        )
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3:
        detail = (
            f"topic {_shown(topic)} has {len(parts)} levels under the root; "
            "expected {zone}/{device_id}/telemetry|status or {zone}/{gateway_id}/batch"
        )
        if len(parts) > 3 and parts[-1] in _KINDS:
            detail += (
                ". A broker that maps '.' in topics to '/' (RabbitMQ's MQTT plugin does) turns "
                "a zone or id with dots (z.1/lum.7) into extra levels: ids with dots cannot be "
                "used through such a broker"
            )
        raise TopicError(Reason.TOPIC_MALFORMED, detail)
    zone, source_id, kind_text = parts
    if not is_identifier(zone):
        raise TopicError(
            Reason.TOPIC_INVALID_ZONE,
            f"zone {_shown(zone)} in topic is not 1-64 letters, digits or _.:- "
            "starting with a letter or digit",
        )
    if not is_identifier(source_id):
        raise TopicError(
            Reason.TOPIC_INVALID_DEVICE_ID,
            f"device or gateway id {_shown(source_id)} in topic is not 1-64 letters, digits "
            "or _.:- starting with a letter or digit",
        )
    kind = _KINDS.get(kind_text)
    if kind is None:
        raise TopicError(
            Reason.TOPIC_UNKNOWN_KIND,
            f"topic ends in {_shown(kind_text)}; expected telemetry, batch or status",
        )
    return Topic(zone=zone, source_id=source_id, kind=kind)
