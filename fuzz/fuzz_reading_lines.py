"""Coverage-guided fuzzing of the decoder's C fast path (`ingest/reading_lines.c`) against the
full pydantic path, with atheris.

    .venv/bin/python fuzz/fuzz_reading_lines.py /tmp/rl fuzz/corpus_reading_lines -max_total_time=60

Each input is a payload (the seeds in fuzz/corpus_reading_lines are readings and batches), decoded
as a device's telemetry, as a gateway's batch, and wrapped in `[...]` as a batch, each both with
and without the fast path — three times in a row, as one socket read's burst, each path with its
own memory of receive stamps (so readings without `ts` get a ms more each time, on both alike).
Whatever the input, the two paths must decide the same (the rule of tests/test_fast_path.py
`same`): the same lines as typed values, field names and order, and time; the same dead letters;
the same observations. Decoding with observations off must write the same lines as with them on
(the C module's two modes).

Whether decoding may raise at all is fuzz/fuzz_ingest.py's concern: here, if one path raises,
the other must raise the same error.

With the module as pip builds it, only the Python side's coverage guides the fuzzer (which path
decided, which rejection). For coverage of the C code itself, and ASan, build an instrumented
module in a copy of the tree as fuzz/coverage_counters.c says, preload atheris's
`asan_with_fuzzer.so` and set PYTHONMALLOC=malloc (or ASan cannot see past a small payload).
"""

import sys
from datetime import UTC, datetime
from typing import Any

import atheris

with atheris.instrument_imports():
    from ingest.decode import Decoded, Limits, decode_into
    from models import Reading
    from models.timestamps import epoch_ms

NOW = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
BURST = 3
"""Times each input is decoded in a row, with one memory of receive stamps."""


def limits(observe: bool = True) -> Limits:
    """Limits with nothing stamped yet."""
    return Limits(
        topic_root="lighting", max_payload_bytes=4096, max_clock_skew_s=300, observe=observe
    )


TELEMETRY = "lighting/north/lum-1/telemetry"
BATCH = "lighting/north/gw-1/batch"


def fields_of(line: str) -> tuple[str, dict[str, bool | int | float], str]:
    """A reading's line as (series, typed field values, time): the fast path copies a plain
    decimal as sent (`42.50`), the full path writes Python's repr (tests/test_fast_path.py)."""
    series, fields, time = line.split(" ")
    values: dict[str, bool | int | float] = {}
    for pair in fields.split(","):
        name, text = pair.split("=")
        if text in ("true", "false"):
            values[name] = text == "true"
        elif text.endswith("i"):
            values[name] = int(text[:-1])
        else:
            if "." not in text and "e" not in text:
                raise AssertionError(f"a float field must read as a float: {pair}")
            values[name] = float(text)
    return series, values, time


def names(line: str) -> list[str]:
    return [pair.split("=")[0] for pair in line.split(" ")[1].split(",")]


def summary(decoded: Decoded) -> list[Any]:
    """What the two paths must agree on, as one comparable value."""
    return [
        [fields_of(p.line) for p in decoded.points],
        [names(p.line) for p in decoded.points],
        [p.topic for p in decoded.points],
        [(d.reason, d.detail, d.index) for d in decoded.dead_letters],
        decoded.unknown_fields,
        [
            (
                o.zone,
                o.device_id,
                o.at,
                o.received_at,
                o.reading.model_dump() if isinstance(o.reading, Reading) else None,
                o.reading.model_fields_set if isinstance(o.reading, Reading) else None,
            )
            for o in decoded.observations
        ],
    ]


def outcome(topic: str, payload: bytes, observe: bool, fast: bool) -> tuple[str, Any]:
    decoded, memory = Decoded(), limits(observe)
    try:
        for _ in range(BURST):
            decode_into(decoded, topic, payload, NOW, epoch_ms(NOW), memory, None, fast)
    except Exception as error:  # compared with the other path's outcome by the caller
        return "raised", (type(error).__name__, str(error))
    return "decoded", decoded


def check_topic(topic: str, payload: bytes) -> None:
    kind, fast = outcome(topic, payload, True, fast=True)
    full_kind, full = outcome(topic, payload, True, fast=False)
    if kind == "raised" or full_kind == "raised":
        if (kind, fast) != (full_kind, full):
            raise AssertionError(f"{topic} {payload!r}: fast {kind} {fast!r}, full {full_kind}")
        return
    fast_summary, full_summary = summary(fast), summary(full)
    if fast_summary != full_summary:
        raise AssertionError(
            f"{topic} {payload!r}:\n fast {fast_summary!r}\n full {full_summary!r}"
        )
    if not fast.points:
        return
    lines_kind, lines_only = outcome(topic, payload, False, fast=True)
    lines = [p.line for p in lines_only.points] if lines_kind == "decoded" else lines_only
    if lines != [p.line for p in fast.points]:
        raise AssertionError(f"{topic} {payload!r}: without observations {lines!r}")


def check(data: bytes) -> None:
    check_topic(TELEMETRY, data)
    check_topic(BATCH, data)
    check_topic(BATCH, b"[" + data + b"]")


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
