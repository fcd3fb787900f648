"""The composition root of `luxtel run`: builds the stages from the settings and runs them.

Resources are entered downstream first (InfluxDB and the sink before the MQTT source), and on
stop the source stops first so everything it read drains through to InfluxDB or the spool and
is acknowledged before the connection closes. With a rules file, the rules engine runs in a
process of its own (`rules.runtime.process`), reading the journal the sink appends each batch's
observations to before acknowledging it (`rules.runtime.journal`), and is finished once the sink has
drained.
"""

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import structlog
from prometheus_client import start_http_server

from energy.upkeep import Upkeep
from influx.client import InfluxTarget, InfluxWriter
from influx.errors import FatalInfluxError, InfluxRejectedError, InfluxUnavailableError
from ingest.chunk_queue import ChunkQueue
from ingest.deadletters import DeadLetterBounds, DeadLetterLog
from ingest.decode import Limits
from ingest.disk_full import DiskFullError
from ingest.messages import Batch, Inbound
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import MqttSource, MqttTarget
from ingest.rate_limit import RateLimiter
from ingest.sink import Sink
from ingest.spool import Spool
from ingest.stages import batch_stage, decode_stage
from luxtel.rollups import rollup_upkeep
from luxtel.settings import ConfigError, Settings
from mqtt.errors import MqttConnectError
from rules.runtime.config import RulesConfig
from rules.runtime.journal_writer import JournalWriter
from rules.runtime.process import RulesProcess

if TYPE_CHECKING:
    from ingest.adapters.router import SourceRouter

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


def energy_target(settings: Settings) -> InfluxTarget:
    """`influx_target` with the energy work's own timeout (`energy.query_timeout_s`): the
    rollups' and reports' statements read a city's hour, day or month."""
    return replace(influx_target(settings), timeout_s=settings.energy.query_timeout_s)


def rules_config(settings: Settings) -> RulesConfig:
    """The rules process's own config, from the settings (`settings.rules.path` must be set)."""
    rules = settings.rules
    if rules.path is None:
        raise ValueError("the rules process runs only with a rules file (rules.path)")
    return RulesConfig(
        rules_path=rules.path,
        notify_path=rules.notify,
        inventory_path=settings.inventory.path,
        state_dir=settings.state_dir,
        zones=settings.mqtt.zones,
        tick_s=rules.tick_s,
        state_interval_s=rules.state_interval_s,
        outbox_max_bytes=rules.outbox_max_bytes,
        outbox_keep_s=rules.outbox_keep_s,
        gather_max_bytes=rules.gather_max_bytes,
        log_level=settings.log.level,
        log_format=settings.log.format,
    )


def check_sources(settings: Settings) -> None:
    """The sources file must load, with the inventory its sources need (`luxtel sources check
    FILE` shows every problem); ConfigError naming `sources.path` otherwise. Only what runs the
    pipeline checks it: loading the settings does not, so the crews' and auditors' commands
    work while a sources file is being fixed."""
    if settings.sources.path is None:
        return
    from ingest.adapters.build import SourcesError

    try:
        own_broker_targets(source_router(settings), settings.mqtt.topic_root)
    except SourcesError as error:
        raise ConfigError(f"sources.path: {error}") from None


def source_router(settings: Settings) -> "SourceRouter | None":
    """The sources beyond the contract, when there is a sources file (`check_sources`;
    imported only then: without one, `luxtel run` starts as before)."""
    if settings.sources.path is None:
        return None
    from ingest.adapters.build import source_router as build_router

    return build_router(settings.sources.path, settings.inventory.path, settings.mqtt.topic_root)


def own_broker_targets(sources: "SourceRouter | None", topic_root: str) -> list[MqttTarget]:
    """The connections of the sources that name their own broker."""
    if not sources:
        return []
    from ingest.adapters.build import own_broker_targets as targets

    return targets(sources, topic_root)


def mqtt_target(settings: Settings, sources: "SourceRouter | None" = None) -> MqttTarget:
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
        source_filters=tuple(sources.topic_filters) if sources is not None else (),
    )


def _first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) task groups' exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def _forward(
    inbox: "asyncio.Queue[list[Inbound] | None]",
    outbox: "asyncio.Queue[list[Inbound] | None]",
    sources: int,
) -> None:
    """Chunks of the sources' own connections into the decoder's inbox, until each has ended."""
    while sources:
        chunk = await inbox.get()
        if chunk is None:
            sources -= 1
        else:
            await outbox.put(chunk)


