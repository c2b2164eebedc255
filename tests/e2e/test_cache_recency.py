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
