"""`mb.toml_positions`: exact (line, col) for every key path, on valid TOML documents.

Each document is first checked with `tomllib`, so the scanner is only ever
asked about TOML that the real parser accepts.
"""

from __future__ import annotations

import tomllib

import pytest

from mb.toml_positions import key_positions, position_of


def positions(text: str) -> dict[tuple[str | int, ...], tuple[int, int]]:
    tomllib.loads(text)  # the scanner is only used on valid documents
    return key_positions(text)


def test_docstring_example() -> None:
    assert positions('[clip]\nsrcs = ["a", 3]\n') == {
        ("clip",): (1, 1),
        ("clip", "srcs"): (2, 1),
        ("clip", "srcs", 0): (2, 9),
        ("clip", "srcs", 1): (2, 14),
    }


def test_comments_and_multiline_array() -> None:
    text = (
        "# header comment\n"
        "[clip]   # trailing comment\n"
        'rule = "genrule"  # why\n'
        'srcs = ["a", 3,\n'
        "  # a comment inside the array, with [brackets] and {braces}\n"
        '  "c",\n'
        "]\n"
        "after = 1\n"
    )
    assert positions(text) == {
        ("clip",): (2, 1),
        ("clip", "rule"): (3, 1),
        ("clip", "srcs"): (4, 1),
        ("clip", "srcs", 0): (4, 9),
        ("clip", "srcs", 1): (4, 14),
        ("clip", "srcs", 2): (6, 3),
        ("clip", "after"): (8, 1),
    }


def test_inline_tables_nested_arrays_and_dotted_keys_inside() -> None:
    text = (
        "[t]\n"
        'vars = { title = "x", "quoted key" = 1, nested = { deep = [1, [2, 3]] } }\n'
        'dots = { a.b = 1, "c d".e = 2 }\n'
        'arr = [ { k = 1 }, { k = [ "x" ] } ]\n'
    )
    assert positions(text) == {
        ("t",): (1, 1),
        ("t", "vars"): (2, 1),
        ("t", "vars", "title"): (2, 10),
        ("t", "vars", "quoted key"): (2, 23),
        ("t", "vars", "nested"): (2, 41),
        ("t", "vars", "nested", "deep"): (2, 52),
        ("t", "vars", "nested", "deep", 0): (2, 60),
        ("t", "vars", "nested", "deep", 1): (2, 63),
        ("t", "vars", "nested", "deep", 1, 0): (2, 64),
        ("t", "vars", "nested", "deep", 1, 1): (2, 67),
        ("t", "dots"): (3, 1),
        ("t", "dots", "a"): (3, 10),
        ("t", "dots", "a", "b"): (3, 10),
        ("t", "dots", "c d"): (3, 19),
        ("t", "dots", "c d", "e"): (3, 19),
        ("t", "arr"): (4, 1),
        ("t", "arr", 0): (4, 9),
        ("t", "arr", 0, "k"): (4, 11),
        ("t", "arr", 1): (4, 20),
        ("t", "arr", 1, "k"): (4, 22),
        ("t", "arr", 1, "k", 0): (4, 28),
    }


def test_dotted_and_quoted_keys() -> None:
    text = (
        "[t]\n"
        "a.b.c = 1\n"
        '"q.k" = 2\n'
        "'lit' = 3\n"
        '"a\\"b" = 4\n'
        '"\\u00e9t\\u00e9" = 5\n'
        "'c:\\path' = 6\n"
        "x . y = 7\n"
    )
    found = positions(text)
    assert found == {
        ("t",): (1, 1),
        ("t", "a"): (2, 1),
        ("t", "a", "b"): (2, 1),
        ("t", "a", "b", "c"): (2, 1),
        ("t", "q.k"): (3, 1),
        ("t", "lit"): (4, 1),
        ('t', 'a"b'): (5, 1),
        ("t", "\u00e9t\u00e9"): (6, 1),
        ("t", "c:\\path"): (7, 1),
        ("t", "x"): (8, 1),
        ("t", "x", "y"): (8, 1),
    }
    assert tomllib.loads(text)["t"].keys() == {k[1] for k in found if len(k) == 2}


def test_table_headers_quoted_dotted_and_spaced() -> None:
    text = '["quoted table".sub]\ny = 1\n[ spaced . header ]\nz = 1\n'
    assert positions(text) == {
        ("quoted table", "sub"): (1, 1),
        ("quoted table", "sub", "y"): (2, 1),
        ("spaced", "header"): (3, 1),
        ("spaced", "header", "z"): (4, 1),
    }


def test_arrays_of_tables_are_numbered() -> None:
    text = '[[item]]\nx = 1\n\n[[item]]\nx = 2\n[[other]]\ny = [1]\n[[item]]\n'
    assert positions(text) == {
        ("item",): (1, 1),
        ("item", 0): (1, 1),
        ("item", 0, "x"): (2, 1),
        ("item", 1): (4, 1),
        ("item", 1, "x"): (5, 1),
        ("other",): (6, 1),
        ("other", 0): (6, 1),
        ("other", 0, "y"): (7, 1),
        ("other", 0, "y", 0): (7, 6),
        ("item", 2): (8, 1),
    }


