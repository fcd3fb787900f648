"""The atheris harnesses run, briefly, in every test run; the long campaigns are run by hand
(see fuzz/fuzz_ingest.py, fuzz/fuzz_reading_lines.py). A crash or a broken invariant makes the
fuzzer exit non-zero."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_fuzz_harness_finds_nothing_in_a_short_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_ingest.py"),
            str(tmp_path),
            str(ROOT / "fuzz" / "corpus"),
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


def test_the_fast_path_harness_finds_no_disagreement_in_a_short_run(tmp_path: Path) -> None:
    """The C fast path against the full pydantic path (fuzz/fuzz_reading_lines.py)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_reading_lines.py"),
            str(tmp_path),
            str(ROOT / "fuzz" / "corpus_reading_lines"),
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
