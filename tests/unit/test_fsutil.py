"""place_file: how outputs get into mb-out/ (hard links out of the cache, atomically)."""

from __future__ import annotations

import errno
import os

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
