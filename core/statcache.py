"""A persistent stat cache: a file's digest is recomputed only when its stat changes.

An entry is keyed by path and holds (size, mtime_ns, inode, ctime_ns,
digest). ctime is included because tools that preserve mtime (`cp -p`,
`touch -r`) still move ctime. The cache is saved atomically at the end of a
build; a lost or corrupt file only costs re-hashing.

Action keys see a file through `key_digest`: its digest, marked when the file
is executable (`mb.digest.key_digest`). The mode comes from the stat taken to
check the entry anyway, so it costs no system call; a chmod moves ctime, so
the entry is checked again after one.
"""

from __future__ import annotations

import marshal
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Final

from mb.digest import EXECUTABLE_BITS, EXECUTABLE_MARK, digest_file
from mb.fsutil import atomic_write_bytes

_Entry = tuple[int, int, int, int, str]

def _racy_window_ns() -> int:
    """`MB_RACY_SECONDS` (default 2): raise it on file systems with coarse timestamps."""
    try:
        return int(float(os.environ.get("MB_RACY_SECONDS", "2")) * 1e9)
    except ValueError:
        return 2_000_000_000


#: A file changed less than this long before it was hashed is hashed again next time.
RACY_NS: Final = _racy_window_ns()


class StatCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict[str, _Entry] = {}
        self._racy: dict[str, _Entry] = {}
        self._dirty = False
        self._lock = threading.Lock()
        #: Paths `key_digest` found executable in this process (see `known_digest`).
        self._executable: set[str] = set()
        try:
            with open(path, "rb") as f:
                loaded = marshal.loads(f.read())  # loads(read()): load(f) reads item by item
            if isinstance(loaded, dict):
                self._entries = loaded
        except (OSError, EOFError, ValueError, TypeError, MemoryError):
            pass  # a lost or corrupt stat cache only costs re-hashing

    def digest(self, path: str, st: os.stat_result | None = None,
               before_hashing: Callable[[], None] | None = None,
               step_aside: Callable[[], AbstractContextManager[None]] | None = None) -> str:
        """The digest of the file at `path` (absolute); raises FileNotFoundError.

        `before_hashing` is called when the file must be read, not just stat'ed
        (the scheduler lets another worker take work meanwhile); `step_aside`
        is `mb.digest.digest_and_stat`'s, for a large file.
        """
        if st is None:
            st = os.stat(path)
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        entry = self._entries.get(path) or self._racy.get(path)
        if entry is not None and entry[:4] == signature:
            return entry[4]
        if before_hashing is not None:
            before_hashing()
        value = digest_file(path, step_aside)
        self.remember(path, st, value)
        return value

    def key_digest(self, path: str, before_hashing: Callable[[], None] | None = None,
                   step_aside: Callable[[], AbstractContextManager[None]] | None = None) -> str:
        """The file at `path` (absolute) as an action key sees it: `digest`, marked `x:`
        when the file is executable (`mb.digest.key_digest`); raises FileNotFoundError.

        The exec bit comes from the same stat the digest is checked against.
        """
        st = os.stat(path)
        value = self.digest(path, st, before_hashing, step_aside)
        if st.st_mode & EXECUTABLE_BITS:
            self._executable.add(path)
            return EXECUTABLE_MARK + value
        self._executable.discard(path)
        return value

    def remember(self, path: str, st: os.stat_result, value: str) -> None:
        """Record `value` as the digest of `path` hashed at stat `st` (by `digest`, or
        by the fast path's check, so the build that follows does not hash it again)."""
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        with self._lock:
            if trusted_signature(st) is None:
                # Changed so recently that another change within the file system's
                # timestamp granularity would leave the same stat: trust this
                # digest for this build only (git's "racily clean" problem).
                self._racy[path] = (*signature, value)
                self._entries.pop(path, None)
            else:
                self._entries[path] = (*signature, value)
            self._dirty = True

    def signature(self, path: str) -> tuple[int, int, int, int] | None:
        """The (size, mtime_ns, inode, ctime_ns) the recorded digest was computed for.

        None for a file changed too recently to trust its stat (see `digest`).
        """
        entry = self._entries.get(path)
        return None if entry is None else entry[:4]

    def hashed_signature(self, path: str) -> tuple[int, int, int, int] | None:
        """The stat this build hashed `path` at, trusted or not (for in-build checks)."""
        entry = self._entries.get(path) or self._racy.get(path)
        return None if entry is None else entry[:4]

    def known_digest(self, path: str) -> str | None:
        """The digest this build computed or trusted for `path` (racy ones included),
        marked `x:` when `key_digest` found the file executable in this process.

        The build records it in the no-op snapshot, whose check compares it
        with the bytes' plain digest (`fastpath.changed_sources`): a source that
        is executable is therefore never proven unchanged there once its stat
        moved (a chmod moves ctime) and goes to the incremental build, which
        keys it with its mode. That check compares the mode too (`_key_digest`),
        so a chmod +x of a plain file with unchanged bytes is a change as well.
        """
        entry = self._entries.get(path) or self._racy.get(path)
        if entry is None:
            return None
        return EXECUTABLE_MARK + entry[4] if path in self._executable else entry[4]

    def save(self) -> None:
        if not self._dirty:
            return
        with self._lock:
            data = marshal.dumps(self._entries)
            self._dirty = False
        atomic_write_bytes(self.path, data)


def trusted_signature(st: os.stat_result) -> tuple[int, int, int, int] | None:
    """A file's stat signature, or None when it changed too recently to trust (racy)."""
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
