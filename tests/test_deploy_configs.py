"""What luxtel ships in deploy/ must work: the example configuration loads, and the Mosquitto
configuration raises the queue limits that otherwise drop a persistent subscriber's messages."""

import re
from pathlib import Path

from luxtel.settings import load_settings
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
