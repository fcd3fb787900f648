"""Real Mosquitto and InfluxDB servers for the tests, started as our own child processes.

- ``mosquitto`` and ``influxdb``: one server each for the whole session. Tests share them, so
  each test takes its own ``topic_root`` and ``influx_db`` and never sees another's data.
- ``aedes`` and ``rabbitmq``: the other brokers of the interop tests, one each per session
  (RabbitMQ takes 5-15 s to start), started only by the tests that ask for them.
- ``mosquitto_factory`` and ``influxdb_factory``: start servers of a test's own (each in a fresh
  directory unless given one) for tests that stop, restart or kill them; they end with the test.
- ``prometheus_factory``: a Prometheus of a test's own, scraping the targets it is given.

When a test fails, the log tails of the servers it used are appended to its report. When a
server binary is missing the fixtures fail (never skip), naming the setup to run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from servers import (
    AedesServer,
    InfluxDBServer,
    MosquittoServer,
    RabbitMQServer,
    ServerProcess,
    ServerStartError,
    create_database,
    query,
    quote_ident,
)
from servers.prometheus import PrometheusServer

ServerT = TypeVar("ServerT", bound=ServerProcess)

_LOG_TAIL_LINES = 40


class ServerFactory(Generic[ServerT]):
    """Starts servers of one kind for one test; ``stop_all()`` ends them.

    Call it like the server class, with ``data_dir`` optional: ``factory(port=p)``,
    ``factory(data_dir=other.data_dir)`` (a second server on an earlier one's data).
    """

    def __init__(
        self,
        make: Callable[..., ServerT],
        tmp_path_factory: pytest.TempPathFactory,
        basename: str,
    ) -> None:
        self._make = make
        self._tmp_path_factory = tmp_path_factory
        self._basename = basename
        self.servers: list[ServerT] = []

    def __call__(self, data_dir: Path | None = None, **kwargs: Any) -> ServerT:
        directory = data_dir or self._tmp_path_factory.mktemp(self._basename)
        server = self._make(directory, **kwargs)
        self.servers.append(server)
        _start(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


def _start(server: ServerProcess) -> None:
    try:
        server.start()
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """The session's Mosquitto broker; use a ``topic_root`` of your own on it."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"))
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def aedes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AedesServer]:
    """The session's aedes broker (MQTT 3.1.1, sessions in memory); a ``topic_root`` of your own."""
    server = AedesServer(tmp_path_factory.mktemp("aedes"))
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """The session's RabbitMQ node with its MQTT plugin (3.1.1, `mqtt.prefetch` 10)."""
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq"))
    try:
        server.start(timeout=120)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDBServer]:
    """The session's InfluxDB (auth disabled); use an ``influx_db`` of your own on it."""
    server = InfluxDBServer(tmp_path_factory.mktemp("influxdb"))
    _start(server)
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerFactory[MosquittoServer]]:
    """Start brokers of this test's own: ``mosquitto_factory(extra_conf=...)``."""
    factory = ServerFactory(MosquittoServer, tmp_path_factory, "mosquitto")
    yield factory
    factory.stop_all()


@pytest.fixture
def influxdb_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerFactory[InfluxDBServer]]:
    """Start InfluxDB servers of this test's own: ``influxdb_factory(auth_enabled=True)``."""
    factory = ServerFactory(InfluxDBServer, tmp_path_factory, "influxdb")
    yield factory
    factory.stop_all()


@pytest.fixture
def prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerFactory[PrometheusServer]]:
    """Start Prometheus servers of this test's own: ``prometheus_factory(targets=["h:p"])``."""
    factory = ServerFactory(PrometheusServer, tmp_path_factory, "prometheus")
    yield factory
    factory.stop_all()


@pytest.fixture
def influx_db(influxdb: InfluxDBServer) -> Iterator[str]:
    """A fresh, uniquely named database on the session's InfluxDB, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:8]}"
    create_database(influxdb.url, name)
    yield name
    query(influxdb.url, f"DROP DATABASE {quote_ident(name)}")


@pytest.fixture
def topic_root() -> str:
    """A topic root no other test uses, e.g. ``t1a2b3c4d/lighting``."""
    return f"t{uuid.uuid4().hex[:8]}/lighting"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, and add server log tails to a failure's report.

    The reports are stored as ``item.rep_setup``, ``item.rep_call`` and ``item.rep_teardown``
    for fixtures that need to know how the test went. The log tails go into the failing
    report's sections, which pytest prints under the failure (output printed by a fixture's
    teardown would be hidden, the teardown itself having passed).
    """
    report = yield
    setattr(item, f"rep_{report.when}", report)
    if report.failed:
        for server in _servers_used(item):
            title = f"{server.name} log tail ({server.log_path})"
            report.sections.append((title, server.log_tail(_LOG_TAIL_LINES)))
    return report


def _servers_used(item: pytest.Item) -> list[ServerProcess]:
    """The servers among the item's fixture values, directly or through a factory."""
    found: list[ServerProcess] = []
    values: dict[str, Any] = getattr(item, "funcargs", {})
    for value in values.values():
        candidates = value.servers if isinstance(value, ServerFactory) else [value]
        for server in candidates:
            if isinstance(server, ServerProcess) and server not in found:
                found.append(server)
    return found
