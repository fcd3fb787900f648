"""`luxtel sources check`: a good file is listed, a bad one named with its line (exit 2), and a
sample payload shows its readings and lines, or its dead letter's reason (exit 1)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from luxtel.cli import app

SOURCES = Path(__file__).resolve().parent.parent / "deploy" / "sources"
EXAMPLE = SOURCES / "sources.example.toml"
INVENTORY = (
    "device_id,zone,circuit,lat,lon,rated_power_w,baseline_power_w,report_interval_s,model,"
    "installed_on,dev_eui\nlum-0043,north,n-1,52.3,4.9,60,150,900,X,2024-01-01,\n"
)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sources", "check", *args])
    return result.exit_code, result.output


def test_a_good_file_is_listed(tmp_path: Path) -> None:
    (tmp_path / "inventory.csv").write_text(INVENTORY)
    code, out = _run(str(EXAMPLE), "--inventory", str(tmp_path / "inventory.csv"))
    assert code == 0, out
    assert "tts: thethingsstack on v3/+/devices/+/up" in out
    assert "4 sources OK" in out


def test_a_bad_file_names_the_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text(
        '[[sources]]\nname = "cs"\nadapter = "chirpstack"\ntopic = "application/#"\n\n'
        '[[sources]]\nname = "v"\nadapter = "mapping"\ntopic = "v/#"\nzone = "topic:2"\n'
        'device_id = "topic:3"\nfields.lamp_on = "$.on"\nfields.power_w = "$.p"\n'
        'fields.energy_wh = { path = "$.e", unit = "kW" }\n'
    )
    code, out = _run(str(bad))
    assert code == 2
    assert f"{bad}:6: sources[1] (v).fields: energy_wh: unit 'kW' is not one of Wh, W·h, kWh" in out


def test_an_inventory_source_without_an_inventory_is_refused() -> None:
    code, out = _run(str(EXAMPLE))
    assert code == 2
    assert "source 'tts': its zone comes from the inventory, and inventory.path is not set" in out


def test_a_sample_shows_its_reading_and_line(tmp_path: Path) -> None:
    (tmp_path / "inventory.csv").write_text(INVENTORY)
    code, out = _run(
        str(EXAMPLE),
        "--inventory",
        str(tmp_path / "inventory.csv"),
        "--sample",
        "v3/street@city/devices/lum-0043/up",
        str(SOURCES / "tts-up.json"),
        "--now",
        "2026-12-01T00:00:00Z",
    )
    assert code == 0, out
    assert "source 'tts'" in out
    assert '"zone":"north","device_id":"lum-0043"' in out
    assert (
        "line: telemetry,device_id=lum-0043,zone=north lamp_on=true,power_w=42.5,"
        "energy_wh=123456.5,voltage_v=231.2,driver_temp_c=41.5,seq=1017i,dim_pct=70i "
        "1796074455805"
    ) in out


def test_a_sample_that_does_not_map_shows_the_reason(tmp_path: Path) -> None:
    (tmp_path / "inventory.csv").write_text(INVENTORY)
    code, out = _run(
        str(EXAMPLE),
        "--inventory",
        str(tmp_path / "inventory.csv"),
        "--sample",
        "vendor/north/lum-1/data",
        str(SOURCES / "tts-up.json"),
    )
    assert code == 1
    assert "dead letter: unmapped_field: mapping source 'vendor': power_w: path $.d.pwr" in out


def test_a_configuration_whose_sources_do_not_load_stops_with_the_key(tmp_path: Path) -> None:
    from luxtel.pipeline import check_sources
    from luxtel.settings import ConfigError, load_settings

    bad = tmp_path / "sources.toml"
    bad.write_text('[[sources]]\nname = "v"\nadapter = "mapping"\ntopic = "v/#"\n')
    config = tmp_path / "luxtel.toml"
    config.write_text(f'[sources]\npath = "{bad}"\n')
    with pytest.raises(ConfigError) as caught:
        check_sources(load_settings(config))
    assert str(caught.value).startswith(f"sources.path: {bad}:1: sources[0] (v): a mapping must")
    result = CliRunner().invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 2
    assert "configuration error: sources.path" in result.output
    # Only what runs the pipeline loads the sources file: the crews' commands still work.
    listing = CliRunner().invoke(app, ["alerts", "list", "-c", str(config)])
    assert "no rules state" in listing.output  # it read the settings and looked for the state
    assert "sources" not in listing.output


def test_a_source_broker_whose_password_file_is_missing_stops_with_the_key(
    tmp_path: Path,
) -> None:
    from luxtel.pipeline import check_sources
    from luxtel.settings import ConfigError, load_settings

    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[sources]]\nname = "tts"\nadapter = "chirpstack"\ntopic = "a/#"\n'
        f'broker = {{ url = "mqtts://eu1.cloud.thethings.network:8883", '
        f'password_file = "{tmp_path / "missing.key"}" }}\n'
    )
    config = tmp_path / "luxtel.toml"
    config.write_text(f'[sources]\npath = "{sources}"\n')
    with pytest.raises(ConfigError, match=r"source 'tts': cannot read broker\.password_file"):
        check_sources(load_settings(config))
    sources.write_text(
        '[[sources]]\nname = "tts"\nadapter = "chirpstack"\ntopic = "a/#"\n'
        'broker = { url = "mqtt://user:pw@host:1883" }\n'
    )
    with pytest.raises(ConfigError, match="must not hold credentials"):
        check_sources(load_settings(config))
