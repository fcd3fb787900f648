"""Rollups on a real InfluxDB: `luxtel energy rollup` builds them idempotently into their own
retention policy, `luxtel energy report` from rollups equals the raw report (whole hours, odd
edges, DST days, settlement), and a backlog written late and out of order is rolled up again by
the upkeep of `luxtel run`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from energy.inventory import read_inventory
from energy.periods import to_ms
from energy.retention import RetentionConfig, ensure_retention
from energy.rollup import DAY_MEASUREMENT, MEASUREMENT
from energy.rollup_groups import GROUP_DAILY, GROUP_HOURLY, ZONE_DAILY
from energy.rollup_store import RollupConfig, build, latest_reading_ms
from energy.tally import RollupTally
from energy.upkeep import DirtyHours, Upkeep, UpkeepConfig
from influx.client import InfluxTarget, InfluxWriter
from luxtel.commands.energy import energy_app
from luxtel.settings import EnergySettings, InventorySettings
from servers import (
    InfluxDBError,
    InfluxDBServer,
    MosquittoServer,
    create_database,
    query,
    quote_ident,
    write_points,
)
from tests.energy_fleet import (
    FLEET,
    City,
    Story,
    make_city,
    readings,
    rollup_points,
    write_inventory,
)
from tests.support import Publisher, RunningPipeline, make_settings, reading, wait_until

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")
H = 3_600_000
Q = 15 * 60_000
START = to_ms(datetime(2026, 3, 28, tzinfo=LONDON))
END = to_ms(datetime(2026, 3, 31, tzinfo=LONDON))  # the spring-forward weekend: 29 March 23 h
HOLE = (START + 42 * H, START + 46 * H)  # a night
"""Device n2's readings in here arrive late (the backlog test)."""

STORY = Story(
    first=START - 6 * H,
    until=END + 6 * H,
    outages=((START + 10 * H, START + 13 * H), (START + 40 * H, START + 54 * H)),
    reset=START + 50 * H,
    onboarding=START + 26 * H + 7 * 60_000,  # on the 29th
)


def _readings(device: str) -> list[tuple[int, str]]:
    return readings(device, STORY)


