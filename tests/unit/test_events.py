"""The event log (`mb.events`): strictly increasing `seq` across writers, torn lines, timestamps."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mb import events as events_module
from mb.events import EventLog, last_seq, new_build_id, read_events, utc_timestamp

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def seqs(path: Path) -> list[int]:
    return [e["seq"] for e in read_events(str(path))]


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


# --- format -------------------------------------------------------------------------


def test_event_lines_follow_the_spec(tmp_path: Path) -> None:
    path = tmp_path / ".mb" / "events.jsonl"
    log = EventLog(str(path), "b-20260101-000000-abcd")
    log.emit("build.started", patterns=["//..."])
    log.emit("action.finished", target="//a:t", cached=False, outputs={"mb-out/a/t.png": "d"})
    log.emit("action.failed", target="//a:u", level="error", error="boom")
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    for record in records:
        assert list(record) == ["seq", "ts", "build_id", "type", "level", "target", "data"]
        assert ISO_UTC.match(record["ts"]), record["ts"]
    assert [(r["seq"], r["type"], r["level"], r["target"], r["data"]) for r in records] == [
        (1, "build.started", "info", None, {"patterns": ["//..."]}),
        (2, "action.finished", "info", "//a:t",
         {"cached": False, "outputs": {"mb-out/a/t.png": "d"}}),
        (3, "action.failed", "error", "//a:u", {"error": "boom"}),
    ]
    assert {r["build_id"] for r in records} == {"b-20260101-000000-abcd"}


def test_utc_timestamp_is_iso8601_utc_with_milliseconds() -> None:
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(1.2345) == "1970-01-01T00:00:01.234Z"
    assert utc_timestamp(1_795_000_000.5) == "2026-11-18T11:06:40.500Z"
    now = utc_timestamp()
    assert ISO_UTC.match(now)
    parsed = datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(tz=timezone.utc) - parsed).total_seconds()) < 3600


def test_utc_timestamp_within_and_across_seconds_matches_datetime() -> None:
    # The formatted second is remembered: calls in the same second, the next
    # one, and an earlier one again must all come out as datetime formats them.
    for when in (1_795_000_000.001, 1_795_000_000.999, 1_795_000_001.0, 1_795_000_000.25,
                 1_795_003_599.5, 86_399.9):
        moment = datetime.fromtimestamp(when, tz=timezone.utc)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert utc_timestamp(when) == expected


def test_build_id_format() -> None:
    for _ in range(5):
        assert re.match(r"^b-\d{8}-\d{6}-[0-9a-f]{4}$", new_build_id())


def test_listeners_see_every_event_before_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(str(path), "b")
    seen: list[tuple[str, str | None]] = []
    log.subscribe(lambda event: seen.append((event.type, event.target)))
    log.emit("a", target="//x:y")
    log.emit("b")
    assert seen == [("a", "//x:y"), ("b", None)]
    assert not path.exists()
    log.close()
    assert seqs(path) == [1, 2]


def test_flush_without_events_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    EventLog(str(path), "b").flush()
    assert not path.exists()


# --- seq across writers ---------------------------------------------------------------


def test_two_builds_in_sequence_continue_the_seq(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for build in ("b1", "b2"):
        log = EventLog(str(path), build)
        for i in range(3):
            log.emit("e", n=i)
        log.close()
    events = read_events(str(path))
    assert [(e["seq"], e["build_id"]) for e in events] == [
        (1, "b1"), (2, "b1"), (3, "b1"), (4, "b2"), (5, "b2"), (6, "b2")]


def _write_many(path: str, build_id: str, count: int, start: threading.Barrier | None) -> None:
    log = EventLog(path, build_id)
    if start is not None:
        start.wait()
    for i in range(count):
        log.emit("tick", n=i)
        if i % 3 == 0:
            log.flush()
    log.close()


def test_two_logs_flushing_from_threads_interleave_with_increasing_seq(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    start = threading.Barrier(3)
    threads = [threading.Thread(target=_write_many, args=(str(path), f"b{i}", 200, start))
               for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = read_events(str(path))
    assert len(events) == 600
    assert [e["seq"] for e in events] == list(range(1, 601))
    for build in ("b0", "b1", "b2"):
        assert [e["data"]["n"] for e in events if e["build_id"] == build] == list(range(200))


def _process_writer(path: str, build_id: str, count: int, start) -> None:  # type: ignore[no-untyped-def]
    start.wait()
    _write_many(path, build_id, count, None)


def test_two_processes_writing_at_once_keep_seq_strictly_increasing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    procs = [context.Process(target=_process_writer, args=(str(path), f"p{i}", 300, start))
             for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    events = read_events(str(path))
    assert [e["seq"] for e in events] == list(range(1, 601))
    for build in ("p0", "p1"):
        assert [e["data"]["n"] for e in events if e["build_id"] == build] == list(range(300))


def test_background_flusher_writes_while_running(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(str(path), "b", flush_interval=0.01)
    log.start()
    try:
        for i in range(50):
            log.emit("tick", n=i)
    finally:
        log.close()
    assert seqs(path) == list(range(1, 51))


# --- torn lines and rotation ---------------------------------------------------------------


def test_torn_last_line_is_skipped_and_the_next_batch_starts_a_fresh_line(
        tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(str(path), "b1")
    log.emit("first")
    log.emit("second")
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"ts":"2026-01-01T00:00:00.000Z","build_id":"b1","ty')  # a crash
    assert last_seq(str(path)) == 2
    log = EventLog(str(path), "b2")
    log.emit("third")
    log.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[2].startswith(b'{"seq":3,"ts":"2026') and lines[2].endswith(b'"ty')
    assert json.loads(lines[3])["seq"] == 3 and json.loads(lines[3])["type"] == "third"
    assert [(e["seq"], e["type"]) for e in read_events(str(path))] == [
        (1, "first"), (2, "second"), (3, "third")]


def test_last_seq_of_missing_empty_and_garbage_files(tmp_path: Path) -> None:
    assert last_seq(str(tmp_path / "nope")) == 0
    (tmp_path / "empty").write_bytes(b"")
    assert last_seq(str(tmp_path / "empty")) == 0
    (tmp_path / "garbage").write_bytes(b"not json\n{}\n[1]\n")
    assert last_seq(str(tmp_path / "garbage")) == 0


def test_seq_continues_after_an_event_longer_than_64k(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(str(path), "b")
    log.emit("action.finished", outputs={f"mb-out/p/frame_{i:05d}.png": "d" * 64
                                         for i in range(1000)})
    log.close()
    log = EventLog(str(path), "b")
    log.emit("next")
    log.close()
    assert seqs(path) == [1, 2]


def test_rotation_keeps_seq_increasing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "MAX_LOG_BYTES", 400)
    path = tmp_path / "events.jsonl"
    for batch in range(3):
        log = EventLog(str(path), "b")
        for i in range(4):
            log.emit("tick", n=batch * 4 + i)
        log.close()
    assert (tmp_path / "events.jsonl.1").exists()
    values = seqs(path)
    assert strictly_increasing(values)
    ticks = [e["data"]["n"] for e in read_events(str(path)) if e["type"] == "tick"]
    assert ticks == sorted(ticks) and ticks[-1] == 11
    assert "log.rotated" in [e["type"] for e in read_events(str(path))]


def test_a_new_build_id_is_never_that_of_a_recorded_build(tmp_path, monkeypatch) -> None:
    """Two builds in one second share the date and time parts; the id names the
    manifest, so under the lock the next id skips one already recorded."""
    import datetime as real_datetime
    import os

    import mb.events

    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def]
            return real_datetime.datetime(2026, 11, 30, 3, 30, 0, tzinfo=tz)

    randoms = iter([b"\x3f\x9c", b"\x3f\x9c", b"\x00\x01"])
    monkeypatch.setattr(mb.events, "datetime", Frozen)
    monkeypatch.setattr(mb.events.os, "urandom", lambda n: next(randoms))
    first = mb.events.new_build_id(str(tmp_path))
    assert first == "b-20261130-033000-3f9c"
    os.makedirs(tmp_path / "builds")
    (tmp_path / "builds" / f"{first}.json").write_text("{}")
    assert mb.events.new_build_id(str(tmp_path)) == "b-20261130-033000-0001"
