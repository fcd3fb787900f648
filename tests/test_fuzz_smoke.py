"""The atheris harnesses run, briefly, in every test run; the long campaigns are run by hand
(see fuzz/fuzz_ingest.py, fuzz/fuzz_reading_lines.py). A crash or a broken invariant makes the
fuzzer exit non-zero."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("harness", "corpus"),
    [
        ("fuzz_ingest.py", "corpus"),  # decoding never raises, lines are the contract's
        ("fuzz_reading_lines.py", "corpus_reading_lines"),  # the C fast path = the full path
    ],
)
def test_the_fuzz_harness_finds_nothing_in_a_short_run(
    tmp_path: Path, harness: str, corpus: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / harness),
            str(tmp_path),
            str(ROOT / "fuzz" / corpus),
            "-runs=5000",
            "-seed=1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 5000 runs" in done.stderr
