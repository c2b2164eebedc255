#!/usr/bin/env python3
"""Where the single-core part of a clean build goes: wall time of the main thread's phases.

    python3 bench/phases.py /tmp/mb-bench-venv/bin/python /tmp/bench/mb/wide1k 7

Runs N clean builds (`.mb/` and `mb-out/` removed first, as the harness's
scenario `a`) of the workspace with the given interpreter, each in a fresh
process that wraps the functions below with a timer, and prints the median
milliseconds of each phase. Only calls from the main thread count: the
workers' time is `profile_build.py`'s job, and the action phase shows as
`Scheduler.run`. Timings are not assertions; this is never collected by pytest.

Why wrappers, not cProfile: a profiler slows Python calls 1.5-2× and so
inflates the phases made of many small calls (analysis) against the ones
spent in system calls and C (imports, pickling); a timer around each
phase costs microseconds.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys

#: module:qualified.name of each phase timed, in the order a build reaches them.
PHASES = (
    "mb.plugins:load_plugins",
    "mb.analysis:Analysis.expand",
    "mb.analysis:Analysis.analyze_all",
    "mb.build:make_sandbox",
    "mb.build:Executor",
    "mb.build:Scheduler.run",
    "mb.executor:Executor.close",
    "mb.build:_target_result",
    "mb.build:write_manifest",
    "mb.build:_record_fastpath",
    "mb.build:run_build",
)

# Runs in the measured interpreter: imports mb, wraps PHASES, builds, prints JSON.
_INNER = r"""
import importlib, json, sys, threading, time
started = time.perf_counter()
spent = {}
import mb.cli
before = time.perf_counter()
import mb.analysis, mb.build, mb.cmd_build, mb.executor, mb.history, mb.plugins, mb.scheduler
spent["imports of a build"] = time.perf_counter() - before

def timed(spec):
    module, _, qualname = spec.partition(":")
    owner = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return original(*args, **kwargs)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[spec] = spent.get(spec, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

for spec in sys.argv[1:]:
    timed(spec)
try:
    mb.cli.main(["build", "-j2", "//..."])
except SystemExit:
    pass
spent["total (from interpreter start-up)"] = time.perf_counter() - started
print(json.dumps(spent), file=sys.stderr)
"""


def main() -> int:
    python, workspace, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    results: list[dict[str, float]] = []
    for _ in range(runs):
        shutil.rmtree(f"{workspace}/.mb", ignore_errors=True)
        shutil.rmtree(f"{workspace}/mb-out", ignore_errors=True)
        proc = subprocess.run([python, "-c", _INNER, *PHASES], cwd=workspace,
                              capture_output=True, text=True, check=False)
        results.append(json.loads(proc.stderr.strip().splitlines()[-1]))
    for name in results[0]:
        values = [r.get(name, 0.0) for r in results]
        print(f"{1e3 * statistics.median(values):9.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
