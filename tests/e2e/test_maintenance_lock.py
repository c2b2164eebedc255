"""`mb clean` and `mb gc` take the workspace lock, as a build does (SPEC §9: a second
command waits for the running build, saying so)."""

from __future__ import annotations

import time

import pytest


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
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and build.poll() is None, build.communicate()
        time.sleep(0.02)
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
