"""Content digests: the only module that imports blake3.

Files are hashed with blake3 (multithreaded for very large files, where the
Rust implementation splits the input across cores); structured values are
hashed through a canonical JSON encoding so the same value always gives the
same digest on every machine.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final

from blake3 import blake3

#: Files at least this large are mapped, not read.
_LARGE_FILE: Final = 1 << 20
#: Files at least this large are hashed with blake3's multithreading. Below it,
#: a build keeps the cores busy with other actions and other hashes, and Rayon's
#: splitting and waiting lose more than the second thread gains: with the other
#: core busy, 100 files of 5 MiB hashed in 0.21 s on one thread and 0.25-0.33 s
#: threaded (docs/performance.md). A single large video is where the latency of
#: one hash matters and the other cores are likely idle.
_THREADED_FILE: Final = 64 << 20


def digest_bytes(data: bytes) -> str:
    return blake3(data).hexdigest()


#: Any of these mode bits makes a file executable, for keys and for the cache.
EXECUTABLE_BITS: Final = 0o111
#: How an action key marks the digest of an executable input or tool (`key_digest`).
EXECUTABLE_MARK: Final = "x:"


def digest_file(path: str, step_aside: Callable[[], AbstractContextManager[None]] | None = None
                ) -> str:
    """The blake3 hex digest of a file's bytes (see `digest_and_stat`)."""
    return digest_and_stat(path, step_aside)[0]


def digest_and_stat(path: str, step_aside: Callable[[], AbstractContextManager[None]] | None = None
                    ) -> tuple[str, os.stat_result]:
    """The blake3 hex digest of a file's bytes, and the file's stat while it was read.

    A large file is mapped, not read (no copy out of the page cache), and a
    very large one is hashed on every core; its size comes from fstat, so
    none of it is read twice. A small one is read with plain `os` calls:
    four system calls where a Python file object makes eight, which matters
    on a scheduler worker, where each system call gives the GIL away
    (docs/performance.md). The stat is that fstat, so a caller that needs
    the file's mode (is an output executable?) gets it without another call.

    A large file is hashed inside `step_aside()`: a worker thread lets the
    others have their turn meanwhile (`mb.sandbox.base.WorkerTurns`).
    """
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a device (/dev/zero never ends)
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        size = st.st_size
        if size < _LARGE_FILE:
            return blake3(_read_to_end(fd, size)).hexdigest(), st
    finally:
        os.close(fd)
    hasher = blake3(max_threads=blake3.AUTO if size >= _THREADED_FILE else 1)
    with step_aside() if step_aside is not None else contextlib.nullcontext():
        hasher.update_mmap(path)
    return hasher.hexdigest(), st


class NotRegularFile(OSError):
    """A path to hash is a FIFO, a device or a socket: its bytes are no content."""


def key_digest(digest: str, mode: int) -> str:
    """A file as an action key sees it: its digest, marked `x:` when it is executable.

    The mode is part of what an action reads (a tool that lost its exec bit
    no longer runs; a script may test `-x`), so the same bytes with another
    exec bit must give another key, as in Bazel and Make. Only executable
    files are marked, so the keys of actions that read none stay as they were.
    """
    return EXECUTABLE_MARK + digest if mode & EXECUTABLE_BITS else digest


def split_key_digest(value: str) -> tuple[str, bool]:
    """`key_digest`'s inverse: (the content digest, whether the file is executable)."""
    if value.startswith(EXECUTABLE_MARK):
        return value[len(EXECUTABLE_MARK):], True
    return value, False


def _read_to_end(fd: int, size: int) -> bytes:
    """The rest of a file expected to hold `size` bytes: one read asks for one byte
    more, and a short read of a regular file is its end; one that grew is read on."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of a JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest_value(value: Any) -> str:
    return blake3(canonical_json(value)).hexdigest()
