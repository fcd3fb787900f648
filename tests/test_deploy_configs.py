"""What luxtel ships in deploy/ must work: the example configuration loads, the Mosquitto
configuration raises the queue limits that otherwise drop a persistent subscriber's messages,
and compose gives luxtel its rules and the city's inventory."""

import re
from pathlib import Path

import pytest
import yaml

from luxtel.settings import load_settings
from models.inventory import INVENTORY_COLUMNS
from servers import MosquittoServer

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_example_configuration_loads() -> None:
    settings = load_settings(DEPLOY / "luxtel.example.toml")
    assert settings.mqtt.qos == 1
    assert settings.ingest.batch_size == 5000


def _options(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value.strip() for key, value in pairs}


def test_shipped_mosquitto_config_keeps_queued_messages() -> None:
    options = _options((DEPLOY / "mosquitto" / "mosquitto.conf").read_text())
    assert int(options["max_queued_messages"]) >= 1_000_000
    assert options["max_queued_bytes"] == "0"
    assert options["max_inflight_messages"] == "0"
    assert options["persistence"] == "true"


def test_shipped_mosquitto_config_is_accepted_by_mosquitto(tmp_path: Path) -> None:
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    text = re.sub(r"(?m)^(listener|persistence_location|log_dest) .*$", "", text)
    server = MosquittoServer(tmp_path, extra_conf=text)
    with server:
        assert server.running


def test_test_brokers_raise_the_same_limits(tmp_path: Path) -> None:
    options = _options(MosquittoServer(tmp_path).config_text())
    assert int(options["max_queued_messages"]) >= 1_000_000
    assert options["max_inflight_messages"] == "0"


def _luxtel_mounts() -> tuple[dict[str, str], dict[str, Path]]:
    """The compose luxtel service's environment, and its bind mounts: container path → host."""
    luxtel = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["luxtel"]
    mounts = {}
    for volume in luxtel["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = DEPLOY / source
    return luxtel["environment"], mounts


def _on_host(path: str, mounts: dict[str, Path]) -> Path:
    """Where a path inside the luxtel container comes from, on the host."""
    for target, source in mounts.items():
        if path.startswith(target + "/"):
            return source / path.removeprefix(target + "/")
    raise AssertionError(f"{path} is in no bind mount of the luxtel service")


def test_compose_gives_luxtel_its_rules_and_the_inventory_mount() -> None:
    env, mounts = _luxtel_mounts()
    assert _on_host(env["LUXTEL_RULES__PATH"], mounts).is_file()
    # The inventory is the city's own file: the mounted directory ships only the README that
    # says what to put there, under the name luxtel is given.
    inventory = _on_host(env["LUXTEL_INVENTORY__PATH"], mounts)
    assert inventory.parent.is_dir()
    readme = (inventory.parent / "README.md").read_text()
    assert inventory.name in readme
    assert env["LUXTEL_INVENTORY__PATH"] in readme
    assert all(column in readme for column in INVENTORY_COLUMNS)
    assert "LUXTEL_INVENTORY__PATH" in (DEPLOY / "README.md").read_text()


def test_the_shipped_rules_load_with_a_sharded_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What deploy/README.md's sharding recipe sets, through the environment as compose does."""
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        ",".join(INVENTORY_COLUMNS) + "\nlum-1,north,C1,31.2,121.4,60,100,900,LX-60,2024-05-01\n"
    )
    monkeypatch.setenv("LUXTEL_RULES__PATH", str(DEPLOY / "rules" / "streetlight.yaml"))
    monkeypatch.setenv("LUXTEL_INVENTORY__PATH", str(inventory))
    monkeypatch.setenv("LUXTEL_MQTT__ZONES", "north,centre")
    monkeypatch.setenv("LUXTEL_MQTT__CLIENT_ID", "luxtel-2")
    settings = load_settings(DEPLOY / "luxtel.example.toml")
    assert settings.mqtt.zones == ("north", "centre")
    assert settings.rules.path is not None
