"""`mb.statcache`: a file is re-hashed only when (size, mtime, inode, ctime) changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mb import statcache
from mb.digest import digest_bytes
from mb.statcache import StatCache


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests write files and hash them at once; the racy window is tested on its own."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def test_a_file_changed_just_now_is_hashed_again_by_the_next_build(
        tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_NS", 2_000_000_000)
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("a")
    old = tmp_path / "old.txt"
    old.write_text("b")
    os.utime(old, (1_000_000, 1_000_000))  # ctime stays recent, so backdate what we can
    first = StatCache(str(tmp_path / "stat"))
    first.digest(str(fresh))
    first.digest(str(fresh))  # within one build: hashed once
    assert calls == [str(fresh)]
    assert first.signature(str(fresh)) is None, "not trusted for the fast path"
    first.save()
    StatCache(str(tmp_path / "stat")).digest(str(fresh))
    assert calls == [str(fresh), str(fresh)], "the next build hashes it again"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path `mb.statcache` hashes, in order."""
    seen: list[str] = []
    real = statcache.digest_file

    def counting(path: str, step_aside: Any = None) -> str:
        seen.append(path)
        return real(path, step_aside)

    monkeypatch.setattr(statcache, "digest_file", counting)
    return seen


def test_unchanged_file_is_hashed_once(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    cache = StatCache(str(tmp_path / "stat"))
    assert cache.digest(str(path)) == digest_bytes(b"hello")
    assert cache.digest(str(path)) == digest_bytes(b"hello")
    assert cache.digest(str(path), os.stat(path)) == digest_bytes(b"hello")
    assert calls == [str(path)]


def test_content_change_is_seen(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    cache = StatCache(str(tmp_path / "stat"))
    cache.digest(str(path))
    path.write_bytes(b"hello, world")  # size changes
    assert cache.digest(str(path)) == digest_bytes(b"hello, world")
    assert len(calls) == 2


def test_same_size_and_restored_mtime_is_still_seen_through_ctime(
        tmp_path: Path, calls: list[str]) -> None:
    """`touch -r`-style edits keep size and mtime; ctime still moves."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"AAAA")
    before = os.stat(path)
    cache = StatCache(str(tmp_path / "stat"))
    cache.digest(str(path))
    deadline = time.monotonic() + 5
    while os.stat(path).st_ctime_ns == before.st_ctime_ns and time.monotonic() < deadline:
        path.write_bytes(b"BBBB")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    assert cache.digest(str(path)) == digest_bytes(b"BBBB")
    assert len(calls) == 2


FIELDS = ("st_size", "st_mtime_ns", "st_ino", "st_ctime_ns")


def fake_stat(st: os.stat_result, **changes: int) -> SimpleNamespace:
    """The four fields StatCache reads, with some changed."""
    return SimpleNamespace(**{name: changes.get(name, getattr(st, name)) for name in FIELDS})


@pytest.mark.parametrize("field", FIELDS)
def test_each_part_of_the_signature_triggers_a_rehash(tmp_path: Path, calls: list[str],
                                                      field: str) -> None:
    path = str(tmp_path / "a.txt")
    Path(path).write_bytes(b"data")
    cache = StatCache(str(tmp_path / "stat"))
    st = os.stat(path)
    cache.digest(path, fake_stat(st))  # type: ignore[arg-type]
    cache.digest(path, fake_stat(st))  # type: ignore[arg-type]
    assert len(calls) == 1
    cache.digest(path, fake_stat(st, **{field: getattr(st, field) + 1}))  # type: ignore[arg-type]
    assert len(calls) == 2


def test_atime_and_mode_do_not_trigger_a_rehash(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"data")
    cache = StatCache(str(tmp_path / "stat"))
    cache.digest(str(path))
    st = os.stat(path)
    changed = SimpleNamespace(st_size=st.st_size, st_mtime_ns=st.st_mtime_ns, st_ino=st.st_ino,
                              st_ctime_ns=st.st_ctime_ns, st_atime_ns=st.st_atime_ns + 10**9,
                              st_mode=0o100600)
    cache.digest(str(path), changed)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_new_inode_with_same_content_is_rehashed(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"data")
    cache = StatCache(str(tmp_path / "stat"))
    cache.digest(str(path))
    replacement = tmp_path / "new"
    replacement.write_bytes(b"data")
    os.replace(replacement, path)
    assert cache.digest(str(path)) == digest_bytes(b"data")
    assert len(calls) == 2


def test_missing_file_raises(tmp_path: Path) -> None:
    cache = StatCache(str(tmp_path / "stat"))
    with pytest.raises(FileNotFoundError):
        cache.digest(str(tmp_path / "nope"))


def test_save_and_load(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"persisted")
    store = str(tmp_path / ".mb" / "statcache")
    first = StatCache(store)
    first.digest(str(path))
    first.save()
    assert os.path.isfile(store)
    second = StatCache(store)
    assert second.digest(str(path)) == digest_bytes(b"persisted")
    assert calls == [str(path)]


def test_save_without_changes_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "statcache"
    StatCache(str(store)).save()
    assert not store.exists()


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage", b"\xfb" * 100, b"[\x02\x00\x00\x00"])
def test_corrupt_file_is_tolerated(tmp_path: Path, calls: list[str], content: bytes) -> None:
    store = tmp_path / "statcache"
    store.write_bytes(content)
    path = tmp_path / "a.txt"
    path.write_bytes(b"x")
    cache = StatCache(str(store))
    assert cache.digest(str(path)) == digest_bytes(b"x")
    cache.save()
    assert StatCache(str(store)).digest(str(path)) == digest_bytes(b"x")
    assert len(calls) == 1


def test_a_truncated_save_is_tolerated(tmp_path: Path, calls: list[str]) -> None:
    store = tmp_path / "statcache"
    files = []
    cache = StatCache(str(store))
    for i in range(20):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"%d" % i)
        files.append(path)
        cache.digest(str(path))
    cache.save()
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    again = StatCache(str(store))
    assert [again.digest(str(p)) for p in files] == [digest_bytes(b"%d" % i) for i in range(20)]


def test_copy_with_preserved_mtime_is_a_new_signature(tmp_path: Path, calls: list[str]) -> None:
    """`cp -p` of different content onto the path: new inode or ctime, so it is re-hashed."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"one!")
    cache = StatCache(str(tmp_path / "stat"))
    cache.digest(str(path))
    other = tmp_path / "b.txt"
    other.write_bytes(b"two!")
    os.utime(other, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns))
    shutil.copy2(other, path)
    assert cache.digest(str(path)) == digest_bytes(b"two!")


def test_corrupt_file_with_a_huge_length_is_tolerated_under_a_memory_limit(
        tmp_path: Path) -> None:
    store = tmp_path / "statcache"
    store.write_bytes(b"[1, 2, 3]")  # marshal: a list of 0x322c3120 items, then nothing
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from mb.statcache import StatCache\n"
        "print(len(StatCache(sys.argv[1])._entries))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "0\n", "")
