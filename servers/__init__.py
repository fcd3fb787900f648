"""Mosquitto and InfluxDB run as our own child processes, on free loopback ports (and, for the
interop tests, the aedes and RabbitMQ brokers).

Used by the test fixtures and by ``luxtel up``; never touches the machine's own services::

    with MosquittoServer(tmp / "mqtt") as broker, InfluxDBServer(tmp / "influx") as influx:
        create_database(influx.url, "lighting")
        ...
"""

from servers.aedes import AedesServer
from servers.influxdb import (
    InfluxDBError,
    InfluxDBServer,
    create_database,
    query,
    quote_ident,
    write_points,
)
from servers.mosquitto import MosquittoServer
from servers.ports import free_port
from servers.process import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ServerError,
    ServerProcess,
    ServerStartError,
)
from servers.rabbitmq import RabbitMQServer

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "AedesServer",
    "InfluxDBError",
    "InfluxDBServer",
    "MosquittoServer",
    "RabbitMQServer",
    "ServerError",
    "ServerProcess",
    "ServerStartError",
    "create_database",
    "free_port",
    "query",
    "quote_ident",
    "write_points",
]
