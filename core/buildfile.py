"""BUILD.toml and MB.toml text -> plain values, with syntax errors located.

Parsing uses `rtoml` (Rust): 6 ms for the 1,000 targets of the benchmark's
`wide1k`, against 53 ms with the standard library's `tomllib` and several
times that with tomlkit, which matters for a 10,000-target workspace. A
document rtoml rejects is parsed again with `tomllib`, whose syntax errors
carry a line and column and are worded for people; tomllib is the
reference, so a document it accepts is never refused, and one that may use
what rtoml accepts beyond TOML 1.0 is parsed by tomllib too, so it is
never accepted either. Positions for
non-syntax mistakes come from `toml_positions` only when an error is reported.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import rtoml

from mb.errors import BuildFileError, LabelError, Location, UserError
from mb.labels import check_target_name
from mb.toml_positions import KeyPath, key_positions, position_of
from mb.toml_text import describe

#: Text that may use what rtoml accepts beyond TOML 1.0 (a trailing comma or a line
#: break in an inline table, a time without seconds, `\e` and `\xHH` escapes).
#: A match, also a harmless one inside a string, only means tomllib parses the file too.
_TOML_1_1 = re.compile(r",\s*\}|\{[^}\n]*\n|\d\d:\d\d(?!:)|\\[ex]")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_KEY_TUPLE = re.compile(r"\((?:'[^']*',\s*)+(?:'[^']*')?\)")


@attrs.frozen
class RawTarget:
    """One `[name]` table of a BUILD.toml before its attributes are converted."""

    name: str
    rule: str
    attributes: dict[str, Any]


@attrs.define
class SourceFile:
    """A TOML file's text, with positions computed on first use (error path only)."""

    display_path: str
    text: str
    _positions: dict[KeyPath, tuple[int, int]] | None = None

    def location(self, path: KeyPath) -> Location:
        if self._positions is None:
            self._positions = key_positions(self.text)
        line, col = position_of(self._positions, path)
        return Location(self.display_path, line, col)

    def error(self, path: KeyPath, message: str) -> BuildFileError:
        return BuildFileError(message, self.location(path))


def decode_utf8(display_path: str, data: bytes, error_class: type[UserError] = BuildFileError
                ) -> str:
    """A TOML file's bytes as text; TOML files are UTF-8, and a stray byte is located."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise error_class(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); TOML files must be saved as UTF-8",
            Location(display_path, line, col)) from None


def parse_toml(display_path: str, text: str, error_class: type[UserError] = BuildFileError
               ) -> dict[str, Any]:
    """Parse TOML text; a syntax error becomes `path:line:col: message`."""
    try:
        document = rtoml.loads(text)
        if _TOML_1_1.search(text) is None:
            return document
        # rtoml also takes TOML 1.1 forms (see _TOML_1_1) that TOML 1.0 and
        # tomllib refuse: the reference decides, and words the error.
    except rtoml.TomlParsingError:
        pass  # worded and located by tomllib below
    import tomllib  # here only: ~5 ms of start-up that a valid file never needs

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        line, col = (int(found.group(1)), int(found.group(2))) if found else (None, None)
        if found is None and "(at end of document)" in message:
            lines = text.split("\n")
            line, col = len(lines), len(lines[-1]) + 1
        reason = _TOML_POSITION.sub("", message).replace("(at end of document)", "").strip()
        if found is None and line is not None:
            reason += " at the end of the file"
        # tomllib names tables by their key tuple: ('t',) -> [t], ('a', 'b') -> [a.b]
        reason = _KEY_TUPLE.sub(
            lambda m: "[" + ".".join(re.findall(r"'([^']*)'", m.group(0))) + "]", reason)
        raise error_class(
            f"TOML syntax error: {reason[0].lower() + reason[1:] if reason else message}",
            Location(display_path, line, col),
        ) from None


def parse_build_file(source: SourceFile) -> tuple[list[RawTarget], list[UserError]]:
    """The well-formed targets of one BUILD.toml, in file order, and the mistakes of the rest.

    A target with a bad name or no rule does not hide the others: the caller
    converts the well-formed ones too, so one run reports every mistake.
    """
    document = parse_toml(source.display_path, source.text)
    targets: list[RawTarget] = []
    errors: list[UserError] = []
    for name, table in document.items():
        try:
            check_target_name(name)
            if "/" in name:
                raise LabelError(f"target name {name!r} may not contain '/'")
            if name == "all" or set(name) == {"."}:
                # `//pkg:all` and `...` are patterns: a target of that name could
                # never be named on its own on the command line.
                raise LabelError(f"target name {name!r} is reserved for the pattern "
                                 f"{'//pkg:all' if name == 'all' else '//pkg/...'}; "
                                 "rename the target")
        except LabelError as exc:
            errors.append(source.error((name,), exc.message))
            continue
        if not isinstance(table, dict):
            errors.append(source.error(
                (name,), f"'{name}' must be a table ([{name}]) with a 'rule' key, got {describe(table)}"))
            continue
        rule = table.get("rule")
        if "rule" not in table:
            errors.append(source.error(
                (name,), f"target '{name}' needs a rule: add rule = \"NAME\" (see `mb rules`)"))
            continue
        if not isinstance(rule, str):
            errors.append(source.error(
                (name, "rule"), f"'rule' must be a string naming a rule (see `mb rules`), "
                f"got {describe(rule)}"))
            continue
        attributes = {k: v for k, v in table.items() if k != "rule"}
        targets.append(RawTarget(name=name, rule=rule, attributes=attributes))
    return targets, errors
