"""The local cache (`mb.cache`): blobs, action results, atomic writes, LRU gc, sizes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mb import fsutil
from mb.cache import ActionResult, Cache, parse_size
from mb.digest import digest_bytes

KEY = "ab" + "0" * 62
OTHER_KEY = "cd" + "1" * 62


def store(cache: Cache, tmp_path: Path, data: bytes) -> str:
    """Store `data` as a blob the way the executor does (a file moved in); return its digest."""
    source = tmp_path / f"out-{digest_bytes(data)[:8]}"
    source.write_bytes(data)
    digest = digest_bytes(data)
    cache.store_file(str(source), digest)
    return digest


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
    assert os.listdir(os.path.join(cache.directory, "tmp")) == []


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
    cache.put_result(KEY, result)
    found = cache.get_result(KEY)
    assert found == ActionResult(outputs={"pkg/a.png": a, "pkg/b.wav": b},
                                 metadata={"seed": 7, "model": "m"}, cost=0.25,
                                 duration_s=1.234568)
    path = Path(cache.directory, "ac", KEY + ".json")
    assert path.is_file()


def test_unknown_key_is_a_miss(cache: Cache) -> None:
    assert cache.get_result(KEY) is None


def test_result_whose_blob_is_missing_is_a_miss(cache: Cache, tmp_path: Path) -> None:
    a = store(cache, tmp_path, b"kept")
    b = store(cache, tmp_path, b"lost")
    cache.put_result(KEY, ActionResult(outputs={"p/a": a, "p/b": b}))
    assert cache.get_result(KEY) is not None
    os.unlink(cache.blob_path(b))
    assert cache.get_result(KEY) is None


def test_result_with_an_unstored_digest_is_a_miss(cache: Cache) -> None:
    cache.put_result(KEY, ActionResult(outputs={"p/a": "f" * 64}))
    assert cache.get_result(KEY) is None


def test_a_hit_refreshes_the_result_time(cache: Cache, tmp_path: Path) -> None:
    digest = store(cache, tmp_path, b"x")
    cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    path = os.path.join(cache.directory, "ac", KEY + ".json")
    os.utime(path, (1000, 1000))
    assert cache.get_result(KEY) is not None
    assert os.stat(path).st_mtime > 1000


# --- atomicity ----------------------------------------------------------------------


def test_garbage_in_tmp_never_becomes_visible(cache: Cache, tmp_path: Path) -> None:
    torn = b'{"outputs": {"p/a": "'
    digest = digest_bytes(b"half a blob")
    tmp = Path(cache.directory, "tmp")
    (tmp / "blob-abc123").write_bytes(b"half a bl")
    (tmp / f"{KEY}.json").write_bytes(torn)
    (tmp / digest).write_bytes(b"half a blob")
    assert not cache.has_blob(digest)
    assert cache.get_result(KEY) is None
    assert cache.size() == 0
    # storing afterwards works and ignores the leftovers
    real = store(cache, tmp_path, b"half a blob")
    assert real == digest and cache.has_blob(digest)


def test_leftover_temp_file_next_to_results_is_not_a_result(cache: Cache) -> None:
    directory = Path(cache.directory, "ac")
    directory.mkdir(parents=True)
    (directory / ".tmp-x1y2").write_bytes(b'{"outputs": {}}')
    assert cache.get_result(KEY) is None


@pytest.mark.parametrize("content", [b"", b'{"outputs": {"p/a": "', b"\x00\xff garbage",
                                     b'{"metadata": {}}', b"[1, 2]", b"null"])
def test_torn_or_foreign_result_file_is_a_miss(cache: Cache, content: bytes) -> None:
    path = Path(cache.directory, "ac", KEY + ".json")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert cache.get_result(KEY) is None


def test_interrupted_put_result_leaves_nothing(cache: Cache, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    digest = store(cache, tmp_path, b"x")

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fsutil.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.put_result(KEY, ActionResult(outputs={"p/x": digest}))
    monkeypatch.undo()
    assert cache.get_result(KEY) is None
    assert os.listdir(os.path.join(cache.directory, "ac")) == []


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
    assert os.listdir(os.path.join(cache.directory, "tmp")) == []


def test_two_caches_share_one_directory(tmp_path: Path) -> None:
    first = Cache(str(tmp_path / "shared"))
    second = Cache(str(tmp_path / "shared"))
    digest = store(first, tmp_path, b"shared bytes")
    first.put_result(KEY, ActionResult(outputs={"p/s": digest}))
    assert second.get_result(KEY) == ActionResult(outputs={"p/s": digest})


# --- size and gc --------------------------------------------------------------------


def aged(cache: Cache, tmp_path: Path, key: str, data: bytes, when: float) -> str:
    """A result and its blob, both last used at `when`."""
    digest = store(cache, tmp_path, data)
    os.utime(cache.blob_path(digest), (when, when))  # before the result records its stat
    cache.put_result(key, ActionResult(outputs={"p/out": digest}))
    os.utime(cache._result_path(key), (when, when))
    return digest


def result_size(cache: Cache, key: str) -> int:
    return os.path.getsize(cache._result_path(key))


def test_size_counts_blobs_and_results(cache: Cache, tmp_path: Path) -> None:
    digest = aged(cache, tmp_path, KEY, b"1234567890", 1000)
    assert cache.size() == 10 + result_size(cache, KEY)
    assert cache.has_blob(digest)


def test_gc_removes_least_recently_used_first(cache: Cache, tmp_path: Path) -> None:
    old = aged(cache, tmp_path, KEY, b"o" * 1000, 1000)
    new = aged(cache, tmp_path, OTHER_KEY, b"n" * 1000, 2000)
    keep = 1000 + result_size(cache, OTHER_KEY)
    removed, freed = cache.gc(keep)
    assert (removed, freed) == (2, 1000 + result_size(cache, OTHER_KEY))
    assert not cache.has_blob(old)
    assert cache.has_blob(new)
    assert cache.get_result(KEY) is None
    assert cache.get_result(OTHER_KEY) is not None
    assert cache.size() == keep


def test_gc_removes_the_result_before_its_blob_of_the_same_age(cache: Cache,
                                                               tmp_path: Path) -> None:
    digest = aged(cache, tmp_path, KEY, b"b" * 1000, 1000)
    size = result_size(cache, KEY)
    assert cache.gc(1000) == (1, size)
    assert cache.has_blob(digest)
    assert not os.path.exists(cache._result_path(KEY))


def test_gc_within_limit_removes_nothing_and_zero_empties(cache: Cache, tmp_path: Path) -> None:
    aged(cache, tmp_path, KEY, b"a" * 100, 1000)
    aged(cache, tmp_path, OTHER_KEY, b"b" * 100, 2000)
    total = cache.size()
    assert cache.gc(total) == (0, 0)
    assert cache.gc(10**12) == (0, 0)
    assert cache.gc(0) == (4, total)
    assert cache.size() == 0


def test_gc_keeps_the_blobs_of_a_recently_hit_result(cache: Cache, tmp_path: Path) -> None:
    used = aged(cache, tmp_path, KEY, b"u" * 1000, 1000)
    aged(cache, tmp_path, OTHER_KEY, b"n" * 1000, 2000)
    assert cache.get_result(KEY) is not None  # a hit now: KEY is the most recently used
    cache.gc(1000 + result_size(cache, KEY))
    assert cache.has_blob(used)
    assert cache.get_result(KEY) is not None


# --- parse_size ---------------------------------------------------------------------


@pytest.mark.parametrize("text, size", [
    ("20GB", 20 * 10**9), ("500MiB", 500 * 2**20), ("1024", 1024), ("1.5G", 1_500_000_000),
    (" 2 kb ", 2000), ("10B", 10), ("0", 0), ("1TiB", 2**40), ("5 MB", 5 * 10**6),
    ("3k", 3000), ("2KiB", 2048), ("1GiB", 2**30), ("1T", 10**12),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["abc", "", "10XB", "GB", "nan", "1.2.3GB", "MiB5"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value) == f"size {text!r} is not a size like '20GB' or '500MiB'"


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
