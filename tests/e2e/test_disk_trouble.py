"""The disk, not the user: a file where mb's folder should be, a full disk, a blob removed
by another workspace's `mb gc`. One clear line, never a traceback, and nothing lost."""

from __future__ import annotations

import os
import subprocess

import pytest
from processes import wait_for

ONE = {"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo t > $@"\n'}


def test_a_file_where_mb_out_should_be_is_one_line(mb_workspace):
    ws = mb_workspace(ONE)
    (ws.path / "mb-out").write_text("not a folder\n")
    result = ws.run("build")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: File exists: {ws.path / 'mb-out'}; free space or fix the permissions, then "
        "run the command again")


def test_a_file_where_an_output_folder_should_be_fails_that_action_in_one_line(mb_workspace):
    ws = mb_workspace(ONE)
    (ws.path / "mb-out").mkdir()
    (ws.path / "mb-out" / "p").write_text("in the way\n")
    result = ws.run("build")
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("FAILED")]
    assert line.startswith("FAILED //p:t: ") and line.endswith(
        "(mb could not write its files for this action); something else is in the way "
        "there; remove it (or run `mb clean`), then build again")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    (ws.path / "mb-out" / "p").unlink()
    assert ws.run("build").exit_code == 0
    assert ws.out("p/t.txt").read_text() == "t\n"


def test_a_folder_where_an_output_should_be_names_the_output(mb_workspace):
    """The rename into place failed on a temporary name (`.tmp-<pid>-<thread>-t.txt`),
    which the message showed, with advice about space and permissions."""
    ws = mb_workspace(ONE)
    (ws.path / "mb-out" / "p" / "t.txt" / "x").mkdir(parents=True)
    result = ws.run("build")
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("FAILED")]
    assert line == (
        f"FAILED //p:t: Is a directory: {ws.path / 'mb-out' / 'p' / 't.txt'} (mb could not "
        "write its files for this action); something else is in the way there; remove it "
        "(or run `mb clean`), then build again")


def test_gc_of_another_workspace_during_a_build_does_not_fail_it(mb_workspace, tmp_path):
    """The blob an input was staged from goes; the action read the link staged in its
    root, whose bytes did not change."""
    started = tmp_path / "started"
    env = {"MB_CACHE_DIR": str(tmp_path / "shared")}
    one = mb_workspace({"p/BUILD.toml": f"""
[gen]
rule = "genrule"
outs = ["gen.txt"]
cmd = "echo generated > $@"

[use]
rule = "genrule"
srcs = [":gen"]
outs = ["use.txt"]
cmd = "touch {started}; sleep 1; cat $< > $@"
"""}, subdir="one")
    two = mb_workspace({}, subdir="two")
    build = one.popen("build", env=env)
    wait_for(started.exists, timeout=60, process=build)
    assert two.run("gc", "--max-size", "0", env=env).exit_code == 0
    out, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert one.out("p/use.txt").read_text() == "generated\n"


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MB tmpfs (needs root, as on the CI machines); skipped where mount is refused."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_the_action_and_the_build_is_still_recorded(small_disk):
    from mb.testing import Workspace, clean_env

    root = small_disk / "ws"
    (root / "p").mkdir(parents=True)
    (root / "MB.toml").write_text("")
    (root / "p/BUILD.toml").write_text(
        '[ok]\nrule = "genrule"\nouts = ["ok.txt"]\ncmd = "echo fine > $@"\n\n'
        # After :ok (it reads it): run side by side, the disk could fill before ok wrote.
        '[big]\nrule = "genrule"\nsrcs = [":ok"]\nouts = ["big.bin"]\n'
        'cmd = "head -c 8000000 /dev/zero > $@"\n')
    ws = Workspace(root, clean_env())
    result = ws.run("build")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "FAILED //p:big" in result.stderr, result.stderr
    assert (root / ".mb/builds/current").exists(), "the build is recorded"
    assert (root / "mb-out/p/ok.txt").read_text() == "fine\n"
