"""What `luxtel up` shows while it runs: the pipeline's counters and the fleet as InfluxDB sees
it, refreshed twice a second on a terminal, or — piped, or written to a log — where the data is
once and then a status line every few seconds (a panel printed into a pipe cannot be refreshed:
it would stand there frozen at its first values)."""

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from influx.client import InfluxWriter
from influx.errors import InfluxError

RATE_WINDOW_S = 10.0
TITLE = "luxtel up — a simulated city"

_LATEST_PER_DEVICE = (
    'SELECT last("power_w") AS "power_w", last("lamp_on") AS "lamp_on" FROM "telemetry" '
    'WHERE time > {since}ms GROUP BY "device_id"'
)
_HOW_TO_QUERY = (
    "query    curl -G {url}/query --data-urlencode db={db} "
    "--data-urlencode 'q=SELECT * FROM telemetry ORDER BY time DESC LIMIT 5'"
)


@dataclass(frozen=True, slots=True)
class FleetNow:
    """The latest reading of every luminaire heard from within one reporting window."""

    at_ms: int | None = None
    reporting: int = 0
    lamps_on: int = 0
    power_w: float = 0.0


async def fleet_now(writer: InfluxWriter, window_s: int) -> FleetNow:
    """Lamps on and power drawn at the newest reading's time, from InfluxDB."""
    try:
        newest = await writer.query('SELECT last("power_w") FROM "telemetry"')
        series = newest["results"][0].get("series")
        if not series:
            return FleetNow()
        at_ms = int(series[0]["values"][0][0])
        since = at_ms - window_s * 1000
        answer = await writer.query(_LATEST_PER_DEVICE.format(since=int(since)))
    except (InfluxError, KeyError, IndexError, ValueError):
        return FleetNow()
    power = 0.0
    lamps_on = reporting = 0
    for device in answer["results"][0].get("series", []):
        _, power_w, lamp_on = device["values"][0]
        reporting += 1
        power += float(power_w or 0.0)
        lamps_on += bool(lamp_on)
    return FleetNow(at_ms=at_ms, reporting=reporting, lamps_on=lamps_on, power_w=power)


def _sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


@dataclass
class Counters:
    """The pipeline's counters, and the reading rate between two looks."""

    received: float = 0.0
    written: float = 0.0
    spooled: float = 0.0
    spool_bytes: float = 0.0
    rejected: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0
    influx_up: bool = True
    mqtt_connected: bool = False
    firing: dict[str, float] = field(default_factory=dict)
    """Alerts firing now, by rule (the rules process's gauges, relayed to this registry)."""
    rules_lag: float = 0.0
    """Observations journaled for the rules and not evaluated yet."""
    rules_lag_s: float = 0.0
    """Age of the oldest of them (its append time, wall clock)."""
    _history: list[tuple[float, float]] = field(default_factory=list)

    def update(self, registry: CollectorRegistry) -> None:
        now = time.monotonic()
        self.received = _sample(registry, "luxtel_messages_received_total")
        self.written = _sample(registry, "luxtel_points_written_total")
        self.spooled = _sample(registry, "luxtel_points_spooled_total")
        self.spool_bytes = _sample(registry, "luxtel_spool_bytes")
        self.influx_up = _sample(registry, "luxtel_influx_up") == 1
        self.mqtt_connected = _sample(registry, "luxtel_mqtt_connected") == 1
        self.rules_lag = _sample(registry, "luxtel_rules_lag_observations")
        self.rules_lag_s = _sample(registry, "luxtel_rules_lag_seconds")
        rejected: dict[str, float] = {}
        firing: dict[str, float] = {}
        for metric in registry.collect():
            if metric.name == "luxtel_rejected":
                for sample in metric.samples:
                    if sample.name == "luxtel_rejected_total":
                        rejected[sample.labels["reason"]] = sample.value
            elif metric.name == "luxtel_alerts_firing":  # by rule and severity: summed by rule
                for sample in metric.samples:
                    rule = sample.labels["rule"]
                    firing[rule] = firing.get(rule, 0.0) + sample.value
        self.rejected, self.firing = rejected, firing
        # Over the last ten seconds: readings come in bursts (each luminaire's interval).
        self._history.append((now, self.written))
        while len(self._history) > 2 and now - self._history[0][0] > RATE_WINDOW_S:
            self._history.pop(0)
        first_at, first_written = self._history[0]
        if now > first_at:
            self.rate = (self.written - first_written) / (now - first_at)


