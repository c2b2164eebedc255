"""The local cache (`mb.cache`): blobs, action results, atomic writes, LRU gc, sizes."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from mb import cache as cache_module
from mb import fsutil
from mb.cache import MAX_PACKS, ActionResult, Cache, parse_size
from mb.digest import digest_bytes

KEY = "ab" + "0" * 62
OTHER_KEY = "cd" + "1" * 62


def key(n: int) -> str:
    return f"{n:064x}"


def packs(cache: Cache) -> list[Path]:
    """The packs in ac/, not temporary files."""
    ac = Path(cache.directory, "ac")
    return sorted(p for p in ac.glob("*.pack") if not p.name.startswith(".")) if ac.is_dir() else []


def pack_of(cache: Cache, key: str) -> Path:
    """The pack holding `key`'s result."""
    (pack,) = [p for p in packs(cache)
               if any(json.loads(line)["key"] == key for line in p.read_bytes().splitlines())]
    return pack


def store(cache: Cache, tmp_path: Path, data: bytes) -> str:
    """Store `data` as a blob the way the executor does (a file moved in); return its digest."""
    source = tmp_path / f"out-{digest_bytes(data)[:8]}"
    source.write_bytes(data)
    digest = digest_bytes(data)
    cache.store_file(str(source), digest)
    return digest


def leftovers(cache: Cache) -> list[str]:
    """What is left in the cache's tmp/ (made only when a copy needs it)."""
    tmp = os.path.join(cache.directory, "tmp")
    return os.listdir(tmp) if os.path.isdir(tmp) else []


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(str(tmp_path / "cache"))


# --- blobs and results -------------------------------------------------------------


def test_store_file_moves_the_file_into_a_read_only_blob(cache: Cache, tmp_path: Path) -> None:
    source = tmp_path / "out.png"
    source.write_bytes(b"pixels")
    digest = digest_bytes(b"pixels")
    path = cache.store_file(str(source), digest)
    assert path == cache.blob_path(digest)
    assert path == os.path.join(cache.directory, "cas", digest)
    assert Path(path).read_bytes() == b"pixels"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert not source.exists()
    assert cache.has_blob(digest)
    assert leftovers(cache) == []