@pytest.fixture
def city(influxdb: InfluxDBServer, tmp_path: Path) -> Iterator[City]:
    made = make_city(influxdb.url, tmp_path, STORY, HOLE)
    yield made
    query(influxdb.url, f"DROP DATABASE {quote_ident(made.database)}")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(energy_app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _rollup(city: City, start: str = "2026-03-28", end: str = "2026-03-31") -> str:
    return _cli(
        "rollup", "--from", start, "--to", end, "-c", str(city.toml), "--tz", "Europe/London"
    )


def _report(city: City, source: str, *args: str) -> list[dict[str, Any]]:
    return _report_said(city, source, *args)[0]


def _report_said(city: City, source: str, *args: str) -> tuple[list[dict[str, Any]], str]:
    """The rows, and what the command said on the way."""
    out = city.tmp / f"{uuid.uuid4().hex[:6]}.json"
    said = _cli(
        "report",
        "-c",
        str(city.toml),
        "--tz",
        "Europe/London",
        "--format",
        "json",
        "-o",
        str(out),
        "--source",
        source,
        *args,
    )
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows, said


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """The same rows, every figure exactly (the rollups hold the raw report's integers)."""
    assert a == b


def _count(city: City, policy: str) -> int:
    statement = f'SELECT count("readings") FROM {quote_ident(policy)}."energy_hourly"'  # noqa: S608
    answer = query(city.url, statement, db=city.database)
    series = answer["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def test_rollups_land_in_their_own_policy_once_however_often_rebuilt(city: City) -> None:
    output = _rollup(city)
    assert "426 rollup points" in output  # 6 luminaires x 71 hours (29 March has 23)
    policies = query(city.url, f"SHOW RETENTION POLICIES ON {quote_ident(city.database)}")
    rows = {v[0]: v for v in policies["results"][0]["series"][0]["values"]}
    assert rows["rollups"][1] == "0s"  # infinite
    assert rows["rollups"][2] == "8736h0m0s"  # 52-week shards: a month's report reads one or two
    assert rows["rollups"][4] is False  # not the default: raw telemetry stays where it was
    assert rows["autogen"][1] == "9600h0m0s"  # 400 days
    assert rows["autogen"][4] is True
    assert _count(city, "rollups") == 426
    assert _count(city, "autogen") == 0
    daily = query(
        city.url,
        'SELECT count("hours"), min("hours"), max("hours") FROM "rollups"."energy_daily" '
        "GROUP BY time(1h) fill(none)",
        db=city.database,
    )
    days = [v[1:] for v in daily["results"][0]["series"][0]["values"]]
    assert days == [[6, 24, 24], [6, 23, 23], [6, 24, 24]]  # London days, 29 March has 23 h
    _rollup(city)
    _rollup(city, "2026-03-29T05:30:00Z", "2026-03-29T09:00:00Z")
    assert _count(city, "rollups") == 426  # overwritten, never doubled


@pytest.mark.parametrize(
    "args",
    [
        ("--by", "device", "--from", "2026-03-28", "--to", "2026-03-31"),
        ("--by", "zone", "--from", "2026-03-28T10:20:00Z", "--to", "2026-03-30T17:40:00Z"),
        ("--by", "day", "--from", "2026-03-28T03:10:00+00:00", "--to", "2026-03-31"),
        ("--by", "circuit", "--from", "2026-03-29", "--to", "2026-03-30"),
        ("--by", "month", "--from", "2026-03-28", "--to", "2026-03-31"),
    ],
)
def test_the_report_from_rollups_equals_the_raw_report(city: City, args: tuple[str, ...]) -> None:
    _rollup(city)
    raw = _report(city, "raw", *args)
    via, said = _report_said(city, "rollups", *args)
    _same(via, raw)
    assert any(r["gap"] for r in raw)
    if args[1] == "device":
        # 29 March from the daily rollups; the other days' hours from hourly ones. No hour was
        # rolled up around the period, but the period's own first and last hours flag nothing
        # for any luminaire but s3 (onboarded on the 29th: its first hour has no reading), so
        # only s3 is in doubt, at the start, within its gap (22.5 min): 1 hour of it raw.
        assert "1 whole days and 46 whole hours from rollups" in said
        assert ", 0 h from raw readings" in said
        assert "1 luminaire(s) silent around the period (s3)" in " ".join(said.split())
        assert " 1 luminaire-hour(s) of theirs from raw readings" in " ".join(said.split())
        resets = {r["device"]: r["resets"] for r in raw}
        assert resets == {"n1": 0, "n2": 1, "n3": 0, "s1": 1, "s2": 0, "s3": 0}  # s1: the wrap
        assert {r["device"]: r["method"] for r in raw}["s2"] == "power"


def test_settlement_half_hours_stay_exact(city: City) -> None:
    _rollup(city)
    raw, via = city.tmp / "raw.csv", city.tmp / "via.csv"
    period = ("--from", "2026-03-29", "--to", "2026-03-30", "--by", "circuit")
    _report(city, "raw", *period, "--settlement", str(raw))
    _report(city, "rollups", *period, "--settlement", str(via))
    assert via.read_text() == raw.read_text()
    assert len(raw.read_text().splitlines()) == 1 + 4 * 46  # 4 circuits, the 23 h day


def test_missing_rollups_are_read_raw(city: City) -> None:
    _rollup(city, "2026-03-28", "2026-03-29")  # only the first day rolled up
    args = ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31")
    out = city.tmp / "z.json"
    result = CliRunner().invoke(
        energy_app,
        [
            "report",
            "-c",
            str(city.toml),
            "--tz",
            "Europe/London",
            "--format",
            "json",
            "-o",
            str(out),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "whole hours from rollups" in result.output
    _same(json.loads(out.read_text()), _report(city, "raw", *args))


def test_a_late_backlog_out_of_order_is_rolled_up_again(city: City) -> None:
    inventory = read_inventory(Path(city.tmp / "inventory.csv"))
    dirty = DirtyHours()
    config = UpkeepConfig(
        every_s=3600,
        settle_s=1200,
        rollups=RollupConfig(max_interval_ms=6 * H),
        retention=RetentionConfig(),
    )
    now = END / 1000 + 7 * 3600
    state = city.tmp / "rollups.json"
    state.write_text(json.dumps({"watermark_ms": START - H}))

    async def tick(watermark: int) -> tuple[int, int]:
        async with InfluxWriter(InfluxTarget(city.url, city.database)) as writer:
            upkeep = Upkeep(writer, inventory, state, config, dirty, clock=lambda: now)
            return await upkeep.tick(watermark), upkeep.rows

    # Every hour up to END + 6 h closes (the wall clock is 20 min past it, and 1 h more).
    assert asyncio.run(tick(START - H)) == (END + 6 * H, 6 * 78)  # 1 + 71 + 6 hours
    args = ("--by", "device", "--from", "2026-03-28", "--to", "2026-03-31")
    before = {r["device"]: r for r in _report(city, "rollups", *args)}
    late = list(reversed(city.backlog))
    for i in range(0, len(late), 3):  # the gateway's backlog, newest first
        write_points(city.url, city.database, late[i : i + 3])
        dirty.note(late[i : i + 3])  # what the sink does after each write it made
    watermark, rows = asyncio.run(tick(END + 6 * H))
    assert watermark == END + 6 * H
    assert rows >= 6 * 4  # the 4 hours of the hole (and the hours their intervals reach)
    raw = _report(city, "raw", *args)
    after = {r["device"]: r for r in _report(city, "rollups", *args)}
    # The hole was a 4 h gap (its energy unverified); now its hours are verified.
    assert after["n2"]["unverified_kwh"] < before["n2"]["unverified_kwh"] - 0.04
    assert after["n2"]["metered_kwh"] == before["n2"]["metered_kwh"]
    assert after["n2"]["readings"] == before["n2"]["readings"] + len(city.backlog)
    _same(list(after.values()), raw)


def test_luxtel_run_sets_retention_and_rolls_up_a_late_backlog(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    """The upkeep inside `luxtel run`: the policies at start-up, then readings of hours already
    closed (a gateway's backlog, published newest first) rolled up within a tick or two."""
    database = f"run_{uuid.uuid4().hex[:8]}"
    root = f"t{uuid.uuid4().hex[:8]}/lighting"
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,"
        "model,installed_on\nlum-1,north,C01,51.5,-0.1,40,100,900,LX,\n"
    )
    base = make_settings(tmp_path / "state", mosquitto.url, influxdb.url, database, root)
    settings = base.model_copy(
        update={
            "inventory": InventorySettings(path=inventory),
            "energy": EnergySettings(rollup_every_s=1),
        }
    )
    now = int(time.time() * 1000)
    first = now - now % H - 3 * H  # hours long closed
    backlog = [
        (f"{root}/north/lum-1/telemetry", reading(t, energy=1000.0 + 10 * i, seq=i))
        for i, t in enumerate(range(first, first + 2 * H + 1, Q))
    ]

    def rolled_up() -> int:
        statement = (
            'SELECT sum("readings") FROM "rollups"."energy_hourly" '  # noqa: S608 (test data)
            f"WHERE time >= {first}ms AND time < {first + 2 * H}ms"
        )
        series = query(influxdb.url, statement, db=database)["results"][0].get("series", [])
        return int(series[0]["values"][0][1]) if series else 0

    try:
        with RunningPipeline(settings):
            wait_until(lambda: (tmp_path / "state" / "rollups.json").exists(), what="a first tick")
            publisher = Publisher(mosquitto.url)
            publisher.publish(list(reversed(backlog)))
            publisher.close()
            wait_until(lambda: rolled_up() == 8, what="the backlog's two hours rolled up")
        policies = query(influxdb.url, f"SHOW RETENTION POLICIES ON {quote_ident(database)}")
        durations = {v[0]: v[1] for v in policies["results"][0]["series"][0]["values"]}
        assert durations == {"autogen": "9600h0m0s", "rollups": "0s"}
    finally:
        query(influxdb.url, f"DROP DATABASE {quote_ident(database)}")


def test_an_existing_rollup_policy_gets_long_shards_and_keeps_its_duration(
    influxdb: InfluxDBServer, influx_db: str
) -> None:
    """A rollup policy made before the shard duration was set (InfluxDB's 7-day default for an
    infinite policy) is altered to 52-week shards; a finite one to shards as long as itself."""
    create = (
        f"CREATE RETENTION POLICY rollups ON {quote_ident(influx_db)} DURATION INF REPLICATION 1"
    )
    query(influxdb.url, create)

    def shards() -> dict[str, tuple[str, str]]:
        answer = query(influxdb.url, f"SHOW RETENTION POLICIES ON {quote_ident(influx_db)}")
        return {v[0]: (v[1], v[2]) for v in answer["results"][0]["series"][0]["values"]}

    assert shards()["rollups"] == ("0s", "168h0m0s")

    async def ensure(config: RetentionConfig) -> list[str]:
        async with InfluxWriter(InfluxTarget(influxdb.url, influx_db)) as writer:
            return await ensure_retention(writer, config)

    assert any("SHARD DURATION 364d" in s for s in asyncio.run(ensure(RetentionConfig())))
    assert shards()["rollups"] == ("0s", "8736h0m0s")
    assert asyncio.run(ensure(RetentionConfig())) == []  # nothing left to change
    asyncio.run(ensure(RetentionConfig(rollup_days=30)))
    assert shards()["rollups"] == ("720h0m0s", "720h0m0s")


def test_moving_a_luminaire_and_rebuilding_leaves_no_stale_points(city: City) -> None:
    _rollup(city)
    inventory = city.tmp / "inventory.csv"
    inventory.write_text(inventory.read_text().replace("s3,south,C04", "s3,east,C05"))

    def zones_of_s3() -> dict[str, int]:
        answer = query(
            city.url,
            'SELECT count("readings") FROM "rollups"."energy_hourly" WHERE device_id = \'s3\' '
            'GROUP BY "zone"',
            db=city.database,
        )
        series = answer["results"][0].get("series", [])
        return {s["tags"]["zone"]: s["values"][0][1] for s in series}

    _rollup(city)
    assert zones_of_s3() == {"south": 71, "east": 71}  # the old series stays beside the new
    args = ("--by", "zone", "--from", "2026-03-28", "--to", "2026-03-31")
    _, said = _report_said(city, "rollups", *args)
    assert "0 whole days and 0 whole hours from rollups" in said  # 7 points an hour for 6: raw
    _cli(
        "rollup",
        "--from",
        "2026-03-28",
        "--to",
        "2026-03-31",
        "-c",
        str(city.toml),
        "--tz",
        "Europe/London",
        "--delete-first",
    )
    assert zones_of_s3() == {"east": 71}
    via, said = _report_said(city, "rollups", *args)
    assert "1 whole days and 46 whole hours from rollups" in said
    _same(via, _report(city, "raw", *args))
    assert {r["zone"] for r in via} == {"north", "south", "east"}


def test_rollups_kept_by_the_tally_equal_a_rebuild(
    influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    """`luxtel run`'s upkeep with its tally, fed what the sink writes as the city's readings come
    in (hour after hour, the wall clock following them), closing each hour once settled; then a
    gateway's backlog, newest first. Every hourly and daily rollup it kept equals, field for field
    and bit for bit, what a rebuild from the raw readings writes over it; and most hours came
    from the tally, not from reading them back."""
    database = f"tally_{uuid.uuid4().hex[:8]}"
    create_database(influxdb.url, database)
    csv = write_inventory(tmp_path)
    inventory = read_inventory(csv)
    rollups = RollupConfig(max_interval_ms=6 * H, tz="Europe/London")
    config = UpkeepConfig(every_s=3600, settle_s=5400, rollups=rollups, retention=RetentionConfig())
    on_time: list[tuple[int, str]] = []
    backlog: list[str] = []
    for device in FLEET:
        for t, text in _readings(device):
            if device == "n2" and HOLE[0] <= t < HOLE[1]:
                backlog.append(text)
            else:
                on_time.append((t, text))
    on_time.sort()
    first_hour = START - 6 * H
    state = tmp_path / "rollups.json"
    state.write_text(json.dumps({"watermark_ms": first_hour}))
    clock = [first_hour / 1000]

    async def points(writer: InfluxWriter, measurement: str) -> dict[tuple[str, int], Any]:
        return rollup_points(influxdb.url, database, measurement)

    def group_hours() -> dict[tuple[str, str, int], Any]:
        answer = query(
            influxdb.url,
            f'SELECT * FROM "rollups"."{GROUP_HOURLY}" GROUP BY "zone", "circuit"',  # noqa: S608
            db=database,
            epoch="ms",
        )
        out = {}
        for series in answer["results"][0].get("series", []):
            tags = series["tags"]
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                out[(tags["zone"], tags["circuit"], row.pop("time"))] = row
        return out

    async def run() -> None:
        async with InfluxWriter(InfluxTarget(influxdb.url, database)) as writer:
            tally = RollupTally(
                inventory,
                gap_factor=1.5,
                max_interval_ms=6 * H,
                started_ms=first_hour - H,
                closed_ms=first_hour,
                max_bytes=1 << 20,
            )
            upkeep = Upkeep(
                writer, inventory, state, config, DirtyHours(), clock=lambda: clock[0], tally=tally
            )
            # A previous run wrote the first readings; the tally learns the latest of them.
            previous = [text for _, text in on_time[:40]]
            await writer.write(previous)
            clock[0] = on_time[39][0] / 1000
            tally.history(await latest_reading_ms(writer, first_hour - 6 * H))
            assert tally.since_ms == on_time[39][0] - on_time[39][0] % H + H
            watermark = first_hour
            for i in range(40, len(on_time), 25):  # the sink's writes, in the order they come
                chunk = [text for _, text in on_time[i : i + 25]]
                await writer.write(chunk)
                upkeep.written(chunk)
                clock[0] = on_time[min(i + 24, len(on_time) - 1)][0] / 1000
                watermark = await upkeep.tick(watermark)
            late = list(reversed(backlog))
            for i in range(0, len(late), 3):  # the gateway's backlog, newest first
                await writer.write(late[i : i + 3])
                upkeep.written(late[i : i + 3])
            clock[0] = (END + 9 * H) / 1000
            watermark = await upkeep.tick(watermark)
            assert watermark == END + 7 * H
            assert upkeep.tallied_rows >= len(FLEET) * 70  # of 6 x 89 hours
            kept = await points(writer, "energy_hourly"), await points(writer, "energy_daily")
            kept_groups = group_hours()
            await build(writer, inventory, first_hour, watermark, rollups)
            rebuilt = await points(writer, "energy_hourly"), await points(writer, "energy_daily")
            # every hour's sums per (zone, circuit) too, from the tally's hours as from a build
            assert kept_groups == group_hours()
            groups = {(zone, circuit) for zone, circuit, _, _ in FLEET.values()}
            assert len(kept_groups) == len(groups) * (watermark - first_hour) // H
            assert len(kept[0]) == len(FLEET) * (watermark - first_hour) // H
            assert kept[0].keys() == rebuilt[0].keys()
            for key, row in kept[0].items():
                assert row == rebuilt[0][key], key
            # days are written once complete (a partial day's point is never read)
            complete = {k: v for k, v in rebuilt[1].items() if v["hours"] in (23, 24, 25)}
            assert {k: v for k, v in kept[1].items() if k in complete} == complete
            assert len(complete) == len(FLEET) * 3  # 28 to 30 March (29 March: 23 h)

    try:
        asyncio.run(run())
    finally:
        query(influxdb.url, f"DROP DATABASE {quote_ident(database)}")


def test_luxtel_run_rolls_an_hour_up_from_its_tally(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    """`luxtel run` end to end: readings through MQTT, the sink, the tally; the hour closes (its
    settling time set to end half a minute from now) and its rollups come from the tally — none
    read back — equal to what a rebuild from the raw readings writes over them."""
    database = f"run_{uuid.uuid4().hex[:8]}"
    root = f"t{uuid.uuid4().hex[:8]}/lighting"
    inventory = tmp_path / "inventory.csv"
    lines = [
        "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,"
        "model,installed_on"
    ]
    lines += [f"lum-{i},north,C0{i},51.5,-0.1,40,100,300,LX," for i in range(3)]
    inventory.write_text("\n".join(lines) + "\n")
    now = time.time()
    hour = int(now * 1000) - int(now * 1000) % H - 2 * H  # closed by the wall clock long ago
    state = tmp_path / "state"
    state.mkdir()
    (state / "rollups.json").write_text(json.dumps({"watermark_ms": hour}))  # not yet rolled up
    # The hour closes an hour from now by the upkeep's clock, which the test moves on once every
    # reading is stored: a deadline in wall time (30 s, 12 s before) was missed on a loaded
    # machine, and the hour was then built from raw readings, not from the tally.
    settle_s = now - (hour + H) / 1000 + 3600
    base = make_settings(state, mosquitto.url, influxdb.url, database, root)
    settings = base.model_copy(
        update={
            "inventory": InventorySettings(path=inventory),
            "energy": EnergySettings(rollup_every_s=1, settle_s=settle_s, recent_hours=0),
        }
    )
    messages = [
        (
            f"{root}/north/lum-{i}/telemetry",
            reading(t + 1000 * i, power=40.0 + i, energy=1000.0 + 3.3 * k + i, seq=k),
        )
        for k, t in enumerate(range(hour - 10 * 60_000, hour + H + 10 * 60_000, 5 * 60_000))
        for i in range(3)
    ]

    def hourly() -> dict[str, Any]:
        try:
            answer = query(
                influxdb.url,
                f'SELECT * FROM "rollups"."energy_hourly" WHERE time = {hour}ms '  # noqa: S608
                'GROUP BY "device_id"',
                db=database,
            )
        except InfluxDBError as error:
            # Polled before `luxtel run` made its database and retention policies (seen on a
            # loaded machine): nothing rolled up yet.
            if "not found" not in str(error):
                raise
            return {}
        return {
            s["tags"]["device_id"]: dict(zip(s["columns"], s["values"][0], strict=True))
            for s in answer["results"][0].get("series", [])
        }

    def stored() -> int:
        try:
            answer = query(influxdb.url, "SELECT count(power_w) FROM telemetry", db=database)
        except InfluxDBError as error:
            if "not found" not in str(error):
                raise
            return 0
        series = answer["results"][0].get("series", [])
        return int(series[0]["values"][0][1]) if series else 0

    try:
        with RunningPipeline(settings) as running:
            publisher = Publisher(mosquitto.url)
            publisher.publish(messages)
            publisher.close()
            wait_until(lambda: stored() == len(messages), what="every reading stored", timeout=60)
            assert running.pipeline is not None
            upkeep = running.pipeline.upkeep
            assert upkeep is not None
            assert hourly() == {}, "not closed yet"
            upkeep.clock = lambda: time.time() + 3600  # the hour closes at the next round
            # Counted once InfluxDB has answered the write (a poll of InfluxDB may see the points
            # first); rolled up by reading back instead, it stays 0 and the wait fails.
            tallied = "the hour rolled up from the tally"
            wait_until(lambda: upkeep.tallied_rows == 3, what=tallied, timeout=60)
            assert len(hourly()) == 3
        kept = hourly()
        assert kept["lum-1"]["readings"] == 12
        assert kept["lum-1"]["flagged"] == 0

        async def rebuild() -> None:
            async with InfluxWriter(InfluxTarget(influxdb.url, database)) as writer:
                await build(writer, read_inventory(inventory), hour, hour + H, RollupConfig())

        asyncio.run(rebuild())
        assert hourly() == kept
    finally:
        query(influxdb.url, f"DROP DATABASE {quote_ident(database)}")


_OLD_NAMES = {
    "counter_mwh": "counter_wh",
    "power_mwh": "power_wh",
    "verified_mwh": "verified_wh",
    "metered_mwh": "metered_wh",
    "baseline_mwh": "baseline_wh",
    "burning_ms": "burning_h",
    "dim_pct_ms": "dim_pct_h",
}


def _as_float_schema(city: City, measurement: str) -> list[str]:
    """The points of ``measurement`` as the code before the integer schema wrote them: the
    same counts, CRCs and tags, the figures as floats under their old names (here 1000× too
    big, so a reader that took them would be seen)."""
    statement = f'SELECT * FROM "rollups".{quote_ident(measurement)} GROUP BY *'  # noqa: S608
    answer = query(city.url, statement, db=city.database, epoch="ms")
    lines = []
    for series in answer["results"][0].get("series", []):
        tags = ",".join(f"{k}={v}" for k, v in sorted(series["tags"].items()) if v)
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            fields = []
            for name, value in row.items():
                if name == "time" or value is None or name == "baseline_rest":
                    continue
                if name in _OLD_NAMES or name == "expected":  # JSON says 4 for 4.0
                    fields.append(f"{_OLD_NAMES.get(name, name)}={float(value)!r}")
                elif isinstance(value, bool):
                    fields.append(f"{name}={'true' if value else 'false'}")
                elif isinstance(value, str):
                    fields.append(f'{name}="{value}"')
                elif isinstance(value, int):
                    fields.append(f"{name}={value}i")
                else:
                    fields.append(f"{name}={value!r}")
            lines.append(f"{measurement},{tags} {','.join(fields)} {row['time']}")
    return lines


async def _write_rollups(city: City, lines: list[str]) -> None:
    target = InfluxTarget(city.url, city.database, retention_policy="rollups")
    async with InfluxWriter(target) as writer:
        await writer.write(lines)


def test_points_of_the_float_schema_are_read_raw_until_rebuilt(city: City) -> None:
    """Rollup points written before the figures were integers (float ``…_wh`` / ``…_h``
    fields) hold every count and CRC a reader checks: they are found out by the missing
    ``burning_ms`` and those hours read raw (the same rows), until ``luxtel energy rollup``
    rebuilds the range (the new fields merge into the old points)."""
    _rollup(city)
    args = ("--by", "device", "--from", "2026-03-28", "--to", "2026-03-31")
    raw = _report(city, "raw", *args)
    for measurement in (MEASUREMENT, DAY_MEASUREMENT, GROUP_HOURLY, GROUP_DAILY, ZONE_DAILY):
        lines = _as_float_schema(city, measurement)
        assert lines, measurement
        query(city.url, f"DROP MEASUREMENT {quote_ident(measurement)}", db=city.database)
        asyncio.run(_write_rollups(city, lines))
    via, said = _report_said(city, "rollups", *args)
    assert "0 whole days and 0 whole hours from rollups" in said
    _same(via, raw)
    for by in ("zone", "circuit"):  # the group levels too
        grouped = ("--by", by, "--from", "2026-03-28", "--to", "2026-03-31")
        _same(_report(city, "rollups", *grouped), _report(city, "raw", *grouped))
    _rollup(city)
    via, said = _report_said(city, "rollups", *args)
    assert "1 whole days and 46 whole hours from rollups" in said
    _same(via, raw)
