"""A rule whose outputs depend on a source's contents, read during analysis: one output
per line of `src` (`ctx.read_source`)."""

from __future__ import annotations

import attrs
import mb


@attrs.frozen
class LinesAttrs:
    src: mb.File


@mb.rule("lines", attrs=LinesAttrs, version="1")
def lines(ctx: mb.RuleContext, a: LinesAttrs) -> None:
    text = ctx.read_source(a.src)
    count = max(1, len(text.splitlines())) if text is not None else 1
    for i in range(count):
        out = ctx.output(f"{ctx.name}_{i}.txt")
        ctx.run(["sh", "-c", f"sed -n '{i + 1}p' \"$0\" > \"$1\"", ctx.path(a.src), out],
                inputs=[a.src], outputs=[out])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [lines]