def test_subtable_of_array_of_tables_element() -> None:
    text = ('[[fruit]]\nname = "a"\n[fruit.physical]\ncolor = 1\n'
            '[[fruit]]\nname = "b"\n[fruit.physical]\ncolor = 2\n')
    found = positions(text)
    assert found[("fruit", 0, "physical", "color")] == (4, 1)
    assert found[("fruit", 1, "physical", "color")] == (8, 1)


def test_multiline_strings_hide_what_looks_like_toml() -> None:
    text = (
        "[a]\n"
        'text = """\n'
        "multi [not] = a table\n"
        '"""\n'
        "lit = '''\n"
        'x = "not a key"\n'
        "'''\n"
        "apos = '''it''s'''\n"
        'quote_end = """ends with quote"""""\n'
        'esc = "a \\" [b] = 1"\n'
        'hash = "# not a comment ] }"\n'
        "after = 1\n"
    )
    assert positions(text) == {
        ("a",): (1, 1),
        ("a", "text"): (2, 1),
        ("a", "lit"): (5, 1),
        ("a", "apos"): (8, 1),
        ("a", "quote_end"): (9, 1),
        ("a", "esc"): (10, 1),
        ("a", "hash"): (11, 1),
        ("a", "after"): (12, 1),
    }


def test_multiline_basic_string_with_escaped_quotes() -> None:
    text = '[t]\ns = """a \\""" b"""\nafter = 1\n'
    assert tomllib.loads(text)["t"]["s"] == 'a """ b'
    assert positions(text)[("t", "after")] == (3, 1)


def test_columns_count_indentation_tabs_and_crlf() -> None:
    text = "[t]\r\n  indented = 4\r\n\ttabbed = [ 1 , 2 ]\r\ny = [\r\n  1,\r\n  2]\r\n"
    assert positions(text) == {
        ("t",): (1, 1),
        ("t", "indented"): (2, 3),
        ("t", "tabbed"): (3, 2),
        ("t", "tabbed", 0): (3, 13),
        ("t", "tabbed", 1): (3, 17),
        ("t", "y"): (4, 1),
        ("t", "y", 0): (5, 3),
        ("t", "y", 1): (6, 3),
    }


def test_other_value_kinds_do_not_confuse_the_scanner() -> None:
    text = ("top = 1\n[t]\nd = 1979-05-27T07:32:00Z\nf = inf\nb = true\nn = -1_000\n"
            "e = []\ne2 = {}\nlast = 'x'\n")
    assert positions(text) == {
        ("top",): (1, 1),
        ("t",): (2, 1),
        ("t", "d"): (3, 1),
        ("t", "f"): (4, 1),
        ("t", "b"): (5, 1),
        ("t", "n"): (6, 1),
        ("t", "e"): (7, 1),
        ("t", "e2"): (8, 1),
        ("t", "last"): (9, 1),
    }


def test_a_repeated_path_keeps_its_first_position() -> None:
    text = "[a]\nx = 1\n[b]\nx = 2\n[a.sub]\ny = 3\n"
    found = positions(text)
    assert found[("a",)] == (1, 1)
    assert found[("a", "sub")] == (5, 1)
    assert found[("b", "x")] == (4, 1)


def test_empty_document() -> None:
    assert positions("") == {}
    assert positions("# only a comment\n\n") == {}


def test_position_of_falls_back_to_the_closest_ancestor() -> None:
    found = positions('# c\n[t]\nrule = "x"\nsrcs = ["a"]\n')
    assert position_of(found, ("t", "srcs", 0)) == (4, 9)
    assert position_of(found, ("t", "srcs", 5)) == (4, 1)
    assert position_of(found, ("t", "missing", "deep")) == (2, 1)
    assert position_of(found, ("nothing",)) == (1, 1)
    assert position_of(found, ()) == (1, 1)


def test_position_of_a_table_made_only_by_sub_tables_is_its_first_sub_table() -> None:
    found = positions('[ok]\nrule = "filegroup"\n\n[quo.env]\nA = "1"\n')
    assert position_of(found, ("quo",)) == (4, 1)


def test_nested_arrays_of_tables() -> None:
    text = "[[a]]\nx = 1\n[[a.b]]\ny = 1\n[[a]]\n[[a.b]]\ny = 2\n"
    assert tomllib.loads(text) == {"a": [{"x": 1, "b": [{"y": 1}]}, {"b": [{"y": 2}]}]}
    found = positions(text)
    assert found[("a", 0, "b", 0, "y")] == (4, 1)
    assert found[("a", 1, "b", 0, "y")] == (7, 1)
