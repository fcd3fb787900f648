"""The composition root of `luxtel run`: builds the stages from the settings and runs them.

Resources are entered downstream first (InfluxDB and the sink before the MQTT source), and on
stop the source stops first so everything it read drains through to InfluxDB or the spool and
is acknowledged before the connection closes. With a rules file, the rules engine runs in a
process of its own (`rules.process`), fed by the decoder without ever being waited for, and
finished once the sink has drained.
"""

import asyncio
from dataclasses import dataclass, field

import structlog
from prometheus_client import start_http_server

from energy.upkeep import Upkeep
from ingest.deadletters import DeadLetterLog
from ingest.decode import Limits
from ingest.errors import (
    FatalInfluxError,
    InfluxRejectedError,
    InfluxUnavailableError,
    MqttConnectError,
)
from ingest.influx import InfluxTarget, InfluxWriter
from ingest.messages import Batch, Inbound
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import MqttSource, MqttTarget
from ingest.rate_limit import RateLimiter
from ingest.sink import Sink
from ingest.spool import Spool
from ingest.stages import batch_stage, decode_stage
from luxtel.rollups import rollup_upkeep
from luxtel.settings import Settings
from models import Observation
from rules.process import RulesProcess

log = structlog.get_logger("luxtel")

RECEIVED_QUEUE_CHUNKS = 64
DECODED_QUEUE_FRAGMENTS = 64
BATCH_QUEUE = 4


class PipelineFailedError(Exception):
    """The pipeline stopped on an error only an operator can fix."""


def influx_target(settings: Settings) -> InfluxTarget:
    influx = settings.influx
    return InfluxTarget(
        url=influx.url,
        database=influx.database,
        retention_policy=influx.retention_policy,
        token=influx.token_value(),
        username=influx.username,
        password=influx.password_value(),
        timeout_s=influx.timeout_s,
    )


def mqtt_target(settings: Settings) -> MqttTarget:
    mqtt = settings.mqtt
    return MqttTarget(
        host=mqtt.host,
        port=mqtt.port,
        topic_root=mqtt.topic_root,
        client_id=mqtt.client_id,
        qos=mqtt.qos,
        protocol=mqtt.protocol,
        session_expiry_s=mqtt.session_expiry_s,
        keepalive_s=mqtt.keepalive_s,
        tls=mqtt.tls,
        ca_file=mqtt.ca_file,
        cert_file=mqtt.cert_file,
        key_file=mqtt.key_file,
        tls_check_hostname=mqtt.tls_check_hostname,
        username=mqtt.username,
        password=mqtt.password_value(),
        reconnect_max_s=mqtt.reconnect_max_s,
        zones=mqtt.zones,
    )


