"""Actions that are not cached (`no-cache` tag, `--no-cache`, `--sandbox none`) leave
nothing in the cache directory: their outputs go straight to mb-out/, atomically, and
their dependents read them from there (SPEC §2: "never read or write the cache")."""

from __future__ import annotations

import os
import random
import signal
import stat
import time
from pathlib import Path

#: `t` is not cached; `u` reads it and is (its bytes differ from t's).
NO_CACHE = """
[t]
rule = "genrule"
srcs = ["in.txt"]
outs = ["t.txt"]
tags = ["no-cache"]
cmd = "echo UNIQUE > $@; cat $< >> $@"

[u]
rule = "genrule"
srcs = [":t"]
outs = ["u.txt"]
cmd = "tr A-Z a-z < $< > $@"
"""


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.name != ".compact.lock")


def holding(cache: Path, data: bytes) -> list[Path]:
    return [p for p in cache_files(cache) if data in p.read_bytes()]


def test_a_no_cache_action_writes_nothing_into_a_shared_cache(mb_workspace, tmp_path):
    shared = tmp_path / "shared-cache"
    ws = mb_workspace({"p/BUILD.toml": NO_CACHE, "p/in.txt": "One\n"})
    env = {"MB_CACHE_DIR": str(shared)}
    result = ws.run("build", env=env)
    assert result.exit_code == 0, result.stderr
    assert holding(shared, b"UNIQUE") == [], "t's output is not a blob"
    out = ws.out("p/t.txt")
    assert out.read_text() == "UNIQUE\nOne\n"
    assert out.stat().st_nlink == 1, "placed directly, not hard-linked from the cache"
    assert not out.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert ws.out("p/u.txt").read_text() == "unique\none\n", "the dependent read it from mb-out/"
    (u_blob,) = holding(shared, b"unique\none\n")  # u is cached as usual
    assert ws.out("p/u.txt").stat().st_ino == u_blob.stat().st_ino

    again = ws.run("build", env=env)
    assert again.exit_code == 0, again.stderr
    assert ws.executed() == ["//p:t"], "t always runs; u's key is unchanged: cached"
    assert holding(shared, b"UNIQUE") == []

    (ws.path / "p" / "in.txt").write_text("Two\n")
    assert ws.run("build", env=env).exit_code == 0
    assert sorted(ws.executed()) == ["//p:t", "//p:u"]
    assert ws.out("p/u.txt").read_text() == "unique\ntwo\n"


def test_no_cache_flag_leaves_the_cache_dir_empty(mb_workspace, tmp_path):
    shared = tmp_path / "shared-cache"
    ws = mb_workspace({"p/BUILD.toml": NO_CACHE.replace('tags = ["no-cache"]\n', ""),
                       "p/in.txt": "One\n"})
    result = ws.run("build", "--no-cache", env={"MB_CACHE_DIR": str(shared)})
    assert result.exit_code == 0, result.stderr
    assert cache_files(shared) == []
    assert ws.out("p/u.txt").read_text() == "unique\none\n"
    assert ws.out("p/u.txt").stat().st_nlink == 1
    # A cached build afterwards stores and links as usual, replacing the placed files.
    assert ws.run("build", env={"MB_CACHE_DIR": str(shared)}).exit_code == 0
    assert sorted(ws.executed()) == ["//p:t", "//p:u"]
    assert ws.out("p/u.txt").stat().st_nlink == 2


def test_results_of_the_none_sandbox_are_not_written_to_the_cache(mb_workspace, tmp_path):
    shared = tmp_path / "shared-cache"
    ws = mb_workspace({"p/BUILD.toml": NO_CACHE.replace('tags = ["no-cache"]\n', ""),
                       "p/in.txt": "One\n"})
    env = {"MB_CACHE_DIR": str(shared)}
    result = ws.run("build", "--sandbox", "none", env=env)
    assert result.exit_code == 0, result.stderr
    assert cache_files(shared) == []
    assert ws.out("p/u.txt").read_text() == "unique\none\n"
    again = ws.run("build", "--sandbox", "none", env=env)
    assert again.exit_code == 0, again.stderr
    assert sorted(ws.executed()) == ["//p:t", "//p:u"], "never answered from the cache"


def test_a_killed_build_never_leaves_a_partial_uncached_output(mb_workspace, tmp_path):
    """The output is complete in the sandbox before one rename puts it in mb-out/."""
    marker = tmp_path / "writing"
    ws = mb_workspace({"p/in.txt": "first\n", "p/BUILD.toml": f"""
[slow]
rule = "genrule"
srcs = ["in.txt"]
outs = ["slow.txt"]
tags = ["no-cache"]
cmd = "head -c 1000 $< > $@; touch {marker}; sleep 300; cat $< >> $@"
"""})
    (ws.path / "p" / "BUILD.toml").write_text(
        (ws.path / "p" / "BUILD.toml").read_text().replace("sleep 300", "sleep 0"))
    assert ws.run("build").exit_code == 0
    assert ws.out("p/slow.txt").read_text() == "first\nfirst\n"
    (ws.path / "p" / "BUILD.toml").write_text(
        (ws.path / "p" / "BUILD.toml").read_text().replace("sleep 0", "sleep 300"))
    (ws.path / "p" / "in.txt").write_text("second\n")
    marker.unlink()
    proc = ws.popen("build")
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert ws.out("p/slow.txt").read_text() == "first\nfirst\n", "the old output, whole"
    (ws.path / "p" / "BUILD.toml").write_text(
        (ws.path / "p" / "BUILD.toml").read_text().replace("sleep 300", "sleep 0"))
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/slow.txt").read_text() == "second\nsecond\n"


def test_sigkill_at_random_moments_leaves_whole_uncached_outputs(mb_workspace):
    # Each output is written in two halves with a pause between: a kill often
    # lands while only the first half exists (in the sandbox).
    half = "head -c 100000 /dev/zero | tr '\\\\0' $$c"
    targets = "".join(f"""
[t{n}]
rule = "genrule"
srcs = ["in.txt"]
outs = ["t{n}.txt"]
tags = ["no-cache"]
cmd = "c=$$(head -c 1 $<); {half} > $@; sleep 0.1; {half} >> $@"
""" for n in range(6))
    ws = mb_workspace({"p/BUILD.toml": targets, "p/in.txt": "a"})
    rng = random.Random(4)
    for round_ in range(6):
        (ws.path / "p" / "in.txt").write_text(str(round_))
        proc = ws.popen("build", "-j", "2")
        time.sleep(rng.uniform(0.2, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        for n in range(6):
            out = ws.out(f"p/t{n}.txt")
            if out.exists():
                data = out.read_bytes()
                assert len(data) == 200_000 and data == data[:1] * 200_000, (round_, n)
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    for n in range(6):
        assert ws.out(f"p/t{n}.txt").read_bytes() == b"5" * 200_000


def test_a_dependent_writing_to_an_uncached_input_fails(mb_workspace):
    """An action writing to an input placed in mb-out/ only is caught, as for blobs."""
    ws = mb_workspace({"p/BUILD.toml": """
[t]
rule = "genrule"
outs = ["t.txt"]
tags = ["no-cache"]
cmd = "echo made > $@"

[bad]
rule = "genrule"
srcs = [":t"]
outs = ["bad.txt"]
cmd = "chmod u+w $<; echo edited >> $<; cp $< $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 1
    assert "changed while the action ran" in result.stdout + result.stderr
    assert os.path.exists(ws.out("p/t.txt"))
