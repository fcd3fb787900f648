"""Configuration: file, environment over file, and one sentence naming the key when bad."""

from pathlib import Path

import pytest

from luxtel.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "luxtel.toml"
    path.write_text(text)
    return path


def test_defaults_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[ingest]\nbatch_size = 100\n[influx]\ndatabase = "city"\n')
    monkeypatch.setenv("LUXTEL_INGEST__BATCH_SIZE", "250")
    settings = load_settings(path)
    assert settings.ingest.batch_size == 250
    assert settings.influx.database == "city"
    assert settings.mqtt.topic_root == "lighting"


def test_secrets_come_from_environment_or_file_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("tok-123\n")
    path = write(tmp_path, f'[influx]\ntoken_file = "{secret_file}"\n')
    monkeypatch.setenv("LUXTEL_MQTT__PASSWORD", "hunter2")
    settings = load_settings(path)
    assert settings.influx.token_value() == "tok-123"
    assert settings.mqtt.password_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ('[mqtt]\nurl = "http://broker"\n', {}, "mqtt.url"),
        ('[mqtt]\nurl = "mqtt://u:p@broker"\n', {}, "mqtt.url"),
        ('[mqtt]\ntopic_root = "lighting/#"\n', {}, "mqtt.topic_root"),
        ('[mqtt]\ntopic_root = "luxtel"\n', {}, "mqtt.topic_root"),
        ('[mqtt]\nzones = ["north", "a/b"]\n', {}, "mqtt.zones"),
        ('[mqtt]\nzones = ["#"]\n', {}, "mqtt.zones"),
        ("[mqtt]\nzones = [1]\n", {}, "mqtt.zones"),
        ("[mqtt]\nzones = 3\n", {}, "mqtt.zones"),
        ("", {"LUXTEL_MQTT__ZONES": "north,south east"}, "LUXTEL_MQTT__ZONES"),
        ("", {"LUXTEL_MQTT__ZONES": '["north",'}, "mqtt.zones"),
        ("[mqtt]\nqos = 2\n", {}, "mqtt.qos"),
        ('[influx]\nurl = "ftp://x"\n', {}, "influx.url"),
        ("[ingest]\nbatch_size = 0\n", {}, "ingest.batch_size"),
        ("[ingest]\nbatchsize = 10\n", {}, "ingest.batchsize"),
        ("[ingest]\nflush_interval_s = -1\n", {}, "ingest.flush_interval_s"),
        ("", {"LUXTEL_INGEST__BATCH_SIZE": "many"}, "ingest.batch_size"),
        ('[inventory]\npath = "/nonexistent.csv"\n', {}, "inventory.path"),
        ('[influx]\ntoken_file = "/nonexistent"\n', {}, "influx.token_file"),
        ("[ingest\n", {}, "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], key: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "env", "zones"),
    [
        ("", {}, ()),
        ('[mqtt]\nzones = ["north", "centre", "north"]\n', {}, ("north", "centre")),
        ('[mqtt]\nzones = ["north"]\n', {"LUXTEL_MQTT__ZONES": "east, west"}, ("east", "west")),
        ("", {"LUXTEL_MQTT__ZONES": '["z-1", "z.2"]'}, ("z-1", "z.2")),
        ('[mqtt]\nzones = ["north"]\n', {"LUXTEL_MQTT__ZONES": ""}, ()),
    ],
)
def test_zones_from_the_file_or_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    env: dict[str, str],
    zones: tuple[str, ...],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings(write(tmp_path, text)).mqtt.zones == zones


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
