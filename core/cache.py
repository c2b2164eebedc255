"""The local cache: content-addressed blobs and action results (SPEC §4).

Layout under the cache directory:

    cas/<blake3 hex>        blobs, read-only (0444), named by their digest
    cas/<blake3 hex>.x      the blob of an executable output (0555)
    ac/<unique>.pack        action results, many per file, one JSON line each:
                            {"key", "outputs" (path -> digest), "metadata",
                            "cost", "duration_s", "blobs" (blob name -> [size,
                            mtime_ns] when stored), "executable" (the outputs
                            stored as `.x` blobs; only when there are some)}
    ac/.compact.lock        flock'd while packs are merged or collected
    tmp/                    staging for blob copies across file systems

Both folders are flat: ext4 and every current file system index large
directories, and no shard directories means no inode allocations beyond
one per blob.

Why `.x` blobs: a blob is hard-linked into mb-out/ and into sandboxes, and
one inode has one mode, so an executable output (a generated tool) needs an
inode of its own to keep its exec bit there. The same bytes may be stored
both ways. An output's digest stays the plain blake3 of its bytes (events,
manifests); the result line says which outputs are executable.

Why packs, not one file per result: on this machine's ext4 every inode
allocation scans the inodes freed recently in its block group, so a file per
executed action cost up to ~1 ms each in benchmarks that delete and rebuild
everything (see docs/performance.md on inode allocation here). `put_result`
keeps a result in memory (this Cache answers it at once) and writes the
pending ones as one pack when 512 are pending or the oldest is 1 s old
(a timer, so quick results are not held back by a long action that follows);
`flush()`, called when the executor closes, writes the rest and merges the
packs into one when `ac/` holds more than 64 of them or more superseded lines
than live ones. `get_result` reads every pack once, on its first lookup, and
on a miss lists `ac/` again only when its mtime changed (another process
wrote a pack), loading only the new packs.

Recency, for `gc`'s least-recently-used order, is per result: a hit
re-records its line (the bytes already read, not re-encoded) with the
pending results, once per Cache, so the newest pack holding a result says
when it was last used, and a line's position in its pack orders the results
of one pack (a merge keeps the latest line of each key, in the order of
their last use). Nothing is touched on a hit: blobs are hard-linked into
mb-out/, and touching them would change every output's mtime.

Every write is a temporary file renamed into place, and a result is recorded
only after all its blobs exist, so a pack is complete or absent, and a reader
skips any line it cannot parse (a torn or foreign file is a miss, never an
error). A build killed at any instant loses only the results not yet flushed,
at most ~1 s of them or 512 (and the recency of its hits): those actions
simply run again, and their blobs, already stored, are kept and still valid.
Several workspaces and processes may share one cache directory: packs have
unique names, merging and collection hold `ac/.compact.lock`, and a reader
skips a pack that vanished after it listed it (its results are in the merged
pack). Readers take the last line of a key in pack-name order; a pack
rewritten by a merge or by `gc` keeps the time stamp that starts its name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from mb.digest import digest_file
from mb.fsutil import TEMPORARY_PREFIX, atomic_write_bytes, discard, move_into_place

#: A pack is written once this many results are pending ...
PACK_MAX_RESULTS: Final = 512
#: ... or when the oldest pending result is this old (checked when a result is put).
PACK_MAX_AGE_S: Final = 1.0
#: `flush()` merges the packs into one when `ac/` holds more than this many.
MAX_PACKS: Final = 64

_PACK_SUFFIX: Final = ".pack"
_LOCK_NAME: Final = ".compact.lock"
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
#: The name of an executable output's blob is its digest plus this (mode 0555).
EXECUTABLE_SUFFIX: Final = ".x"
_STAMP_DIGITS: Final = 19  # a pack name starts with time.time_ns(), zero-padded
_NONE: Final[frozenset[str]] = frozenset()


def _holds(blob: str, digest: str) -> bool:
    """Whether the file `blob` still has the bytes of `digest` (hashed: only when its
    stat says it may not)."""
    try:
        return digest_file(blob) == digest
    except OSError:
        return False


def blob_name(digest: str, executable: bool = False) -> str:
    """The file name under cas/ of a blob: `<digest>`, or `<digest>.x` if executable."""
    return digest + EXECUTABLE_SUFFIX if executable else digest


def _path_set(paths: Iterable[str]) -> frozenset[str]:
    return paths if isinstance(paths, frozenset) else frozenset(paths)


@attrs.frozen
class ActionResult:
    """What a finished action produced: output path -> blob digest, plus its metadata.

    `executable` names the outputs whose file is executable: their blobs are
    `cas/<digest>.x` (mode 0555), so they keep the exec bit in mb-out/ and
    when a dependent stages them.
    """

    outputs: Mapping[str, str]
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    cost: float | None = None
    duration_s: float = 0.0
    executable: frozenset[str] = attrs.field(default=frozenset(), converter=_path_set)

    def blob_names(self) -> dict[str, str]:
        """Output path -> the name of its blob under cas/."""
        executable = self.executable
        return {path: blob_name(digest, path in executable)
                for path, digest in self.outputs.items()}


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
        # Only the directory: tmp/ is made when a copy first needs it, so a build that
        # caches nothing (`--no-cache`) adds nothing to a shared cache directory.
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        #: Results put through this object (pending or written): they win over packs.
        self._own: dict[str, _Entry] = {}
        #: Results read from packs, the later pack's line winning.
        self._index: dict[str, _Entry] = {}
        #: Packs read but not split into `_index` yet (name, bytes), oldest first.
        self._unindexed: list[tuple[str, bytes]] = []
        self._searches = 0
        #: Lines to write with the next pack, in the order they came: results put
        #: (True) and hits re-recorded for recency (False). When the oldest pending
        #: result was put, and how many results are pending.
        self._pending: list[tuple[str, bytes, bool]] = []
        self._pending_since: float | None = None
        self._pending_results = 0
        #: Packs read (or written) by this object; ac/'s mtime when last listed.
        self._loaded: set[str] = set()
        self._ac_mtime: int | None = None
        #: Keys whose hit was re-recorded already (once per Cache is enough).
        self._rerecorded: set[str] = set()
        #: Lines in the packs this object read or wrote: with the number of distinct
        #: keys, how many lines on disk are superseded (`_worth_rewriting`).
        self._lines = 0
        #: Writes the pending results PACK_MAX_AGE_S after the first, even if no other
        #: result comes (a long action after quick ones must not hold theirs back).
        self._timer: threading.Timer | None = None

    # --- blobs ---------------------------------------------------------------------

    def blob_path(self, digest: str, executable: bool = False) -> str:
        """Where the blob of `digest` is: `cas/<digest>`, or `cas/<digest>.x` (0555) for
        an executable file (see the module docstring)."""
        # A hex digest: no os.path.join needed (hot path).
        return self._cas_prefix + digest + EXECUTABLE_SUFFIX if executable else \
            self._cas_prefix + digest

    def has_blob(self, digest: str, executable: bool = False) -> bool:
        return os.path.exists(self.blob_path(digest, executable))

    def store_file(self, path: str, digest: str, executable: bool = False) -> str:
        """Take the finished file at `path` into the cache under `digest`.

        A regular file on the same file system is made read-only (0444, or
        0555 for an executable one, stored as `<digest>.x`) and renamed into
        place: the rename is atomic and the bytes are complete (the action
        has ended), and a concurrent writer of the same blob has the same
        bytes and mode. A symlink, or a file on another file system, is copied
        through a temporary file first.
        """
        target = self.blob_path(digest, executable)
        if not os.path.exists(target):
            # Copies are staged in tmp/: a stray file in cas/ would count as a blob.
            move_into_place(path, target, 0o555 if executable else 0o444, staging=self._tmp)
        return target

    # --- action results ------------------------------------------------------------

    def get_result(self, key: str) -> ActionResult | None:
        """The stored result of `key`, if it and all its blobs are present.

        A hit read from a pack is re-recorded with the pending results (the
        same bytes; once per Cache): that is how `gc` knows it was used now.
        """
        with self._lock:
            own = self._own.get(key)
            entry = own or self._find(key)
            if entry is None:
                self._refresh()
                entry = self._find(key)
        if entry is None:
            return None
        decoded = _decode(entry.line, key)
        if decoded is None:
            return None
        result, stored_stats = decoded
        executable = result.executable
        restored = False
        for path, digest in result.outputs.items():
            name = digest + EXECUTABLE_SUFFIX if executable and path in executable else digest
            blob = self._cas_prefix + name
            try:
                st = os.stat(blob)
            except FileNotFoundError:
                return None  # a blob was collected: a miss
            expected = stored_stats.get(name)
            mode = 0o555 if name.endswith(EXECUTABLE_SUFFIX) else 0o444
            if st.st_mode & 0o777 != mode:
                # Chmod-ed since it was stored, e.g. through its hard link in mb-out/
                # (a chmod +x would make every later output linked to it executable).
                discard(blob)
                return None
            if expected is not None and [st.st_size, st.st_mtime_ns] != expected:
                if not _holds(blob, digest):
                    # Written to since it was stored, e.g. through its hard link in
                    # mb-out/: its bytes no longer match its name.
                    discard(blob)
                    return None
                # The same bytes stored again since this line was written (after `mb
                # gc` or a discard, by any workspace sharing the cache): a new inode
                # and mtime, not a write. Discarding it would make every line
                # naming it re-run its action and store it again, forever.
                restored = True
        if restored:
            self.put_result(key, result)  # recorded with the blob's stat now
            return result
        if own is None:
            with self._lock:
                if key not in self._rerecorded:
                    self._rerecorded.add(key)
                    self._pending.append((key, entry.line, False))
        return result

    def put_result(self, key: str, result: ActionResult) -> None:
        """Record a result whose blobs are in place; their (size, mtime) are recorded so a
        blob written to later (a blob never changes legitimately) is not served.

        Visible to this object's `get_result` at once; on disk with the next pack
        (see the module docstring), at the latest at `flush()`.
        """
        blobs = {}
        for name in result.blob_names().values():
            try:
                st = os.stat(self._cas_prefix + name)
            except FileNotFoundError:
                continue  # not stored: get_result will call it a miss
            blobs[name] = [st.st_size, st.st_mtime_ns]
        line = _encode(key, result, blobs)
        now = time.monotonic()
        batch: list[tuple[str, bytes, bool]] = []
        timer = None
        with self._lock:
            self._own[key] = _Entry(None, line)
            if self._pending_since is None:
                self._pending_since = now
            since = self._pending_since
            self._pending.append((key, line, True))
            self._pending_results += 1
            if self._pending_results >= PACK_MAX_RESULTS or now - since >= PACK_MAX_AGE_S:
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
        """Write the pending results and re-recorded hits (none if nothing is pending).

        Normally as one new pack, then the packs are merged into one if `ac/`
        holds more than MAX_PACKS. When the hits would leave a third or more
        of the lines on disk superseded (a build answering most of its actions
        from the cache: a restore), everything this object loaded is rewritten
        as one pack instead (`_rewrite`).
        """
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            since = self._pending_since
            batch = self._take_pending()
            rewrite = self._worth_rewriting(batch)
        if not batch:
            return
        if rewrite and self._rewrite(batch):
            return
        self._write_batch(batch, time.monotonic() if since is None else since)
        if len(self._pack_names()) > MAX_PACKS:
            self._compact()

    def _worth_rewriting(self, batch: list[tuple[str, bytes, bool]]) -> bool:
        """Whether writing `batch` would leave a third or more of the lines this object
        knows on disk superseded by a later line of their key, and it knows every
        line of the packs it read (they are indexed). Called with the lock held.

        Each hit writes its line again, so a restore of 10,000 outputs adds
        10,000 lines; appended, they double the packs the next build reads,
        and merging them later reads everything again (measured on wide10k:
        ~20 ms to write the hits, 120-150 ms to merge, 0.18 s more to index
        the next build's twice as many lines). The rewrite writes what is in
        memory already, about the size of the hits alone.
        """
        if self._unindexed or not any(not put for _key, _line, put in batch):
            return False
        live = len(self._index.keys() | self._own.keys())
        return 2 * (self._lines + len(batch) - live) >= live

    def _rewrite(self, batch: list[tuple[str, bytes, bool]]) -> bool:
        """Write every result this object knows (the latest line of each key) and then
        `batch` as one pack, replacing the packs it loaded or wrote; False (nothing
        done) if another process is merging or collecting.

        The lines keep their order, hits last: position in the pack orders
        results by last use (`gc`). The pack takes the time stamp of the newest
        pack it replaces, so a pack another process wrote since this object
        last listed `ac/` (not replaced: never read here) still wins for its keys.
        """
        try:
            with self._exclusive(blocking=False) as locked:
                if not locked:
                    return False
                with self._lock:
                    if self._unindexed:  # a lookup loaded new packs since flush() looked
                        return False
                    replaced = sorted(self._loaded)
                    lines = {key: entry.line for key, entry in self._index.items()}
                    for key, entry in self._own.items():
                        if entry.pack is not None:  # else a timer's write in progress
                            lines.pop(key, None)
                            lines[key] = entry.line
                for key, line, _put in batch:
                    lines.pop(key, None)
                    lines[key] = line
                stamps = [stamp for stamp in map(_stamp, replaced) if stamp is not None]
                name, _size = self._write_pack(lines.values(), stamp=max(stamps, default=None))
                for old in replaced:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self._ac, old))
        except OSError:
            return False  # (disk full...) written the usual way, and kept pending if that fails
        gone = set(replaced)
        with self._lock:
            self._loaded = (self._loaded - gone) | {name}
            self._lines = len(lines)
            for key, line, put in batch:
                own = self._own.get(key)
                if put and own is not None and own.line is line:
                    own.pack = name
            for own in self._own.values():
                if own.pack in gone:
                    own.pack = name
        return True

    def _take_pending(self) -> list[tuple[str, bytes, bool]]:
        """Called with the lock held."""
        batch, self._pending, self._pending_since = self._pending, [], None
        self._pending_results = 0
        return batch

    def _write_batch(self, batch: list[tuple[str, bytes, bool]], since: float) -> None:
        try:
            name, _size = self._write_pack(line for _key, line, _put in batch)
        except BaseException:
            with self._lock:  # kept for the next write or flush()
                self._pending[:0] = batch
                self._pending_results += sum(1 for _key, _line, put in batch if put)
                if self._pending_since is None or since < self._pending_since:
                    self._pending_since = since
            raise
        with self._lock:
            self._loaded.add(name)
            self._lines += len(batch)
            for key, line, put in batch:
                if not put:
                    continue
                entry = self._own.get(key)
                if entry is not None and entry.line is line:
                    entry.pack = name

    def _write_pack(self, lines: Iterable[bytes], stamp: str | None = None) -> tuple[str, int]:
        """Write a new pack holding `lines`; its name and size.

        The name starts with `stamp` (the time stamp of a pack this one
        replaces, so readers order it where that pack was) or the time now.
        """
        if stamp is None:
            stamp = f"{time.time_ns():0{_STAMP_DIGITS}d}"
        name = f"{stamp}-{os.getpid()}-{os.urandom(4).hex()}{_PACK_SUFFIX}"
        data = b"\n".join(lines)  # one copy of each line, not two (a rewrite holds 10,000)
        if data:
            data += b"\n"
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
                    self._lines += content[1].count(b"\n")

    def _find(self, key: str) -> _Entry | None:
        """The newest line for `key` in the packs read so far (lock held).

        The first lookups search the packs' bytes for the key (C speed) and
        check the line holding it; after `_SEARCHES_BEFORE_INDEX` of them the packs are
        split into the index once, which is cheaper for a build looking up many.
        """
        if self._unindexed and self._searches >= _SEARCHES_BEFORE_INDEX:
            index = self._index
            for name, content in self._unindexed:
                for found, line in _keyed_lines(content):
                    # The later line wins and takes the later place: the index is in
                    # the order of last use, which `_rewrite` keeps.
                    index.pop(found, None)
                    index[found] = _Entry(name, line)
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
        """Merge every pack into one holding the latest line of each key, in the order of
        those lines (oldest pack first), so position still orders them by last use."""
        merged: dict[str, bytes] = {}
        done: list[str] = []
        newest = 0
        lines = 0
        for name in self._pack_names():
            content = _read(os.path.join(self._ac, name))
            if content is None:
                continue
            newest = max(newest, content[0])
            done.append(name)
            lines += content[1].count(b"\n")
            for key, line in _keyed_lines(content[1]):
                merged.pop(key, None)  # the later line wins, and takes its place
                merged[key] = line
        if len(done) < 2 and lines == len(merged):
            return
        name, _size = self._write_pack(merged.values(), stamp=_stamp(done[-1]))
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
            self._lines = len(merged)

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
                    elif name.startswith(TEMPORARY_PREFIX) and now - st.st_mtime_ns < _TMP_GRACE_NS:
                        continue
                    else:  # an old temporary file, a file of an older layout
                        strays.append(file)
        return blobs, packs, strays

    def size(self) -> int:
        """Bytes of blobs and packs on disk (pending results are not on disk yet)."""
        return sum(f.size for files in self._scan() for f in files)

    def gc(self, max_size: int,
           used_elsewhere: Mapping[str, tuple[int, int]] | None = None) -> tuple[int, int]:
        """Delete least recently used entries until the cache is at most `max_size` bytes.

        `used_elsewhere` (key -> (time in ns, order)) says when results were
        last used by builds that did not look at the cache (a no-op build, an
        incremental build's replayed actions: `mb gc` takes them from the
        workspace's last manifest); a result is as recent as the later of that
        and its lines.

        A result is as recent as the newest pack holding its line (a hit
        writes the line again, see the module docstring), and within one pack
        a later line is more recent. A blob is as recent as the most recent
        result naming it, or its own mtime if later. First, lines superseded
        by a later line of their key (a hit's earlier line) are dropped: no
        reader ever takes them. Then blobs go oldest first; results are tiny
        and go with their blobs: every pack naming a removed (or missing) blob
        is rewritten without those results, keeping its mtime and its place
        in the readers' order. Only if removing every blob is not enough do
        results go, oldest first. Files in ac/ that are not packs (an older
        layout, a temporary file left by a killed process) go before anything.
        Returns (files removed, bytes freed); a pack rewritten smaller counts
        its bytes only.
        """
        self.flush()
        with self._exclusive(blocking=True):
            removed, freed = self._collect(max_size, used_elsewhere or {})
        with self._lock:  # read the survivors from disk again on the next lookup
            self._index.clear()
            self._unindexed.clear()
            self._loaded.clear()
            self._ac_mtime = None
            self._lines = 0
            self._own = {k: e for k, e in self._own.items() if e.pack is None}
        return removed, freed

    def _collect(self, max_size: int,
                 used_elsewhere: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
        blobs, packs, strays = self._scan()
        packs.sort(key=lambda f: os.path.basename(f.path))  # the readers' order
        total = sum(f.size for files in (blobs, packs, strays) for f in files)
        present = {os.path.basename(b.path) for b in blobs}
        latest: dict[str, _Line] = {}  # key -> the line a reader takes
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
            for position, raw in enumerate(content[1].split(b"\n")):
                decoded = _decode(raw, None) if raw else None
                key = _key_of(raw) if decoded is not None else None
                if decoded is None or key is None:
                    dirty[-1] = dirty[-1] or bool(raw)  # garbage is dropped on a rewrite
                    continue
                line = _Line(number, raw, frozenset(decoded[0].blob_names().values()),
                             (pack.mtime_ns, position))
                lines.append(line)
                earlier = latest.get(key)
                if earlier is not None and earlier.alive:  # superseded: never read
                    earlier.alive = False
                    dirty[earlier.pack] = True
                    total -= earlier.size
                latest[key] = line
                if not line.blobs <= present:  # a blob is gone already: a miss forever
                    line.alive = False
                    dirty[-1] = True
                    total -= line.size

        for key, when in used_elsewhere.items():
            used_line = latest.get(key)
            if used_line is not None and when > used_line.used:
                used_line.used = when
        used_at: dict[str, tuple[int, int]] = {}
        by_blob: dict[str, list[_Line]] = {}
        for line in latest.values():
            if line.alive:
                for name in line.blobs:
                    used_at[name] = max(used_at.get(name, line.used), line.used)
                    by_blob.setdefault(name, []).append(line)

        order: list[tuple[int, tuple[int, int], _File | _Line]] = []
        order += [(0, (s.mtime_ns, -1), s) for s in strays]
        order += [(1, max((b.mtime_ns, -1), used_at.get(os.path.basename(b.path), (0, -1))), b)
                  for b in blobs]
        order += [(2, line.used, line) for line in latest.values() if line.alive]
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
            for line in by_blob.get(os.path.basename(item.path), ()):
                if line.alive:
                    line.alive = False
                    dirty[line.pack] = True
                    total -= line.size

        for pack, lines, changed in zip(packs, lines_of, dirty):
            if not changed:
                continue
            survivors = [line.raw for line in lines if line.alive]
            if survivors:
                name, size = self._write_pack(survivors, stamp=_stamp(pack.path))
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
    blobs: frozenset[str]  # the names of its blobs under cas/
    #: When last used: (its pack's mtime, its position in the pack), or later when the
    #: workspace's last build used it without looking at the cache (`gc`).
    used: tuple[int, int]
    alive: bool = True

    @property
    def size(self) -> int:
        return len(self.raw) + 1


def _stamp(pack: str) -> str | None:
    """The time stamp a pack's name starts with (None for a name of another form)."""
    stamp = os.path.basename(pack)[:_STAMP_DIGITS]
    return stamp if len(stamp) == _STAMP_DIGITS and stamp.isdigit() else None


def _encode(key: str, result: ActionResult, blobs: dict[str, list[int]]) -> bytes:
    """One pack line, its key first so a reader indexes it without parsing it."""
    fields: dict[str, Any] = {
        "outputs": dict(result.outputs), "metadata": dict(result.metadata),
        "cost": result.cost, "duration_s": round(result.duration_s, 6), "blobs": blobs}
    if result.executable:  # only then: other lines stay as they were
        fields["executable"] = sorted(result.executable)
    rest = json.dumps(fields, sort_keys=True, separators=(",", ":"))
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
    executable = data.get("executable")  # absent: no executable outputs (hot path: a hit)
    if executable is None:
        executable = _NONE
    elif isinstance(executable, list) and all(
            isinstance(path, str) and path in outputs for path in executable):
        executable = frozenset(executable)
    else:
        return None
    return ActionResult(outputs=outputs, metadata=metadata, cost=cost,
                        duration_s=duration, executable=executable), blobs


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _keyed_lines(content: bytes) -> Iterator[tuple[str, bytes]]:
    """(key, line) for each line of a pack that looks complete; the rest of a line
    is parsed on a hit only. A line with no key (torn, foreign) is skipped."""
    for line in content.split(b"\n"):
        if not line.endswith(b"}"):
            continue  # empty, or torn
        key = _key_of(line)
        if key is not None:
            yield key, line


def _key_of(line: bytes) -> str | None:
    """The key of a result line: read from its start (mb writes it first), else parsed."""
    if line.startswith(_KEY_PREFIX):
        end = line.find(b'"', len(_KEY_PREFIX))
        segment = line[len(_KEY_PREFIX):end]
        if end > 0 and b"\\" not in segment and segment.isascii():
            return segment.decode("ascii")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("key"), str):
        return data["key"]
    return None


def _read(path: str) -> tuple[int, bytes] | None:
    """A pack's mtime and bytes; None if it vanished (merged or collected) or is unreadable."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_mtime_ns, f.read()
    except OSError:
        return None


def parse_size(text: str) -> int:
    """`20GB`, `500MiB`, `1024` -> bytes; raises ValueError with a clear message."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3,
             "M": 10**6, "G": 10**9, "T": 10**12}
    stripped = text.strip().upper().replace(" ", "")
    number = stripped.rstrip("KMGTIB")
    unit = stripped[len(number):]
    import re  # here: the builds that never parse a size need not import it

    # Digits with at most one decimal point: float() would also take `1_000`,
    # `1e-9`, `nan` and `inf`.
    if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", number) or unit not in units:
        raise ValueError(f"size {text!r} is not a size like '20GB' or '500MiB'")
    exact = float(number) * units[unit]
    if number.startswith("-"):
        raise ValueError(f"size {text!r} is negative; give a size like '20GB' or '500MiB'")
    if 0 < exact < 1:  # `0.5`: rounds to nothing, which would empty the cache
        raise ValueError(f"size {text!r} is less than a byte; give a size like '20GB' or "
                         "'500MiB' (0 empties the cache)")
    return int(exact)

