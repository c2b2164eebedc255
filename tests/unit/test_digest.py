"""`mb.digest`: blake3 of bytes and files (small and mmap paths agree) and canonical JSON."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mb import digest
from mb.digest import canonical_json, digest_bytes, digest_file, digest_value

EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_digest_bytes_is_blake3() -> None:
    assert digest_bytes(b"") == EMPTY
    assert digest_bytes(b"abc") == ABC


def test_digest_file_small(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "abc").write_bytes(b"abc")
    assert digest_file(str(tmp_path / "empty")) == EMPTY
    assert digest_file(str(tmp_path / "abc")) == ABC


@pytest.mark.parametrize("size", [
    digest._LARGE_FILE - 1, digest._LARGE_FILE, digest._LARGE_FILE + 1, 3 * digest._LARGE_FILE + 7,
    digest._THREADED_FILE - 1, digest._THREADED_FILE + 4099,
])
def test_digest_file_agrees_across_the_size_thresholds(tmp_path: Path, size: int) -> None:
    data = bytes(i * 31 % 251 for i in range(251)) * (size // 251 + 1)
    data = data[:size]
    path = tmp_path / "big"
    path.write_bytes(data)
    assert digest_file(str(path)) == digest_bytes(data)


def test_digest_file_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        digest_file(str(tmp_path / "nope"))


def test_canonical_json_sorted_compact_utf8() -> None:
    value = {"b": 1, "a": [1.0, "\u00e9", None, True], "c": {"z": 1, "y": 2}}
    assert canonical_json(value) == (
        '{"a":[1.0,"\u00e9",null,true],"b":1,"c":{"y":2,"z":1}}'.encode())


def test_canonical_json_ignores_insertion_order() -> None:
    assert canonical_json({"x": 1, "y": {"b": 2, "a": 1}}) == canonical_json(
        {"y": {"a": 1, "b": 2}, "x": 1})
    assert digest_value({"x": 1, "y": 2}) == digest_value({"y": 2, "x": 1})


def test_canonical_json_keeps_int_and_float_apart() -> None:
    assert digest_value({"n": 1}) != digest_value({"n": 1.0})
    assert digest_value(["a", "b"]) != digest_value(["b", "a"])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": bad})


def test_canonical_json_rejects_non_json_values() -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
    with pytest.raises(TypeError):
        canonical_json({"x": b"bytes"})


def test_digest_value_is_blake3_of_canonical_json() -> None:
    assert digest_value({}) == digest_bytes(b"{}")
    assert digest_value({"b": [1], "a": "x"}) == digest_bytes(b'{"a":"x","b":[1]}')


@pytest.mark.parametrize("told", [0, 5, 99, 100, 101])
def test_read_to_end_reads_a_file_that_grew_after_its_fstat(tmp_path: Path, told: int) -> None:
    """A size from fstat is a hint: a short read is the end, a full one reads on."""
    import os

    data = bytes(range(100)) * 30  # 3,000 bytes; `told` is what an earlier fstat said
    (tmp_path / "f").write_bytes(data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert digest._read_to_end(fd, told) == data
    finally:
        os.close(fd)


def test_digest_file_is_refused_for_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        digest_file(str(tmp_path))
