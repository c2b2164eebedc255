"""Finding the processes a test's builds started, by their command line, and waiting."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable


def pids_running(*argv: str) -> list[int]:
    """Host pids of the processes whose command line is exactly `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if f.read() == wanted:
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def wait_for(predicate: Callable[[], object], timeout: float = 30.0,
             process: subprocess.Popen[str] | None = None) -> None:
    """Poll until `predicate` holds; fails at `timeout`, or at once if `process` ended."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.02)
