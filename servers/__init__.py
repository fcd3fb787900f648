"""The test harness's servers: Mosquitto and InfluxDB as child processes on free loopback ports,
and the other brokers of the interop tests (aedes, RabbitMQ).

The code of the first two is `luxtel.local_servers` (installed with luxtel: `luxtel up` starts its
local stack with it); this package, which is not installed (tests and benchmarks find it from the
repository root: pytest's `pythonpath = ["."]`), keeps the name the fixtures use, and holds the
interop brokers, which only the tests start.
"""

from luxtel.local_servers import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    InfluxDBError,
    InfluxDBServer,
    MosquittoServer,
    ServerError,
    ServerProcess,
    ServerStartError,
    create_database,
    free_port,
    query,
    quote_ident,
    write_points,
)
from servers.aedes import AedesServer
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
