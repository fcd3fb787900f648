"""The MQTT source: a persistent QoS 1 session whose messages are acknowledged only once safe.

It runs on luxtel's own asyncio MQTT client (`mqtt.connection` over `mqtt.codec`):
each chunk read from the socket is decoded in one go and handed downstream as one list, the
cheapest receive path Python allows (paho-mqtt took the whole CPU budget of a reading). Nothing
is acknowledged on receipt, so nothing acknowledged can be lost: `ack()` releases PUBACKs in
arrival order once the sink has made the messages safe. Backpressure stops reading the socket
when the outbox is full — TCP then holds the broker back, and the broker holds the rest in the
session queue — instead of queueing without bound or dropping. The connection is re-made with
capped, jittered backoff and re-subscribed every time.

Zones (`MqttTarget.zones`, for sharding a city over several luxtel instances): with zones the
source subscribes to `{root}/{zone}/+/+` for each, in one SUBSCRIBE, instead of `{root}/#`. A
persistent session keeps its subscriptions across restarts, so one made under an earlier
configuration would go on delivering another instance's zones: when the broker resumes a
session, `{root}/#` is unsubscribed (after the zones are subscribed, so nothing falls between),
and a message of a zone not in the list — a zone this client id took before — is acknowledged
without being processed (its instance has its own copy) and its `{root}/{zone}/+/+` unsubscribed.

MQTT version (`MqttTarget.protocol`): "auto" tries 5 first and falls back to 3.1.1 when the broker
refuses 5 — a CONNACK "unsupported protocol version" (aedes answers so, in 3.1.1's form), the
connection closed with no answer (RabbitMQ 3.x), or an answer that is not MQTT — and says so once;
the version that connected is kept for the process's later connections. When 3.1.1 is refused the
same way too, nothing luxtel speaks is there (an AMQP or HTTP port, say): `MqttConnectError`.

Two clients with one client id take the session from each other (MQTT 5: the broker DISCONNECTs
the older with "session taken over"; 3.1.1 brokers just close it). Each loss in a row of a
connection that was taken over, or that had lived less than `STABLE_S`, waits longer before
reconnecting (capped, jittered backoff up to `reconnect_max_s`), and the streak is said once, as
an error naming the client id, instead of a fight of several reconnects a second. Durations are
measured on the event loop's monotonic clock.
"""

import asyncio
import contextlib
import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from common.backoff import backoff_delay
from ingest.messages import Inbound, new_inbound
from ingest.metrics import IngestMetrics
from models import is_identifier
from mqtt.acks import AckTracker, Delivery
from mqtt.codec import (
    SESSION_TAKEN_OVER,
    UNSUPPORTED_PROTOCOL_VERSION,
    V5,
    V311,
    Connack,
    MqttProtocolError,
    Publish,
    reason_name,
)
from mqtt.connection import (
    ClosedBeforeConnackError,
    ConnackRefusedError,
    ConnectOptions,
    MqttConnection,
    OutgoingQueue,
    tls_context,
)
from mqtt.errors import MqttConnectError

log = structlog.get_logger("luxtel.mqtt")

OUTPUT_QUEUE_LIMIT = 10_000
OUTPUT_QUEUE_BYTES = 16 * 1024 * 1024
"""luxtel's own output waiting for the broker, at most (publications, and bytes of topic and
payload: `ingest.output_queue_bytes`); the dead-letter file is the record, so past either bound
the MQTT copies are dropped and counted rather than queued."""
OUTPUT_DROPPED_LOG_EVERY = 1000
"""A dropped publication is logged for the first and then every this many."""

STABLE_S = 60.0
"""A connection lost after living this long (monotonic seconds) starts a new streak: no backoff
growth, no takeover suspicion."""
TAKEOVERS_SAID = 2
"""Losses in a row, MQTT 5 "session taken over", before the error is logged (one alone may be a
new instance replacing this one on purpose)."""
SHORT_LIVED_SAID = 4
"""Losses in a row of short-lived connections without a reason (MQTT 3.1.1 cannot say one)
before the error is logged."""

_VERSIONS = {"5": V5, "3.1.1": V311}
_VERSION_NAMES = {V5: "MQTT 5", V311: "MQTT 3.1.1"}

