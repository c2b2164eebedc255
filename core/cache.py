"""The local cache: content-addressed blobs and action results (SPEC §4).

Layout under the cache directory:

    cas/<blake3 hex>        blobs, read-only, named by their digest
    ac/<unique>.pack        action results, many per file, one JSON line each:
                            {"key", "outputs" (path -> digest), "metadata",
                            "cost", "duration_s", "blobs" (digest -> [size,
                            mtime_ns] when stored)}
    ac/.compact.lock        flock'd while packs are merged or collected
    tmp/                    staging for blob copies across file systems

Both folders are flat: ext4 and every current file system index large
directories, and no shard directories means no inode allocations beyond
one per blob.

Why packs, not one file per result: on this machine's ext4 every inode
allocation scans the inodes freed recently in its block group, so a file per
executed action cost up to ~1 ms each in benchmarks that delete and rebuild
everything (see docs/performance.md on inode allocation here). `put_result`
keeps a result in memory (this Cache answers it at once) and writes the
pending ones as one pack when 512 are pending or the oldest is 1 s old
(a timer, so quick results are not held back by a long action that follows);
`flush()`, called when the executor closes, writes
the rest and, past 64 packs, merges them all into one. `get_result` reads
every pack once, on its first lookup, and on a miss lists `ac/` again only
when its mtime changed (another process wrote a pack), loading only the new
packs. A hit touches its pack (once per Cache): `gc` takes a blob to be as
recent as the most recent pack naming it. Blobs are never touched: they are
hard-linked into mb-out/.

Every write is a temporary file renamed into place, and a result is recorded
only after all its blobs exist, so a pack is complete or absent, and a reader
skips any line it cannot parse (a torn or foreign file is a miss, never an
error). A build killed at any instant loses only the results not yet flushed,
at most ~1 s of them or 512: those actions simply run again, and their blobs,
already stored, are kept and still valid. Several workspaces and processes may
share one cache directory: packs have unique names, merging and collection
hold `ac/.compact.lock`, and a reader skips a pack that vanished after it
listed it (its results are in the merged pack).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from mb.fsutil import atomic_write_bytes, discard

#: A pack is written once this many results are pending ...
PACK_MAX_RESULTS: Final = 512
#: ... or when the oldest pending result is this old (checked when a result is put).
PACK_MAX_AGE_S: Final = 1.0
#: `flush()` merges the packs into one when `ac/` holds more than this many.
MAX_PACKS: Final = 64

_PACK_SUFFIX: Final = ".pack"
_LOCK_NAME: Final = ".compact.lock"
_TMP_PREFIX: Final = ".tmp-"  # mb.fsutil.atomic_write_bytes' temporary files
#: A listing of ac/ taken this soon after its last change may have missed a second
#: change within the same file-system clock tick: the next miss lists it again.
_RACY_NS: Final = 100_000_000
#: A temporary file in ac/ younger than this may be a write in progress elsewhere:
#: not an entry of size() or gc() yet.
_TMP_GRACE_NS: Final = 3600 * 10**9
_KEY_PREFIX: Final = b'{"key":"'
#: Lookups answered by searching the packs' bytes before they are indexed: a build
#: that looks up a few keys (an incremental one) does not split 10,000 lines.
_SEARCHES_BEFORE_INDEX: Final = 64
_HEX: Final = frozenset("0123456789abcdef")
_FIELDS: Final = frozenset({"key", "outputs", "metadata", "cost", "duration_s", "blobs"})


@attrs.frozen
class ActionResult:
    """What a finished action produced: output path -> blob digest, plus its metadata."""

    outputs: Mapping[str, str]
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    cost: float | None = None
    duration_s: float = 0.0


class _Entry:
    """A result line and the pack it was read from (None: not written yet)."""

    __slots__ = ("pack", "line")

    def __init__(self, pack: str | None, line: bytes) -> None:
        self.pack = pack
        self.line = line


class Cache:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._tmp = os.path.join(directory, "tmp")
        self._ac = os.path.join(directory, "ac")
        self._cas_prefix = os.path.join(directory, "cas") + os.sep
        os.makedirs(self._tmp, exist_ok=True)
        self._lock = threading.Lock()
        #: Results put through this object (pending or written): they win over packs.
        self._own: dict[str, _Entry] = {}
        #: Results read from packs, the later pack's line winning.
        self._index: dict[str, _Entry] = {}
        #: Packs read but not split into `_index` yet (name, bytes), oldest first.
        self._unindexed: list[tuple[str, bytes]] = []
        self._searches = 0
        #: Results put but not written yet, oldest first, and when the oldest was put.
        self._pending: list[tuple[str, bytes]] = []
        self._pending_since: float | None = None
        #: Packs read (or written) by this object; ac/'s mtime when last listed.
        self._loaded: set[str] = set()
        self._ac_mtime: int | None = None
        #: Packs whose mtime a hit has refreshed already.
        self._touched: set[str] = set()
        #: Writes the pending results PACK_MAX_AGE_S after the first, even if no other
        #: result comes (a long action after quick ones must not hold theirs back).
        self._timer: threading.Timer | None = None

    # --- blobs ---------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return self._cas_prefix + digest  # a hex digest: no os.path.join needed (hot path)

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

    def get_result(self, key: str) -> ActionResult | None:
        """The stored result of `key`, if it and all its blobs are present."""
        with self._lock:
            entry = self._own.get(key) or self._find(key)
            if entry is None:
                self._refresh()
                entry = self._find(key)
        if entry is None:
            return None
        decoded = _decode(entry.line, key)
        if decoded is None:
            return None
        result, stored_stats = decoded
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
        pack = entry.pack
        if pack is not None:
            with self._lock:
                fresh = pack not in self._touched
                self._touched.add(pack)
            if fresh:
                # Recency for `mb gc` lives on the pack only: blobs are hard-linked
                # into mb-out/, and touching them would change every output's mtime.
                with contextlib.suppress(OSError):  # merged or collected meanwhile
                    os.utime(os.path.join(self._ac, pack))
        return result

    def put_result(self, key: str, result: ActionResult) -> None:
        """Record a result whose blobs are in place; their (size, mtime) are recorded so a
        blob written to later (a blob never changes legitimately) is not served.

        Visible to this object's `get_result` at once; on disk with the next pack
        (see the module docstring), at the latest at `flush()`.
        """
        blobs = {}
        for digest in result.outputs.values():
            try:
                st = os.stat(self.blob_path(digest))
            except FileNotFoundError:
                continue  # not stored: get_result will call it a miss
            blobs[digest] = [st.st_size, st.st_mtime_ns]
        line = _encode(key, result, blobs)
        now = time.monotonic()
        batch: list[tuple[str, bytes]] = []
        timer = None
        with self._lock:
            self._own[key] = _Entry(None, line)
            if self._pending_since is None:
                self._pending_since = now
            since = self._pending_since
            self._pending.append((key, line))
            if len(self._pending) >= PACK_MAX_RESULTS or now - since >= PACK_MAX_AGE_S:
                batch = self._take_pending()
            elif self._timer is None:
                timer = self._timer = threading.Timer(PACK_MAX_AGE_S, self._write_due)
                timer.daemon = True
        if timer is not None:
            timer.start()
        if batch:
            self._write_batch(batch, since)

    def _write_due(self) -> None:
        """The timer's job: write what is pending; a failure leaves it for `flush()`."""
        with self._lock:
            self._timer = None
            since = self._pending_since
            batch = self._take_pending()
        if batch:
            with contextlib.suppress(OSError):  # kept pending by _write_batch
                self._write_batch(batch, time.monotonic() if since is None else since)

    def flush(self) -> None:
        """Write the pending results as one pack (none if nothing is pending), then merge
        the packs into one if `ac/` holds more than MAX_PACKS."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            since = self._pending_since
            batch = self._take_pending()
        if not batch:
            return
        self._write_batch(batch, time.monotonic() if since is None else since)
        if len(self._pack_names()) > MAX_PACKS:
            self._compact()

    def _take_pending(self) -> list[tuple[str, bytes]]:
        """Called with the lock held."""
        batch, self._pending, self._pending_since = self._pending, [], None
        return batch

    def _write_batch(self, batch: list[tuple[str, bytes]], since: float) -> None:
        try:
            name, _size = self._write_pack(line for _key, line in batch)
        except BaseException:
            with self._lock:  # kept for the next write or flush()
                self._pending[:0] = batch
                if self._pending_since is None or since < self._pending_since:
                    self._pending_since = since
            raise
        with self._lock:
            self._loaded.add(name)
            for key, line in batch:
                entry = self._own.get(key)
                if entry is not None and entry.line is line:
                    entry.pack = name

    def _write_pack(self, lines: Iterable[bytes]) -> tuple[str, int]:
        """Write a new pack holding `lines`; its name and size."""
        name = f"{time.time_ns():019d}-{os.getpid()}-{os.urandom(4).hex()}{_PACK_SUFFIX}"
        data = b"".join(line + b"\n" for line in lines)
        atomic_write_bytes(os.path.join(self._ac, name), data)
        return name, len(data)

    def _pack_names(self) -> list[str]:
        """The packs in ac/, oldest first (names start with their creation time)."""
        try:
            names = os.listdir(self._ac)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(_PACK_SUFFIX) and not n.startswith("."))

    def _refresh(self) -> None:
        """Load the packs not loaded yet, if ac/ changed since it was last listed.

        Called with the lock held, on a miss.
        """
        try:
            mtime = os.stat(self._ac).st_mtime_ns
        except OSError:
            return  # nothing written yet
        if mtime == self._ac_mtime:
            return
        names = self._pack_names()  # listed after the stat: a later change changes mtime
        self._ac_mtime = None if time.time_ns() - mtime < _RACY_NS else mtime
        for name in names:
            if name not in self._loaded:
                self._loaded.add(name)
                content = _read(os.path.join(self._ac, name))
                if content is not None:
                    self._unindexed.append((name, content[1]))

    def _find(self, key: str) -> _Entry | None:
        """The newest line for `key` in the packs read so far (lock held).

        The first lookups search the packs' bytes for the key (C speed) and
        check the line holding it; after `_SEARCHES_BEFORE_INDEX` of them the packs are
        split into the index once, which is cheaper for a build looking up many.
        """
        if self._unindexed and self._searches >= _SEARCHES_BEFORE_INDEX:
            for name, content in self._unindexed:
                for found, line in _keyed_lines(content):
                    self._index[found] = _Entry(name, line)
            self._unindexed.clear()
        if not self._unindexed:
            return self._index.get(key)
        self._searches += 1
        needle = key.encode()
        for name, content in reversed(self._unindexed):
            end = len(content)
            while (at := content.rfind(needle, 0, end)) >= 0:
                start = content.rfind(b"\n", 0, at) + 1
                stop = content.find(b"\n", at)
                line = content[start:stop if stop >= 0 else len(content)]
                if line.endswith(b"}") and any(k == key for k, _ in _keyed_lines(line)):
                    return _Entry(name, line)
                end = start
        return self._index.get(key)

    def _compact(self) -> None:
        """Merge every pack in ac/ into one, unless another process is at it already."""
        try:
            with self._exclusive(blocking=False) as locked:
                if locked:
                    self._merge_packs()
        except OSError:
            pass  # (disk full...) the packs stay as they are; the next flush tries again

    def _merge_packs(self) -> None:
        merged: dict[str, bytes] = {}
        done: list[str] = []
        newest = 0
        for name in self._pack_names():
            content = _read(os.path.join(self._ac, name))
            if content is None:
                continue
            newest = max(newest, content[0])
            done.append(name)
            for key, line in _keyed_lines(content[1]):
                merged[key] = line  # the later pack wins
        if len(done) < 2:
            return
        name, _size = self._write_pack(merged.values())
        # As recent as its most recent part (recency for gc).
        os.utime(os.path.join(self._ac, name), ns=(newest, newest))
        for old in done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._ac, old))
        gone = set(done)
        with self._lock:
            self._loaded.add(name)
            self._unindexed = [(n, c) for n, c in self._unindexed if n not in gone]
            for key, line in merged.items():
                self._index[key] = _Entry(name, line)
            for entry in self._own.values():
                if entry.pack in gone:
                    entry.pack = name

    @contextlib.contextmanager
    def _exclusive(self, blocking: bool) -> Iterator[bool]:
        """Hold ac/.compact.lock (merging or collecting packs); yields False if another
        process holds it and `blocking` is false."""
        os.makedirs(self._ac, exist_ok=True)
        fd = os.open(os.path.join(self._ac, _LOCK_NAME),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    # --- size and garbage collection --------------------------------------------------

    def _scan(self) -> tuple[list[_File], list[_File], list[_File]]:
        """(blobs, packs, other files): everything in cas/ and ac/ that takes space,
        except the lock and temporary files that may still be being written."""
        now = time.time_ns()
        blobs: list[_File] = []
        packs: list[_File] = []
        strays: list[_File] = []
        for sub in ("cas", "ac"):
            base = os.path.join(self.directory, sub)
            for dirpath, _dirs, files in os.walk(base):
                top = dirpath == base
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    file = _File(path, st.st_mtime_ns, st.st_size)
                    if top and sub == "cas":
                        blobs.append(file)
                    elif top and name.endswith(_PACK_SUFFIX) and not name.startswith("."):
                        packs.append(file)
                    elif top and name == _LOCK_NAME:
                        continue
                    elif name.startswith(_TMP_PREFIX) and now - st.st_mtime_ns < _TMP_GRACE_NS:
                        continue
                    else:  # an old temporary file, a file of an older layout
                        strays.append(file)
        return blobs, packs, strays

    def size(self) -> int:
        """Bytes of blobs and packs on disk (pending results are not on disk yet)."""
        return sum(f.size for files in self._scan() for f in files)

    def gc(self, max_size: int) -> tuple[int, int]:
        """Delete least recently used entries until the cache is at most `max_size` bytes.

        A blob is as recent as the most recent pack naming it (a hit touches
        its pack) or its own mtime if later. Blobs go oldest first; results
        are tiny and go with their blobs: every pack naming a removed (or
        missing) blob is rewritten without those results, keeping its mtime.
        Only if removing every blob is not enough do results go, oldest pack
        first. Files in ac/ that are not packs (an older layout, a temporary
        file left by a killed process) go before anything. Returns (files
        removed, bytes freed); a pack rewritten smaller counts its bytes only.
        """
        self.flush()
        with self._exclusive(blocking=True):
            removed, freed = self._collect(max_size)
        with self._lock:  # read the survivors from disk again on the next lookup
            self._index.clear()
            self._unindexed.clear()
            self._loaded.clear()
            self._touched.clear()
            self._ac_mtime = None
            self._own = {k: e for k, e in self._own.items() if e.pack is None}
        return removed, freed

    def _collect(self, max_size: int) -> tuple[int, int]:
        blobs, packs, strays = self._scan()
        total = sum(f.size for files in (blobs, packs, strays) for f in files)
        present = {os.path.basename(b.path) for b in blobs}
        used_at: dict[str, int] = {}
        by_digest: dict[str, list[_Line]] = {}
        lines_of: list[list[_Line]] = []
        dirty: list[bool] = []
        for number, pack in enumerate(packs):
            content = _read(pack.path)
            lines: list[_Line] = []
            lines_of.append(lines)
            dirty.append(False)
            if content is None:
                total -= pack.size  # gone meanwhile
                continue
            for raw in content[1].split(b"\n"):
                decoded = _decode(raw, None) if raw else None
                if decoded is None:
                    dirty[-1] = dirty[-1] or bool(raw)  # garbage is dropped on a rewrite
                    continue
                line = _Line(number, raw, frozenset(decoded[0].outputs.values()))
                lines.append(line)
                for digest in line.digests:
                    used_at[digest] = max(used_at.get(digest, 0), pack.mtime_ns)
                    by_digest.setdefault(digest, []).append(line)
                if not line.digests <= present:  # a blob is gone already: a miss forever
                    line.alive = False
                    dirty[-1] = True
                    total -= line.size

        order: list[tuple[int, int, _File | _Line]] = []
        order += [(0, s.mtime_ns, s) for s in strays]
        order += [(1, max(b.mtime_ns, used_at.get(os.path.basename(b.path), 0)), b)
                  for b in blobs]
        order += [(2, p.mtime_ns, line) for p, lines in zip(packs, lines_of) for line in lines
                  if line.alive]
        order.sort(key=lambda item: (item[0], item[1]))
        removed = freed = 0
        for _phase, _when, item in order:
            if total <= max_size:
                break
            if isinstance(item, _Line):
                if item.alive:
                    item.alive = False
                    dirty[item.pack] = True
                    total -= item.size
                continue
            try:
                os.unlink(item.path)
            except FileNotFoundError:
                total -= item.size
                continue
            except OSError:
                continue
            total -= item.size
            freed += item.size
            removed += 1
            for line in by_digest.get(os.path.basename(item.path), ()):
                if line.alive:
                    line.alive = False
                    dirty[line.pack] = True
                    total -= line.size

        for pack, lines, changed in zip(packs, lines_of, dirty):
            if not changed:
                continue
            survivors = [line.raw for line in lines if line.alive]
            if survivors:
                name, size = self._write_pack(survivors)
                os.utime(os.path.join(self._ac, name), ns=(pack.mtime_ns, pack.mtime_ns))
            try:
                os.unlink(pack.path)
            except FileNotFoundError:
                continue
            if survivors:
                freed += max(0, pack.size - size)
            else:
                removed += 1
                freed += pack.size
        return removed, freed


@attrs.frozen
class _File:
    path: str
    mtime_ns: int
    size: int


@attrs.define(eq=False)
class _Line:
    """A result line of a pack, while gc decides which results stay."""

    pack: int  # its pack's position in the scan
    raw: bytes
    digests: frozenset[str]
    alive: bool = True

    @property
    def size(self) -> int:
        return len(self.raw) + 1


def _encode(key: str, result: ActionResult, blobs: dict[str, list[int]]) -> bytes:
    """One pack line, its key first so a reader indexes it without parsing it."""
    rest = json.dumps({"outputs": dict(result.outputs), "metadata": dict(result.metadata),
                       "cost": result.cost, "duration_s": round(result.duration_s, 6),
                       "blobs": blobs}, sort_keys=True, separators=(",", ":"))
    return b'{"key":' + json.dumps(key).encode() + b"," + rest[1:].encode()


def _decode(line: bytes, key: str | None) -> tuple[ActionResult, dict[str, list[int]]] | None:
    """The result of a pack line (None if it does not parse, lacks a field, or is of
    another key) and the [size, mtime_ns] of its blobs when it was put."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(data, dict) and _FIELDS <= data.keys()):
        return None
    outputs, metadata, blobs = data["outputs"], data["metadata"], data["blobs"]
    cost, duration = data["cost"], data["duration_s"]
    if not (isinstance(data["key"], str) and (key is None or data["key"] == key)
            and isinstance(outputs, dict) and isinstance(metadata, dict)
            and isinstance(blobs, dict)
            and (cost is None or _is_number(cost)) and _is_number(duration)):
        return None
    for digest in outputs.values():
        if not (isinstance(digest, str) and digest and set(digest) <= _HEX):
            return None
    for stats in blobs.values():
        if not (isinstance(stats, list) and len(stats) == 2
                and all(type(n) is int for n in stats)):
            return None
    return ActionResult(outputs=outputs, metadata=metadata, cost=cost,
                        duration_s=duration), blobs


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _keyed_lines(content: bytes) -> Iterator[tuple[str, bytes]]:
    """(key, line) for each line of a pack that looks complete; the rest of a line
    is parsed on a hit only. A line with no key (torn, foreign) is skipped."""
    for line in content.split(b"\n"):
        if not line.endswith(b"}"):
            continue  # empty, or torn
        if line.startswith(_KEY_PREFIX):
            end = line.find(b'"', len(_KEY_PREFIX))
            segment = line[len(_KEY_PREFIX):end]
            if end > 0 and b"\\" not in segment and segment.isascii():
                yield segment.decode("ascii"), line
                continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("key"), str):
            yield data["key"], line


def _read(path: str) -> tuple[int, bytes] | None:
    """A pack's mtime and bytes; None if it vanished (merged or collected) or is unreadable."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_mtime_ns, f.read()
    except OSError:
        return None


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
