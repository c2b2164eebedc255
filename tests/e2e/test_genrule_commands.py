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