_FATAL_CONNACK = {
    # MQTT 5 reason codes; the codec maps the 3.1.1 return codes 2, 4, 5 to 133, 134, 135.
    133: "the broker rejected the client id",
    134: "the broker refused the username or password (check mqtt.username and the password)",
    135: "the broker refused this client as not authorised (check mqtt.username, the password "
    "and the broker's ACL)",
    138: "the broker has banned this client",
    140: "the broker refused the authentication method",
}


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where and how to connect. `__repr__` hides the password."""

    host: str
    port: int
    topic_root: str
    client_id: str = "luxtel"
    qos: int = 1
    protocol: str = "auto"
    """ "auto", "5" or "3.1.1"."""
    session_expiry_s: int = 7 * 86400
    keepalive_s: int = 30
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_check_hostname: bool = True
    username: str | None = None
    password: str | None = None
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 15.0
    zones: tuple[str, ...] = ()
    """The zones to take (`{root}/{zone}/+/+` each); empty: all of them (`{root}/#`)."""
    source_filters: tuple[str, ...] = ()
    """Topic filters of the sources beyond the contract (`ingest.adapters`), outside the root:
    subscribed too, at `qos`, and never taken for another instance's zones."""
    contract: bool = True
    """False: a source's own broker connection, subscribed to `source_filters` only."""

    def __post_init__(self) -> None:
        for zone in self.zones:
            if not is_identifier(zone):
                # It goes into a topic filter: a "+" or "#" would take other instances' zones.
                raise ValueError(f"zone {zone!r} is not a zone identifier")

    def __repr__(self) -> str:
        return f"MqttTarget(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"

    @property
    def topic_filters(self) -> list[str]:
        """What to subscribe to: one filter per zone, or the whole root; and the sources'."""
        extra = list(dict.fromkeys(self.source_filters))
        if not self.contract:
            return extra
        if not self.zones:
            return [f"{self.topic_root}/#", *extra]
        return [f"{self.topic_root}/{zone}/+/+" for zone in dict.fromkeys(self.zones)] + extra


