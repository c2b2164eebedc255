"""End-to-end: `mb query` expressions, file labels in them, and the errors they give."""

from __future__ import annotations

import pytest

# in.txt is read directly (a:up, a:bundle), through a label from another package
# (b:two) and transitively (everything reading b:two's outputs). b:two declares two
# outputs; only some targets read two2.txt, one of them through a filegroup.
FILES = {
    "a/in.txt": "hello\n",
    "a/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"

[bundle]
rule = "filegroup"
srcs = ["in.txt"]

[other]
rule = "genrule"
outs = ["other.txt"]
cmd = "echo > $@"
""",
    "b/BUILD.toml": """
[two]
rule = "genrule"
srcs = ["//a:in.txt", "//a:up"]
outs = ["two.txt", "two2.txt"]
cmd = "cat $(SRCS) | tee $(OUTS) > /dev/null"

[reader]
rule = "genrule"
srcs = [":two2.txt"]
outs = ["reader.txt"]
cmd = "cat $< > $@"

[only_one]
rule = "genrule"
srcs = [":two.txt"]
outs = ["only_one.txt"]
cmd = "cat $< > $@"

[forward]
rule = "filegroup"
srcs = ["two2.txt"]

[via_forward]
rule = "genrule"
srcs = [":forward"]
outs = ["via_forward.txt"]
cmd = "cat $< > $@"

[via_bundle]
rule = "genrule"
srcs = ["//a:bundle"]
outs = ["via_bundle.txt"]
cmd = "cat $< > $@"
""",
    "c/BUILD.toml": """
[top]
rule = "genrule"
srcs = ["//b:reader"]
outs = ["top.txt"]
cmd = "cat $< > $@"

[unrelated]
rule = "genrule"
outs = ["unrelated.txt"]
cmd = "echo > $@"
""",
}


def query(ws, expression, *options):
    result = ws.run("query", *options, expression)
    assert result.exit_code == 0, result.stderr
    return result.stdout.split()


def query_error(ws, expression):
    """The one line of stderr of a query that must fail with exit code 2."""
    result = ws.run("query", expression)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


USAGE = "deps(LABEL), rdeps(PATTERN, LABEL), kind(RULE, PATTERN) or a pattern"


@pytest.mark.parametrize("expression, message", [
    ("deps(//a:up", "unbalanced parentheses in 'deps(//a:up'"),
    ("deps//a:up)", "unbalanced parentheses in 'deps//a:up)'"),
    ("foo(//a:up)", "unknown query function 'foo'; functions: deps, rdeps, kind"),
    ("dep(//a:up)",
     "unknown query function 'dep'; did you mean 'deps'? functions: deps, rdeps, kind"),
    ("//a:up + //b:two", "query expression '//a:up + //b:two' is not one pattern; operators "
     f"such as '+', 'union' or 'except' are not supported (write {USAGE})"),
    ("//a:up+//b:two", "query expression '//a:up+//b:two' is not one pattern; operators "
     f"such as '+', 'union' or 'except' are not supported (write {USAGE})"),
    ("deps(//a:up) extra", f"malformed query expression 'deps(//a:up) extra'; write {USAGE}"),
    ("deps(deps(//a:up))", "malformed query expression 'deps(deps(//a:up))': "
     f"functions do not nest; write {USAGE}"),
    ("deps(//a:up, //b:two)",
     "deps takes one argument: deps(LABEL), got 'deps(//a:up, //b:two)'"),
    ("rdeps(//a:up)", "rdeps takes two arguments: rdeps(PATTERN, LABEL), got 'rdeps(//a:up)'"),
    ("deps()", "argument 1 of deps is empty in 'deps()'"),
    ("rdeps(//..., //a:up //b:two)", "argument 2 of rdeps ('//a:up //b:two') is not one "
     "label or pattern in 'rdeps(//..., //a:up //b:two)'"),
    ("  ", f"empty query expression; write {USAGE}"),
])
def test_malformed_expression_is_named_as_such(mb_workspace, expression, message):
    ws = mb_workspace(FILES)
    assert query_error(ws, expression) == message


def test_kind_of_an_unknown_rule_is_an_error_naming_the_closest(mb_workspace):
    ws = mb_workspace(FILES)
    misspelt = query_error(ws, "kind(genrul, //...)")
    assert misspelt.startswith("unknown rule 'genrul'; did you mean 'genrule'? (rules: ")
    assert "filegroup" in misspelt
    assert query_error(ws, "kind(nosuch, //...)").startswith("unknown rule 'nosuch' (rules: ")
    assert query(ws, "kind(filegroup, //...)") == ["//a:bundle", "//b:forward"]


@pytest.mark.parametrize("label", ["//a:nonexistent", "//zz:x", "//a:missing.txt"])
def test_rdeps_of_an_unknown_label_is_the_deps_error(mb_workspace, label):
    ws = mb_workspace(FILES)
    expected = query_error(ws, f"deps({label})")
    assert expected.startswith(("no target", "no package"))
    assert query_error(ws, f"rdeps(//..., {label})") == expected


def test_rdeps_of_a_source_file_is_every_target_reading_it(mb_workspace):
    ws = mb_workspace(FILES)
    readers = ["//a:bundle", "//a:in.txt", "//a:up", "//b:forward", "//b:only_one",
               "//b:reader", "//b:two", "//b:via_bundle", "//b:via_forward", "//c:top"]
    assert query(ws, "rdeps(//..., //a:in.txt)") == readers
    inside = ws.run("query", "rdeps(//..., in.txt)", cwd=ws.path / "a")
    assert inside.stdout.split() == readers, inside.stderr
    # The universe limits the answer: only what //c:top needs.
    assert query(ws, "rdeps(//c:top, //a:in.txt)") == [
        "//a:in.txt", "//a:up", "//b:reader", "//b:two", "//c:top"]


def test_rdeps_of_an_output_file_is_its_readers_not_its_producer(mb_workspace):
    ws = mb_workspace(FILES)
    # //b:only_one reads two.txt only; //b:two produces two2.txt and is not an rdep of it.
    assert query(ws, "rdeps(//..., //b:two2.txt)") == [
        "//b:forward", "//b:reader", "//b:two2.txt", "//b:via_forward", "//c:top"]
    assert query(ws, "rdeps(//..., //b:two.txt)") == ["//b:only_one", "//b:two.txt"]
    # The target itself still has every reader of any of its outputs.
    assert query(ws, "rdeps(//..., //b:two)") == [
        "//b:forward", "//b:only_one", "//b:reader", "//b:two", "//b:via_forward", "//c:top"]


def test_deps_of_file_labels(mb_workspace):
    ws = mb_workspace(FILES)
    assert query(ws, "deps(//b:two.txt)") == ["//a:up", "//b:two", "//b:two.txt"]
    assert query(ws, "deps(//a:in.txt)") == ["//a:in.txt"]
    assert query(ws, "//a:in.txt") == ["//a:in.txt"]
    assert query(ws, "deps(//b:two2.txt)", "--output", "json") == [
        '["//a:up",', '"//b:two",', '"//b:two2.txt"]']
    long = ws.run("query", "--output", "long", "deps(//b:two2.txt)").stdout.splitlines()
    assert long == ["//a:up  genrule", "//b:two  genrule",
                    "//b:two2.txt  generated file of //b:two"]
    long = ws.run("query", "--output", "long", "//a:in.txt").stdout.splitlines()
    assert long == ["//a:in.txt  source file"]
