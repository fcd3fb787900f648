"""The MQTT shell: paho-mqtt 2.x clients driven from one thread through one selector.

paho's external-loop API (``on_socket_open`` / ``on_socket_register_write`` … and ``loop_read``,
``loop_write``, ``loop_misc``) lets one thread and one ``selectors`` object serve one client or
two thousand, with no thread per client and no lock contention: the publishing code and the network
code take turns on the same thread, so callbacks never race with publishes.

"Published" means acknowledged: at QoS 1 a message counts once its PUBACK is back (paho's
``on_publish``). A window bounds the messages in flight over all connections; when it is full the
publisher serves the sockets until acknowledgements free a slot. Measured on loopback against
Mosquitto (one connection, QoS 1, the same payload), this loop sent 9,500–11,000 msg/s where
``loop_start()`` plus ``wait_for_publish()`` on the oldest of 1,000 in flight sent 7,800 (and 3,700
with paho's own in-flight limit at 1,000, see ``_client``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulator.readings import WILL_PAYLOAD, topic


class PublishError(RuntimeError):
    """The broker cannot be reached or refused the simulator's connection."""


class PublishStoppedError(Exception):
    """The stop event was set while a publish waited for room in the in-flight window."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://…`` (8883, TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"MQTT URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"MQTT URL {url!r} has a bad port") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(slots=True)
class _ClientState:
    name: str
    inflight: int = 0
    connected: bool = False
    refused: str | None = None
    dropped: bool = False
    """Dropped on purpose (an ``offline`` fault): do not reconnect it until told."""
    retry_at: float = 0.0


class SocketLoop:
    """One selector serving many paho clients from the calling thread.

    Writes are not left to the selector: a client with data to send (paho's ``register_write``)
    is written to on the next ``poll``, and only a socket whose buffer is full gets write interest
    in the selector. That saves two ``epoll_ctl`` calls per message when messages go out on many
    connections, one or two at a time.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._next_misc = 0.0
        self._to_write: dict[mqtt.Client, None] = {}
        self._blocked: set[mqtt.Client] = set()
        self.clients: list[mqtt.Client] = []

    def attach(self, client: mqtt.Client) -> None:
        client.on_socket_open = self._on_open
        client.on_socket_close = self._on_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.clients.append(client)

    def _on_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _on_close(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._to_write.pop(client, None)
        self._blocked.discard(client)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)

    def _on_register_write(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        self._to_write[client] = None

    def _on_unregister_write(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._to_write.pop(client, None)
        if client in self._blocked:
            self._blocked.discard(client)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.modify(sock, selectors.EVENT_READ, client)

    def _write_pending(self) -> None:
        for client in list(self._to_write):
            if client in self._blocked:
                continue
            client.loop_write()
            sock = client.socket()
            if client in self._to_write and sock is not None:
                self._blocked.add(client)
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.modify(
                        sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client
                    )

    def poll(self, timeout: float) -> None:
        """Write what is pending, then serve every ready socket, waiting up to ``timeout`` s."""
        self._write_pending()
        if self._selector.get_map():
            ready = self._selector.select(timeout)
        else:
            time.sleep(timeout)
            ready = []
        for key, mask in ready:
            client: mqtt.Client = key.data
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            for client in self.clients:
                client.loop_misc()

    def close(self) -> None:
        self._selector.close()


class FleetPublisher:
    """The fleet's connections: one per luminaire (each with its Last Will), or one shared.

    Call ``connect`` first; then ``publish`` / ``drop`` / ``rejoin``; then ``close`` (which waits
    for every acknowledgement and disconnects cleanly, so no Last Will fires).
    """

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        qos: int = 1,
        window: int = 1000,
        client_id: str = "luxtel-sim",
        keepalive: int = 60,
        stop: threading.Event | None = None,
    ) -> None:
        self.broker = broker
        self.qos = qos
        self.window = window
        self.client_id = client_id
        self.keepalive = keepalive
        self.stop = stop
        self.loop = SocketLoop()
        self.inflight = 0
        self.acked = 0
        self._devices: dict[str, mqtt.Client] = {}
        self._lost: set[mqtt.Client] = set()
        self._shared: mqtt.Client | None = None

    def _client(self, client_id: str, will_topic: str | None) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            userdata=_ClientState(client_id),
        )
        # 0: no paho limit. The window above bounds what is in flight, and with a limit paho rescans
        # every in-flight message on each PUBACK (O(window) per acknowledgement).
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set_context(ssl.create_default_context())
        if will_topic is not None:
            client.will_set(will_topic, WILL_PAYLOAD, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.loop.attach(client)
        return client

    @staticmethod
    def _on_connect(
        _client: mqtt.Client, state: _ClientState, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            state.refused = str(reason)
        else:
            state.connected = True

    def _on_disconnect(
        self, client: mqtt.Client, state: _ClientState, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        state.connected = False
        state.retry_at = time.monotonic() + 1.0
        self._lost.add(client)

    def _on_publish(
        self, _client: mqtt.Client, state: _ClientState, _mid: int, _reason: Any, _props: Any
    ) -> None:
        state.inflight -= 1
        self.inflight -= 1
        self.acked += 1

    def connect(
        self,
        devices: Iterable[tuple[str, str]],
        topic_root: str,
        *,
        shared: bool,
        timeout: float = 30.0,
    ) -> None:
        """Open the connections: ``devices`` are ``(zone, device_id)`` pairs for per-device mode."""
        clients: list[mqtt.Client] = []
        if shared:
            self._shared = self._client(self.client_id, None)
            clients.append(self._shared)
        else:
            for zone, device_id in devices:
                client = self._client(device_id, topic(topic_root, zone, device_id, "status"))
                self._devices[device_id] = client
                clients.append(client)
        for client in clients:
            self._open(client)
            self.loop.poll(0)
        deadline = time.monotonic() + timeout
        while not all(c.user_data_get().connected for c in clients):
            refused = next((c.user_data_get() for c in clients if c.user_data_get().refused), None)
            if refused is not None:
                raise PublishError(
                    f"{self.broker} refused client {refused.name}: {refused.refused}"
                )
            if time.monotonic() > deadline:
                raise PublishError(
                    f"{self.broker} did not accept all connections within {timeout:g} s"
                )
            self.loop.poll(0.05)

    def _open(self, client: mqtt.Client) -> None:
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(f"cannot connect to {self.broker}: {exc}") from exc

    def sender(self, device_id: str | None) -> mqtt.Client:
        if device_id is not None and device_id in self._devices:
            return self._devices[device_id]
        if self._shared is None:
            raise PublishError("no shared connection for a message that is not a luminaire's own")
        return self._shared

    def publish(
        self,
        client: mqtt.Client,
        topic_name: str,
        payload: bytes,
        retain: bool,
        *,
        stoppable: bool = True,
    ) -> None:
        """Queue one message, first serving the sockets until the in-flight window has room.

        Raises ``PublishStoppedError`` if the stop event is set while it waits (and ``stoppable``).
        """
        while self.inflight >= self.window:
            if stoppable and self.stop is not None and self.stop.is_set():
                raise PublishStoppedError
            self.serve(0.1)
        state: _ClientState = client.user_data_get()
        info = client.publish(topic_name, payload, self.qos, retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(
                f"paho refused to publish on {topic_name}: {mqtt.error_string(info.rc)}"
            )
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos == 0:
            return
        state.inflight += 1
        self.inflight += 1

    def drop(self, device_id: str) -> None:
        """Break the luminaire's TCP connection without a DISCONNECT: the broker fires its Will."""
        client = self._devices[device_id]
        state: _ClientState = client.user_data_get()
        self._settle(client)
        state.dropped = True
        sock = client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        client.loop_read()

    def rejoin(self, device_id: str, timeout: float = 10.0) -> None:
        """Reconnect the luminaire (its Will is set again); if the broker is away, keep retrying
        in ``serve`` like any lost connection, its messages queued meanwhile."""
        client = self._devices[device_id]
        state: _ClientState = client.user_data_get()
        state.dropped = False
        try:
            client.reconnect()
        except (OSError, ssl.SSLError):
            state.retry_at = time.monotonic() + 1.0
            self._lost.add(client)
            return
        deadline = time.monotonic() + timeout
        while not state.connected and time.monotonic() < deadline:
            self.loop.poll(0.05)

    def _settle(self, client: mqtt.Client, timeout: float = 10.0) -> None:
        """Serve the sockets until this client's messages are all acknowledged."""
        deadline = time.monotonic() + timeout
        while client.user_data_get().inflight > 0 and time.monotonic() < deadline:
            self.loop.poll(0.05)

    def _reconnect_lost(self) -> None:
        """Reconnect what the broker dropped (not those dropped on purpose), once a second."""
        if not self._lost:
            return
        now = time.monotonic()
        for client in list(self._lost):
            state: _ClientState = client.user_data_get()
            if state.connected or state.dropped:
                self._lost.discard(client)
                continue
            if now < state.retry_at:
                continue
            state.retry_at = now + 1.0
            with contextlib.suppress(OSError, ssl.SSLError):
                client.reconnect()

    def serve(self, timeout: float) -> None:
        self.loop.poll(timeout)
        self._reconnect_lost()

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every message is acknowledged; False if some were not within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while self.inflight > 0:
            if time.monotonic() > deadline:
                return False
            self.serve(0.05)
        return True

    def close(self, timeout: float = 60.0) -> bool:
        """Drain, then disconnect every connection cleanly; returns whether all was acknowledged."""
        drained = self.drain(timeout)
        for client in self.loop.clients:
            if client.user_data_get().connected:
                client.disconnect()
        deadline = time.monotonic() + 5.0
        while (
            any(c.socket() is not None for c in self.loop.clients) and time.monotonic() < deadline
        ):
            self.loop.poll(0.05)
        self.loop.close()
        return drained
