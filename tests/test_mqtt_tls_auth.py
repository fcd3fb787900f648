"""MQTT over TLS and broker credentials, against a real Mosquitto with a TLS listener: the right
CA works; a wrong CA, an expired certificate and a bad password each stop luxtel with one clear
sentence (exit 1), without the password appearing anywhere."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import InfluxDBServer, MosquittoServer, free_port
from tests.certs import CertificateAuthority
from tests.support import (
    LUXTEL,
    Publisher,
    RunningPipeline,
    count,
    make_settings,
    reading,
    settings_toml,
    wait_until,
)

PASSWORD = "s3cret-Pa55"


def tls_broker(
    factory: Callable[..., MosquittoServer],
    tmp_path: Path,
    *,
    expired: bool = False,
    client_certs: bool = False,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> tuple[MosquittoServer, int, CertificateAuthority]:
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.issue("broker", expired=expired, hosts=hosts)
    tls_port = free_port()
    conf = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {ca.ca_file}\ncertfile {server.cert}\nkeyfile {server.key}\n"
        f"require_certificate {'true' if client_certs else 'false'}\n"
    )
    return factory(extra_conf=conf), tls_port, ca


def run_luxtel(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "luxtel.toml"
    config.write_text(toml)
    return subprocess.run(
        [*LUXTEL, "run", "-c", str(config)], capture_output=True, text=True, timeout=90, check=False
    )


def test_readings_arrive_over_tls_with_a_client_certificate(
    tmp_path: Path,
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    broker, tls_port, ca = tls_broker(mosquitto_factory, tmp_path, client_certs=True)
    client = ca.issue("luxtel", server=False)
    settings = make_settings(
        tmp_path, f"mqtts://localhost:{tls_port}", influxdb.url, influx_db, topic_root
    )
    settings = settings.model_copy(
        update={
            "mqtt": settings.mqtt.model_copy(
                update={"ca_file": ca.ca_file, "cert_file": client.cert, "key_file": client.key}
            )
        }
    )
    with RunningPipeline(settings):
        publisher = Publisher(broker.url)
        publisher.publish(
            [(f"{topic_root}/n/lum-{i}/telemetry", reading(1795400000000 + i)) for i in range(50)]
        )
        publisher.close()
        wait_until(lambda: count(influxdb.url, influx_db, "telemetry") == 50, what="TLS data")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong_ca", "certificate"),
        ("expired", "expired"),
        ("wrong_host", "mismatch"),
    ],
)
def test_a_certificate_luxtel_cannot_trust_stops_it_with_one_sentence(
    tmp_path: Path,
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
    case: str,
    expected: str,
) -> None:
    hosts = ("broker.invalid",) if case == "wrong_host" else ("localhost", "127.0.0.1")
    _, tls_port, ca = tls_broker(
        mosquitto_factory, tmp_path, expired=case == "expired", hosts=hosts
    )
    ca_file = (
        CertificateAuthority(tmp_path / "other", "another CA").ca_file
        if case == "wrong_ca"
        else ca.ca_file
    )
    settings = make_settings(
        tmp_path / "state", f"mqtts://localhost:{tls_port}", influxdb.url, influx_db, topic_root
    )
    toml = settings_toml(settings).replace("[mqtt]\n", f'[mqtt]\nca_file = "{ca_file}"\n')
    done = run_luxtel(tmp_path, toml)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("luxtel: ")
    assert "TLS certificate was refused" in last
    assert expected in last.lower()


def test_a_bad_password_stops_luxtel_with_one_sentence_and_never_shows_it(
    tmp_path: Path,
    mosquitto_factory: Callable[..., MosquittoServer],
    influxdb: InfluxDBServer,
    influx_db: str,
    topic_root: str,
) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "luxtel", "right-one"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o644)
    broker = mosquitto_factory(extra_conf=f"allow_anonymous false\npassword_file {passwords}\n")
    settings = make_settings(tmp_path / "state", broker.url, influxdb.url, influx_db, topic_root)
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    toml = settings_toml(settings).replace(
        "[mqtt]\n", f'[mqtt]\nusername = "luxtel"\npassword_file = "{secret}"\n'
    )
    done = run_luxtel(tmp_path, toml)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("luxtel: ")
    assert "check mqtt.username" in last
    assert PASSWORD not in done.stderr + done.stdout
