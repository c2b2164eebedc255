#!/usr/bin/env python3
"""Profile one `mb build` including its worker threads (cProfile sees only the main thread).

    cd <workspace> && /work/main/.venv/bin/python /work/main/bench/profile_build.py OUT.prof -j2 //...

Each scheduler worker (`scheduler._Run.work`) runs under a cProfile.Profile
of its own; the main thread's profile and every worker profile are
merged into OUT.prof (main) and OUT.prof.workers, readable with pstats.
Why: a clean build spends most of its time in the worker threads (staging,
spawning, collecting outputs), which a plain `python -m cProfile` misses.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import threading
import time

from mb import scheduler


def main() -> int:
    out = sys.argv[1]
    # MB_PROFILE_CPU=1: count each worker's CPU time, not wall time (waits vanish).
    timer = time.thread_time if os.environ.get("MB_PROFILE_CPU") == "1" else None
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original = scheduler._Run.work

    def profiled_work(self):  # type: ignore[no-untyped-def]
        prof = cProfile.Profile(timer) if timer else cProfile.Profile()
        with lock:
            profiles.append(prof)
        prof.enable()
        try:
            return original(self)
        finally:
            prof.disable()

    scheduler._Run.work = profiled_work  # type: ignore[method-assign]
    from mb.cli import main as mb_main

    main_prof = cProfile.Profile()
    main_prof.enable()
    try:
        code = mb_main(["build", *sys.argv[2:]])
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        main_prof.disable()
    main_prof.dump_stats(out)
    if profiles:
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(out + ".workers")
    return code


if __name__ == "__main__":
    sys.exit(main())
