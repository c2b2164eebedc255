"""A file as an action key sees it: its digest, marked `x:` when it is executable."""

from __future__ import annotations

import os
from pathlib import Path

from mb.digest import digest_and_stat, digest_bytes, digest_file, key_digest, split_key_digest
from mb.statcache import StatCache


def test_key_digest_marks_executables_only() -> None:
    digest = digest_bytes(b"x")
    assert key_digest(digest, 0o100644) == digest
    assert key_digest(digest, 0o100755) == "x:" + digest
    assert key_digest(digest, 0o100744) == "x:" + digest
    assert split_key_digest("x:" + digest) == (digest, True)
    assert split_key_digest(digest) == (digest, False)


def test_digest_and_stat_gives_the_mode_of_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "tool"
    path.write_bytes(b"#!/bin/sh\n")
    path.chmod(0o755)
    digest, st = digest_and_stat(str(path))
    assert digest == digest_file(str(path)) == digest_bytes(b"#!/bin/sh\n")
    assert st.st_mode & 0o777 == 0o755 and st.st_size == 10


def test_statcache_key_digest_follows_chmod(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("mb.statcache.RACY_NS", 0)
    path = tmp_path / "tool.sh"
    path.write_bytes(b"echo hi\n")
    path.chmod(0o755)
    cache = StatCache(str(tmp_path / "statcache.bin"))
    plain = digest_bytes(b"echo hi\n")
    assert cache.key_digest(str(path)) == "x:" + plain
    assert cache.digest(str(path)) == plain, "the content digest itself is unmarked"
    assert cache.known_digest(str(path)) == "x:" + plain
    path.chmod(0o644)
    assert cache.key_digest(str(path)) == plain
    assert cache.known_digest(str(path)) == plain
    # Saved and loaded: the stat cache keeps content digests only.
    cache.save()
    again = StatCache(str(tmp_path / "statcache.bin"))
    os.chmod(path, 0o700)
    assert again.key_digest(str(path)) == "x:" + plain
