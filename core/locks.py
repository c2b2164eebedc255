"""Exclusive inter-process locks on a file (`flock`), for the workspace and the event log.

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
    def __init__(self, path: str) -> None:
        self.path = path
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
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
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


class WorkspaceLock:
    """One build at a time per workspace; a second one waits, saying so once."""

    def __init__(self, workspace: Any, on_wait: Callable[[], None]) -> None:
        """`workspace` is a Workspace or the path of its state directory."""
        state_dir = getattr(workspace, "state_dir", workspace)
        os.makedirs(state_dir, exist_ok=True)
        self._lock = FileLock(os.path.join(state_dir, LOCK_FILE))
        self._on_wait = on_wait

    def __enter__(self) -> WorkspaceLock:
        if not self._lock.acquire(blocking=False):
            self._on_wait()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
