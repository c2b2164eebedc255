"""The workspace lock stays exclusive when its holder removes its file (`mb clean --all`)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from mb.locks import CACHE_GATE_FILE, CacheUse, FileLock


def test_a_waiter_does_not_keep_the_lock_of_a_removed_file(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "build.lock")
    os.makedirs(os.path.dirname(path))
    holder = FileLock(path)
    assert holder.acquire()
    waiter = FileLock(path)
    got = threading.Event()
    thread = threading.Thread(target=lambda: (waiter.acquire(), got.set()))
    thread.start()
    assert not got.wait(0.2), "the waiter waits"
    os.remove(path)  # as mb clean --all removes .mb/ with the lock held
    os.rmdir(os.path.dirname(path))
    holder.release()
    assert got.wait(10)
    thread.join()
    newcomer = FileLock(path)
    assert not newcomer.acquire(blocking=False), "one holder at a time, of the file at path"
    waiter.release()
    assert newcomer.acquire(blocking=False)
    newcomer.release()


def test_builds_share_the_cache_and_gc_waits_for_them(tmp_path) -> None:
    waited: list[str] = []
    with CacheUse(str(tmp_path), exclusive=False, on_wait=lambda: waited.append("a")), \
            CacheUse(str(tmp_path), exclusive=False, on_wait=lambda: waited.append("b")):
        assert waited == [], "builds never wait for each other"
        gc = FileLock(str(tmp_path / "use.lock"))
        assert not gc.acquire(blocking=False), "gc waits while builds hold it"
    assert gc.acquire(blocking=False)
    try:
        build = FileLock(str(tmp_path / "use.lock"), shared=True)
        assert not build.acquire(blocking=False), "a build waits while gc holds it"
    finally:
        gc.release()


def test_a_build_coming_while_gc_waits_queues_behind_it(tmp_path) -> None:
    """flock lets a new shared holder past a waiting exclusive one: overlapping builds
    kept gc out for as long as they came. gc closes a gate first."""
    running = CacheUse(str(tmp_path), exclusive=False, on_wait=lambda: None)
    running.acquire()
    gc = CacheUse(str(tmp_path), exclusive=True, on_wait=lambda: None)
    gc_in = threading.Event()
    waiter = threading.Thread(target=lambda: (gc.acquire(), gc_in.set()))
    waiter.start()
    try:
        gate = FileLock(str(tmp_path / CACHE_GATE_FILE), shared=True)
        deadline = time.monotonic() + 10
        while gate.acquire(blocking=False):  # until gc has closed the gate
            gate.release()
            assert time.monotonic() < deadline
        newcomer_waited: list[bool] = []
        newcomer = CacheUse(str(tmp_path), exclusive=False,
                            on_wait=lambda: newcomer_waited.append(True))
        late = threading.Thread(target=newcomer.acquire)
        late.start()
        late.join(timeout=0.5)
        assert late.is_alive() and newcomer_waited, "the new build waits behind gc"
        assert not gc_in.is_set(), "gc waits for the running build"
        running.release()
        assert gc_in.wait(timeout=10)
        gc.release()
        late.join(timeout=10)
        assert not late.is_alive()
        newcomer.release()
    finally:
        waiter.join(timeout=10)
