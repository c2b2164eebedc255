"""Crash-safe file operations: write to a temporary file, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading


def atomic_write_bytes(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never a part."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory,
                       f".tmp-{os.getpid()}-{threading.get_ident()}-{os.path.basename(path)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:  # created with its final mode (a 0444 file is still writable through this fd)
        fd = os.open(tmp, flags, mode)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, flags, mode)
    except FileExistsError:  # left by a killed process that had the same pid
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def discard(path: str) -> None:
    """Remove a temporary file that may or may not be there (cleanup after a failure)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def place_file(source: str, target: str) -> None:
    """Make `target` a hard link to `source` (a copy across file systems), atomically."""
    directory = os.path.dirname(target)
    tmp = os.path.join(directory,
                       f".tmp-{os.getpid()}-{threading.get_ident()}-{os.path.basename(target)}")
    for attempt in (1, 2):
        try:
            os.link(source, tmp)
            break
        except FileNotFoundError:
            if attempt == 2 or not os.path.exists(source):
                raise
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:  # left by a killed build
            os.unlink(tmp)
        except OSError:  # another file system: copy
            os.makedirs(directory, exist_ok=True)
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o444)
            break
    os.replace(tmp, target)


def remove_tree(path: str) -> None:
    """Remove a directory tree, including read-only files and directories."""
    def make_writable(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable) if os.path.lexists(path) else None