def test_storing_a_symlink_stores_its_bytes_and_leaves_the_target_alone(
        cache: Cache, tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_bytes(b"hello")
    target.chmod(0o644)
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    path = cache.store_file(str(link), digest_bytes(b"hello"))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert not os.path.islink(path)
    assert Path(path).read_bytes() == b"hello"


def test_storing_an_existing_blob_keeps_the_first(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"same")
    inode = os.stat(cache.blob_path(digest)).st_ino
    again = tmp_path / "again"
    again.write_bytes(b"same")
    assert cache.store_file(str(again), digest) == cache.blob_path(digest)
    assert os.stat(cache.blob_path(digest)).st_ino == inode


def test_result_roundtrip(cache: Cache, tmp_path: Path) -> None:
    a = store(cache, tmp_path, b"first")
    b = store(cache, tmp_path, b"second")
    result = ActionResult(outputs={"pkg/a.png": a, "pkg/b.wav": b},
                          metadata={"seed": 7, "model": "m"}, cost=0.25, duration_s=1.23456789)
    expected = ActionResult(outputs={"pkg/a.png": a, "pkg/b.wav": b},
                            metadata={"seed": 7, "model": "m"}, cost=0.25, duration_s=1.234568)
    cache.put_result(KEY, result)
    assert cache.get_result(KEY) == expected
    cache.flush()
    assert Cache(cache.directory).get_result(KEY) == expected
    (pack,) = packs(cache)
    (line,) = pack.read_bytes().splitlines()
    assert json.loads(line) == {
        "key": KEY, "outputs": {"pkg/a.png": a, "pkg/b.wav": b},
        "metadata": {"seed": 7, "model": "m"}, "cost": 0.25, "duration_s": 1.234568,
        "blobs": {d: [os.stat(cache.blob_path(d)).st_size,
                      os.stat(cache.blob_path(d)).st_mtime_ns] for d in (a, b)}}


def test_a_result_is_visible_at_once_and_on_disk_after_flush(cache: Cache,
                                                             tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    assert cache.get_result(KEY) == ActionResult(outputs={"p/x": digest})
    assert packs(cache) == [], "not written yet: fewer than 512 pending, the oldest < 1 s"
    assert Cache(cache.directory).get_result(KEY) is None
    cache.flush()
    assert len(packs(cache)) == 1
    assert Cache(cache.directory).get_result(KEY) == ActionResult(outputs={"p/x": digest})
    cache.flush()
    assert len(packs(cache)) == 1, "nothing pending: no new pack"


def test_512_pending_results_are_written_without_flush(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    for n in range(511):
        cache.put_result(key(n), ActionResult(outputs={"p/x": digest}))
    assert packs(cache) == []
    cache.put_result(key(511), ActionResult(outputs={"p/x": digest}))
    (pack,) = packs(cache)
    assert len(pack.read_bytes().splitlines()) == 512
    other = Cache(cache.directory)
    assert all(other.get_result(key(n)) is not None for n in range(512))


def test_a_result_pending_too_long_is_written_by_the_timer(
        cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mb.cache.PACK_MAX_AGE_S", 0.05)
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not packs(cache):
        time.sleep(0.01)
    (pack,) = packs(cache)
    assert len(pack.read_bytes().splitlines()) == 1
    cache.put_result(OTHER_KEY, ActionResult(outputs={"p/x": digest}))
    cache.flush()
    other = Cache(cache.directory)
    assert other.get_result(KEY) is not None and other.get_result(OTHER_KEY) is not None


def test_unknown_key_is_a_miss(cache: Cache) -> None:
    assert cache.get_result(KEY) is None


def test_result_whose_blob_is_missing_is_a_miss(cache: Cache, tmp_path: Path) -> None:
    a = store(cache, tmp_path, b"kept")
    b = store(cache, tmp_path, b"lost")
    cache.put_result(KEY, ActionResult(outputs={"p/a": a, "p/b": b}))
    cache.flush()
    assert cache.get_result(KEY) is not None
    os.unlink(cache.blob_path(b))
    assert cache.get_result(KEY) is None
    assert Cache(cache.directory).get_result(KEY) is None


def test_result_with_an_unstored_digest_is_a_miss(cache: Cache) -> None:
    cache.put_result(KEY, ActionResult(outputs={"p/a": "f" * 64}))
    assert cache.get_result(KEY) is None
    cache.flush()
    assert Cache(cache.directory).get_result(KEY) is None


def test_a_hit_records_its_line_again_once_and_touches_nothing(cache: Cache,
                                                              tmp_path: Path) -> None:
    """Recency for gc: a hit writes the same line again (with the next pack), once per
    Cache; the old pack and the blob (hard-linked into mb-out/) are left alone."""
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    cache.flush()
    (pack,) = packs(cache)
    line = pack.read_bytes()
    blob_mtime = os.stat(cache.blob_path(digest)).st_mtime_ns
    os.utime(pack, (1000, 1000))
    reader = Cache(cache.directory)
    assert reader.get_result(KEY) is not None
    assert reader.get_result(KEY) is not None
    reader.flush()
    assert os.stat(pack).st_mtime == 1000, "the old pack is not touched"
    assert os.stat(cache.blob_path(digest)).st_mtime_ns == blob_mtime
    (_, newer) = packs(cache)
    assert newer.read_bytes() == line, "the same bytes, once"
    assert Cache(cache.directory).get_result(KEY) == ActionResult(outputs={"p/x": digest})


def test_a_result_put_by_the_same_cache_is_not_recorded_twice(cache: Cache,
                                                             tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    assert cache.get_result(KEY) is not None
    cache.flush()
    assert cache.get_result(KEY) is not None
    cache.flush()
    (pack,) = packs(cache)
    assert len(pack.read_bytes().splitlines()) == 1


def test_two_caches_share_one_directory(tmp_path: Path) -> None:
    first = Cache(str(tmp_path / "shared"))
    second = Cache(str(tmp_path / "shared"))
    digest = store(first, tmp_path, b"shared bytes")
    first.put_result(KEY, ActionResult(outputs={"p/s": digest}))
    first.flush()
    assert second.get_result(KEY) == ActionResult(outputs={"p/s": digest})


def test_another_cache_sees_packs_written_after_its_first_lookup(tmp_path: Path) -> None:
    writer = Cache(str(tmp_path / "shared"))  # as if in another process
    reader = Cache(str(tmp_path / "shared"))
    a = store(writer, tmp_path, b"a")
    b = store(writer, tmp_path, b"b")
    writer.put_result(KEY, ActionResult(outputs={"p/a": a}))
    writer.flush()
    assert reader.get_result(KEY) == ActionResult(outputs={"p/a": a})
    assert reader.get_result(OTHER_KEY) is None
    writer.put_result(OTHER_KEY, ActionResult(outputs={"p/b": b}))
    writer.flush()
    assert reader.get_result(OTHER_KEY) == ActionResult(outputs={"p/b": b})
    assert reader.get_result(KEY) == ActionResult(outputs={"p/a": a})


def test_a_miss_lists_ac_only_when_it_changed_and_reads_only_new_packs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = Cache(str(tmp_path / "shared"))
    reader = Cache(str(tmp_path / "shared"))
    digest = store(writer, tmp_path, b"x")
    writer.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    writer.flush()
    ac = os.path.join(writer.directory, "ac")
    os.utime(ac, (1000, 1000))  # changed long ago: a listing of it can be trusted
    listings: list[str] = []
    reads: list[str] = []
    real_list, real_read = reader._pack_names, cache_module._read

    def listing() -> list[str]:
        listings.append(ac)
        return real_list()

    def reading(path: str) -> tuple[int, bytes] | None:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(reader, "_pack_names", listing)
    monkeypatch.setattr(cache_module, "_read", reading)
    assert reader.get_result(OTHER_KEY) is None
    assert reader.get_result(OTHER_KEY) is None
    assert reader.get_result(KEY) is not None
    assert (listings, len(reads)) == ([ac], 1), "listed and read once"
    (first,) = reads
    writer.put_result(OTHER_KEY, ActionResult(outputs={"p/x": digest}))
    writer.flush()
    assert reader.get_result(OTHER_KEY) is not None
    assert len(listings) == 2 and len(reads) == 2 and reads[1] != first


# --- atomicity ----------------------------------------------------------------------


def test_garbage_in_tmp_never_becomes_visible(cache: Cache, tmp_path: Path) -> None:
    torn = b'{"key":"' + KEY.encode() + b'","outputs": {"p/a": "'
    digest = digest_bytes(b"half a blob")
    tmp = Path(cache.directory, "tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "blob-abc123").write_bytes(b"half a bl")
    (tmp / "123-4-abcd.pack").write_bytes(torn)
    (tmp / digest).write_bytes(b"half a blob")
    assert not cache.has_blob(digest)
    assert cache.get_result(KEY) is None
    assert cache.size() == 0
    # storing afterwards works and ignores the leftovers
    real = store(cache, tmp_path, b"half a blob")
    assert real == digest and cache.has_blob(digest)


def test_leftover_temp_file_next_to_packs_is_ignored(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    cache.flush()
    (pack,) = packs(cache)
    # a complete pack under atomic_write_bytes' temporary name: its rename never happened
    pack.rename(pack.with_name(f".tmp-123-456-{pack.name}"))
    assert Cache(cache.directory).get_result(KEY) is None
    assert cache.size() == 1, "only the blob: a recent temporary file may be a write under way"
    assert cache.gc(0) == (1, 1)
    assert Path(pack.parent, f".tmp-123-456-{pack.name}").exists()


def test_torn_pack_keeps_its_complete_lines(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    keys = [key(n) for n in range(3)]
    for k in keys:
        cache.put_result(k, ActionResult(outputs={"p/x": digest}))
    cache.flush()
    (pack,) = packs(cache)
    pack.write_bytes(pack.read_bytes()[:-20])  # the last line cut short
    reader = Cache(cache.directory)
    assert reader.get_result(keys[0]) == ActionResult(outputs={"p/x": digest})
    assert reader.get_result(keys[1]) == ActionResult(outputs={"p/x": digest})
    assert reader.get_result(keys[2]) is None


MISSING = object()


def good_line(digest: str, field: str = "", value: object = MISSING) -> bytes:
    """A pack line as another writer might produce it (spaces after separators)."""
    data: dict[str, object] = {"key": KEY, "outputs": {"p/x": digest}, "metadata": {},
                               "cost": None, "duration_s": 0.5, "blobs": {}}
    if value is MISSING:
        data.pop(field, None)
    else:
        data[field] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize("content", [
    b"", b"\n\n", b'{"key":"' + KEY.encode() + b'","outputs": {"p/a": "', b"\x00\xff garbage",
    b'{"metadata": {}}', b"[1, 2]", b"null", b"[" * 100_000 + b"]" * 100_000,
    b'{"key":"' + KEY.encode() + b'"}',
])
def test_torn_or_foreign_pack_is_a_miss(cache: Cache, content: bytes) -> None:
    ac = Path(cache.directory, "ac")
    ac.mkdir()
    (ac / "0-1-foreign.pack").write_bytes(content)
    assert cache.get_result(KEY) is None
    assert cache.get_result(OTHER_KEY) is None


@pytest.mark.parametrize("field, value", [
    ("key", MISSING), ("outputs", MISSING), ("metadata", MISSING), ("cost", MISSING),
    ("duration_s", MISSING), ("blobs", MISSING), ("key", 7), ("outputs", []),
    ("metadata", [1]), ("cost", "cheap"), ("duration_s", True), ("outputs", {"p/x": 5}),
    ("outputs", {"p/x": "../../escape"}), ("blobs", {"d": "big"}), ("blobs", {"d": [1, 2, 3]}),
])
def test_a_line_lacking_a_field_or_of_a_wrong_type_is_a_miss(
        cache: Cache, tmp_path: Path, field: str, value: object) -> None:
    digest = store(cache, tmp_path, b"x")
    ac = Path(cache.directory, "ac")
    ac.mkdir()
    (ac / "0-1-foreign.pack").write_bytes(good_line(digest, field, value) + b"\n")
    assert cache.get_result(KEY) is None
    # the control: the same line, complete, in a later pack is a hit
    (ac / "1-1-good.pack").write_bytes(good_line(digest) + b"\n")
    assert Cache(cache.directory).get_result(KEY) == ActionResult(outputs={"p/x": digest},
                                                                  duration_s=0.5)


def test_interrupted_flush_leaves_nothing_and_keeps_the_results(
        cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = store(cache, tmp_path, b"x")

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    monkeypatch.setattr(fsutil.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.flush()
    monkeypatch.undo()
    assert os.listdir(os.path.join(cache.directory, "ac")) == []
    assert Cache(cache.directory).get_result(KEY) is None
    assert cache.get_result(KEY) is not None, "still pending"
    cache.flush()
    assert Cache(cache.directory).get_result(KEY) == ActionResult(outputs={"p/x": digest})


def test_interrupted_store_file_leaves_no_blob(cache: Cache, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "out"
    source.write_bytes(b"payload")
    digest = digest_bytes(b"payload")

    def killed(path: str, mode: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mb.cache.os.chmod", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.store_file(str(source), digest)
    monkeypatch.undo()
    assert not cache.has_blob(digest)
    assert leftovers(cache) == []


# --- packs: concurrency and compaction -------------------------------------------


def test_concurrent_puts_from_four_threads_lose_nothing(
        cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mb.cache.PACK_MAX_RESULTS", 7)  # many packs written meanwhile
    digest = store(cache, tmp_path, b"x")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            start.wait()
            for n in range(250):
                k = key(w * 1000 + n)
                cache.put_result(k, ActionResult(outputs={"p/x": digest}, metadata={"n": n}))
                assert cache.get_result(k) is not None
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    cache.flush()
    lines = [json.loads(line) for pack in packs(cache) for line in pack.read_bytes().splitlines()]
    assert sorted(r["key"] for r in lines) == sorted(key(w * 1000 + n)
                                                     for w in range(4) for n in range(250))
    reader = Cache(cache.directory)
    assert all(reader.get_result(key(w * 1000 + n)) == ActionResult(
        outputs={"p/x": digest}, metadata={"n": n}) for w in range(4) for n in range(250))


def test_flush_merges_more_than_64_packs_into_one(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    reader = Cache(cache.directory)  # reads packs that the merge removes
    for n in range(MAX_PACKS):
        cache.put_result(key(n), ActionResult(outputs={"p/x": digest}, metadata={"n": n}))
        if n in (0, 40):
            cache.put_result(KEY, ActionResult(outputs={"p/x": digest}, metadata={"v": n}))
        cache.flush()
        if n == 20:
            assert reader.get_result(key(0)) is not None
    assert len(packs(cache)) == MAX_PACKS
    cache.put_result(key(MAX_PACKS), ActionResult(outputs={"p/x": digest}))
    cache.flush()
    (merged,) = packs(cache)
    lines = [json.loads(line) for line in merged.read_bytes().splitlines()]
    assert len(lines) == MAX_PACKS + 2
    fresh = Cache(cache.directory)
    for n in range(MAX_PACKS):
        assert fresh.get_result(key(n)) == ActionResult(outputs={"p/x": digest},
                                                        metadata={"n": n})
        assert reader.get_result(key(n)) is not None, "a reader whose packs were merged"
    assert fresh.get_result(key(MAX_PACKS)) is not None
    assert fresh.get_result(KEY) == ActionResult(outputs={"p/x": digest}, metadata={"v": 40})
    assert sorted(os.listdir(os.path.join(cache.directory, "ac"))) == sorted(
        [".compact.lock", merged.name])


def test_no_merge_while_another_process_merges(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    for n in range(MAX_PACKS):
        cache.put_result(key(n), ActionResult(outputs={"p/x": digest}))
        cache.flush()
    lock = os.path.join(cache.directory, "ac", ".compact.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        cache.put_result(key(MAX_PACKS), ActionResult(outputs={"p/x": digest}))
        cache.flush()  # does not wait
        assert len(packs(cache)) == MAX_PACKS + 1
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    cache.flush()
    assert len(packs(cache)) == 1
    fresh = Cache(cache.directory)
    assert all(fresh.get_result(key(n)) is not None for n in range(MAX_PACKS + 1))


# --- size and gc --------------------------------------------------------------------


def aged(cache: Cache, tmp_path: Path, key: str, data: bytes, when: float) -> str:
    """A result (alone in its pack) and its blob, both last used at `when`."""
    digest = store(cache, tmp_path, data)
    os.utime(cache.blob_path(digest), (when, when))  # before the result records its stat
    cache.put_result(key, ActionResult(outputs={"p/out": digest}))
    cache.flush()
    os.utime(pack_of(cache, key), (when, when))
    return digest


def result_size(cache: Cache, key: str) -> int:
    return os.path.getsize(pack_of(cache, key))


def test_size_counts_blobs_and_packs(cache: Cache, tmp_path: Path) -> None:
    digest = aged(cache, tmp_path, KEY, b"1234567890", 1000)
    assert cache.size() == 10 + result_size(cache, KEY)
    assert cache.has_blob(digest)


def test_gc_removes_least_recently_used_first(cache: Cache, tmp_path: Path) -> None:
    old = aged(cache, tmp_path, KEY, b"o" * 1000, 1000)
    new = aged(cache, tmp_path, OTHER_KEY, b"n" * 1000, 2000)
    old_pack = result_size(cache, KEY)
    keep = 1000 + result_size(cache, OTHER_KEY)
    removed, freed = cache.gc(keep)
    assert (removed, freed) == (2, 1000 + old_pack), "the blob and its result's pack"
    assert not cache.has_blob(old)
    assert cache.has_blob(new)
    assert cache.get_result(KEY) is None
    assert cache.get_result(OTHER_KEY) is not None
    assert cache.size() == keep


def test_gc_drops_a_result_with_its_blob(cache: Cache, tmp_path: Path) -> None:
    digest = aged(cache, tmp_path, KEY, b"b" * 1000, 1000)
    size = result_size(cache, KEY)
    assert cache.gc(1000) == (2, 1000 + size)
    assert not cache.has_blob(digest)
    assert packs(cache) == []


def test_gc_within_limit_removes_nothing_and_zero_empties(cache: Cache, tmp_path: Path) -> None:
    aged(cache, tmp_path, KEY, b"a" * 100, 1000)
    aged(cache, tmp_path, OTHER_KEY, b"b" * 100, 2000)
    total = cache.size()
    before = packs(cache)
    assert cache.gc(total) == (0, 0)
    assert cache.gc(10**12) == (0, 0)
    assert packs(cache) == before
    assert cache.gc(0) == (4, total)
    assert cache.size() == 0


def test_gc_removes_the_least_recently_used_blob_and_rewrites_packs(
        cache: Cache, tmp_path: Path) -> None:
    blobs = [store(cache, tmp_path, bytes([65 + n]) * 1000) for n in range(3)]
    for digest in blobs:
        os.utime(cache.blob_path(digest), (500, 500))
    b1, b2, b3 = blobs
    k1, k2, k3, k4 = (key(n) for n in range(4))
    cache.put_result(k1, ActionResult(outputs={"p/1": b1}))
    cache.put_result(k2, ActionResult(outputs={"p/2": b2}))
    cache.flush()
    old = pack_of(cache, k1)
    os.utime(old, (1000, 1000))
    cache.put_result(k3, ActionResult(outputs={"p/2": b2}))  # b2 used again later
    cache.put_result(k4, ActionResult(outputs={"p/3": b3}))
    cache.flush()
    os.utime(pack_of(cache, k3), (3000, 3000))
    k1_line = next(line for line in old.read_bytes().splitlines() if k1.encode() in line)
    total = cache.size()
    assert cache.gc(total - 1) == (1, 1000 + len(k1_line) + 1)
    assert [cache.has_blob(d) for d in blobs] == [False, True, True]
    assert cache.size() == total - 1000 - len(k1_line) - 1
    assert not old.exists()
    rewritten = pack_of(cache, k2)
    assert len(rewritten.read_bytes().splitlines()) == 1
    assert os.stat(rewritten).st_mtime == 1000, "a rewritten pack keeps its recency"
    fresh = Cache(cache.directory)
    assert fresh.get_result(k1) is None
    assert all(fresh.get_result(k) is not None for k in (k2, k3, k4))
    assert cache.get_result(k1) is None and cache.get_result(k2) is not None
    cache.flush()  # the hit on k2 is recorded again: a pack of its own
    remaining = cache.size()
    # next: b2 and b3 are the most recent; everything goes
    assert cache.gc(0) == (5, remaining)
    assert cache.size() == 0 and packs(cache) == []


def test_gc_keeps_the_blobs_of_a_recently_hit_result(cache: Cache, tmp_path: Path) -> None:
    used = aged(cache, tmp_path, KEY, b"u" * 1000, 1000)
    aged(cache, tmp_path, OTHER_KEY, b"n" * 1000, 2000)
    limit = 1000 + result_size(cache, KEY)
    reader = Cache(cache.directory)
    assert reader.get_result(KEY) is not None  # KEY is the most recently used
    reader.flush()  # as the executor does when it closes
    cache.gc(limit)
    assert cache.has_blob(used)
    assert cache.get_result(KEY) is not None
    assert cache.get_result(OTHER_KEY) is None


def test_gc_removes_files_of_an_older_layout_first(cache: Cache, tmp_path: Path) -> None:
    aged(cache, tmp_path, KEY, b"k" * 100, 1000)
    old = Path(cache.directory, "ac", OTHER_KEY + ".json")
    old.write_bytes(b'{"outputs": {}}')  # newer than everything, but never read
    stale = old.stat().st_size
    total = cache.size()
    assert total == 100 + result_size(cache, KEY) + stale
    assert cache.gc(total - 1) == (1, stale)
    assert not old.exists()
    assert cache.get_result(KEY) is not None


def test_gc_of_results_without_outputs(cache: Cache, tmp_path: Path) -> None:
    cache.put_result(KEY, ActionResult(outputs={}))
    cache.flush()
    assert cache.get_result(KEY) == ActionResult(outputs={})
    size = result_size(cache, KEY)
    assert cache.size() == size
    assert cache.gc(0) == (1, size), "over the limit with every blob gone: results go too"
    assert cache.size() == 0 and packs(cache) == []


# --- parse_size ---------------------------------------------------------------------


@pytest.mark.parametrize("text, size", [
    ("20GB", 20 * 10**9), ("500MiB", 500 * 2**20), ("1024", 1024), ("1.5G", 1_500_000_000),
    (" 2 kb ", 2000), ("10B", 10), ("0", 0), ("1TiB", 2**40), ("5 MB", 5 * 10**6),
    ("3k", 3000), ("2KiB", 2048), ("1GiB", 2**30), ("1T", 10**12),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["abc", "", "10XB", "GB", "nan", "1.2.3GB", "MiB5", "1e-9",
                                  "1_000", "0x10", "+5"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value) == f"size {text!r} is not a size like '20GB' or '500MiB'"


@pytest.mark.parametrize("text", ["0.5", "0.0001K", ".5B"])
def test_parse_size_rejects_less_than_a_byte(text: str) -> None:
    """It would round to 0 and empty the cache; 0 itself is asked for on purpose."""
    with pytest.raises(ValueError, match="is less than a byte"):
        parse_size(text)


def test_parse_size_negative() -> None:
    with pytest.raises(ValueError, match="is negative"):
        parse_size("-1GB")


def test_parse_size_rejects_infinity() -> None:
    with pytest.raises(ValueError):
        parse_size("inf")


def test_parse_size_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError):
        parse_size("-1GB")


def test_a_blob_written_to_after_it_was_stored_is_dropped(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"original")
    cache.put_result(KEY, ActionResult(outputs={"p/out": digest}))
    assert cache.get_result(KEY) is not None
    blob = Path(cache.blob_path(digest))
    blob.chmod(0o644)
    blob.write_bytes(b"tampered!")  # e.g. through its hard link in mb-out/ (another size)
    assert cache.get_result(KEY) is None
    assert not blob.exists(), "a blob whose bytes no longer match its name is removed"


def test_a_blob_written_to_after_a_flush_is_dropped_by_another_cache(
        cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"original")
    cache.put_result(KEY, ActionResult(outputs={"p/out": digest}))
    cache.flush()
    blob = Path(cache.blob_path(digest))
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")  # the same size: the mtime tells
    os.utime(blob, ns=(1, 1))
    assert Cache(cache.directory).get_result(KEY) is None
    assert not blob.exists()


def test_a_blob_written_to_with_its_mode_put_back_is_dropped(cache: Cache,
                                                             tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"original")
    cache.put_result(KEY, ActionResult(outputs={"p/out": digest}))
    cache.flush()
    blob = Path(cache.blob_path(digest))
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    blob.chmod(0o444)  # only the stat and the bytes tell
    assert Cache(cache.directory).get_result(KEY) is None
    assert not blob.exists()


def test_a_blob_stored_again_with_the_same_bytes_is_a_hit_and_is_kept(
        cache: Cache, tmp_path: Path) -> None:
    """After `mb gc` (or a discard) the same bytes come back as a new inode with a new
    mtime; another workspace's line still has the old stat. It used to discard the
    good blob and re-run, and so did the next line naming it: forever."""
    digest = store(cache, tmp_path, b"shared bytes")
    cache.put_result(KEY, ActionResult(outputs={"p/out": digest}))
    cache.flush()
    blob = Path(cache.blob_path(digest))
    old = blob.stat()
    blob.unlink()
    assert store(cache, tmp_path, b"shared bytes") == digest  # another workspace's action
    os.utime(blob, ns=(old.st_atime_ns, old.st_mtime_ns + 10**9))
    reader = Cache(cache.directory)
    assert reader.get_result(KEY) == ActionResult(outputs={"p/out": digest})
    assert blob.exists()
    reader.flush()  # the line is written again with the blob's stat now
    later = Cache(cache.directory)
    assert later.get_result(KEY) is not None
    line = [json.loads(line) for pack in sorted(Path(cache.directory, "ac").glob("*.pack"))
            for line in pack.read_text().splitlines() if json.loads(line)["key"] == KEY][-1]
    assert line["blobs"][digest] == [blob.stat().st_size, blob.stat().st_mtime_ns]


def test_many_lookups_switch_from_searching_packs_to_an_index(cache: Cache,
                                                              tmp_path: Path) -> None:
    """The first lookups search the packs' bytes, later ones use an index: both agree."""
    digests = {}
    for i in range(100):
        key = f"{i:064x}"
        digests[key] = store(cache, tmp_path, f"blob {i}".encode())
        cache.put_result(key, ActionResult(outputs={"p/x": digests[key]}))
    cache.flush()
    reader = Cache(cache.directory)
    for key in [f"{i:064x}" for i in range(100)] + [f"{i:064x}" for i in range(100)]:
        found = reader.get_result(key)
        assert found is not None and found.outputs == {"p/x": digests[key]}
    assert reader.get_result("f" * 64) is None


def test_a_lone_pending_result_is_written_within_the_age_limit(cache: Cache,
                                                               tmp_path: Path) -> None:
    """No further put comes (a long action runs next): the timer writes it anyway."""
    import time

    digest = store(cache, tmp_path, b"quick result")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not list(Path(cache.directory, "ac").glob("*.pack")):
        time.sleep(0.05)
    found = Cache(cache.directory).get_result(KEY)
    assert found is not None and found.outputs == {"p/x": digest}


# --- executable outputs -------------------------------------------------------------


def test_an_executable_file_gets_a_blob_of_its_own(cache: Cache, tmp_path: Path) -> None:
    """One inode has one mode, and blobs are hard-linked into mb-out/: the same bytes
    stored executable and not are two blobs, `<digest>.x` (0555) and `<digest>` (0444)."""
    data = b"#!/bin/sh\necho hi\n"
    digest = digest_bytes(data)
    for n, executable in enumerate((True, False)):
        source = tmp_path / f"tool-{n}"
        source.write_bytes(data)
        source.chmod(0o755)
        path = cache.store_file(str(source), digest, executable)
        assert path == cache.blob_path(digest, executable)
    assert cache.blob_path(digest, True) == cache.blob_path(digest) + ".x"
    assert stat.S_IMODE(os.stat(cache.blob_path(digest, True)).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(cache.blob_path(digest)).st_mode) == 0o444
    assert cache.has_blob(digest, True) and cache.has_blob(digest)


def test_a_result_says_which_outputs_are_executable(cache: Cache, tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool_digest = digest_bytes(b"#!/bin/sh\n")
    cache.store_file(str(tool), tool_digest, executable=True)
    text = store(cache, tmp_path, b"text")
    result = ActionResult(outputs={"p/tool": tool_digest, "p/text": text},
                          executable=frozenset({"p/tool"}))
    cache.put_result(KEY, result)
    cache.flush()
    assert Cache(cache.directory).get_result(KEY) == result
    line = json.loads(pack_of(cache, KEY).read_bytes())
    assert line["executable"] == ["p/tool"]
    assert set(line["blobs"]) == {tool_digest + ".x", text}
    # Without the `.x` blob (only the same bytes stored plain) it is a miss.
    os.unlink(cache.blob_path(tool_digest, True))
    plain = tmp_path / "plain"
    plain.write_bytes(b"#!/bin/sh\n")
    cache.store_file(str(plain), tool_digest)
    assert Cache(cache.directory).get_result(KEY) is None


def test_a_result_without_executable_outputs_is_written_as_before(cache: Cache,
                                                                  tmp_path: Path) -> None:
    """No `executable` field: lines (and so keys and caches) of earlier versions stay valid."""
    digest = store(cache, tmp_path, b"plain")
    cache.put_result(KEY, ActionResult(outputs={"p/a": digest}))
    cache.flush()
    assert "executable" not in json.loads(pack_of(cache, KEY).read_bytes())


@pytest.mark.parametrize("executable", ['"p/a"', '["p/other"]', '[1]', '{}'])
def test_a_line_with_a_bad_executable_field_is_a_miss(cache: Cache, tmp_path: Path,
                                                      executable: str) -> None:
    digest = store(cache, tmp_path, b"a")
    line = (f'{{"key":"{KEY}","blobs":{{}},"cost":null,"duration_s":0,"executable":{executable},'
            f'"metadata":{{}},"outputs":{{"p/a":"{digest}"}}}}')
    Path(cache.directory, "ac").mkdir(exist_ok=True)
    Path(cache.directory, "ac", "1-1-1.pack").write_text(line + "\n")
    assert cache.get_result(KEY) is None


# --- recency per result -------------------------------------------------------------


def one_build(cache: Cache, tmp_path: Path, results: dict[str, bytes], when: float) -> None:
    """Results of one build, in one pack, used at `when` (their blobs too)."""
    for key_, data in results.items():
        digest = store(cache, tmp_path, data)
        os.utime(cache.blob_path(digest), (when, when))
        cache.put_result(key_, ActionResult(outputs={f"p/{key_[:4]}": digest}))
    cache.flush()
    for pack in packs(cache):
        if os.stat(pack).st_mtime > when:
            os.utime(pack, (when, when))


def test_gc_evicts_per_result_not_per_build(cache: Cache, tmp_path: Path) -> None:
    """k1 and k2 were built together (one pack) before k3; k1 was used since. The least
    recently used is k2, although it shares a pack with the most recently used."""
    k1, k2, k3 = key(1), key(2), key(3)
    one_build(cache, tmp_path, {k1: b"1" * 1000, k2: b"2" * 1000}, 1000)
    one_build(cache, tmp_path, {k3: b"3" * 1000}, 2000)
    reader = Cache(cache.directory)
    assert reader.get_result(k1) is not None
    reader.flush()
    pack_bytes = sum(p.stat().st_size for p in packs(cache))
    cache.gc(2000 + pack_bytes)
    fresh = Cache(cache.directory)
    assert fresh.get_result(k2) is None, "the least recently used result went"
    assert fresh.get_result(k1) is not None and fresh.get_result(k3) is not None


def test_within_one_pack_a_later_line_is_more_recent(cache: Cache, tmp_path: Path) -> None:
    k1, k2 = key(1), key(2)
    one_build(cache, tmp_path, {k1: b"1" * 1000, k2: b"2" * 1000}, 1000)
    cache.gc(1000 + sum(p.stat().st_size for p in packs(cache)))
    fresh = Cache(cache.directory)
    assert fresh.get_result(k1) is None and fresh.get_result(k2) is not None


def test_gc_drops_lines_a_later_line_of_their_key_supersedes(cache: Cache,
                                                             tmp_path: Path) -> None:
    k1, k2 = key(1), key(2)
    one_build(cache, tmp_path, {k1: b"1", k2: b"2"}, 1000)
    old = pack_of(cache, k2)
    reader = Cache(cache.directory)
    assert reader.get_result(k1) is not None
    reader.flush()
    assert len(packs(cache)) == 2
    removed, freed = cache.gc(10**9)
    assert removed == 0 and freed > 0
    assert [len(p.read_bytes().splitlines()) for p in packs(cache)] == [1, 1]
    rewritten = pack_of(cache, k2)
    assert rewritten.name[:19] == old.name[:19], "the rewrite keeps its place in the order"
    assert os.stat(rewritten).st_mtime == 1000
    assert Cache(cache.directory).get_result(k1) is not None


def test_a_restore_rewrites_the_packs_as_one_in_order_of_use(cache: Cache,
                                                             tmp_path: Path) -> None:
    """A build answering most of its actions from the cache writes what it loaded as
    one pack, the results it used last, in the order it used them."""
    keys = [key(n) for n in range(100)]
    for n, key_ in enumerate(keys):
        cache.put_result(key_, ActionResult(outputs={"p/x": store(cache, tmp_path, b"%d" % n)}))
        if n % 30 == 29:
            cache.flush()
    cache.flush()
    assert len(packs(cache)) == 4
    reader = Cache(cache.directory)
    used = list(reversed(keys[20:]))
    assert all(reader.get_result(k) is not None for k in used)
    reader.flush()
    (pack,) = packs(cache)
    order = [json.loads(line)["key"] for line in pack.read_bytes().splitlines()]
    assert order == keys[:20] + used
    fresh = Cache(cache.directory)
    assert all(fresh.get_result(k) is not None for k in keys)


def test_a_few_hits_among_many_results_are_appended(cache: Cache, tmp_path: Path) -> None:
    keys = [key(n) for n in range(300)]
    for n, key_ in enumerate(keys):
        cache.put_result(key_, ActionResult(outputs={"p/x": store(cache, tmp_path, b"%d" % n)}))
    cache.flush()
    (built,) = packs(cache)
    reader = Cache(cache.directory)
    assert all(reader.get_result(k) is not None for k in keys[:70])  # indexed after 64
    reader.flush()
    assert built.exists()
    (_, hits) = packs(cache)
    assert [json.loads(line)["key"] for line in hits.read_bytes().splitlines()] == keys[:70]


def test_merging_keeps_the_latest_line_of_each_key_in_order_of_use(cache: Cache,
                                                                   tmp_path: Path) -> None:
    k1, k2, k3 = key(1), key(2), key(3)
    one_build(cache, tmp_path, {k1: b"1", k2: b"2", k3: b"3"}, 1000)
    reader = Cache(cache.directory)
    assert reader.get_result(k1) is not None
    reader.flush()
    cache._merge_packs()
    (pack,) = packs(cache)
    assert [json.loads(line)["key"] for line in pack.read_bytes().splitlines()] == [k2, k3, k1]
