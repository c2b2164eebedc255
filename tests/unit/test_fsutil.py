"""place_file: how outputs get into mb-out/ (hard links out of the cache, atomically)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from mb import fsutil


def _blob(tmp_path, data: bytes = b"bytes\n") -> str:
    blob = tmp_path / "cas" / "blob"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    blob.chmod(0o444)
    return str(blob)


def test_absent_target_is_linked_and_its_folder_made(tmp_path):
    blob = _blob(tmp_path)
    target = tmp_path / "mb-out" / "pkg" / "out.txt"
    fsutil.place_file(blob, str(target))
    assert os.path.samefile(blob, target)
    assert sorted(os.listdir(target.parent)) == ["out.txt"]  # no temporary left


def test_existing_file_is_replaced_by_the_link(tmp_path):
    blob = _blob(tmp_path, b"new\n")
    target = tmp_path / "out.txt"
    target.write_bytes(b"old\n")
    fsutil.place_file(blob, str(target))
    assert os.path.samefile(blob, target)
    assert target.read_bytes() == b"new\n"
    assert sorted(os.listdir(tmp_path)) == ["cas", "out.txt"]


def test_no_hard_links_means_a_read_only_copy(tmp_path, monkeypatch):
    blob = _blob(tmp_path)

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(fsutil.os, "link", cross_device)
    target = tmp_path / "mb-out" / "out.txt"
    fsutil.place_file(blob, str(target))
    assert target.read_bytes() == b"bytes\n"
    assert not os.path.samefile(blob, target)
    assert target.stat().st_mode & 0o777 == 0o444
    assert sorted(os.listdir(target.parent)) == ["out.txt"]


def test_missing_source_is_an_error_and_creates_nothing(tmp_path):
    target = tmp_path / "mb-out" / "out.txt"
    with pytest.raises(FileNotFoundError):
        fsutil.place_file(str(tmp_path / "gone"), str(target))
    assert not target.exists()


def test_remove_tree_never_changes_the_mode_of_a_file_it_removes(tmp_path, monkeypatch):
    """A file of mb-out/ is a hard link to a cache blob: a chmod of it (to get past a
    failed unlink) would make the blob writable. Only directories are unlocked."""
    blob = tmp_path / "cas" / "blob"
    blob.parent.mkdir()
    blob.write_bytes(b"cached\n")
    blob.chmod(0o444)
    out = tmp_path / "mb-out" / "p"
    out.mkdir(parents=True)
    os.link(blob, out / "o.txt")
    real_unlink, failed = os.unlink, []

    def unlink_failing_once(path, *args, **kwargs):  # as in a read-only folder
        if str(path).endswith("o.txt") and not failed:
            failed.append(path)
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink_failing_once)
    fsutil.remove_tree(str(tmp_path / "mb-out"))
    assert failed, "the failing unlink was exercised"
    assert not (tmp_path / "mb-out").exists()
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_remove_tree_removes_read_only_and_unlistable_directories(tmp_path):
    tree = tmp_path / "t"
    (tree / "ro" / "deep").mkdir(parents=True)
    (tree / "ro" / "deep" / "f").write_text("x")
    (tree / "closed").mkdir()
    (tree / "closed" / "g").write_text("y")
    (tree / "ro" / "deep").chmod(0o555)
    (tree / "ro").chmod(0o555)
    (tree / "closed").chmod(0o000)
    outside_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    fsutil.remove_tree(str(tree))
    assert not tree.exists()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == outside_mode, "the parent is left alone"
