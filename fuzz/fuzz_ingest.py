"""Coverage-guided fuzzing of luxtel's ingest boundary with atheris.

    .venv/bin/python fuzz/fuzz_ingest.py fuzz/corpus -max_total_time=600

Each input is a topic, a newline and a payload (the seeds in fuzz/corpus show the shape), decoded
as a message from a device would be.
What must hold, whatever the input:
- decoding never raises: everything is either points or dead letters, never nothing;
- every point is one line whose measurement and tag set are exactly the contract's
  (`telemetry|status,device_id=<identifier>,zone=<identifier>`): no tag or field injection;
- every dead letter carries a known reason and a sentence, and its JSON round-trips.
"""

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris
import orjson

with atheris.instrument_imports():
    from ingest.adapters import DeviceDirectory, SourceRouter, load_sources
    from ingest.decode import Limits, decode
    from models import ID_PATTERN, Reason

SOURCES = Path(__file__).resolve().parent.parent / "deploy" / "sources" / "sources.example.toml"
"""The example sources (ChirpStack, The Things Stack, SenML, a vendor mapping): their topics
(`application/…`, `v3/…`, `lwm2m/…`, `vendor/…`) go through the adapters."""
DIRECTORY = DeviceDirectory(
    zones={"lum-1": "north", "lum-0043": "north", "0024befffe804ff1": "south"},
    by_eui={"0004a30b001c0530": "lum-0043"},
)
LIMITS = Limits(
    topic_root="lighting",
    max_payload_bytes=64 * 1024,
    sources=SourceRouter(load_sources(SOURCES), "lighting", DIRECTORY),
)
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
_ID = ID_PATTERN.strip("^$")
LINE = re.compile(
    rf"(telemetry|status),device_id={_ID},zone={_ID} "
    r"[a-z_]+=[^ \n]*(,[a-z_]+=[^\n]*)* -?\d+"
)


def check(data: bytes) -> None:
    head, _, payload = data.partition(b"\n")
    topic = head.decode("utf-8", "backslashreplace")
    decoded = decode(topic, payload, NOW, LIMITS)
    if not decoded.points and not decoded.dead_letters:
        raise AssertionError(f"message vanished: {topic!r} {payload!r}")
    for point in decoded.points:
        if LINE.fullmatch(point.line) is None:
            raise AssertionError(f"unexpected line {point.line!r} from {payload!r}")
    for record in decoded.dead_letters:
        if record.reason not in Reason or not record.detail:
            raise AssertionError(f"bad dead letter {record!r}")
        orjson.loads(record.to_json())


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
