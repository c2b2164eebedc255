"""Crash-safe file operations: write to a temporary file, then rename over the target."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from typing import Final


#: The name prefix of a file prepared beside its target before the rename into place.
TEMPORARY_PREFIX: Final = ".tmp-"


def _temporary_path(path: str) -> str:
    """Where to prepare `path` before renaming it into place: beside it (same file
    system), named per process and thread. `mb gc` spares a young `.tmp-` file
    (`TEMPORARY_PREFIX`)."""
    return os.path.join(os.path.dirname(path) or ".", f"{TEMPORARY_PREFIX}{os.getpid()}-"
                        f"{threading.get_ident()}-{os.path.basename(path)}")


def remove_temporaries(directory: str, names: list[str] | None = None) -> None:
    """Remove the temporary files (`TEMPORARY_PREFIX`) a killed process left in
    `directory` (not below it; `names`: its listing, if the caller has it).

    Only for a directory no other process writes into meanwhile: the
    workspace's own, under the workspace lock (never a shared cache's).
    """
    if names is None:
        try:
            names = os.listdir(directory)
        except OSError:
            return
    for name in names:
        if name.startswith(TEMPORARY_PREFIX):
            discard(os.path.join(directory, name))


def remove_temporaries_below(directory: str) -> None:
    """`remove_temporaries` in `directory` and every folder below it."""
    for folder, _dirs, names in os.walk(directory):
        remove_temporaries(folder, names)


def atomic_write_bytes(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never a part."""
    directory = os.path.dirname(path) or "."
    tmp = _temporary_path(path)
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
    """Make `target` a hard link to `source` (a copy across file systems), atomically.

    Where nothing is at `target` yet (every output of a clean build), one
    `link` is enough: it creates the name with the complete file or fails.
    A file already there is replaced through a temporary link and a rename,
    so a reader never finds the name missing or half written.
    """
    try:
        os.link(source, target)
        return
    except FileExistsError:
        pass
    except FileNotFoundError:
        if not os.path.exists(source):
            raise
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(OSError):  # anything else: the general path below
            os.link(source, target)
            return
    except OSError:
        pass  # another file system, or no hard links there: copied below
    directory = os.path.dirname(target)
    tmp = _temporary_path(target)
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
    # Where `target` was a link to `source` already, rename() is a successful no-op
    # (POSIX: two links to one file) that leaves `tmp` behind.
    discard(tmp)


def move_into_place(source: str, target: str, mode: int, staging: str | None = None) -> bool:
    """Move the finished file `source` to `target` with `mode`, atomically; True if moved.

    For an output that is not cached (`no-cache`, `--no-cache`, the `none`
    sandbox): the file the action wrote becomes the file in `mb-out/`, with
    no blob in between. Its bytes are complete (the action has ended), and a
    rename replaces whatever `target` was (an older output, a hard link to a
    blob: the blob is untouched) in one step, so a build killed at any
    instant leaves the old file or the new one, never a part. A rename keeps
    the file's size and mtime. A symlink (its bytes are stored, never the
    link), or a file on another file system, is copied to a temporary file
    beside `target` first (in `staging` instead, where a stray file beside it
    would be taken for something else: the cache's cas/), and False says the
    stat is the copy's.
    """
    copy = os.path.islink(source)
    if not copy:
        os.chmod(source, mode)
        try:
            replace_creating_parent(source, target)
            return True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    tmp = (os.path.join(staging, f"blob-{os.getpid()}-{threading.get_ident()}") if staging
           else _temporary_path(target))
    try:
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        shutil.copyfile(source, tmp)
        os.chmod(tmp, mode)
        replace_creating_parent(tmp, target)
    except BaseException:
        discard(tmp)
        raise
    return False


def replace_creating_parent(source: str, target: str) -> None:
    """os.replace, creating `target`'s directory the first time it is missing (the
    cache's cas/, an output's package folder in mb-out/)."""
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not os.path.lexists(source):
            raise
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)


def remove_tree(path: str) -> None:
    """Remove a directory tree, including read-only directories; a file or a symlink
    at `path` is removed itself (a link is not followed).

    What stops a removal is a directory without write (or search) permission,
    never a file's own mode, so only directories inside the tree are made
    writable. A file's mode is left alone: files in `mb-out/` are hard links
    to the cache's blobs, and a chmod of one is a chmod of the blob, which
    must stay read-only (SPEC §4).
    """
    if not os.path.isdir(path) or os.path.islink(path):
        discard(path)
        return
    inside = path.rstrip(os.sep) + os.sep

    def unlock(directory: str) -> None:
        if directory == path or directory.startswith(inside):
            os.chmod(directory, stat.S_IMODE(os.lstat(directory).st_mode) | stat.S_IRWXU)

    def make_writable(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            unlock(os.path.dirname(p))
            if os.path.isdir(p) and not os.path.islink(p):
                unlock(p)  # a directory it could not list or enter
                if func is not os.rmdir:
                    remove_tree(p)
                    return
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)


#: ext2/3/4 inode flag (chattr +T): subdirectories are spread across block groups.
_FS_IOC_GETFLAGS: Final = 0x80086601
_FS_IOC_SETFLAGS: Final = 0x40086602
_FS_TOPDIR_FL: Final = 0x00020000


def spread_subdirectories(directory: str) -> None:
    """Mark `directory` +T, ext2/3/4's "top of a directory hierarchy" (`chattr +T`).

    ext4's Orlov allocator then places each new subdirectory in a block group
    chosen from a hash of its name, instead of near its parent. Best effort,
    a hint only: file systems without the flag are left alone
    (docs/decisions/0005-sandbox-placement.md).
    """
    import array
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _FS_TOPDIR_FL:
            flags[0] |= _FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
    except OSError:
        pass
    finally:
        os.close(fd)
