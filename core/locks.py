"""Inter-process locks on a file (`flock`), for the workspace, the event log and the cache.

A thin wrapper over `fcntl.flock` rather than the filelock package: this is
on the path of every no-op build, and importing filelock (logging, inspect,
asyncio support) costs more than the whole no-op check. flock locks are
released by the kernel when the process dies, so a killed build never leaves
a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any


class FileLock:
    """Exclusive, or `shared` with the other shared holders (readers and writer)."""

    def __init__(self, path: str, shared: bool = False) -> None:
        self.path = path
        self._mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with `blocking=False`, return False instead of waiting.

        The file may be removed by its holder (`mb clean --all` removes .mb/):
        a waiter that then gets the lock of the removed file would run beside
        a newcomer locking a new one, so the lock counts only while the file
        at `path` is still the one locked; else it is taken again.
        """
        while True:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, self._mode | (0 if blocking else fcntl.LOCK_NB))
                if _same_file(fd, self.path):
                    self._fd = fd
                    return True
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # removed while we waited: lock the file there now

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (held.st_ino, held.st_dev)


#: The workspace lock's file in `.mb/`.
LOCK_FILE = "build.lock"


class WaitingLock:
    """A lock whose holder, if it has to wait, says so once (`on_wait`) first."""

    def __init__(self, path: str, shared: bool, on_wait: Callable[[], None]) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._lock = FileLock(path, shared=shared)
        self._on_wait = on_wait

    def acquire(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._on_wait()
            self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> WaitingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkspaceLock(WaitingLock):
    """One build at a time per workspace; a second one waits, saying so once."""

    def __init__(self, workspace: Any, on_wait: Callable[[], None]) -> None:
        """`workspace` is a Workspace or the path of its state directory."""
        state_dir = getattr(workspace, "state_dir", workspace)
        super().__init__(os.path.join(state_dir, LOCK_FILE), False, on_wait)


#: The locks' files in a cache directory (beside cas/ and ac/, which `gc` counts).
CACHE_LOCK_FILE = "use.lock"
CACHE_GATE_FILE = "gate.lock"


class CacheUse(WaitingLock):
    """Builds using a cache directory hold this shared; `mb gc` holds it exclusively.

    So gc never removes a blob between a build seeing it and linking it (a
    cache hit, a staged input, an output whose blob another workspace had
    stored), nor a blob that a result the build has yet to write names: each
    of those failed builds of other workspaces sharing the cache, or left a
    result line naming a collected blob. A build waits for a running gc and
    gc for the running builds, each saying so once (`on_wait`). Builds never
    wait for each other.

    `flock` does not make a new shared holder queue behind a waiting exclusive
    one, so on a busy shared cache overlapping builds kept gc out for as long
    as they came. gc therefore first closes a gate (`CACHE_GATE_FILE`,
    exclusively) and then waits for the builds inside; a build passes the
    gate (shared, for an instant) before it takes `CACHE_LOCK_FILE`, so one
    that comes while gc waits queues behind it.
    """

    def __init__(self, cache_dir: str, exclusive: bool, on_wait: Callable[[], None]) -> None:
        super().__init__(os.path.join(cache_dir, CACHE_LOCK_FILE), not exclusive, on_wait)
        self._gate = FileLock(os.path.join(cache_dir, CACHE_GATE_FILE), shared=not exclusive)
        self._exclusive = exclusive

    def acquire(self) -> None:
        waited = False
        for lock in (self._gate, self._lock):
            if not lock.acquire(blocking=False):
                if not waited:
                    self._on_wait()
                    waited = True
                lock.acquire()
        if not self._exclusive:
            self._gate.release()  # through: the gate only orders builds behind a gc

    def release(self) -> None:
        self._lock.release()
        if self._exclusive:
            self._gate.release()
