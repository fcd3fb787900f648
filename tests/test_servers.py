"""The servers package against the real Mosquitto and InfluxDB binaries."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from servers import (
    AedesServer,
    InfluxDBError,
    InfluxDBServer,
    MosquittoServer,
    RabbitMQServer,
    ServerProcess,
    ServerStartError,
    create_database,
    query,
    write_points,
)
from tests.support import descendants, process_gone

pytestmark = pytest.mark.integration

WAIT = 15.0
HTTP = build_opener(ProxyHandler({}))  # straight to loopback, whatever http_proxy says


class MqttClient:
    """A paho client with its network loop in a thread, collecting the messages it receives."""

    def __init__(
        self,
        broker: MosquittoServer,
        client_id: str = "",
        clean_session: bool = True,
        manual_ack: bool = False,
    ) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            manual_ack=manual_ack,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._connected.wait(WAIT), f"no CONNACK from {broker.url}"

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(WAIT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payloads: list[bytes]) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged every message."""
        infos = [self.client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(WAIT)
            assert info.is_published()

    def receive(self, count: int) -> list[bytes]:
        payloads: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while len(payloads) < count:
            remaining = deadline - time.monotonic()
            try:
                payloads.append(bytes(self.messages.get(timeout=max(remaining, 0.01)).payload))
            except queue.Empty:
                break
        return payloads

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.session_present = flags.session_present
        self._connected.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(msg)


def _payloads(count: int) -> list[bytes]:
    return [f"m{i}".encode() for i in range(count)]


def _queue_while_offline(
    broker: MosquittoServer, client_id: str, topic_root: str, payloads: list[bytes]
) -> None:
    """Subscribe a persistent session to ``topic_root/#``, disconnect it, then publish for it."""
    with MqttClient(broker, client_id, clean_session=False) as subscriber:
        subscriber.subscribe(f"{topic_root}/#")
    with MqttClient(broker) as publisher:
        publisher.publish(f"{topic_root}/lamp-1/energy", payloads)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _databases(server: InfluxDBServer) -> list[str]:
    series = query(server.url, "SHOW DATABASES", auth=server.admin_auth)["results"][0]["series"]
    return [row[0] for row in series[0].get("values", [])]


def _ping(server: InfluxDBServer) -> int:
    with HTTP.open(f"{server.url}/ping", timeout=WAIT) as response:
        status: int = response.status
        return status


# Mosquitto


def test_mosquitto_round_trip(mosquitto: MosquittoServer, topic_root: str) -> None:
    topic = f"{topic_root}/lamp-1/status"
    with MqttClient(mosquitto) as subscriber, MqttClient(mosquitto) as publisher:
        subscriber.subscribe(f"{topic_root}/#")
        publisher.publish(topic, [b"on"])
        assert subscriber.receive(1) == [b"on"]
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_queued_messages_reach_a_reconnecting_persistent_session(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    client_id = f"ingester-{topic_root.split('/')[0]}"
    sent = _payloads(5)
    _queue_while_offline(mosquitto, client_id, topic_root, sent)

    with MqttClient(mosquitto, client_id, clean_session=False) as subscriber:
        assert subscriber.session_present is True
        assert sorted(subscriber.receive(len(sent))) == sorted(sent)


def test_queue_holds_more_than_mosquittos_default_1000(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    """With Mosquitto's default max_queued_messages, messages after the 1000th are dropped."""
    client_id = f"ingester-{topic_root.split('/')[0]}"
    sent = _payloads(2500)
    _queue_while_offline(mosquitto, client_id, topic_root, sent)

    with MqttClient(mosquitto, client_id, clean_session=False) as subscriber:
        received = subscriber.receive(len(sent))
    assert len(received) == len(sent)
    assert sorted(received) == sorted(sent)


def test_unacknowledged_messages_are_not_capped(
    mosquitto: MosquittoServer, topic_root: str
) -> None:
    """Mosquitto's default max_inflight_messages (20) stops sending until the client acks."""
    sent = _payloads(3000)
    with (
        MqttClient(mosquitto, manual_ack=True) as ingester,
        MqttClient(mosquitto) as publisher,
    ):
        ingester.subscribe(f"{topic_root}/#")
        publisher.publish(f"{topic_root}/lamp-1/energy", sent)
        assert len(ingester.receive(len(sent))) == len(sent)


def test_queued_messages_survive_a_broker_restart(
    mosquitto_factory: Callable[..., MosquittoServer], topic_root: str
) -> None:
    broker = mosquitto_factory()
    port, first_pid = broker.port, broker.pid
    sent = _payloads(10)
    _queue_while_offline(broker, "ingester", topic_root, sent)

    assert broker.stop() == 0
    assert (broker.data_dir / "mosquitto.db").exists()
    broker.start()
    assert broker.port == port
    assert broker.pid != first_pid

    with MqttClient(broker, "ingester", clean_session=False) as subscriber:
        assert subscriber.session_present is True
        assert sorted(subscriber.receive(len(sent))) == sorted(sent)


def test_autosave_keeps_queued_messages_through_a_broker_crash(
    mosquitto_factory: Callable[..., MosquittoServer], topic_root: str
) -> None:
    """autosave_interval 1: a SIGKILL loses only what arrived since the last save."""
    broker = mosquitto_factory()
    sent = _payloads(10)
    _queue_while_offline(broker, "ingester", topic_root, sent)
    published_at = time.time_ns()
    db = broker.data_dir / "mosquitto.db"
    deadline = time.monotonic() + WAIT
    while not (db.exists() and db.stat().st_mtime_ns > published_at):
        assert time.monotonic() < deadline, "mosquitto did not autosave its database"
        time.sleep(0.1)

    broker.kill()
    broker.start()
    with MqttClient(broker, "ingester", clean_session=False) as subscriber:
        assert sorted(subscriber.receive(len(sent))) == sorted(sent)


def test_mosquitto_config_comments_every_option(tmp_path: Path) -> None:
    _assert_every_option_commented(MosquittoServer(tmp_path).config_text())


def test_extra_conf_is_applied(mosquitto_factory: Callable[..., MosquittoServer]) -> None:
    broker = mosquitto_factory(extra_conf="allow_anonymous false\n")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    refused = threading.Event()

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            refused.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert refused.wait(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()


# InfluxDB


def test_influxdb_write_and_query(influxdb: InfluxDBServer, influx_db: str) -> None:
    assert _ping(influxdb) == 204
    params = urlencode({"db": influx_db, "precision": "ms"})
    request = Request(  # noqa: S310
        f"{influxdb.url}/write?{params}",
        data=b"lamp,lamp_id=L1 power_w=42.5 1700000000123",
        method="POST",
    )
    with HTTP.open(request, timeout=WAIT) as response:
        assert response.status == 204

    answer = query(influxdb.url, "SELECT power_w FROM lamp", db=influx_db, epoch="ms")
    series = answer["results"][0]["series"][0]
    assert series["values"] == [[1700000000123, 42.5]]


def test_influxdb_keeps_data_across_restart_and_kill(
    influxdb_factory: Callable[..., InfluxDBServer],
) -> None:
    server = influxdb_factory()
    port, rpc_port = server.port, server.rpc_port
    create_database(server.url, "lighting")
    write_points(server.url, "lighting", ["lamp,lamp_id=L1 power_w=1 1700000000000"])

    server.restart()
    write_points(server.url, "lighting", ["lamp,lamp_id=L1 power_w=2 1700000001000"])
    server.kill()
    server.start()

    assert (server.port, server.rpc_port) == (port, rpc_port)
    answer = query(server.url, "SELECT power_w FROM lamp", db="lighting", epoch="ms")
    assert answer["results"][0]["series"][0]["values"] == [
        [1700000000000, 1.0],
        [1700000001000, 2.0],
    ]


def test_influxdb_auth(influxdb_factory: Callable[..., InfluxDBServer]) -> None:
    server = influxdb_factory(auth_enabled=True, admin_password="s3cret")
    with pytest.raises(InfluxDBError) as refused:
        query(server.url, "SHOW DATABASES")
    assert refused.value.status == 401

    assert server.admin_auth == ("admin", "s3cret")
    create_database(server.url, "lighting", auth=server.admin_auth)
    server.restart()
    assert _databases(server) == ["lighting"]

    server.stop()
    wrong = InfluxDBServer(server.data_dir, auth_enabled=True, admin_password="wrong")
    with pytest.raises(ServerStartError, match="cannot log in"):
        wrong.start()
    assert not wrong.running


def test_influxdb_generates_and_keeps_an_admin_password(
    influxdb_factory: Callable[..., InfluxDBServer],
) -> None:
    first = influxdb_factory(auth_enabled=True)
    password = first.admin_password
    assert password
    first.stop()
    again = influxdb_factory(data_dir=first.data_dir, auth_enabled=True)
    assert again.admin_password == password
    query(again.url, "SHOW USERS", auth=again.admin_auth)


def test_influxdb_config_comments_every_option(tmp_path: Path) -> None:
    _assert_every_option_commented(InfluxDBServer(tmp_path).config_text())


# Both, and the process handling


def test_two_servers_of_each_kind_at_once(
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb_factory: Callable[..., InfluxDBServer],
    topic_root: str,
) -> None:
    brokers = [mosquitto_factory(), mosquitto_factory()]
    influxes = [influxdb_factory(), influxdb_factory()]
    ports = [s.port for s in brokers] + [s.port for s in influxes]
    ports += [s.rpc_port for s in influxes]
    assert len(set(ports)) == len(ports)

    for broker in brokers:
        with MqttClient(broker) as subscriber, MqttClient(broker) as publisher:
            subscriber.subscribe(f"{topic_root}/#")
            publisher.publish(f"{topic_root}/x", [broker.url.encode()])
            assert subscriber.receive(1) == [broker.url.encode()]

    create_database(influxes[0].url, "only_here")
    assert _databases(influxes[0]) == ["only_here"]
    assert _databases(influxes[1]) == []


def test_kill_leaves_no_process(
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb_factory: Callable[..., InfluxDBServer],
) -> None:
    servers: list[ServerProcess] = [mosquitto_factory(), influxdb_factory()]
    for server in servers:
        pid = server.pid
        assert pid is not None
        assert server.running
        server.kill()
        assert not server.running
        assert _gone(pid)


def test_port_taken_by_someone_else(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        fixed = MosquittoServer(tmp_path / "fixed", port=taken)
        with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
            fixed.start()

        chosen = MosquittoServer(tmp_path / "chosen")
        chosen._port = taken  # as if another process took the port free_port() gave us
        with chosen:
            assert chosen.port != taken
            assert chosen.running


def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    server = MosquittoServer(tmp_path, extra_conf="no_such_option true")
    with pytest.raises(ServerStartError, match="no_such_option") as failure:
        server.start()
    assert str(server.log_path) in str(failure.value)
    assert not server.running


def test_missing_binary_asks_for_the_setup(tmp_path: Path) -> None:
    class Elsewhere(MosquittoServer):
        binary: ClassVar[Path] = tmp_path / "no-mosquitto-here"

    with pytest.raises(ServerStartError, match="setup"):
        Elsewhere(tmp_path).start()


class _Stubborn(ServerProcess):
    """A "server" that ignores SIGTERM, to exercise the SIGKILL fallback."""

    name: ClassVar[str] = "stubborn"
    binary: ClassVar[Path] = Path(sys.executable)
    package: ClassVar[str] = "python3"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, "stubborn.log")

    @property
    def url(self) -> str:
        return "stubborn://"

    def _write_config(self) -> None:
        pass

    def _command(self) -> list[str]:
        code = (
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n"
        )
        return [str(self.binary), "-c", code]

    def _is_ready(self) -> bool:
        return self.log_tail(1) == "ready"


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = _Stubborn(tmp_path).start()
    pid = server.pid
    assert pid is not None
    assert server.stop(timeout=0.5) == -signal.SIGKILL
    assert _gone(pid)


def test_servers_do_not_outlive_the_interpreter(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from servers import InfluxDBServer, MosquittoServer
        broker = MosquittoServer(Path({str(tmp_path / "m")!r})).start()
        influx = InfluxDBServer(Path({str(tmp_path / "i")!r})).start()
        print(broker.pid, influx.pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + WAIT
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids), done.stderr


def _assert_every_option_commented(text: str) -> None:
    """Every option line sits under a comment, within its block of lines."""
    commented = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("["):
            commented = False
        elif stripped.startswith("#"):
            commented = True
        else:
            assert commented, f"option without a comment: {line!r}"


def test_rabbitmq_and_aedes_leave_no_process_behind(tmp_path: Path) -> None:
    """RabbitMQ runs as a shell, an Erlang VM, its epmd and helpers: `stop()` ends them all,
    and `kill()` too (one process group); aedes is one node process."""
    rabbit = RabbitMQServer(tmp_path / "rabbitmq")
    rabbit.start(timeout=120)
    assert rabbit.pid is not None
    family = [rabbit.pid, *descendants(rabbit.pid)]
    assert any("epmd" in Path(f"/proc/{pid}/cmdline").read_text() for pid in family[1:])
    rabbit.stop()
    assert all(process_gone(pid) for pid in family)
    rabbit.start(timeout=120)  # the same ports and data again
    assert rabbit.pid is not None
    family = [rabbit.pid, *descendants(rabbit.pid)]
    rabbit.kill()
    wait = time.monotonic() + 10
    while not all(process_gone(pid) for pid in family) and time.monotonic() < wait:
        time.sleep(0.1)
    assert all(process_gone(pid) for pid in family)
    with AedesServer(tmp_path / "aedes") as aedes:
        assert aedes.pid is not None
        pid = aedes.pid
    assert process_gone(pid)
