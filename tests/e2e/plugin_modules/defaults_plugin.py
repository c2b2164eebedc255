"""A rule whose attributes have defaults of every kind, for `mb rules RULE`."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class Margins:
    top: int = 0
    unit: str = "px"


@attrs.frozen
class DefaultsAttrs:
    src: mb.File
    title: str = ""
    loud: bool = True
    ratio: float = 1.5
    frames: int = 24
    note: str | None = None
    extra: mb.Files = mb.Files()
    names: tuple[str, ...] = ("a", "b c")
    vars: dict[str, str] = attrs.field(factory=lambda: {"title": "Why \"ducks\"", "a b": "x"})
    env: dict[str, str] = attrs.field(factory=dict)
    sizes: list[int] = attrs.field(factory=list)
    margins: Margins = attrs.field(factory=Margins)


@mb.rule("defaults", attrs=DefaultsAttrs)
def defaults(ctx: mb.RuleContext, a: DefaultsAttrs) -> None:
    """Declares nothing; only its attributes matter."""


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [defaults]
