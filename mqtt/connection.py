"""One MQTT connection on asyncio: a `Protocol` that decodes each received chunk in one go.

`MqttConnection` is single-use: `open()` connects (TCP or TLS), sends CONNECT and waits for the
CONNACK; from then on every PUBLISH goes to `on_publishes` in lists, one list per received chunk
(never one call per message), and `puback(packet_id)` acknowledges. Outgoing bytes are collected
and written once per event-loop turn, so a thousand acknowledgements released at once are one
`send`, not a thousand. Reading can be paused for backpressure: TCP then holds the broker back.

Keepalive: a PINGREQ whenever nothing was sent for half the keepalive interval; if nothing at
all comes back within the keepalive interval after it, the connection is dead and is aborted.
While reading is paused the broker's answers cannot be seen, so that check waits for the resume.

QoS 2 deliveries (a broker may deliver at QoS 2 though luxtel subscribes at QoS 1: aedes does)
are received as MQTT 3.1.1 and 5 §4.3.3 ask, the "store the packet id" way: `puback(packet_id)`
of a QoS 2 message sends its PUBREC (so, like a PUBACK, only once the message is safe, in
arrival order), the id is kept until the broker's PUBREL, answered with PUBCOMP, and a PUBLISH
with a kept id — the broker resending it — is not handed on again, only answered with its
PUBREC when that was sent. A PUBREL for an id not kept (one released on an earlier connection)
is answered with PUBCOMP too. Plain QoS 0/1 chunks never touch this: the decoder flags a chunk
that held a QoS 2 PUBLISH.

`OutgoingQueue` holds luxtel's own QoS 1 publications (dead letters, alerts) across connections:
up to the broker's Receive Maximum in flight with packet ids, resent with DUP after a reconnect,
and at most `limit` publications and `max_bytes` bytes of topics and payloads in all — past
either, new ones are dropped (their durable record is elsewhere) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import structlog

from mqtt.codec import (
    CONNACK,
    MAXIMUM_PACKET_SIZE,
    MAXIMUM_QOS,
    PINGREQ_PACKET,
    PROTOCOL_ERROR,
    PUBACK,
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    V5,
    Connack,
    Disconnect,
    MqttProtocolError,
    Packet,
    Pingresp,
    Puback,
    Publish,
    Pubrel,
    StreamDecoder,
    Suback,
    Unsuback,
    encode_connect,
    encode_disconnect,
    encode_pubcomp,
    encode_publish,
    encode_pubrec,
    encode_subscribe,
    encode_unsubscribe,
    reason_name,
)

log = structlog.get_logger("luxtel.mqtt")

_puback = struct.Struct(">BBH").pack

_SUBSCRIBE_ID, _UNSUBSCRIBE_ID = 1, 2
"""Packet ids of the connection's SUBSCRIBE and UNSUBSCRIBE: one request at a time is in
flight (`MqttConnection._requests`), so a fixed id each is never in use twice."""
FIRST_PUBLISH_ID = 3
"""luxtel's own QoS 1 publications take ids from here up: MQTT forbids an id in use by two
packets at once, so never the SUBSCRIBE's or UNSUBSCRIBE's."""

MAX_PACKET_SIZE = 16 * 1024 * 1024
"""The largest packet luxtel takes (MQTT 5 Maximum Packet Size; enforced for 3.1.1 too is not
possible — see `StreamDecoder`). A memory bound, far above `ingest.max_payload_bytes` on
purpose: a message between the two still reaches luxtel and is dead-lettered with its reason,
rather than being silently discarded by the broker."""

REST_BELOW_BYTES = 16 * 1024
REST_S = 0.002
"""After a read of less than `REST_BELOW_BYTES` the connection stops reading for `REST_S`, so
that messages trickling in arrive a few dozen at a time rather than one or two per turn of the
event loop (at 20,000 telemetry readings/s, ~40 a read). 2 ms of latency, against the batches'
`flush_interval_s`; a backlog arrives in large reads and never rests."""


class ConnackRefusedError(ConnectionError):
    """The broker answered CONNECT with a failure; `reason_code` in MQTT 5 numbering."""

    def __init__(self, reason_code: int) -> None:
        super().__init__(f"the broker refused the connection: {reason_name(reason_code)}")
        self.reason_code = reason_code


class ClosedBeforeConnackError(ConnectionError):
    """The broker closed the connection after CONNECT without answering it: what RabbitMQ 3.x
    does to an MQTT 5 CONNECT (and a broker at its connection limit to any)."""

    def __init__(self) -> None:
        super().__init__("the broker closed the connection before its CONNACK")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What goes into CONNECT, and how to reach the broker."""

    host: str
    port: int
    client_id: str
    version: int = V5
    keepalive_s: int = 30
    session_expiry_s: int = 0
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    timeout_s: float = 15.0


def tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, check_hostname: bool
) -> ssl.SSLContext:
    """The broker's certificate is always verified (against `ca_file`, or the system's CAs);
    `check_hostname=False` only skips matching its name."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    context.check_hostname = check_hostname
    return context


class OutgoingQueue:
    """luxtel's own publications, kept across connections (see the module docstring)."""

    def __init__(
        self,
        limit: int,
        max_bytes: int = 16 * 1024 * 1024,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.bytes = 0
        """Topics and payloads queued or in flight."""
        self.dropped = 0
        self._on_bytes = on_bytes
        self._queued: deque[Publish] = deque()
        self._in_flight: OrderedDict[int, Publish] = OrderedDict()
        self._next_id = 0
        self._connection: MqttConnection | None = None
        self._window = 0

    def __len__(self) -> int:
        return len(self._queued) + len(self._in_flight)

    def add(self, topic: str, payload: bytes, qos: int) -> bool:
        """Queue a publication; False when the queue is full (by count or by bytes) and it was
        dropped: the newest goes, never one already queued."""
        encoded = topic.encode()
        size = len(encoded) + len(payload)
        if len(self) >= self.limit or (self.bytes and self.bytes + size > self.max_bytes):
            self.dropped += 1
            return False
        self._queued.append(Publish(encoded, payload, qos))
        self._grow(size)
        self._pump()
        return True

    def _grow(self, size: int) -> None:
        self.bytes += size
        if self._on_bytes is not None:
            self._on_bytes(self.bytes)

    def attach(self, connection: MqttConnection, receive_maximum: int) -> None:
        """A new connection: resend what was in flight, with DUP, then carry on."""
        self._connection = connection
        self._window = receive_maximum
        for packet in self._in_flight.values():
            connection.send_publish(packet._replace(dup=True))
        self._pump()

    def detach(self, connection: MqttConnection) -> None:
        if self._connection is connection:
            self._connection = None

    def acknowledged(self, packet_id: int, reason_code: int) -> None:
        packet = self._in_flight.pop(packet_id, None)
        if packet is not None:
            self._grow(-len(packet.topic) - len(packet.payload))
        if packet is not None and reason_code >= 0x80:
            log.warning(
                "mqtt_publish_refused",
                topic=packet.topic.decode("utf-8", "backslashreplace"),
                reason=reason_name(reason_code),
            )
        self._pump()

    def _pump(self) -> None:
        connection = self._connection
        while connection is not None and self._queued and len(self._in_flight) < self._window:
            packet = self._queued.popleft()
            qos = min(packet.qos, connection.maximum_qos)
            if qos == 0:
                connection.send_publish(packet._replace(qos=0))
                self._grow(-len(packet.topic) - len(packet.payload))
                continue
            packet = packet._replace(qos=qos, packet_id=self._free_id())
            self._in_flight[packet.packet_id] = packet
            connection.send_publish(packet)

    def _free_id(self) -> int:
        while True:
            following = self._next_id + 1
            self._next_id = (
                following if FIRST_PUBLISH_ID <= following <= 0xFFFF else FIRST_PUBLISH_ID
            )
            if self._next_id not in self._in_flight:
                return self._next_id


class MqttConnection(asyncio.Protocol):
    """One broker connection; see the module docstring."""

    def __init__(
        self,
        options: ConnectOptions,
        on_publishes: Callable[[list[Publish]], None],
        on_lost: Callable[[MqttConnection], None],
        outgoing: OutgoingQueue | None = None,
    ) -> None:
        self.options = options
        self.version = options.version
        self._on_publishes = on_publishes
        self._on_lost = on_lost
        self._outgoing = outgoing
        self._loop = asyncio.get_running_loop()
        self._decoder = StreamDecoder(options.version, MAX_PACKET_SIZE)
        self._transport: asyncio.Transport | None = None
        self._out = bytearray()
        self._flush_scheduled = False
        self._connack: asyncio.Future[Connack] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._unsubacks: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._requests = asyncio.Lock()
        self._accepted = False
        self._first_bytes = True
        self._paused = False
        self._resting = False
        self._disconnecting = False
        """A DISCONNECT was sent: nothing more is sent, and what arrives is dropped."""
        self._last_in = self._last_out = self._loop.time()
        self._ping_sent: float | None = None
        self._keepalive_s = options.keepalive_s
        self._keepalive: asyncio.Task[None] | None = None
        self.closed = self._loop.create_future()
        self.maximum_qos = 1
        self.maximum_packet_size = MAX_PACKET_SIZE
        self.disconnect_reason: str | None = None
        self.disconnect_code: int | None = None
        """The reason code of the broker's DISCONNECT (MQTT 5), when it sent one."""
        self._qos2: dict[int, bool] = {}
        """Packet ids of QoS 2 messages received and not yet released by a PUBREL, each with
        whether its PUBREC was sent."""

    # ---- lifecycle -------------------------------------------------------------------------

    async def open(self) -> Connack:
        """Connect and wait for an accepting CONNACK (raises ConnackRefusedError otherwise,
        TimeoutError, OSError or ssl.SSLError as they come)."""
        options = self.options
        try:
            async with asyncio.timeout(options.timeout_s):
                await self._loop.create_connection(
                    lambda: self,
                    options.host,
                    options.port,
                    ssl=options.ssl_context,
                    server_hostname=options.host if options.ssl_context else None,
                )
                connack = await self._connack
        except BaseException:
            self.abort()
            raise
        if connack.reason_code >= 0x80:
            self.abort()
            raise ConnackRefusedError(connack.reason_code)
        return connack

    async def subscribe(self, topic_filters: str | Sequence[str], qos: int) -> tuple[int, ...]:
        """SUBSCRIBE to one filter or several in one packet, and wait for the SUBACK's reason
        codes (one per filter, in order)."""
        packet = encode_subscribe(
            _SUBSCRIBE_ID, topic_filters, qos, version=self.version, retain_handling=1
        )
        return await self._request(self._subacks, _SUBSCRIBE_ID, packet)

    async def unsubscribe(self, topic_filters: str | Sequence[str]) -> tuple[int, ...]:
        """UNSUBSCRIBE from one filter or several, and wait for the UNSUBACK's reason codes
        (MQTT 5: one per filter; 3.1.1 has none)."""
        packet = encode_unsubscribe(_UNSUBSCRIBE_ID, topic_filters, version=self.version)
        return await self._request(self._unsubacks, _UNSUBSCRIBE_ID, packet)

    async def _request(
        self, pending: dict[int, asyncio.Future[tuple[int, ...]]], packet_id: int, packet: bytes
    ) -> tuple[int, ...]:
        async with self._requests:
            future: asyncio.Future[tuple[int, ...]] = self._loop.create_future()
            pending[packet_id] = future
            self._send(packet)
            async with asyncio.timeout(self.options.timeout_s):
                return await future

    async def disconnect(self, timeout_s: float) -> None:
        """Send what is pending and a normal DISCONNECT (the session stays), then wait until
        the broker closes the connection (`timeout_s` at most) and close it.

        The broker's close is the sign that it has read everything sent before the DISCONNECT,
        the acknowledgements above all (MQTT 5 §3.14.4 and 3.1.1 §3.14.4: on DISCONNECT the
        server closes the connection). Closing at once is not enough: a broker reads a
        connection's bytes when it gets to them, and one that first writes to it — a message
        that has just come — finds it closed and drops it with those acknowledgements unread,
        so their messages come again in the next session (Mosquitto under load does:
        `tests/test_mqtt_zones.py`). Meanwhile the sending side is shut (TCP: a FIN after the
        DISCONNECT; TLS cannot, and waits for the broker alone) and what still arrives is read
        and dropped, unacknowledged: the broker keeps it for the session."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._send(encode_disconnect(version=self.version))
            self._flush()
            self._disconnecting = True
            if self._keepalive is not None:
                self._keepalive.cancel()
            if transport.can_write_eof():
                transport.write_eof()
            transport.resume_reading()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self.closed)
        self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # ---- sending ---------------------------------------------------------------------------

    def puback(self, packet_id: int) -> None:
        """Acknowledge a message once safe: PUBACK, or PUBREC for a QoS 2 message."""
        # The hot path of `ack()`: one PUBACK per message, so no call it does not need.
        if self._qos2 and packet_id in self._qos2:
            self._qos2[packet_id] = True
            self._send(encode_pubrec(packet_id))
            return
        if self._transport is not None:
            self._out += _puback(PUBACK << 4, 2, packet_id)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)

    def send_publish(self, packet: Publish) -> None:
        data = encode_publish(packet, version=self.version)
        if len(data) > self.maximum_packet_size:
            log.warning("mqtt_publish_too_large", size=len(data), limit=self.maximum_packet_size)
            if packet.qos and self._outgoing is not None:
                self._outgoing.acknowledged(packet.packet_id, 0)
            return
        self._send(data)

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing() or self._disconnecting:
            return
        self._out += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._disconnecting:
            self._out.clear()
            return
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(bytes(self._out))
            self._last_out = self._loop.time()
        self._out.clear()

    # ---- reading and flow control ----------------------------------------------------------

    def pause_reading(self) -> None:
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def _rest(self) -> None:
        """Stop reading for `REST_S` after a small read, so the next one brings more: when
        messages trickle in, every read costs a turn of the event loop (a select, a chunk
        through every stage) for a handful of messages."""
        if self._transport is not None and not self._resting:
            self._resting = True
            self._transport.pause_reading()
            self._loop.call_later(REST_S, self._rested)

    def _rested(self) -> None:
        self._resting = False
        if self._transport is not None and not self._paused:
            self._transport.resume_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self._paused:
            self._paused = False
            self._last_in = self._loop.time()
            if self._ping_sent is not None:
                self._ping_sent = self._last_in
            if not self._resting:
                self._transport.resume_reading()

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        options = self.options
        self._send(
            encode_connect(
                options.client_id,
                version=self.version,
                keepalive_s=options.keepalive_s,
                session_expiry_s=options.session_expiry_s,
                maximum_packet_size=MAX_PACKET_SIZE,
                username=options.username,
                password=options.password,
            )
        )

    def data_received(self, data: bytes) -> None:
        if self._disconnecting:
            return
        if self._first_bytes:
            self._first_bytes = False
            if data[0] != CONNACK << 4:  # MQTT: a server's first packet is its CONNACK
                error = f"the server's first bytes are not an MQTT CONNACK: {data[:16]!r}"
                self._protocol_error(MqttProtocolError(error, PROTOCOL_ERROR))
                return
        self._last_in = self._loop.time()
        if len(data) < REST_BELOW_BYTES and self._accepted and not self._paused:
            self._rest()
        try:
            packets = self._decoder.feed(data)
        except MqttProtocolError as error:
            self._protocol_error(error)
            return
        if self._decoder.qos2:
            self._decoder.qos2 = False
            packets = self._exactly_once(packets)
        # The common case: a chunk of PUBLISHes only.
        if self._accepted and all(packet.__class__ is Publish for packet in packets):
            if packets:
                self._on_publishes(cast("list[Publish]", packets))
            return
        batch: list[Publish] = []
        for packet in packets:
            if isinstance(packet, Publish):
                if not self._accepted:
                    self._protocol_error(MqttProtocolError("PUBLISH before CONNACK", 0x82))
                    return
                batch.append(packet)
                continue
            if batch:
                self._on_publishes(batch)
                batch = []
            self._control(packet)
            if self._transport is None or self._transport.is_closing():
                return
        if batch:
            self._on_publishes(batch)

    def _exactly_once(self, packets: list[Packet]) -> list[Packet]:
        """The chunk without the QoS 2 PUBLISHes already received (MQTT §4.3.3: not delivered
        onward twice), whose PUBREC is sent again if it was sent before; the new ones' ids
        are kept until their PUBREL."""
        kept: list[Packet] = []
        for packet in packets:
            if isinstance(packet, Publish) and packet.qos == 2:
                packet_id = packet.packet_id
                if packet_id in self._qos2:
                    if self._qos2[packet_id]:
                        self._send(encode_pubrec(packet_id))
                    continue
                self._qos2[packet_id] = False
            kept.append(packet)
        return kept

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self._connack.done():
            self._connack.set_exception(exc or ClosedBeforeConnackError())
        for pending, what in ((self._subacks, "SUBACK"), (self._unsubacks, "UNSUBACK")):
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"connection lost before the {what}"))
        if self._outgoing is not None:
            self._outgoing.detach(self)
        self._transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        if self._accepted:
            self._on_lost(self)

    # ---- control packets -------------------------------------------------------------------

    def _control(self, packet: object) -> None:
        if isinstance(packet, Puback):
            if self._outgoing is not None:
                self._outgoing.acknowledged(packet.packet_id, packet.reason_code)
        elif isinstance(packet, Pubrel):
            # Released: the id is free again. An id not kept gets its PUBCOMP all the same,
            # or the broker would resend the PUBREL forever.
            self._qos2.pop(packet.packet_id, None)
            self._send(encode_pubcomp(packet.packet_id))
        elif isinstance(packet, Pingresp):
            self._ping_sent = None
        elif isinstance(packet, Connack):
            self._connected(packet)
        elif isinstance(packet, Suback | Unsuback):
            pending = self._subacks if isinstance(packet, Suback) else self._unsubacks
            future = pending.pop(packet.packet_id, None)
            if future is not None and not future.done():
                future.set_result(packet.reason_codes)
        elif isinstance(packet, Disconnect):
            self.disconnect_code = packet.reason_code
            reason = reason_name(packet.reason_code)
            self.disconnect_reason = (
                f"{reason}: {packet.reason_string}" if packet.reason_string else reason
            )
            self.abort()

    def _connected(self, connack: Connack) -> None:
        if self._connack.done():
            self._protocol_error(MqttProtocolError("a second CONNACK", 0x82))
            return
        self._connack.set_result(connack)
        if connack.reason_code >= 0x80:
            return
        self._accepted = True
        properties = connack.properties
        keepalive = properties.get(SERVER_KEEP_ALIVE)
        if isinstance(keepalive, int):
            self._keepalive_s = keepalive
        maximum_qos = properties.get(MAXIMUM_QOS)
        if isinstance(maximum_qos, int):
            self.maximum_qos = maximum_qos
        maximum_size = properties.get(MAXIMUM_PACKET_SIZE)
        if isinstance(maximum_size, int):
            self.maximum_packet_size = maximum_size
        if self._keepalive_s > 0:
            self._keepalive = self._loop.create_task(self._keep_alive(), name="mqtt-keepalive")
        if self._outgoing is not None:
            receive_maximum = properties.get(RECEIVE_MAXIMUM, 65535)
            window = receive_maximum if isinstance(receive_maximum, int) else 65535
            self._outgoing.attach(self, min(window, 1000))

    def _protocol_error(self, error: MqttProtocolError) -> None:
        if not self._connack.done():  # not MQTT at all, maybe: open() raises it
            self._connack.set_exception(error)
        else:
            log.warning("mqtt_protocol_error", error=str(error), reason=reason_name(error.reason))
        self.disconnect_reason = f"protocol error: {error}"
        if self.version == V5 and self._transport is not None:
            self._send(encode_disconnect(error.reason, version=V5))
            self._flush()
            self._transport.close()
        else:
            self.abort()

    async def _keep_alive(self) -> None:
        interval = self._keepalive_s
        while True:
            await asyncio.sleep(interval / 4)
            now = self._loop.time()
            sent = self._ping_sent
            if sent is not None and not self._paused and self._last_in < sent:
                if now - sent >= interval:
                    log.warning("mqtt_keepalive_timeout", waited_s=round(now - sent, 1))
                    self.disconnect_reason = "no answer to PINGREQ"
                    self.abort()
                    return
            elif now - self._last_out >= interval / 2:
                self._ping_sent = now
                self._send(PINGREQ_PACKET)
