"""Typed build events and the append-only log `.mb/events.jsonl` (SPEC §9).

Events are buffered in memory and appended in batches under an exclusive
file lock; the batch's `seq` numbers continue from the last line in the file,
read under that same lock, so `seq` stays strictly increasing even with
several mb processes writing at once. Each batch is one `write` of whole
lines; a reader skips a line torn by a crash, and the next writer starts on
a fresh line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Final, NamedTuple

from mb.locks import FileLock

#: Rotate the log to events.jsonl.1 when it passes this size (one old file is kept).
MAX_LOG_BYTES: Final = 64 * 1024 * 1024


class Event(NamedTuple):
    """One event. A NamedTuple rather than an attrs class: the no-op fast path
    writes events and must not import attrs."""

    type: str
    build_id: str
    ts: str
    level: str = "info"
    target: str | None = None
    data: dict[str, Any] = {}

    def encode(self, seq: int) -> str:
        return json.dumps(self.to_json(seq), separators=(",", ":"))

    def to_json(self, seq: int) -> dict[str, Any]:
        return {"seq": seq, "ts": self.ts, "build_id": self.build_id, "type": self.type,
                "level": self.level, "target": self.target, "data": self.data}


class EncodedEvent(NamedTuple):
    """An event whose target and data are JSON text already (the no-op fast path
    replays thousands)."""

    type: str
    build_id: str
    ts: str
    level: str
    target_json: str
    data_json: str

    def encode(self, seq: int) -> str:
        return (f'{{"seq":{seq},"ts":"{self.ts}","build_id":"{self.build_id}",'
                f'"type":"{self.type}","level":"{self.level}",'
                f'"target":{self.target_json},"data":{self.data_json}}}')


def utc_timestamp(when: float | None = None) -> str:
    """`2026-11-21T20:01:02.345Z`: milliseconds, UTC.

    Every event carries one (several per action), so the formatted second is
    remembered and only the milliseconds are formatted for each call.
    """
    global _last_second
    now = time.time() if when is None else when
    second = int(now // 1)
    micro = round((now - second) * 1_000_000)  # as datetime rounds it, carry included
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    last = _last_second  # one read: a (second, text) pair another thread may replace
    if last[0] != second:
        last = (second,
                datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S."))
        _last_second = last
    return f"{last[1]}{micro // 1000:03d}Z"


#: The last second `utc_timestamp` formatted, and its text.
_last_second: tuple[int | None, str] = (None, "")


def new_build_id(state_dir: str | None = None) -> str:
    """`b-<UTC date>-<time>-<4 hex digits>`; given the workspace's state directory
    (and called under its lock), never the id of a build recorded there (two
    builds in one second share the first parts, and a manifest is named by id)."""
    while True:
        now = datetime.now(tz=timezone.utc)
        build_id = f"b-{now:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
        if state_dir is None:
            return build_id
        from mb.history import builds_dir

        if not os.path.exists(os.path.join(builds_dir(state_dir), f"{build_id}.json")):
            return build_id


def last_seq(path: str) -> int:
    """The `seq` of the last complete line of the log (0 if none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            window = 65536
            while True:  # widen the window until it holds a complete line
                f.seek(max(0, size - window))
                chunk = f.read()
                lines = chunk.splitlines()
                if window < size:
                    lines = lines[1:]  # the first one may be cut
                for line in reversed(lines):
                    try:
                        return int(json.loads(line)["seq"])
                    except (ValueError, KeyError, TypeError):
                        continue
                if window >= size:
                    return 0
                window *= 4
    except FileNotFoundError:
        return 0


class EventLog:
    """Collects events of one mb process and appends them to the shared log."""

    def __init__(self, path: str, build_id: str, flush_interval: float = 0.2) -> None:
        self.path = path
        self.build_id = build_id
        self._lock = FileLock(path + ".lock")
        self._buffer: list[Event | EncodedEvent] = []
        self._buffer_lock = threading.Lock()
        self._listeners: list[Callable[[Event], None]] = []
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._interval = flush_interval

    def emit_encoded(self, type: str, items: Iterable[tuple[str, str]],
                     ts: str | None = None) -> None:
        """Log events of one type from (target JSON, data JSON) pairs; listeners are
        not called (these are replayed, not happening)."""
        ts = ts or utc_timestamp()
        build_id = self.build_id
        encoded = [EncodedEvent(type, build_id, ts, "info", target_json, data_json)
                   for target_json, data_json in items]
        with self._buffer_lock:
            self._buffer.extend(encoded)

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def emit(self, type: str, target: str | None = None, level: str = "info",
             **data: Any) -> Event:
        event = Event(type=type, build_id=self.build_id, ts=utc_timestamp(), level=level,
                      target=target, data=data)
        with self._buffer_lock:
            self._buffer.append(event)
        for listener in self._listeners:
            listener(event)
        return event

    def start(self) -> None:
        """Flush in the background so `mb tail -f` sees events while the build runs."""
        self._flusher = threading.Thread(target=self._run, name="mb-events", daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()

    def flush(self) -> None:
        with self._buffer_lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._lock:
            self._rotate_if_large()
            seq = last_seq(self.path)
            lines = []
            for event in batch:
                seq += 1
                lines.append(event.encode(seq))
            payload = ("\n".join(lines) + "\n").encode("utf-8")
            with open(self.path, "ab") as f:
                if f.tell() > 0 and not _ends_with_newline(self.path):
                    payload = b"\n" + payload
                f.write(payload)

    def _rotate_if_large(self) -> None:
        try:
            if os.path.getsize(self.path) < MAX_LOG_BYTES:
                return
        except OSError:
            return
        seq = last_seq(self.path)
        os.replace(self.path, self.path + ".1")
        # Keep seq increasing across the rotation: the new file starts after the old one.
        with open(self.path, "ab") as f:
            marker = Event(type="log.rotated", build_id=self.build_id, ts=utc_timestamp())
            f.write((json.dumps(marker.to_json(seq + 1), separators=(",", ":")) + "\n").encode())


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_events(path: str) -> list[dict[str, Any]]:
    """Every complete event of the log, in order; torn lines are skipped."""
    events: list[dict[str, Any]] = []
    for candidate in (path + ".1", path):
        try:
            with open(candidate, "rb") as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            continue
    return events
