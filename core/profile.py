"""`mb build --profile FILE`: a Chrome trace (chrome://tracing, Perfetto) of one build.

Complete events (`ph: "X"`) with microsecond `ts`/`dur`; one lane (`tid`) per
thread: the main thread (analysis) and each worker (cache look-ups and actions).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any


class Profiler:
    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lanes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._origin = time.perf_counter()

    def _lane(self) -> int:
        name = threading.current_thread().name
        with self._lock:
            if name not in self._lanes:
                self._lanes[name] = len(self._lanes) + 1
            return self._lanes[name]

    @contextmanager
    def span(self, name: str, category: str, **args: Any) -> Iterator[None]:
        lane = self._lane()
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            with self._lock:
                self._events.append({
                    "name": name, "cat": category, "ph": "X", "pid": os.getpid(),
                    "tid": lane, "ts": round((start - self._origin) * 1e6, 3),
                    "dur": round((end - start) * 1e6, 3), "args": args})

    def write(self, path: str) -> None:
        meta = [{"name": "thread_name", "ph": "M", "pid": os.getpid(), "tid": lane,
                 "args": {"name": "main" if name == "MainThread" else name}}
                for name, lane in self._lanes.items()]
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"traceEvents": meta + self._events, "displayTimeUnit": "ms"}, f)


class NullProfiler(Profiler):
    """Used when no --profile is asked for: a span is one shared, empty context."""

    def span(self, name: str, category: str,  # type: ignore[override]
             **args: Any) -> AbstractContextManager[None]:
        return _NO_SPAN

    def write(self, path: str) -> None:  # pragma: no cover - never called
        pass


_NO_SPAN: AbstractContextManager[None] = nullcontext()
