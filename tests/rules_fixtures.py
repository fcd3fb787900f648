"""Fixtures of the rules tests: a real Prometheus Alertmanager (child process), a real SMTP
server (aiosmtpd) and a JSON webhook (aiohttp), each on a free loopback port, plus builders of
observations and a small inventory. Import them from here (not conftest)."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from models import Observation, Reading, Status
from rules.evaluation.inventory import Device, Inventory
from servers import ServerProcess, ServerStartError, free_port

T0 = datetime(2026, 1, 10, 14, 0, tzinfo=UTC)
"""22:00 in Shanghai: night at the test devices."""


HOT_RULES = """\
rules:
  - name: hot
    source: reading
    when: has(reading.driver_temp_c)
    condition: reading.driver_temp_c > 80.0
    value: reading.driver_temp_c
    severity: major
    annotations:
      summary: "{device_id} driver at {value:.0f} °C"
"""
"""One rule, a driver over 80 °C: for the tests that run the engine inside luxtel."""


def at(minutes: float, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes)


def device(
    device_id: str, circuit: str = "C01", zone: str = "north", interval_s: int = 900
) -> Device:
    return Device(
        device_id=device_id,
        zone=zone,
        circuit=circuit,
        lat=31.23,
        lon=121.47,
        rated_power_w=60.0,
        baseline_power_w=100.0,
        report_interval_s=interval_s,
        model="LX-M60",
    )


def inventory(*devices: Device) -> Inventory:
    return Inventory.of(list(devices))


def reading(
    device_id: str, minutes: float, *, zone: str = "north", base: datetime = T0, **fields: Any
) -> Observation:
    values: dict[str, Any] = {
        "lamp_on": True,
        "power_w": 60.0,
        "voltage_v": 225.0,
        "power_factor": 0.96,
        "dim_pct": 100,
        "driver_temp_c": 45.0,
    }
    values.update(fields)
    if "energy_wh" not in values:
        # A counter that agrees with the power, as if drawn since minute 0 (pass energy_wh for
        # a series whose power changes).
        values["energy_wh"] = 1000.0 + values["power_w"] * minutes / 60
    when = at(minutes, base)
    return Observation(zone, device_id, when, when, reading=Reading(**values))


def status(device_id: str, minutes: float, *, zone: str = "north", **fields: Any) -> Observation:
    when = at(minutes)
    return Observation(zone, device_id, when, when, status=Status(**fields))


class AlertmanagerServer(ServerProcess):
    """`/usr/bin/prometheus-alertmanager` on a loopback port, its data in `data_dir`."""

    name: ClassVar[str] = "alertmanager"
    binary: ClassVar[Path] = Path("/usr/bin/prometheus-alertmanager")
    package: ClassVar[str] = "prometheus-alertmanager"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, "alertmanager.log")
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        (self.data_dir / "alertmanager.yml").write_text(
            "route:\n  receiver: nobody\n  group_wait: 1h\nreceivers:\n  - name: nobody\n"
        )

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            f"--config.file={self.data_dir / 'alertmanager.yml'}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def _is_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)

    def _choose_new_ports(self) -> bool:
        self.port = free_port()
        return True

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:  # noqa: S310
            data: list[dict[str, Any]] = orjson.loads(response.read())
            return data


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(tmp_path / "alertmanager")
    try:
        server.start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


@dataclass
class Mailbox:
    """What the SMTP server received: (recipients, subject, body) per message."""

    messages: list[tuple[list[str], str, str]] = field(default_factory=list)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        content = envelope.original_content or b""
        message = message_from_bytes(content)
        body = message.get_payload(decode=True) if not message.is_multipart() else b""
        if message.is_multipart():
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    body = part.get_payload(decode=True)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        self.box.messages.append(
            ([str(r) for r in envelope.rcpt_tos], str(message.get("Subject", "")), text)
        )
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, keeping what it receives."""
    box = Mailbox()
    port = free_port()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


@dataclass
class Webhook:
    """A JSON webhook receiver (aiohttp) in a thread of its own; `fail` answers 500 meanwhile."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(free_port())

    async def receive(request: web.Request) -> web.Response:
        if hook.fail:
            return web.Response(status=500, text="down for the test")
        hook.received.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    stop = serve_http(hook.port, receive, "webhook")
    yield hook
    stop()


def serve_http(
    port: int,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    name: str = "http",
) -> Callable[[], None]:
    """An aiohttp server answering every POST with `handler`, on `port` of loopback, in a
    thread of its own with its own event loop; returns what stops it."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    assert ready.wait(10), f"the {name} server did not start"

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return stop
