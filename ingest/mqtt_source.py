"""The MQTT source: a persistent QoS 1 session whose messages are acknowledged only once safe.

paho-mqtt 2.x is driven from the asyncio loop through its socket callbacks (no network thread),
with manual acknowledgements: nothing is acknowledged on receipt, so nothing acknowledged can be
lost. Backpressure stops reading the socket when the outbox is full — TCP then holds the broker
back, and the broker holds the rest in the session queue — instead of queueing without bound or
dropping. The connection is re-made with capped, jittered backoff and re-subscribed every time.
"""

import asyncio
import contextlib
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.acks import AckTracker, Delivery
from ingest.backoff import backoff_delay
from ingest.errors import MqttConnectError
from ingest.messages import Inbound
from ingest.metrics import IngestMetrics

log = structlog.get_logger("luxtel.mqtt")

READ_BURST = 256
"""Packets read per readable event at most: one hand-off downstream per burst, not per message."""

OUTPUT_QUEUE_LIMIT = 10_000

_FATAL_CONNACK = {
    # MQTT 5 reason codes (3.1.1 return codes 2, 4, 5 are mapped to these by paho).
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
    protocol: str = "5"
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

    def __repr__(self) -> str:
        return f"MqttTarget(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


class MqttSource:
    """Receives `{root}/#` into `outbox` as lists of `Inbound`; `None` marks the end."""

    def __init__(
        self,
        target: MqttTarget,
        outbox: "asyncio.Queue[list[Inbound] | None]",
        metrics: IngestMetrics,
    ) -> None:
        self.target = target
        self._outbox = outbox
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._rng = random.Random()
        self._client = self._make_client()
        self._tracker = AckTracker(self._send_ack)
        self._chunk: list[Inbound] = []
        self._sock: socket.socket | None = None
        self._reading = False
        self._paused = False
        self._stopping = False
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closed = asyncio.Event()
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._handoff: asyncio.Task[None] | None = None

    # ---- public surface ------------------------------------------------------------------

    def ack(self, deliveries: list[Delivery]) -> None:
        """The content of these messages is safe: acknowledge them (in arrival order)."""
        for delivery in deliveries:
            self._tracker.done(delivery)
        self._metrics.unacked.set(self._tracker.outstanding)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish luxtel's own output (dead letters, alerts). paho queues it across reconnects."""
        self._client.publish(topic, payload, qos=qos)

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
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
                delay = backoff_delay(
                    attempt, self.target.reconnect_min_s, self.target.reconnect_max_s, self._rng
                )
                attempt += 1
                log.warning(
                    "mqtt_connect_failed",
                    broker=self._where,
                    error=str(error) or type(error).__name__,
                    retry_in_s=round(delay, 2),
                    attempt=attempt,
                )
                await self._sleep_unless_stopping(delay)
                continue
            attempt = 0
            await self._lost.wait()
            if self._stopping:
                break
            delay = backoff_delay(
                0, self.target.reconnect_min_s, self.target.reconnect_max_s, self._rng
            )
            log.warning("mqtt_connection_lost", broker=self._where, retry_in_s=round(delay, 2))
            await self._sleep_unless_stopping(delay)

    async def stop(self) -> None:
        """Stop taking messages and hand what was read downstream, then mark the end."""
        self._stopping = True
        self._pause_reading()
        if self._handoff is not None:
            await self._handoff
        if self._chunk:
            chunk, self._chunk = self._chunk, []
            await self._outbox.put(chunk)
        await self._outbox.put(None)
        self._lost.set()

    async def close(self, timeout_s: float = 5.0) -> None:
        """After downstream has drained: send the owed acknowledgements and disconnect."""
        deadline = self._loop.time() + timeout_s
        # paho has no "all written" callback: poll its outgoing buffer briefly.
        while self._sock is not None and self._client.want_write() and self._loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._sock is not None:
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - self._loop.time())):
                    await self._closed.wait()
        self._detach()

    # ---- connection ------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        scheme = "mqtts" if self.target.tls else "mqtt"
        return f"{scheme}://{self.target.host}:{self.target.port}"

    def _make_client(self) -> paho.Client:
        target = self.target
        v5 = target.protocol == "5"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=target.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(
                ca_certs=str(target.ca_file) if target.ca_file else None,
                certfile=str(target.cert_file) if target.cert_file else None,
                keyfile=str(target.key_file) if target.key_file else None,
            )
            client.tls_insecure_set(not target.tls_check_hostname)
        # luxtel's own output waiting for a connection; the dead-letter file is the record, so
        # past this bound the MQTT copies are not queued (paho returns MQTT_ERR_QUEUE_SIZE).
        client.max_queued_messages_set(OUTPUT_QUEUE_LIMIT)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    async def _connect(self) -> None:
        target = self.target
        self._lost.clear()
        self._connack = self._loop.create_future()
        kwargs: dict[str, Any] = {"keepalive": target.keepalive_s}
        if target.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = target.session_expiry_s
            properties.ReceiveMaximum = 65535
            kwargs.update(clean_start=False, properties=properties)
        await self._loop.run_in_executor(
            None, lambda: self._client.connect(target.host, target.port, **kwargs)
        )
        try:
            async with asyncio.timeout(target.connect_timeout_s):
                code = await self._connack
        except TimeoutError:
            self._client.disconnect()
            raise TimeoutError("no CONNACK from the broker") from None
        if code.is_failure:
            self._client.disconnect()
            sentence = _FATAL_CONNACK.get(code.value)
            if sentence is not None:
                raise MqttConnectError(f"{self._where}: {sentence} ({code})")
            raise ConnectionError(f"the broker refused the connection ({code})")
        if target.protocol == "5":
            options = SubscribeOptions(qos=target.qos, retainHandling=1)
            self._client.subscribe(f"{target.topic_root}/#", options=options)
        else:
            self._client.subscribe(f"{target.topic_root}/#", qos=target.qos)
        self._connected.set()
        self._metrics.mqtt_connected.set(1)
        self._metrics.mqtt_connects.inc()
        log.info(
            "mqtt_connected",
            broker=self._where,
            client_id=target.client_id,
            topics=f"{target.topic_root}/#",
        )

    async def _sleep_unless_stopping(self, delay: float) -> None:
        step = 0.1
        remaining = delay
        while remaining > 0 and not self._stopping:
            await asyncio.sleep(min(step, remaining))
            remaining -= step

    # ---- paho callbacks (on the loop thread, except socket open/write during connect) -----

    def _on_connect(
        self, _c: paho.Client, _u: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        if not code.is_failure:
            self._tracker.new_connection()
        future = self._connack
        if future is not None and not future.done():
            self._in_loop(future.set_result, code)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        self._tracker.new_connection()
        self._connected.clear()
        self._metrics.mqtt_connected.set(0)
        self._metrics.unacked.set(0)
        if not self._stopping and code.is_failure:
            log.warning("mqtt_disconnected", broker=self._where, reason=str(code))
        self._in_loop(self._lost.set)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        # The raw topic bytes: a non-UTF-8 topic must reach the dead letter, not raise here.
        topic = message._topic.decode("utf-8", "backslashreplace")
        delivery = self._tracker.received(message.mid) if message.qos > 0 else None
        self._chunk.append(
            Inbound(
                topic, bytes(message.payload), bool(message.retain), datetime.now(UTC), delivery
            )
        )

    def _on_socket_open(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        self._in_loop(self._attach, sock)

    def _on_socket_close(self, _c: paho.Client, _u: Any, _sock: Any) -> None:
        self._in_loop(self._detach)

    def _on_register_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        self._in_loop(self._add_writer, sock)

    def _on_unregister_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer, sock)

    def _in_loop(self, function: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            function(*args)
        else:
            self._loop.call_soon_threadsafe(function, *args)

    # ---- socket plumbing ---------------------------------------------------------------------

    def _attach(self, sock: socket.socket) -> None:
        if sock.fileno() < 0:
            return
        self._sock = sock
        self._closed.clear()
        if not self._stopping:
            self._resume_reading()
        if self._misc_task is None:
            self._misc_task = self._loop.create_task(self._misc(), name="mqtt-keepalive")

    def _detach(self) -> None:
        self._pause_reading()
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(self._sock)
        self._sock = None
        self._closed.set()
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None

    def _add_writer(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            self._loop.add_writer(sock, self._on_writable)

    def _remove_writer(self, sock: socket.socket) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _on_writable(self) -> None:
        self._client.loop_write()

    async def _misc(self) -> None:
        """paho's timer duties (keepalive pings, retries), once a second as paho asks."""
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(1)

    def _resume_reading(self) -> None:
        if self._sock is not None and not self._reading and not self._paused:
            self._loop.add_reader(self._sock, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock)
        self._reading = False

    def _on_readable(self) -> None:
        client = self._client
        for _ in range(READ_BURST):
            before = len(self._chunk)
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or len(self._chunk) == before:
                break
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._loop.call_soon(self._on_readable)
        if self._chunk:
            self._hand_off()

    def _hand_off(self) -> None:
        chunk, self._chunk = self._chunk, []
        self._metrics.received.inc(len(chunk))
        self._metrics.unacked.set(self._tracker.outstanding)
        try:
            self._outbox.put_nowait(chunk)
        except asyncio.QueueFull:
            self._paused = True
            self._pause_reading()
            self._handoff = self._loop.create_task(
                self._put_then_resume(chunk), name="mqtt-handoff"
            )

    async def _put_then_resume(self, chunk: list[Inbound]) -> None:
        await self._outbox.put(chunk)
        self._paused = False
        self._handoff = None
        if not self._stopping:
            self._resume_reading()

    def _send_ack(self, mid: int) -> None:
        self._client.ack(mid, 1)
