"""`mb build --sandbox linux` hides the file system and the network (SPEC §5, decisions/0009).

Tests of what the action must not see are skipped where
`namespaces_available()` is False (mb then falls back to `dir`, which
tests/e2e/test_build.py checks); the others hold in both cases.
"""

from __future__ import annotations

import os
import signal

import pytest

from mb.sandbox.linux import namespaces_available
from processes import pids_running, wait_for
from test_executable_outputs import TOOL

hides = pytest.mark.skipif(
    not namespaces_available(),
    reason="linux namespaces are not available here: mb falls back to the dir sandbox, "
           "which does not hide the file system")


def test_a_genrule_reads_its_input_with_tools_from_path(mb_workspace):
    ws = mb_workspace({"p/in.txt": "hello\n", "p/BUILD.toml": """
[simple]
rule = "genrule"
srcs = ["in.txt"]
outs = ["simple.txt"]
cmd = "tr a-z A-Z < $< > $@"

[shell]
rule = "genrule"
srcs = ["in.txt"]
outs = ["shell.txt"]
cmd = "cat $< | tr a-z A-Z | sh -c 'cat; echo done' > $@"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/simple.txt").read_text() == "HELLO\n"
    assert ws.out("p/shell.txt").read_text() == "HELLO\ndone\n"


def test_a_generated_tool_runs(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": TOOL})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "hi\n"


def test_a_python_action_builds(mb_workspace):
    """svg_render: `ctx.call`, run by mb.sandbox.worker, with mb, the interpreter and
    its site-packages (resvg, Pillow) visible and the fonts as tools."""
    ws = mb_workspace({
        "c/card.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
                      '<rect width="8" height="8" fill="{{bg}}"/></svg>',
        "c/BUILD.toml": '[a]\nrule = "svg_render"\nsrc = "card.svg"\nvars = { bg = "red" }\n',
    })
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("c/a.png").read_bytes().startswith(b"\x89PNG")


def test_a_result_built_in_the_dir_sandbox_is_reused(mb_workspace):
    """The sandbox mode is not in the action key (SPEC §4 lists what is): an action that
    succeeded in `dir` is not run again in `linux`, nor the other way round."""
    ws = mb_workspace({"p/in.txt": "x\n", "p/BUILD.toml": """
[copy]
rule = "genrule"
srcs = ["in.txt"]
outs = ["copy.txt"]
cmd = "cp $< $@"
"""})
    assert ws.run("build", "--sandbox", "dir").exit_code == 0
    assert ws.executed() == ["//p:copy"]
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.executed() == []


@hides
def test_an_undeclared_workspace_file_cannot_be_read(mb_workspace):
    ws = mb_workspace({"p/in.txt": "declared\n", "p/secret.txt": "s3cr3t\n"})
    ws.write({"p/BUILD.toml": f"""
[peek]
rule = "genrule"
srcs = ["in.txt"]
outs = ["peek.txt"]
cmd = "cat $< {ws.path}/p/secret.txt > $@"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 1
    assert f"{ws.path}/p/secret.txt: No such file or directory" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert not ws.out("p/peek.txt").exists()


@hides
def test_home_the_real_tmp_and_other_folders_are_not_visible(mb_workspace, tmp_path):
    """HOME and TMPDIR are in the sandbox; /tmp is empty but for the way to the
    sandbox (the workspace is under the real /tmp here); of the workspace only
    the way to the sandbox is there, not its sources, outputs or cache."""
    (tmp_path / "beside-the-workspace.txt").write_text("outside\n")
    home = os.path.expanduser("~")
    ws = mb_workspace({"p/in.txt": "x\n"})
    folders = f"{home} /root /work {tmp_path} {ws.path} {ws.path}/.mb $$HOME /tmp"
    ws.write({"p/BUILD.toml": f"""
[look]
rule = "genrule"
outs = ["look.txt"]
cmd = "for d in {folders}; do echo \\"$$d: $$(ls -A $$d 2>&1 | tr '\\\\n' ' ')\\"; done > $@"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in ws.out("p/look.txt").read_text().splitlines())
    for hidden in (home, "/root", "/work"):
        assert "No such file or directory" in lines[hidden], lines
    assert lines[str(tmp_path)].split() == ["ws"]  # not beside-the-workspace.txt
    assert lines[str(ws.path)].split() == [".mb"]
    assert lines[f"{ws.path}/.mb"].split() == ["sandbox"]
    assert lines["/tmp"].split() == ([str(tmp_path).split("/")[2]]
                                     if str(tmp_path).startswith("/tmp/") else [])
    home_in_sandbox = [d for d in lines if d.endswith("/.home")]
    assert home_in_sandbox and lines[home_in_sandbox[0]] == ""


@hides
def test_writing_to_a_declared_input_fails_and_the_source_is_intact(mb_workspace):
    ws = mb_workspace({"w/in.txt": "original\n", "w/BUILD.toml": """
[rude]
rule = "genrule"
srcs = ["in.txt"]
outs = ["out.txt"]
cmd = "echo scribble >> $< && cp $< $@"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 1
    assert "w/in.txt: Read-only file system" in result.stderr
    assert (ws.path / "w" / "in.txt").read_text() == "original\n"


@hides
def test_system_directories_are_read_only(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": """
[touch]
rule = "genrule"
outs = ["touch.txt"]
cmd = "touch /usr/mb-was-here /etc/mb-was-here 2> $@ || true"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/touch.txt").read_text().count("Read-only file system") == 2
    assert not os.path.exists("/usr/mb-was-here")


@hides
def test_requires_network_sees_the_network_and_still_not_the_workspace(mb_workspace):
    ws = mb_workspace({"n/secret.txt": "s3cr3t\n"})
    ws.write({"n/BUILD.toml": f"""
[open]
rule = "genrule"
outs = ["interfaces.txt", "peek.txt"]
tags = ["requires-network"]
cmd = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > n/interfaces.txt; cat {ws.path}/n/secret.txt > n/peek.txt 2>&1 || true"
"""})
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("n/interfaces.txt").read_text().split() != ["lo"]
    assert "No such file or directory" in ws.out("n/peek.txt").read_text()


@hides
def test_an_action_orphaned_by_sigkill_is_stopped_by_the_next_build(mb_workspace):
    """mb killed with SIGKILL leaves the launcher, its init and the action running; the
    next build finds the launcher by its cwd (the sandbox directory, decisions/0007)
    and kills its process group, and with the init the whole PID namespace ends."""
    ws = mb_workspace({"p/delay.txt": "31.4159\n", "p/BUILD.toml": """
[wait]
rule = "genrule"
srcs = ["delay.txt"]
outs = ["o.txt"]
cmd = "sleep $$(cat $<); echo done > $@"
"""})
    first = ws.popen("build", "--sandbox", "linux")
    wait_for(lambda: pids_running("sleep", "31.4159"))
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert pids_running("sleep", "31.4159"), "the killed build's action runs on"
    (ws.path / "p" / "delay.txt").write_text("0\n")
    result = ws.run("build", "--sandbox", "linux")
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/o.txt").read_text() == "done\n"
    wait_for(lambda: not pids_running("sleep", "31.4159"), timeout=10)
