"""Labels and patterns (`mb.labels`): every accepted form and every rejection, with its message."""

from __future__ import annotations

import pytest

from mb.errors import LabelError
from mb.labels import (
    Label, Pattern, check_file_name, check_relative_path, parse_label, parse_pattern,
)


@pytest.mark.parametrize("text, package, expected", [
    ("//a/b:c", None, Label("a/b", "c")),
    ("//a/b", None, Label("a/b", "b")),
    ("//shorts", None, Label("shorts", "shorts")),
    ("//:x", None, Label("", "x")),
    (":x", "pkg", Label("pkg", "x")),
    (":x", "", Label("", "x")),
    ("x", "pkg", Label("pkg", "x")),
    ("script.txt", "shorts", Label("shorts", "script.txt")),
    ("//a:b/c.png", None, Label("a", "b/c.png")),
    ("//a-b_c.d+e:f-g_h.i+j", None, Label("a-b_c.d+e", "f-g_h.i+j")),
    ("//x:y", "elsewhere", Label("x", "y")),
])
def test_parse_label_forms(text: str, package: str | None, expected: Label) -> None:
    assert parse_label(text, package) == expected


def test_label_str_and_path() -> None:
    assert str(Label("a/b", "c")) == "//a/b:c"
    assert str(Label("", "x")) == "//:x"
    assert Label("a/b", "c.png").path() == "a/b/c.png"
    assert Label("", "x.txt").path() == "x.txt"


def test_labels_are_ordered_and_hashable() -> None:
    labels = [Label("b", "a"), Label("a", "z"), Label("a", "b")]
    assert sorted(labels) == [Label("a", "b"), Label("a", "z"), Label("b", "a")]
    assert len({Label("a", "b"), Label("a", "b")}) == 1


@pytest.mark.parametrize("text, package, message", [
    ("//", None, "label '//' names no target; write '//pkg:name'"),
    ("//a/", None, "label '//a/' names no target; write '//pkg:name'"),
    ("//a:", None, "target name is empty"),
    (":", "pkg", "target name is empty"),
    ("", "pkg", "target name is empty"),
    ("x", None, "label 'x' is relative; write it as '//package:name'"),
    (":x", None, "label ':x' is relative; write it as '//package:name'"),
    ("//a/../b:c", None, "package path 'a/../b' contains '..'; paths may not leave their package"),
    ("//..:c", None, "package path '..' contains '..'; paths may not leave their package"),
    ("//a:../b", None, "target name '../b' contains '..'; paths may not leave their package"),
    ("../up.txt", "pkg", "target name '../up.txt' contains '..'; paths may not leave their package"),
    ("//a:./b", None, "target name './b' contains '.'; paths may not leave their package"),
    ("//a/./b:c", None, "package path 'a/./b' contains '.'; paths may not leave their package"),
    ("///a:b", None, "package path '/a' is absolute; give a path relative to the package"),
    ("//a:/etc/passwd", None,
     "target name '/etc/passwd' is absolute; give a path relative to the package"),
    ("/etc/passwd", "pkg",
     "target name '/etc/passwd' is absolute; give a path relative to the package"),
    ("//a//b:c", None, "package path 'a//b' has an empty path segment"),
    ("//a:b//c", None, "target name 'b//c' has an empty path segment"),
    ("//a:b/", None, "target name 'b/' has an empty path segment"),
    ("//a\\b:c", None, "package path 'a\\b' contains a backslash; use '/'"),
    ("//a:b\\c", None, "target name 'b\\c' contains a backslash; use '/'"),
    ("//a b:c", None, "package path 'a b' has a character outside ASCII letters, digits, '_-.+/'"),
    ("//a$:c", None, "package path 'a$' has a character outside ASCII letters, digits, '_-.+/'"),
    ("//a:b c", None, "target name 'b c' has a character outside ASCII letters, digits, '_-.+'"),
    ("//a:b:c", None, "target name 'b:c' has a character outside ASCII letters, digits, '_-.+'"),
    ("//a:caf\u00e9", None,
     "target name 'caf\u00e9' has a character outside ASCII letters, digits, '_-.+'"),
    ("x*", "pkg", "target name 'x*' has a character outside ASCII letters, digits, '_-.+'"),
])
def test_parse_label_rejects(text: str, package: str | None, message: str) -> None:
    with pytest.raises(LabelError) as info:
        parse_label(text, package)
    assert info.value.message == message
    assert info.value.location is None


def test_parse_label_rejects_non_string() -> None:
    with pytest.raises(LabelError) as info:
        parse_label(3, "pkg")  # type: ignore[arg-type]
    assert info.value.message == "a label must be a string, got 3"


@pytest.mark.parametrize("path, message", [
    ("", "output name is empty"),
    ("a\\b", "output name 'a\\b' contains a backslash; use '/'"),
    ("/abs", "output name '/abs' is absolute; give a path relative to the package"),
    ("a//b", "output name 'a//b' has an empty path segment"),
    ("a/..", "output name 'a/..' contains '..'; paths may not leave their package"),
    (".", "output name '.' contains '.'; paths may not leave their package"),
])
def test_check_relative_path_messages(path: str, message: str) -> None:
    with pytest.raises(LabelError) as info:
        check_relative_path(path, "output name")
    assert info.value.message == message


