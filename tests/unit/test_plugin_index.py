"""`mb.plugin_index`: the entry points of group `mb`, from an index kept per Python
environment while its signature (the distributions on `sys.path`) is unchanged."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from mb import plugin_index
from mb.plugin_index import EntryPointRecord, mb_entry_points


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache folder, and no racy window (it is tested on its own):
    the fake distributions below are written a moment before they are listed."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(plugin_index, "RACY_NS", 0)
    return home


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The groups computed with importlib.metadata (index misses), in order."""
    calls: list[str] = []
    compute = plugin_index.compute

    def counting(group: str) -> list[EntryPointRecord]:
        calls.append(group)
        return compute(group)

    monkeypatch.setattr(plugin_index, "compute", counting)
    return calls


def _from_importlib_metadata() -> list[EntryPointRecord]:
    """What `Plugins.load_entry_points` registered before the index, written out again."""
    importlib.invalidate_caches()
    found = []
    for entry_point in sorted(metadata.entry_points(group="mb"), key=lambda e: e.name):
        dist = entry_point.dist
        assert dist is not None
        found.append(EntryPointRecord(entry_point.name, entry_point.value,
                                      dist.metadata["Name"], dist.version))
    return found


def _index_file() -> Path:
    path = plugin_index.index_path("mb")
    assert path is not None
    return Path(path)


FAKE_INFO = "fake_mb_plugin-1.0.dist-info"


def _fake_distribution(folder: Path, entry_points: str, version: str = "1.0") -> Path:
    """A distribution `fake-mb-plugin` in `folder` (put it on sys.path), as pip leaves one."""
    info = folder / FAKE_INFO
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fake-mb-plugin\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    return info


def _backdate(*paths: Path, seconds: float = 10) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def _fake(records: list[EntryPointRecord]) -> list[EntryPointRecord]:
    return [r for r in records if r.distribution == "fake-mb-plugin"]


# --- what it lists ------------------------------------------------------------------


def test_the_index_lists_what_importlib_metadata_lists(computed: list[str]) -> None:
    expected = _from_importlib_metadata()
    assert {"genrule", "filegroup"} <= {r.name for r in expected}, "mb's own rules"
    assert mb_entry_points() == expected
    assert computed == ["mb"]
    assert _index_file().is_file()
    assert mb_entry_points() == expected, "served from the index file"
    assert computed == ["mb"]
    assert [r.name for r in expected] == sorted(r.name for r in expected)


def test_a_second_call_is_served_from_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    first = mb_entry_points()

    def fail(group: str) -> list[EntryPointRecord]:
        raise AssertionError("computed again")

    monkeypatch.setattr(plugin_index, "compute", fail)
    assert mb_entry_points() == first
    stored = json.loads(_index_file().read_text())
    assert stored["schema"] == plugin_index.SCHEMA
    assert stored["entry_points"] == [[r.name, r.value, r.distribution, r.version]
                                      for r in first]


def test_the_index_lives_in_home_cache_when_xdg_cache_home_is_unset_empty_or_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in (None, "", "relative/cache"):
        if value is None:
            monkeypatch.delenv("XDG_CACHE_HOME")
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert _index_file().parent == tmp_path / "home" / ".cache" / "mb" / "entry-points"
    mb_entry_points()
    assert len(list((tmp_path / "home" / ".cache" / "mb" / "entry-points").iterdir())) == 1


def test_another_sys_path_is_another_index_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _index_file()
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    assert _index_file() != before
    assert _index_file().parent == before.parent


# --- a distribution installed, rewritten, removed -----------------------------------


def test_a_fake_distribution_appears_changes_and_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    site = tmp_path / "site"
    info = _fake_distribution(site, "[mb]\nfake_shout = fake_mb_plugin_mod\n")
    monkeypatch.syspath_prepend(str(site))
    first = EntryPointRecord("fake_shout", "fake_mb_plugin_mod", "fake-mb-plugin", "1.0")
    assert _fake(mb_entry_points()) == [first]
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 1, "the second call was served from the index"

    # Rewritten in place (pip never does; an editor or a hand-made install might),
    # its mtime put back 10 s, past any racy window.
    (info / "entry_points.txt").write_text(
        "[mb]\nfake_shout = fake_mb_plugin_mod:rules\nfake_other = fake_mb_other\n")
    _backdate(info / "entry_points.txt", info)
    importlib.invalidate_caches()
    assert _fake(mb_entry_points()) == [
        EntryPointRecord("fake_other", "fake_mb_other", "fake-mb-plugin", "1.0"),
        EntryPointRecord("fake_shout", "fake_mb_plugin_mod:rules", "fake-mb-plugin", "1.0")]
    assert len(computed) == 2
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 2

    shutil.rmtree(info)
    importlib.invalidate_caches()
    assert _fake(mb_entry_points()) == []
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 3