@dataclass(frozen=True, slots=True)
class Where:
    """Where the data is, for the "how to look" lines."""

    mqtt_url: str
    influx_url: str
    database: str
    state_dir: str
    topic_root: str
    rules: str | None = None
    """The rules file the engine runs, None when it is off."""
    rules_state_dir: str | None = None
    """The pipeline's state_dir, where the engine keeps its alerts."""


def _alerts_text(counters: Counters, where: Where) -> str:
    if where.rules is None:
        return "— (rules off: no rules file; set [rules] path)"
    total = sum(counters.firing.values())
    rules = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counters.firing.items()) if v)
    return f"{total:,.0f}" + (f"  ({rules})" if rules else "")


def _lag_text(counters: Counters) -> str:
    if not counters.rules_lag:
        return "none (every reading evaluated)"
    return f"{counters.rules_lag:,.0f} readings, {counters.rules_lag_s:,.1f} s behind"


def render(counters: Counters, fleet: FleetNow, where: Where, sim: str) -> Panel:
    """The whole view."""
    flow = Table.grid(padding=(0, 2))
    flow.add_column(style="bold")
    flow.add_column()
    flow.add_row("points/s", f"{counters.rate:,.0f}")
    flow.add_row("messages received", f"{counters.received:,.0f}")
    flow.add_row("points written", f"{counters.written:,.0f}")
    rejected = sum(counters.rejected.values())
    reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counters.rejected.items()))
    flow.add_row("rejected", f"{rejected:,.0f}" + (f"  ({reasons})" if reasons else ""))
    spool = f"{counters.spool_bytes / 1e6:,.1f} MB" if counters.spool_bytes else "empty"
    flow.add_row("spool", spool)
    flow.add_row("broker", "connected" if counters.mqtt_connected else "[red]reconnecting")
    flow.add_row("InfluxDB", "up" if counters.influx_up else "[red]away — spooling")
    flow.add_row("alerts firing", _alerts_text(counters, where))
    if where.rules is not None:
        flow.add_row("rules lag", _lag_text(counters))
    city = Table.grid(padding=(0, 2))
    city.add_column(style="bold")
    city.add_column()
    city.add_row("simulated time", sim)
    if fleet.at_ms is not None:
        newest = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(fleet.at_ms / 1000))
        city.add_row("newest reading", newest)
    city.add_row("luminaires reporting", f"{fleet.reporting:,}")
    city.add_row("lamps on", f"{fleet.lamps_on:,}")
    city.add_row("power now", f"{fleet.power_w / 1000:,.1f} kW")
    how = Table.grid()
    how.add_column()
    for line in where_lines(where):
        how.add_row(line)
    return Panel(Group(flow, "", city, "", how), title=TITLE, expand=False)


def where_lines(where: Where) -> list[str]:
    """Where the data is and how to look at it, a line each."""
    lines = [
        f"MQTT     {where.mqtt_url}   topics {where.topic_root}/#",
        f"InfluxDB {where.influx_url}   database {where.database}",
        _HOW_TO_QUERY.format(url=where.influx_url, db=where.database),
        f"state    {where.state_dir} (spool, dead letter, servers' data)",
    ]
    if where.rules is not None:
        lines.append(f"rules    {where.rules} (the city map: measurement luminaire_state)")
        if where.rules_state_dir is not None:
            lines.append(f"alerts   luxtel alerts list --state-dir {where.rules_state_dir}")
    lines.append("stop     Ctrl-C (the data stays for the next `luxtel up`)")
    return lines


def status_line(counters: Counters, fleet: FleetNow, sim: str) -> str:
    """The state of things now, on one line (for output that is not a terminal)."""
    broker = "connected" if counters.mqtt_connected else "reconnecting"
    influx = "up" if counters.influx_up else "away (spooling)"
    return f"{sim} · broker {broker} · InfluxDB {influx} · {summary_line(counters, fleet)}"


def summary_line(counters: Counters, fleet: FleetNow) -> str:
    """One line for a log that is not a terminal."""
    line = (
        f"points/s {counters.rate:,.0f} · written {counters.written:,.0f} · rejected "
        f"{sum(counters.rejected.values()):,.0f} · lamps on {fleet.lamps_on:,} of "
        f"{fleet.reporting:,} · power {fleet.power_w / 1000:,.1f} kW"
    )
    if counters.firing:  # the rules engine lists every rule, firing or not
        line += f" · alerts firing {sum(counters.firing.values()):,.0f}"
    return line
