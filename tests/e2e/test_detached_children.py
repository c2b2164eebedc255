"""Nothing an action starts outlives the build, even a child that left the action's
process group with setsid (SPEC §9: Ctrl-C stops every running action and its child
processes)."""

from __future__ import annotations

import signal

from processes import pids_running, wait_for


def _running(marker: str) -> list[int]:
    return pids_running("sleep", marker)


def test_ctrl_c_stops_a_child_that_left_the_actions_group(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": """
[esc]
rule = "genrule"
outs = ["e.txt"]
cmd = "setsid sleep 141.5 & sleep 142.5; echo > $@"
"""})
    build = ws.popen("build")
    wait_for(lambda: _running("141.5") and _running("142.5"))
    build.send_signal(signal.SIGINT)
    build.communicate(timeout=60)
    assert build.returncode == 130
    wait_for(lambda: not _running("141.5"), timeout=10)


def test_a_detached_child_of_a_finished_action_is_stopped_when_the_build_ends(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": """
[daemon]
rule = "genrule"
outs = ["d.txt"]
cmd = "setsid sleep 143.5 & echo > $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert not _running("143.5")


def test_a_detached_child_is_stopped_when_its_action_ends(mb_workspace, tmp_path):
    """With -j1 both actions use one sandbox directory: //:a's `setsid` child outlived
    //:a, and a write of it into that directory landed in //:b's output, which was
    then cached under //:b's key. mb now adopts orphans (a child subreaper) and,
    when an action ends, kills what it left running in its directory: the child
    here never gets to write its marker, one second into //:b's two."""
    marker = tmp_path / "still-running"
    ws = mb_workspace({"BUILD.toml": f"""
[a]
rule = "genrule"
outs = ["a.txt"]
cmd = "setsid sh -c 'sleep 1; touch {marker}' > /dev/null 2>&1 & sleep 0.3; echo a > $@"

[b]
rule = "genrule"
srcs = [":a"]
outs = ["b.txt"]
cmd = "echo good > $@; sleep 2"
"""})
    result = ws.run("build", "-j", "1")
    assert result.exit_code == 0, result.stderr
    assert ws.out("b.txt").read_text() == "good\n"
    assert not marker.exists(), "the detached child ran on into //:b"



def test_a_detached_child_that_left_its_directory_is_stopped_when_the_build_ends(
        mb_workspace, tmp_path):
    """Found neither by its action's group nor by its directory: mb adopted it. The
    action waits for the child to have detached (it writes its pid), so the
    action's own group kill cannot be what stops it."""
    pid_file = tmp_path / "wanderer.pid"
    ws = mb_workspace({"p/BUILD.toml": f"""
[wanderer]
rule = "genrule"
outs = ["w.txt"]
cmd = "(cd / && setsid sh -c 'echo $$$$ > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; exec sleep 144.5' > /dev/null 2>&1 &); while [ ! -s {pid_file} ]; do sleep 0.02; done; echo > $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    pid = int(pid_file.read_text())
    wait_for(lambda: not _alive(pid), timeout=10)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
