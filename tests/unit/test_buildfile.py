"""`mb.buildfile.parse_toml`: rtoml parses, tomllib words the syntax errors and is the reference."""

from __future__ import annotations

import tomllib

import pytest
import rtoml

from mb import buildfile
from mb.buildfile import parse_toml
from mb.errors import BuildFileError

DOCUMENTS = [
    '[t]\nrule = "genrule"\nsrcs = ["a.txt", ":b",]\nouts = ["t.out"]\ncmd = "cp $< $@"\n',
    '[t]\nrule = "x"\nn = 0o17\nf = 1.5e3\nb = true\ns = """\n  two\\\n  lines"""\n',
    '[t]\nrule = "x"\nenv = { A = "1", "B C" = \'raw\\n\' }\nnested = [[1, 2], ["a"]]\n',
    '[a.b]\nrule = "x"\n[a.c]\nrule = "y"\nk = "\u00e9"\n',
    "",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_values_are_the_ones_tomllib_gives(text: str) -> None:
    assert parse_toml("p/BUILD.toml", text) == tomllib.loads(text)


def test_a_syntax_error_is_located_and_worded_by_tomllib() -> None:
    with pytest.raises(BuildFileError) as info:
        parse_toml("p/BUILD.toml", '[t]\nrule = "x"\nrule = "y"\n')
    assert info.value.location == ("p/BUILD.toml", 3, 11)  # where tomllib stops
    assert "TOML syntax error" in info.value.message


def test_a_document_only_rtoml_rejects_is_still_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> object:
        raise rtoml.TomlParsingError("refused")

    monkeypatch.setattr(buildfile.rtoml, "loads", refuse)
    assert parse_toml("p/BUILD.toml", DOCUMENTS[0]) == tomllib.loads(DOCUMENTS[0])


@pytest.mark.parametrize("text", [
    "a = { b = 1, }\n",          # a trailing comma in an inline table
    "a = {\nb = 1}\n",           # a line break in an inline table
    "a = 07:32\n",               # a time without seconds
    "a = 1979-05-27T07:32\n",    # a date-time without seconds
    'a = "\\e"\n',               # TOML 1.1 escapes
    'a = "\\x41"\n',
])
def test_what_only_rtoml_accepts_is_refused_like_tomllib_refuses_it(text: str) -> None:
    rtoml.loads(text)  # the fast parser takes it ...
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)  # ... the reference does not
    with pytest.raises(BuildFileError) as info:
        parse_toml("p/BUILD.toml", text)
    assert info.value.message.startswith("TOML syntax error: ")
    assert info.value.location is not None and info.value.location.line == 1


@pytest.mark.parametrize("text", [
    'a = "12:30:00"\nb = { c = 1 }\n', "cmd = \"awk '{print $1}' > $@\"\n", 'a = "\\\\x"\n',
])
def test_text_that_only_looks_like_toml_1_1_is_accepted(text: str) -> None:
    assert parse_toml("p/BUILD.toml", text) == tomllib.loads(text)
