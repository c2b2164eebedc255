"""One test per kind of bad input: the exact line, exit code 2, and never a traceback."""

from __future__ import annotations

import os

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
    ('"3"', "'timeout' must be a number, got the string \"3\""),
    ("true", "'timeout' must be a number, got the boolean true"),
])
def test_no_silent_number_conversion(mb_workspace, value, message):
    result = build_file(mb_workspace,
                        f'[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\ntimeout = {value}\n')
    assert result.exit_code == 2
    assert errors_of(result) == [f"a/BUILD.toml:5:1: {message}"]


def test_string_where_list_expected(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = "x"\ncmd = "true"\n')
    assert errors_of(result) == ["a/BUILD.toml:3:1: 'outs' must be a list, got the string \"x\""]
    assert result.exit_code == 2


def test_wrong_type_in_list_item_points_at_item(mb_workspace):
    result = build_file(mb_workspace,
                        '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "true"\nsrcs = [":a", 3]\n')
    assert errors_of(result) == [
        "a/BUILD.toml:5:15: 'srcs' item 2 must be a file path or label, got the integer 3"]


def test_bool_is_not_a_string(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = false\n')
    assert errors_of(result) == ["a/BUILD.toml:4:1: 'cmd' must be a string, got the boolean false"]


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
    ('"a\\\\b"', "'srcs' item 1 is not a valid label: target name 'a\\b' contains a backslash; use '/'"),
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
        "a/BUILD.toml:3:1: output name '../x' contains '..'; paths may not leave their package"]


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


def test_a_pool_name_a_toml_key_cannot_spell_bare_is_refused(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'
                                      'resources = { "big gpu" = 1 }\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:5:15: pool name \"big gpu\" may hold only letters, digits, '_' and '-'"]


def test_a_target_named_like_the_file_it_reads_is_told_to_rename(mb_workspace):
    ws = mb_workspace({"a/in.txt": "x\n", "a/BUILD.toml":
                       '["in.txt"]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["out.txt"]\n'
                       'cmd = "cp $< $@"\n'})
    result = ws.run("build", "//a:all")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: dependency cycle: //a:in.txt -> //a:in.txt; the target is named "
        "like the file a/in.txt, so that name stands for the target itself: rename the target"]


def test_a_cycle_met_from_each_of_its_members_is_printed_once(mb_workspace):
    cycle = "".join(f'[{a}]\nrule = "genrule"\nsrcs = [":{b}"]\nouts = ["{a}.txt"]\n'
                    f'cmd = "cp $< $@"\n' for a, b in (("x", "y"), ("y", "z"), ("z", "x")))
    result = build_file(mb_workspace, cycle + '[w]\nrule = "genrule"\nsrcs = [":w"]\n'
                                              'outs = ["w.txt"]\ncmd = "cp $< $@"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: dependency cycle: //a:x -> //a:y -> //a:z -> //a:x",
        "a/BUILD.toml:16:1: dependency cycle: //a:w -> //a:w",
    ]


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
        "a/BUILD.toml:9:1: output a/same.txt of //a:two is also an output of //a:one; "
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
        "a/BUILD.toml:4:1: output name ':up1' has a character outside ASCII letters, digits, "
        "'_-.+/'; write a file name, not a label"]