@dataclass
class Pipeline:
    """One running ingest pipeline. `run()` returns once `stop` is set and all is drained."""

    settings: Settings
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_port: int | None = None
    source: MqttSource = field(init=False)
    sink: Sink = field(init=False)
    rules: RulesProcess | None = field(init=False, default=None)
    upkeep: Upkeep | None = field(init=False, default=None)

    async def run(self) -> None:
        """Run until `stop` is set; raise PipelineFailedError on a fatal error."""
        try:
            await self._run()
        except* (FatalInfluxError, MqttConnectError) as group:
            raise PipelineFailedError(str(group.exceptions[0])) from None

    async def _run(self) -> None:
        settings = self.settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        server = None
        if settings.metrics.enabled:
            server, _ = start_http_server(
                settings.metrics.port, settings.metrics.host, registry=self.metrics.registry
            )
            self.metrics_port = server.server_port
            log.info(
                "metrics_serving", url=f"http://{settings.metrics.host}:{self.metrics_port}/metrics"
            )
        try:
            await self._run_stages()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()

    async def _run_stages(self) -> None:
        settings = self.settings
        spool = Spool(settings.state_dir / "spool", settings.ingest.spool_max_bytes)
        dead_letters = DeadLetterLog(settings.state_dir / "deadletter.jsonl", self.metrics)
        received: asyncio.Queue[list[Inbound] | None] = asyncio.Queue(RECEIVED_QUEUE_CHUNKS)
        decoded: asyncio.Queue[Batch | None] = asyncio.Queue(DECODED_QUEUE_FRAGMENTS)
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(BATCH_QUEUE)
        limits = Limits(
            topic_root=settings.mqtt.topic_root,
            max_payload_bytes=settings.ingest.max_payload_bytes,
            max_clock_skew_s=settings.ingest.max_clock_skew_s,
            observe=settings.rules.path is not None,
        )
        observations: asyncio.Queue[list[Observation]] | None = None
        if settings.rules.path is not None:
            observations = asyncio.Queue(settings.rules.queue_size)
        async with InfluxWriter(influx_target(settings)) as writer:
            await self._prepare_database(writer)
            self.upkeep = rollup_upkeep(settings, writer)
            source = MqttSource(mqtt_target(settings), received, self.metrics)
            dead_letters.set_publisher(source.publish)
            sink = Sink(
                writer,
                spool,
                dead_letters,
                self.metrics,
                source.ack,
                create_database=settings.influx.create_database,
                written=None if self.upkeep is None else self.upkeep.dirty.note,
            )
            self.sink = sink
            rules = self._rules_process(source)
            async with asyncio.TaskGroup() as group:
                sink_task = group.create_task(sink.run(batches), name="sink")
                rules_task = None
                if rules is not None and observations is not None:
                    rules_task = group.create_task(rules.run(observations), name="rules")
                group.create_task(
                    batch_stage(
                        decoded,
                        batches,
                        settings.ingest.batch_size,
                        settings.ingest.flush_interval_s,
                        self.metrics,
                    ),
                    name="batcher",
                )
                group.create_task(
                    decode_stage(
                        received,
                        decoded,
                        limits,
                        self.metrics,
                        self._limiter(),
                        observers=observations,
                    ),
                    name="decoder",
                )
                group.create_task(source.run(), name="mqtt-source")
                upkeep_stop = asyncio.Event()
                if self.upkeep is not None:
                    group.create_task(self.upkeep.run(upkeep_stop), name="rollup-upkeep")
                self.source = source
                self.ready.set()
                await self.stop.wait()
                log.info("stopping", action="draining to InfluxDB")
                await source.stop()
                await sink_task
                upkeep_stop.set()
                if rules is not None and rules_task is not None:
                    rules.close()  # the decoder has ended: the rest goes to the rules process
                    await rules_task
                await source.close()
        log.info("stopped")

    def _rules_process(self, source: MqttSource) -> RulesProcess | None:
        """The rules engine's process, when there is a rules file (checked here, before the
        process starts: a file that does not load raises RuleFileError, file:line)."""
        settings = self.settings
        if settings.rules.path is None:
            return None
        self.rules = RulesProcess(
            settings,
            influx_target(settings),
            source.publish,
            self.metrics.registry,
            self.metrics.observations_dropped,
        )
        return self.rules

    def _limiter(self) -> RateLimiter | None:
        ingest = self.settings.ingest
        if ingest.device_rate_per_s == 0:
            return None
        return RateLimiter(ingest.device_rate_per_s, ingest.device_burst)

    async def _prepare_database(self, writer: InfluxWriter) -> None:
        if not self.settings.influx.create_database:
            return
        try:
            await writer.create_database()
        except InfluxUnavailableError as error:
            log.warning("influx_unavailable_at_start", error=str(error), action="will spool")
        except InfluxRejectedError as error:
            log.warning(
                "database_not_created",
                error=str(error),
                hint="on InfluxDB 2.x/3.x create the bucket and its v1 mapping (see README)",
            )

    async def wait_connected(self) -> None:
        """Until the source holds a broker connection (for tests and `luxtel up`)."""
        await self.ready.wait()
        await self.source.wait_connected()
