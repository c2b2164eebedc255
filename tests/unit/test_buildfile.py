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
