"""Messages on a configured source's topic go to its adapter; its readings then take the
contract's own road: the same validation, line encoding, dead letter, schema and rules.

The decoder asks the router first (`Limits.sources`); a topic under `mqtt.topic_root` is the
contract's and is never the router's, whatever the sources say, so the contract's fast path is
untouched. A topic that matches a source's filter (first source in the file wins) is parsed
(within `ingest.max_payload_bytes`), reshaped by the adapter into contract readings — each then
decoded exactly as a `telemetry` message from that device in that zone would be, by
`ingest.decode`'s own functions: the C fast path first, the pydantic models for anything it does
not take. Declared fault flags become a `status` point, decoded as the contract's `status`, when
a device's flags differ from those last written for it (as a controller publishes its status on
a change): the first reading after a start, then each change. Whatever does not map is
dead-lettered with the adapter's reason and the original payload.

Measured by `python bench/adapters.py` (see bench/README.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from ingest import fast_path
from ingest.adapters.config import SourceConfig, SourcesError, filter_matches
from ingest.adapters.directory import DeviceDirectory
from ingest.adapters.mapping import Mapped, Mapper, Rejected
from ingest.adapters.presets import with_preset
from ingest.adapters.senml import SenmlAdapter
from ingest.decode import (
    Decoded,
    Limits,
    Point,
    RejectionError,
    _decode_status,
    _decode_telemetry,
    _Delivery,
    _fast_telemetry,
    _new_point,
    _parse_json,
)
from ingest.rate_limit import RateLimiter
from ingest.topics import Kind, Topic
from models import DeadLetter, Reason

TOPIC_CACHE = 65_536
"""Topics remembered with their source (or none): ~200 bytes each, at most ~13 MB."""
FAULTS_SEEN = 65_536
"""Devices whose last fault flags are remembered (~250 bytes each: at most ~16 MB)."""


class Adapter(Protocol):
    source: SourceConfig

    def map(
        self, levels: list[str], body: Any, received_at: datetime
    ) -> list[Mapped | Rejected]: ...


@dataclass(frozen=True, slots=True)
class _Route:
    levels: list[str]
    adapter: Adapter


def build_adapter(source: SourceConfig, directory: DeviceDirectory | None) -> Adapter:
    """The adapter of one non-`luxtel` source; raises SourcesError when it needs an inventory
    and there is none."""
    source = with_preset(source)
    needs = [
        key
        for key in ("device_id", "zone")
        if (getattr(source, key) or "").startswith(("eui:", "inventory"))
    ]
    if source.adapter == "senml" and source.zone is None:
        needs.append("zone")
    if needs and directory is None:
        raise SourcesError(
            f"source {source.name!r}: its {' and '.join(needs)} "
            f"{'come' if len(needs) > 1 else 'comes'} from the inventory, and inventory.path "
            "is not set"
        )
    if source.adapter == "senml":
        return SenmlAdapter(source, directory)
    return Mapper(source, directory)


def _label(adapter: Adapter) -> str:
    return f"{adapter.source.adapter} source {adapter.source.name!r}"


class SourceRouter:
    """The adapters of the sources file, by topic."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        topic_root: str,
        directory: DeviceDirectory | None = None,
    ) -> None:
        self.root_prefix = topic_root + "/"
        """`{mqtt.topic_root}/`: what starts with it is the contract's, never a source's."""
        self._adapters = [
            (source.topic.split("/"), build_adapter(source, directory))
            for source in sources
            if source.adapter != "luxtel"
        ]
        for source in sources:
            if source.adapter != "luxtel" and source.topic.startswith(self.root_prefix):
                raise SourcesError(
                    f"source {source.name!r}: {source.topic!r} is under mqtt.topic_root, whose "
                    "topics are the contract's; give the source a topic outside it"
                )
            if source.adapter == "luxtel" and source.topic != self.root_prefix + "#":
                raise SourcesError(
                    f"source {source.name!r}: a luxtel source's topic must be "
                    f"{self.root_prefix}# (mqtt.topic_root), not {source.topic!r}"
                )
        self._routes: dict[str, _Route | None] = {}
        self._topics: dict[tuple[str, str], Topic] = {}
        self._faults_seen: dict[str, list[str]] = {}
        """Each device's fault flags as last written (bounded: emptied at `FAULTS_SEEN`)."""

    @property
    def topic_filters(self) -> list[str]:
        """What the MQTT source subscribes to on the city's broker besides the contract's root."""
        return [
            "/".join(levels) for levels, adapter in self._adapters if adapter.source.broker is None
        ]

    @property
    def own_brokers(self) -> list[SourceConfig]:
        """The sources with a broker connection of their own."""
        return [adapter.source for _, adapter in self._adapters if adapter.source.broker]

    def __bool__(self) -> bool:
        return bool(self._adapters)

    def route(self, name: str) -> _Route | None:
        """The adapter of topic `name` (remembered, bounded), or None."""
        if name in self._routes:
            return self._routes[name]
        found = None
        if not name.startswith(self.root_prefix):
            levels = name.split("/")
            for filter_levels, adapter in self._adapters:
                if filter_matches(filter_levels, levels):
                    found = _Route(levels, adapter)
                    break
        if len(self._routes) >= TOPIC_CACHE:
            self._routes.clear()
        self._routes[name] = found
        return found

    def decode_into(
        self,
        out: Decoded,
        name: str,
        payload: bytes,
        received_at: datetime,
        received_ms: int,
        limits: Limits,
        limiter: RateLimiter | None = None,
        fast: bool = True,
    ) -> bool:
        """Decode the message into `out` when a source takes its topic (True); False leaves
        it to the contract's decoder. Never raises for bad input."""
        if name.startswith(self.root_prefix):
            return False
        route = self.route(name)
        if route is None:
            return False
        adapter = route.adapter
        try:
            body = _parse_json(payload, limits)
            results = adapter.map(route.levels, body, received_at)
        except RejectionError as rejection:
            out.dead_letters.append(
                DeadLetter.of(
                    received_at=received_at,
                    topic=name,
                    payload=payload,
                    reason=rejection.reason,
                    detail=f"{_label(adapter)}: {rejection.detail}",
                    keep_bytes=limits.payload_kept_bytes,
                )
            )
            return True
        plain = fast and limiter is None and not limits.observe
        for result in results:
            # Fault flags equal to those last written for the device write no status point.
            tried = (
                plain
                and isinstance(result, Mapped)
                and (
                    result.faults is None
                    or self._faults_seen.get(result.device_id) == result.faults
                )
            )
            if tried and self._plain(result, name, received_ms, limits, out):  # type: ignore[arg-type]
                continue
            try:
                if isinstance(result, Rejected):
                    raise result.error
                # A reading `_plain` tried and the fast path did not take goes to the full path.
                again = fast and not tried
                self._emit(result, out, name, received_at, received_ms, limits, limiter, again)
            except RejectionError as rejection:
                index = result.position
                where = f" (reading {index})" if index is not None else ""
                device = f" device {result.device_id!r}" if isinstance(result, Mapped) else ""
                out.dead_letters.append(
                    DeadLetter.of(
                        received_at=received_at,
                        topic=name,
                        payload=payload,
                        reason=rejection.reason,
                        detail=f"{_label(adapter)}{where}{device}: {rejection.detail}",
                        index=index,
                        keep_bytes=limits.payload_kept_bytes,
                    )
                )
        return True

    def _topic(self, zone: str, device_id: str) -> Topic:
        """The `telemetry` topic a mapped reading is decoded as (remembered, bounded)."""
        key = (zone, device_id)
        found = self._topics.get(key)
        if found is None:
            if len(self._topics) >= TOPIC_CACHE:
                self._topics.clear()
            found = self._topics[key] = Topic(zone, device_id, Kind.TELEMETRY)
        return found

    @staticmethod
    def _plain(mapped: Mapped, name: str, received_ms: int, limits: Limits, out: Decoded) -> bool:
        """`_emit` for the common reading (no rate limit, not observed, no fault flags or the
        same as last written for the device, so no status point): the contract's C fast path
        straight on the reading's JSON, without the `Topic` and the delivery `_emit` makes for
        the full path. False when the fast path does not take it (`_emit` then decides
        everything, as before)."""
        try:
            payload = orjson.dumps(mapped.reading)
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            return False
        line = fast_path.telemetry(
            payload,
            mapped.zone,
            mapped.device_id,
            received_ms,
            limits.skew_ms,
            False,
            limits.stamps,
        )
        if line is None:
            return False
        out.points.append(_new_point(Point, (line, name)))
        return True

    @staticmethod
    def _fast(
        topic: Topic,
        name: str,
        reading: dict[str, Any],
        received_at: datetime,
        received_ms: int,
        limits: Limits,
        out: Decoded,
    ) -> bool:
        """The contract's C fast path on the reading's JSON; False leaves it to the full path
        (which makes every decision about rejections), as for a contract message."""
        try:
            payload = orjson.dumps(reading)
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            return False
        return _fast_telemetry(topic, name, payload, received_at, received_ms, limits, out)

    def _emit(
        self,
        mapped: Mapped,
        out: Decoded,
        name: str,
        received_at: datetime,
        received_ms: int,
        limits: Limits,
        limiter: RateLimiter | None,
        fast: bool,
    ) -> None:
        """Decode one mapped reading as the contract's `telemetry` of its device and zone.
        The rate limit counts per device on the receive time, as the contract's does."""
        if limiter is not None and not limiter.allow(mapped.device_id, received_ms / 1000):
            raise RejectionError(
                Reason.RATE_LIMITED,
                f"{mapped.device_id!r} sent more than {limiter.rate:g} messages/s (bursts of "
                f"{limiter.burst:g}); the excess is kept here rather than written",
            )
        topic = self._topic(mapped.zone, mapped.device_id)
        reading = mapped.reading
        # Network servers and gateways do not publish retained uplinks: a delivery as live.
        delivery = _Delivery(name, received_at, received_ms, False)
        if not (fast and self._fast(topic, name, reading, received_at, received_ms, limits, out)):
            _decode_telemetry(topic, reading, limits, out, delivery)
        faults = mapped.faults
        if faults is not None and self._faults_seen.get(mapped.device_id) != faults:
            status: dict[str, Any] = {"faults": faults}
            if "ts" in reading:
                status["ts"] = reading["ts"]
            _decode_status(
                Topic(mapped.zone, mapped.device_id, Kind.STATUS), status, limits, out, delivery
            )
            if len(self._faults_seen) >= FAULTS_SEEN:
                self._faults_seen.clear()
            self._faults_seen[mapped.device_id] = faults
