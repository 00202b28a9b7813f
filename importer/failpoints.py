"""Named points where the crash tests stop a job, so a `kill -9` lands exactly there,
and where the race tests widen a window.

Off unless FERRY_FAILPOINTS names the point (the integration tests set it in a worker's
environment). A worker that reaches an enabled point writes a marker file named after it
into FERRY_FAILPOINT_DIR, then waits, to be killed. FERRY_DELAYS ("name=seconds,...")
makes ``delay(name)`` sleep that long.
"""

import os
import tempfile
import time
from pathlib import Path

WAIT_SECONDS = 120


def reached(name: str) -> None:
    enabled = os.environ.get("FERRY_FAILPOINTS", "")
    if not enabled or name not in enabled.split(","):
        return
    folder = Path(os.environ.get("FERRY_FAILPOINT_DIR", tempfile.gettempdir()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(str(os.getpid()))
    time.sleep(WAIT_SECONDS)


def delay(name: str) -> None:
    for entry in os.environ.get("FERRY_DELAYS", "").split(","):
        point, _, seconds = entry.partition("=")
        if point == name and seconds:
            time.sleep(float(seconds))
