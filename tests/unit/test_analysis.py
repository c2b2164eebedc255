"""Analysis (`mb.analysis`) on tmp workspaces with the installed plugins (genrule, filegroup).

Covers how labels resolve (a target, a source file, a generated file), cycle
reports in order, duplicate outputs, pattern expansion and attribute errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mb.analysis import Analysis
from mb.digest import digest_file
from mb.errors import BuildFileError, CycleError, LabelError, MultipleErrors
from mb.labels import Label, parse_pattern
from mb.plugins import Plugins, load_plugins
from mb.workspace import open_workspace


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    loaded = load_plugins()
    assert {"genrule", "filegroup"} <= set(loaded.rules())
    return loaded


@pytest.fixture
def make(tmp_path: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MB_CACHE_DIR", raising=False)

    def build(files: dict[str, str]) -> Analysis:
        files = {"MB.toml": "", **files}
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return Analysis(open_workspace(str(tmp_path)), plugins, digest_file)

    return build


def genrule(name: str, outs: Sequence[str], srcs: Sequence[str] = (),
            cmd: str = "touch $(OUTS)", extra: str = "") -> str:
    return (f"[{name}]\nrule = \"genrule\"\nouts = {json.dumps(list(outs))}\n"
            f"srcs = {json.dumps(list(srcs))}\ncmd = {json.dumps(cmd)}\n{extra}\n")


def L(text: str) -> Label:
    package, name = text[2:].split(":")
    return Label(package, name)


# --- label resolution -----------------------------------------------------------------


def test_a_label_resolves_to_a_target_a_source_or_a_generated_file(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({
        "p/src.txt": "source\n",
        "p/BUILD.toml": (
            genrule("gen", ["gen.txt", "extra.txt"])
            + genrule("use_target", ["a.txt"], srcs=[":gen"])
            + genrule("use_source", ["b.txt"], srcs=["src.txt"])
            + genrule("use_generated", ["c.txt"], srcs=[":extra.txt"])
            + genrule("use_missing", ["d.txt"], srcs=["not_there.txt"])
            + genrule("use_other", ["e.txt"], srcs=["//q:thing", "//q:data.txt"])
        ),
        "q/data.txt": "q data\n",
        "q/BUILD.toml": genrule("thing", ["thing.txt"]),
    })
    target = analysis.analyze(L("//p:use_target"))
    assert target.actions[0].spec.inputs == ("p/gen.txt", "p/extra.txt")
    assert (target.deps, target.sources) == ([L("//p:gen")], [])

    source = analysis.analyze(L("//p:use_source"))
    assert source.actions[0].spec.inputs == ("p/src.txt",)
    assert (source.deps, source.sources) == ([], ["p/src.txt"])

    generated = analysis.analyze(L("//p:use_generated"))
    assert generated.actions[0].spec.inputs == ("p/extra.txt",)
    assert (generated.deps, generated.sources) == ([L("//p:gen")], [])

    missing = analysis.analyze(L("//p:use_missing"))
    assert missing.actions[0].spec.inputs == ("p/not_there.txt",)
    assert (missing.deps, missing.sources) == ([], ["p/not_there.txt"])

    other = analysis.analyze(L("//p:use_other"))
    assert other.actions[0].spec.inputs == ("q/thing.txt", "q/data.txt")
    assert (other.deps, other.sources) == ([L("//q:thing")], ["q/data.txt"])


def test_a_target_name_wins_over_a_file_of_the_same_name(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({
        "p/logo": "a file named like the target\n",
        "p/BUILD.toml": genrule("logo", ["logo.png"]) + genrule("use", ["u"], srcs=[":logo"]),
    })
    assert analysis.analyze(L("//p:use")).actions[0].spec.inputs == ("p/logo.png",)


def test_filegroup_stands_for_its_sources_and_targets(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({
        "p/a.txt": "a", "p/b.txt": "b",
        "p/BUILD.toml": (genrule("gen", ["gen.txt"])
                         + '[group]\nrule = "filegroup"\nsrcs = ["a.txt", ":gen", "b.txt"]\n'
                         + genrule("use", ["u.txt"], srcs=[":group"])),
    })
    group = analysis.analyze(L("//p:group"))
    assert group.default_outputs == ["p/a.txt", "p/gen.txt", "p/b.txt"]
    assert group.actions == [] and group.outputs == []
    use = analysis.analyze(L("//p:use"))
    assert use.actions[0].spec.inputs == ("p/a.txt", "p/gen.txt", "p/b.txt")
    assert use.deps == [L("//p:group")]


def test_single_file_use_of_a_target_with_several_outputs_is_an_error(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (
        genrule("multi", ["a.txt", "b.txt"])
        + genrule("use", ["u.txt"], cmd="cp $(location :multi) $@"))})
    with pytest.raises(BuildFileError) as info:
        analysis.analyze(L("//p:use"))
    assert str(info.value) == (
        "p/BUILD.toml:7:1: //p:use: //p:multi stands for 2 files where one is expected "
        "(p/a.txt, p/b.txt)")


def test_root_package_labels(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"top.txt": "t", "BUILD.toml": genrule("root", ["r.txt"], srcs=["top.txt"])})
    root = analysis.analyze(L("//:root"))
    assert root.outputs == ["r.txt"]
    assert root.actions[0].spec.inputs == ("top.txt",)


# --- cycles -----------------------------------------------------------------------------


def test_cycle_is_reported_in_order_from_where_it_was_entered(make) -> None:  # type: ignore[no-untyped-def]
    files = {"p/BUILD.toml": (genrule("a", ["a.txt"], srcs=[":b"])
                              + genrule("b", ["b.txt"], srcs=[":c"])
                              + genrule("c", ["c.txt"], srcs=[":a"]))}
    with pytest.raises(CycleError) as info:
        make(files).analyze(L("//p:a"))
    assert info.value.labels == ["//p:a", "//p:b", "//p:c", "//p:a"]
    assert str(info.value) == (
        "p/BUILD.toml:1:1: dependency cycle: //p:a -> //p:b -> //p:c -> //p:a")
    with pytest.raises(CycleError) as info:
        make(files).analyze(L("//p:c"))
    assert info.value.labels == ["//p:c", "//p:a", "//p:b", "//p:c"]
    assert str(info.value).startswith("p/BUILD.toml:13:1: ")


def test_cycle_entered_from_outside_lists_only_the_cycle(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (genrule("top", ["t.txt"], srcs=[":a"])
                                      + genrule("a", ["a.txt"], srcs=[":b"])
                                      + genrule("b", ["b.txt"], srcs=[":a"]))})
    with pytest.raises(CycleError) as info:
        analysis.analyze(L("//p:top"))
    assert info.value.labels == ["//p:a", "//p:b", "//p:a"]
    assert str(info.value).startswith("p/BUILD.toml:7:1: ")


def test_cycle_across_packages_and_self_cycle(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({
        "x/BUILD.toml": "\n" + genrule("a", ["a.txt"], srcs=["//y:b"]),
        "y/BUILD.toml": genrule("b", ["b.txt"], srcs=["//x:a"]),
        "z/BUILD.toml": genrule("self", ["s.txt"], srcs=[":self"]),
    })
    with pytest.raises(CycleError) as info:
        analysis.analyze(L("//y:b"))
    assert str(info.value) == "y/BUILD.toml:1:1: dependency cycle: //y:b -> //x:a -> //y:b"
    with pytest.raises(CycleError) as info:
        analysis.analyze(L("//z:self"))
    assert info.value.labels == ["//z:self", "//z:self"]


def test_cycle_through_a_generated_file_label(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (genrule("a", ["a.txt"], srcs=[":b.txt"])
                                      + genrule("b", ["b.txt"], srcs=[":a.txt"]))})
    with pytest.raises(CycleError) as info:
        analysis.analyze(L("//p:a"))
    assert info.value.labels == ["//p:a", "//p:b", "//p:a"]


@pytest.mark.parametrize("references", [
    [":up1.txt"], ["up1.txt"], [":up1"], ["up1.txt", ":up1"],
])
def test_a_missing_source_next_to_a_reader_of_the_current_target_is_not_a_cycle(
        make, references: list[str]) -> None:  # type: ignore[no-untyped-def]
    # Looking for a producer of the missing one.txt, analysis enters `words`
    # while `up1` has not declared up1.txt yet: `words` depends on `up1`, and
    # `up1` does not depend on `words`.
    analysis = make({"p/BUILD.toml": (genrule("up1", ["up1.txt"], srcs=["one.txt"])
                                      + genrule("words", ["words.txt"], srcs=references))})
    # The last form reads up1 twice: the search for one.txt abandons `words`
    # (it needs `up1`, still in progress) after it took up1.txt for a source.
    up1 = analysis.analyze(L("//p:up1"))
    words = analysis.analyze(L("//p:words"))
    assert up1.sources == ["p/one.txt"] and up1.deps == []
    assert words.deps == [L("//p:up1")] and words.sources == []
    assert set(words.actions[0].spec.inputs) == {"p/up1.txt"}
    assert [t.label for t in analysis.closure([L("//p:words")])] == [L("//p:up1"), L("//p:words")]


def test_a_cycle_through_a_file_label_found_while_looking_for_a_missing_source(
        make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (genrule("a", ["a.txt"], srcs=["missing.txt", "b.txt"])
                                      + genrule("b", ["b.txt"], srcs=["a.txt"]))})
    with pytest.raises(CycleError) as info:
        analysis.analyze(L("//p:a"))
    assert info.value.labels == ["//p:a", "//p:b", "//p:a"]


def test_a_broken_sibling_does_not_hide_the_target_that_makes_a_missing_file(
        make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (genrule("a", ["a.txt"], srcs=["gen.txt"])
                                      + genrule("b", ["b.txt"], cmd="echo $(FOO) > $@")
                                      + genrule("c", ["gen.txt"]))})
    assert analysis.analyze(L("//p:a")).deps == [L("//p:c")]


def test_a_broken_sibling_is_reported_when_no_target_makes_the_missing_file(
        make) -> None:  # type: ignore[no-untyped-def]
    # It might have been the one making it: its mistake is the one to fix.
    analysis = make({"p/BUILD.toml": (genrule("a", ["a.txt"], srcs=["gen.txt"])
                                      + genrule("b", ["b.txt"], cmd="echo $(FOO) > $@"))})
    with pytest.raises(BuildFileError, match=r"unknown variable '\$\(FOO\)' in cmd"):
        analysis.analyze(L("//p:a"))


# --- outputs ------------------------------------------------------------------------------


def test_duplicate_outputs_across_targets_is_an_error(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (genrule("a", ["same.txt"]) + genrule("b", ["same.txt"]))})
    analysis.analyze(L("//p:a"))
    with pytest.raises(BuildFileError) as info:
        analysis.analyze(L("//p:b"))
    assert str(info.value) == (
        "p/BUILD.toml:9:1: output p/same.txt of //p:b is also an output of //p:a; "
        "give one of them another name")


def test_duplicate_output_within_a_target_is_an_error(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": genrule("a", ["x.txt", "x.txt"])})
    with pytest.raises(BuildFileError) as info:
        analysis.analyze(L("//p:a"))
    assert str(info.value) == "p/BUILD.toml:3:1: output 'x.txt' is declared twice"


@pytest.mark.parametrize("out, message", [
    ("../escape.txt", "output name '../escape.txt' contains '..'; paths may not leave their "
                      "package"),
    ("/abs.txt", "output name '/abs.txt' is absolute; give a path relative to the package"),
    ("a\\\\b.txt", "output name 'a\\b.txt' contains a backslash; use '/'"),
    ("a//b.txt", "output name 'a//b.txt' has an empty path segment"),
])
def test_output_names_may_not_escape(make, out: str, message: str) -> None:  # type: ignore[no-untyped-def]
    text = f'[a]\nrule = "genrule"\nouts = ["{out}"]\ncmd = "true"\n'
    analysis = make({"p/BUILD.toml": text})
    with pytest.raises(BuildFileError) as info:
        analysis.analyze(L("//p:a"))
    assert str(info.value) == f"p/BUILD.toml:3:1: {message}"


def test_producers_and_actions_are_recorded(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": genrule("a", ["x.txt", "y.txt"])
                     + genrule("b", ["z.txt"], srcs=[":a"])})
    b = analysis.analyze(L("//p:b"))
    a = analysis.analyzed[L("//p:a")]
    assert [act.index for act in analysis.actions] == [0, 1]
    assert analysis.producers == {"p/x.txt": a.actions[0], "p/y.txt": a.actions[0],
                                  "p/z.txt": b.actions[0]}
    assert a.actions[0].rule == "genrule" and a.actions[0].static_digest
    assert [t.label for t in analysis.closure([L("//p:b")])] == [L("//p:a"), L("//p:b")]


# --- patterns and unknown labels -----------------------------------------------------------------


def test_pattern_expansion(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({
        "BUILD.toml": genrule("root", ["r"]),
        "scenes/BUILD.toml": genrule("s1", ["s1"]) + genrule("hidden", ["h"], extra="tags = [\"manual\"]"),
        "scenes/intro/BUILD.toml": genrule("i1", ["i1"]),
        "scenesx/BUILD.toml": genrule("x1", ["x1"]),
        "mb-out/p/BUILD.toml": genrule("ignored", ["no"]),
        ".hidden/BUILD.toml": genrule("ignored", ["no"]),
        "nested/MB.toml": "",
        "nested/BUILD.toml": genrule("ignored", ["no"]),
    })

    def expand(text: str) -> list[str]:
        return [str(label) for label in analysis.expand([parse_pattern(text, None)])]

    assert analysis.workspace.packages == ["", "scenes", "scenes/intro", "scenesx"]
    assert expand("//...") == ["//:root", "//scenes:s1", "//scenes/intro:i1", "//scenesx:x1"]
    assert expand("//scenes/...") == ["//scenes:s1", "//scenes/intro:i1"]
    assert expand("//scenes:all") == ["//scenes:s1"]
    assert expand("//scenes:hidden") == ["//scenes:hidden"]
    with pytest.raises(LabelError) as info:
        expand("//nope/...")
    assert info.value.message == "pattern '//nope/...' matches no package"


def test_unknown_targets_and_packages(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": genrule("gen", ["g"])})
    with pytest.raises(LabelError) as info:
        analysis.target(L("//p:gne"))
    assert info.value.message == "no target 'gne' in package 'p' (//p:gne); did you mean ':gen'?"
    with pytest.raises(LabelError) as info:
        analysis.target(L("//p:zzzzzz"))
    assert info.value.message == "no target 'zzzzzz' in package 'p' (//p:zzzzzz)"
    with pytest.raises(LabelError) as info:
        analysis.target(L("//zz:x"))
    assert info.value.message == "no package 'zz': zz/BUILD.toml does not exist"


# --- attribute errors ---------------------------------------------------------------------


def test_every_attribute_error_of_a_file_is_reported_in_line_order(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": (
        '[b]\nrule = "genrule"\nouts = "x"\ncmd = "true"\n'
        '[a]\nrule = "genrul"\n'
        '[c]\nrule = "genrule"\nouts = ["y"]\ncmd = "true"\nsrcs = [":a", 3]\ntimout = 5\n'
        '[d]\nrule = "genrule"\ncmd = "true"\n'
    )})
    with pytest.raises(MultipleErrors) as info:
        analysis.package("p")
    lines = [str(e) for e in info.value.errors]
    assert lines[0] == "p/BUILD.toml:3:1: 'outs' must be a list, got the string \"x\""
    assert lines[1].startswith(
        "p/BUILD.toml:6:1: unknown rule 'genrul'; did you mean 'genrule'? (rules: ")
    assert lines[2:] == [
        "p/BUILD.toml:11:15: 'srcs' item 2 must be a file path or label, got the integer 3",
        "p/BUILD.toml:12:1: unknown attribute 'timout' for rule 'genrule'; "
        "did you mean 'timeout'?",
        "p/BUILD.toml:13:1: target 'd' (rule 'genrule') is missing the required attribute "
        "'outs'",
    ]


def test_common_attributes_are_converted_strictly(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": genrule("a", ["x"], extra=(
        'tags = "manual"\nresources = { gpu = "1" }\ntimeout = "3"\nretries = 1.5\n'))})
    with pytest.raises(MultipleErrors) as info:
        analysis.package("p")
    assert [str(e) for e in info.value.errors] == [
        "p/BUILD.toml:6:1: 'tags' must be a list, got the string \"manual\"",
        "p/BUILD.toml:7:15: 'resources.gpu' must be an integer, got the string \"1\"",
        "p/BUILD.toml:8:1: 'timeout' must be a number, got the string \"3\"",
        "p/BUILD.toml:9:1: 'retries' must be an integer, got the number 1.5",
    ]


def test_common_attributes_reach_the_actions(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": genrule("a", ["x"], extra=(
        'tags = ["no-cache"]\nresources = { gpu = 1 }\ntimeout = 3\nretries = 2\n'
        'description = "d"\n'))})
    action = analysis.analyze(L("//p:a")).actions[0]
    assert action.tags == ("no-cache",) and not action.cacheable
    assert (action.spec.resources, action.spec.timeout, action.spec.retries) == (
        (("gpu", 1),), 3.0, 2)


# --- BUILD.toml shape (mb.buildfile) ------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("a = 1\n", "p/BUILD.toml:1:1: 'a' must be a table ([a]) with a 'rule' key, "
                "got the integer 1"),
    ("[t]\nx = 1\n", 'p/BUILD.toml:1:1: target \'t\' needs a rule: add rule = "NAME" '
                     "(see `mb rules`)"),
    ("[t]\nrule = 3\n", "p/BUILD.toml:2:1: 'rule' must be a string naming a rule "
                        "(see `mb rules`), got the integer 3"),
    ('["a/b"]\nrule = "genrule"\n', "p/BUILD.toml:1:1: target name 'a/b' may not contain '/'"),
    ('["a b"]\nrule = "genrule"\n', "p/BUILD.toml:1:1: target name 'a b' has a character "
                                    "outside ASCII letters, digits, '_-.+'"),
    ('[".."]\nrule = "genrule"\n', "p/BUILD.toml:1:1: target name '..' contains '..'; "
                                   "paths may not leave their package"),
    ('["all"]\nrule = "genrule"\n',
     "p/BUILD.toml:1:1: target name 'all' is reserved for the pattern //pkg:all; "
     "rename the target"),
    ('["..."]\nrule = "genrule"\n', "p/BUILD.toml:1:1: target name '...' is reserved for "
                                    "the pattern //pkg/...; rename the target"),
    ('[t]\nrule = "genrule"\nouts = ["x"\ncmd = "true"\n',
     "p/BUILD.toml:4:1: TOML syntax error: unclosed array"),
])
def test_build_file_shape_errors(make, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": text})
    with pytest.raises(BuildFileError) as info:
        analysis.package("p")
    assert str(info.value) == message


def test_syntax_error_at_the_end_of_the_file_has_a_position(make) -> None:  # type: ignore[no-untyped-def]
    analysis = make({"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = [\n'})
    with pytest.raises(BuildFileError) as info:
        analysis.package("p")
    assert info.value.location is not None and info.value.location.line is not None
    assert "end of document" not in info.value.message
