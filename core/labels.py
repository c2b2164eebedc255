"""Labels (`//pkg:name`) and target patterns (`//...`, `//pkg/...`, `//pkg:all`).

Everything here is pure string work: no file system access, so it is cheap and
trivially testable. Invalid input raises `LabelError` with a user-facing
sentence; callers attach the location.
"""

from __future__ import annotations

import json
import re
from typing import Final

import attrs

from mb.errors import LabelError
from mb.pickling import pickled_by_position

_PACKAGE_RE: Final = re.compile(r"[A-Za-z0-9_\-.+/]*")  # fullmatch: `$` lets a final newline in


def quoted(text: str) -> str:
    """`text` in quotes for a one-line message: a newline or a tab in a name shows as
    `\\n`, `\\t` (the message stays one line); accents stay as they are."""
    return "'" + json.dumps(text, ensure_ascii=False)[1:-1].replace('\\"', '"') + "'"


def check_relative_path(path: str, what: str) -> None:
    """Reject paths that could escape their package: `..`, absolute, empty segments, backslashes."""
    if not path:
        raise LabelError(f"{what} is empty")
    if "\\" in path:
        raise LabelError(f"{what} '{path}' contains a backslash; use '/'")
    if path.startswith("/"):
        raise LabelError(f"{what} '{path}' is absolute; give a path relative to the package")
    for segment in path.split("/"):
        if segment == "":
            raise LabelError(f"{what} '{path}' has an empty path segment")
        if segment in ("..", "."):
            raise LabelError(f"{what} '{path}' contains '{segment}'; paths may not leave their package")


def check_package_name(package: str) -> None:
    if package == "":
        return
    check_relative_path(package, "package path")
    if not _PACKAGE_RE.fullmatch(package):
        raise LabelError(
            f"package path {quoted(package)} has a character outside ASCII letters, digits, "
            "'_-.+/'"
        )


def check_file_name(name: str, what: str) -> None:
    """A file of a package that labels must be able to name (`//pkg:dir/file.png`)."""
    check_relative_path(name, what)
    if not _PACKAGE_RE.fullmatch(name):
        hint = ("; write a file name, not a label" if name.startswith((":", "//"))
                else " (a label could not name it)")
        raise LabelError(
            f"{what} {quoted(name)} has a character outside ASCII letters, digits, "
            f"'_-.+/'{hint}")


def check_target_name(name: str) -> None:
    """Target names and file names inside a package (which may contain '/')."""
    check_relative_path(name, "target name")
    if not _PACKAGE_RE.fullmatch(name):
        raise LabelError(f"target name {quoted(name)} has a character outside ASCII letters, "
                         "digits, '_-.+'")


@pickled_by_position
@attrs.frozen(order=True)
class Label:
    """A target or file of a package: `//package:name`."""

    package: str
    name: str

    def __str__(self) -> str:
        return f"//{self.package}:{self.name}"

    def path(self) -> str:
        """The workspace-relative path this label names when it is a file."""
        return f"{self.package}/{self.name}" if self.package else self.name


def parse_label(text: str, current_package: str | None) -> Label:
    """Parse `//pkg:name`, `//pkg`, `:name` or (inside a package) a bare `name`.

    `current_package` is None on the command line outside any package, where a
    relative label has no meaning.
    """
    if not isinstance(text, str):
        raise LabelError(f"a label must be a string, got {text!r}")
    if text.startswith("//"):
        body = text[2:]
        if ":" in body:
            package, name = body.split(":", 1)
        else:
            package = body
            name = body.rsplit("/", 1)[-1]
            if not name:
                raise LabelError(f"label {text!r} names no target; write '//pkg:name'")
        check_package_name(package)
        check_target_name(name)
        return Label(package, name)
    if current_package is None:
        raise LabelError(f"label {text!r} is relative; write it as '//package:name'")
    name = text[1:] if text.startswith(":") else text
    if ":" in name:  # `pkg:t`: a package written without its leading //
        options = _absolute_readings(text, current_package)
        if not options:
            raise LabelError(f"'{text}' is not a label; labels look like //package:name "
                             "or :name")
        raise LabelError(f"label '{text}' needs a leading // before its package; write "
                         + " or ".join(f"'{option}'" for option in options))
    check_target_name(name)
    return Label(current_package, name)


def _absolute_readings(text: str, current_package: str) -> list[str]:
    """The valid labels a `pkg:t` written without its // may mean: from the workspace
    root, and inside a package also from that package (as `pkg/...` patterns are)."""
    package, _, name = text.lstrip("/").partition(":")
    readings: list[str] = []
    for candidate in (package, f"{current_package}/{package}" if current_package else ""):
        try:
            check_package_name(candidate)
            check_target_name(name)
        except LabelError:
            continue
        if candidate and f"//{candidate}:{name}" not in readings:
            readings.append(f"//{candidate}:{name}")
    return readings


@attrs.frozen
class Pattern:
    """A command-line target pattern.

    `recursive` patterns (`//pkg/...`) match every package at or under
    `package`; `all_in_package` (`//pkg:all`) every target of one package;
    otherwise `label` names one target.
    """

    package: str
    recursive: bool = False
    all_in_package: bool = False
    label: Label | None = None

    def matches_package(self, package: str) -> bool:
        if self.recursive:
            return (
                self.package == ""
                or package == self.package
                or package.startswith(self.package + "/")
            )
        return package == self.package

    def __str__(self) -> str:
        if self.recursive:
            return f"//{self.package}/..." if self.package else "//..."
        if self.all_in_package:
            return f"//{self.package}:all"
        return str(self.label)


def parse_pattern(text: str, current_package: str | None) -> Pattern:
    """Parse a command-line pattern; a plain label is a pattern naming one target."""
    if text == "//...":
        return Pattern(package="", recursive=True)
    if text == "...":
        return Pattern(package=current_package or "", recursive=True)
    if text.endswith("/..."):
        prefix = text[: -len("/...")]
        if prefix.startswith("//"):
            package = prefix[2:]
        elif current_package is not None:
            package = f"{current_package}/{prefix}" if current_package else prefix
        else:
            raise LabelError(f"pattern {text!r} is relative; write it as '//package/...'")
        check_package_name(package)
        return Pattern(package=package, recursive=True)
    if text.endswith(":all"):
        prefix = text[: -len(":all")]
        if prefix.startswith("//"):
            package = prefix[2:]
        elif prefix == "" and current_package is not None:
            package = current_package
        else:
            raise LabelError(f"pattern {text!r} is relative; write it as '//package:all'")
        check_package_name(package)
        return Pattern(package=package, all_in_package=True)
    label = parse_label(text, current_package)
    return Pattern(package=label.package, label=label)
