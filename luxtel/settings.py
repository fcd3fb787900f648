"""luxtel's configuration: one TOML file, every key overridable as `LUXTEL_<SECTION>__<KEY>`.

Sources, strongest first: the environment, then the file, then the defaults declared here (each
documented where it is declared; `luxtel config example` prints them as a commented TOML file).
Secrets are `SecretStr` — never printed, logged or shown in `--help` — and may also be read from
a file (`password_file`, `token_file`) so they need not sit in the environment.
"""

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from models import is_identifier

ENV_PREFIX = "LUXTEL_"


class ConfigError(Exception):
    """A configuration that cannot work: one sentence naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(inline: SecretStr | None, file: Path | None, key: str) -> str | None:
    if file is not None:
        try:
            return file.read_text().strip()
        except OSError as error:
            raise ValueError(f"cannot read {key}_file {str(file)!r}: {error.strerror}") from None
    return inline.get_secret_value() if inline is not None else None


class MqttSettings(_Section):
    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://host:port, or mqtts://host:port for TLS.",
    )
    username: str | None = Field(default=None, description="Broker username, if it wants one.")
    password: SecretStr | None = Field(
        default=None, description="Broker password (better: LUXTEL_MQTT__PASSWORD or a file)."
    )
    password_file: Path | None = Field(default=None, description="File holding the password.")
    client_id: str = Field(
        default="luxtel",
        description="Client id of the persistent session; one per luxtel instance.",
    )
    topic_root: str = Field(
        default="lighting", description="luxtel subscribes to {root}/# (or to its zones below it)."
    )
    # NoDecode: the environment's value reaches `_check_zones` as text, so that a plain
    # comma-separated list works there too (pydantic-settings would insist on JSON).
    zones: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="The zones this instance takes, when a city is shared out over several "
        "luxtel instances (one set of zones and one client_id each): it subscribes to "
        "{root}/{zone}/+/+ for each instead of {root}/#, and its rules watch only the "
        "inventory's luminaires of these zones. Empty: every zone. In the environment: "
        'comma-separated (north,centre) or JSON (["north", "centre"]).',
    )
    qos: Literal[0, 1] = Field(default=1, description="Subscription QoS; 1 loses nothing.")
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto",
        description="MQTT version: auto tries 5 and falls back to 3.1.1 when the broker "
        "refuses 5 (RabbitMQ 3.x, aedes), saying so once in the log. With 3.1.1 the broker's "
        "max_inflight_messages limits how many unacknowledged messages luxtel may hold; "
        "raise it on the broker.",
    )
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="MQTT 5: how long the broker keeps the session."
    )
    keepalive_s: int = Field(default=30, ge=5, le=65535, description="MQTT keepalive.")
    ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mqtts://).")
    key_file: Path | None = Field(default=None, description="Client key (mqtts://).")
    tls_check_hostname: bool = Field(
        default=True, description="Check the broker's certificate names its host."
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between reconnect attempts."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r} must look like mqtt://host:port or mqtts://host:port")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; set username and password instead")
        return url

    @field_validator("topic_root")
    @classmethod
    def _check_root(cls, root: str) -> str:
        if not root or any(ch in root for ch in "+#\0") or root[0] == "/" or root[-1] == "/":
            raise ValueError(f"{root!r} must be a plain topic, without wildcards or outer slashes")
        if root == "luxtel" or root.startswith("luxtel/"):
            raise ValueError("must not be under luxtel/, which holds luxtel's own output")
        return root

    @field_validator("zones", mode="before")
    @classmethod
    def _check_zones(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError(f"{text!r} is not a JSON list of zones") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError('must be a list of zones, e.g. ["north", "centre"]')
        zones: dict[str, None] = {}
        for zone in value:
            if not isinstance(zone, str) or not is_identifier(zone):
                raise ValueError(
                    f"zone {zone!r} is not 1-64 letters, digits or _.:- starting with a letter "
                    "or digit"
                )
            zones[zone] = None
        return tuple(zones)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    def password_value(self) -> str | None:
        return _read_secret(self.password, self.password_file, "password")


class InfluxSettings(_Section):
    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    database: str = Field(default="lighting", description="Database (1.x) or mapped bucket.")
    retention_policy: str | None = Field(default=None, description="Retention policy, if any.")
    token: SecretStr | None = Field(default=None, description="Token (2.x/3.x v1 compat).")
    token_file: Path | None = Field(default=None, description="File holding the token.")
    username: str | None = Field(default=None, description="User (1.x auth).")
    password: SecretStr | None = Field(default=None, description="Password (1.x auth).")
    password_file: Path | None = Field(default=None, description="File holding the password.")
    create_database: bool = Field(
        default=True, description="Create the database when missing (InfluxDB 1.x only)."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one HTTP request.")
    raw_retention_days: int = Field(
        default=400,
        ge=0,
        description="Keep raw readings this many days (0: forever): the raw retention policy "
        "(retention_policy, or the database's default) is altered to it at start-up, "
        "InfluxDB 1.x only. 400 keeps a year-on-year month auditable.",
    )
    rollup_retention_policy: str = Field(
        default="rollups",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Retention policy of the hourly energy rollups (created at start-up).",
    )
    rollup_retention_days: int = Field(
        default=0,
        ge=0,
        description="Keep rollups this many days (0: forever, the contract's life).",
    )
    manage_retention: bool = Field(
        default=True,
        description="Create and check the retention policies at start-up (InfluxDB 1.x; on "
        "2.x/3.x set bucket retention instead, see README).",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} must look like http://host:8086")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; set username/password or token")
        return url

    @field_validator("database")
    @classmethod
    def _check_database(cls, name: str) -> str:
        if not name or any(ch in name for ch in "\n\r\0"):
            raise ValueError("must be a non-empty name on one line")
        return name

    def token_value(self) -> str | None:
        return _read_secret(self.token, self.token_file, "token")

    def password_value(self) -> str | None:
        return _read_secret(self.password, self.password_file, "password")


class IngestSettings(_Section):
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Points per write.")
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Longest a point waits for its batch to fill."
    )
    idle_flush_s: float = Field(
        default=0.02,
        ge=0,
        le=60,
        description="A batch is written as soon as no message has arrived for this long, "
        "rather than waiting for flush_interval_s: acknowledgements leave with the batch, and "
        "a broker that sends only a few unacknowledged messages at a time (RabbitMQ's "
        "mqtt.prefetch, 10 by default) would otherwise hold ingest to that many per "
        "flush_interval_s. A stream at full speed never pauses this long. 0: off.",
    )
    max_payload_bytes: int = Field(
        default=1024 * 1024, ge=256, description="Larger messages are dead-lettered."
    )
    max_clock_skew_s: float = Field(
        default=300, ge=0, description="How far in the future a ts may be."
    )
    device_rate_per_s: float = Field(
        default=1.0,
        ge=0,
        description="Messages per second one device or gateway may send on average (0: no "
        "limit); the excess is dead-lettered as rate_limited.",
    )
    device_burst: int = Field(
        default=2000,
        ge=1,
        description="Messages a device may send at once above its rate: a controller replaying "
        "its buffer, or the broker handing over a device's backlog after a luxtel outage (2000 "
        "is three weeks of 15-minute readings).",
    )
    spool_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024 * 1024,
        description="Spool size limit; past it luxtel stops acknowledging and the broker holds "
        "the messages.",
    )
    received_queue_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="Payload bytes received and waiting for the decoder, at most (besides its "
        "64 chunks); past it luxtel stops reading from the broker until the decoder catches "
        "up, so large payloads arriving while the sink is held back cannot fill memory.",
    )
    output_queue_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        description="luxtel's own MQTT publications (dead-letter copies, alerts) waiting for "
        "the broker, at most; past it new ones are dropped and counted "
        "(luxtel_mqtt_output_dropped_total) - the dead-letter file keeps the record.",
    )


class DeadLetterSettings(_Section):
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=128 * 1024,
        description="Dead letter kept on disk (deadletter.jsonl and its rotated segments), at "
        "most; past it the oldest segments are deleted and counted "
        "(luxtel_deadletter_discarded_records_total).",
    )
    segment_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        description="Size at which deadletter.jsonl is rotated to deadletter.jsonl.NNNNNN (a "
        "higher number is newer); at most half of max_bytes.",
    )
    payload_kept_bytes: int = Field(
        default=1024,
        ge=64,
        le=1024 * 1024,
        description="How much of a rejected payload a record keeps; a larger one is kept as "
        "its first part plus payload_bytes and payload_sha256.",
    )

    @model_validator(mode="after")
    def _check_segment(self) -> "DeadLetterSettings":
        if self.segment_bytes > self.max_bytes // 2:
            raise ValueError(
                f"segment_bytes ({self.segment_bytes}) must be at most half of max_bytes "
                f"({self.max_bytes})"
            )
        return self


class MetricsSettings(_Section):
    enabled: bool = Field(default=True, description="Serve Prometheus /metrics.")
    host: str = Field(default="127.0.0.1", description="Address of /metrics.")
    port: int = Field(default=9108, ge=0, le=65535, description="Port of /metrics (0: any).")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    format: Literal["console", "json"] = Field(default="console")


class InventorySettings(_Section):
    path: Path | None = Field(default=None, description="The luminaire inventory CSV.")


class RulesSettings(_Section):
    path: Path | None = Field(default=None, description="The rules file (YAML).")
    notify: Path | None = Field(
        default=None,
        description="The notification file (receivers and routes, YAML); without it alerts "
        "are still recorded in InfluxDB, on MQTT and in `luxtel alerts list`.",
    )
    tick_s: float = Field(
        default=10.0, gt=0, le=300, description="Timer of the deadman, group waits and retries."
    )
    journal_max_bytes: int = Field(
        default=256 * 1024**2,
        ge=1024**2,
        description="The journal of observations the rules have not evaluated yet "
        "({state_dir}/journal); past it ingest waits for the rules (no acknowledgements, the "
        "broker holds the rest) rather than drop anything.",
    )
    defer_max_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="While ingest is backlogged (batches wait for InfluxDB: a burst, a backlog "
        "the broker replays), the rules are told of new journal records at most this late, so "
        "that they evaluate a burst right after it rather than take CPU from ingest during it "
        "(they judge silences meanwhile at the time of the newest record they were told of, "
        "not the wall clock); 0: told at once.",
    )
    state_interval_s: float = Field(
        default=60.0,
        ge=0,
        le=240,
        description="How often the rules write each inventory luminaire's state (on, off, "
        "alarm, silent) to InfluxDB `luminaire_state`, the city map's data; 0: never. The map "
        "looks 5 minutes back, hence at most 240 s.",
    )
    gather_max_bytes: int = Field(
        default=16 * 1024**2,
        ge=64 * 1024,
        description="The journal records, in bytes, past which the rules gather no more into "
        "one evaluation cycle (so at most this and one record, a batch; held in memory "
        "meanwhile, with their columns); fewer, larger cycles cost less CPU per reading.",
    )
    outbox_max_bytes: int = Field(
        default=8 * 1024**2,
        ge=64 * 1024,
        description="The rules' outbox in the state database ({state_dir}/rules.sqlite): past "
        "this, notifications and alert points already delivered or given up are pruned, oldest "
        "first (give-ups last, `luxtel alerts list` shows them). Undelivered ones are never "
        "pruned: when they alone pass it, the log and luxtel_rules_outbox_over_bound say so.",
    )
    outbox_keep_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="How long the rules' outbox keeps a delivered or given-up notification "
        "(`luxtel alerts list` shows give-ups that long at most).",
    )


class SourcesSettings(_Section):
    path: Path | None = Field(
        default=None,
        description="The sources file (TOML, [[sources]] tables): topics beyond the contract's "
        "and the adapter of each (chirpstack, thethingsstack, senml, mapping); luxtel also "
        "subscribes to their topic filters. Check one with `luxtel sources check FILE`.",
    )


class EnergySettings(_Section):
    @field_validator("tz")
    @classmethod
    def _check_tz(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone such as Europe/London") from None
        return name

    rollups: bool = Field(
        default=True,
        description="Keep the hourly energy rollups up to date inside `luxtel run` (needs "
        "inventory.path).",
    )
    rollup_every_s: float = Field(
        default=300.0, ge=1, description="How often the rollup upkeep runs."
    )
    settle_s: float = Field(
        default=1200.0,
        ge=0,
        description="An hour is rolled up this long after it ends (at least 1.5 of the "
        "longest reporting interval); later readings for it rebuild it.",
    )
    recent_hours: int = Field(
        default=3, ge=0, le=168, description="Hours rebuilt at start (dirty hours are not kept)."
    )
    max_interval_h: float = Field(
        default=12.0,
        gt=0,
        le=168,
        description="Readings further apart than this bound no interval: the energy between "
        "them is unknown (reports and rollups alike).",
    )
    gap_factor: float = Field(
        default=1.5, gt=1, description="A stretch longer than this many report intervals is a gap."
    )
    tz: str = Field(
        default="UTC",
        description="IANA time zone of the city's civil days, for the daily rollups (reports "
        "by day or month in this zone read them).",
    )
    dirty_max_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Memory for the hours written late, awaiting a rebuild (beyond: one span).",
    )
    query_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Timeout of one InfluxDB request of the rollups and the energy commands "
        "(an hour, a day or a month of a city: at 100,000 luminaires a statement takes seconds "
        "to minutes, where a write takes milliseconds and `influx.timeout_s` stays short so that "
        "ingest spools soon).",
    )
    close_kept_max_bytes: int = Field(
        default=64 << 20,
        ge=0,
        description="Memory for the rollups of hours whose close InfluxDB failed, kept as the "
        "tally handed them over until InfluxDB takes them (~370 bytes a luminaire-hour: an hour "
        "of 100,000 luminaires is ~37 MB). Beyond, those hours are read back from InfluxDB.",
    )
    tally_max_bytes: int = Field(
        default=96 << 20,
        ge=0,
        description="Memory for tallying the open hours' rollups as readings are written (~750 "
        "bytes a luminaire: 96 MiB holds 130,000; 0: off). An inventory needing more is not "
        "tallied: every hour is then read back from InfluxDB at its close, ~4.5 µs of CPU a "
        "reading.",
    )


class Settings(BaseSettings):
    """Everything `luxtel run` needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(
        default=Path("state"), description="Spool, dead letter and rule state live here."
    )
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    deadletter: DeadLetterSettings = DeadLetterSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    inventory: InventorySettings = InventorySettings()
    rules: RulesSettings = RulesSettings()
    sources: SourcesSettings = SourcesSettings()
    energy: EnergySettings = EnergySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment over file over defaults; the file's contents come in as init arguments.
        return (env_settings, init_settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read {str(path)!r}: {error.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def _sentence(error: ValidationError, origin: str) -> str:
    first = error.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"] if part != "__root__")
    message = first["msg"].removeprefix("Value error, ")
    env = ENV_PREFIX + "__".join(str(p).upper() for p in first["loc"])
    if first["type"] == "extra_forbidden":
        message = "is not a known setting"
    where = f" ({origin} or {env})" if key else f" ({origin})"
    return f"{key or 'configuration'}: {message}{where}"


def load_settings(path: Path | None) -> Settings:
    """Settings from `path` (or ./luxtel.toml when it exists, else defaults) and the
    environment. Raises ConfigError with one sentence naming the key."""
    data: dict[str, Any] = {}
    origin = "built-in defaults"
    if path is None and Path("luxtel.toml").exists():
        path = Path("luxtel.toml")
    if path is not None:
        data = _read_toml(path)
        origin = str(path)
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(_sentence(error, origin)) from None
    for what, read in (
        ("mqtt.password_file", settings.mqtt.password_value),
        ("influx.password_file", settings.influx.password_value),
        ("influx.token_file", settings.influx.token_value),
    ):
        try:
            read()
        except ValueError as error:
            raise ConfigError(f"{what}: {error}") from None
    if settings.inventory.path is not None and not settings.inventory.path.is_file():
        raise ConfigError(f"inventory.path: {str(settings.inventory.path)!r} is not a file")
    return settings
