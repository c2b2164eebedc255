"""Outputs keep their exec bit (as in Bazel and Make), and an input's exec bit is in the key."""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest

TOOL = """
[mktool]
rule = "genrule"
outs = ["tool.sh"]
cmd = "printf '#!/bin/sh\\\\necho hi\\\\n' > $@; chmod +x $@"

[use]
rule = "genrule"
tools = [":mktool"]
outs = ["o.txt"]
cmd = "$(location :mktool) > $@"
"""


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_generated_tool_runs_and_stays_executable(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": TOOL})
    result = ws.run("build")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert ws.out("p/o.txt").read_text() == "hi\n"
    assert mode(ws.out("p/tool.sh")) == 0o555
    assert mode(ws.out("p/o.txt")) == 0o444
    blobs = {p.name: mode(p) for p in (ws.path / ".mb" / "cache" / "cas").iterdir()}
    assert sorted(blobs.values()) == [0o444, 0o555]
    assert [name for name, m in blobs.items() if m == 0o555][0].endswith(".x")

    # Restored from the cache with the same modes.
    shutil.rmtree(ws.path / "mb-out")
    again = ws.run("build")
    assert again.exit_code == 0, again.stderr
    assert ws.executed() == []
    assert mode(ws.out("p/tool.sh")) == 0o555
    assert mode(ws.out("p/o.txt")) == 0o444


def test_the_same_bytes_with_another_exec_bit_rekey_the_dependents(mb_workspace):
    """A dependent's key sees the exec bit of a generated input: the same bytes made
    non-executable must not answer from the result built with the executable one."""
    ws = mb_workspace({"p/BUILD.toml": TOOL.replace(
        "cmd = \"$(location :mktool) > $@\"",
        "cmd = \"if [ -x $(location :mktool) ]; then echo exec; else echo plain; fi > $@\"")})
    assert ws.run("build").exit_code == 0
    assert ws.out("p/o.txt").read_text() == "exec\n"
    build = ws.path / "p" / "BUILD.toml"
    build.write_text(build.read_text().replace("; chmod +x $@", ""))
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert sorted(ws.executed()) == ["//p:mktool", "//p:use"]
    assert ws.out("p/o.txt").read_text() == "plain\n"
    assert mode(ws.out("p/tool.sh")) == 0o444
    build.write_text(build.read_text().replace("> $@\"\n\n[use]", "> $@; chmod +x $@\"\n\n[use]"))
    assert ws.run("build").exit_code == 0
    assert ws.out("p/o.txt").read_text() == "exec\n"
    assert ws.executed() == [], "both results are cached, each with its mode"
    assert mode(ws.out("p/tool.sh")) == 0o555


SOURCE_TOOL = """
[use]
rule = "genrule"
tools = ["tool.sh"]
outs = ["o.txt"]
cmd = "if [ -x p/tool.sh ]; then p/tool.sh; else echo not executable; fi > $@"
"""


def _settle() -> None:
    """Past the stat cache's racy window (MB_RACY_SECONDS=0 in these tests) and the
    file system's timestamp granularity, so a chmod shows in ctime."""
    time.sleep(0.05)


@pytest.fixture
def source_tool(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": SOURCE_TOOL, "p/tool.sh": "#!/bin/sh\necho hi\n"})
    ws.env["MB_RACY_SECONDS"] = "0"
    (ws.path / "p" / "tool.sh").chmod(0o755)
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "hi\n"
    return ws


def test_chmod_minus_x_on_a_source_tool_reruns_the_action(source_tool):
    ws = source_tool
    _settle()
    (ws.path / "p" / "tool.sh").chmod(0o644)
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == ["//p:use"]
    assert ws.out("p/o.txt").read_text() == "not executable\n"


def test_a_source_tool_touched_with_its_mode_unchanged_runs_nothing(source_tool):
    ws = source_tool
    _settle()
    os.utime(ws.path / "p" / "tool.sh")
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == []


def test_chmod_plus_x_on_a_source_tool_reruns_the_action(source_tool):
    ws = source_tool
    _settle()
    (ws.path / "p" / "tool.sh").chmod(0o644)
    assert ws.run("build").exit_code == 0
    assert ws.out("p/o.txt").read_text() == "not executable\n"
    _settle()
    (ws.path / "p" / "tool.sh").chmod(0o755)
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "hi\n"


def test_chmod_plus_x_is_seen_by_a_full_build(source_tool):
    """Without the no-op path (another request), the key sees the mode both ways."""
    ws = source_tool
    _settle()
    (ws.path / "p" / "tool.sh").chmod(0o644)
    assert ws.run("build", "//p:use").exit_code == 0
    assert ws.out("p/o.txt").read_text() == "not executable\n"
    _settle()
    (ws.path / "p" / "tool.sh").chmod(0o755)
    result = ws.run("build", "//p:all")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "hi\n"
    assert ws.executed() == [], "the result with the exec bit is still cached"


def test_an_incremental_build_stages_a_tool_it_did_not_rerun_as_executable(mb_workspace):
    """After a source edit only `use` runs (decisions/0004); the generated tool comes from
    the last build (mb-out/ and its `.x` blob), with the key a full build gives it."""
    ws = mb_workspace({"p/in.txt": "one\n", "p/BUILD.toml": TOOL.replace(
        'tools = [":mktool"]', 'tools = [":mktool"]\nsrcs = ["in.txt"]').replace(
        "cmd = \"$(location :mktool) > $@\"", "cmd = \"$(location :mktool) > $@; cat $< >> $@\"")})
    ws.env["MB_RACY_SECONDS"] = "0"  # see tests/e2e/test_incremental.py
    for _ in range(2):
        assert ws.run("build").exit_code == 0
    _settle()
    (ws.path / "p" / "in.txt").write_text("two\n")
    result = ws.run("build")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert ws.executed() == ["//p:use"]
    assert any(e["type"] == "build.started" and e["data"].get("incremental") is not None
               for e in ws.last_build_events()), "the incremental path ran"
    assert ws.out("p/o.txt").read_text() == "hi\ntwo\n"
    # The key it used is the one a full build computes: back to the first bytes, and
    # a build of another request (no snapshot: analysis, every action keyed) runs nothing.
    _settle()
    (ws.path / "p" / "in.txt").write_text("one\n")
    assert ws.run("build").exit_code == 0
    assert ws.executed() == []
    _settle()
    (ws.path / "p" / "in.txt").write_text("two\n")
    assert ws.run("build", "//p:all").exit_code == 0
    assert ws.executed() == []
