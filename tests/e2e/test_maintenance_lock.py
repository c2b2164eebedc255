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
