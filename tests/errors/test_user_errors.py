"""One test per kind of bad input: the exact line, exit code 2, and never a traceback."""

from __future__ import annotations

import pytest


def errors_of(result) -> list[str]:
    lines = [l for l in result.stderr.splitlines() if not l.startswith("warning: plugin")]
    assert "Traceback" not in result.stderr
    return lines


def build_file(ws_factory, text: str, *args: str):
    ws = ws_factory({"a/BUILD.toml": text})
    return ws.run("build", *(args or ("//a:all",)))


def test_unknown_rule_suggests_closest(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrul"\n')
    assert result.exit_code == 2
    line = errors_of(result)[0]
    assert line.startswith("a/BUILD.toml:2:1: unknown rule 'genrul'; did you mean 'genrule'? (rules: ")
    assert "filegroup" in line and "genrule" in line


def test_unknown_attribute_suggests_closest(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\ntimout = 3\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:5:1: unknown attribute 'timout' for rule 'genrule'; did you mean 'timeout'?"]


def test_missing_attribute(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\ncmd = "true"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: target 't' (rule 'genrule') is missing the required attribute 'outs'"]


@pytest.mark.parametrize("value, message", [
    ('"3"', "'timeout' must be a number, got the string '3'"),
    ("true", "'timeout' must be a number, got the boolean True"),
])
def test_no_silent_number_conversion(mb_workspace, value, message):
    result = build_file(mb_workspace,
                        f'[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\ntimeout = {value}\n')
    assert result.exit_code == 2
    assert errors_of(result) == [f"a/BUILD.toml:5:1: {message}"]


def test_string_where_list_expected(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = "x"\ncmd = "true"\n')
    assert errors_of(result) == ["a/BUILD.toml:3:1: 'outs' must be a list, got the string 'x'"]
    assert result.exit_code == 2


def test_wrong_type_in_list_item_points_at_item(mb_workspace):
    result = build_file(mb_workspace,
                        '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\nsrcs = [":a", 3]\n')
    assert errors_of(result) == [
        "a/BUILD.toml:5:15: 'srcs' item 2 must be a file path or label, got the integer 3"]


def test_bool_is_not_a_string(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = false\n')
    assert errors_of(result) == ["a/BUILD.toml:4:1: 'cmd' must be a string, got the boolean False"]


def test_all_mistakes_of_a_file_in_one_run(mb_workspace):
    result = build_file(mb_workspace, '[a]\nrule = "genrul"\n\n[b]\nrule = "genrule"\nouts = 1\ncmd = "x"\n')
    lines = errors_of(result)
    assert len(lines) == 2
    assert lines[0].startswith("a/BUILD.toml:2:1: unknown rule 'genrul'")
    assert lines[1] == "a/BUILD.toml:6:1: 'outs' must be a list, got the integer 1"


def test_toml_syntax_error(mb_workspace):
    result = build_file(mb_workspace, '[t\nrule = "genrule"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:3: TOML syntax error: expected ']' at the end of a table declaration"]


@pytest.mark.parametrize("src, message", [
    ('"../up.txt"', "'srcs' item 1 is not a valid label: target name '../up.txt' contains '..'; paths may not leave their package"),
    ('"/etc/passwd"', "'srcs' item 1 is not a valid label: target name '/etc/passwd' is absolute; give a path relative to the package"),
    ('"a\\\\b"', "'srcs' item 1 is not a valid label: target name 'a\\\\b' contains a backslash; use '/'"),
    ('"x//y"', "'srcs' item 1 is not a valid label: target name 'x//y' has an empty path segment"),
])
def test_paths_that_escape_the_package(mb_workspace, src, message):
    result = build_file(mb_workspace,
                        f'[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\nsrcs = [{src}]\n')
    assert result.exit_code == 2
    assert errors_of(result) == [f"a/BUILD.toml:5:9: {message}"]


def test_output_name_escaping_package(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["../x"]\ncmd = "true"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: //a:t: output name '../x' contains '..'; paths may not leave their package"]


def test_unknown_target_suggests(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[final]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\n'})
    result = ws.run("build", "//a:fnal")
    assert result.exit_code == 2
    assert errors_of(result) == ["no target 'fnal' in package 'a' (//a:fnal); did you mean ':final'?"]


def test_unknown_package(mb_workspace):
    ws = mb_workspace({})
    result = ws.run("build", "//nope:x")
    assert result.exit_code == 2
    assert errors_of(result) == ["no package 'nope': nope/BUILD.toml does not exist"]


def test_bad_label_on_command_line(mb_workspace):
    ws = mb_workspace({})
    result = ws.run("build", "//a/../b:x")
    assert result.exit_code == 2
    assert errors_of(result) == ["package path 'a/../b' contains '..'; paths may not leave their package"]


def test_cycle_is_printed_in_order(mb_workspace):
    result = build_file(mb_workspace, """
[x]
rule = "genrule"
srcs = [":y"]
outs = ["x.txt"]
cmd = "cp $< $@"

[y]
rule = "genrule"
srcs = [":z"]
outs = ["y.txt"]
cmd = "cp $< $@"

[z]
rule = "genrule"
srcs = [":x"]
outs = ["z.txt"]
cmd = "cp $< $@"
""", "//a:x")
    assert result.exit_code == 2
    assert errors_of(result) == ["a/BUILD.toml:2:1: dependency cycle: //a:x -> //a:y -> //a:z -> //a:x"]


def test_duplicate_output(mb_workspace):
    result = build_file(mb_workspace, """
[one]
rule = "genrule"
outs = ["same.txt"]
cmd = "true"

[two]
rule = "genrule"
outs = ["same.txt"]
cmd = "true"
""")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:7:1: output a/same.txt of //a:two is also an output of //a:one; "
        "give one of them another name"]


def test_a_label_among_outputs(mb_workspace):
    result = build_file(mb_workspace, """
[t]
rule = "genrule"
outs = [":up1"]
cmd = "true"
""")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:2:1: //a:t: output name ':up1' has a character outside letters, digits, "
        "'_-.+/'; write a file name, not a label"]


def test_unknown_make_variable_in_cmd(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "echo $(FOO) > $@"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: unknown variable '$(FOO)' in cmd; known: $(SRCS) $(OUTS) $< $@ $(location LABEL) $$"]


def test_bad_mb_toml(mb_workspace):
    ws = mb_workspace({"MB.toml": "[build]\njobs = \"4\"\nsandbx = 1\n"})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "MB.toml:2:1: 'build.jobs' must be an integer, got the string '4'",
        "MB.toml:3:1: unknown key 'build.sandbx' in MB.toml; did you mean 'sandbox'?",
    ]


def test_bad_sandbox_mode_in_mb_toml(mb_workspace):
    ws = mb_workspace({"MB.toml": '[build]\nsandbox = "docker"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == ["MB.toml:2:1: 'build.sandbox' must be one of dir, linux, none, got 'docker'"]


def test_bad_jobs_flag(mb_workspace):
    ws = mb_workspace({})
    result = ws.run("build", "-j", "0")
    assert result.exit_code == 2
    assert errors_of(result) == ["-j must be at least 1, got 0"]


def test_a_target_declared_twice(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\n\n[t]\nrule = "filegroup"\n')
    assert result.exit_code == 2
    assert errors_of(result) == ["a/BUILD.toml:4:3: TOML syntax error: cannot declare [t] twice"]
