"""A plugin package: the rule is in `__init__`, the text transformation in a private helper."""

from __future__ import annotations

import attrs
import mb

from . import _style


@attrs.frozen
class StyledAttrs:
    src: mb.File


def _styled(io: mb.ActionIO) -> None:
    io.outputs[0].write_text(_style.transform(io.inputs[0].read_text()))


@mb.rule("styled", attrs=StyledAttrs)
def styled(ctx: mb.RuleContext, a: StyledAttrs) -> None:
    ctx.call(_styled, inputs=[a.src], outputs=[ctx.output(f"{ctx.name}.txt")])


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [styled]
