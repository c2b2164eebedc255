"""FolderListings answers exists/lexists as os.path does, from one listing per folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mb import listings
from mb.listings import FolderListings


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("file.txt")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "dirlink").symlink_to("dir")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


NAMES = ["file.txt", "dir", "link", "dangling", "dirlink", "fifo", "missing",
         "file.txt/below", "missing/below", "dir/missing", "dirlink/missing"]


@pytest.mark.parametrize("name", NAMES)
def test_answers_what_os_path_answers(tree: Path, name: str) -> None:
    found = FolderListings(lambda folder: None)
    path = str(tree / name)
    assert found.exists(path) == os.path.exists(path)
    assert found.lexists(path) == os.path.lexists(path)


def test_each_folder_is_observed_before_it_is_listed_and_listed_once(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real_scandir = os.scandir
    monkeypatch.setattr(listings.os, "scandir",
                        lambda folder: calls.append(("list", folder)) or real_scandir(folder))
    found = FolderListings(lambda folder: calls.append(("observe", folder)))
    for name in ("file.txt", "dir", "missing", "link"):
        found.exists(str(tree / name))
    assert calls == [("observe", str(tree)), ("list", str(tree))]


def test_a_folder_that_cannot_be_listed_is_asked_name_by_name(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(folder: str) -> None:
        raise PermissionError(13, "Permission denied", folder)

    monkeypatch.setattr(listings.os, "scandir", refuse)
    found = FolderListings(lambda folder: None)
    assert found.exists(str(tree / "file.txt"))
    assert not found.exists(str(tree / "missing"))
    assert found.lexists(str(tree / "dangling"))
