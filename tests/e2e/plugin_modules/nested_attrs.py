"""A rule whose attributes are a table converted to a nested attrs class, and labels of
targets."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class Size:
    width: int
    height: int = 2


@attrs.frozen
class SizedAttrs:
    size: Size | None = None
    ref: mb.Label | None = None
    refs: list[mb.Label] = attrs.field(factory=list)


@mb.rule("sized", attrs=SizedAttrs, version="1")
def sized(ctx: mb.RuleContext, a: SizedAttrs) -> None:
    out = ctx.output(f"{ctx.name}.txt")
    ctx.run(["touch", out], outputs=[out])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [sized]
