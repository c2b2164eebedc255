"""genrule behaves like `bash -c` even when it skips bash, and `$(location)` of its own outputs."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("cmd, expected", [
    (": > $@", ""),
    ("echo --version > $@", "--version\n"),
    ("printf '%s-%s' a b > $@", "a-b"),
    ("test -e $@ || echo absent > $@", "absent\n"),
])
def test_bash_builtins_behave_as_in_bash(mb_workspace, cmd, expected):
    ws = mb_workspace({"a/BUILD.toml": f'[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "{cmd}"\n'})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("a/t.txt").read_text() == expected


def test_location_of_an_own_output(mb_workspace):
    ws = mb_workspace({
        "in.txt": "hi\n",
        "BUILD.toml": '[gen]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["out.txt", "two.txt"]\n'
                      'cmd = "cp $(location in.txt) $(location out.txt); '
                      'echo x > $(location :two.txt)"\n'})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("out.txt").read_text() == "hi\n"
    assert ws.out("two.txt").read_text() == "x\n"
    query = ws.run("query", "deps(//:gen)")
    assert query.exit_code == 0, query.stderr


@pytest.mark.parametrize("sandbox", ["dir", "linux"])
@pytest.mark.parametrize("program, status, reason", [
    ("$(location noexec.sh)", 126, "cannot run 'a/noexec.sh': Permission denied"),
    ("no-such-program", 127, "cannot run 'no-such-program': No such file or directory"),
])
def test_a_program_that_cannot_be_run_fails_with_the_status_bash_gives(
        mb_workspace, sandbox, program, status, reason):
    """`direct` runs the program without bash; `in_bash` is no simple command (`|| exit
    $$?`), so bash runs it, and both must fail alike (docs/rules.md, genrule)."""
    ws = mb_workspace({
        "a/noexec.sh": "echo hi > $1\n",
        "a/BUILD.toml": "".join(
            f'[{name}]\nrule = "genrule"\nouts = ["{name}.txt"]\ntools = ["noexec.sh"]\n'
            f'cmd = "{program} $@{tail}"\n'
            for name, tail in (("direct", ""), ("in_bash", " || exit $$?"))),
    })
    result = ws.run("build", "-k", "--sandbox", sandbox)
    assert result.exit_code == 1
    for name in ("direct", "in_bash"):
        assert f"FAILED //a:{name}: command exited with status {status}\n" in result.stderr
    assert f"    {reason}\n" in result.stderr


def test_paths_named_like_options_reach_the_command_as_paths(mb_workspace):
    """SPEC §1 allows `-` at the start of a name. In the root package such a path went
    bare into the command: `cat -` read stdin (an empty output, "build ok"), `echo -n`
    printed nothing, `cp` took `-rf.txt` for options."""
    ws = mb_workspace({"-": "dash\n", "-n": "en\n", "-rf.txt": "rf\n", "BUILD.toml": """
[cat]
rule = "genrule"
srcs = ["-"]
outs = ["cat.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[echo]
rule = "genrule"
srcs = ["-n"]
outs = ["echo.txt"]
cmd = "echo $< > $@"

[copy]
rule = "genrule"
srcs = ["-rf.txt"]
outs = ["-out.txt"]
cmd = "cp $< $@ && cat $(location :-rf.txt) >> $@"
"""})
    result = ws.run("build")
    assert result.exit_code == 0, result.stderr
    assert ws.out("cat.txt").read_text() == "dash\n"
    assert ws.out("echo.txt").read_text() == "./-n\n"
    assert ws.out("-out.txt").read_text() == "rf\nrf\n"
