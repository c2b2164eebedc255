"""`--profile FILE` writes the trace into FILE and changes nothing else about it."""

from __future__ import annotations

import json
import os
import stat
import tempfile

import pytest

BUILD = {"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo t > $@"\n'}


def test_a_path_that_is_not_a_regular_file_is_refused_before_building(mb_workspace, tmp_path):
    """/dev/null as root: a move across file systems copied mb's mode onto the device."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o666)
    before = os.stat(fifo)
    ws = mb_workspace(BUILD)
    result = ws.run("build", "--profile", str(fifo))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"--profile {fifo}: not a regular file; give the path of a file")
    assert not ws.out("p/t.txt").exists(), "nothing is built"
    after = os.stat(fifo)
    assert (stat.S_IMODE(after.st_mode), after.st_mtime_ns) == (
        stat.S_IMODE(before.st_mode), before.st_mtime_ns)


def test_an_empty_path_is_refused(mb_workspace):
    ws = mb_workspace(BUILD)
    result = ws.run("build", "--profile", "")
    assert result.exit_code == 2
    assert result.stderr.strip() == "--profile needs a file name, got ''"


@pytest.mark.skipif(not os.path.isdir("/dev/shm")
                    or os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev,
                    reason="needs a second file system (/dev/shm) beside the temporary one")
def test_a_file_on_another_file_system_keeps_its_mode(mb_workspace):
    ws = mb_workspace(BUILD)
    with tempfile.NamedTemporaryFile(dir="/dev/shm", suffix=".json", delete=False) as f:
        target = f.name
    try:
        os.chmod(target, 0o600)
        result = ws.run("build", "--profile", target)
        assert result.exit_code == 0, result.stderr
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
        assert "traceEvents" in json.loads(open(target).read())
    finally:
        os.unlink(target)
