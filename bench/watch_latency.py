#!/usr/bin/env python3
"""How fast `mb watch` turns a save into a rebuilt output, and what it costs while idle.

    .venv/bin/python bench/watch_latency.py                    # 1,000 targets, 20 saves
    .venv/bin/python bench/watch_latency.py --targets 10000 --repeat 10

It generates a workspace of N independent `genrule` targets (`cp` of a small
file, 100 per package, the shape of the harness's `wide1k`), starts
`mb watch -q //...`, waits for its first build, then saves one source at a
time and measures the wall time from just before the write to the moment
the rebuilt output in `mb-out/` has the new bytes (polled every 0.5 ms). It
waits for that rebuild to finish before the next save. The log's timestamps
split each latency into detection (save -> `watch.change`) and the rest.
Last, it measures the watcher's CPU use (user + system, all its threads)
over an idle period.

Targets (issue: mb watch): median save-to-output <= 300 ms for a one-action
change in a 1,000-target workspace; idle CPU <= 1 %. Timings are not test
assertions (STYLE: no timing asserts), so this lives in bench/, not tests/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PER_PACKAGE = 100


def generate(root: Path, targets: int) -> None:
    """The workspace, unless an identical one (same target count) is already there."""
    stamp = root / "bench-targets.txt"
    if stamp.exists() and stamp.read_text() == str(targets):
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "MB.toml").write_text("")
    for package in range((targets + PER_PACKAGE - 1) // PER_PACKAGE):
        folder = root / f"p{package:03d}"
        folder.mkdir()
        lines = []
        for i in range(min(PER_PACKAGE, targets - package * PER_PACKAGE)):
            (folder / f"s{i}.txt").write_text(f"source {package} {i}\n")
            lines.append(f'[t{i}]\nrule = "genrule"\nsrcs = ["s{i}.txt"]\n'
                         f'outs = ["t{i}.out"]\ncmd = "cp $< $@"\n')
        (folder / "BUILD.toml").write_text("\n".join(lines))
    stamp.write_text(str(targets))


class EventTail:
    """Reads `.mb/events.jsonl` incrementally: the log grows by ~1,000 events per build."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".mb" / "events.jsonl"
        self.offset = 0
        self.finished = 0
        self.changes: list[dict[str, Any]] = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            if b'"build.finished"' in line:
                self.finished += 1
            elif b'"watch.change"' in line:
                self.changes.append(json.loads(line))

    def finished_count(self) -> int:
        self.poll()
        return self.finished


def wait_until(predicate: Any, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            sys.exit(f"mb watch exited with {proc.returncode}")
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for mb watch")
        time.sleep(0.002)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_ts(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def measure(root: Path, repeat: int, idle: float) -> dict[str, Any]:
    (root / ".mb").mkdir(exist_ok=True)
    with open(root / ".mb" / "watch-bench.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mb", "watch", "-q", "//..."], cwd=root,
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_COLOR": "1"})
        return drive(root, proc, repeat, idle)


def drive(root: Path, proc: subprocess.Popen[bytes], repeat: int, idle: float
          ) -> dict[str, Any]:
    try:
        tail = EventTail(root)
        before = tail.finished_count()
        wait_until(lambda: tail.finished_count() > before, proc, timeout=900)
        latencies, detections = [], []
        packages = sorted(p.name for p in root.iterdir() if p.name.startswith("p"))
        for i in range(repeat):
            package = packages[i % len(packages)]
            source = root / package / f"s{i % PER_PACKAGE}.txt"
            output = root / "mb-out" / package / f"t{i % PER_PACKAGE}.out"
            content = f"edit {i} at {time.time()}\n".encode()
            done = tail.finished_count()
            saved_wall, started = time.time(), time.perf_counter()
            source.write_bytes(content)
            while True:
                try:
                    if output.read_bytes() == content:
                        break
                except OSError:
                    pass
                if time.perf_counter() - started > 60:
                    sys.exit(f"no rebuilt output for {source}")
                time.sleep(0.0005)
            latencies.append(time.perf_counter() - started)
            wait_until(lambda done=done: tail.finished_count() > done, proc, timeout=60)
            change = tail.changes[-1]
            detections.append(parse_ts(change["ts"]) - saved_wall)
        time.sleep(0.5)  # let the last build's report and the event flusher settle
        cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle)
        idle_cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    return {"latencies": latencies, "detections": detections, "idle_cpu": idle_cpu,
            "exit": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU sampling")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mb-watch-bench"))
    args = parser.parse_args()
    root = args.dir / f"wide{args.targets}"
    generate(root, args.targets)
    result = measure(root, args.repeat, args.idle)
    ms = sorted(x * 1000 for x in result["latencies"])
    detect = sorted(x * 1000 for x in result["detections"])
    print(f"mb watch, {args.targets} targets, {len(ms)} saves of one source:")
    print(f"  save -> rebuilt output: median {statistics.median(ms):.0f} ms "
          f"(min {ms[0]:.0f}, p90 {ms[int(len(ms) * 0.9) - 1]:.0f}, max {ms[-1]:.0f})  "
          f"target <= 300 ms")
    print(f"  of which save -> watch.change: median {statistics.median(detect):.0f} ms")
    print(f"  idle CPU over {args.idle:g} s: {result['idle_cpu'] * 100:.2f} %  target <= 1 %")
    print(f"  exit code after SIGINT: {result['exit']}")


if __name__ == "__main__":
    main()
