"""genrule runs a simple command without bash; everything else goes to bash unchanged."""

from __future__ import annotations

import pytest

from mb.rules.genrule import split_simple


@pytest.mark.parametrize("command, expected", [
    ("cp a b", (["cp", "a", "b"], None, None)),
    ("tr 'A-Za-z' 'N-ZA-Mn-za-m' < p/in.bin > p/out",
     (["tr", "A-Za-z", "N-ZA-Mn-za-m"], "p/in.bin", "p/out")),
    ("tr a b <p/in >p/out", (["tr", "a", "b"], "p/in", "p/out")),
    ('echo "two words" x=1', (["echo", "two words", "x=1"], None, None)),
    ("echo ''", (["echo", ""], None, None)),
    ("wc -l < p/in", (["wc", "-l"], "p/in", None)),
])
def test_simple_commands_are_split_like_bash_would(command, expected):
    assert split_simple(command) == expected


@pytest.mark.parametrize("command", [
    "cat a | wc", "echo $HOME", 'echo "$HOME"', "x >> y", "echo a>b", "cmd 2> err",
    "ls *.txt", "echo 'open", "cat < a < b", "a; b", "a && b", "echo `date`",
    "echo ~", "cmd <(other)", "echo a\nb", "> out", "cat <", "echo {a,b}", "# comment",
    'echo "a\\"b"', "cmd >&2",
])
def test_anything_with_shell_meaning_is_left_to_bash(command):
    assert split_simple(command) is None
