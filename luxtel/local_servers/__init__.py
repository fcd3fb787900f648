"""Mosquitto and InfluxDB run as luxtel's own child processes, on free loopback ports.

``luxtel up`` starts its local stack with them (so they are installed with luxtel, here in the
application package), and the test fixtures and benchmarks start theirs (as ``servers``, the
test harness's name for this package, which is not installed). Never touches the machine's own
services::

    with MosquittoServer(tmp / "mqtt") as broker, InfluxDBServer(tmp / "influx") as influx:
        create_database(influx.url, "lighting")
        ...
"""

from luxtel.local_servers.influxdb import (
    InfluxDBError,
    InfluxDBServer,
    create_database,
    query,
    quote_ident,
    write_points,
)
from luxtel.local_servers.mosquitto import MosquittoServer
from luxtel.local_servers.ports import free_port
from luxtel.local_servers.process import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ServerError,
    ServerProcess,
    ServerStartError,
)

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "InfluxDBError",
    "InfluxDBServer",
    "MosquittoServer",
    "ServerError",
    "ServerProcess",
    "ServerStartError",
    "create_database",
    "free_port",
    "query",
    "quote_ident",
    "write_points",
]
