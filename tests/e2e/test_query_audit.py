"""End-to-end: `mb query` and `mb graph` after the audit of their edge cases.

`kind` filters what its pattern matches, labels resolve as `mb build` resolves
them, `mb graph` takes one pattern, `--output=long` is one line a label, and
graph output stays valid (escaped, JSON sorted by label).
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from mb.cmd_query import render_graph
from mb.labels import Label

# b and b/c depend on a; a:man is manual but something (b:needs_man) reads it.
FILES = {
    "a/in.txt": "hi\n",
    "a/BUILD.toml": """
[gen]
rule = "genrule"
srcs = ["in.txt"]
outs = ["gen.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[fg]
rule = "filegroup"
srcs = ["gen.txt", "in.txt"]

[man]
rule = "genrule"
srcs = [":gen"]
outs = ["man.txt"]
cmd = "cat $(SRCS) > $(OUTS)"
tags = ["manual"]
""",
    "b/BUILD.toml": """
[use]
rule = "genrule"
srcs = ["//a:gen.txt"]
outs = ["use.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[usefg]
rule = "filegroup"
srcs = ["//a:fg"]

[needs_man]
rule = "genrule"
srcs = ["//a:man"]
outs = ["needs_man.txt"]
cmd = "cat $(SRCS) > $(OUTS)"
""",
    "b/c/BUILD.toml": """
[deep]
rule = "genrule"
srcs = ["//b:use", "//a:in.txt"]
outs = ["deep.txt"]
cmd = "cat $(SRCS) > $(OUTS)"
""",
}

GRAPH_USAGE = "mb graph takes one pattern (//..., //pkg/..., //pkg:all or a label), got "


def query(ws, expression, *options):
    result = ws.run("query", *options, expression)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


def one_line_error(ws, *args):
    """The one line of stderr of a command that must fail with exit code 2."""
    result = ws.run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("expression, expected", [
    ("kind(genrule, //b:all)", ["//b:needs_man", "//b:use"]),
    ("kind(genrule, //b/c:deep)", ["//b/c:deep"]),
    ("kind(filegroup, //b/...)", ["//b:usefg"]),
    ("kind(filegroup, //b/c/...)", []),
    # Manual targets stay out of patterns even when something depends on them...
    ("kind(genrule, //...)", ["//a:gen", "//b:needs_man", "//b:use", "//b/c:deep"]),
    # ... and are still there when named.
    ("kind(genrule, //a:man)", ["//a:man"]),
    # A file label is a file, of no rule (not its producer).
    ("kind(genrule, //a:gen.txt)", []),
    # Bazel's quoted spelling names the same rule.
    ('kind("genrule", //b:all)', ["//b:needs_man", "//b:use"]),
    ("kind('filegroup', //b/...)", ["//b:usefg"]),
])
def test_kind_filters_the_targets_of_its_pattern_not_their_dependencies(
        mb_workspace, expression, expected):
    ws = mb_workspace(FILES)
    assert query(ws, expression) == expected


def test_kind_does_not_analyse_so_an_unrelated_cycle_does_not_fail_it(mb_workspace):
    ws = mb_workspace({"x/BUILD.toml": """
[a]
rule = "genrule"
srcs = [":b"]
outs = ["a.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[b]
rule = "genrule"
srcs = [":a"]
outs = ["b.txt"]
cmd = "cat $(SRCS) > $(OUTS)"

[g]
rule = "filegroup"
srcs = [":a"]
"""})
    assert query(ws, "kind(genrule, //x:all)") == ["//x:a", "//x:b"]
    assert query(ws, "kind(filegroup, //...)") == ["//x:g"]
    assert one_line_error(ws, "query", "deps(//x:g)").endswith(
        "dependency cycle: //x:a -> //x:b -> //x:a")
    assert one_line_error(ws, "query", "kind(genrul, //...)").startswith(
        "unknown rule 'genrul'; did you mean 'genrule'?")


@pytest.mark.parametrize("label", [
    "//b:c/BUILD.toml",      # a file of package b/c, written as one of b
    "//b:c/deep.txt",        # an output of b/c, written as a file of b
    "//a:sub",               # a directory, not a source file
    "//a:sub/nothing.txt",   # no such file
])
def test_query_resolves_a_label_as_build_does(mb_workspace, label):
    ws = mb_workspace({**FILES, "a/sub/f.txt": "f\n"})
    built = ws.run("build", label)
    assert built.exit_code == 2, built.stderr
    expected = built.stderr.strip()
    assert len(expected.splitlines()) == 1, expected
    assert one_line_error(ws, "query", label) == expected
    assert one_line_error(ws, "query", "--output=long", label) == expected
    assert one_line_error(ws, "query", f"deps({label})") == expected
    assert one_line_error(ws, "query", f"rdeps(//..., {label})") == expected
    # The same file written in its own package is fine.
    assert query(ws, "//a:sub/f.txt", "--output=long") == ["//a:sub/f.txt  source file"]


def test_a_file_of_a_package_below_the_root_package(mb_workspace):
    ws = mb_workspace({**FILES, "BUILD.toml": ""})
    message = one_line_error(ws, "query", "deps(//:a/in.txt)")
    assert message == ("//:a/in.txt is a file of package 'a' (it has a BUILD.toml); "
                       "write //a:in.txt")
    assert one_line_error(ws, "build", "//:a/in.txt") == message
    assert query(ws, "deps(//a:in.txt)") == ["//a:in.txt"]


@pytest.mark.parametrize("pattern, hint", [
    ("deps(//a:gen)", True),
    ("kind(genrule, //...)", True),
    ("rdeps(//..., //a:in.txt)", True),
    ("//a:gen //b:use", False),
    ("//a:gen,//b:use", False),
    ("//a:gen//b:use", False),
    ("", False),
    ("   ", False),
])
def test_graph_takes_one_pattern(mb_workspace, pattern, hint):
    ws = mb_workspace(FILES)
    message = one_line_error(ws, "graph", pattern)
    assert message == GRAPH_USAGE + repr(pattern) + (
        "; query expressions go to mb query" if hint else "")


def test_graph_of_one_pattern_still_works(mb_workspace):
    ws = mb_workspace(FILES)
    for pattern in ("//b/c:deep", " //b/c:deep ", "//b/...", "//b:all"):
        result = ws.run("graph", pattern)
        assert result.exit_code == 0, result.stderr
        assert '"//b:use" -> "//a:gen";' in result.stdout


def test_long_output_is_one_line_a_label(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '''
[desc]
rule = "filegroup"
srcs = []
description = "line one\\n//fake:label"

[blank_first]
rule = "filegroup"
srcs = []
description = "\\n\\r\\nsecond line\\u2028third"

[plain]
rule = "filegroup"
srcs = []
description = "just one"
'''})
    assert query(ws, "//a:all", "--output=long") == [
        "//a:blank_first  filegroup  second line",
        "//a:desc  filegroup  line one",
        "//a:plain  filegroup  just one",
    ]


def test_graph_json_is_sorted_by_label(mb_workspace):
    # Dependencies first would put //z:leaf before //a:top.
    ws = mb_workspace({
        "a/BUILD.toml": '[top]\nrule = "filegroup"\nsrcs = ["//z:leaf", "//m:mid"]\n',
        "m/BUILD.toml": '[mid]\nrule = "filegroup"\nsrcs = ["//z:leaf"]\n',
        "z/BUILD.toml": '[leaf]\nrule = "filegroup"\nsrcs = ["f.txt"]\n',
        "z/f.txt": "f\n",
    })
    result = ws.run("graph", "--format", "json", "//a:top")
    assert result.exit_code == 0, result.stderr
    graph = json.loads(result.stdout)
    assert [node["label"] for node in graph["nodes"]] == ["//a:top", "//m:mid", "//z:leaf"]
    assert graph["edges"] == [["//a:top", "//m:mid"], ["//a:top", "//z:leaf"],
                              ["//m:mid", "//z:leaf"]]
    assert json.loads(ws.run("query", "--output=json", "deps(//a:top)").stdout) == [
        node["label"] for node in graph["nodes"]]
    assert ws.run("graph", "--format", "json", "//a:top").stdout == result.stdout


# A DOT double-quoted string: anything but `"` and `\`, or a backslash escape.
DOT_STRING = r'"(?:[^"\\]|\\.)*"'
DOT_LINE = re.compile(rf'  {DOT_STRING}( \[label={DOT_STRING}\]| -> {DOT_STRING});')


def test_graph_output_escapes_names_that_would_break_dot_or_mermaid():
    """Labels written by users cannot hold `"`, `\\` or `#`, but a plugin's rule name
    can; render_graph is called directly with such names (and a label made without
    parsing) so the escaping is checked whatever the plugin loader accepts."""
    leaf = SimpleNamespace(label=Label("p", 'le"af\\#1;'), deps=[], default_outputs=[],
                           target=SimpleNamespace(rule=SimpleNamespace(name='we"ird\\')))
    top = SimpleNamespace(label=Label("p", "top"), deps=[leaf.label], default_outputs=[],
                          target=SimpleNamespace(rule=SimpleNamespace(name="ok")))
    dot = render_graph([leaf, top], "dot").splitlines()
    assert dot[0] == "digraph mb {" and dot[-1] == "}"
    assert '  "//p:le\\"af\\\\#1;" [label="//p:le\\"af\\\\#1;\\nwe\\"ird\\\\"];' in dot
    assert '  "//p:top" -> "//p:le\\"af\\\\#1;";' in dot
    for line in dot[2:-1]:
        assert DOT_LINE.fullmatch(line), line
    mermaid = render_graph([leaf, top], "mermaid")
    assert mermaid.splitlines() == [
        "graph LR", '  n0["//p:le#quot;af\\#35;1;"]', '  n1["//p:top"]', "  n1 --> n0"]