class MqttSource:
    """Receives `target.topic_filters` into `outbox` as lists of `Inbound`; `None` marks the
    end."""

    def __init__(
        self,
        target: MqttTarget,
        outbox: "asyncio.Queue[list[Inbound] | None]",
        metrics: IngestMetrics,
        *,
        output_queue_bytes: int = OUTPUT_QUEUE_BYTES,
    ) -> None:
        self.target = target
        self._outbox = outbox
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._rng = random.Random()
        self._tracker = AckTracker(self._send_ack)
        self._outgoing = OutgoingQueue(
            OUTPUT_QUEUE_LIMIT, output_queue_bytes, metrics.mqtt_output_bytes.set
        )
        self._ssl = (
            tls_context(
                target.ca_file, target.cert_file, target.key_file, target.tls_check_hostname
            )
            if target.tls
            else None
        )
        self._connection: MqttConnection | None = None
        self._waiting: list[list[Inbound]] = []
        self._handoff: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        root = target.topic_root.encode()
        self._root_length = len(root) + 1
        self._zone_prefixes = (
            tuple(dict.fromkeys(root + b"/" + zone.encode() + b"/" for zone in target.zones))
            if target.zones
            else None
        )
        """`{root}/{zone}/` of each zone taken, as received topics start (a tuple, for
        `bytes.startswith`); None: all zones."""
        self._root = root + b"/"
        self._foreign: set[bytes] = set()
        """Zone levels of messages not taken, seen on the current connection."""
        self._unsubscribing: set[asyncio.Task[None]] = set()
        self._version: int | None = _VERSIONS.get(target.protocol)
        """The MQTT version to connect with; None: "auto", until a version has connected."""
        self._fell_back = False
        self._connected_at = 0.0
        self._lost_code: int | None = None
        self._streak = 0
        """Connections lost in a row that were taken over or short-lived."""
        self._streak_said = False

    # ---- public surface ------------------------------------------------------------------

    def ack(self, deliveries: list[Delivery]) -> None:
        """The content of these messages is safe: acknowledge them (in arrival order)."""
        for delivery in deliveries:
            self._tracker.done(delivery)
        self._metrics.unacked.set(self._tracker.outstanding)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish luxtel's own output (dead letters, alerts), queued across reconnects."""
        outgoing = self._outgoing
        if outgoing.add(topic, payload, qos):
            return
        self._metrics.mqtt_output_dropped.inc()
        if outgoing.dropped % OUTPUT_DROPPED_LOG_EVERY == 1:
            log.warning(
                "mqtt_output_dropped",
                topic=topic,
                queued=len(outgoing),
                queued_bytes=outgoing.bytes,
                dropped=outgoing.dropped,
                hint="the broker takes luxtel's output slower than it comes; the dead-letter "
                f"file keeps every record (logged once per {OUTPUT_DROPPED_LOG_EVERY})",
            )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Until connected and subscribed."""
        await self._connected.wait()

    async def run(self) -> None:
        """Connect, and reconnect whenever the connection is lost, until `stop()`."""
        attempt = 0
        while not self._stopping:
            try:
                await self._connect()
            except MqttConnectError:
                raise
            except ssl.SSLCertVerificationError as error:
                # An untrusted, expired or misnamed certificate will not fix itself: stop.
                raise MqttConnectError(
                    f"{self._where}: the broker's TLS certificate was refused: "
                    f"{error.verify_message or error.reason}"
                ) from None
            except (OSError, ssl.SSLError, TimeoutError, MqttProtocolError) as error:
                delay = backoff_delay(
                    attempt, self.target.reconnect_min_s, self.target.reconnect_max_s, self._rng
                )
                attempt += 1
                hint = {}
                if isinstance(error, ClosedBeforeConnackError) and self.target.protocol == "5":
                    hint["hint"] = (
                        "a broker without MQTT 5 (RabbitMQ 3.x) closes an MQTT 5 connection "
                        'so: try mqtt.protocol = "auto"'
                    )
                log.warning(
                    "mqtt_connect_failed",
                    broker=self._where,
                    error=str(error) or type(error).__name__,
                    retry_in_s=round(delay, 2),
                    attempt=attempt,
                    **hint,
                )
                await self._sleep_unless_stopping(delay)
                continue
            attempt = 0
            await self._lost.wait()
            if self._stopping:
                break
            self._count_loss(self._loop.time() - self._connected_at, self._lost_code)
            delay = backoff_delay(
                max(0, self._streak - 1),
                self.target.reconnect_min_s,
                self.target.reconnect_max_s,
                self._rng,
            )
            log.warning("mqtt_connection_lost", broker=self._where, retry_in_s=round(delay, 2))
            await self._sleep_unless_stopping(delay)

    def _count_loss(self, lived_s: float, code: int | None) -> None:
        """A connection was lost after `lived_s` (monotonic) seconds, with the broker's MQTT 5
        DISCONNECT reason `code` if it gave one: keep the streak, and say it once."""
        taken_over = code == SESSION_TAKEN_OVER
        if not taken_over and lived_s >= STABLE_S:
            self._streak = 1
            self._streak_said = False
            return
        self._streak += 1
        if self._streak_said:
            return
        client_id = self.target.client_id
        cap = self.target.reconnect_max_s
        if taken_over and self._streak >= TAKEOVERS_SAID:
            sentence = (
                f"the broker gave the session of client id {client_id!r} to another connection "
                f"{self._streak} times in a row: another client (a second luxtel?) uses this "
                f"mqtt.client_id, and each takes the session from the other; give every "
                f"instance its own client_id. Backing off (up to {cap:g} s) instead of fighting."
            )
        elif not taken_over and self._streak >= SHORT_LIVED_SAID:
            sentence = (
                f"the connection was lost {self._streak} times in a row within {STABLE_S:g} s "
                f"of connecting: if another client (a second luxtel?) uses client id "
                f"{client_id!r}, each takes the session from the other; give every instance "
                f"its own mqtt.client_id. Backing off (up to {cap:g} s)."
            )
        else:
            return
        self._streak_said = True
        log.error(
            "mqtt_session_taken_over", broker=self._where, client_id=client_id, error=sentence
        )

    async def stop(self) -> None:
        """Stop taking messages and hand what was read downstream, then mark the end."""
        self._stopping = True
        if self._connection is not None:
            self._connection.pause_reading()
        if self._handoff is not None:
            await self._handoff
        await self._outbox.put(None)
        self._lost.set()

    async def close(self, timeout_s: float = 5.0) -> None:
        """After downstream has drained: send the owed acknowledgements and disconnect."""
        connection = self._connection
        if connection is not None:
            await connection.disconnect(timeout_s)

    # ---- connection ------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        scheme = "mqtts" if self.target.tls else "mqtt"
        return f"{scheme}://{self.target.host}:{self.target.port}"

    def _options(self, version: int) -> ConnectOptions:
        target = self.target
        return ConnectOptions(
            host=target.host,
            port=target.port,
            client_id=target.client_id,
            version=version,
            keepalive_s=target.keepalive_s,
            session_expiry_s=target.session_expiry_s,
            username=target.username,
            password=target.password,
            ssl_context=self._ssl,
            timeout_s=target.connect_timeout_s,
        )

    async def _open(self) -> tuple[MqttConnection, Connack]:
        """A connection accepted by the broker, in the configured MQTT version, or with "auto"
        in MQTT 5 or else 3.1.1 (see the module docstring)."""
        version = self._version or V5
        while True:
            connection = MqttConnection(
                self._options(version), self._on_publishes, self._on_lost, self._outgoing
            )
            self._connection = connection
            try:
                connack = await connection.open()
            except (ConnackRefusedError, ClosedBeforeConnackError, MqttProtocolError) as error:
                self._connection = None
                refused = _version_refused(error)
                if refused is None:
                    raise
                if self._version is not None:
                    if isinstance(error, ConnackRefusedError):
                        self._refused_version(version)
                    raise
                if version == V5:
                    if not self._fell_back:
                        self._fell_back = True
                        log.warning(
                            "mqtt_protocol_fallback",
                            broker=self._where,
                            refused=f"MQTT 5 ({refused})",
                            action="connecting with MQTT 3.1.1 (mqtt.protocol = auto)",
                        )
                    version = V311
                    continue
                if not isinstance(error, ClosedBeforeConnackError):
                    raise MqttConnectError(
                        f"{self._where} accepted neither MQTT 5 nor MQTT 3.1.1 ({refused}): "
                        "is mqtt.url the broker's MQTT port?"
                    ) from None
                raise
            if self._version is None:
                self._version = version
            return connection, connack

    def _refused_version(self, version: int) -> None:
        """The configured version (not "auto") was refused by CONNACK: stop, saying what to
        set."""
        name = _VERSION_NAMES[version]
        raise MqttConnectError(
            f"{self._where} does not speak {name} (it refused the version): set mqtt.protocol = "
            f'"auto" (or the version it speaks)'
        ) from None

    async def _connect(self) -> None:
        target = self.target
        self._lost.clear()
        self._lost_code = None
        # Acks owed on a previous connection are dropped: the broker redelivers those messages.
        self._tracker.new_connection()
        filters = target.topic_filters
        connection: MqttConnection | None = None
        try:
            connection, connack = await self._open()
            codes = await connection.subscribe(filters, target.qos)
            if target.zones and connack.session_present:
                await self._unsubscribe(connection, [f"{target.topic_root}/#"])
        except ConnackRefusedError as error:
            self._connection = None
            sentence = _FATAL_CONNACK.get(error.reason_code)
            if sentence is not None:
                raise MqttConnectError(
                    f"{self._where}: {sentence} ({reason_name(error.reason_code)})"
                ) from None
            raise
        except BaseException:
            if connection is not None:
                connection.abort()
            self._connection = None
            raise
        self._check_suback(filters, codes)
        if self._connection is not connection:
            return  # lost again already: run() sees `_lost` and reconnects
        self._connected_at = self._loop.time()
        self._connected.set()
        self._metrics.mqtt_connected.set(1)
        self._metrics.mqtt_connects.inc()
        log.info(
            "mqtt_connected",
            broker=self._where,
            client_id=target.client_id,
            topics=", ".join(filters),
        )

    def _check_suback(self, filters: list[str], codes: tuple[int, ...]) -> None:
        """Every filter refused (or left without a code) is logged: the broker's ACL, most
        likely. The connection stays: the filters granted still deliver."""
        for index, topic_filter in enumerate(filters):
            code = codes[index] if index < len(codes) else None
            if code is None or code >= 0x80:
                log.error(
                    "mqtt_subscribe_refused",
                    broker=self._where,
                    topics=topic_filter,
                    reason=reason_name(code) if code is not None else "no code in the SUBACK",
                )

    async def _unsubscribe(self, connection: MqttConnection, filters: list[str]) -> None:
        """Remove subscriptions an earlier configuration left in the session."""
        codes = await connection.unsubscribe(filters)
        for index, topic_filter in enumerate(filters):
            code = codes[index] if index < len(codes) else None
            if code is None:  # MQTT 3.1.1 does not say whether there was one
                log.debug("mqtt_unsubscribed", broker=self._where, topics=topic_filter)
            elif code == 0:  # MQTT 5: there was one (0x11: there was none)
                log.info("mqtt_unsubscribed", broker=self._where, topics=topic_filter)
            elif code >= 0x80:
                log.warning(
                    "mqtt_unsubscribe_refused",
                    broker=self._where,
                    topics=topic_filter,
                    reason=reason_name(code),
                )

    async def _unsubscribe_quietly(self, connection: MqttConnection, topic_filter: str) -> None:
        # On failure the next connection meets the same stray messages and tries again.
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._unsubscribe(connection, [topic_filter])

    def _on_lost(self, connection: MqttConnection) -> None:
        if connection is not self._connection:
            return
        self._connection = None
        self._lost_code = connection.disconnect_code
        self._foreign.clear()
        self._tracker.new_connection()
        self._connected.clear()
        self._metrics.mqtt_connected.set(0)
        self._metrics.unacked.set(0)
        if not self._stopping:
            log.warning(
                "mqtt_disconnected",
                broker=self._where,
                reason=connection.disconnect_reason or "connection lost",
            )
        self._lost.set()

    async def _sleep_unless_stopping(self, delay: float) -> None:
        step = 0.1
        remaining = delay
        while remaining > 0 and not self._stopping:
            await asyncio.sleep(min(step, remaining))
            remaining -= step

    # ---- receiving -------------------------------------------------------------------------

    def _on_publishes(self, packets: list[Publish]) -> None:
        """One received chunk's messages: one list downstream, not one hand-off each."""
        if self._stopping:
            return  # not acknowledged: the broker redelivers them to the next run
        received_at = datetime.now(UTC)
        prefixes = self._zone_prefixes
        # With zones, one cheap look first: only a stale subscription brings another zone.
        if prefixes is not None and not all(p.topic.startswith(prefixes) for p in packets):
            chunk = self._own_zones(packets, received_at, prefixes)
        else:
            register = self._tracker.received
            chunk = [
                new_inbound(
                    Inbound,
                    (
                        packet.topic.decode("utf-8", "backslashreplace"),
                        packet.payload,
                        packet.retain,
                        received_at,
                        register(packet.packet_id) if packet.qos else None,
                    ),
                )
                for packet in packets
            ]
        if not chunk:
            return
        self._metrics.received.inc(len(chunk))
        self._metrics.unacked.set(self._tracker.outstanding)
        if self._handoff is None:
            try:
                self._outbox.put_nowait(chunk)
            except asyncio.QueueFull:
                pass
            else:
                return
        # The outbox is full: stop reading until it has room (TCP holds the broker back).
        self._waiting.append(chunk)
        if self._connection is not None:
            self._connection.pause_reading()
        if self._handoff is None:
            self._handoff = self._loop.create_task(self._put_then_resume(), name="mqtt-handoff")

    def _own_zones(
        self, packets: list[Publish], received_at: datetime, prefixes: tuple[bytes, ...]
    ) -> list[Inbound]:
        """The chunk's messages of the zones taken; the others (delivered by a subscription an
        earlier configuration left in the session) are acknowledged without being processed.
        One pass, so the acknowledgements keep the arrival order."""
        register = self._tracker.received
        chunk: list[Inbound] = []
        for packet in packets:
            topic = packet.topic
            delivery = register(packet.packet_id) if packet.qos else None
            if topic.startswith(prefixes) or not topic.startswith(self._root):
                text = topic.decode("utf-8", "backslashreplace")
                chunk.append(Inbound(text, packet.payload, packet.retain, received_at, delivery))
                continue
            if delivery is not None:
                self._tracker.done(delivery)
            self._foreign_zone(topic)
        return chunk

    def _foreign_zone(self, topic: bytes) -> None:
        start = self._root_length
        end = topic.find(b"/", start)
        zone = topic[start:end] if end >= 0 else topic[start:]
        if zone in self._foreign:
            return
        self._foreign.add(zone)
        text = zone.decode("utf-8", "backslashreplace")
        connection = self._connection
        topic_filter = f"{self.target.topic_root}/{text}/+/+"
        stale = connection is not None and is_identifier(text)
        log.warning(
            "mqtt_zone_not_taken",
            zone=text,
            topic=topic.decode("utf-8", "backslashreplace"),
            action="acknowledged, not processed; unsubscribing " + topic_filter
            if stale
            else "acknowledged, not processed",
            hint="mqtt.zones no longer lists this zone, but this client id's persistent "
            "session still held a subscription to it",
        )
        if stale and connection is not None:
            task = self._loop.create_task(self._unsubscribe_quietly(connection, topic_filter))
            self._unsubscribing.add(task)
            task.add_done_callback(self._unsubscribing.discard)

    async def _put_then_resume(self) -> None:
        while self._waiting:
            await self._outbox.put(self._waiting.pop(0))
        self._handoff = None
        if not self._stopping and self._connection is not None:
            self._connection.resume_reading()

    def _send_ack(self, packet_id: int) -> None:
        if self._connection is not None:
            self._connection.puback(packet_id)


def _version_refused(error: Exception) -> str | None:
    """How the broker refused the MQTT version of a CONNECT, in words; None when `error` says
    nothing about the version (bad credentials, say)."""
    if isinstance(error, ConnackRefusedError):
        if error.reason_code == UNSUPPORTED_PROTOCOL_VERSION:
            return reason_name(error.reason_code)
        return None
    if isinstance(error, ClosedBeforeConnackError):
        return "connection closed with no CONNACK"
    return f"not an MQTT answer: {error}"
