"""`mb clean` and `mb gc` take the workspace lock, as a build does (SPEC §9: a second
command waits for the running build, saying so)."""

from __future__ import annotations

import pytest
from processes import wait_for


@pytest.mark.parametrize("command", [("clean", "--all"), ("gc", "--max-size", "0")])
def test_clean_and_gc_wait_for_a_running_build(mb_workspace, tmp_path, command):
    started = tmp_path / "started"
    ws = mb_workspace({"p/BUILD.toml": f"""
[slow]
rule = "genrule"
outs = ["slow.txt"]
cmd = "touch {started}; sleep 1.5; echo done > $@"
"""})
    build = ws.popen("build")
    wait_for(started.exists, timeout=60, process=build)
    result = ws.run(*command)
    out, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert "build ok: 1 executed" in out
    assert result.exit_code == 0, result.stderr
    assert "another mb build is running in this workspace; waiting" in result.stderr
    if command[0] == "clean":
        assert not (ws.path / ".mb").exists() and not (ws.path / "mb-out").exists()
    else:
        assert "removed" in result.stdout


SHARED_SLOW = """
[slow]
rule = "genrule"
outs = ["slow.txt"]
cmd = "touch {started}; sleep 1.5; echo done > $@"

[quick]
rule = "genrule"
outs = ["quick.txt"]
cmd = "echo quick > $@"
"""


def test_gc_of_a_shared_cache_waits_for_builds_of_other_workspaces(mb_workspace, tmp_path):
    """gc in one workspace removed blobs a build of another workspace sharing the cache
    had seen and not linked yet, or whose results it had yet to write: it failed,
    or left results naming collected blobs. gc now waits for the running builds."""
    shared = {"MB_CACHE_DIR": str(tmp_path / "shared-cache")}
    started = tmp_path / "started"
    builder = mb_workspace({"p/BUILD.toml": SHARED_SLOW.format(started=started)}, subdir="b")
    trimmer = mb_workspace({}, subdir="g")
    build = builder.popen("build", env=shared)
    wait_for(started.exists, timeout=60, process=build)
    gc = trimmer.run("gc", "--max-size", "0", env=shared)
    out, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert gc.exit_code == 0, gc.stderr
    assert "builds are using the cache; mb gc waits for them to finish" in gc.stderr
    assert "cache is 0 bytes" in gc.stdout  # it ran after the build had written everything
    assert builder.out("p/quick.txt").read_text() == "quick\n"


def test_a_build_waits_for_a_running_gc(mb_workspace, tmp_path):
    import fcntl

    from mb.locks import CACHE_LOCK_FILE

    cache = tmp_path / "shared-cache"
    cache.mkdir()
    ws = mb_workspace({"p/BUILD.toml": SHARED_SLOW.format(started=tmp_path / "started")})
    with open(cache / CACHE_LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as `mb gc` holds it
        build = ws.popen("build", "//p:quick", env={"MB_CACHE_DIR": str(cache)})
        wait_for(lambda: any(e["type"] == "cache.waiting" for e in ws.events()),
                 timeout=60, process=build)
        assert build.poll() is None and not ws.out("p/quick.txt").exists()
    out, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert f"warning: mb gc is trimming the cache in {cache}; waiting for it to finish" in err
    assert ws.out("p/quick.txt").read_text() == "quick\n"
