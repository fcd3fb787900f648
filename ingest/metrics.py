"""luxtel's own health, for Prometheus: one registry per pipeline, so several pipelines (tests)
can live in one process."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """The counters and gauges of the ingest path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter("luxtel_messages_received", "MQTT messages received.", registry=r)
        self.retained_skipped = Counter(
            "luxtel_retained_skipped",
            "Retained messages replayed by the broker, not written again.",
            registry=r,
        )
        self.rejected = Counter(
            "luxtel_rejected", "Messages or batch elements dead-lettered.", ["reason"], registry=r
        )
        self.unknown_fields = Counter(
            "luxtel_unknown_fields", "Unknown payload fields ignored.", registry=r
        )
        self.points_written = Counter(
            "luxtel_points_written", "Points written to InfluxDB.", registry=r
        )
        self.points_spooled = Counter(
            "luxtel_points_spooled",
            "Points written to the spool while InfluxDB was away.",
            registry=r,
        )
        self.points_replayed = Counter(
            "luxtel_points_replayed", "Spooled points later written to InfluxDB.", registry=r
        )
        self.write_retries = Counter(
            "luxtel_write_retries", "InfluxDB writes retried after a failure.", registry=r
        )
        self.write_seconds = Histogram(
            "luxtel_write_seconds",
            "Duration of one batch write to InfluxDB.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.queue_depth = Gauge(
            "luxtel_queue_depth", "Items waiting between two stages.", ["queue"], registry=r
        )
        self.spool_bytes = Gauge("luxtel_spool_bytes", "Bytes in the spool.", registry=r)
        self.spool_segments = Gauge("luxtel_spool_segments", "Batches in the spool.", registry=r)
        self.influx_up = Gauge(
            "luxtel_influx_up", "1 when the last InfluxDB write succeeded.", registry=r
        )
        self.mqtt_connected = Gauge(
            "luxtel_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self.mqtt_connects = Counter(
            "luxtel_mqtt_connects", "Successful broker connections.", registry=r
        )
        self.unacked = Gauge(
            "luxtel_unacked_messages", "Messages received and not yet acknowledged.", registry=r
        )
        self.deadletter_bytes = Gauge(
            "luxtel_deadletter_bytes",
            "Bytes of dead letter on disk (deadletter.jsonl and its rotated segments).",
            registry=r,
        )
        self.deadletter_discarded_records = Counter(
            "luxtel_deadletter_discarded_records",
            "Dead-letter records deleted by rotation to keep the dead letter under its cap.",
            registry=r,
        )
        self.deadletter_discarded_bytes = Counter(
            "luxtel_deadletter_discarded_bytes",
            "Bytes of dead letter deleted by rotation to keep it under its cap.",
            registry=r,
        )
        self.disk_full = Gauge(
            "luxtel_disk_full",
            "1 while writing the spool or the dead letter waits for disk space (ENOSPC, EDQUOT); "
            "the messages are held unacknowledged meanwhile.",
            ["what"],
            registry=r,
        )
        self.mqtt_output_dropped = Counter(
            "luxtel_mqtt_output_dropped",
            "luxtel's own MQTT publications (dead-letter copies, alerts) dropped because the "
            "outgoing queue was full (count or bytes); the dead-letter file keeps the record.",
            registry=r,
        )
        self.mqtt_output_bytes = Gauge(
            "luxtel_mqtt_output_bytes",
            "Bytes of luxtel's own MQTT publications queued or in flight.",
            registry=r,
        )