def test_unknown_make_variable_in_cmd(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "echo $(FOO) > $@"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:4:1: unknown variable '$(FOO)' in cmd; known: $(SRCS) $(OUTS) $< $@ $(location LABEL) $$"]


def test_location_spelt_wrong_or_given_a_variable(mb_workspace):
    """`$(locations X)` was read as `$(location s X)`, and `$(location $(SRCS))` lost
    its parentheses in the message."""
    ws = mb_workspace({"a/in.txt": "x\n", "a/BUILD.toml":
                       '[t]\nrule = "genrule"\nouts = ["x"]\ncmd = "cat $(locations in.txt) > $@"\n'
                       '[u]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["y"]\n'
                       'cmd = "cat $(location $(SRCS)) > $@"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:4:1: unknown variable '$(locations in.txt)' in cmd; known: $(SRCS) $(OUTS) "
        "$< $@ $(location LABEL) $$",
        "a/BUILD.toml:9:1: $(location ...) takes a label, got '$(SRCS'; write $(location LABEL) "
        "for one file, or use $(SRCS)"]


def test_bad_mb_toml(mb_workspace):
    ws = mb_workspace({"MB.toml": "[build]\njobs = \"4\"\nsandbx = 1\n"})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "MB.toml:2:1: 'build.jobs' must be an integer, got the string \"4\"",
        "MB.toml:3:1: unknown key 'build.sandbx' in MB.toml; did you mean 'sandbox'?",
    ]


def test_bad_sandbox_mode_in_mb_toml(mb_workspace):
    ws = mb_workspace({"MB.toml": '[build]\nsandbox = "docker"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == ["MB.toml:2:1: 'build.sandbox' must be one of dir, linux, none, got \"docker\""]


def test_bad_jobs_flag(mb_workspace):
    ws = mb_workspace({})
    result = ws.run("build", "-j", "0")
    assert result.exit_code == 2
    assert errors_of(result) == ["-j must be at least 1, got 0"]


def test_a_target_declared_twice(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\n\n[t]\nrule = "filegroup"\n')
    assert result.exit_code == 2
    assert errors_of(result) == ["a/BUILD.toml:4:3: TOML syntax error: cannot declare [t] twice"]


# --- every mistake in one run (audit of the seventh session) --------------------------


def test_bad_names_and_rules_do_not_hide_other_targets_mistakes(mb_workspace):
    result = build_file(mb_workspace,
                        '["q z"]\nrule = "genrule"\nouts = ["q"]\ncmd = "x"\n\n'
                        '[y]\nrule = "genrul"\nouts = ["y"]\ncmd = "x"\n\n[z]\nrule = 3\n')
    assert result.exit_code == 2
    lines = errors_of(result)
    assert lines[0] == ("a/BUILD.toml:1:1: target name 'q z' has a character outside "
                        "ASCII letters, digits, '_-.+'")
    assert lines[1].startswith("a/BUILD.toml:7:1: unknown rule 'genrul'; did you mean")
    assert lines[2] == ("a/BUILD.toml:12:1: 'rule' must be a string naming a rule "
                        "(see `mb rules`), got the integer 3")
    assert len(lines) == 3


def test_analysis_mistakes_of_several_targets_in_one_run(mb_workspace):
    result = build_file(mb_workspace,
                        '[a]\nrule = "genrule"\nouts = ["../a", "/abs"]\ncmd = "echo > $@"\n\n'
                        '[b]\nrule = "genrule"\nouts = ["b"]\ncmd = "echo $(FOO) > $@"\n\n'
                        '[c]\nrule = "genrule"\nouts = ["c"]\nsrcs = ["../x"]\ncmd = "x"\n')
    assert result.exit_code == 2
    lines = errors_of(result)
    assert lines[0].startswith("a/BUILD.toml:3:1: output name '../a' contains '..'")
    assert "output name '/abs' is absolute" in lines[0]
    assert lines[1].startswith("a/BUILD.toml:9:1: unknown variable '$(FOO)' in cmd")
    assert lines[2].startswith("a/BUILD.toml:14:9: 'srcs' item 1 is not a valid label")
    assert len(lines) == 3


def test_mistakes_in_several_packages_in_one_run(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = 3\n',
                       "b/BUILD.toml": '[t]\nrule = "genrul"\nouts = ["t"]\ncmd = "x"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    lines = errors_of(result)
    assert lines[0] == "a/BUILD.toml:4:1: 'cmd' must be a string, got the integer 3"
    assert lines[1].startswith("b/BUILD.toml:2:1: unknown rule 'genrul'")


def test_mb_toml_mistakes_all_in_one_run(mb_workspace):
    ws = mb_workspace({"MB.toml": '[build]\njobs = "4"\nsandbox = "docker"\n\n[resources]\n'
                                  'gpu = -1\ntpu = 0\n\n[cache]\nmax_size = "lots"\n'
                                  'remote = "http//nowhere"\n',
                       "a/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "MB.toml:2:1: 'build.jobs' must be an integer, got the string \"4\"",
        "MB.toml:3:1: 'build.sandbox' must be one of dir, linux, none, got \"docker\"",
        "MB.toml:6:1: pool 'resources.gpu' must have at least 1 unit, got -1",
        "MB.toml:7:1: pool 'resources.tpu' must have at least 1 unit, got 0",
        "MB.toml:10:1: 'cache.max_size': size 'lots' is not a size like '20GB' or '500MiB'",
        "MB.toml:11:1: 'cache.remote' must be an http:// or https:// URL, got \"http//nowhere\""]


def test_not_utf8_build_file(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": b'[x]\nrule = "genrule"\nouts = ["\xff"]\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:3:10: not valid UTF-8 (byte 0xff); TOML files must be saved as UTF-8"]


def test_not_utf8_mb_toml(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n',
                       "MB.toml": b"[build]\njobs = 2 # \xff\n"})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "MB.toml:2:12: not valid UTF-8 (byte 0xff); TOML files must be saved as UTF-8"]


@pytest.mark.parametrize("line, message", [
    ("timeout = -1", "'timeout' must be a positive number of seconds, got -1"),
    ("timeout = 0", "'timeout' must be a positive number of seconds, got 0"),
    ("timeout = inf", "'timeout' must be a positive number of seconds, got inf"),
    ("retries = -2", "'retries' must be 0 or more, got -2"),
    ("resources = { gpu = -1 }", "'resources.gpu' must be 0 or more units, got -1"),
    ("resources = { gpu = 2 }", "'resources.gpu' asks for 2 units but the pool has 1 (pools "
                                "not in MB.toml [resources] have 1); raise it in MB.toml: "
                                "[resources] gpu = 2"),
])
def test_common_attribute_values_that_cannot_work(mb_workspace, line, message):
    result = build_file(mb_workspace, f'[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n{line}\n')
    assert result.exit_code == 2
    column = 1 if not line.startswith("resources") else 15
    assert errors_of(result) == [f"a/BUILD.toml:5:{column}: {message}"]


@pytest.mark.parametrize("key", ["X=Y", "", "A B", "1A"])
def test_genrule_env_names_must_be_environment_variable_names(mb_workspace, key):
    result = build_file(mb_workspace, f'[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'
                                      f'env = {{ "{key}" = "1" }}\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        f"a/BUILD.toml:5:1: 'env' key {key!r} is not a valid environment variable name "
        "(letters, digits and _, not starting with a digit)"]


def test_an_output_and_a_directory_of_outputs_conflict(mb_workspace):
    result = build_file(mb_workspace, '[o]\nrule = "genrule"\nouts = ["d"]\ncmd = "x"\n\n'
                                      '[p]\nrule = "genrule"\nouts = ["d/b"]\ncmd = "x"\n', "-j1")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:8:1: output a/d/b of //a:p would be inside a/d, an output file of //a:o; "
        "give one of them another name"]


def test_outputs_of_one_target_as_file_and_directory_conflict(mb_workspace):
    result = build_file(mb_workspace, '[o]\nrule = "genrule"\nouts = ["d/b", "d"]\ncmd = "x"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:3:1: output a/d of //a:o is also a directory holding outputs of //a:o; "
        "give one of them another name"]


def test_an_output_may_not_have_the_path_of_a_source_file(mb_workspace):
    ws = mb_workspace({"a/in.txt": "src\n",
                       "a/BUILD.toml": '[o]\nrule = "genrule"\nouts = ["in.txt"]\ncmd = "x"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:3:1: output a/in.txt of //a:o has the same path as a file of the source "
        "tree; rename the output (or the file)"]


def test_a_file_attribute_may_not_reach_into_a_sub_package(mb_workspace):
    ws = mb_workspace({"a/sub/f.txt": "x\n", "a/sub/BUILD.toml": "",
                       "a/BUILD.toml": '[x]\nrule = "genrule"\nsrcs = ["sub/f.txt"]\n'
                                       'outs = ["x"]\ncmd = "cat $(SRCS) > $@"\n'})
    result = ws.run("build", "//a:x")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:1:1: //a:sub/f.txt is a file of package 'a/sub' (it has a BUILD.toml); "
        "write //a/sub:f.txt"]


def test_an_unknown_package_in_an_attribute_is_located(mb_workspace):
    result = build_file(mb_workspace, '[x]\nrule = "genrule"\nsrcs = ["//nopkg:foo"]\n'
                                      'outs = ["x"]\ncmd = "cat $(SRCS) > $@"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:3:9: no package 'nopkg': nopkg/BUILD.toml does not exist"]


def test_an_unknown_package_in_a_command_is_located_at_the_command(mb_workspace):
    result = build_file(mb_workspace, '[x]\nrule = "genrule"\nouts = ["x"]\n'
                                      'cmd = "cat $(location //nopkg:foo) > $@"\n')
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:4:1: no package 'nopkg': nopkg/BUILD.toml does not exist"]


def test_a_package_directory_labels_cannot_name(mb_workspace):
    ws = mb_workspace({"a/my dir/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/my dir/BUILD.toml: package path 'a/my dir' has a character outside ASCII letters, digits, "
        "'_-.+/'; rename the directory so labels can name it"]


def test_a_nested_workspace_is_not_a_package(mb_workspace):
    ws = mb_workspace({"nested/MB.toml": "",
                       "nested/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    result = ws.run("build", "//nested:t")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "no package 'nested': nested/MB.toml makes nested a workspace of its own (build it "
        "with -C)"]
    pattern = ws.run("build", "//nested/...")
    assert pattern.exit_code == 2
    assert errors_of(pattern) == [
        "pattern '//nested/...' matches no package: nested/MB.toml makes nested a workspace "
        "of its own (build it with -C)"]


def buggy_rule_workspace(mb_workspace, tmp_path):
    """A workspace using rule 'buggy', whose implementation raises, and its plugin's folder."""
    plugin = tmp_path / "plug"
    plugin.mkdir()
    (plugin / "buggy_rule.py").write_text(
        "import attrs\nimport mb\n\n@attrs.frozen\nclass A:\n    pass\n\n"
        "@mb.rule('buggy', attrs=A, version='1')\ndef buggy(ctx, a):\n"
        "    raise ValueError('bug inside rule impl')\n\n"
        "@mb.hookimpl\ndef mb_rules():\n    return [buggy]\n")
    return mb_workspace({"p/BUILD.toml": '[c]\nrule = "buggy"\n'}), plugin


def test_a_rule_bug_names_the_rule_and_plugin(mb_workspace, tmp_path):
    ws, plugin = buggy_rule_workspace(mb_workspace, tmp_path)
    result = ws.run("-p", "buggy_rule", "build", env={"PYTHONPATH": str(plugin)})
    assert result.exit_code == 2
    assert errors_of(result) == [
        "p/BUILD.toml:1:1: rule 'buggy' (plugin 'buggy_rule') failed on //p:c: "
        "ValueError: bug inside rule impl"]


def test_a_rule_bug_shows_its_traceback_with_verbose(mb_workspace, tmp_path):
    ws, plugin = buggy_rule_workspace(mb_workspace, tmp_path)
    result = ws.run("-v", "-p", "buggy_rule", "build", env={"PYTHONPATH": str(plugin)})
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("p/BUILD.toml:1:1: rule 'buggy'")
    assert "Traceback" in result.stderr and "buggy_rule.py" in result.stderr


def test_a_directory_given_as_a_source_file(mb_workspace):
    ws = mb_workspace({"a/dir/x": "", "a/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["dir"]\n'
                                                      'outs = ["o"]\ncmd = "ls $< > $@"\n'})
    result = ws.run("build")
    assert result.exit_code == 1
    assert "FAILED //a:t: a/dir is a directory, not a file (needed by //a:t); list the files " \
           "it holds" in result.stderr


def test_a_relative_label_with_a_package_asks_for_slashes(mb_workspace):
    result = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n', "a:t")
    assert result.exit_code == 2
    assert errors_of(result) == ["label 'a:t' needs a leading // before its package; write '//a:t'"]
    one_slash = build_file(mb_workspace, '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n',
                           "/a:t")
    assert errors_of(one_slash) == [
        "label '/a:t' needs a leading // before its package; write '//a:t'"]


def test_a_relative_label_inside_a_package_is_offered_both_readings(mb_workspace):
    """`c:deep` in a BUILD.toml of package b may mean //c:deep or //b/c:deep (the way
    `c/...` is read from b); a hint that is not a valid label is not offered."""
    ws = mb_workspace({"b/BUILD.toml": '[t]\nrule = "filegroup"\nsrcs = ["c:deep"]\n',
                       "q/BUILD.toml": '[t]\nrule = "filegroup"\nsrcs = ["@//a:gen"]\n'})
    assert errors_of(ws.run("build", "//b:t")) == [
        "b/BUILD.toml:3:9: 'srcs' item 1 is not a valid label: label 'c:deep' needs a "
        "leading // before its package; write '//c:deep' or '//b/c:deep'"]
    assert errors_of(ws.run("build", "//q:t")) == [
        "q/BUILD.toml:3:9: 'srcs' item 1 is not a valid label: '@//a:gen' is not a label; "
        "labels look like //package:name or :name"]


def test_unknown_package_and_rule_suggest_the_closest(mb_workspace):
    ws = mb_workspace({"abc/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    package = ws.run("build", "//abd:t")
    assert package.exit_code == 2
    assert errors_of(package) == [
        "no package 'abd': abd/BUILD.toml does not exist; did you mean '//abc'?"]
    rule = ws.run("rules", "genrul")
    assert rule.exit_code == 2
    assert errors_of(rule)[0].startswith("unknown rule 'genrul'; did you mean 'genrule'?")


def test_a_slash_typed_for_the_colon_suggests_the_target(mb_workspace):
    ws = mb_workspace({"abc/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n',
                       "BUILD.toml": '[top]\nrule = "genrule"\nouts = ["o"]\ncmd = "x"\n'})
    assert errors_of(ws.run("build", "//abc/t")) == [
        "no package 'abc/t': abc/t/BUILD.toml does not exist; did you mean '//abc:t'?"]
    assert errors_of(ws.run("build", "//top")) == [
        "no package 'top': top/BUILD.toml does not exist; did you mean '//:top'?"]
    # Neither a target there nor a package near it: no hint, and no search upwards.
    assert errors_of(ws.run("build", "//abc/zzz/qqq")) == [
        "no package 'abc/zzz/qqq': abc/zzz/qqq/BUILD.toml does not exist"]


def test_dash_c_with_a_file(mb_workspace):
    ws = mb_workspace({"a/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t"]\ncmd = "x"\n'})
    result = ws.run("-C", "a/BUILD.toml", "build")
    assert result.exit_code == 2
    assert errors_of(result) == ["-C a/BUILD.toml: not a directory"]


def test_a_single_file_attribute_given_a_target_with_several_outputs(mb_workspace, tmp_path):
    """SPEC §2, for a rule that passes its mb.File on to ctx.call (SPEC §10's shout)."""
    plugin = tmp_path / "plug"
    plugin.mkdir()
    (plugin / "shout_like.py").write_text(
        "import attrs\nimport mb\n\n@attrs.frozen\nclass A:\n    src: mb.File\n\n"
        "def _shout(io):\n    io.outputs[0].write_text(io.inputs[0].read_text().upper())\n\n"
        "@mb.rule('shout_like', attrs=A, version='1')\ndef shout(ctx, a):\n"
        "    out = ctx.output(f'{ctx.name}.txt')\n"
        "    ctx.call(_shout, inputs=[a.src], outputs=[out])\n\n"
        "@mb.hookimpl\ndef mb_rules():\n    return [shout]\n")
    ws = mb_workspace({"a/BUILD.toml": '[two]\nrule = "genrule"\nouts = ["a.txt", "b.txt"]\n'
                                       'cmd = "touch $(OUTS)"\n\n[s]\nrule = "shout_like"\n'
                                       'src = ":two"\n\n[ok]\nrule = "shout_like"\n'
                                       'src = "//a:a.txt"\n'})
    env = {"PYTHONPATH": str(plugin)}
    result = ws.run("-p", "shout_like", "build", "//a:s", env=env)
    assert result.exit_code == 2
    assert errors_of(result) == [
        "a/BUILD.toml:6:1: //a:s: //a:two stands for 2 files where one is expected "
        "(a/a.txt, a/b.txt)"]
    one_file = ws.run("-p", "shout_like", "build", "//a:ok", env=env)
    assert one_file.exit_code == 0, one_file.stderr


def test_a_rule_s_value_check_points_at_the_attribute(mb_workspace):
    ws = mb_workspace({"p/s.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="20" '
                                  'height="10"></svg>',
                       "p/BUILD.toml": '[x]\nrule = "svg_render"\nsrc = "s.svg"\nwidth = 0\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == ["p/BUILD.toml:4:1: 'width' must be from 1 to 16384 pixels, got 0"]


def test_building_a_workspace_without_packages_says_what_is_missing(mb_workspace):
    ws = mb_workspace({})
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "pattern '//...' matches no package; the workspace has no BUILD.toml yet (a folder "
        "holding one is a package)"]


def test_a_name_ending_in_a_newline_is_refused(mb_workspace):
    """Python's `$` matches before a final newline: `"in.txt\\n"` passed every name check,
    and bash then ran `cat in.txt` and `> out.txt` as two commands (an empty output,
    "build ok")."""
    ws = mb_workspace({"in.txt": "real\n", "BUILD.toml":
                       '[t]\nrule = "genrule"\nsrcs = ["in.txt\\n"]\nouts = ["out.txt"]\n'
                       'cmd = "cat $(SRCS) > $(OUTS)"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    [line] = errors_of(result)
    assert line.startswith("BUILD.toml:3:9: 'srcs' item 1 ")
    assert "has a character outside" in line


def test_a_source_inside_mb_out_or_dot_mb_is_refused(mb_workspace):
    """Reading mb-out/x directly hid the dependency on the target that makes it: the
    reader could run first, or stay cached with the old bytes after an edit."""
    ws = mb_workspace({"in.txt": "one\n", "BUILD.toml":
                       '[a]\nrule = "genrule"\nsrcs = ["in.txt"]\nouts = ["out.txt"]\n'
                       'cmd = "cp $< $@"\n'
                       '[b]\nrule = "genrule"\nsrcs = ["mb-out/out.txt"]\nouts = ["b.txt"]\n'
                       'cmd = "cp $< $@"\n'
                       '[c]\nrule = "filegroup"\nsrcs = [".mb/events.jsonl"]\n'})
    assert ws.run("build", "//:a").exit_code == 0
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "BUILD.toml:6:1: //:mb-out/out.txt is inside mb-out/, which mb writes; name the "
        "target that makes the file instead",
        "BUILD.toml:11:1: //:.mb/events.jsonl is inside .mb/, which mb writes; name the "
        "target that makes the file instead"]


def test_a_build_file_that_is_a_broken_symlink_says_so(mb_workspace):
    ws = mb_workspace({})
    (ws.path / "p").mkdir()
    os.symlink("nowhere.toml", ws.path / "p/BUILD.toml")
    (ws.path / "q").mkdir()
    os.symlink("loop", ws.path / "q/BUILD.toml")
    os.symlink("BUILD.toml", ws.path / "q/loop")
    result = ws.run("build")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "p/BUILD.toml: a symlink to 'nowhere.toml', which does not exist; fix or remove the link",
        "q/BUILD.toml: cannot be read: Too many levels of symbolic links"]


def test_a_file_of_another_package_reached_through_a_symlinked_folder_is_refused(mb_workspace):
    """`pkg/a.txt` is refused (a file of package pkg); `alias/a.txt` with alias -> ../pkg
    was accepted. A link to a folder outside the workspace is still fine."""
    ws = mb_workspace({"pkg/a.txt": "a\n", "pkg/BUILD.toml": '[p]\nrule = "filegroup"\nsrcs = ["a.txt"]\n',
                       "top/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["alias/a.txt"]\n'
                                         'outs = ["o.txt"]\ncmd = "cat $< > $@"\n'})
    os.symlink("../pkg", ws.path / "top/alias")
    result = ws.run("build", "//top:t")
    assert result.exit_code == 2
    assert errors_of(result) == [
        "top/BUILD.toml:1:1: //top:alias/a.txt is a file of package 'pkg', reached through a "
        "symlinked folder; name it with a label of that package"]