@pytest.mark.parametrize("path", ["a", "a/b/c.png", "..hidden", "a..b", ".env"])
def test_check_relative_path_accepts(path: str) -> None:
    check_relative_path(path, "x")


@pytest.mark.parametrize("name, message", [
    (":up1", "output name ':up1' has a character outside ASCII letters, digits, '_-.+/'; "
             "write a file name, not a label"),
    ("final cut.mp4", "output name 'final cut.mp4' has a character outside ASCII letters, digits, "
                      "'_-.+/' (a label could not name it)"),
    ("../x", "output name '../x' contains '..'; paths may not leave their package"),
])
def test_check_file_name_messages(name: str, message: str) -> None:
    with pytest.raises(LabelError) as info:
        check_file_name(name, "output name")
    assert info.value.message == message


@pytest.mark.parametrize("name", ["a", "frames/f_001.png", "v1.2+final.mp4", ".env"])
def test_check_file_name_accepts(name: str) -> None:
    check_file_name(name, "output name")


# --- patterns ----------------------------------------------------------------------


@pytest.mark.parametrize("text, package, expected, shown", [
    ("//...", None, Pattern(package="", recursive=True), "//..."),
    ("//...", "pkg", Pattern(package="", recursive=True), "//..."),
    ("//scenes/...", None, Pattern(package="scenes", recursive=True), "//scenes/..."),
    ("//scenes/intro/...", None, Pattern(package="scenes/intro", recursive=True),
     "//scenes/intro/..."),
    ("sub/...", "pkg", Pattern(package="pkg/sub", recursive=True), "//pkg/sub/..."),
    ("sub/...", "", Pattern(package="sub", recursive=True), "//sub/..."),
    ("//pkg:all", None, Pattern(package="pkg", all_in_package=True), "//pkg:all"),
    ("//:all", None, Pattern(package="", all_in_package=True), "//:all"),
    (":all", "pkg", Pattern(package="pkg", all_in_package=True), "//pkg:all"),
    ("//a:b", None, Pattern(package="a", label=Label("a", "b")), "//a:b"),
    ("//a", None, Pattern(package="a", label=Label("a", "a")), "//a:a"),
    (":b", "a", Pattern(package="a", label=Label("a", "b")), "//a:b"),
])
def test_parse_pattern_forms(text: str, package: str | None, expected: Pattern,
                             shown: str) -> None:
    pattern = parse_pattern(text, package)
    assert pattern == expected
    assert str(pattern) == shown


def test_bare_dots_outside_a_package_mean_the_whole_workspace() -> None:
    assert parse_pattern("...", None) == Pattern(package="", recursive=True)
    assert parse_pattern("...", "") == Pattern(package="", recursive=True)


def test_bare_dots_inside_a_package_are_relative_to_it() -> None:
    assert parse_pattern("...", "scenes") == Pattern(package="scenes", recursive=True)


@pytest.mark.parametrize("text, package, message", [
    ("sub/...", None, "pattern 'sub/...' is relative; write it as '//package/...'"),
    (":all", None, "pattern ':all' is relative; write it as '//package:all'"),
    ("x:all", "pkg", "pattern 'x:all' is relative; write it as '//package:all'"),
    ("//a/../...", None, "package path 'a/..' contains '..'; paths may not leave their package"),
    ("//a//b/...", None, "package path 'a//b' has an empty path segment"),
    ("//a\\b:all", None, "package path 'a\\b' contains a backslash; use '/'"),
    ("//a b:all", None, "package path 'a b' has a character outside ASCII letters, digits, '_-.+/'"),
    ("///abs/...", None, "package path '/abs' is absolute; give a path relative to the package"),
    ("//a:../b", None, "target name '../b' contains '..'; paths may not leave their package"),
])
def test_parse_pattern_rejects(text: str, package: str | None, message: str) -> None:
    with pytest.raises(LabelError) as info:
        parse_pattern(text, package)
    assert info.value.message == message


def test_recursive_pattern_matches_packages_at_or_under_it() -> None:
    scenes = parse_pattern("//scenes/...", None)
    assert scenes.matches_package("scenes")
    assert scenes.matches_package("scenes/intro")
    assert scenes.matches_package("scenes/intro/deep")
    assert not scenes.matches_package("scenesx")
    assert not scenes.matches_package("")
    assert not scenes.matches_package("other/scenes")


def test_whole_workspace_pattern_matches_every_package() -> None:
    everything = parse_pattern("//...", None)
    for package in ("", "a", "a/b/c", "scenes"):
        assert everything.matches_package(package)


def test_all_and_label_patterns_match_one_package_only() -> None:
    for pattern in (parse_pattern("//pkg:all", None), parse_pattern("//pkg:t", None)):
        assert pattern.matches_package("pkg")
        assert not pattern.matches_package("pkg/sub")
        assert not pattern.matches_package("")
    assert parse_pattern("//:all", None).matches_package("")
    assert not parse_pattern("//:all", None).matches_package("a")