def test_a_same_size_rewrite_with_its_mtime_put_back_is_still_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature holds ctime too (`fastpath.file_sig`), which `touch -r` or
    `cp -p` cannot set back: bytes, size and mtime alike, the change is seen."""
    site = tmp_path / "site"
    info = _fake_distribution(site, "[mb]\nfake_shout = module_aa\n")
    _backdate(info / "entry_points.txt", info)
    mtime_ns = (info / "entry_points.txt").stat().st_mtime_ns
    monkeypatch.syspath_prepend(str(site))
    assert [r.value for r in _fake(mb_entry_points())] == ["module_aa"]
    time.sleep(0.05)  # past the file system's timestamp granularity
    (info / "entry_points.txt").write_text("[mb]\nfake_shout = module_bb\n")
    os.utime(info / "entry_points.txt", ns=(mtime_ns, mtime_ns))
    importlib.invalidate_caches()
    assert [r.value for r in _fake(mb_entry_points())] == ["module_bb"]


def test_a_new_version_in_metadata_is_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _fake_distribution(site, "[mb]\nfake_shout = fake_mb_plugin_mod\n")
    monkeypatch.syspath_prepend(str(site))
    assert [r.version for r in _fake(mb_entry_points())] == ["1.0"]
    time.sleep(0.05)
    _fake_distribution(site, "[mb]\nfake_shout = fake_mb_plugin_mod\n", version="1.1")
    importlib.invalidate_caches()
    assert [r.version for r in _fake(mb_entry_points())] == ["1.1"]


def test_a_distribution_in_a_zip_on_sys_path_is_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    """A zip (or egg) on sys.path is signed by its own stat."""
    site = tmp_path / "site"
    _fake_distribution(site, "[mb]\nzipped = zipped_mod\n")
    archive = shutil.make_archive(str(tmp_path / "plugins"), "zip", site)
    monkeypatch.syspath_prepend(archive)
    assert [r.name for r in _fake(mb_entry_points())] == ["zipped"]
    assert [r.name for r in _fake(mb_entry_points())] == ["zipped"]
    assert len(computed) == 1
    os.unlink(archive)
    importlib.invalidate_caches()
    assert _fake(mb_entry_points()) == []
    assert len(computed) == 2


# --- a bad index file or no place to write one --------------------------------------


def _signature() -> list[object]:
    return plugin_index.environment_signature()[0]


@pytest.mark.parametrize("content", [
    b"{not json",
    b"\xff\xfe garbage",
    b"",
    b"[]",
    b'"a string"',
    b'{"schema": 0}',
    "signature",  # stands for: the right signature, records of the wrong shape (below)
])
def test_a_corrupt_or_foreign_index_file_is_computed_again(
        content: bytes | str, computed: list[str]) -> None:
    path = _index_file()
    path.parent.mkdir(parents=True)
    if content == "signature":
        signature = _signature()
        for rows in ("not a list", [["only", "three", "items"]], [[1, 2, 3, 4]], [None]):
            path.write_text(json.dumps({"schema": plugin_index.SCHEMA, "signature": signature,
                                        "entry_points": rows}))
            assert mb_entry_points() == _from_importlib_metadata()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
        assert mb_entry_points() == _from_importlib_metadata()
    assert computed and set(computed) == {"mb"}
    assert json.loads(path.read_text())["schema"] == plugin_index.SCHEMA, "rewritten"
    computed.clear()
    assert mb_entry_points() == _from_importlib_metadata()
    assert computed == []


def test_an_index_file_of_another_signature_is_computed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    path = _index_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": plugin_index.SCHEMA, "signature": [],
                                "entry_points": [["ghost", "ghost_mod", "ghost", "1"]]}))
    assert "ghost" not in {r.name for r in mb_entry_points()}
    assert len(computed) == 1


def test_a_cache_folder_that_cannot_be_made_costs_only_the_speed_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # mkdir: NotADirectoryError
    assert mb_entry_points() == _from_importlib_metadata()
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 2
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(blocker / "home"))  # a home that is not there
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 3


def test_a_read_only_cache_folder_costs_only_the_speed_up(
        cache_home: Path, computed: list[str]) -> None:
    folder = _index_file().parent
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("permissions do not bind this user (root)")
        assert mb_entry_points() == _from_importlib_metadata()
        assert not _index_file().exists()
    finally:
        folder.chmod(0o700)


def test_no_home_at_all_means_no_index(monkeypatch: pytest.MonkeyPatch,
                                       computed: list[str]) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # no HOME, no passwd entry
    assert plugin_index.index_path("mb") is None
    assert mb_entry_points() == _from_importlib_metadata()
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 2


def test_another_finder_of_distributions_bypasses_the_index(
        monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    """Distributions a custom finder supplies are not in any folder the signature stats."""

    class Finder:
        @staticmethod
        def find_spec(*args: object) -> None:
            return None

        @staticmethod
        def find_distributions(*args: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert mb_entry_points() == _from_importlib_metadata()
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 2
    assert not _index_file().exists()


# --- racily clean -------------------------------------------------------------------


def test_a_signature_with_a_fresh_stat_is_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    monkeypatch.setattr(plugin_index, "RACY_NS", 2_000_000_000)
    site = tmp_path / "site"
    _fake_distribution(site, "[mb]\nfake_shout = fake_mb_plugin_mod\n")
    monkeypatch.syspath_prepend(str(site))
    assert [r.name for r in _fake(mb_entry_points())] == ["fake_shout"]
    assert not _index_file().exists(), "entry_points.txt was written just now"
    assert [r.name for r in _fake(mb_entry_points())] == ["fake_shout"]
    assert len(computed) == 2
    # Once its stats are older than the window, the same environment is stored.
    monkeypatch.setattr(plugin_index, "RACY_NS", 0)
    mb_entry_points()
    assert _index_file().exists()
    assert len(computed) == 3
    mb_entry_points()
    assert len(computed) == 3


def test_the_signature_is_taken_before_the_entry_points_are_computed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution installed while they are computed is seen by the next call."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    compute = plugin_index.compute

    def install_meanwhile(group: str) -> list[EntryPointRecord]:
        found = compute(group)
        _fake_distribution(site, "[mb]\nlate = late_mod\n")
        importlib.invalidate_caches()
        return found

    monkeypatch.setattr(plugin_index, "compute", install_meanwhile)
    assert _fake(mb_entry_points()) == []
    monkeypatch.setattr(plugin_index, "compute", compute)
    assert [r.name for r in _fake(mb_entry_points())] == ["late"]


# --- importlib.metadata is not imported on a hit ------------------------------------


def test_a_hit_does_not_import_importlib_metadata(cache_home: Path) -> None:
    code = ("import sys\n"
            "from mb.plugins import load_plugins\n"
            "plugins = load_plugins()\n"
            "assert not plugins.failures, plugins.failures\n"
            "print(sorted(p.name for p in plugins.loaded))\n"
            "print('importlib.metadata' in sys.modules)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home),
           "MB_RACY_SECONDS": "0"}  # the venv may have been installed a moment ago

    def run() -> tuple[str, bool]:
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(cache_home.parent),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        names, imported = proc.stdout.splitlines()
        return names, imported == "True"

    names, imported = run()
    assert imported, "a miss computes them with importlib.metadata"
    # Another test's `pip install` (mb-shout, once per session) may change the
    # environment between two runs: then the next run is a miss once more.
    for _ in range(3):
        again, imported = run()
        if not imported:
            break
    assert not imported, "a hit imports no importlib.metadata"
    assert "genrule" in again


def test_a_removed_current_directory_means_no_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, computed: list[str]) -> None:
    """An empty entry on sys.path is the current directory (`python -c`): gone, no key."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    monkeypatch.syspath_prepend("")
    gone.rmdir()
    assert plugin_index.index_path("mb") is None
    assert mb_entry_points() == _from_importlib_metadata()
    assert len(computed) == 1
