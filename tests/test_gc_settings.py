"""`luxtel run` spaces the garbage collector out and freezes what start-up built (in a process
of its own here, so the test process keeps its collector as it was)."""

import json
import subprocess
import sys

from common.gc_settings import OLDER_THRESHOLDS, YOUNG_THRESHOLD

CHECK = """
import gc, json
from common.gc_settings import tune_for_ingest
before = gc.get_freeze_count()
tune_for_ingest()
print(json.dumps([gc.get_threshold(), before, gc.get_freeze_count()]))
"""


def test_the_collector_is_tuned_for_ingest() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    threshold, before, after = json.loads(done.stdout)
    assert threshold == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    assert YOUNG_THRESHOLD > 700, "less often than CPython's default"
    assert before == 0
    assert after > 1000, "start-up's objects are frozen"
