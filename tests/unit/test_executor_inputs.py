"""`_blob_written`: did an action write to a blob it was given as an input?

The staged hard link is what the action saw; a moved stat is confirmed by the
bytes, because another process sharing the cache may store the same bytes
again (a new inode, a new mtime) at any time, which is no write.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mb.digest import digest_bytes
from mb.executor import _blob_written

DATA = b"the input's bytes\n"


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path, tuple[int, int]]:
    """(the blob in cas/, its hard link in a sandbox root, the blob's stat before)."""
    blob = tmp_path / "cas" / digest_bytes(DATA)
    blob.parent.mkdir()
    blob.write_bytes(DATA)
    blob.chmod(0o444)
    link = tmp_path / "root" / "p" / "in.txt"
    link.parent.mkdir(parents=True)
    os.link(blob, link)
    st = blob.stat()
    return blob, link, (st.st_size, st.st_mtime_ns)


def _written(blob: Path, link: Path, before: tuple[int, int]) -> bool:
    return _blob_written(str(blob), str(link), before, digest_bytes(DATA))


def _store_again(blob: Path, data: bytes = DATA) -> None:
    """Another workspace's action stores the blob again after `mb gc` removed it."""
    blob.unlink()
    blob.write_bytes(data)
    blob.chmod(0o444)
    os.utime(blob, ns=(1, 10**18))


def test_an_untouched_input_was_not_written(staged) -> None:
    assert not _written(*staged)


def test_the_same_bytes_stored_again_meanwhile_are_not_a_write(staged) -> None:
    blob, link, before = staged
    _store_again(blob)
    assert not _written(blob, link, before)
    assert blob.exists(), "the good blob is kept"


def test_a_moved_stat_with_the_same_bytes_is_not_a_write(staged) -> None:
    blob, link, before = staged
    os.utime(link, ns=(1, 10**18))  # the inode's mtime moved, its bytes did not
    assert not _written(blob, link, before)
    assert blob.exists()


def test_a_write_through_the_link_is_found_and_the_blob_dropped(staged) -> None:
    blob, link, before = staged
    link.chmod(0o644)
    link.write_bytes(b"written by the action\n")
    assert _written(blob, link, before)
    assert not blob.exists(), "its bytes no longer match its name"


def test_a_write_to_an_old_inode_does_not_drop_a_blob_stored_again(staged) -> None:
    blob, link, before = staged
    _store_again(blob)
    link.chmod(0o644)
    link.write_bytes(b"written by the action\n")
    assert _written(blob, link, before)
    assert blob.read_bytes() == DATA, "the blob in the cache is another, good inode"


def test_an_input_link_the_action_removed_is_judged_by_the_blob(staged) -> None:
    blob, link, before = staged
    link.unlink()
    assert not _written(blob, link, before)
    blob.chmod(0o644)
    blob.write_bytes(b"changed\n")
    assert _written(blob, link, before)
