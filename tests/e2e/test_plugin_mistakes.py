"""Mistakes in a plugin's code: one located line, exit 2, nothing read or written
outside the workspace, and never mb's own exit status taken over."""

from __future__ import annotations

import pytest

from test_plugins import _lines_about, _plug_env, _with_plugins


def mistake_workspace(mb_workspace, modes: dict[str, str]):
    targets = "".join(f'[{name}]\nrule = "mistake"\n{body}\n' for name, body in modes.items())
    return mb_workspace(_with_plugins(["rule_mistakes"], {"p/BUILD.toml": targets}))


@pytest.mark.parametrize("path, problem", [
    ("../outside.txt", "input path '../outside.txt' contains '..'; paths may not leave"),
    ("/etc/hostname", "input path '/etc/hostname' is absolute"),
    ("p/../../outside.txt", "input path 'p/../../outside.txt' contains '..'"),
])
def test_an_input_path_outside_the_workspace_is_refused(mb_workspace, tmp_path, path, problem):
    ws = mistake_workspace(mb_workspace, {"e": f'mode = "copy"\npath = "{path}"'})
    (ws.path.parent / "outside.txt").write_text("outside\n")
    before = sorted(p.name for p in ws.path.parent.iterdir())
    result = ws.run("-p", "rule_mistakes", "build", env=_plug_env(ws))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().startswith(f"p/BUILD.toml:1:1: //p:e: {problem}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in ws.path.parent.iterdir()) == before, "nothing written beside"


@pytest.mark.parametrize("mode, problem", [
    ("timeout", "the rule passed timeout=-1 to ctx.run; it must be a positive number of seconds"),
    ("retries", "the rule passed retries=-1 to ctx.run; it must be a whole number, 0 or more"),
    ("resources", "the rule passed resources['gpu']=-1 to ctx.run; it must be a whole number "
                  "of units, 0 or more"),
])
def test_limits_a_rule_passes_are_checked(mb_workspace, mode, problem):
    ws = mistake_workspace(mb_workspace, {"t": f'mode = "{mode}"'})
    result = ws.run("-p", "rule_mistakes", "build", env=_plug_env(ws))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"p/BUILD.toml:1:1: //p:t: {problem}"


def test_an_output_no_action_produces_is_an_error_not_a_phantom(mb_workspace):
    ws = mistake_workspace(mb_workspace, {"o": 'mode = "orphan"'})
    result = ws.run("-p", "rule_mistakes", "build", env=_plug_env(ws))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "p/BUILD.toml:1:1: rule 'mistake' (plugin 'rule_mistakes') declared output p/o.extra "
        "of //p:o with ctx.output, but no action of it produces that file; pass it to "
        "outputs= of ctx.run or ctx.call")


def test_a_plugin_calling_sys_exit_is_a_failed_plugin_not_mbs_exit(mb_workspace):
    ws = mb_workspace(_with_plugins(["exits_at_import"], {
        "q/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo hi > $@"\n'}))
    result = ws.run("-p", "exits_at_import", "build", env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    assert ws.out("q/t.txt").read_text() == "hi\n"
    assert _lines_about(result.stderr, "exits_at_import") == [
        "warning: plugin 'exits_at_import' (exits_at_import) failed to load: SystemExit: 3"]


def test_a_plugin_error_of_several_lines_is_reported_on_one(mb_workspace):
    ws = mb_workspace(_with_plugins(["multiline_error"], {}))
    result = ws.run("-p", "multiline_error", "plugins", env=_plug_env(ws))
    assert result.exit_code == 0, result.stderr
    assert _lines_about(result.stderr, "multiline_error") == [
        "warning: plugin 'multiline_error' (multiline_error) failed to load: RuntimeError: "
        "first line of the message ..."]
    assert "second line" not in result.stderr


def test_an_unknown_key_of_a_table_attribute_lists_that_tables_keys(mb_workspace):
    ws = mb_workspace(_with_plugins(["nested_attrs"], {"p/BUILD.toml": (
        '[a]\nrule = "sized"\nsize = { width = 3, hieght = 1 }\n\n'
        '[b]\nrule = "sized"\nsize = { width = 3, zzz = 1 }\n')}))
    result = ws.run("-p", "nested_attrs", "build", env=_plug_env(ws))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "p/BUILD.toml:3:21: unknown key 'size.hieght'; did you mean 'height'?",
        "p/BUILD.toml:7:21: unknown key 'size.zzz' (keys of 'size': width, height)",
    ]


def test_a_label_attribute_must_name_a_target(mb_workspace):
    ws = mb_workspace(_with_plugins(["nested_attrs"], {
        "p/BUILD.toml": ('[ok]\nrule = "sized"\nref = ":other"\nrefs = ["//p:other"]\n\n'
                         '[other]\nrule = "sized"\n\n'
                         '[typo]\nrule = "sized"\nref = ":othre"\n\n'
                         '[far]\nrule = "sized"\nrefs = [":other", "//nowhere:x"]\n')}))
    result = ws.run("-p", "nested_attrs", "build", env=_plug_env(ws))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "p/BUILD.toml:11:1: no target 'othre' in package 'p' (//p:othre); did you mean ':other'?",
        "p/BUILD.toml:15:19: no package 'nowhere': nowhere/BUILD.toml does not exist",
    ]
    fixed = ws.run("-p", "nested_attrs", "build", "//p:ok", env=_plug_env(ws))
    assert fixed.exit_code == 0, fixed.stderr


def test_a_rule_asking_for_more_units_than_the_pool_is_located_at_analysis(mb_workspace):
    """It was found only once the build ran, without file and line."""
    ws = mistake_workspace(mb_workspace, {"g": 'mode = "big_pool"'})
    result = ws.run("-p", "rule_mistakes", "build", env=_plug_env(ws))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "p/BUILD.toml:1:1: rule 'mistake' asks for 2 units of resource 'gpu' for //p:g but the "
        "pool has 1 (pools not in MB.toml [resources] have 1); raise it in MB.toml: "
        "[resources] gpu = 2")
