"""`mb gc --max-size` removes the least recently used entries, per action result (SPEC §3)."""

from __future__ import annotations

import shutil
import time

BUILD = "".join(f"""
[t{n}]
rule = "genrule"
outs = ["t{n}.bin"]
cmd = "head -c 100000 /dev/zero | tr '\\\\0' {n} > $@"
""" for n in (1, 2, 3))


def test_the_output_used_last_survives_gc_although_built_with_others(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": BUILD})
    assert ws.run("build").exit_code == 0
    time.sleep(0.05)
    shutil.rmtree(ws.path / "mb-out")
    restored = ws.run("build", "//p:t1")
    assert restored.exit_code == 0, restored.stderr
    assert ws.executed() == []
    gc = ws.run("gc", "--max-size", "110KB")
    assert gc.exit_code == 0, gc.stderr
    shutil.rmtree(ws.path / "mb-out")
    again = ws.run("build")
    assert again.exit_code == 0, again.stderr
    assert sorted(ws.executed()) == ["//p:t2", "//p:t3"], "t1, used last, was kept"
    assert ws.out("p/t1.bin").read_bytes() == b"1" * 100_000




def test_a_no_op_build_counts_as_a_use_of_a_shared_cache(mb_workspace, tmp_path):
    """A no-op build answers from stats and never looks at the cache. With a cache shared
    by two workspaces, gc in the one that kept building its outputs (no-ops) must not
    take them for older than what the other built in the meantime."""
    # No racy window: the files were all just written, and the no-op is the point.
    env = {"MB_CACHE_DIR": str(tmp_path / "shared-cache"), "MB_RACY_SECONDS": "0"}
    one = mb_workspace({"p/BUILD.toml": BUILD.split("[t2]")[0]}, subdir="one")
    two = mb_workspace({"p/BUILD.toml": "[t2]" + BUILD.split("[t2]")[1]}, subdir="two")
    assert one.run("build", env=env).exit_code == 0
    time.sleep(0.05)
    assert two.run("build", env=env).exit_code == 0
    assert sorted(two.executed()) == ["//p:t2", "//p:t3"]
    time.sleep(0.05)
    noop = one.run("build", env=env)
    assert noop.exit_code == 0, noop.stderr
    assert "build ok: 0 executed, 1 cached" in noop.stdout
    assert len(list((tmp_path / "shared-cache/ac").glob("*.pack"))) == 2, "no pack: a no-op"
    gc = one.run("gc", "--max-size", "110KB", env=env)
    assert gc.exit_code == 0, gc.stderr
    shutil.rmtree(one.path / "mb-out")
    again = one.run("build", env=env)
    assert again.exit_code == 0, again.stderr
    assert one.executed() == [], "t1, used last (by the no-op build), was kept"
    assert one.out("p/t1.bin").read_bytes() == b"1" * 100_000
