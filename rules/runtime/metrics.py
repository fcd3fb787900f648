"""The rules engine's own health, for Prometheus, in the registry it is given (the pipeline's,
`IngestMetrics.registry`, so `/metrics` shows ingest and rules together) or one of its own.

- `luxtel_rules_observations_total`: readings and statuses evaluated;
- `luxtel_rules_evaluation_seconds`: one evaluation cycle (a batch of observations, or a timer
  tick), rules and grouping, without SQLite;
- `luxtel_rules_condition_errors_total{rule}`: observations a rule could not be evaluated on
  (a field not sent, a type error);
- `luxtel_alerts_firing{rule,severity}`, `luxtel_alerts_pending{rule,severity}`: alerts firing
  now, and waiting for their `for`; every rule of the file is listed (0 when none);
- `luxtel_notifications_sent_total{receiver,channel}`,
  `luxtel_notifications_failed_total{receiver,channel}`: outbox items delivered, and delivery
  attempts that failed (retried unless refused for good); `channel` is apprise, alertmanager
  or influx (receiver `influxdb`: the `alerts` points);
- `luxtel_rules_outbox_due`: outbox items not delivered yet (due now or waiting for a retry);
- `luxtel_rules_outbox_bytes{state}`: the outbox's bytes (estimated, `rules.runtime.store`),
  `delivered` (delivered or given up: pruned past the bound) and `undelivered` (never pruned);
  `luxtel_rules_outbox_max_bytes`: the bound (`rules.outbox_max_bytes`);
  `luxtel_rules_outbox_over_bound`: 1 while undelivered rows alone pass it;
- `luxtel_rules_state_points_total`, `luxtel_rules_state_failures_total`: `luminaire_state`
  points written for the city map, and snapshots given up on an InfluxDB error (the next one
  replaces it).
"""

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rules.evaluation.alerts import Alert
from rules.language.loader import RuleSet
from rules.runtime.store import OutboxSize


class RulesMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.observations = Counter(
            "luxtel_rules_observations", "Readings and statuses evaluated.", registry=r
        )
        self.evaluation_seconds = Histogram(
            "luxtel_rules_evaluation_seconds",
            "Duration of one evaluation cycle (a batch of observations or a timer tick).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.condition_errors = Counter(
            "luxtel_rules_condition_errors",
            "Observations a rule's condition could not be evaluated on.",
            ["rule"],
            registry=r,
        )
        self.firing = Gauge(
            "luxtel_alerts_firing", "Alerts firing now.", ["rule", "severity"], registry=r
        )
        self.pending = Gauge(
            "luxtel_alerts_pending",
            "Alerts whose condition holds, waiting for their `for`.",
            ["rule", "severity"],
            registry=r,
        )
        self.sent = Counter(
            "luxtel_notifications_sent",
            "Notifications (and alert points) delivered.",
            ["receiver", "channel"],
            registry=r,
        )
        self.failed = Counter(
            "luxtel_notifications_failed",
            "Delivery attempts that failed (each is retried, unless refused for good).",
            ["receiver", "channel"],
            registry=r,
        )
        self.outbox_due = Gauge(
            "luxtel_rules_outbox_due", "Outbox items not yet delivered.", registry=r
        )
        self.outbox_bytes = Gauge(
            "luxtel_rules_outbox_bytes",
            "The outbox's bytes (estimated): delivered (pruned past the bound) and undelivered.",
            ["state"],
            registry=r,
        )
        self.outbox_max_bytes = Gauge(
            "luxtel_rules_outbox_max_bytes", "The outbox's bound in bytes.", registry=r
        )
        self.outbox_over_bound = Gauge(
            "luxtel_rules_outbox_over_bound",
            "1 while undelivered outbox rows alone pass the bound (they are never pruned).",
            registry=r,
        )
        self.state_points = Counter(
            "luxtel_rules_state_points",
            "luminaire_state points written (each luminaire's state, for the city map).",
            registry=r,
        )
        self.state_failures = Counter(
            "luxtel_rules_state_failures",
            "luminaire_state snapshots given up on an InfluxDB error (the next replaces it).",
            registry=r,
        )
        self._errors_seen: dict[str, int] = {}

    def alerts(self, rules: RuleSet, alerts: Iterable[Alert]) -> None:
        """Set the firing and pending gauges from the active alerts (every rule listed)."""
        firing: dict[tuple[str, str], int] = {}
        pending: dict[tuple[str, str], int] = {}
        for rule in rules.rules:
            firing[(rule.name, rule.severity)] = 0
            pending[(rule.name, rule.severity)] = 0
        for alert in alerts:
            counts = pending if alert.fired_at is None else firing
            key = (alert.rule, alert.severity)
            counts[key] = counts.get(key, 0) + 1
        for (rule_name, severity), count in firing.items():
            self.firing.labels(rule_name, severity).set(count)
        for (rule_name, severity), count in pending.items():
            self.pending.labels(rule_name, severity).set(count)

    def outbox(self, size: OutboxSize) -> None:
        self.outbox_bytes.labels("delivered").set(size.delivered_bytes)
        self.outbox_bytes.labels("undelivered").set(size.undelivered_bytes)
        self.outbox_max_bytes.set(size.max_bytes)
        self.outbox_over_bound.set(1 if size.over else 0)

    def errors(self, totals: Mapping[str, int]) -> None:
        """Bring the error counters up to the evaluator's running totals."""
        for rule_name, total in totals.items():
            seen = self._errors_seen.get(rule_name, 0)
            if total > seen:
                self.condition_errors.labels(rule_name).inc(total - seen)
                self._errors_seen[rule_name] = total
