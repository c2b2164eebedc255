"""The local cache: content-addressed blobs and action results (SPEC §4).

Layout under the cache directory:

    cas/<blake3 hex>        blobs, read-only, named by their digest
    ac/<action key>.json    action results: output path -> digest, metadata
    tmp/                    staging for atomic writes

Both folders are flat: ext4 and every current file system index large
directories, and no shard directories means no inode allocations beyond
one per entry (see docs/performance.md on inode allocation here).

Every write is a temporary file renamed into place, and an action result is
written only after all its blobs exist, so a build killed at any instant
leaves either no result (the action runs again) or a complete one. Several
workspaces and processes may share one cache directory: renames are atomic
and writers of the same key write the same bytes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from mb.fsutil import atomic_write_bytes, discard


@attrs.frozen
class ActionResult:
    """What a finished action produced: output path -> blob digest, plus its metadata."""

    outputs: Mapping[str, str]
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    cost: float | None = None
    duration_s: float = 0.0


class Cache:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._tmp = os.path.join(directory, "tmp")
        os.makedirs(self._tmp, exist_ok=True)

    # --- blobs ---------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.directory, "cas", digest)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def store_file(self, path: str, digest: str) -> str:
        """Take the finished file at `path` into the cache under `digest`.

        A regular file on the same file system is made read-only and renamed
        into place: the rename is atomic and the bytes are complete (the action
        has ended), and a concurrent writer of the same digest has the same
        bytes. A symlink, or a file on another file system, is copied through
        a temporary file first.
        """
        target = self.blob_path(digest)
        if os.path.exists(target):
            return target
        if not os.path.islink(path):  # store the bytes, never the link
            os.chmod(path, 0o444)
            try:
                _rename_into(path, target)
                return target
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        tmp = os.path.join(self._tmp, f"blob-{os.getpid()}-{threading.get_ident()}")
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o444)
            _rename_into(tmp, target)
        except BaseException:
            discard(tmp)
            raise
        return target

    # --- action results ------------------------------------------------------------

    def _result_path(self, key: str) -> str:
        return os.path.join(self.directory, "ac", key + ".json")

    def get_result(self, key: str) -> ActionResult | None:
        """The stored result of `key`, if it and all its blobs are present."""
        path = self._result_path(key)
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
            result = ActionResult(outputs=data["outputs"], metadata=data.get("metadata", {}),
                                  cost=data.get("cost"), duration_s=data.get("duration_s", 0.0))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        stored_stats = data.get("blobs", {})
        for digest in result.outputs.values():
            blob = self.blob_path(digest)
            try:
                st = os.stat(blob)
            except FileNotFoundError:
                return None  # a blob was collected: a miss
            expected = stored_stats.get(digest)
            if expected is not None and [st.st_size, st.st_mtime_ns] != expected:
                # Written to since it was stored (e.g. through its hard link in
                # mb-out/ after a chmod): its bytes no longer match its name.
                discard(blob)
                return None
        try:
            # Recency for `mb gc` lives on the result only: blobs are hard-linked
            # into mb-out/, and touching them would change every output's mtime.
            os.utime(path)
        except OSError:
            pass
        return result

    def put_result(self, key: str, result: ActionResult) -> None:
        """Store a result whose blobs are in place; their (size, mtime) are recorded so a
        blob written to later (a blob never changes legitimately) is not served."""
        blobs = {}
        for digest in result.outputs.values():
            try:
                st = os.stat(self.blob_path(digest))
            except FileNotFoundError:
                continue  # not stored: get_result will call it a miss
            blobs[digest] = [st.st_size, st.st_mtime_ns]
        data = {"outputs": dict(result.outputs), "metadata": dict(result.metadata),
                "cost": result.cost, "duration_s": round(result.duration_s, 6),
                "blobs": blobs}
        atomic_write_bytes(self._result_path(key), json.dumps(data, sort_keys=True).encode())

    # --- size and garbage collection --------------------------------------------------

    def _entries(self) -> list[tuple[float, int, str]]:
        entries: list[tuple[float, int, str]] = []
        for sub in ("cas", "ac"):
            base = os.path.join(self.directory, sub)
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    entries.append((st.st_mtime, st.st_size, path))
        return entries

    def size(self) -> int:
        return sum(size for _t, size, _p in self._entries())

    def gc(self, max_size: int) -> tuple[int, int]:
        """Delete least recently used entries until the cache is at most `max_size` bytes.

        A blob is as recent as the most recent result naming it (results are
        touched on every hit). Action results go first within the same age, so
        a result never outlives its blobs for long; a result whose blob is gone
        is a miss. Returns (files removed, bytes freed).
        """
        used_at: dict[str, float] = {}
        for when, _size, path in self._entries():
            if path.endswith(".json"):
                try:
                    with open(path, "rb") as f:
                        outputs = json.loads(f.read()).get("outputs", {})
                except (OSError, ValueError, AttributeError):
                    continue
                for digest in outputs.values():
                    used_at[digest] = max(used_at.get(digest, 0.0), when)
        entries = [(max(when, used_at.get(os.path.basename(path), 0.0)), size, path)
                   for when, size, path in self._entries()]
        entries.sort(key=lambda e: (e[0], not e[2].endswith(".json")))
        total = sum(size for _t, size, _p in entries)
        removed = freed = 0
        for _time, size, path in entries:
            if total <= max_size:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size
            freed += size
            removed += 1
        return removed, freed


def _rename_into(source: str, target: str) -> None:
    """Rename, creating the blob directory the first time it is needed."""
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not os.path.exists(source):
            raise
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)


def parse_size(text: str) -> int:
    """`20GB`, `500MiB`, `1024` -> bytes; raises ValueError with a clear message."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3,
             "M": 10**6, "G": 10**9, "T": 10**12}
    stripped = text.strip().upper().replace(" ", "")
    number = stripped.rstrip("KMGTIB")
    unit = stripped[len(number):]
    try:
        size = int(float(number) * units[unit])
    except (ValueError, KeyError, OverflowError):
        raise ValueError(f"size {text!r} is not a size like '20GB' or '500MiB'") from None
    if size < 0:
        raise ValueError(f"size {text!r} is negative; give a size like '20GB' or '500MiB'")
    return size
