"""deploy/ holds together: the compose file and Grafana provisioning parse and refer to files
that exist, the data source uids are the ones the dashboards use, Prometheus scrapes luxtel's
metrics port, the systemd unit is hardened and drains, the production Mosquitto configuration
starts a real Mosquitto (TLS listener, password file, ACL), and the example configuration is the
generated one. (Docker was not available to start the stack itself.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from luxtel.config_example import example_toml
from luxtel.settings import MetricsSettings
from servers import MosquittoServer, free_port
from tests import certs

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_compose_parses_and_every_referenced_file_exists() -> None:
    compose = _yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) >= {
        "mosquitto",
        "influxdb",
        "luxtel",
        "grafana",
        "prometheus",
        "alertmanager",
    }
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} not declared"
        assert service.get("restart") == "unless-stopped", name
    build = services["luxtel"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    # Secret files are made by the operator; the README in their directory says how.
    secret_dirs = {(DEPLOY / s["file"]).parent for s in compose["secrets"].values()}
    assert all((d / "README.md").is_file() for d in secret_dirs)
    secrets_readme = (DEPLOY / "secrets" / "README.md").read_text()
    assert all(name in secrets_readme for name in compose["secrets"])


def test_every_stateful_service_keeps_its_data_in_a_named_volume() -> None:
    compose = _yaml(DEPLOY / "compose.yaml")
    for name in ("mosquitto", "influxdb", "luxtel", "grafana", "prometheus", "alertmanager"):
        volumes = compose["services"][name]["volumes"]
        assert any(v.split(":")[0] in compose["volumes"] for v in volumes), name


def test_luxtel_in_compose_is_configured_for_influxdb_2_and_drains() -> None:
    luxtel = _yaml(DEPLOY / "compose.yaml")["services"]["luxtel"]
    env = luxtel["environment"]
    assert env["LUXTEL_INFLUX__CREATE_DATABASE"] == "false"
    assert env["LUXTEL_MQTT__PASSWORD_FILE"].startswith("/run/secrets/")
    assert env["LUXTEL_METRICS__HOST"] == "0.0.0.0"
    assert int(luxtel["stop_grace_period"].rstrip("s")) >= 60
    assert "SIGTERM" in (DEPLOY / "Dockerfile").read_text()


def test_provisioning_matches_the_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    files = sorted((provisioning / "datasources").glob("*.yaml"))
    assert files
    uids = {ds["uid"] for f in files for ds in _yaml(f)["datasources"]}
    used = set()
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        text = path.read_text()
        used |= set(re.findall(r'"uid": "(luxtel-[a-z]+)"', text)) - {json.loads(text)["uid"]}
    assert used
    assert used <= uids, used - uids
    (provider,) = _yaml(provisioning / "dashboards" / "luxtel.yaml")["providers"]
    compose = _yaml(DEPLOY / "compose.yaml")
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_prometheus_scrapes_luxtel_metrics_port() -> None:
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "luxtel"]
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    assert f"luxtel:{MetricsSettings().port}" in targets
    assert _yaml(DEPLOY / "alertmanager" / "alertmanager.yml")["route"]["receiver"]


def test_systemd_unit_is_hardened_and_drains() -> None:
    service: dict[str, str] = {}
    section = ""
    for line in (DEPLOY / "systemd" / "luxtel.service").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            service.setdefault(key, value)
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == "luxtel"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 60
    assert "luxtel run" in service["ExecStart"]


def test_the_example_configuration_is_the_generated_one() -> None:
    assert (DEPLOY / "luxtel.example.toml").read_text(encoding="utf-8") == example_toml(), (
        "regenerate deploy/luxtel.example.toml from luxtel.config_example.example_toml()"
    )


def test_production_mosquitto_config_starts_a_real_broker(tmp_path: Path) -> None:
    ca = certs.CertificateAuthority(tmp_path / "ca")
    server = ca.issue("server")
    (tmp_path / "passwords").write_text("")
    text = (DEPLOY / "mosquitto" / "production.conf").read_text()
    replacements = {
        "/mosquitto/certs/ca.pem": str(ca.ca_file),
        "/mosquitto/certs/server.pem": str(server.cert),
        "/mosquitto/certs/server-key.pem": str(server.key),
        "/mosquitto/config/passwords": str(tmp_path / "passwords"),
        "/mosquitto/config/acl.conf": str(DEPLOY / "mosquitto" / "acl.conf"),
    }
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    options = [line.split(None, 1) for line in text.splitlines() if line and line[0] != "#"]
    assert ["max_queued_messages", "1000000"] in options
    assert ["allow_anonymous", "false"] in options
    # The test broker owns listener, persistence location and logging; keep the rest, TLS
    # listener included, on a free port.
    tls_port = free_port("127.0.0.1")
    text = re.sub(r"(?m)^listener 8883$", f"listener {tls_port} 127.0.0.1", text)
    text = re.sub(r"(?m)^(listener 1883|persistence_location|log_dest) ?.*$", "", text)
    with MosquittoServer(tmp_path / "broker", extra_conf=text) as broker:
        assert broker.running
        assert f"port {tls_port}" in broker.log_tail(40)
