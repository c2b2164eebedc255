"""`mb.attrs_convert`: strict conversion of TOML values and the error paths and messages.

cattrs on its own would turn `"false"` into True and `3` into `"3"`; these
tests pin down that every such conversion is refused, and what the user is
told about it.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import pytest
from cattrs.errors import ClassValidationError

from mb.attributes import File, Files
from mb.attrs_convert import (
    AttributeInvalid, InvalidValue, closest, describe, describe_path, errors_of, structure,
)
from mb.labels import Label


def _positive(_instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise AttributeInvalid(attribute.name, f"must be positive, got {value!r}")


def _even(_instance: Any, _attribute: attrs.Attribute, value: int) -> None:
    if value % 2:
        raise ValueError(f"odd value {value}")


@attrs.frozen
class Inner:
    w: int
    name: str = "x"


@attrs.frozen
class Attrs:
    n: int = 0
    s: str = ""
    f: float = 0.0
    b: bool = False
    on: int | None = None
    src: File | None = None
    srcs: Files = Files()
    tsrcs: tuple[File, ...] = ()
    label: Label | None = None
    strs: tuple[str, ...] = ()
    ints: list[int] = attrs.field(factory=list)
    vars: dict[str, str] = attrs.field(factory=dict)
    pools: dict[str, int] = attrs.field(factory=dict)
    inner: Inner | None = None
    inners: list[Inner] = attrs.field(factory=list)
    p: int = attrs.field(default=1, validator=_positive)
    seed: int | str = 0


@attrs.frozen
class Required:
    need: int
    src: File


@attrs.frozen
class Validated:
    even: int = attrs.field(default=0, validator=_even)


def errors(raw: dict[str, Any], cls: type = Attrs, package: str = "pkg") -> list[tuple]:
    with pytest.raises(ClassValidationError) as info:
        structure(raw, cls, package)
    return list(errors_of(info.value, cls))


# --- accepted values ---------------------------------------------------------------


def test_valid_values_are_converted() -> None:
    value = structure({
        "n": 3, "s": "x", "f": 2, "b": True, "on": 4, "src": "a.png", "srcs": ["b.png", ":t"],
        "tsrcs": ["//o:t"], "label": ":lab", "strs": ["a", "b"], "ints": [1, 2],
        "vars": {"title": "T"}, "pools": {"gpu": 1}, "inner": {"w": 5},
        "inners": [{"w": 1, "name": "y"}], "p": 2, "seed": "derived",
    }, Attrs, "pkg")
    assert value == Attrs(
        n=3, s="x", f=2.0, b=True, on=4, src=File(Label("pkg", "a.png")),
        srcs=Files((File(Label("pkg", "b.png")), File(Label("pkg", "t")))),
        tsrcs=(File(Label("o", "t")),), label=Label("pkg", "lab"), strs=("a", "b"),
        ints=[1, 2], vars={"title": "T"}, pools={"gpu": 1}, inner=Inner(w=5),
        inners=[Inner(w=1, name="y")], p=2, seed="derived",
    )
    assert type(value.f) is float


def test_defaults_when_nothing_is_given() -> None:
    assert structure({}, Attrs, "pkg") == Attrs()


@pytest.mark.parametrize("text, package, expected", [
    ("title.svg", "shorts", Label("shorts", "title.svg")),
    ("sub/dir/x.png", "shorts", Label("shorts", "sub/dir/x.png")),
    (":title", "shorts", Label("shorts", "title")),
    ("//scenes:intro", "shorts", Label("scenes", "intro")),
    ("//scenes", "shorts", Label("scenes", "scenes")),
    ("x.txt", "", Label("", "x.txt")),
    (":t", "", Label("", "t")),
])
def test_file_is_parsed_relative_to_the_package(text: str, package: str, expected: Label) -> None:
    value = structure({"src": text, "srcs": [text], "label": text}, Attrs, package)
    assert value.src == File(expected)
    assert value.srcs == Files((File(expected),))
    assert value.label == expected


def test_package_does_not_leak_between_calls() -> None:
    assert structure({"src": "a"}, Attrs, "one").src == File(Label("one", "a"))
    assert structure({"src": "a"}, Attrs, "two/deep").src == File(Label("two/deep", "a"))


# --- strictness --------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ({"n": "3"}, [(("n",), "must be an integer, got the string \"3\"")]),
    ({"n": True}, [(("n",), "must be an integer, got the boolean true")]),
    ({"n": 3.0}, [(("n",), "must be an integer, got the number 3.0")]),
    ({"on": True}, [(("on",), "must be an integer, got the boolean true")]),
    ({"on": "3"}, [(("on",), "must be an integer, got the string \"3\"")]),
    ({"s": 3}, [(("s",), "must be a string, got the integer 3")]),
    ({"s": ["a"]}, [(("s",), "must be a string, got the list [\"a\"]")]),
    ({"b": "false"}, [(("b",), "must be true or false, got the string \"false\"")]),
    ({"b": 0}, [(("b",), "must be true or false, got the integer 0")]),
    ({"f": True}, [(("f",), "must be a number, got the boolean true")]),
    ({"f": "1.5"}, [(("f",), "must be a number, got the string \"1.5\"")]),
    ({"strs": "abc"}, [(("strs",), "must be a list, got the string \"abc\"")]),
    ({"ints": {"a": 1}}, [(("ints",), "must be a list, got the table { a = 1 }")]),
    ({"strs": ["a", 1]}, [(("strs", 1), "must be a string, got the integer 1")]),
    ({"ints": [1, "2"]}, [(("ints", 1), "must be an integer, got the string \"2\"")]),
    ({"ints": [1, False]}, [(("ints", 1), "must be an integer, got the boolean false")]),
    ({"vars": "x"}, [(("vars",), "must be a table, got the string \"x\"")]),
    ({"vars": ["x"]}, [(("vars",), "must be a table, got the list [\"x\"]")]),
    ({"vars": {"title": 1}}, [(("vars", "title"), "must be a string, got the integer 1")]),
    ({"pools": {"gpu": True}}, [(("pools", "gpu"), "must be an integer, got the boolean true")]),
    ({"pools": {"gpu": "1"}}, [(("pools", "gpu"), "must be an integer, got the string \"1\"")]),
])
def test_no_silent_conversions(raw: dict[str, Any], expected: list[tuple]) -> None:
    assert errors(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ({"src": 3}, [(("src",), "must be a file path or label, got the integer 3")]),
    ({"src": ["a"]}, [(("src",), "must be a file path or label, got the list [\"a\"]")]),
    ({"src": "../x"}, [(("src",), "is not a valid label: target name '../x' contains '..'; "
                                  "paths may not leave their package")]),
    ({"src": "/etc/passwd"}, [(("src",), "is not a valid label: target name '/etc/passwd' is "
                                         "absolute; give a path relative to the package")]),
    ({"src": "a\\b"}, [(("src",), "is not a valid label: target name 'a\\b' contains a "
                                  "backslash; use '/'")]),
    ({"src": "a//b"}, [(("src",), "is not a valid label: target name 'a//b' has an empty "
                                  "path segment")]),
    ({"src": ""}, [(("src",), "is not a valid label: target name is empty")]),
    ({"srcs": "a.png"}, [(("srcs",), "must be a list of files, got the string \"a.png\"")]),
    ({"srcs": ["a", ":b", 3, "../c"]}, [
        (("srcs", 2), "must be a file path or label, got the integer 3"),
        (("srcs", 3), "is not a valid label: target name '../c' contains '..'; "
                      "paths may not leave their package"),
    ]),
    ({"tsrcs": "a"}, [(("tsrcs",), "must be a list, got the string \"a\"")]),
    ({"tsrcs": ["a", 2]}, [(("tsrcs", 1), "must be a file path or label, got the integer 2")]),
    ({"label": 3}, [(("label",), "must be a label, got the integer 3")]),
    ({"label": "//a b:c"}, [(("label",), "is not a valid label: package path 'a b' has a "
                                         "character outside ASCII letters, digits, '_-.+/'")]),
])
def test_file_and_label_errors(raw: dict[str, Any], expected: list[tuple]) -> None:
    assert errors(raw) == expected


def test_bool_is_not_accepted_by_an_int_or_string_union() -> None:
    (found,) = errors({"seed": True})
    assert found[0] == ("seed",)
    assert "true" in found[1]


def test_union_rejects_other_types() -> None:
    (found,) = errors({"seed": 1.5})
    assert found[0] == ("seed",)
    assert "1.5" in found[1]
    assert structure({"seed": 7}, Attrs, "p").seed == 7


@attrs.frozen
class Nested:
    grid: list[list[str]] = attrs.field(factory=list)
    groups: dict[str, list[str]] = attrs.field(factory=dict)


def test_a_string_is_not_a_list_inside_nested_collections() -> None:
    with pytest.raises(ClassValidationError):
        structure({"grid": ["abc"]}, Nested, "p")
    with pytest.raises(ClassValidationError):
        structure({"groups": {"k": "abc"}}, Nested, "p")


# --- several mistakes, nested classes, validators ----------------------------------


def test_every_mistake_is_reported() -> None:
    assert errors({"n": "3", "s": 4, "b": "yes"}) == [
        (("n",), "must be an integer, got the string \"3\""),
        (("s",), "must be a string, got the integer 4"),
        (("b",), "must be true or false, got the string \"yes\""),
    ]


def test_unknown_keys_list_the_allowed_attributes() -> None:
    allowed = "unknown:" + ",".join(f.name for f in attrs.fields(Attrs))
    assert errors({"timout": 3, "nn": 1}) == [(("nn",), allowed), (("timout",), allowed)]


def test_missing_required_attributes() -> None:
    assert errors({}, Required) == [(("need",), "missing"), (("src",), "missing")]
    assert errors({"need": 1}, Required) == [(("src",), "missing")]
    assert errors({"src": "a", "srcs": []}, Required) == [
        (("need",), "missing"), (("srcs",), "unknown:need,src")]


def test_nested_class_errors_carry_the_full_path() -> None:
    assert errors({"inner": {"w": "1"}}) == [(("inner", "w"), "must be an integer, got the "
                                                               'string "1"')]
    assert errors({"inner": {}}) == [(("inner", "w"), "missing")]
    assert errors({"inner": {"w": 1, "wx": 2}}) == [(("inner", "wx"), "unknown:w,name")]
    assert errors({"inners": [{"w": 1}, {"w": "x", "nmae": 2}]}) == [
        (("inners", 1, "w"), "must be an integer, got the string \"x\""),
        (("inners", 1, "nmae"), "unknown:w,name"),
    ]


def test_validator_naming_its_attribute() -> None:
    assert errors({"p": 0}) == [(("p",), "must be positive, got 0")]
    # the type check comes first: the validator never sees a string
    assert errors({"p": "0"}) == [(("p",), "must be an integer, got the string \"0\"")]


def test_plain_validator_error_is_reported_at_the_class() -> None:
    assert errors({"even": 3}, Validated) == [((), "invalid: odd value 3")]


def test_errors_of_prefixes_the_given_path() -> None:
    with pytest.raises(ClassValidationError) as info:
        structure({"n": "3"}, Attrs, "p")
    assert list(errors_of(info.value, Attrs, ("target",))) == [
        (("target", "n"), "must be an integer, got the string \"3\"")]


def test_exception_classes() -> None:
    exc = AttributeInvalid("width", "must be positive, got 0")
    assert isinstance(exc, InvalidValue) and isinstance(exc, ValueError)
    assert (exc.attribute, exc.text, str(exc)) == ("width", "must be positive, got 0",
                                                   "must be positive, got 0")


# --- message helpers ---------------------------------------------------------------


@pytest.mark.parametrize("path, text", [
    (("srcs",), "'srcs'"),
    (("srcs", 1), "'srcs' item 2"),
    (("vars", "title"), "'vars.title'"),
    (("inners", 0, "w"), "'inners.w' item 1"),
    (("a", 0, "b", 2), "'a.b' item 1 item 3"),
    ((), "''"),
])
def test_describe_path(path: tuple, text: str) -> None:
    assert describe_path(path) == text


@pytest.mark.parametrize("value, text", [
    (3, "the integer 3"), ("3", "the string \"3\""), (True, "the boolean true"),
    (1.5, "the number 1.5"), ([1], "the list [1]"), ({"a": 1}, "the table { a = 1 }"),
    (None, "None"),
])
def test_describe(value: Any, text: str) -> None:
    assert describe(value) == text


def test_closest() -> None:
    assert closest("timout", ["timeout", "tags", "retries"]) == "timeout"
    assert closest("srcz", ["srcs", "src"]) in ("srcs", "src")
    assert closest("zzz", ["timeout", "tags"]) is None
    assert closest("x", []) is None


def test_file_or_files_takes_a_string_or_a_list() -> None:
    import attrs as attrs_module

    from mb.attributes import File, Files
    from mb.attrs_convert import structure as convert

    @attrs_module.frozen
    class Audio:
        audio: File | Files = Files()

    one = convert({"audio": ":narration"}, Audio, "shorts").audio
    assert one == File(Label("shorts", "narration"))
    several = convert({"audio": [":a", "b.wav"]}, Audio, "shorts").audio
    assert several == Files((File(Label("shorts", "a")), File(Label("shorts", "b.wav"))))
    with pytest.raises(Exception) as raised:
        convert({"audio": 3}, Audio, "shorts")
    from mb.attrs_convert import errors_of

    assert list(errors_of(raised.value, Audio)) == [
        (("audio",), "must be a file or a list of files, got the integer 3")]


@attrs.frozen
class OtherContainers:
    pair: tuple[str, str] = ("", "")
    names: set[str] = attrs.field(factory=set)
    frozen: frozenset[str] = frozenset()


@pytest.mark.parametrize("raw", [{"pair": "ab"}, {"names": "xyz"}, {"frozen": "xyz"}])
def test_a_string_is_not_a_tuple_or_a_set(raw: dict[str, Any]) -> None:
    ((name, value),) = raw.items()
    assert errors(raw, OtherContainers) == [((name,), f"must be a list, got the string \"{value}\"")]


@attrs.frozen
class WithLiteral:
    engine: Literal["espeak", "openai"] = "espeak"


def test_literal_accepts_its_values() -> None:
    assert structure({"engine": "openai"}, WithLiteral, "p") == WithLiteral("openai")


def test_literal_error_names_the_allowed_values() -> None:
    (found,) = errors({"engine": "x"}, WithLiteral)
    assert found[0] == ("engine",)
    assert "typing" not in found[1] and "CattrsError" not in found[1]
    assert "\"espeak\"" in found[1] and "\"openai\"" in found[1]
