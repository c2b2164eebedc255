"""Attribute types a rule's attrs class uses to refer to files: `mb.File` and `mb.Files`.

A `File` holds only the label the user wrote; which paths it stands for is
decided during analysis by `RuleContext.path(s)` (a source file, a declared
output file, or a target's default outputs). Keeping resolution out of the
value keeps attrs instances frozen, comparable and free of engine state.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from mb.labels import Label


@attrs.frozen
class File:
    """One file: a package-relative path (`"title.svg"`) or a label (`":title"`).

    `single` is set on the value of an attribute typed `mb.File` (not on the
    items of `mb.Files`): SPEC §2 makes a label to a target with several
    outputs an error there, wherever the rule passes the value on
    (`ctx.run(inputs=[a.src])` as much as `ctx.path(a.src)`).
    """

    label: Label
    single: bool = attrs.field(default=False, eq=False, repr=False, kw_only=True)

    def __str__(self) -> str:
        return str(self.label)


@attrs.frozen
class Files:
    """An ordered list of `File`s; TOML must give a list (a lone string is an error)."""

    items: tuple[File, ...] = ()

    def __iter__(self) -> Iterator[File]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> File:
        return self.items[index]