@dataclass
class Pipeline:
    """One running ingest pipeline. `run()` returns once `stop` is set and all is drained."""

    settings: Settings
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_port: int | None = None
    source: MqttSource = field(init=False)
    own_sources: list[MqttSource] = field(init=False, default_factory=list)
    sink: Sink = field(init=False)
    rules: RulesProcess | None = field(init=False, default=None)
    upkeep: Upkeep | None = field(init=False, default=None)

    async def run(self) -> None:
        """Run until `stop` is set; raise PipelineFailedError on a fatal error."""
        try:
            await self._run()
        except* (FatalInfluxError, MqttConnectError, DiskFullError) as group:
            raise PipelineFailedError(str(_first_leaf(group))) from None

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
        received: asyncio.Queue[list[Inbound] | None] = ChunkQueue(
            RECEIVED_QUEUE_CHUNKS, settings.ingest.received_queue_bytes
        )
        decoded: asyncio.Queue[Batch | None] = asyncio.Queue(DECODED_QUEUE_FRAGMENTS)
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(BATCH_QUEUE)
        sources = source_router(settings)
        limits = Limits(
            sources=sources if sources else None,
            topic_root=settings.mqtt.topic_root,
            max_payload_bytes=settings.ingest.max_payload_bytes,
            max_clock_skew_s=settings.ingest.max_clock_skew_s,
            observe=settings.rules.path is not None,
            hand_over=settings.rules.path is not None,
            payload_kept_bytes=settings.deadletter.payload_kept_bytes,
        )
        journal = None
        if settings.rules.path is not None:
            journal = JournalWriter(
                settings.state_dir / "journal",
                settings.rules.journal_max_bytes,
                self.metrics.registry,
                defer_max_s=settings.rules.defer_max_s,
            )
        async with (
            InfluxWriter(influx_target(settings)) as writer,
            InfluxWriter(energy_target(settings)) as energy_writer,
        ):
            await self._prepare_database(writer)
            self.upkeep = rollup_upkeep(settings, energy_writer)
            if self.upkeep is not None:
                await self.upkeep.prepare()  # before the sink writes: see Upkeep.prepare
            source = MqttSource(
                mqtt_target(settings, sources),
                received,
                self.metrics,
                output_queue_bytes=settings.ingest.output_queue_bytes,
            )
            # Sources with a broker of their own: one QoS 0 connection each, forwarded into
            # `received` (their end markers are not: the city's connection's ends the decoder).
            own: asyncio.Queue[list[Inbound] | None] = asyncio.Queue(RECEIVED_QUEUE_CHUNKS)
            own_sources = [
                MqttSource(target, own, self.metrics)
                for target in (
                    own_broker_targets(sources, settings.mqtt.topic_root) if sources else []
                )
            ]
            dead_letters = DeadLetterLog(
                settings.state_dir / "deadletter.jsonl",
                self.metrics,
                publish=source.publish,
                bounds=DeadLetterBounds(
                    settings.deadletter.max_bytes,
                    settings.deadletter.segment_bytes,
                    settings.deadletter.payload_kept_bytes,
                ),
            )
            sink = Sink(
                writer,
                spool,
                dead_letters,
                self.metrics,
                source.ack,
                create_database=settings.influx.create_database,
                journal=journal.admit if journal is not None else None,
                written=None if self.upkeep is None else self.upkeep.written,
                backlogged=journal.backlogged if journal is not None else None,
            )
            self.sink = sink
            rules = self._rules_process(source, journal)
            async with asyncio.TaskGroup() as group:
                sink_task = group.create_task(sink.run(batches), name="sink")
                rules_task = None
                if rules is not None:
                    rules_task = group.create_task(rules.run(), name="rules")
                group.create_task(
                    batch_stage(
                        decoded,
                        batches,
                        settings.ingest.batch_size,
                        settings.ingest.flush_interval_s,
                        self.metrics,
                        settings.ingest.idle_flush_s,
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
                    ),
                    name="decoder",
                )
                group.create_task(source.run(), name="mqtt-source")
                for extra in own_sources:
                    group.create_task(extra.run(), name=f"mqtt-source-{extra.target.client_id}")
                forwarder = (
                    group.create_task(_forward(own, received, len(own_sources)), name="forward")
                    if own_sources
                    else None
                )
                upkeep_stop = asyncio.Event()
                if self.upkeep is not None:
                    group.create_task(self.upkeep.run(upkeep_stop), name="rollup-upkeep")
                self.source = source
                self.own_sources = own_sources
                self.ready.set()
                await self.stop.wait()
                log.info("stopping", action="draining to InfluxDB")
                sink.stopping()  # before the source: a full disk may hold its queue full
                for extra in own_sources:
                    await extra.stop()
                if forwarder is not None:
                    await forwarder
                await source.stop()
                await sink_task
                upkeep_stop.set()
                if rules is not None and rules_task is not None:
                    rules.close()  # the sink has drained: everything is journaled
                    await rules_task
                await source.close()
                for extra in own_sources:
                    await extra.close()
        if journal is not None:
            journal.close()
        log.info("stopped")

    def _rules_process(
        self, source: MqttSource, journal: JournalWriter | None
    ) -> RulesProcess | None:
        """The rules engine's process, when there is a rules file (checked here, before the
        process starts: a file that does not load raises RuleFileError, file:line)."""
        settings = self.settings
        if settings.rules.path is None or journal is None:
            return None
        self.rules = RulesProcess(
            rules_config(settings),
            influx_target(settings),
            source.publish,
            self.metrics.registry,
            journal,
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
        """Until the source holds a broker connection (for tests and `luxtel up`), and the
        sources with a broker of their own theirs."""
        await self.ready.wait()
        await self.source.wait_connected()
        for extra in self.own_sources:
            await extra.wait_connected()
